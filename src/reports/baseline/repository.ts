/**
 * Where baselines are kept: the main SQLite database in one process (`SqliteBaselineRepository`,
 * store.ts), PostgreSQL in cluster mode (`PgBaselineRepository`, src/cluster/pg/baselines.ts). Both
 * pass one contract suite (test/reports/baseline-repository.contract.ts), so code above this
 * interface sees the same behaviour from either.
 *
 * Asynchronous because PostgreSQL is; the SQLite store keeps its synchronous methods for the
 * callers that run inside a synchronous computation (the time-saved job, the benefits account).
 */
import type { Baseline, BaselineInput } from "./schema.js";

export interface BaselineRepository {
  /**
   * Saves `input` (already parsed and checked) as the next version of its site and unit (site-wide
   * and each unit counted apart). Atomic: two saves at once, from any number of connections or
   * gateway nodes, never get the same version, and no version is skipped.
   */
  save(input: BaselineInput, savedBy: string): Promise<Baseline>;
  /** One saved version by its id; undefined for an id never saved. */
  get(id: number): Promise<Baseline | undefined>;
  /**
   * A site's versions, newest first. `unit`: that unit's only; `null`: the whole site's only;
   * absent: all of the site's.
   */
  list(site: string, unit?: string | null): Promise<Baseline[]>;
}
