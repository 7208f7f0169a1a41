/**
 * Schema migrations for cluster mode's PostgreSQL state, in the manner of the SQLite ones
 * (src/store/db.ts): numbered, applied in order, each recorded in `schema_migrations`, and a database
 * that has versions this gateway does not know is refused rather than written to.
 *
 * Several gateway nodes start at once against one database: the whole run holds a transaction-level
 * advisory lock, so one node migrates and the others wait and then find nothing left to do. DDL is
 * transactional in PostgreSQL, so a failed migration leaves no half-made table behind.
 */
import type pg from "pg";
import { ALERT_SERIES_FILL_MIGRATION, ALERT_SERIES_MIGRATION } from "./alert-series.js";
import { BASELINES_MIGRATION } from "./baselines.js";
import { CHANGE_FEED_MIGRATION } from "./change-feed.js";
import { ENROLMENT_CLAIMS_MIGRATION } from "./enrolment-claims.js";
import { EVENT_LOG_MIGRATION } from "./event-log.js";
import { LEASES_MIGRATION } from "./leases.js";
import { OWNER_COMMANDS_MIGRATION } from "./owner-commands.js";
import { PARTITION_STATE_MIGRATION } from "./partition-schema.js";
import { PRESENCE_MIGRATION } from "./presence-reads.js";
import { REPLICATION_MIGRATION } from "./replication-log.js";
import { STATE_MIGRATION } from "./schema.js";
import { STAFF_PRESENCE_MIGRATION } from "./staff-presence.js";

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  BASELINES_MIGRATION,
  STATE_MIGRATION,
  LEASES_MIGRATION,
  PARTITION_STATE_MIGRATION,
  CHANGE_FEED_MIGRATION,
  EVENT_LOG_MIGRATION,
  OWNER_COMMANDS_MIGRATION,
  STAFF_PRESENCE_MIGRATION,
  REPLICATION_MIGRATION,
  ENROLMENT_CLAIMS_MIGRATION,
  ALERT_SERIES_MIGRATION,
  PRESENCE_MIGRATION,
  ALERT_SERIES_FILL_MIGRATION,
];

/** The advisory lock's key (first of two int4s) for migrations: "ATA" in ASCII. */
const MIGRATION_LOCK = 0x415441;

export async function migratePg(
  pool: pg.Pool,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1, 0)", [MIGRATION_LOCK]);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    );
    const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
    const applied = new Set(rows.map((r) => r.version));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v)).sort((a, b) => a - b);
    if (unknown.length > 0)
      throw new Error(
        `the PostgreSQL database has schema versions ${unknown.join(", ")} unknown to this ATA Gateway (knows up to ${Math.max(...known)})`,
      );
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
        m.version,
        m.name,
        Date.now(),
      ]);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
