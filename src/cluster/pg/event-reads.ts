/**
 * What the time-saved job and the quality report read of events (`EventReads`,
 * src/reports/event-reads.ts) on PostgreSQL's shared event log, which holds every node's ingest
 * (event-log.ts): a cluster node's SQLite holds only its own share. BIGINTs come back as numbers;
 * `data` is the text every node appended.
 *
 * Differences from SQLite's, outside what a day's figures depend on:
 * - events of a site are read by the site they were placed in, not through the devices registered to
 *   it now (SQLite's join, there for its planner): an unregistered device's events still count;
 * - ties in occurred_at come in `seq` order, the order rows reached the shared table;
 * - the log is pruned after `eventRetentionDays` (by receipt, per partition: pruneEvents), so
 *   `keptFrom` is now minus the retention, and the job computes no day that reaches before it. An
 *   event that occurred within the retention was received within it too, unless its device's clock
 *   ran ahead.
 *
 * - lift cycles are counted from `data` as jsonb, by its JSON types as SQLite's json_extract gives
 *   them: a string `fault` counts when not empty, a number when not 0, a boolean when true; `helpers`
 *   counts when a number.
 *
 * The type read goes through events_site_time and filters the type: a site's heartbeats of the range
 * are walked, once per type and day of the job; no index serves (site, type, time) without them.
 */
import type pg from "pg";
import type { EventReads, LiftCycleCounts, TypedEvent } from "../../reports/event-reads.js";
import { rows } from "./partition-schema.js";

const DAY_MS = 86_400_000;

export class PgEventReads implements EventReads {
  /** `retentionDays`: the cluster's `eventRetentionDays`, after which the log is pruned. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly retentionDays: number,
  ) {}

  async eventsOfType(siteId: string, type: string, from: number, to: number): Promise<TypedEvent[]> {
    return rows<TypedEvent>(
      this.pool,
      `SELECT unit_id, room_id, resident_ref, occurred_at AS at, data FROM events
        WHERE site_id = $1 AND type = $2 AND type <> 'device.heartbeat' AND occurred_at >= $3 AND occurred_at < $4
        ORDER BY occurred_at, seq`,
      [siteId, type, from, to],
    );
  }

  async liftCycleCounts(
    siteId: string,
    from: number,
    to: number,
    units: readonly string[] | null,
  ): Promise<LiftCycleCounts> {
    const [r] = await rows<LiftCycleCounts>(
      this.pool,
      `SELECT count(*)::int AS cycles,
              count(*) FILTER (WHERE faulted)::int AS faults,
              count(*) FILTER (WHERE NOT faulted AND helpers = 1)::int AS "oneHelper",
              count(*) FILTER (WHERE NOT faulted AND helpers >= 2)::int AS "twoHelper"
         FROM (SELECT CASE jsonb_typeof(d -> 'fault')
                        WHEN 'string' THEN d ->> 'fault' <> ''
                        WHEN 'number' THEN (d ->> 'fault')::numeric <> 0
                        WHEN 'boolean' THEN (d -> 'fault')::boolean
                        ELSE false END AS faulted,
                      CASE WHEN jsonb_typeof(d -> 'helpers') = 'number' THEN (d ->> 'helpers')::numeric END AS helpers
                 FROM (SELECT data::jsonb AS d FROM events
                        WHERE site_id = $1 AND type = 'lift.cycle' AND occurred_at >= $2 AND occurred_at < $3
                          AND ($4::text[] IS NULL OR unit_id = ANY($4))) AS e) AS c`,
      [siteId, from, to, units],
    );
    return r ?? { cycles: 0, faults: 0, oneHelper: 0, twoHelper: 0 };
  }

  async firstEventAt(siteId: string): Promise<number | undefined> {
    const [r] = await rows<{ t: number | null }>(
      this.pool,
      "SELECT MIN(occurred_at) AS t FROM events WHERE site_id = $1",
      [siteId],
    );
    return r?.t ?? undefined;
  }

  keptFrom(now: number): number {
    return now - this.retentionDays * DAY_MS;
  }
}
