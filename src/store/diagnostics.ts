/**
 * What a device sent that did not become an event: dead letters (refused, with the reason) and
 * dropped duplicates (redeliveries and repeated eventIds). One place for the operator's views of
 * them: the HTTP API, the device's diagnostics and the `ata` command line.
 */
import type { Db } from "./db.js";

export type Refused = "dead_letters" | "duplicates";

const COLUMNS: Record<Refused, string> = {
  dead_letters: "id, received_at, device_id, topic, code, reason, size, sha256, truncated",
  duplicates: "id, received_at, device_id, event_id, topic, reason",
};

/** The newest rows, optionally of one device; `received_at` as ISO 8601. */
export function latestRefused(
  db: Db,
  kind: Refused,
  opts: { device?: string | null; limit: number },
): Record<string, unknown>[] {
  const rows = db
    .prepare(
      `SELECT ${COLUMNS[kind]} FROM ${kind} ${opts.device ? "WHERE device_id = ?" : ""} ORDER BY id DESC LIMIT ?`,
    )
    .all(...(opts.device ? [opts.device, opts.limit] : [opts.limit])) as Record<string, unknown>[];
  return rows.map((x) => ({ ...x, received_at: new Date(x.received_at as number).toISOString() }));
}

/** A device's dead letters and duplicates: in all, and in the last 24 hours. */
export function refusedCounts(
  db: Db,
  deviceId: string,
  now: number,
): Record<"deadLetters" | "duplicates", { total: number; day: number }> {
  const count = (kind: Refused) =>
    db
      .prepare(
        `SELECT count(*) AS total, count(*) FILTER (WHERE received_at >= @since) AS day FROM ${kind} WHERE device_id = @device`,
      )
      .get({ device: deviceId, since: now - 86_400_000 }) as { total: number; day: number };
  return { deadLetters: count("dead_letters"), duplicates: count("duplicates") };
}
