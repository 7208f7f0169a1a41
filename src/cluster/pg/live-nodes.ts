/**
 * The live gateway nodes, for the ingest consumer's load spread (src/cluster/rabbit-ingest.ts). The
 * liveness test is the partition leases' (pg/leases.ts LIVE_NODES, also staff presence's):
 * `cluster_nodes.heartbeat_at` younger than leaseMs by PostgreSQL's `now()`, and not `leaving`. The
 * heartbeat is the leases' own; this only reads it.
 */
import type pg from "pg";

const LIVE_NODES = `
  SELECT node_id FROM cluster_nodes
   WHERE NOT leaving AND heartbeat_at > now() - $1::int * interval '1 millisecond'
   ORDER BY node_id`;

export async function liveNodes(pool: pg.Pool, leaseMs: number): Promise<string[]> {
  const r = await pool.query<{ node_id: string }>(LIVE_NODES, [leaseMs]);
  return r.rows.map((row) => row.node_id);
}
