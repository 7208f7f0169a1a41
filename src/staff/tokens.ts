/**
 * Staff tokens: a person's (or a wall screen's) credential, scoped to sites, optionally units, and
 * a role. Only an HMAC-SHA-256 of the token is stored, keyed with a server secret kept outside the
 * database (src/staff/token-key.ts): a copy of the database alone does not let anyone test guesses
 * offline, not even against the shorter tokens an operator writes into the configuration.
 * Generated tokens are 192 random bits, so a fast keyed hash is enough, and a lookup is one indexed
 * query on it. That lookup is the constant-time comparison: an attacker cannot steer the keyed hash
 * of a guess, so how long the index search takes says nothing about any stored token.
 *
 * Databases from before the key hold a plain SHA-256; a token with such a hash is re-hashed with the
 * key the first time it is used.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { z } from "zod";
import type { Db } from "../store/db.js";
import { Statements } from "../store/statements.js";
import type { StaffIdentity } from "./protocol.js";
import { tokenKeyFor } from "./token-key.js";

export const ROLES = ["staff", "nurse", "manager", "admin"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

export interface NewToken {
  name: string;
  role: Role;
  sites: string[];
  units?: string[] | null;
  /** A given token (demo seeds); otherwise one is generated. */
  token?: string;
  id?: string;
  /** The person this token belongs to (enrolled phones of one person share it); default the token's id. */
  personId?: string;
  /** Which phone or screen holds it ("Android · Chrome"), for the dashboard's device list. */
  deviceLabel?: string;
  /** Who made it, for the security log: "cli", "config", "staff:<id>", "enrolment:<by>". */
  actor?: string;
}

/** What the security log is told when a token is made or revoked (never the token). */
export interface TokenAuditEvent {
  kind: "token_created" | "token_revoked";
  actor: string | null;
  subject: string;
  detail: Record<string, unknown>;
}

/** A token as the dashboard lists it: never the token itself. */
export interface TokenRecord extends StaffIdentity {
  tokenId: string;
  deviceLabel: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revoked: boolean;
}

interface TokenRow {
  id: string;
  name: string;
  role: string;
  sites: string;
  units: string | null;
  person_id: string | null;
  device_label: string | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** "Last used" is for people reading a list: a write per minute per token is plenty. */
const TOUCH_EVERY_MS = 60_000;

/** The stored form: "h1:" and the keyed hash, so a legacy plain SHA-256 (64 hex) is told apart. */
const KEYED = "h1:";
const legacyDigest = (token: string) => createHash("sha256").update(token).digest("hex");

/**
 * A value that tells two keys apart without revealing either: cluster nodes compare it, since a
 * token's stored hash verifies only under the key that made it (src/cluster/replication.ts).
 */
export function tokenKeyFingerprint(key: Buffer): string {
  return createHmac("sha256", key).update("ata staff token key fingerprint v1").digest("base64url");
}

export class TokenStore {
  private readonly key: Buffer;
  /** Told of every token created or revoked: the security log. */
  onAudit: ((e: TokenAuditEvent) => void) | null = null;
  /** Whether any token still has a legacy hash (then a miss looks for that too). */
  private legacyLeft: boolean;
  private readonly statements: Statements;

  /** The key defaults to the one kept beside the database file (or in ATA_TOKEN_KEY). */
  constructor(db: Db, key?: Buffer) {
    db.exec("CREATE UNIQUE INDEX IF NOT EXISTS staff_tokens_hash ON staff_tokens(token_hash)");
    this.key = key ?? tokenKeyFor(db.name);
    this.statements = new Statements(db);
    this.legacyLeft = !!db
      .prepare(`SELECT 1 FROM staff_tokens WHERE token_hash NOT LIKE '${KEYED}%' LIMIT 1`)
      .get();
  }

  /** A statement kept for the connection: identity() runs for every alert sent to a person. */
  private sql(sql: string) {
    return this.statements.get(sql);
  }

  private digest(token: string): string {
    return KEYED + createHmac("sha256", this.key).update(token).digest("base64url");
  }

  /**
   * The row id holding this token's hash, keyed or legacy. A legacy hash found is replaced by the
   * keyed one on the spot.
   */
  private findHash(token: string): string {
    const keyed = this.digest(token);
    if (!this.legacyLeft || this.sql("SELECT 1 FROM staff_tokens WHERE token_hash = ?").get(keyed))
      return keyed;
    const legacy = legacyDigest(token);
    const row = this.sql("SELECT id FROM staff_tokens WHERE token_hash = ?").get(legacy) as
      | { id: string }
      | undefined;
    if (!row) return keyed;
    try {
      this.sql("UPDATE staff_tokens SET token_hash = ? WHERE id = ?").run(keyed, row.id);
      return keyed;
    } catch {
      // A read-only disk: the token still works by its old hash.
      return legacy;
    }
  }

  create(input: NewToken): { identity: StaffIdentity; token: string; tokenId: string } {
    const token = input.token ?? `ata_${randomBytes(24).toString("base64url")}`;
    const id = input.id ?? `st_${randomBytes(6).toString("hex")}`;
    this.sql(
      "INSERT INTO staff_tokens (id, name, role, sites, units, token_hash, created_at, person_id, device_label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      id,
      input.name,
      input.role,
      JSON.stringify(input.sites),
      input.units ? JSON.stringify(input.units) : null,
      this.digest(token),
      Date.now(),
      input.personId ?? null,
      input.deviceLabel ?? null,
    );
    this.onAudit?.({
      kind: "token_created",
      actor: input.actor ?? null,
      subject: id,
      detail: { role: input.role, sites: input.sites, units: input.units ?? null },
    });
    return {
      identity: {
        id: input.personId ?? id,
        name: input.name,
        role: input.role,
        sites: input.sites,
        units: input.units ?? null,
      },
      token,
      tokenId: id,
    };
  }

  /** Seeds from configuration: created once, left alone afterwards. */
  ensure(input: NewToken & { id: string; token: string }): void {
    const exists = this.sql("SELECT 1 FROM staff_tokens WHERE id = ?").get(input.id);
    if (!exists) this.create(input);
  }

  /** The id of the staff token with this secret (revoked or not), or null: a clash check. */
  holderOf(token: string): string | null {
    const row = this.sql("SELECT id FROM staff_tokens WHERE token_hash = ?").get(this.findHash(token)) as
      | { id: string }
      | undefined;
    return row?.id ?? null;
  }

  verify(token: string): StaffIdentity | null {
    return this.verifyToken(token)?.identity ?? null;
  }

  /** The person behind a token and which token it is (to close its sessions when it is revoked). */
  verifyToken(token: string): { identity: StaffIdentity; tokenId: string } | null {
    const row = this.sql(
      "SELECT id, name, role, sites, units, person_id, last_used_at FROM staff_tokens WHERE token_hash = ? AND revoked_at IS NULL",
    ).get(this.findHash(token)) as Omit<TokenRow, "device_label" | "created_at" | "revoked_at"> | undefined;
    if (!row) return null;
    const now = Date.now();
    if (row.last_used_at === null || now - row.last_used_at > TOUCH_EVERY_MS) this.touch([row.id], now);
    return {
      identity: {
        id: row.person_id ?? row.id,
        name: row.name,
        role: row.role,
        sites: JSON.parse(row.sites),
        units: row.units ? JSON.parse(row.units) : null,
      },
      tokenId: row.id,
    };
  }

  /** Marks tokens as in use now (a console that stays connected is using its token). */
  touch(ids: readonly string[], at = Date.now()): void {
    const stmt = this.sql("UPDATE staff_tokens SET last_used_at = ? WHERE id = ?");
    try {
      for (const id of ids) stmt.run(at, id);
    } catch {
      // Best effort: "last used" is for the device list. A full or read-only disk must not keep
      // a person from signing in to see the alerts the gateway can still show.
    }
  }

  /** Which of these tokens are revoked (or gone): their open sessions must close. */
  revokedAmong(ids: readonly string[]): string[] {
    if (!ids.length) return [];
    const active = new Set(
      (
        this.sql(
          "SELECT id FROM staff_tokens WHERE revoked_at IS NULL AND id IN (SELECT value FROM json_each(?))",
        ).all(JSON.stringify(ids)) as { id: string }[]
      ).map((r) => r.id),
    );
    return ids.filter((id) => !active.has(id));
  }

  get(tokenId: string): TokenRecord | null {
    const row = this.sql("SELECT * FROM staff_tokens WHERE id = ?").get(tokenId) as TokenRow | undefined;
    return row ? record(row) : null;
  }

  /** The person behind a token id, or null when the token is unknown or revoked. */
  identity(id: string): StaffIdentity | null {
    const row = this.sql(
      "SELECT id, name, role, sites, units, person_id FROM staff_tokens WHERE id = ? AND revoked_at IS NULL",
    ).get(id) as
      | {
          id: string;
          name: string;
          role: string;
          sites: string;
          units: string | null;
          person_id: string | null;
        }
      | undefined;
    if (!row) return null;
    return {
      // The person, as verify() says it: every phone of an enrolled person is the same person.
      id: row.person_id ?? row.id,
      name: row.name,
      role: row.role,
      sites: JSON.parse(row.sites),
      units: row.units ? JSON.parse(row.units) : null,
    };
  }

  list(): (StaffIdentity & { createdAt: string; revoked: boolean })[] {
    return this.records().map((r) => ({
      id: r.tokenId,
      name: r.name,
      role: r.role,
      sites: r.sites,
      units: r.units,
      createdAt: r.createdAt,
      revoked: r.revoked,
    }));
  }

  /** Every token with its person and device, oldest first. */
  records(): TokenRecord[] {
    return (this.sql("SELECT * FROM staff_tokens ORDER BY created_at, id").all() as TokenRow[]).map(record);
  }

  /** Takes back a revocation (demo tokens when demo mode is turned on again). */
  reinstate(id: string, actor?: string): boolean {
    const done =
      this.sql("UPDATE staff_tokens SET revoked_at = NULL WHERE id = ? AND revoked_at IS NOT NULL").run(id)
        .changes > 0;
    if (done)
      this.onAudit?.({
        kind: "token_created",
        actor: actor ?? null,
        subject: id,
        detail: { reinstated: true },
      });
    return done;
  }

  revoke(id: string, actor?: string): boolean {
    const done =
      this.sql("UPDATE staff_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(
        Date.now(),
        id,
      ).changes > 0;
    if (done) this.onAudit?.({ kind: "token_revoked", actor: actor ?? null, subject: id, detail: {} });
    return done;
  }
}

function record(r: TokenRow): TokenRecord {
  return {
    id: r.person_id ?? r.id,
    name: r.name,
    role: r.role,
    sites: JSON.parse(r.sites),
    units: r.units ? JSON.parse(r.units) : null,
    tokenId: r.id,
    deviceLabel: r.device_label,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at).toISOString(),
    revoked: r.revoked_at !== null,
  };
}
