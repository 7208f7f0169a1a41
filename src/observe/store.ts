/**
 * What observed devices sent: a bounded store of its own in the main database (migration 11),
 * never the event log, never the rules. Each device keeps at most `perDevice` samples and the
 * store at most `total`; a new sample over either quota deletes the oldest (the device's own for
 * its quota, anyone's for the total) in the same transaction, and counts them. Running counts live
 * in observe_devices and observe_totals (kept here, in each write's transaction), so no quota check
 * counts the samples table; the same shape as the dead-letter quota (src/store/dead-letter-quota.ts).
 */
import type { Db } from "../store/db.js";

export interface ObserveQuota {
  perDevice: number;
  total: number;
  /** Bytes of a payload kept; the rest is cut (size keeps the full length). */
  maxPayloadBytes: number;
}

export type ObservedVia = "enrolment" | "registered";

export interface ObservedDevice {
  deviceId: string;
  siteId: string;
  unitId: string;
  via: ObservedVia;
  firstAt: string;
  lastAt: string;
  /** Publishes received, kept or not. */
  received: number;
  /** Samples held now. */
  stored: number;
  dropped: { quota: number; rate: number };
}

export interface ObservedChannel {
  channel: string;
  /** Samples held now on this channel. */
  samples: number;
  minBytes: number;
  maxBytes: number;
  lastAt: string;
}

export interface Sample {
  id: number;
  channel: string;
  receivedAt: string;
  /** The payload's full size in bytes. */
  size: number;
  /** What was kept: at most maxPayloadBytes of it. */
  payload: Buffer;
}

export interface ObserveUsage {
  quota: ObserveQuota;
  stored: number;
  dropped: { device: number; total: number };
}

interface DeviceRow {
  device_id: string;
  site_id: string;
  unit_id: string;
  via: ObservedVia;
  first_at: number;
  last_at: number;
  received: number;
  stored: number;
  dropped_quota: number;
  dropped_rate: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

function fromRow(r: DeviceRow): ObservedDevice {
  return {
    deviceId: r.device_id,
    siteId: r.site_id,
    unitId: r.unit_id,
    via: r.via,
    firstAt: iso(r.first_at),
    lastAt: iso(r.last_at),
    received: r.received,
    stored: r.stored,
    dropped: { quota: r.dropped_quota, rate: r.dropped_rate },
  };
}

export class ObserveStore {
  private readonly upsert;
  private readonly insert;
  private readonly trimDevice;
  private readonly trimOldest;
  private readonly tally;
  private readonly rateDrop;
  private readonly count;
  private readonly dropped;
  private readonly storedNow;

  constructor(
    private readonly db: Db,
    readonly quota: ObserveQuota,
  ) {
    this.upsert = db.prepare(
      `INSERT INTO observe_devices (device_id, site_id, unit_id, via, first_at, last_at)
       VALUES (@deviceId, @siteId, @unitId, @via, @now, @now)
       ON CONFLICT(device_id) DO UPDATE SET site_id = excluded.site_id, unit_id = excluded.unit_id,
         via = excluded.via, last_at = excluded.last_at`,
    );
    this.insert = db.prepare(
      "INSERT INTO observe_samples (device_id, channel, received_at, size, payload) VALUES (?, ?, ?, ?, ?)",
    );
    // The device's oldest beyond its quota, in one statement (its count is the running one).
    this.trimDevice = db.prepare(
      `DELETE FROM observe_samples WHERE id IN (
         SELECT id FROM observe_samples WHERE device_id = ? ORDER BY id LIMIT ?)`,
    );
    this.trimOldest = db.prepare(
      "DELETE FROM observe_samples WHERE id = (SELECT min(id) FROM observe_samples) RETURNING device_id",
    );
    this.tally = db.prepare(
      "UPDATE observe_totals SET stored = stored + ?, dropped_device = dropped_device + ?, dropped_total = dropped_total + ?",
    );
    this.count = db.prepare(
      "UPDATE observe_devices SET received = received + 1, stored = stored + 1, last_at = ? WHERE device_id = ? RETURNING stored",
    );
    this.dropped = db.prepare(
      "UPDATE observe_devices SET stored = stored - ?, dropped_quota = dropped_quota + ? WHERE device_id = ?",
    );
    this.storedNow = db.prepare("SELECT stored FROM observe_totals").pluck();
    this.rateDrop = db.prepare(
      "UPDATE observe_devices SET received = received + 1, dropped_rate = dropped_rate + 1, last_at = ? WHERE device_id = ?",
    );
  }

  /** Bring the store within the quotas (they may have been lowered since the last start). */
  applyQuota(): { device: number; total: number } {
    return this.db.transaction(() => {
      let device = 0;
      const over = this.db
        .prepare("SELECT device_id, stored FROM observe_devices WHERE stored > ?")
        .all(this.quota.perDevice) as { device_id: string; stored: number }[];
      for (const r of over) device += this.dropOldestOf(r.device_id, r.stored - this.quota.perDevice);
      this.tally.run(-device, device, 0);
      const total = this.trimTotal();
      this.tally.run(-total, 0, total);
      return { device, total };
    })();
  }

  /** The device is being observed (it connected): its row exists from now on. */
  touch(d: { deviceId: string; siteId: string; unitId: string; via: ObservedVia }, now = Date.now()): void {
    this.upsert.run({ ...d, now });
  }

  /** Keep a sample; the oldest go when a quota is reached. Returns how many were deleted. */
  add(deviceId: string, channel: string, payload: Buffer, now = Date.now()): { dropped: number } {
    const kept =
      payload.length > this.quota.maxPayloadBytes ? payload.subarray(0, this.quota.maxPayloadBytes) : payload;
    return this.db.transaction(() => {
      this.insert.run(deviceId, channel, now, payload.length, kept);
      const r = this.count.get(now, deviceId) as { stored: number } | undefined;
      if (!r) throw new Error(`observed device ${deviceId} has no row; touch() it first`);
      const device =
        r.stored > this.quota.perDevice ? this.dropOldestOf(deviceId, r.stored - this.quota.perDevice) : 0;
      this.tally.run(1 - device, device, 0);
      const total = this.trimTotal();
      if (total) this.tally.run(-total, 0, total);
      return { dropped: device + total };
    })();
  }

  /** A publish over the device's rate: acknowledged, counted, not kept. */
  countRateDrop(deviceId: string, now = Date.now()): void {
    this.rateDrop.run(now, deviceId);
  }

  private dropOldestOf(deviceId: string, n: number): number {
    const changes = this.trimDevice.run(deviceId, n).changes;
    this.dropped.run(changes, changes, deviceId);
    return changes;
  }

  /** Deletes the oldest samples while the store is over its total; each one counted on its device. */
  private trimTotal(): number {
    let n = 0;
    const over = (this.storedNow.get() as number) - this.quota.total;
    while (n < over) {
      const r = this.trimOldest.get() as { device_id: string } | undefined;
      if (!r) break;
      this.dropped.run(1, 1, r.device_id);
      n++;
    }
    return n;
  }

  list(): ObservedDevice[] {
    return (this.db.prepare("SELECT * FROM observe_devices ORDER BY last_at DESC").all() as DeviceRow[]).map(
      fromRow,
    );
  }

  get(deviceId: string): ObservedDevice | undefined {
    const r = this.db.prepare("SELECT * FROM observe_devices WHERE device_id = ?").get(deviceId) as
      | DeviceRow
      | undefined;
    return r && fromRow(r);
  }

  /** Per channel: samples held, smallest and largest payload, the last one's time. */
  channels(deviceId: string): ObservedChannel[] {
    const rows = this.db
      .prepare(
        `SELECT channel, count(*) AS n, min(size) AS min_size, max(size) AS max_size, max(received_at) AS last_at
         FROM observe_samples WHERE device_id = ? GROUP BY channel ORDER BY channel`,
      )
      .all(deviceId) as { channel: string; n: number; min_size: number; max_size: number; last_at: number }[];
    return rows.map((r) => ({
      channel: r.channel,
      samples: r.n,
      minBytes: r.min_size,
      maxBytes: r.max_size,
      lastAt: iso(r.last_at),
    }));
  }

  /** The device's samples held now, newest first. */
  samples(deviceId: string, opts: { channel?: string; limit?: number } = {}): Sample[] {
    const rows = this.db
      .prepare(
        `SELECT id, channel, received_at, size, payload FROM observe_samples
         WHERE device_id = ? AND (? IS NULL OR channel = ?) ORDER BY id DESC LIMIT ?`,
      )
      .all(deviceId, opts.channel ?? null, opts.channel ?? null, opts.limit ?? this.quota.perDevice) as {
      id: number;
      channel: string;
      received_at: number;
      size: number;
      payload: Buffer;
    }[];
    return rows.map((r) => ({
      id: r.id,
      channel: r.channel,
      receivedAt: iso(r.received_at),
      size: r.size,
      payload: r.payload,
    }));
  }

  usage(): ObserveUsage {
    const r = this.db.prepare("SELECT stored, dropped_device, dropped_total FROM observe_totals").get() as {
      stored: number;
      dropped_device: number;
      dropped_total: number;
    };
    return {
      quota: this.quota,
      stored: r.stored,
      dropped: { device: r.dropped_device, total: r.dropped_total },
    };
  }

  /** Delete a device's samples and row (after it was promoted, or on request). */
  forget(deviceId: string): number {
    return this.db.transaction(() => {
      const n = this.db.prepare("DELETE FROM observe_samples WHERE device_id = ?").run(deviceId).changes;
      this.db.prepare("DELETE FROM observe_devices WHERE device_id = ?").run(deviceId);
      this.tally.run(-n, 0, 0);
      return n;
    })();
  }
}
