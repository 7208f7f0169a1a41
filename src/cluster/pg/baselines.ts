/**
 * Baselines in PostgreSQL (cluster mode): the same append-only versions as the SQLite store
 * (src/reports/baseline/store.ts, migration 12), behind the same BaselineRepository interface and
 * passing the same contract suite.
 *
 * Version assignment under concurrency: each save is one transaction that first takes a
 * transaction-level advisory lock keyed by site and unit (`pg_advisory_xact_lock`), then inserts
 * max(version) + 1. Under READ COMMITTED each statement takes a fresh snapshot, so the INSERT sees
 * every save that committed before the lock was granted. Chosen over `SELECT ... FOR UPDATE` on a
 * per-site+unit counter row because it needs no second table that must be kept equal to `baselines`
 * (and carried through an export/import), a site's first save has no row to lock yet, and the lock
 * goes with the commit or rollback on its own. Saves for other units do not wait (a hash collision of
 * two keys only makes them wait for each other). The unique index on (site, unit, version) is the
 * backstop: were the lock ever bypassed, a duplicate version fails instead of being stored.
 */
import type pg from "pg";
import type { BaselineRepository } from "../../reports/baseline/repository.js";
import {
  type Baseline,
  type BaselineInput,
  baselineFingerprint,
  canonicalJson,
} from "../../reports/baseline/schema.js";
import { type BaselineRow, baselineFromRow } from "../../reports/baseline/store.js";

export const BASELINES_MIGRATION = {
  version: 1,
  name: "baselines",
  sql: `
    -- Mirrors SQLite's migration 12: every save a new version, never changed.
    CREATE TABLE baselines (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      site_id TEXT NOT NULL,
      unit_id TEXT,                      -- NULL: the whole site
      version INTEGER NOT NULL,          -- 1, 2, 3... per site and unit
      fingerprint TEXT NOT NULL,         -- sha256 hex of body
      recorded_at BIGINT NOT NULL,       -- ms since the epoch, as in SQLite
      saved_by TEXT NOT NULL,
      body TEXT NOT NULL                 -- canonical JSON, byte for byte what the fingerprint is of
    );
    CREATE UNIQUE INDEX baselines_version ON baselines (site_id, COALESCE(unit_id, ''), version);
    CREATE FUNCTION baselines_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'baselines are append-only: save a new version' USING ERRCODE = 'restrict_violation';
      END
    $$;
    CREATE TRIGGER baselines_no_change BEFORE UPDATE OR DELETE ON baselines
      FOR EACH ROW EXECUTE FUNCTION baselines_append_only();
    CREATE TRIGGER baselines_no_truncate BEFORE TRUNCATE ON baselines
      FOR EACH STATEMENT EXECUTE FUNCTION baselines_append_only();
  `,
};

/** The advisory lock's first key for baseline saves (the second is a hash of site and unit). */
const SAVE_LOCK = 0x0ba5e1;

interface PgRow extends Omit<BaselineRow, "id" | "recorded_at"> {
  id: string; // BIGINT comes back as text from node-postgres
  recorded_at: string;
}

const fromPg = (row: PgRow): Baseline =>
  baselineFromRow({ ...row, id: Number(row.id), recorded_at: Number(row.recorded_at) });

export class PgBaselineRepository implements BaselineRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number = Date.now,
  ) {}

  async save(input: BaselineInput, savedBy: string): Promise<Baseline> {
    const unit = input.unit ?? null;
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text || '/' || COALESCE($3::text, '')))",
        [SAVE_LOCK, input.site, unit],
      );
      const { rows } = await client.query<PgRow>(
        `INSERT INTO baselines (site_id, unit_id, version, fingerprint, recorded_at, saved_by, body)
         SELECT $1::text, $2::text, COALESCE(max(version), 0) + 1, $3::text, $4::bigint, $5::text, $6::text
           FROM baselines WHERE site_id = $1::text AND COALESCE(unit_id, '') = COALESCE($2::text, '')
         RETURNING *`,
        [input.site, unit, baselineFingerprint(input), this.now(), savedBy, canonicalJson(input)],
      );
      await client.query("COMMIT");
      return fromPg(rows[0]!);
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async get(id: number): Promise<Baseline | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const { rows } = await this.pool.query<PgRow>("SELECT * FROM baselines WHERE id = $1", [id]);
    return rows[0] ? fromPg(rows[0]) : undefined;
  }

  async list(site: string, unit?: string | null): Promise<Baseline[]> {
    const { rows } =
      unit === undefined
        ? await this.pool.query<PgRow>("SELECT * FROM baselines WHERE site_id = $1 ORDER BY id DESC", [site])
        : await this.pool.query<PgRow>(
            "SELECT * FROM baselines WHERE site_id = $1 AND unit_id IS NOT DISTINCT FROM $2::text ORDER BY id DESC",
            [site, unit],
          );
    return rows.map(fromPg);
  }
}
