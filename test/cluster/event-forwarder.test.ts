/**
 * The forwarder's outage path (src/cluster/event-forwarder.ts), on a real PostgreSQL 15: while the
 * shared log cannot take appends, what the node logged waits (its publishes are not acknowledged)
 * and nothing is lost; once it can, everything goes in, once, in the node's order, and the waiters
 * are released. A restart forwards from the local cursor what the last run had not.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { EventForwarder, FORWARDER_CURSOR } from "../../src/cluster/event-forwarder.js";
import { silentLogger } from "../../src/log.js";
import { getCursor } from "../../src/store/db.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { tempDbs } from "../helpers/tempdb.js";
import { until } from "../helpers/until.js";

const pgdb = pgTestDatabases("event_forwarder");
const dbs = tempDbs("ata-forwarder-");
afterEach(() => dbs.cleanup());

describe("the event forwarder", () => {
  it("holds publishes while the shared log refuses appends, then forwards everything once, in order; a restart goes on from its cursor", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on("error", () => undefined);
    pgdb.cleanup(() => pool.end());
    const { db } = dbs.open();
    const insert = db.prepare(`INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at,
      site_id, unit_id, profile, data) VALUES (?, 'mat-1', 'bed.exit', 'point', ?, ?, 'home-a', 'unit-1', 'ata/native', '{}')`);
    let logged = 0;
    const log = (n: number) => {
      let last = 0;
      for (let i = 0; i < n; i++)
        last = Number(
          insert.run(`e-${String(++logged).padStart(3, "0")}`, Date.now(), Date.now()).lastInsertRowid,
        );
      return last;
    };
    // The shared log refuses appends (its table locked away from this role's writes by a trigger).
    await pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'shared log unavailable'; END $$`);
    await pool.query(
      "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION refuse()",
    );

    const forwarder = new EventForwarder({
      db,
      pool,
      partitions: 4,
      log: silentLogger(),
      batch: 7,
      minRetryMs: 20,
      maxRetryMs: 100,
    });
    forwarder.start();
    forwarder.notify(log(20));
    let drained = false;
    const waiting = forwarder.drained().then(() => {
      drained = true;
    });
    await until("a failed append", () => forwarder.status().lastError !== null);
    await new Promise((r) => setTimeout(r, 300));
    expect(drained).toBe(false);
    expect(forwarder.status()).toMatchObject({ forwarded: 0, logged: 20 });
    expect((await pool.query("SELECT count(*)::int AS n FROM events")).rows[0].n).toBe(0);

    // The shared log is back: the retries take everything, in the local log's order.
    await pool.query("DROP TRIGGER refuse ON events");
    await waiting;
    expect(forwarder.status()).toMatchObject({ forwarded: 20, lastError: null, appended: 20, duplicates: 0 });
    // In the partition, positions 1..20 in the order this node logged them.
    const placed = (
      await pool.query<{ event_id: string; position: number }>(
        "SELECT event_id, position::int FROM events ORDER BY position",
      )
    ).rows;
    expect(placed.map((r) => r.position)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(placed.map((r) => r.event_id)).toEqual(
      Array.from({ length: 20 }, (_, i) => `e-${String(i + 1).padStart(3, "0")}`),
    );
    expect(getCursor(db, FORWARDER_CURSOR)).toBe(20);

    // Stopped with more logged; a new forwarder on the same database forwards the rest from its cursor.
    await forwarder.stop();
    log(5);
    const again = new EventForwarder({ db, pool, partitions: 4, log: silentLogger() });
    again.start();
    await again.drained();
    expect(again.status()).toMatchObject({ forwarded: 25, appended: 5, duplicates: 0 });
    await again.stop();
    expect((await pool.query("SELECT count(*)::int AS n FROM events")).rows[0].n).toBe(25);
  });
});
