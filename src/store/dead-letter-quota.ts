/**
 * The dead-letter store's bounds. A device that sends nothing but refused publishes must not fill
 * the disk, nor push every other device's dead letters out: each device keeps at most `perDevice`
 * rows, and the store at most `total` rows and `totalBytes` bytes. When a new dead letter would go
 * over, the oldest rows (the device's own for its quota, anyone's for the total) are deleted in the
 * same transaction as the insert, and counted (log.dead_letter_quota, ata_dead_letters_dropped_total).
 *
 * What the store holds is counted by triggers (event-log migration 4), so nothing here counts the
 * table: each statement below is an index probe and a one-row read. Dead letters without a device
 * id (none today: every publish is authenticated first) are one bucket of their own.
 */
import type { Db } from "./db.js";

export interface DeadLetterQuota {
  /** Rows a device keeps; its oldest go first. */
  perDevice: number;
  /** Rows the store keeps in all; the oldest go first. */
  total: number;
  /** Bytes (stored payload, reason and topic) the store keeps in all; the oldest go first. */
  totalBytes: number;
}

export interface DeadLetterUsage {
  quota: { perDevice: number | null; total: number | null; totalBytes: number | null };
  letters: number;
  bytes: number;
  dropped: { device: number; total: number };
}

/** Sets the quotas the trims below apply; the CLI and the API show them from here. */
export const SET_QUOTA =
  "UPDATE dead_letter_quota SET per_device_max = ?, total_max = ?, bytes_max = ?, updated_at = ?";

/**
 * Deletes the oldest dead letters of one device beyond its quota, in one run. Parameters: the
 * device id twice (NULL for none; better-sqlite3 binds no numbered parameters).
 */
export const TRIM_DEVICE = `DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters WHERE device_id IS ? ORDER BY id
    LIMIT max(0, coalesce((SELECT letters FROM dead_letter_usage WHERE device_id = coalesce(?, ''))
      - (SELECT per_device_max FROM dead_letter_quota), 0)))`;

/**
 * Deletes the oldest dead letter while the store is over its row or byte quota: one row per run,
 * run until it deletes nothing (how many old rows make room for a new one depends on their sizes).
 */
export const TRIM_TOTAL = `DELETE FROM dead_letters WHERE id = (SELECT min(id) FROM dead_letters)
    AND (SELECT letters > total_max OR bytes > bytes_max FROM dead_letter_quota)`;

export const TALLY_DEVICE = "UPDATE dead_letter_quota SET dropped_device = dropped_device + ?";
export const TALLY_TOTAL = "UPDATE dead_letter_quota SET dropped_total = dropped_total + ?";

/**
 * Record the quotas and bring the store within them (they may have been lowered since the last
 * start), on the caller's connection, before the writer thread starts. Returns the rows deleted.
 */
export function applyQuota(db: Db, quota: DeadLetterQuota, now: number): { device: number; total: number } {
  return db.transaction(() => {
    db.prepare(SET_QUOTA).run(quota.perDevice, quota.total, quota.totalBytes, now);
    const over = db
      .prepare("SELECT device_id FROM dead_letter_usage WHERE letters > ?")
      .pluck()
      .all(quota.perDevice) as string[];
    const trimDevice = db.prepare(TRIM_DEVICE);
    let device = 0;
    for (const id of over) device += trimDevice.run(id || null, id || null).changes;
    const trimTotal = db.prepare(TRIM_TOTAL);
    let total = 0;
    while (trimTotal.run().changes > 0) total++;
    if (device) db.prepare(TALLY_DEVICE).run(device);
    if (total) db.prepare(TALLY_TOTAL).run(total);
    return { device, total };
  })();
}

/** The quotas in force, what the store holds and what the quotas deleted since it was created. */
export function deadLetterUsage(db: Db): DeadLetterUsage {
  const r = db
    .prepare(
      "SELECT per_device_max, total_max, bytes_max, letters, bytes, dropped_device, dropped_total FROM dead_letter_quota",
    )
    .get() as {
    per_device_max: number | null;
    total_max: number | null;
    bytes_max: number | null;
    letters: number;
    bytes: number;
    dropped_device: number;
    dropped_total: number;
  };
  return {
    quota: { perDevice: r.per_device_max, total: r.total_max, totalBytes: r.bytes_max },
    letters: r.letters,
    bytes: r.bytes,
    dropped: { device: r.dropped_device, total: r.dropped_total },
  };
}

/** One device's share of the store: rows and bytes. */
export function deviceDeadLetterUsage(db: Db, deviceId: string): { letters: number; bytes: number } {
  const r = db.prepare("SELECT letters, bytes FROM dead_letter_usage WHERE device_id = ?").get(deviceId) as
    | { letters: number; bytes: number }
    | undefined;
  return r ?? { letters: 0, bytes: 0 };
}
