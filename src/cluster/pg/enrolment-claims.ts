/**
 * One enrolment code redeemed once across a cluster (src/staff/enrolment.ts `redeem`).
 *
 * `staff_enrolments` is a replicated table: each node's SQLite takes its own writes and PostgreSQL's
 * log orders them after the fact, the last commit winning. Two nodes redeeming one code at the same
 * moment would each see it unused in their own SQLite and each issue a token. So on a cluster the
 * redemption first claims the enrolment here, with a unique insert keyed by its id, and only the
 * node whose insert went in issues the token.
 *
 * A table of its own rather than a conditional update of PostgreSQL's `staff_enrolments` row: that
 * row is written by the replication's upserts (a node's whole row as it holds it), and exists only
 * once its creating node has shipped it; a claim there could be overwritten, or find nothing to
 * claim. The claims table is written by this module only.
 *
 * One row per redeemed code (an enrolled phone): it is kept, as the record of which node took it.
 */
import type pg from "pg";
import { ClaimUnavailableError } from "../../staff/enrolment.js";
import type { PgMigration } from "./migrate.js";

export const ENROLMENT_CLAIMS_MIGRATION: PgMigration = {
  version: 10,
  name: "enrolment claims",
  sql: `
    CREATE TABLE enrolment_claims (
      enrolment_id TEXT PRIMARY KEY,
      node_id TEXT NOT NULL,
      claimed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    );
  `,
};

/** How long a claim may take before the redemption is refused as unavailable (default). */
export const CLAIM_TIMEOUT_MS = 5_000;

/**
 * Claim `enrolmentId` for `nodeId`: true for the one caller whose insert went in, false for every
 * other, ever. Throws ClaimUnavailableError when PostgreSQL does not answer within `timeoutMs`.
 * A claim that commits after the timeout has fired consumes the code without a token: the safe
 * side (the person asks for a new code), never a second token.
 */
export async function claimEnrolment(
  pool: pg.Pool,
  enrolmentId: string,
  nodeId: string,
  timeoutMs = CLAIM_TIMEOUT_MS,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const { rowCount } = await Promise.race([
      pool.query(
        "INSERT INTO enrolment_claims (enrolment_id, node_id) VALUES ($1, $2) ON CONFLICT (enrolment_id) DO NOTHING",
        [enrolmentId, nodeId],
      ),
      timeout,
    ]);
    return rowCount === 1;
  } catch (err) {
    throw new ClaimUnavailableError(
      `the enrolment claim did not reach PostgreSQL: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    clearTimeout(timer);
  }
}
