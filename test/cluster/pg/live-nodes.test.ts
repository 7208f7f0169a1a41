/**
 * The live gateway nodes the ingest load spread hashes queues over (src/cluster/pg/live-nodes.ts):
 * the leases' liveness test, on a real PostgreSQL.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { liveNodes } from "../../../src/cluster/pg/live-nodes.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";

const pgdb = pgTestDatabases("live_nodes");

describe("liveNodes", () => {
  it("names the nodes whose heartbeat is younger than leaseMs and that are not leaving, sorted", async () => {
    const pool = new pg.Pool({ connectionString: await pgdb.fresh(), max: 1 });
    pgdb.cleanup(() => pool.end());
    await pool.query(`
      INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at, leaving) VALUES
        ('gw-b', now(), now(), false),
        ('gw-a', now(), now() - interval '2 seconds', false),
        ('gw-stale', now(), now() - interval '11 seconds', false),
        ('gw-leaving', now(), now(), true)`);
    expect(await liveNodes(pool, 10_000)).toEqual(["gw-a", "gw-b"]);
    expect(await liveNodes(pool, 1_000)).toEqual(["gw-b"]);
  });
});
