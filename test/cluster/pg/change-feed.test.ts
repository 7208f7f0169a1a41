/**
 * The cross-node alert change feed on a real PostgreSQL 15 (started by the harness for this file):
 * owners append inside `PartitionLeases.fenced`, every "node" (a `ChangeFeed` on its own pool)
 * delivers each change once, in order, across rollbacks, lost leases, late commits, killed
 * connections and retention.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { type AlertChange, view } from "../../../src/alerts/manager.js";
import { partitionOf } from "../../../src/cluster/partitions.js";
import {
  advance,
  appendChanges,
  ChangeFeed,
  type ChangeFeedOptions,
  encodeFeedCursor,
  type FeedChange,
  type FeedPosition,
  feedHeads,
  parseFeedCursor,
  pruneChanges,
  readSince,
} from "../../../src/cluster/pg/change-feed.js";
import { LeaseLostError, PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { ApiError } from "../../../src/errors.js";
import { alertRow } from "../../alerts/store.contract.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { until } from "../../helpers/until.js";

const COUNT = 4;
const HOUR = 60 * 60 * 1000;

const pgdb = pgTestDatabases("feed");

function newPool(url: string, name: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

async function eventually(what: string, ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  while (!(await ok())) {
    if (performance.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A site in each partition, so alerts' sites are where the feed's partition says. */
const SITES: string[] = [];
for (let i = 0; SITES.filter(Boolean).length < COUNT; i++) {
  const site = `home-${i}`;
  SITES[partitionOf(site, COUNT)] ??= site;
}

let seq = 0;
function change(partition: number, alertId: string, extra: Partial<AlertChange> = {}): AlertChange {
  const alert = view(alertRow({ id: alertId, site_id: SITES[partition]! }));
  return { seq: ++seq, change: "raised", alert, actor: "rule:fall", reason: null, ...extra };
}

interface Owner {
  leases: PartitionLeases;
  token(p: number): number;
  /** One fenced transaction appending the changes to the partition. */
  append(p: number, changes: AlertChange[]): Promise<unknown>;
}

/** One gateway node that holds every partition's lease. */
async function owner(url: string, opts: { leaseMs?: number } = {}): Promise<Owner> {
  const pool = newPool(url, "owner", 10);
  const leases = new PartitionLeases({
    pool,
    nodeId: "node-a",
    partitions: COUNT,
    leaseMs: opts.leaseMs ?? 20_000,
  });
  leases.on("error", () => undefined);
  await leases.start();
  pgdb.cleanup(() => leases.stop());
  await until("node-a holds every partition", () => leases.status().partitions.length === COUNT);
  const token = (p: number) => leases.tokenOf(p)!;
  return {
    leases,
    token,
    append: (p, changes) => leases.fenced(p, token(p), (c) => appendChanges(c, p, changes)),
  };
}

interface Node {
  feed: ChangeFeed;
  got: FeedChange[];
  gaps: { partitions: number[]; reason: string }[];
  errors: Error[];
}

async function node(url: string, name: string, opts: Partial<ChangeFeedOptions> = {}): Promise<Node> {
  const pool = newPool(url, name);
  const feed = new ChangeFeed({ pool, pollMs: 60_000, pruneEveryMs: 0, ...opts });
  const n: Node = { feed, got: [], gaps: [], errors: [] };
  feed.on("changes", (changes) => n.got.push(...changes));
  feed.on("gap", (partitions, reason) => n.gaps.push({ partitions, reason }));
  feed.on("error", (err) => n.errors.push(err));
  await feed.start();
  pgdb.cleanup(() => feed.stop());
  return n;
}

const key = (c: FeedChange) => `${c.partition}:${c.position}`;

/** Each change once; positions 1, 2, 3 ... in each partition in delivery order; seq rising per alert. */
function expectFeedOrder(got: FeedChange[]): void {
  expect(new Set(got.map(key)).size).toBe(got.length);
  const last = new Map<number, number>();
  const lastSeq = new Map<string, number>();
  for (const c of got) {
    expect(c.position, `partition ${c.partition}`).toBe((last.get(c.partition) ?? 0) + 1);
    last.set(c.partition, c.position);
    expect(c.change.seq).toBeGreaterThan(lastSeq.get(c.alertId) ?? 0);
    lastSeq.set(c.alertId, c.change.seq);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("the alert change feed", () => {
  it("two nodes each deliver every change exactly once, in order per alert, while four partitions append at once", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const [n1, n2] = await Promise.all([node(url, "node-1"), node(url, "node-2")]);
    const sent: AlertChange[] = [];
    await Promise.all(
      [0, 1, 2, 3].map(async (p) => {
        for (let i = 0; i < 30; i++) {
          const batch = Array.from({ length: 1 + (i % 3) }, (_, j) => change(p, `al-${p}-${(i + j) % 3}`));
          sent.push(...batch);
          await a.append(p, batch);
        }
      }),
    );
    for (const n of [n1, n2]) {
      await until(
        () => `${n.got.length} of ${sent.length}`,
        () => n.got.length >= sent.length,
      );
      expect(n.got).toHaveLength(sent.length);
      expectFeedOrder(n.got);
      expect(n.got.map((c) => c.change.seq).sort((x, y) => x - y)).toEqual(
        sent.map((c) => c.seq).sort((x, y) => x - y),
      );
      expect(n.errors).toEqual([]);
    }
    expect(n1.got.find((c) => c.change.seq === sent[0]!.seq)!.change).toEqual(sent[0]);
    const pool = newPool(url, "check");
    expect([...(await feedHeads(pool))].sort()).toEqual([
      [0, 60],
      [1, 60],
      [2, 60],
      [3, 60],
    ]);
  });

  it("a change appended in a fenced transaction that rolls back is never delivered, and its position goes to the next", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const n = await node(url, "node-1");
    const lost = change(1, "al-lost");
    await expect(
      a.leases.fenced(1, a.token(1), async (c) => {
        await appendChanges(c, 1, [lost]);
        throw new Error("the step failed");
      }),
    ).rejects.toThrow("the step failed");
    const kept = change(1, "al-kept");
    await a.append(1, [kept]);
    await until("the kept change", () => n.got.length >= 1);
    expect(n.got.map((c) => [c.alertId, c.position])).toEqual([["al-kept", 1]]);
    const all = await readSince(newPool(url, "check"), new Map());
    expect(all.kind === "changes" && all.changes.map((c) => c.alertId)).toEqual(["al-kept"]);
  });

  it("an owner's append cut off with its paused transaction, or fenced after its lease moved, is never delivered", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url, { leaseMs: 2000 });
    const n = await node(url, "node-1");
    const before = a.token(2);
    await a.append(2, [change(2, "al-before")]);
    // The owner appends and then stalls inside its fenced transaction: PostgreSQL ends the session
    // once it has been idle for leaseMs, so it cannot hold a takeover up, and the append goes with it.
    const paused = deferred();
    const gate = deferred();
    let pid = 0;
    const cutOff = a.leases
      .fenced(2, before, async (c) => {
        await appendChanges(c, 2, [change(2, "al-paused")]);
        pid = (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        paused.resolve();
        await gate.promise;
      })
      .then(
        () => null,
        (err: Error) => err,
      );
    await paused.promise;
    await eventually(
      "PostgreSQL ends the idle transaction",
      async () =>
        (await count(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid}`)) === 0,
    );
    gate.resolve();
    expect(await cutOff).toBeInstanceOf(Error);
    // Node B takes the partition over as a claim does (the row locked FOR UPDATE, the token moved on).
    const b = new pg.Client({ connectionString: url });
    await b.connect();
    pgdb.cleanup(() => b.end());
    await b.query("BEGIN");
    await b.query("SELECT 1 FROM partition_leases WHERE partition = 2 FOR UPDATE");
    await b.query(
      "UPDATE partition_leases SET owner = 'node-b', token = token + 1, expires_at = now() + interval '1 minute' WHERE partition = 2",
    );
    await b.query("COMMIT");
    const refused = await a.leases
      .fenced(2, before, (c) => appendChanges(c, 2, [change(2, "al-stale")]))
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(refused).toBeInstanceOf(LeaseLostError);
    // The new owner's change follows the old owner's last committed one.
    await b.query("BEGIN");
    await appendChanges(b, 2, [change(2, "al-after")]);
    await b.query("COMMIT");
    await until("the new owner's change", () => n.got.length >= 2);
    expect(n.got.map((c) => [c.alertId, c.position, c.token])).toEqual([
      ["al-before", 1, before],
      ["al-after", 2, before + 1],
    ]);
  });

  it("a transaction that began first and commits last is still delivered, not skipped", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const n = await node(url, "node-1");
    const appended = deferred();
    const gate = deferred();
    const first = a.leases.fenced(0, a.token(0), async (c) => {
      await appendChanges(c, 0, [change(0, "al-first")]);
      appended.resolve();
      await gate.promise;
    });
    await appended.promise;
    await a.append(1, [change(1, "al-second")]);
    await until("the second change", () => n.got.length >= 1);
    const afterSecond = n.feed.status().position;
    expect(n.got.map((c) => c.alertId)).toEqual(["al-second"]);
    gate.resolve();
    await first;
    await until("the first change", () => n.got.length >= 2);
    expect(n.got.map((c) => c.alertId)).toEqual(["al-second", "al-first"]);
    // A client that resumes from where the second left it still gets the first.
    const resumed = await readSince(newPool(url, "check"), afterSecond);
    expect(resumed.kind === "changes" && resumed.changes.map((c) => c.alertId)).toEqual(["al-first"]);
  });

  it("two writers of one partition: the second waits at its append until the first ends, so positions follow commits", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const n = await node(url, "node-1");
    for (const outcome of ["commit", "rollback"] as const) {
      const appended = deferred();
      const gate = deferred();
      const first = a.leases.fenced(3, a.token(3), async (c) => {
        await appendChanges(c, 3, [change(3, `al-first-${outcome}`)]);
        appended.resolve();
        await gate.promise;
        if (outcome === "rollback") throw new Error("rolled back");
      });
      await appended.promise;
      const second = a.append(3, [change(3, `al-second-${outcome}`)]);
      await eventually(
        "the second writer waits for the first's lock",
        async () =>
          (await count(
            url,
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
          )) === 1,
      );
      gate.resolve();
      await first.catch(() => undefined);
      await second;
    }
    await until("three changes", () => n.got.length >= 3);
    expect(n.got.map((c) => [c.alertId, c.position])).toEqual([
      ["al-first-commit", 1],
      ["al-second-commit", 2],
      ["al-second-rollback", 3],
    ]);
  });

  it("a node whose connection is killed mid-stream catches up without loss or duplicates", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const n = await node(url, "node-1", { reconnectMs: 1500 });
    let appended = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const p = i % COUNT;
        await a.append(p, [change(p, `al-${p}-${i % 7}`)]);
        appended++;
      }
    })();
    await until("some changes delivered", () => n.got.length >= 30);
    const pid = n.feed.status().backendPid;
    expect(pid).not.toBeNull();
    await pgdb.admin.query("SELECT pg_terminate_backend($1)", [pid]);
    const atKill = appended;
    await until("the feed sees its connection gone", () => !n.feed.status().connected);
    // Changes committed while it is away, and none after it is back: only its catch-up can bring them.
    await until("changes appended while away", () => appended >= atKill + 20);
    stop = true;
    await writer;
    expect(n.feed.status().reconnects).toBe(0);
    expect(n.got.length).toBeLessThan(appended);
    await until(
      () => `${n.got.length} of ${appended}`,
      () => n.got.length >= appended,
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(n.got).toHaveLength(appended);
    expectFeedOrder(n.got);
    expect(n.feed.status().reconnects).toBe(1);
    expect(n.feed.status().backendPid).not.toBe(pid);
  });

  it("readSince returns exactly the changes after a position, per partition, or says why it cannot", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const pool = newPool(url, "reader");
    for (let i = 0; i < 5; i++) {
      await a.append(0, [change(0, "al-0")]);
      await a.append(1, [change(1, "al-1")]);
    }
    const all = await readSince(pool, new Map());
    if (all.kind !== "changes") throw new Error(all.kind);
    expect(all.changes).toHaveLength(10);
    const from: FeedPosition = new Map([
      [0, 2],
      [1, 4],
    ]);
    await a.append(1, [change(1, "al-1")]);
    const after = await readSince(pool, from);
    if (after.kind !== "changes") throw new Error(after.kind);
    expect(after.changes.map(key)).toEqual(["0:3", "0:4", "0:5", "1:5", "1:6"]);
    expect(Object.fromEntries(after.position)).toEqual({ 0: 5, 1: 6 });
    expect(Object.fromEntries(advance(from, after.changes))).toEqual({ 0: 5, 1: 6 });
    const one = await readSince(pool, from, { partitions: [1] });
    expect(one.kind === "changes" && one.changes.map(key)).toEqual(["1:5", "1:6"]);
    expect(await readSince(pool, after.position)).toEqual({
      kind: "changes",
      changes: [],
      position: after.position,
    });
    expect(await readSince(pool, new Map([[0, 6]]))).toEqual({ kind: "unknown", partitions: [0] });
    expect(await readSince(pool, new Map([[3, 1]]))).toEqual({ kind: "unknown", partitions: [3] });
    expect(await readSince(pool, from, { limit: 4 })).toEqual({ kind: "too_old", partitions: [0, 1] });
    // The position as a client carries it.
    expect(encodeFeedCursor(from)).toBe("0:2,1:4");
    expect(parseFeedCursor("0:2,1:4")).toEqual(from);
    expect(parseFeedCursor("")).toEqual(new Map());
    for (const bad of ["0:2,0:3", "x", "0:-1", 7]) {
      const err = (() => {
        try {
          parseFeedCursor(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe("invalid_body");
    }
  });

  it("past the retention a resume is told to take a snapshot, never given a gap", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const pool = newPool(url, "reader");
    for (let i = 0; i < 5; i++) await a.append(0, [change(0, "al-0")]);
    for (let i = 0; i < 2; i++) await a.append(1, [change(1, "al-1")]);
    // Time passes for the first three of partition 0 and all of partition 1 (PostgreSQL's clock).
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(
      "UPDATE change_feed SET appended_at = appended_at - interval '25 hours' WHERE (partition = 0 AND position <= 3) OR partition = 1",
    );
    await c.end();
    await expect(pruneChanges(pool, HOUR - 1)).rejects.toThrow(RangeError);
    expect(() => new ChangeFeed({ pool, retentionMs: HOUR - 1 })).toThrow(RangeError);
    expect(await pruneChanges(pool, 24 * HOUR)).toBe(5);
    expect(await pruneChanges(pool, 24 * HOUR)).toBe(0);

    expect(await readSince(pool, new Map())).toEqual({ kind: "too_old", partitions: [0, 1] });
    expect(await readSince(pool, new Map([[0, 2]]), { partitions: [0] })).toEqual({
      kind: "too_old",
      partitions: [0],
    });
    const from: FeedPosition = new Map([
      [0, 3],
      [1, 2],
    ]);
    const ok = await readSince(pool, from);
    expect(ok.kind === "changes" && ok.changes.map(key)).toEqual(["0:4", "0:5"]);

    // A node that was away since the start learns of the gap and goes on from what is kept.
    const n = await node(url, "node-1", { from: new Map() });
    expect(n.gaps).toEqual([{ partitions: [0, 1], reason: "pruned" }]);
    expect(n.got.map(key)).toEqual(["0:4", "0:5"]);
    await a.append(1, [change(1, "al-1")]);
    await until("the next change of partition 1", () => n.got.length >= 3);
    expect(n.got.map(key)).toEqual(["0:4", "0:5", "1:3"]);
  });

  it("a change larger than NOTIFY's 8000-byte payload is delivered whole", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url);
    const n = await node(url, "node-1");
    const big = change(2, "al-big", { change: "comment", reason: "ø".repeat(20_000), actor: "Anna" });
    await a.append(2, [big, change(2, "al-big", { change: "accepted" })]);
    await until("both changes", () => n.got.length >= 2);
    expect(n.got[0]!.change).toEqual(big);
    expect(Buffer.byteLength(JSON.stringify(n.got[0]!.change))).toBeGreaterThan(40_000);
    const again = await readSince(newPool(url, "check"), new Map());
    expect(again.kind === "changes" && again.changes[0]!.change).toEqual(big);
  });
});

async function count(url: string, sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: number }>(sql);
    return rows[0]!.n;
  } finally {
    await c.end();
  }
}
