/**
 * What the reports and the time-saved job read of alerts and their audit, behind one interface: a
 * single process reads its SQLite (`SqliteAlertReads`), a cluster node PostgreSQL, where its
 * partitions' owners keep alerts (src/cluster/pg/alert-reads.ts). One contract suite holds both
 * (test/reports/alert-reads.contract.ts).
 *
 * Every range is half-open on raised_at, [from, to), of one site; `units` null means every unit.
 * Times are epoch milliseconds.
 */
import type { Db } from "../store/db.js";
import { Slicer } from "../util/slicer.js";

export interface AlertRange {
  siteId: string;
  from: number;
  to: number;
  /** Only alerts of these units; null: every unit of the site. */
  units: readonly string[] | null;
}

/** An alert as the paged reports read it. */
export interface ReportAlert {
  site_id: string;
  unit_id: string;
  room_id: string | null;
  device_id: string;
  type: string;
  priority: string;
  state: string;
  open: number;
  outcome: string | null;
  raised_at: number;
  accepted_at: number | null;
  attending_at: number | null;
  resolved_at: number | null;
}

/** What a report may ask for besides the alert's own columns (each costs a lookup per alert). */
export interface AlertExtras {
  /** The alerting device's profile (null when the device is no longer registered). */
  profile?: boolean;
  /** When the alert's first event occurred (null when that event is not in the log any more). */
  firstEventAt?: boolean;
}

export type ReportAlertWith = ReportAlert & { profile?: string | null; first_event_at?: number | null };

/** Alerts per (unit, type, priority, bucket of raised_at integer-divided by bucketMs). */
export interface VolumeRow {
  unit_id: string;
  type: string;
  priority: string;
  q: number;
  n: number;
}

/** An alert as the time-saved computation reads it: with who resolved it (the last resolve in its audit). */
export interface DayAlert {
  id: string;
  type: string;
  priority: string;
  state: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  raised_at: number;
  accepted_at: number | null;
  attending_at: number | null;
  resolved_at: number | null;
  outcome: string | null;
  resolved_by: string | null;
}

export interface AlertReads {
  /** The range's alerts in raised_at order (ties in insertion order), read page by page. */
  alerts(range: AlertRange, extras?: AlertExtras): AsyncIterable<ReportAlertWith>;
  /** Counts per unit, type, priority and raised_at bucket; in no particular order. */
  volume(range: AlertRange, bucketMs: number): Promise<VolumeRow[]>;
  /** Raise times of care alerts (high, medium) in the range, ascending. */
  careRaisedAt(range: AlertRange): Promise<number[]>;
  /** Every unit's alerts of the range with who resolved them, in raised_at order. */
  dayAlerts(siteId: string, from: number, to: number): Promise<DayAlert[]>;
  /** The site's earliest raise, or undefined for a site without alerts. */
  firstRaisedAt(siteId: string): Promise<number | undefined>;
}

/** Rows per page of alerts(): a page is about a millisecond of SQLite and JavaScript. */
export const ALERT_PAGE = 1000;

const COLUMNS =
  "site_id, unit_id, room_id, device_id, type, priority, state, open, outcome, raised_at, accepted_at, attending_at, resolved_at";

const DAY_ALERTS = `SELECT id, type, priority, state, unit_id, room_id, resident_ref, raised_at, accepted_at, attending_at,
    resolved_at, outcome,
    (SELECT actor_id FROM alert_audit au WHERE au.alert_id = a.id AND au.action = 'resolved'
     ORDER BY au.id DESC LIMIT 1) AS resolved_by
  FROM alerts a WHERE site_id = ? AND raised_at >= ? AND raised_at < ? ORDER BY raised_at`;

function unitsSql(units: readonly string[] | null): string {
  return units ? ` AND unit_id IN (${units.map(() => "?").join(", ")})` : "";
}

export class SqliteAlertReads implements AlertReads {
  private dayStatement: import("better-sqlite3").Statement | undefined;

  constructor(private readonly db: Db) {}

  /**
   * Keyset on raised_at and rowid, which the alerts_site_time index serves, handing the event loop
   * back between pages when a slice is used up: a year of a large site's alerts is not read in one
   * piece while falls are waiting. No statement stays open across a pause.
   */
  async *alerts(r: AlertRange, extras: AlertExtras = {}): AsyncGenerator<ReportAlertWith> {
    let columns = COLUMNS;
    if (extras.profile)
      columns += ", (SELECT profile FROM devices d WHERE d.id = alerts.device_id) AS profile";
    if (extras.firstEventAt)
      columns +=
        ", (SELECT occurred_at FROM events e WHERE e.seq = alerts.first_event_seq) AS first_event_at";
    const page = this.db.prepare(
      `SELECT raised_at AS _at, rowid AS _rid, ${columns} FROM alerts
        WHERE site_id = ? AND raised_at >= ? AND raised_at < ?${unitsSql(r.units)}
          AND (raised_at > ? OR (raised_at = ? AND rowid > ?)) ORDER BY raised_at, rowid LIMIT ${ALERT_PAGE}`,
    );
    const slicer = new Slicer();
    let at = Number.NEGATIVE_INFINITY;
    let rid = 0;
    for (;;) {
      const rows = page.all(r.siteId, r.from, r.to, ...(r.units ?? []), at, at, rid) as (ReportAlertWith & {
        _at?: number;
        _rid?: number;
      })[];
      const last = rows[rows.length - 1];
      for (const row of rows) {
        const { _at, _rid, ...alert } = row;
        yield alert;
      }
      if (!last || rows.length < ALERT_PAGE) return;
      at = last._at!;
      rid = last._rid!;
      await slicer.pause();
    }
  }

  async volume(r: AlertRange, bucketMs: number): Promise<VolumeRow[]> {
    return this.db
      .prepare(
        `SELECT unit_id, type, priority, raised_at / ${Math.trunc(bucketMs)} AS q, COUNT(*) AS n FROM alerts
          WHERE site_id = ? AND raised_at >= ? AND raised_at < ?${unitsSql(r.units)}
          GROUP BY unit_id, type, priority, q`,
      )
      .all(r.siteId, r.from, r.to, ...(r.units ?? [])) as VolumeRow[];
  }

  async careRaisedAt(r: AlertRange): Promise<number[]> {
    return this.db
      .prepare(
        `SELECT raised_at FROM alerts WHERE site_id = ? AND raised_at >= ? AND raised_at < ?
           AND priority IN ('high', 'medium')${unitsSql(r.units)} ORDER BY raised_at`,
      )
      .pluck()
      .all(r.siteId, r.from, r.to, ...(r.units ?? [])) as number[];
  }

  async dayAlerts(siteId: string, from: number, to: number): Promise<DayAlert[]> {
    return this.dayAlertsNow(siteId, from, to);
  }

  /** dayAlerts without a promise, for computeDay, which is synchronous over SQLite. */
  dayAlertsNow(siteId: string, from: number, to: number): DayAlert[] {
    this.dayStatement ??= this.db.prepare(DAY_ALERTS);
    return this.dayStatement.all(siteId, from, to) as DayAlert[];
  }

  async firstRaisedAt(siteId: string): Promise<number | undefined> {
    const a = this.db.prepare("SELECT MIN(raised_at) AS t FROM alerts WHERE site_id = ?").get(siteId) as {
      t: number | null;
    };
    return a.t ?? undefined;
  }
}

const sqliteReads = new WeakMap<Db, SqliteAlertReads>();

/** The SQLite reads of a database (one per database, so its statements are prepared once). */
export function sqliteAlertReads(db: Db): SqliteAlertReads {
  let r = sqliteReads.get(db);
  if (!r) {
    r = new SqliteAlertReads(db);
    sqliteReads.set(db, r);
  }
  return r;
}

/** The context's alert reads, or its SQLite's. */
export function alertReadsOf(ctx: { db: Db; alertReads?: AlertReads }): AlertReads {
  return ctx.alertReads ?? sqliteAlertReads(ctx.db);
}
