/**
 * What the time-saved job and the quality report read of the event log, behind one interface: a
 * single process reads its SQLite (`SqliteEventReads`), a cluster node PostgreSQL's shared log, which
 * holds every node's ingest (src/cluster/pg/event-reads.ts); a node's own SQLite holds only what it
 * ingested. One contract suite holds both (test/reports/event-reads.contract.ts).
 *
 * Ranges are half-open on occurred_at, [from, to), of one site. Times are epoch milliseconds.
 */
import { type Db, NOT_HEARTBEAT } from "../store/db.js";

/** An event as the time-saved computation reads it; `data` is the logged JSON text, as stored. */
export interface TypedEvent {
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  at: number;
  data: string;
}

/** A range's lift cycles, counted as the time-saved computation counts them. */
export interface LiftCycleCounts {
  cycles: number;
  /** With a fault (any non-empty value): neither a one- nor a two-helper transfer. */
  faults: number;
  oneHelper: number;
  twoHelper: number;
}

export interface EventReads {
  /**
   * The site's events of one type (never heartbeats) that occurred in [from, to), ordered by
   * occurred_at, ties by the row's seq (the order the log took them in).
   */
  eventsOfType(siteId: string, type: string, from: number, to: number): Promise<TypedEvent[]>;
  /**
   * The site's `lift.cycle` events that occurred in [from, to), of the given units (null: every
   * unit), counted by their `fault` and `helpers`.
   */
  liftCycleCounts(
    siteId: string,
    from: number,
    to: number,
    units: readonly string[] | null,
  ): Promise<LiftCycleCounts>;
  /** When the site's earliest logged event (heartbeats included) occurred; undefined for none. */
  firstEventAt(siteId: string): Promise<number | undefined>;
  /**
   * The earliest instant from which the log is complete at `now`: SQLite keeps everything
   * (-Infinity); PostgreSQL's shared log is pruned after its retention.
   */
  keptFrom(now: number): number;
}

export class SqliteEventReads implements EventReads {
  private typeStatement: import("better-sqlite3").Statement | undefined;
  private firstStatement: import("better-sqlite3").Statement | undefined;

  constructor(private readonly db: Db) {}

  async eventsOfType(siteId: string, type: string, from: number, to: number): Promise<TypedEvent[]> {
    return this.eventsOfTypeNow(siteId, type, from, to);
  }

  /**
   * eventsOfType without a promise, for computeDay, which is synchronous over SQLite. Only events of
   * devices registered to the site are read: the join is what gives the planner its outer loop.
   */
  eventsOfTypeNow(siteId: string, type: string, from: number, to: number): TypedEvent[] {
    // Devices of the site as the outer loop, each one seek on events(device_id, type, occurred_at);
    // the unary + keeps the planner off events(site_id, occurred_at), which would walk every
    // heartbeat of the site in the range.
    this.typeStatement ??= this.db.prepare(
      `SELECT e.unit_id, e.room_id, e.resident_ref, e.occurred_at AS at, e.data
       FROM devices d CROSS JOIN events e ON e.device_id = d.id
       WHERE d.site_id = ? AND e.type = ? AND e.${NOT_HEARTBEAT} AND +e.site_id = ? AND e.occurred_at >= ? AND e.occurred_at < ?
       ORDER BY e.occurred_at, e.seq`,
    );
    return this.typeStatement.all(siteId, type, siteId, from, to) as TypedEvent[];
  }

  async liftCycleCounts(
    siteId: string,
    from: number,
    to: number,
    units: readonly string[] | null,
  ): Promise<LiftCycleCounts> {
    // Through the site's devices, as eventsOfTypeNow reads them: a seek per device on the
    // device/type/time index (partial, hence NOT_HEARTBEAT), not a scan of every heartbeat of a long
    // range. A fault is any non-empty value.
    const unitOfEvent = units ? ` AND +e.unit_id IN (${units.map(() => "?").join(", ")})` : "";
    return this.db
      .prepare(
        `SELECT COUNT(*) AS cycles,
           COALESCE(SUM(faulted), 0) AS faults,
           COALESCE(SUM(NOT faulted AND helpers = 1), 0) AS oneHelper,
           COALESCE(SUM(NOT faulted AND helpers >= 2), 0) AS twoHelper
         FROM (SELECT COALESCE(json_extract(e.data, '$.fault'), '') NOT IN ('', 0) AS faulted,
                 json_extract(e.data, '$.helpers') AS helpers
               FROM devices d CROSS JOIN events e ON e.device_id = d.id
               WHERE d.site_id = ? AND e.type = 'lift.cycle' AND e.${NOT_HEARTBEAT} AND +e.site_id = ?
                 AND e.occurred_at >= ? AND e.occurred_at < ?${unitOfEvent})`,
      )
      .get(siteId, siteId, from, to, ...(units ?? [])) as LiftCycleCounts;
  }

  async firstEventAt(siteId: string): Promise<number | undefined> {
    this.firstStatement ??= this.db.prepare("SELECT MIN(occurred_at) AS t FROM events WHERE site_id = ?");
    const r = this.firstStatement.get(siteId) as { t: number | null };
    return r.t ?? undefined;
  }

  keptFrom(): number {
    return Number.NEGATIVE_INFINITY;
  }
}

const sqliteReads = new WeakMap<Db, SqliteEventReads>();

/** The SQLite reads of a database (one per database, so its statements are prepared once). */
export function sqliteEventReads(db: Db): SqliteEventReads {
  let r = sqliteReads.get(db);
  if (!r) {
    r = new SqliteEventReads(db);
    sqliteReads.set(db, r);
  }
  return r;
}

/** The context's event reads, or its SQLite's. */
export function eventReadsOf(ctx: { db: Db; eventReads?: EventReads }): EventReads {
  return ctx.eventReads ?? sqliteEventReads(ctx.db);
}
