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
 *
 * Migration 14 keeps, beside each cursor, the latest audit time (`last_at`, the owner's clock) among
 * the entries written up to it, and indexes the audit by (at, id): after a cut in the feed the writer
 * reads the audit by time, in pages, from a little before `last_at` (src/cluster/alert-series.ts).
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

export const ALERT_SERIES_FILL_MIGRATION: PgMigration = {
  version: 14,
  name: "alert_series_fill",
  sql: `
    ALTER TABLE alert_series_cursors ADD COLUMN last_at BIGINT;  -- newest audit at written up to position
    CREATE INDEX alert_audit_at ON alert_audit (at, id);
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

/** The store's cursors' `last_at`: partition -> the newest audit time written (header), where known. */
export async function readCursorTimes(
  db: pg.Pool | pg.PoolClient,
  store: string,
): Promise<Map<number, number>> {
  const r = await rows<{ partition: number; last_at: number }>(
    db,
    "SELECT partition, last_at FROM alert_series_cursors WHERE store = $1 AND last_at IS NOT NULL",
    [store],
  );
  return new Map(r.map((c) => [c.partition, c.last_at]));
}

/**
 * Moves the store's cursors forward (never back) in one statement, and each one's `last_at` with it
 * where given (never back either: GREATEST ignores a NULL).
 */
export async function advanceCursors(
  db: pg.Pool | pg.PoolClient,
  store: string,
  at: ReadonlyMap<number, number>,
  lastAt: ReadonlyMap<number, number> = new Map(),
): Promise<void> {
  if (at.size === 0) return;
  await db.query(
    `INSERT INTO alert_series_cursors AS c (store, partition, position, last_at)
       SELECT $1, p, n, t FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS a(p, n, t)
     ON CONFLICT (store, partition) DO UPDATE
       SET position = GREATEST(c.position, EXCLUDED.position),
           last_at = GREATEST(c.last_at, EXCLUDED.last_at), updated_at = now()`,
    [store, [...at.keys()], [...at.values()], [...at.keys()].map((p) => lastAt.get(p) ?? null)],
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

/**
 * The audit time of the partition's first transition still in the feed after `position` (renotify
 * entries passed: their `seq` is an earlier transition's), or null when there is none.
 */
export async function firstTransitionAt(
  db: pg.Pool | pg.PoolClient,
  partition: number,
  position: number,
): Promise<number | null> {
  const r = await rows<{ at: number }>(
    db,
    `SELECT au.at FROM change_feed AS f JOIN alert_audit AS au ON au.id = (f.message->>'seq')::bigint
      WHERE f.partition = $1 AND f.position > $2 AND f.message->>'kind' IS DISTINCT FROM 'renotify'
      ORDER BY f.position LIMIT 1`,
    [partition, position],
  );
  return r[0]?.at ?? null;
}

/** Where a page of the audit by time ends: the (at, id) of its last entry. */
export interface AuditMark {
  at: number;
  id: number;
}

/**
 * At most `limit` audit entries with `from <= at <= to`, after `after` in (at, id) order, each with
 * its alert's facts (none for an alert not found): every site's, the caller keeps its partitions'.
 */
export async function auditByTime(
  db: pg.Pool | pg.PoolClient,
  from: number,
  to: number,
  after: AuditMark | null,
  limit: number,
): Promise<{ row: AuditRow; alert: AlertFacts | null }[]> {
  const r = await rows<AuditRow & { type: string | null; room_id: string | null; raised_at: number | null }>(
    db,
    `SELECT au.id, au.alert_id, au.at, au.action, au.site_id, au.unit_id, au.state_after,
            a.type, a.room_id, a.raised_at
       FROM alert_audit AS au LEFT JOIN alerts AS a ON a.id = au.alert_id
      WHERE au.at >= $1 AND au.at <= $2 AND (au.at, au.id) > ($3::bigint, $4::bigint)
      ORDER BY au.at, au.id
      LIMIT $5`,
    [from, to, after?.at ?? Number.MIN_SAFE_INTEGER, after?.id ?? Number.MIN_SAFE_INTEGER, limit],
  );
  return r.map(({ type, room_id, raised_at, ...row }) => ({
    row,
    alert: type === null || raised_at === null ? null : { type, room_id, raised_at },
  }));
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
