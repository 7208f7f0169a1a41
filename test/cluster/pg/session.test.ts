/**
 * A pooled connection with a deadline (src/cluster/pg/session.ts), on a real PostgreSQL 15 started
 * by the harness for this file, and against a server that accepts connections and never answers,
 * as a network partition swallowing packets looks to a client.
 */
import { createServer, type Socket } from "node:net";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { session, withDeadline } from "../../../src/cluster/pg/session.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";

const pgdb = pgTestDatabases("session");

function newPool(connectionString: string): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 2 });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

describe("a pooled PostgreSQL connection with a deadline", () => {
  it("gives up on a server that never answers at the deadline, and never runs the work", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    const pool = new pg.Pool({ host: "127.0.0.1", port, user: "x", database: "x", max: 1 });
    pool.on("error", () => undefined);
    let ran = false;
    const t0 = performance.now();
    await expect(
      session(pool, 300, async () => {
        ran = true;
      }),
    ).rejects.toThrow("no answer from PostgreSQL within 300 ms");
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1500);
    expect(ran).toBe(false);
    for (const s of sockets) s.destroy();
    silent.close();
    await pool.end().catch(() => undefined);
  });

  it("destroys a connection whose work outlives the deadline, and one whose work failed", async () => {
    const pool = newPool(await pgdb.fresh());
    const t0 = performance.now();
    await expect(session(pool, 300, (c) => c.query("SELECT pg_sleep(5)"))).rejects.toThrow(/within 300 ms/);
    expect(performance.now() - t0).toBeLessThan(1500);
    // Not handed back to the pool for the next round to wait behind.
    expect(pool.totalCount).toBe(0);

    // A transaction left open by failed work dies with its connection.
    await expect(
      session(pool, 2000, async (c) => {
        await c.query("BEGIN");
        await c.query("SELECT 1");
        throw new Error("the work failed");
      }),
    ).rejects.toThrow("the work failed");
    expect(pool.totalCount).toBe(0);
    expect(
      await session(
        pool,
        2000,
        async (c) => (await c.query<{ s: string }>("SELECT now()::text AS s")).rows.length,
      ),
    ).toBe(1);
    expect(pool.totalCount).toBe(1);
  });

  it("returns a connection whose work succeeded to the pool for the next session", async () => {
    const url = await pgdb.fresh();
    const pool = newPool(url);
    const pid = () =>
      session(
        pool,
        2000,
        async (c) => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid,
      );
    expect(await pid()).toBe(await pid());
  });
  it("keeps a connection with the caller when asked, and still destroys it on failure or past the deadline", async () => {
    const pool = newPool(await pgdb.fresh());
    const kept = await withDeadline(
      () => pool.connect(),
      2000,
      async (c) => c,
      "keep",
    );
    // Still checked out: not idle in the pool, and usable by its holder.
    expect(pool.totalCount).toBe(1);
    expect(pool.idleCount).toBe(0);
    expect((await kept.query<{ n: number }>("SELECT 1 AS n")).rows[0]!.n).toBe(1);
    kept.release(true);
    expect(pool.totalCount).toBe(0);

    await expect(
      withDeadline(
        () => pool.connect(),
        2000,
        async () => Promise.reject(new Error("LISTEN failed")),
        "keep",
      ),
    ).rejects.toThrow("LISTEN failed");
    expect(pool.totalCount).toBe(0);
    await expect(
      withDeadline(
        () => pool.connect(),
        300,
        (c) => c.query("SELECT pg_sleep(5)"),
        "keep",
      ),
    ).rejects.toThrow(/within 300 ms/);
    expect(pool.totalCount).toBe(0);
  });
});
