/**
 * What the reports and the time-saved job read of alerts (`AlertReads`, src/reports/alert-reads.ts)
 * on PostgreSQL, where a cluster's partition owners keep alerts and their audit: a cluster node's
 * SQLite has none. The same queries as SQLite's, with the same half-open ranges; BIGINTs come back as
 * numbers. Read with queries of any node, not from an owner's working set: what an owner stepped is
 * seen here once flushed.
 *
 * Two differences, both outside what a report's figures depend on:
 * - alerts raised at the same millisecond come in id order (SQLite: insertion order), the keyset of
 *   the pages being (raised_at, id);
 * - an alert's first event is found in the shared event log by the alert's partition and the log
 *   position the owner named it by (`first_event_seq`); past the log's retention
 *   (`eventRetentionDays`) it is gone, and the alert's `first_event_at` is null, as in SQLite for an
 *   event that is not in the log.
 */
import type pg from "pg";
import {
  ALERT_PAGE,
  type AlertExtras,
  type AlertRange,
  type AlertReads,
  type DayAlert,
  type ReportAlertWith,
  type VolumeRow,
} from "../../reports/alert-reads.js";
import { Slicer } from "../../util/slicer.js";
import { rows } from "./partition-schema.js";

const COLUMNS =
  "site_id, unit_id, room_id, device_id, type, priority, state, open, outcome, raised_at, accepted_at, attending_at, resolved_at";

export class PgAlertReads implements AlertReads {
  /** `partitions`: the cluster's partition count, which placed each site's events in the log. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly partitions: number,
  ) {}

  async *alerts(r: AlertRange, extras: AlertExtras = {}): AsyncGenerator<ReportAlertWith> {
    const args: unknown[] = [r.siteId, r.from, r.to];
    const param = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    let columns = COLUMNS;
    if (extras.profile) columns += ", (SELECT profile FROM devices d WHERE d.id = a.device_id) AS profile";
    if (extras.firstEventAt)
      columns += `, (SELECT occurred_at FROM events e
          WHERE e.partition = ata_partition_of(a.site_id, ${param(this.partitions)}) AND e.position = a.first_event_seq)
          AS first_event_at`;
    const units = r.units ? ` AND unit_id = ANY(${param(r.units)}::text[])` : "";
    const at = args.length + 1;
    const sql = `SELECT ${columns}, id AS _id FROM alerts a
      WHERE site_id = $1 AND raised_at >= $2 AND raised_at < $3${units}
        AND (raised_at > $${at} OR (raised_at = $${at} AND id > $${at + 1}))
      ORDER BY raised_at, id LIMIT ${ALERT_PAGE}`;
    const slicer = new Slicer();
    // Before every raise in the range: raised_at is a BIGINT, so -infinity is not a value to bind.
    let lastAt = r.from - 1;
    let lastId = "";
    for (;;) {
      const page = await rows<ReportAlertWith & { _id: string }>(this.pool, sql, [...args, lastAt, lastId]);
      for (const row of page) {
        const { _id, ...alert } = row;
        yield alert;
      }
      const last = page[page.length - 1];
      if (!last || page.length < ALERT_PAGE) return;
      lastAt = last.raised_at;
      lastId = last._id;
      await slicer.pause();
    }
  }

  async volume(r: AlertRange, bucketMs: number): Promise<VolumeRow[]> {
    const units = r.units ? " AND unit_id = ANY($5::text[])" : "";
    return rows<VolumeRow>(
      this.pool,
      `SELECT unit_id, type, priority, raised_at / $4::bigint AS q, COUNT(*) AS n FROM alerts
        WHERE site_id = $1 AND raised_at >= $2 AND raised_at < $3${units}
        GROUP BY unit_id, type, priority, q`,
      [r.siteId, r.from, r.to, Math.trunc(bucketMs), ...(r.units ? [r.units] : [])],
    );
  }

  async careRaisedAt(r: AlertRange): Promise<number[]> {
    const units = r.units ? " AND unit_id = ANY($4::text[])" : "";
    const found = await rows<{ raised_at: number }>(
      this.pool,
      `SELECT raised_at FROM alerts WHERE site_id = $1 AND raised_at >= $2 AND raised_at < $3
         AND priority IN ('high', 'medium')${units} ORDER BY raised_at`,
      [r.siteId, r.from, r.to, ...(r.units ? [r.units] : [])],
    );
    return found.map((x) => x.raised_at);
  }

  async dayAlerts(siteId: string, from: number, to: number): Promise<DayAlert[]> {
    return rows<DayAlert>(
      this.pool,
      `SELECT id, type, priority, state, unit_id, room_id, resident_ref, raised_at, accepted_at, attending_at,
         resolved_at, outcome,
         (SELECT actor_id FROM alert_audit au WHERE au.alert_id = a.id AND au.action = 'resolved'
          ORDER BY au.id DESC LIMIT 1) AS resolved_by
       FROM alerts a WHERE site_id = $1 AND raised_at >= $2 AND raised_at < $3 ORDER BY raised_at, id`,
      [siteId, from, to],
    );
  }

  async firstRaisedAt(siteId: string): Promise<number | undefined> {
    const [r] = await rows<{ t: number | null }>(
      this.pool,
      "SELECT MIN(raised_at) AS t FROM alerts WHERE site_id = $1",
      [siteId],
    );
    return r?.t ?? undefined;
  }
}
