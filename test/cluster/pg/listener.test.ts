/**
 * The listening connection on a real PostgreSQL 15 (started by the harness for this file): an owner
 * that keeps an inbox table, reads a row when its notification comes and reads everything whenever
 * the listener says it listens again, as the leases, log followers, owner commands and staff
 * presence do.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { PgListener, type PgListenerOptions } from "../../../src/cluster/pg/listener.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { until } from "../../helpers/until.js";

const CHANNEL = "ata_listener_test";
const pgdb = pgTestDatabases("listener");

function newPool(url: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

/** Writes a row and its notification in one transaction, as the components' writers do. */
async function write(pool: pg.Pool, body: string): Promise<void> {
  await pool.query(
    `WITH r AS (INSERT INTO listener_inbox (body) VALUES ($1) RETURNING id)
     SELECT pg_notify('${CHANNEL}', id::text) FROM r`,
    [body],
  );
}

/** The owner: what it has read, and how it came to read it. */
async function owner(options: Partial<PgListenerOptions> = {}) {
  const url = await pgdb.fresh();
  const pool = newPool(url);
  await pool.query("CREATE TABLE listener_inbox (id serial PRIMARY KEY, body text NOT NULL)");
  const seen = new Map<string, "notified" | "caught up">();
  const listening: boolean[] = [];
  const dropped: (Error | undefined)[] = [];
  let reading: Promise<void> = Promise.resolve();
  const readAll = async () => {
    const { rows } = await pool.query<{ body: string }>("SELECT body FROM listener_inbox");
    for (const r of rows) if (!seen.has(r.body)) seen.set(r.body, "caught up");
  };
  const listener = new PgListener({
    pool,
    channels: [CHANNEL],
    reconnectMs: 500,
    onNotification: (msg) => {
      void pool
        .query<{ body: string }>("SELECT body FROM listener_inbox WHERE id = $1", [Number(msg.payload)])
        .then(({ rows }) => {
          for (const r of rows) if (!seen.has(r.body)) seen.set(r.body, "notified");
        });
    },
    onListening: (reconnected) => {
      listening.push(reconnected);
      reading = readAll();
    },
    onDropped: (err) => dropped.push(err),
    ...options,
  });
  pgdb.cleanup(() => listener.stop());
  return { pool, listener, seen, listening, dropped, caughtUp: () => reading };
}

async function backendAlive(pid: number): Promise<boolean> {
  const { rows } = await pgdb.admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid]);
  return rows.length > 0;
}

describe("PgListener", () => {
  it("delivers a committed notification on its channels, after calling onListening once at start", async () => {
    const { pool, listener, seen, listening, caughtUp } = await owner();
    await listener.start();
    expect(listening).toEqual([false]);
    await caughtUp();
    expect(listener.status()).toMatchObject({ connected: true, reconnects: 0 });
    await write(pool, "first");
    await until("the first row notified", () => seen.get("first") === "notified");
  });

  it("after its connection is killed it listens again and catches up what committed while it was down", async () => {
    const { pool, listener, seen, listening, dropped, caughtUp } = await owner();
    await listener.start();
    await caughtUp();
    const pid = listener.status().backendPid!;
    expect(pid).toBeGreaterThan(0);

    await pgdb.admin.query("SELECT pg_terminate_backend($1)", [pid]);
    await until("the drop noticed", () => !listener.status().connected);
    await write(pool, "while down");
    // The fault happened mid-work: the row committed while nobody listened, so no notification
    // for it will ever come; only the catch-up can find it.
    expect(listener.status()).toMatchObject({ connected: false, reconnects: 0 });
    expect(dropped).toHaveLength(1);

    await until("listening again", () => listener.status().reconnects === 1);
    expect(listening).toEqual([false, true]);
    const again = listener.status();
    expect(again.connected).toBe(true);
    expect(again.backendPid).not.toBe(pid);
    await until("the missed row read", () => seen.has("while down"));
    expect(seen.get("while down")).toBe("caught up");
    await caughtUp();

    await write(pool, "after");
    await until("the next row notified", () => seen.get("after") === "notified");
  });

  it("holds a connection of its own, none of its pool's", async () => {
    const { pool, listener } = await owner();
    await listener.start();
    const { rows } = await pgdb.admin.query<{ application_name: string }>(
      "SELECT application_name FROM pg_stat_activity WHERE pid = $1",
      [listener.status().backendPid],
    );
    expect(rows).toHaveLength(1);
    // Every connection the pool may open is still its to open: a listener never takes one.
    const all = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
    expect(pool.totalCount).toBe(4);
    for (const c of all) c.release();
    expect(listener.status().connected).toBe(true);
  });

  it("stop() destroys the connection", async () => {
    const { listener } = await owner();
    await listener.start();
    const pid = listener.status().backendPid!;
    listener.stop();
    expect(listener.status()).toMatchObject({ connected: false, backendPid: null });
    await until("the backend gone", async () => !(await backendAlive(pid)));
  });

  it("a first LISTEN that fails rejects start(), unless told to retry it", async () => {
    const { listener } = await owner({ channels: ["no such channel"] });
    await expect(listener.start()).rejects.toThrow();
    expect(listener.isRunning).toBe(false);

    const errors: Error[] = [];
    const { listener: retrying } = await owner({
      channels: ["no such channel"],
      retryStart: true,
      onError: (err) => errors.push(err),
    });
    await retrying.start();
    expect(retrying.isRunning).toBe(true);
    await until("a second attempt failed", () => errors.length >= 2);
    retrying.stop();
  });
});
