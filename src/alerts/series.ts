/**
 * Alert transitions as time-series points: the audit log is an outbox for the sink, so every
 * transition reaches InfluxDB (or the embedded store) once, in order, and a replay overwrites.
 * A cluster writes the same points from PostgreSQL's audit, in the alert change feed's order
 * (src/cluster/alert-series.ts), through `alertPoint`, so the two cannot differ.
 */
import type { Db } from "../store/db.js";
import type { OutboxSource } from "../store/sink.js";
import type { Point } from "../store/timeseries.js";

/** An audit entry as the point needs it. */
export interface AuditRow {
  id: number;
  alert_id: string;
  at: number;
  action: string;
  site_id: string;
  unit_id: string;
  state_after: string;
}

/** What the point needs of the alert: none of it changes after the alert is raised. */
export interface AlertFacts {
  type: string;
  room_id: string | null;
  raised_at: number;
}

export const ALERT_MEASUREMENT = "alert";

/** One transition's point; its identity (tags and time) depends on the audit entry alone. */
export function alertPoint(row: AuditRow, a: AlertFacts): Point {
  return {
    measurement: ALERT_MEASUREMENT,
    tags: {
      site: row.site_id,
      unit: row.unit_id,
      ...(a.room_id ? { room: a.room_id } : {}),
      type: a.type,
      action: row.action,
      state: row.state_after,
    },
    fields: { count: 1, alert_id: row.alert_id, seconds_since_raise: (row.at - a.raised_at) / 1000 },
    ints: ["count"],
    // The audit id in the low digits keeps two transitions in the same millisecond apart.
    timeNs: BigInt(row.at) * 1_000_000n + BigInt(row.id % 1_000_000),
  };
}

export function alertAuditSource(db: Db): OutboxSource<AuditRow> {
  // Type, room and raise time never change after an alert is raised, so the lookup is deterministic.
  const alert = db.prepare("SELECT type, room_id, raised_at FROM alerts WHERE id = ?");
  return {
    name: "alerts",
    table: "alert_audit",
    seqColumn: "id",
    columns: ["id", "alert_id", "at", "action", "site_id", "unit_id", "state_after"],
    map(row): Point | null {
      const a = alert.get(row.alert_id) as AlertFacts | undefined;
      return a ? alertPoint(row, a) : null;
    },
  };
}
