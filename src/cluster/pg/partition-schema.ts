/**
 * What a partition's owner needs of PostgreSQL beyond SQLite's tables (migration 4), and how its
 * rows are read.
 *
 * - `ata_partition_of(site_id, partitions)`: src/cluster/partitions.ts's hash in SQL (the first four
 *   bytes of the SHA-256 of the site id's UTF-8, unsigned big-endian, modulo the count), so a load
 *   selects a partition's alerts and maintenance windows by their site without a column to fill. A
 *   test pins it to `partitionOf`.
 * - `timers.partition`: a timer row has no site. The owner writes its partition; a timer carried
 *   from a single process by the export has none (NULL) and is adopted by the first owner whose
 *   partition its alert (`payload.alertId`) or its event (`payload.eventSeq`, an absence window) is
 *   in. The export copies SQLite's columns only, so it leaves the column NULL.
 * - `partition_state`: one row per partition, the rules' cursor (SQLite has one row, `rules:events`
 *   in `cursors`) and the greatest audit id the partition wrote (its `head()`). A partition without a
 *   row starts from the single process's cursor, if the export carried one, and its audit's maximum.
 *
 * Ids: audit and attempt ids are drawn from the tables' own identity sequences, which the export
 * sets past the copied ids, in blocks (unit-of-work.ts `IdBlocks`).
 */
import pg from "pg";
import type { PgMigration } from "./migrate.js";

export const PARTITION_STATE_MIGRATION: PgMigration = {
  version: 4,
  name: "partition_state",
  sql: `
    CREATE FUNCTION ata_partition_of(site_id TEXT, partitions INTEGER) RETURNS INTEGER
      LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT (('x' || encode(substring(sha256(convert_to(site_id, 'UTF8')) FROM 1 FOR 4), 'hex'))::bit(32)::bigint
                % partitions)::integer
      $$;
    ALTER TABLE timers ADD COLUMN partition INTEGER CHECK (partition >= 0);
    CREATE INDEX timers_partition ON timers (partition);
    CREATE TABLE partition_state (
      partition INTEGER PRIMARY KEY CHECK (partition >= 0),
      rules_position BIGINT NOT NULL,
      rules_updated_at BIGINT NOT NULL,
      audit_head BIGINT NOT NULL
    );
  `,
};

/** BIGINT as a JavaScript number (every BIGINT here is a time in ms, an id or a count: safe integers). */
const INT8 = 20;
export const NUMBERS: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8 && format !== "binary"
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

/** Runs one statement with BIGINTs read as numbers. */
export async function rows<R extends pg.QueryResultRow>(
  c: pg.Pool | pg.PoolClient,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  return (await c.query<R>({ text, values, types: NUMBERS })).rows;
}

/** The alerts' columns a flush writes again on conflict (all but the key). */
export const ALERT_COLUMNS = [
  "dedupe_key",
  "open",
  "type",
  "priority",
  "state",
  "message_da",
  "message_en",
  "rule_id",
  "site_id",
  "unit_id",
  "room_id",
  "resident_ref",
  "device_id",
  "count",
  "first_event_seq",
  "last_event_seq",
  "last_event_type",
  "raised_at",
  "updated_at",
  "accepted_by",
  "accepted_by_name",
  "accepted_at",
  "attending_at",
  "resolved_at",
  "outcome",
  "level",
  "undelivered",
  "delivered_to",
  "rejected_by",
  "ladder",
] as const;

export const ATTEMPT_COLUMNS = [
  "alert_id",
  "channel",
  "recipient_id",
  "recipient_name",
  "staff_id",
  "level",
  "reason",
  "status",
  "tries",
  "created_at",
  "updated_at",
  "detail",
] as const;

/** `INSERT ... SELECT` from a JSON array of rows, replacing `columns` of a row that exists. */
export function upsertJson(table: string, key: string, columns: readonly string[] | null): string {
  const conflict = columns
    ? ` ON CONFLICT (${key}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(", ")}`
    : "";
  return `INSERT INTO ${table} SELECT * FROM json_populate_recordset(NULL::${table}, $1::json)${conflict}`;
}
