/**
 * Baselines in the main database (table `baselines`, migration 12): append only. A save never
 * updates a row; it adds the next version for its site and unit, with the fingerprint of what was
 * recorded, so a computation can name the exact baseline it used ("home-a v3 9f2c4e1a...").
 */
import { createHash } from "node:crypto";
import type { Db } from "../../store/db.js";
import type { BaselineRepository } from "./repository.js";
import { type Baseline, type BaselineInput, baselineFingerprint, canonicalJson } from "./schema.js";

/** A row of `baselines`, as both databases store it. */
export interface BaselineRow {
  id: number;
  site_id: string;
  unit_id: string | null;
  version: number;
  fingerprint: string;
  recorded_at: number;
  saved_by: string;
  body: string;
}

export function baselineFromRow(row: BaselineRow): Baseline {
  return {
    ...(JSON.parse(row.body) as BaselineInput),
    id: row.id,
    version: row.version,
    fingerprint: row.fingerprint,
    recordedAt: new Date(row.recorded_at).toISOString(),
    savedBy: row.saved_by,
  };
}

export class BaselineStore {
  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  /** Saves `input` (already parsed and checked) as the next version of its site and unit. */
  save(input: BaselineInput, savedBy: string): Baseline {
    const body = canonicalJson(input);
    const fingerprint = baselineFingerprint(input);
    const unit = input.unit ?? null;
    const insert = this.db.transaction(() => {
      const { next } = this.db
        .prepare(
          "SELECT ifnull(max(version), 0) + 1 AS next FROM baselines WHERE site_id = ? AND unit_id IS ?",
        )
        .get(input.site, unit) as { next: number };
      const { lastInsertRowid } = this.db
        .prepare(
          "INSERT INTO baselines (site_id, unit_id, version, fingerprint, recorded_at, saved_by, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .run(input.site, unit, next, fingerprint, this.now(), savedBy, body);
      return Number(lastInsertRowid);
    });
    // IMMEDIATE: two saves at once (the CLI and the API) never pick the same version number.
    return this.get(insert.immediate())!;
  }

  get(id: number): Baseline | undefined {
    const row = this.db.prepare("SELECT * FROM baselines WHERE id = ?").get(id) as BaselineRow | undefined;
    return row ? baselineFromRow(row) : undefined;
  }

  /**
   * A site's versions, newest first. `unit`: that unit's only; `null`: the whole site's only;
   * absent: all of the site's.
   */
  list(site: string, unit?: string | null): Baseline[] {
    const rows = (
      unit === undefined
        ? this.db.prepare("SELECT * FROM baselines WHERE site_id = ? ORDER BY id DESC").all(site)
        : this.db
            .prepare("SELECT * FROM baselines WHERE site_id = ? AND unit_id IS ? ORDER BY id DESC")
            .all(site, unit)
    ) as BaselineRow[];
    return rows.map(baselineFromRow);
  }
}

/**
 * The SQLite store behind the asynchronous repository interface that the PostgreSQL one shares
 * (repository.ts). Every call is one synchronous statement or IMMEDIATE transaction, so concurrent
 * callers in this process are serialised by the event loop and other processes by SQLite's write lock.
 */
export class SqliteBaselineRepository implements BaselineRepository {
  constructor(readonly store: BaselineStore) {}

  async save(input: BaselineInput, savedBy: string): Promise<Baseline> {
    return this.store.save(input, savedBy);
  }

  async get(id: number): Promise<Baseline | undefined> {
    return this.store.get(id);
  }

  async list(site: string, unit?: string | null): Promise<Baseline[]> {
    return this.store.list(site, unit);
  }
}

/**
 * The baselines in force for a site: the newest version of the site's own and of each unit's. A
 * unit's own baseline replaces the site's for that unit.
 */
export function baselinesInForce(store: BaselineStore, site: string): Baseline[] {
  const newest = new Map<string, Baseline>();
  for (const b of store.list(site)) {
    const key = b.unit ?? "";
    if (!newest.has(key)) newest.set(key, b);
  }
  return [...newest.values()].sort((a, b) => ((a.unit ?? "") < (b.unit ?? "") ? -1 : 1));
}

/** The baseline that applies to a unit: its own, else the site's. */
export function baselineForUnit(inForce: readonly Baseline[], unit: string): Baseline | undefined {
  return inForce.find((b) => b.unit === unit) ?? inForce.find((b) => b.unit === undefined);
}

/** How a baseline is named on every figure computed with it: "v3+9f2c4e1a", a unit's "nord:v1+...". */
export function baselineLabel(b: Baseline): string {
  return `${b.unit !== undefined ? `${b.unit}:` : ""}v${b.version}+${b.fingerprint.slice(0, 8)}`;
}

/**
 * The `baseline` tag of a site's realised points: the one baseline's label, or, when units have
 * their own, "set+" and a fingerprint of all their labels. Any new version changes it, so the job
 * sees which days were computed against an older baseline.
 */
export function baselineKey(inForce: readonly Baseline[]): string | null {
  if (inForce.length === 0) return null;
  if (inForce.length === 1) return baselineLabel(inForce[0]!);
  const labels = inForce.map(baselineLabel).join(",");
  return `set+${createHash("sha256").update(labels).digest("hex").slice(0, 8)}`;
}

/** Where a resident lives, from the registry's table (for checkBaselineScope). */
export function residentLookup(db: Db): (ref: string) => { site: string; unit: string } | undefined {
  const stmt = db.prepare("SELECT site_id AS site, unit_id AS unit FROM residents WHERE ref = ?");
  return (ref) => stmt.get(ref) as { site: string; unit: string } | undefined;
}
