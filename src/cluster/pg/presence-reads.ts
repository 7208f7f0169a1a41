/**
 * Device online history (`PresenceReads`, src/reports/uptime.ts) on PostgreSQL's shared event log,
 * which holds every node's `device.online` / `device.offline` (a cluster node's SQLite holds only the
 * changes it logged itself). The same fold as SQLite's (`historyOf`): the node of the latest online
 * owns the device's presence, `data.node` names the node that logged a change.
 *
 * Retention. The log is pruned after `eventRetentionDays` (event-log.ts `pruneEvents`), so a device
 * online for longer than that has no change left in it, and SQLite's fallback, `device_state`, is
 * per node and not replicated. The prune therefore keeps, in the same statement as its delete,
 * each device's newest pruned `device.online` and `device.offline` per node in
 * `presence_before_prune` (migration 13), which is exactly what the fold needs of the time before the
 * log's start: the last online overall is the newest of the per-node newest onlines, and its node's
 * newest offline says whether that node let it go. Sound under concurrency: appends never touch the
 * table; two nodes pruning the same partition delete each row once (the second waits on the first's
 * row locks and then skips the rows gone), and the upsert keeps the greater (occurred_at, seq), an
 * order-free maximum, so any interleaving of prunes ends with the same rows. Kept rows are read only
 * when they occurred before the window (a change pruned by receipt can have occurred later than one
 * kept, if a device's clock ran ahead).
 *
 * A window that reaches before the log's start is therefore right at its start, but changes pruned
 * from inside it are gone; the time-saved job computes no day before `keptFrom` (event-reads.ts).
 *
 * Queries take a batch of devices (a site's fall sensors for one night): four round trips, each
 * through events_device_type_time.
 */
import type pg from "pg";
import {
  historyOf,
  isAfter,
  type OnlineHistory,
  type PresenceBefore,
  type PresenceChange,
  type PresenceMark,
  type PresenceReads,
} from "../../reports/uptime.js";
import type { PgMigration } from "./migrate.js";
import { rows } from "./partition-schema.js";

export const PRESENCE_MIGRATION: PgMigration = {
  version: 13,
  name: "presence_before_prune",
  sql: `
    -- Per device, node ('' for none) and type: the newest presence change the prune deleted.
    CREATE TABLE presence_before_prune (
      device_id TEXT NOT NULL,
      node TEXT NOT NULL,
      type TEXT NOT NULL CHECK (type IN ('device.online', 'device.offline')),
      occurred_at BIGINT NOT NULL,
      seq BIGINT NOT NULL,
      PRIMARY KEY (device_id, node, type)
    );
  `,
};

/**
 * Run by the event log's prune with each delete, over `gone` (the deleted rows' device_id, type,
 * occurred_at, seq and data).
 */
export const KEEP_PRUNED_PRESENCE = {
  returning: "device_id, type, occurred_at, seq, data",
  sql: `
    INSERT INTO presence_before_prune AS k (device_id, node, type, occurred_at, seq)
    SELECT DISTINCT ON (device_id, node, type) device_id, node, type, occurred_at, seq
      FROM (SELECT device_id, type, occurred_at, seq, COALESCE(data::jsonb ->> 'node', '') AS node
              FROM gone WHERE type IN ('device.online', 'device.offline')) AS g
     ORDER BY device_id, node, type, occurred_at DESC, seq DESC
    ON CONFLICT (device_id, node, type) DO UPDATE SET occurred_at = EXCLUDED.occurred_at, seq = EXCLUDED.seq
     WHERE (EXCLUDED.occurred_at, EXCLUDED.seq) > (k.occurred_at, k.seq)`,
};

const NODE = "COALESCE(data::jsonb ->> 'node', '')";

interface MarkRow extends PresenceMark {
  device_id: string;
}

export class PgPresenceReads implements PresenceReads {
  constructor(private readonly pool: pg.Pool) {}

  async onlineHistories(
    deviceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<Map<string, OnlineHistory>> {
    const ids = [...new Set(deviceIds)];
    if (ids.length === 0) return new Map();
    const [onlines, offlines, pruned, changes] = await Promise.all([
      rows<MarkRow>(
        this.pool,
        `SELECT DISTINCT ON (device_id) device_id, occurred_at AS at, seq, ${NODE} AS node FROM events
          WHERE device_id = ANY($1) AND type = 'device.online' AND occurred_at < $2
          ORDER BY device_id, occurred_at DESC, seq DESC`,
        [ids, from],
      ),
      rows<MarkRow>(
        this.pool,
        `SELECT DISTINCT ON (device_id, node) device_id, at, seq, node
           FROM (SELECT device_id, occurred_at AS at, seq, ${NODE} AS node FROM events
                  WHERE device_id = ANY($1) AND type = 'device.offline' AND occurred_at < $2) AS o
          ORDER BY device_id, node, at DESC, seq DESC`,
        [ids, from],
      ),
      rows<MarkRow & { type: string }>(
        this.pool,
        `SELECT device_id, type, occurred_at AS at, seq, node FROM presence_before_prune
          WHERE device_id = ANY($1) AND occurred_at < $2`,
        [ids, from],
      ),
      rows<MarkRow & { type: string }>(
        this.pool,
        `SELECT device_id, type, occurred_at AS at, seq, ${NODE} AS node FROM events
          WHERE device_id = ANY($1) AND type IN ('device.online', 'device.offline')
            AND occurred_at >= $2 AND occurred_at < $3
          ORDER BY device_id, occurred_at, seq`,
        [ids, from, to],
      ),
    ]);
    const newest = (a: PresenceMark | undefined, b: PresenceMark): PresenceMark =>
      a && !isAfter(b, a) ? a : b;
    const lastOnline = new Map<string, PresenceMark>();
    const lastOffline = new Map<string, Map<string, PresenceMark>>();
    const offline = (r: MarkRow) => {
      const byNode = lastOffline.get(r.device_id) ?? new Map<string, PresenceMark>();
      lastOffline.set(r.device_id, byNode);
      byNode.set(r.node, newest(byNode.get(r.node), r));
    };
    for (const r of onlines) lastOnline.set(r.device_id, newest(lastOnline.get(r.device_id), r));
    for (const r of offlines) offline(r);
    for (const r of pruned)
      if (r.type === "device.online") lastOnline.set(r.device_id, newest(lastOnline.get(r.device_id), r));
      else offline(r);
    const changesOf = new Map<string, PresenceChange[]>();
    for (const r of changes) {
      const list = changesOf.get(r.device_id) ?? [];
      changesOf.set(r.device_id, list);
      list.push({ at: r.at, seq: r.seq, node: r.node, online: r.type === "device.online" });
    }
    const out = new Map<string, OnlineHistory>();
    for (const id of ids) {
      const on = lastOnline.get(id);
      const offs = [...(lastOffline.get(id)?.values() ?? [])];
      const before: PresenceBefore = { lastOnline: on };
      for (const off of offs)
        if (!on || off.node === on.node) before.lastOffline = newest(before.lastOffline, off);
      out.set(id, historyOf(before, changesOf.get(id) ?? []));
    }
    return out;
  }
}
