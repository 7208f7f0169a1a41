/**
 * The device and resident registry. SQLite is the truth; an in-memory copy serves the ingest hot
 * path and authentication without a query per publish. This process is the database's only writer,
 * so the copy is updated with each write.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { isValidDeviceId } from "../broker/topics.js";
import type { Placement } from "../model/event.js";
import type { Db } from "../store/db.js";
import { hashGeneratedSecret, hashSecret, newSecret, UNKNOWN_DEVICE_HASH, verifySecret } from "./secrets.js";

export interface Device {
  id: string;
  profile: string;
  siteId: string;
  unitId: string;
  roomId: string | null;
  residentRef: string | null;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface Resident {
  ref: string;
  siteId: string;
  unitId: string;
  roomId: string | null;
  flags: string[];
}

export interface NewDevice {
  id: string;
  profile: string;
  siteId: string;
  unitId: string;
  roomId?: string | null;
  residentRef?: string | null;
  /** A person-chosen secret; when absent one is generated and returned once. */
  secret?: string;
}

export class RegistryError extends Error {
  constructor(
    readonly code:
      | "device_exists"
      | "device_not_found"
      | "invalid_device"
      | "unknown_placement"
      | "unknown_profile",
    message: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

interface DeviceRow {
  id: string;
  profile: string;
  site_id: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  enabled: number;
  secret_hash: string;
  created_at: number;
  updated_at: number;
}

interface Cached extends Device {
  secretHash: string;
}

export interface PlacementCatalogue {
  hasUnit(siteId: string, unitId: string): boolean;
}

/** Emits "device.changed" (Device) and "device.removed" (id) after each write. */
export class Registry extends EventEmitter {
  private readonly devices = new Map<string, Cached>();
  private readonly residents = new Map<string, Resident>();
  /** Secrets already proven this process: reconnects skip the KDF. Keyed by device id. */
  private readonly proven = new Map<string, { digest: string; hash: string }>();

  /** Profile ids a new device may name; changes when external profiles are reloaded. */
  private readonly profiles: Set<string>;

  constructor(
    private readonly db: Db,
    profiles: ReadonlySet<string>,
    private readonly places: PlacementCatalogue,
  ) {
    super();
    this.profiles = new Set(profiles);
    const q = this.db.prepare("SELECT value FROM meta WHERE key = 'registry_version'").pluck();
    this.versionQuery = () => q.get() as number;
    this.reload();
  }

  private version = -1;
  private readonly versionQuery: () => number;

  private readVersion(): number {
    return this.versionQuery();
  }

  /**
   * Another process (the `ata` CLI) may have changed devices or residents: the registry_version
   * counter, bumped by triggers on every such change, says so. Reload then, and announce what
   * changed. Commits to other tables (the event log, alerts) do not touch the counter.
   */
  refreshIfChanged(): void {
    if (this.readVersion() === this.version) return;
    const before = new Map(
      [...this.devices].map(([id, d]) => [id, `${d.enabled}|${d.secretHash}|${d.updatedAt}`]),
    );
    this.reload();
    for (const [id, d] of this.devices) {
      if (before.get(id) !== `${d.enabled}|${d.secretHash}|${d.updatedAt}`)
        this.emit("device.changed", publicDevice(d));
    }
  }

  reload(): void {
    this.version = this.readVersion();
    this.devices.clear();
    for (const row of this.db.prepare("SELECT * FROM devices").iterate() as IterableIterator<DeviceRow>) {
      this.devices.set(row.id, fromRow(row));
    }
    this.residents.clear();
    for (const row of this.db.prepare("SELECT * FROM residents").iterate() as IterableIterator<{
      ref: string;
      site_id: string;
      unit_id: string;
      room_id: string | null;
      flags: string;
    }>) {
      this.residents.set(row.ref, {
        ref: row.ref,
        siteId: row.site_id,
        unitId: row.unit_id,
        roomId: row.room_id,
        flags: JSON.parse(row.flags) as string[],
      });
    }
  }

  get(id: string): Device | undefined {
    const d = this.devices.get(id);
    return d ? publicDevice(d) : undefined;
  }

  /**
   * The registry's own record, without a copy: for the ingest hot path. Callers must not modify
   * it, and must not hand it to a client (it carries the secret hash).
   */
  peek(id: string): Readonly<Device> | undefined {
    return this.devices.get(id);
  }

  list(filter: { siteIds?: readonly string[] } = {}): Device[] {
    const out: Device[] = [];
    for (const d of this.devices.values()) {
      if (filter.siteIds && !filter.siteIds.includes(d.siteId)) continue;
      out.push(publicDevice(d));
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  get size(): number {
    return this.devices.size;
  }

  placement(id: string): Placement | undefined {
    const d = this.devices.get(id);
    if (!d) return undefined;
    return { siteId: d.siteId, unitId: d.unitId, roomId: d.roomId, residentRef: d.residentRef };
  }

  resident(ref: string): Resident | undefined {
    return this.residents.get(ref);
  }

  residentsOf(siteId: string): Resident[] {
    return [...this.residents.values()].filter((r) => r.siteId === siteId);
  }

  /** Register a device. Returns the secret in clear exactly once when it was generated here. */
  add(input: NewDevice): { device: Device; secret?: string } {
    this.validate(input);
    if (this.devices.has(input.id))
      throw new RegistryError("device_exists", `device "${input.id}" is already registered`);
    const generated = input.secret === undefined ? newSecret() : undefined;
    const secretHash = generated ? hashGeneratedSecret(generated) : hashSecret(input.secret!);
    const now = Date.now();
    const row: DeviceRow = {
      id: input.id,
      profile: input.profile,
      site_id: input.siteId,
      unit_id: input.unitId,
      room_id: input.roomId ?? null,
      resident_ref: input.residentRef ?? null,
      enabled: 1,
      secret_hash: secretHash,
      created_at: now,
      updated_at: now,
    };
    this.db
      .prepare(
        `INSERT INTO devices (id, profile, site_id, unit_id, room_id, resident_ref, enabled, secret_hash, created_at, updated_at)
         VALUES (@id, @profile, @site_id, @unit_id, @room_id, @resident_ref, @enabled, @secret_hash, @created_at, @updated_at)`,
      )
      .run(row);
    const cached = fromRow(row);
    this.devices.set(cached.id, cached);
    this.emit("device.changed", publicDevice(cached));
    return generated ? { device: publicDevice(cached), secret: generated } : { device: publicDevice(cached) };
  }

  /** Many devices in one transaction (seeding, benchmarks). Secrets are generated-grade. */
  addMany(inputs: (NewDevice & { secret: string })[], opts: { generatedSecrets?: boolean } = {}): void {
    const insert = this.db.prepare(
      `INSERT INTO devices (id, profile, site_id, unit_id, room_id, resident_ref, enabled, secret_hash, created_at, updated_at)
       VALUES (@id, @profile, @site_id, @unit_id, @room_id, @resident_ref, 1, @secret_hash, @now, @now)`,
    );
    const now = Date.now();
    const rows = inputs.map((input) => {
      this.validate(input);
      if (this.devices.has(input.id))
        throw new RegistryError("device_exists", `device "${input.id}" is already registered`);
      return {
        id: input.id,
        profile: input.profile,
        site_id: input.siteId,
        unit_id: input.unitId,
        room_id: input.roomId ?? null,
        resident_ref: input.residentRef ?? null,
        secret_hash: opts.generatedSecrets ? hashGeneratedSecret(input.secret) : hashSecret(input.secret),
        now,
      };
    });
    this.db.transaction(() => {
      for (const r of rows) insert.run(r);
    })();
    for (const r of rows) {
      const cached = fromRow({ ...r, enabled: 1, created_at: now, updated_at: now });
      this.devices.set(cached.id, cached);
      this.emit("device.changed", publicDevice(cached));
    }
  }

  setEnabled(id: string, enabled: boolean): Device {
    const d = this.devices.get(id);
    if (!d) throw new RegistryError("device_not_found", `no device "${id}"`);
    const now = Date.now();
    this.db
      .prepare("UPDATE devices SET enabled = ?, updated_at = ? WHERE id = ?")
      .run(enabled ? 1 : 0, now, id);
    d.enabled = enabled;
    d.updatedAt = now;
    this.emit("device.changed", publicDevice(d));
    return publicDevice(d);
  }

  /**
   * Give a registered device another profile: a device registered as `observe` (src/observe/)
   * promoted to its real one. Its secret and placement stay.
   */
  setProfile(id: string, profile: string): Device {
    const d = this.devices.get(id);
    if (!d) throw new RegistryError("device_not_found", `no device "${id}"`);
    if (!this.profiles.has(profile))
      throw new RegistryError("unknown_profile", `unknown profile "${profile}"`);
    const now = Date.now();
    this.db.prepare("UPDATE devices SET profile = ?, updated_at = ? WHERE id = ?").run(profile, now, id);
    d.profile = profile;
    d.updatedAt = now;
    this.emit("device.changed", publicDevice(d));
    return publicDevice(d);
  }

  /** Issue a new generated secret; the old one stops working at once. */
  rotateSecret(id: string): string {
    const d = this.devices.get(id);
    if (!d) throw new RegistryError("device_not_found", `no device "${id}"`);
    const secret = newSecret();
    d.secretHash = hashGeneratedSecret(secret);
    d.updatedAt = Date.now();
    this.db
      .prepare("UPDATE devices SET secret_hash = ?, updated_at = ? WHERE id = ?")
      .run(d.secretHash, d.updatedAt, id);
    this.proven.delete(id);
    return secret;
  }

  /**
   * How a CONNECT with this id and secret will be checked, before it is: "known", the pair
   * connected before in this process (a hash compare; a flood of failures from the same address, a
   * NAT shared with an attacker, must not lock it out); "hash", a generated secret; "kdf", scrypt
   * (a person-chosen secret, or an unknown id, verified as one).
   */
  verificationCost(id: string, secret: string): "known" | "hash" | "kdf" {
    const d = this.devices.get(id);
    if (!d) return "kdf";
    const memo = this.proven.get(id);
    if (memo && memo.hash === d.secretHash) {
      const digest = createHash("sha256").update(secret).digest();
      const known = Buffer.from(memo.digest, "base64");
      if (digest.length === known.length && timingSafeEqual(digest, known)) return "known";
    }
    return d.secretHash.startsWith("scrypt$") ? "kdf" : "hash";
  }

  /** Secret verifications run (KDF or hash), unknown ids included: they cost the same. */
  readonly authStats = { verifications: 0 };

  /** The outcome of a CONNECT's credentials. */
  async authenticate(id: string, secret: string): Promise<"ok" | "unknown" | "disabled" | "bad_secret"> {
    this.refreshIfChanged();
    const d = this.devices.get(id);
    if (!d) {
      // As long as a wrong secret for a real device: the answer's timing must not tell which
      // device ids exist.
      this.authStats.verifications++;
      await verifySecret(secret, UNKNOWN_DEVICE_HASH);
      return "unknown";
    }
    const memo = this.proven.get(id);
    let ok: boolean;
    const digest = createHash("sha256").update(secret).digest("base64");
    if (memo && memo.hash === d.secretHash) ok = memo.digest === digest;
    else {
      this.authStats.verifications++;
      ok = await verifySecret(secret, d.secretHash);
      if (ok) this.proven.set(id, { digest, hash: d.secretHash });
    }
    if (!ok) return "bad_secret";
    // Checked after the secret so that a wrong secret never learns whether a device is disabled.
    return d.enabled ? "ok" : "disabled";
  }

  /** Residents come from configuration: upsert them, keep the ones no longer listed (history). */
  syncResidents(residents: readonly Resident[]): void {
    const upsert = this.db.prepare(
      `INSERT INTO residents (ref, site_id, unit_id, room_id, flags) VALUES (@ref, @siteId, @unitId, @roomId, @flags)
       ON CONFLICT(ref) DO UPDATE SET site_id = excluded.site_id, unit_id = excluded.unit_id, room_id = excluded.room_id, flags = excluded.flags`,
    );
    this.db.transaction(() => {
      for (const r of residents) upsert.run({ ...r, flags: JSON.stringify(r.flags) });
    })();
    for (const r of residents) this.residents.set(r.ref, { ...r });
  }

  /**
   * External profiles loaded or dropped at run time (src/profiles/). Devices already registered with
   * a dropped profile keep their registration; only new registrations are checked against this.
   */
  updateProfiles(change: { added: Iterable<string>; removed: Iterable<string> }): void {
    for (const id of change.removed) this.profiles.delete(id);
    for (const id of change.added) this.profiles.add(id);
  }

  private validate(input: NewDevice): void {
    if (!isValidDeviceId(input.id))
      throw new RegistryError(
        "invalid_device",
        `device id "${input.id}" must be 1-64 letters, digits, . _ -`,
      );
    if (!this.profiles.has(input.profile))
      throw new RegistryError("unknown_profile", `unknown profile "${input.profile}"`);
    if (!this.places.hasUnit(input.siteId, input.unitId))
      throw new RegistryError("unknown_placement", `unknown site/unit "${input.siteId}/${input.unitId}"`);
    if (input.secret !== undefined && input.secret.length < 8)
      throw new RegistryError("invalid_device", "a device secret needs at least 8 characters");
    if (input.residentRef && !this.residents.has(input.residentRef))
      throw new RegistryError("unknown_placement", `unknown resident "${input.residentRef}"`);
  }
}

function fromRow(row: DeviceRow): Cached {
  return {
    id: row.id,
    profile: row.profile,
    siteId: row.site_id,
    unitId: row.unit_id,
    roomId: row.room_id,
    residentRef: row.resident_ref,
    enabled: row.enabled === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    secretHash: row.secret_hash,
  };
}

function publicDevice(d: Cached): Device {
  const { secretHash: _omit, ...rest } = d;
  return rest;
}
