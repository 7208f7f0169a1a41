/**
 * What the cluster's alert time series (src/cluster/alert-series.ts) keeps in PostgreSQL: a cursor
 * per time-series store and partition into the alert change feed, the last feed position whose
 * points that store has accepted. A node that becomes the writer resumes from it.
 *
 * The cursor only moves forward (`GREATEST`): a writer that lost its lock without noticing yet may
 * still be finishing a batch behind the new writer, and must not move the cursor back (its points
 * are the same points, so what it writes is harmless). The one exception is a cursor past the feed's
 * head (a database restored from a backup), which is set back to the head on purpose (`setCursor`).
 *
 * The points themselves are made from `alert_audit` and `alerts`, the rows the feed's entries were
 * appended with in the same fenced transaction, so an entry that is visible has its audit row.
 */
import type pg from "pg";
import type { AlertFacts, AuditRow } from "../../alerts/series.js";
import type { PgMigration } from "./migrate.js";
import { rows } from "./partition-schema.js";

export const ALERT_SERIES_MIGRATION: PgMigration = {
  version: 12,
  name: "alert_series_cursors",
  sql: `
    CREATE TABLE alert_series_cursors (
      store TEXT NOT NULL,                 -- the sink's store id: embedded, influx:<url>/<database>
      partition INTEGER NOT NULL CHECK (partition >= 0),
      position BIGINT NOT NULL CHECK (position >= 0),   -- the change feed's, written to the store
      updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      PRIMARY KEY (store, partition)
    );
  `,
};

/** The store's cursors: partition -> the last feed position written to it. */
export async function readCursors(db: pg.Pool | pg.PoolClient, store: string): Promise<Map<number, number>> {
  const r = await rows<{ partition: number; position: number }>(
    db,
    "SELECT partition, position FROM alert_series_cursors WHERE store = $1",
    [store],
  );
  return new Map(r.map((c) => [c.partition, c.position]));
}

/** Moves the store's cursors forward (never back) in one statement. */
export async function advanceCursors(
  db: pg.Pool | pg.PoolClient,
  store: string,
  at: ReadonlyMap<number, number>,
): Promise<void> {
  if (at.size === 0) return;
  await db.query(
    `INSERT INTO alert_series_cursors AS c (store, partition, position)
       SELECT $1, p, n FROM unnest($2::int[], $3::bigint[]) AS a(p, n)
     ON CONFLICT (store, partition) DO UPDATE
       SET position = GREATEST(c.position, EXCLUDED.position), updated_at = now()`,
    [store, [...at.keys()], [...at.values()]],
  );
}

/** Sets one cursor as given, also backwards: a position past the feed's head (header). */
export async function setCursor(
  db: pg.Pool | pg.PoolClient,
  store: string,
  partition: number,
  position: number,
): Promise<void> {
  await db.query(
    `INSERT INTO alert_series_cursors (store, partition, position) VALUES ($1, $2, $3)
     ON CONFLICT (store, partition) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`,
    [store, partition, position],
  );
}

/**
 * Feed entries the store has not had yet, over every partition: each partition's head less its
 * cursor (entries pruned before they were written included, and renotify entries, which make no
 * point).
 */
export async function seriesBacklog(db: pg.Pool, store: string): Promise<number> {
  const r = await rows<{ backlog: number }>(
    db,
    `SELECT coalesce(sum(GREATEST(h.head - coalesce(c.position, 0), 0)), 0)::bigint AS backlog
       FROM change_feed_heads AS h
       LEFT JOIN alert_series_cursors AS c ON c.store = $1 AND c.partition = h.partition`,
    [store],
  );
  return r[0]?.backlog ?? 0;
}

/** The audit entries with these ids, each with its alert's facts (none for an alert not found). */
export async function auditWithAlerts(
  db: pg.Pool | pg.PoolClient,
  ids: readonly number[],
): Promise<{ row: AuditRow; alert: AlertFacts | null }[]> {
  if (ids.length === 0) return [];
  const r = await rows<AuditRow & { type: string | null; room_id: string | null; raised_at: number | null }>(
    db,
    `SELECT au.id, au.alert_id, au.at, au.action, au.site_id, au.unit_id, au.state_after,
            a.type, a.room_id, a.raised_at
       FROM alert_audit AS au LEFT JOIN alerts AS a ON a.id = au.alert_id
      WHERE au.id = ANY($1::bigint[])
      ORDER BY au.id`,
    [ids],
  );
  return r.map(({ type, room_id, raised_at, ...row }) => ({
    row,
    alert: type === null || raised_at === null ? null : { type, room_id, raised_at },
  }));
}
