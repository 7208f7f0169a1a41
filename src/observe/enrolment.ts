/**
 * One-time enrolment secrets for observe mode. The operator creates one for a site and unit (and
 * optionally a device id) and gives it to the vendor or installer; the first device that connects
 * with it under an id nobody registered is bound to it, and only that id may use it after, until
 * it expires or is revoked. Only the secret's SHA-256 is stored: it is generated here (192 random
 * bits), so a slow KDF would add nothing, as for the gateway's own device secrets (src/registry/
 * secrets.ts).
 */
import { createHash, randomBytes } from "node:crypto";
import { newSecret } from "../registry/secrets.js";
import type { Db } from "../store/db.js";

/** Enrolment secrets start with this, so an operator (and a log reader) can tell them apart. */
export const ENROLMENT_PREFIX = "obs_";

export interface ObserveEnrolment {
  id: string;
  siteId: string;
  unitId: string;
  /** Bound at first use, or named at creation. */
  deviceId: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  revokedAt: string | null;
}

export type EnrolmentMatch =
  | { ok: true; enrolment: ObserveEnrolment; firstUse: boolean }
  | { ok: false; reason: "enrolment_expired" | "enrolment_revoked" | "enrolment_bound"; enrolmentId: string };

interface Row {
  id: string;
  secret_hash: string;
  site_id: string;
  unit_id: string;
  device_id: string | null;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
}

const hashOf = (secret: string) => createHash("sha256").update(secret).digest("base64url");
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function fromRow(r: Row): ObserveEnrolment {
  return {
    id: r.id,
    siteId: r.site_id,
    unitId: r.unit_id,
    deviceId: r.device_id,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    expiresAt: iso(r.expires_at)!,
    usedAt: iso(r.used_at),
    revokedAt: iso(r.revoked_at),
  };
}

export class ObserveEnrolments {
  constructor(private readonly db: Db) {}

  /** A new secret, returned in clear exactly once. */
  create(input: {
    siteId: string;
    unitId: string;
    deviceId?: string | null;
    ttlMs: number;
    createdBy: string;
    now?: number;
  }): { enrolment: ObserveEnrolment; secret: string } {
    const now = input.now ?? Date.now();
    const secret = `${ENROLMENT_PREFIX}${newSecret()}`;
    const row: Row = {
      id: `oe-${randomBytes(6).toString("hex")}`,
      secret_hash: hashOf(secret),
      site_id: input.siteId,
      unit_id: input.unitId,
      device_id: input.deviceId ?? null,
      created_by: input.createdBy,
      created_at: now,
      expires_at: now + input.ttlMs,
      used_at: null,
      revoked_at: null,
    };
    this.db
      .prepare(
        `INSERT INTO observe_enrolments (id, secret_hash, site_id, unit_id, device_id, created_by, created_at, expires_at, used_at, revoked_at)
         VALUES (@id, @secret_hash, @site_id, @unit_id, @device_id, @created_by, @created_at, @expires_at, @used_at, @revoked_at)`,
      )
      .run(row);
    return { enrolment: fromRow(row), secret };
  }

  /**
   * The enrolment this secret opens for this device id, binding it at first use; null when the
   * secret is no enrolment's (the caller then treats the CONNECT as it would without observe mode).
   */
  match(deviceId: string, secret: string, now = Date.now()): EnrolmentMatch | null {
    if (!secret.startsWith(ENROLMENT_PREFIX)) return null;
    return this.db.transaction((): EnrolmentMatch | null => {
      const r = this.db
        .prepare("SELECT * FROM observe_enrolments WHERE secret_hash = ?")
        .get(hashOf(secret)) as Row | undefined;
      if (!r) return null;
      if (r.revoked_at !== null) return { ok: false, reason: "enrolment_revoked", enrolmentId: r.id };
      if (r.expires_at <= now) return { ok: false, reason: "enrolment_expired", enrolmentId: r.id };
      if (r.device_id !== null && r.device_id !== deviceId)
        return { ok: false, reason: "enrolment_bound", enrolmentId: r.id };
      const firstUse = r.used_at === null;
      if (firstUse) {
        this.db
          .prepare("UPDATE observe_enrolments SET device_id = ?, used_at = ? WHERE id = ?")
          .run(deviceId, now, r.id);
        r.device_id = deviceId;
        r.used_at = now;
      }
      return { ok: true, enrolment: fromRow(r), firstUse };
    })();
  }

  list(): ObserveEnrolment[] {
    return (this.db.prepare("SELECT * FROM observe_enrolments ORDER BY created_at DESC").all() as Row[]).map(
      fromRow,
    );
  }

  /** Revoke an enrolment: its device can no longer connect with it. False when none is active. */
  revoke(id: string, now = Date.now()): boolean {
    return (
      this.db
        .prepare("UPDATE observe_enrolments SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .run(now, id).changes > 0
    );
  }
}
