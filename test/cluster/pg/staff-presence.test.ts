/**
 * Staff presence across nodes on a real PostgreSQL 15 (started by the harness for this file): each
 * "node" is a pool of its own in this process with a `StaffPresence`, and a `PartitionLeases` for its
 * heartbeat where the test needs a live node, or a `cluster_nodes` row written as leases.ts writes it
 * where the test must stop a heartbeat without the node leaving.
 */
import net from "node:net";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { ConsoleChannel } from "../../../src/alerts/channels/console.js";
import { PartitionLeases } from "../../../src/cluster/pg/leases.js";
import {
  STAFF_PRESENCE_CHANNEL,
  StaffPresence,
  type StaffPresenceOptions,
} from "../../../src/cluster/pg/staff-presence.js";
import type { StaffIdentity } from "../../../src/staff/protocol.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";

const pgdb = pgTestDatabases("presence");

/** leases.ts's HEARTBEAT, for a node whose heartbeat the test controls. */
const HEARTBEAT = `
  INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at, leaving) VALUES ($1, now(), now(), false)
  ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), leaving = false`;

function person(id: string, extra: Partial<StaffIdentity> = {}): StaffIdentity {
  return { id, name: `Person ${id}`, role: "carer", sites: ["home-1"], units: ["unit-a"], ...extra };
}

function newPool(url: string, name: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function until(what: string | (() => string), ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (ok()) return resolve();
      if (performance.now() - started > timeoutMs)
        return reject(new Error(`not within ${timeoutMs} ms: ${typeof what === "string" ? what : what()}`));
      setTimeout(check, 2);
    };
    check();
  });
}

interface TestNode {
  id: string;
  pool: pg.Pool;
  presence: StaffPresence;
  leases: PartitionLeases | null;
  errors: Error[];
  ids(): string[];
  /** Resolves with performance.now() at the first `changed` whose list passes `ok`. */
  change(ok: (ids: string[]) => boolean, timeoutMs?: number): Promise<number>;
}

async function node(
  url: string,
  id: string,
  o: { leases?: boolean; leaseMs?: number; presence?: Partial<StaffPresenceOptions>; url?: string } = {},
): Promise<TestNode> {
  const leaseMs = o.leaseMs ?? 10_000;
  const pool = newPool(o.url ?? url, id);
  let leases: PartitionLeases | null = null;
  if (o.leases !== false) {
    leases = new PartitionLeases({ pool, nodeId: id, partitions: 4, leaseMs });
    leases.on("error", () => undefined);
    await leases.start();
    const l = leases;
    pgdb.cleanup(() => l.stop());
  }
  const presence = new StaffPresence({ pool, nodeId: id, leaseMs, pollMs: 60_000, ...o.presence });
  const errors: Error[] = [];
  presence.on("error", (err) => errors.push(err));
  await presence.start();
  pgdb.cleanup(() => presence.stop());
  const ids = () => presence.connected().map((s) => s.id);
  return {
    id,
    pool,
    presence,
    leases,
    errors,
    ids,
    change: (ok, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          presence.off("changed", on);
          reject(new Error(`${id}: no such change within ${timeoutMs} ms; connected: ${ids().join(",")}`));
        }, timeoutMs);
        const on = (list: StaffIdentity[]) => {
          if (!ok(list.map((s) => s.id))) return;
          const at = performance.now();
          clearTimeout(timer);
          presence.off("changed", on);
          resolve(at);
        };
        presence.on("changed", on);
      }),
  };
}

async function rowsOf(pool: pg.Pool, nodeId: string) {
  const { rows } = await pool.query<{ staff_id: string; sockets: number; updated_at: Date }>(
    "SELECT staff_id, sockets, updated_at FROM staff_presence WHERE node_id = $1 ORDER BY staff_id",
    [nodeId],
  );
  return rows;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 10) / 10;

/** Notifications a node's writes sent, heard on a connection of the test's own. */
async function notifications(url: string, nodeId: string): Promise<{ count(): number }> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => undefined);
  await c.connect();
  pgdb.cleanup(() => c.end());
  let n = 0;
  c.on("notification", (msg) => {
    if (msg.channel === STAFF_PRESENCE_CHANNEL && msg.payload === nodeId) n++;
  });
  await c.query(`LISTEN ${STAFF_PRESENCE_CHANNEL}`);
  return { count: () => n };
}

describe("staff presence across nodes", () => {
  it("a person signing in on node A is in node B's connected() within one notification, leaves with their last socket, and counts once on two nodes", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const c = await node(url, "node-c");
    const anna = person("anna", { name: "Anna", role: "nurse", units: null });

    // Arrival and departure, each after the writer was quiet for longer than its coalescing window,
    // so nothing but the write, its notification and B's read lies between publish and the event.
    const arrive: number[] = [];
    const leave: number[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(270);
      let seen = b.change((ids) => ids.includes("anna"));
      let t0 = performance.now();
      a.presence.publish([anna]);
      arrive.push((await seen) - t0);
      await sleep(270);
      seen = b.change((ids) => !ids.includes("anna"));
      t0 = performance.now();
      a.presence.publish([]);
      leave.push((await seen) - t0);
    }
    console.log(
      `A -> B, publish to B's "changed": arrival median ${round(median(arrive))} ms, max ${round(Math.max(...arrive))} ms; departure median ${round(median(leave))} ms, max ${round(Math.max(...leave))} ms`,
    );
    // B polls every 60 s and its nodes' heartbeats have 10 s: only a notification can be this quick.
    expect(Math.max(...arrive, ...leave)).toBeLessThan(1000);

    // Two consoles on A: one closing keeps Anna connected; the last one closing takes her away.
    let seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([anna, anna]);
    await seen;
    await expect.poll(() => rowsOf(a.pool, "node-a").then((r) => r.map((x) => x.sockets))).toEqual([2]);
    a.presence.publish([anna]);
    await expect.poll(() => rowsOf(a.pool, "node-a").then((r) => r.map((x) => x.sockets))).toEqual([1]);
    expect(b.ids()).toEqual(["anna"]);
    expect(b.presence.connected()).toEqual([anna]);
    // What the ladder asks on B: the console channel reaches Anna through B's copy.
    const console_ = new ConsoleChannel(b.presence);
    const audience = { siteId: "home-1", unitId: "unit-b", targets: ["nurse"] as const, excluded: [] };
    expect(console_.reach(audience)).toEqual([{ id: "anna", name: "Anna", staffId: "anna" }]);
    expect(console_.reach({ ...audience, excluded: ["anna"] })).toEqual([]);

    // On A and on B at once: once in C's list (and in A's and B's own); still there when A's closes.
    b.presence.publish([anna]);
    await sleep(300);
    for (const n of [a, b, c]) expect(n.ids()).toEqual(["anna"]);
    seen = c.change(() => true, 1000).catch(() => -1);
    a.presence.publish([]);
    await expect.poll(() => rowsOf(a.pool, "node-a")).toEqual([]);
    await sleep(200);
    expect(await seen).toBe(-1); // the union did not change: Anna is still on B
    expect(c.ids()).toEqual(["anna"]);
    expect(a.ids()).toEqual(["anna"]);
    // Each node hears of it by its own notification: wait for both that are checked.
    seen = c.change((ids) => ids.length === 0);
    const seenOnA = a.change((ids) => ids.length === 0);
    b.presence.publish([]);
    await Promise.all([seen, seenOnA]);
    expect(a.ids()).toEqual([]);
    for (const n of [a, b, c]) expect(n.errors).toEqual([]);
  });

  it("a burst of 500 sign-ins costs a handful of writes, and a later change writes only the rows that changed", async () => {
    const url = await pgdb.fresh();
    const heard = await notifications(url, "node-a");
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const people = Array.from({ length: 500 }, (_, i) => person(`p${String(i).padStart(3, "0")}`));
    const writesBefore = a.presence.status().writes;
    const heardBefore = heard.count();
    const started = performance.now();
    for (let i = 1; i <= people.length; i++) {
      a.presence.publish(people.slice(0, i));
      if (i % 5 === 0) await sleep(10); // 500 sign-ins over about a second, as sockets arrive
    }
    const spread = performance.now() - started;
    await until(
      () => `B has ${b.ids().length} of 500`,
      () => b.ids().length === 500,
    );
    await sleep(300);
    const writes = a.presence.status().writes - writesBefore;
    const notified = heard.count() - heardBefore;
    console.log(`500 sign-ins over ${Math.round(spread)} ms: ${writes} writes, ${notified} notifications`);
    expect(notified).toBe(writes);
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(writes).toBeLessThanOrEqual(Math.ceil(spread / 250) + 2);
    expect((await rowsOf(a.pool, "node-a")).length).toBe(500);

    // One person leaves and one gets a second console: one row deleted, one updated, 498 untouched.
    const before = new Map((await rowsOf(a.pool, "node-a")).map((r) => [r.staff_id, r.updated_at.getTime()]));
    const next = [...people.slice(1), people[7]!];
    const seen = b.change((ids) => ids.length === 499);
    a.presence.publish(next);
    await seen;
    const after = await rowsOf(a.pool, "node-a");
    expect(after).toHaveLength(499);
    const touched = after.filter((r) => r.updated_at.getTime() !== before.get(r.staff_id));
    expect(touched.map((r) => [r.staff_id, r.sockets])).toEqual([["p007", 2]]);
    expect(a.errors).toEqual([]);
  });

  it("a node stopped gracefully takes its rows with it, and a restart with the same id replaces what a previous life left", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([person("anna"), person("bo")]);
    await seen;
    const gone = b.change((ids) => ids.length === 0);
    const t0 = performance.now();
    await a.presence.stop();
    const delay = (await gone) - t0;
    console.log(`graceful stop on A to B's "changed": ${round(delay)} ms`);
    expect(await rowsOf(a.pool, "node-a")).toEqual([]);
    expect(delay).toBeLessThan(1000);

    // Rows a previous life of node-b left (it died without stop()): the new one replaces them at start.
    await a.pool.query(
      `INSERT INTO staff_presence (node_id, staff_id, name, role, sites, units, sockets, updated_at)
       VALUES ('node-c', 'ghost', 'Ghost', 'carer', '{home-1}', NULL, 3, now())`,
    );
    const c = await node(url, "node-c");
    expect(await rowsOf(a.pool, "node-c")).toEqual([]);
    expect(c.ids()).toEqual([]);
    const carl = b.change((ids) => ids.includes("carl"));
    c.presence.publish([person("carl")]);
    await carl;
    expect(b.ids()).toEqual(["carl"]);
    expect((await rowsOf(a.pool, "node-c")).map((r) => [r.staff_id, r.sockets])).toEqual([["carl", 1]]);
  });

  it("rows of a node changed behind its back are written again after its next full read", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a", { presence: { pollMs: 300 } });
    const b = await node(url, "node-b");
    const seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([person("anna"), person("bo")]);
    await seen;
    const writes = a.presence.status().writes;
    await a.pool.query("DELETE FROM staff_presence WHERE node_id = 'node-a' AND staff_id = 'bo'");
    await a.pool.query(
      "UPDATE staff_presence SET sockets = 9 WHERE node_id = 'node-a' AND staff_id = 'anna'",
    );
    await expect
      .poll(() => rowsOf(a.pool, "node-a").then((r) => r.map((x) => [x.staff_id, x.sockets])), {
        timeout: 3000,
      })
      .toEqual([
        ["anna", 1],
        ["bo", 1],
      ]);
    expect(a.presence.status().writes).toBe(writes + 1);
    expect(b.ids()).toEqual(["anna", "bo"]);
  });

  it("a node whose heartbeat stops counts until its heartbeat is leaseMs old, and no longer", async () => {
    const url = await pgdb.fresh();
    const leaseMs = 1500;
    const admin = newPool(url, "heartbeat", 1);
    await admin.query(HEARTBEAT, ["node-x"]);
    // node-x: its heartbeat written as leases.ts writes it, by this test, so that it can stop without leaving.
    const x = await node(url, "node-x", { leases: false, leaseMs });
    const b = await node(url, "node-b", { leaseMs });
    const seen = b.change((ids) => ids.includes("xena"));
    x.presence.publish([person("xena")]);
    await seen;
    let last = performance.now();
    for (let i = 0; i < 4; i++) {
      await sleep(leaseMs / 3);
      await admin.query(HEARTBEAT, ["node-x"]);
      last = performance.now();
      expect(b.ids()).toEqual(["xena"]);
    }
    const gone = await b.change((ids) => ids.length === 0, 2 * leaseMs);
    const after = gone - last;
    console.log(
      `heartbeat stopped: node-x's staff dropped ${round(after)} ms after its last heartbeat (lease ${leaseMs} ms)`,
    );
    expect(after).toBeGreaterThan(leaseMs - 100);
    expect(after).toBeLessThan(leaseMs + 300);
    // The leases' own rule agrees at that moment: node-x is no longer live.
    const { rows: live } = await admin.query(
      `SELECT node_id FROM cluster_nodes WHERE NOT leaving AND heartbeat_at > now() - $1::int * interval '1 millisecond'`,
      [leaseMs],
    );
    expect(live.map((r) => r.node_id)).not.toContain("node-x");
    // Its rows are still there (it never stopped); they just do not count.
    expect((await rowsOf(admin, "node-x")).map((r) => r.staff_id)).toEqual(["xena"]);

    // A heartbeat aged by an UPDATE (as a node paused past its lease would leave it) stops counting too.
    await admin.query(HEARTBEAT, ["node-x"]);
    const back = b.change((ids) => ids.includes("xena"), 3 * leaseMs);
    await admin.query("SELECT pg_notify('ata_partition_leases', 'node-x')"); // as leases.ts's start announces a node
    await back;
    const aged = b.change((ids) => ids.length === 0, 3 * leaseMs);
    await admin.query(
      "UPDATE cluster_nodes SET heartbeat_at = now() - $1::int * interval '1 millisecond' WHERE node_id = 'node-x'",
      [leaseMs - 300],
    );
    const t0 = performance.now();
    // B learns of an UPDATE it was not told about at its next read of the live set, at the latest
    // when the heartbeat it knew of expires.
    const agedAfter = (await aged) - t0;
    console.log(`heartbeat aged to ${leaseMs - 300} ms: dropped after ${round(agedAfter)} ms`);
    expect(agedAfter).toBeLessThan(leaseMs + 300);
  });

  it("a node whose leases stop (leaving) no longer counts at once: the leases' notification is heard", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([person("anna")]);
    await seen;
    const gone = b.change((ids) => ids.length === 0);
    const t0 = performance.now();
    await a.leases!.stop();
    const delay = (await gone) - t0;
    console.log(`A's leases stopped (leaving): A's staff dropped on B after ${round(delay)} ms`);
    expect(delay).toBeLessThan(1000);
    expect((await rowsOf(a.pool, "node-a")).map((r) => r.staff_id)).toEqual(["anna"]);
  });

  it("connections killed: the copy is kept while away, publishes are retried, and both catch up", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a", { presence: { retryMs: 500 } });
    const b = await node(url, "node-b", { presence: { retryMs: 500 } });
    const seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([person("anna")]);
    await seen;

    const kill = (name: string) =>
      pgdb.admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        [url.replace(/.*\//, ""), name],
      );
    // B loses every connection, its listening one included.
    await kill("node-b");
    await until("B sees its listening connection gone", () => !b.presence.status().listening);
    const killedAt = performance.now();
    expect(b.ids()).toEqual(["anna"]);
    expect(b.errors.length).toBeGreaterThan(0);
    // A writes while B is away: B hears no notification of it, its poll is a minute off, and only
    // its catch-up after listening again can bring it.
    a.presence.publish([person("bo")]);
    await expect.poll(() => rowsOf(a.pool, "node-a").then((r) => r.map((x) => x.staff_id))).toEqual(["bo"]);
    expect(b.ids()).toEqual(["anna"]);
    await until(
      () => `B has ${b.ids().join(",")}`,
      () => b.ids().join() === "bo",
    );
    console.log(`B caught up ${round(performance.now() - killedAt)} ms after its connections were killed`);
    expect(b.presence.status().listening).toBe(true);

    // A loses its connections and publishes at once: the write may fail, and is then retried.
    await kill("node-a");
    a.presence.publish([person("bo"), person("cy")]);
    await until(
      () => `B has ${b.ids().join(",")}`,
      () => b.ids().join() === "bo,cy",
    );
    console.log(`A's errors after its kill: ${a.errors.map((e) => e.message).join(" | ") || "none"}`);
    // And A's own copy of B's staff survived its kill: B publishes, A hears it.
    const onA = a.change((ids) => ids.includes("dan"));
    b.presence.publish([person("dan")]);
    await onA;
  });

  it("PostgreSQL unreachable for a node: connected() answers from the last copy, and it catches up when PostgreSQL is back", async () => {
    const url = await pgdb.fresh();
    const relay = await cuttableRelay(pgdb.server.port);
    pgdb.cleanup(() => relay.close());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b", {
      url: url.replace(`:${pgdb.server.port}/`, `:${relay.port}/`),
      presence: { retryMs: 300, timeoutMs: 1000, pollMs: 1000 },
      leases: false,
    });
    await b.pool.query(HEARTBEAT, ["node-b"]);
    const seen = b.change((ids) => ids.includes("anna"));
    a.presence.publish([person("anna")]);
    await seen;
    relay.cut();
    a.presence.publish([person("bo")]);
    b.presence.publish([person("eve")]);
    // Three of B's polls and retries fail; it keeps what it knew, with its own sockets, and says why.
    await sleep(1500);
    expect(b.ids()).toEqual(["anna", "eve"]);
    expect(b.errors.length).toBeGreaterThan(0);
    relay.restore();
    await until(
      () => `B has ${b.ids().join(",")}`,
      () => b.ids().join() === "bo,eve",
    );
    await until(
      () => `A has ${a.ids().join(",")}`,
      () => a.ids().join() === "bo,eve",
    );
  });
});

/** A TCP relay to PostgreSQL that can drop every connection and refuse new ones, then relay again. */
async function cuttableRelay(
  port: number,
): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let refusing = false;
  const relay = net.createServer((down) => {
    if (refusing) {
      down.destroy();
      return;
    }
    const up = net.connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    up.on("error", () => down.destroy());
    down.on("error", () => up.destroy());
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    cut: () => {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    restore: () => {
      refusing = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => relay.close(() => r()));
    },
  };
}
