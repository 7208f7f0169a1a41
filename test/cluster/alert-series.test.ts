/**
 * The alerts' time series on a cluster, on a real PostgreSQL 15 and the embedded time-series store:
 * real owners (`PgPartitionState` with the feed, stepped by the real `AlertManager`) in two
 * partitions, and `ClusterAlertSeries` writers on their own pools. The store records every point
 * written to it, because a store that overwrites would hide a duplicate. What the cluster writes is
 * compared with what a single process's sink (`alertAuditSource`) writes from the same audit.
 */
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { AlertChannel, ChannelName } from "../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../src/alerts/channels/console.js";
import { AlertManager, type RaiseSpec } from "../../src/alerts/manager.js";
import { alertAuditSource } from "../../src/alerts/series.js";
import { ClusterAlertSeries } from "../../src/cluster/alert-series.js";
import { partitionOf } from "../../src/cluster/partitions.js";
import { appendChanges, pruneChanges, renotifyEntry } from "../../src/cluster/pg/change-feed.js";
import { PartitionLeases } from "../../src/cluster/pg/leases.js";
import { PgPartitionState } from "../../src/cluster/pg/partition-state.js";
import type { LoggedEvent } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { DurableTimers } from "../../src/rules/timers.js";
import type { StaffIdentity } from "../../src/staff/protocol.js";
import { openDb } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { TimeSeriesSink } from "../../src/store/sink.js";
import type { Point, TimeSeriesStore } from "../../src/store/timeseries.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";

const pgdb = pgTestDatabases("alert_series");
const PARTITIONS = 2;
const T0 = Date.parse("2026-11-02T21:14:05.250Z");

/** The first site ids that fall in partitions 0 and 1. */
const SITES = [0, 1].map((p) => {
  for (let i = 0; ; i++) if (partitionOf(`home-${i}`, PARTITIONS) === p) return `home-${i}`;
}) as [string, string];

const FALL: RaiseSpec = {
  ruleId: "fall",
  alert: "fall",
  priority: "high",
  message: { da: "Fald i stue {room}", en: "Fall in room {room}" },
  ladder: [{ to: ["unit"], after: 120_000 }],
  renotifyMs: 60_000,
};

function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: name });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

function until(what: () => string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = async () => {
      if (await ok()) return resolve();
      if (performance.now() - started > timeoutMs)
        return reject(new Error(`not within ${timeoutMs} ms: ${what()}`));
      setTimeout(() => void check(), 10);
    };
    void check();
  });
}

/** The real embedded store, recording every point handed to it. */
async function recordingStore(): Promise<{
  store: TimeSeriesStore;
  db: Database.Database;
  written: Point[];
  /** Holds the next write until released; `entered` once that write has begun. */
  holdNext(): { entered: Promise<number>; release(): void };
}> {
  const db = new Database(":memory:");
  const inner = new EmbeddedSeriesStore({ db });
  const written: Point[] = [];
  let held: { enter(points: number): void; released: Promise<void> } | null = null;
  const store: TimeSeriesStore = {
    kind: "embedded",
    start: () => inner.start(),
    stop: () => inner.stop(),
    async write(points) {
      const h = held;
      held = null;
      if (h) {
        h.enter(points.length);
        await h.released;
      }
      await inner.write(points);
      written.push(...points);
    },
    aggregate: (q) => inner.aggregate(q),
    ping: () => inner.ping(),
  };
  pgdb.cleanup(async () => {
    await inner.stop();
    db.close();
  });
  await inner.start();
  const holdNext = () => {
    let enter: (points: number) => void = () => {};
    let release: () => void = () => {};
    const entered = new Promise<number>((r) => {
      enter = r;
    });
    const released = new Promise<void>((r) => {
      release = r;
    });
    held = { enter, released };
    return { entered, release };
  };
  return { store, db, written, holdNext };
}

/** What a store holds, as rows of its table. */
function stored(db: Database.Database): unknown[] {
  return db
    .prepare("SELECT measurement, time_ns, tags, fields FROM series_points ORDER BY time_ns, tags")
    .all();
}

/** The identity of a point: measurement, tags and time. */
function key(p: Point): string {
  return `${p.measurement} ${JSON.stringify(Object.entries(p.tags).sort())} ${p.timeNs}`;
}

/** One node owning both partitions, with the real alert manager on each partition's state. */
async function owners(url: string) {
  const pool = newPool(url, "owner");
  const leases = new PartitionLeases({ pool, nodeId: "owner", partitions: PARTITIONS, leaseMs: 60_000 });
  leases.on("error", () => undefined);
  pgdb.cleanup(() => leases.stop());
  await leases.start();
  const log = silentLogger();
  const managers: AlertManager[] = [];
  const states: PgPartitionState[] = [];
  /** Each partition's owner's wall clock: the audit's `at`. */
  const clocks = [...Array(PARTITIONS).keys()].map((p) => T0 + 1500 * p);
  for (let p = 0; p < PARTITIONS; p++) {
    const state = await PgPartitionState.load({
      pool,
      leases,
      partition: p,
      token: leases.tokenOf(p)!,
      feed: true,
    });
    pgdb.cleanup(() => state.close());
    const staff: StaffIdentity = { id: "anna", name: "Anna", role: "staff", sites: SITES, units: ["unit-1"] };
    const channels = new Map<ChannelName, AlertChannel>([
      ["console", new ConsoleChannel({ connected: () => [staff] })],
    ]);
    const timers = new DurableTimers(state.timers, log, () => T0);
    managers.push(new AlertManager({ store: state.alerts, timers, log, channels, now: () => clocks[p]! }));
    states.push(state);
  }
  let n = 0;
  /** A fall raised, accepted and resolved in the partition's site. */
  const fallCycle = async (p: number) => {
    const alerts = managers[p]!;
    const site = SITES[p]!;
    n++;
    const e = {
      eventId: `ev-${n}`,
      schemaVersion: 1,
      deviceId: `vayyar-${n}`,
      occurredAt: new Date(T0).toISOString(),
      receivedAt: new Date(T0 + n).toISOString(),
      phase: "point",
      type: "fall.detected",
      data: { confidence: 0.97 },
      placement: { siteId: site, unitId: "unit-1", roomId: `r${n}`, residentRef: `res-${n}` },
      logSeq: n,
      profile: "test",
    } as LoggedEvent;
    const staff: StaffIdentity = { id: "anna", name: "Anna", role: "staff", sites: SITES, units: ["unit-1"] };
    const a = alerts.raise(FALL, e, null);
    alerts.accept(a.id, staff);
    alerts.resolve(a.id, staff, "false-alarm", "stood up by herself");
    await states[p]!.flushed();
    return a.id;
  };
  /** A renotify entry for the alert, as the owner appends it when its manager repeats the signal. */
  const renotify = async (p: number, alertId: string) => {
    const alert = managers[p]!.get(alertId)!;
    const { rows } = await pool.query<{ id: string }>(
      "SELECT max(id)::text AS id FROM alert_audit WHERE alert_id = $1",
      [alertId],
    );
    await leases.fenced(p, leases.tokenOf(p)!, (c) =>
      appendChanges(c, p, [renotifyEntry(alert, Number(rows[0]!.id))]),
    );
  };
  /** The partition's owner is now a node whose clock reads `at` (clocks of nodes disagree). */
  const setClock = (p: number, at: number) => {
    clocks[p] = at;
  };
  return { pool, fallCycle, renotify, setClock };
}

function writer(
  url: string,
  name: string,
  store: TimeSeriesStore,
  retryMs = 100,
  tuning: { fillPage?: number; fillMarginMs?: number } = {},
): ClusterAlertSeries {
  const w = new ClusterAlertSeries({
    pool: newPool(url, name),
    store,
    storeId: "embedded",
    partitions: PARTITIONS,
    log: silentLogger(),
    retryMs,
    follower: { pollMs: 200 },
    ...tuning,
  });
  pgdb.cleanup(() => w.stop());
  return w;
}

async function auditCount(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM alert_audit");
  return rows[0]!.n;
}

/** Caught up: the store's cursors at every partition's feed head. */
async function caughtUp(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ behind: number }>(
    `SELECT count(*)::int AS behind FROM change_feed_heads h
       LEFT JOIN alert_series_cursors c ON c.store = 'embedded' AND c.partition = h.partition
      WHERE coalesce(c.position, 0) < h.head`,
  );
  return rows[0]!.behind === 0;
}

/** What a single process's sink writes from the same alerts and audit, copied into SQLite. */
async function singleProcessPoints(pool: pg.Pool): Promise<unknown[]> {
  const db = openDb({ path: ":memory:" });
  pgdb.cleanup(() => db.close());
  for (const table of ["alerts", "alert_audit"]) {
    const columns = new Set(
      (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name),
    );
    const { rows } = await pool.query({ text: `SELECT * FROM ${table} ORDER BY 1`, rowMode: "array" });
    const { fields } = await pool.query(`SELECT * FROM ${table} LIMIT 0`);
    const names = fields.map((f) => f.name).filter((n) => columns.has(n));
    const insert = db.prepare(
      `INSERT INTO ${table} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
    );
    for (const r of rows as unknown[][])
      insert.run(
        ...fields
          .map((f, i) => [f.name, r[i]] as const)
          .filter(([n]) => columns.has(n))
          .map(([, v]) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v)),
      );
  }
  const ref = await recordingStore();
  const sink = new TimeSeriesSink({
    db,
    store: ref.store,
    sources: [alertAuditSource(db) as never],
    pollIntervalMs: 10,
  });
  sink.start();
  await until(
    () => `single process backlog ${sink.backlog("alerts")}`,
    () => sink.backlog("alerts") === 0 && ref.written.length > 0,
  );
  await sink.stop();
  return stored(ref.db);
}

/** The audit id a point was made from: the low digits of its time (alertPoint). */
function auditId(p: Point): number {
  return Number(p.timeNs % 1_000_000n);
}

/** Every audit entry's point written, and a point written more than once always the same. */
function expectEveryOneIdentical(written: Point[], audit: number): Map<string, Point[]> {
  const byKey = new Map<string, Point[]>();
  for (const p of written) byKey.set(key(p), [...(byKey.get(key(p)) ?? []), p]);
  expect(byKey.size).toBe(audit);
  for (const same of byKey.values()) for (const p of same) expect(p).toEqual(same[0]);
  return byKey;
}

/** The audit ids of the transitions still in the change feed. */
async function inFeed(pool: pg.Pool): Promise<Set<number>> {
  const { rows } = await pool.query<{ seq: number }>(
    "SELECT (message->>'seq')::int AS seq FROM change_feed WHERE message->>'kind' IS DISTINCT FROM 'renotify'",
  );
  return new Set(rows.map((r) => r.seq));
}

/** Every feed entry so old that a prune with an hour's retention takes it. */
async function ageFeed(pool: pg.Pool): Promise<number> {
  await pool.query("UPDATE change_feed SET appended_at = now() - interval '2 hours'");
  return pruneChanges(pool, 3_600_000);
}

function expectOnceEach(written: Point[], audit: number): void {
  const keys = written.map(key);
  expect(new Set(keys).size).toBe(keys.length);
  expect(keys.length).toBe(audit);
}

describe("the alerts' time series on a cluster", () => {
  it("raise, accept and resolve in two partitions reach the store once each, as a single process writes them; a renotify makes no point", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, db, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    await a.start();
    expect(a.isWriter).toBe(true);
    const first = await o.fallCycle(0);
    await o.fallCycle(1);
    await o.fallCycle(1);
    // The renotify alone in its batch: it must not write the resolved point again.
    const flushed = performance.now();
    await until(
      () => `${written.length} points before the renotify`,
      () => caughtUp(o.pool),
    );
    console.log(
      `alert points: last flush to its points written and the cursor saved in ${(performance.now() - flushed).toFixed(0)} ms (polled every 10 ms)`,
    );
    await o.renotify(0, first);
    const { rows: renotified } = await o.pool.query(
      "SELECT position FROM change_feed WHERE message->>'kind' = 'renotify'",
    );
    expect(renotified).toHaveLength(1);
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}: ${JSON.stringify(a.status())}`,
      () => caughtUp(o.pool),
    );
    expectOnceEach(written, audit);
    expect(new Set(written.map((p) => p.tags.site))).toEqual(new Set(SITES));
    expect(written.map((p) => p.tags.action)).toEqual(
      expect.arrayContaining(["raised", "accepted", "resolved"]),
    );
    // The same measurement, tags, time and fields as the single process's sink.
    expect(stored(db)).toEqual(await singleProcessPoints(o.pool));
    expect(a.status()).toMatchObject({ pointsWritten: audit, pruned: 0, filled: 0, pointsRejected: 0 });
    expect(await a.backlog()).toBe(0);
  });

  it("a second node does not write while the first does", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    const b = writer(url, "node-b", store);
    await a.start();
    await b.start();
    expect([a.isWriter, b.isWriter, a.status().lastError]).toEqual([true, false, null]);
    for (let i = 0; i < 3; i++) {
      await o.fallCycle(0);
      await o.fallCycle(1);
    }
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}`,
      () => caughtUp(o.pool),
    );
    // b asked for the lock several times meanwhile (retryMs 100 ms).
    await new Promise((r) => setTimeout(r, 300));
    expectOnceEach(written, audit);
    expect(b.status().pointsWritten).toBe(0);
    expect(b.isWriter).toBe(false);
  });

  it("a node taking over after the writer stopped resumes from the cursor: nothing lost, nothing again", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, db, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    await a.start();
    await o.fallCycle(0);
    await o.fallCycle(1);
    await until(
      () => `${written.length} points`,
      () => caughtUp(o.pool),
    );
    const before = written.length;
    expect(before).toBe(await auditCount(o.pool));
    await a.stop();
    // Transitions while nobody writes: the next writer must take exactly these.
    await o.fallCycle(0);
    await o.fallCycle(1);
    const b = writer(url, "node-b", store);
    const became = new Promise((r) => b.once("writer", r));
    await b.start();
    await became;
    await o.fallCycle(1);
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}`,
      () => caughtUp(o.pool),
    );
    expectOnceEach(written, audit);
    expect(b.status().pointsWritten).toBe(audit - before);
    expect(stored(db)).toEqual(await singleProcessPoints(o.pool));
  });

  it("a writer whose lock connection is killed gives way, and the next writer goes on from the cursor", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    const b = writer(url, "node-b", store);
    await a.start();
    await b.start();
    await o.fallCycle(0);
    await until(
      () => `${written.length} points`,
      () => caughtUp(o.pool),
    );
    const lost = new Promise((r) => a.once("writer", r));
    const { rows } = await o.pool.query<{ killed: boolean }>(
      "SELECT pg_terminate_backend(pid) AS killed FROM pg_locks WHERE locktype = 'advisory' AND objid = 3 AND granted",
    );
    const killed = performance.now();
    expect(rows.map((r) => r.killed)).toEqual([true]);
    expect(await lost).toBe(false);
    // Whichever node asks first (the waiting one, or the first on a new connection) writes on.
    await until(
      () => "no writer",
      () => a.isWriter || b.isWriter,
    );
    console.log(
      `alert series writer: lock connection killed to the next writer in ${(performance.now() - killed).toFixed(0)} ms (retryMs 100)`,
    );
    await o.fallCycle(1);
    await o.fallCycle(0);
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}`,
      () => caughtUp(o.pool),
    );
    expectOnceEach(written, audit);
  });

  it("a writer cut off in the middle of a batch: the next writer writes that batch again over itself, and the old one's late cursor does not move it back", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, written, holdNext } = await recordingStore();
    const a = writer(url, "node-a", store);
    const b = writer(url, "node-b", store);
    await a.start();
    await b.start();
    expect([a.isWriter, b.isWriter]).toEqual([true, false]);
    const hold = holdNext();
    await o.fallCycle(0);
    const inFlight = await hold.entered;
    // a is inside its write of partition 0's batch, nothing of it accepted yet, when its lock goes.
    expect(inFlight).toBeGreaterThan(0);
    expect(written).toHaveLength(0);
    await o.pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 3 AND granted",
    );
    await until(
      () => "b is not the writer",
      () => b.isWriter,
    );
    // b writes the batch a still holds, and more of partition 0, moving its cursor past a's batch.
    await o.fallCycle(0);
    await o.fallCycle(1);
    await until(
      () => `${written.length} points`,
      () => caughtUp(o.pool),
    );
    const before = await o.pool.query<{ partition: number; position: string }>(
      "SELECT partition, position::text FROM alert_series_cursors ORDER BY partition",
    );
    // a's write now ends: its points again, and its cursor, behind b's.
    const aDone = new Promise((r) => a.once("writer", r));
    hold.release();
    expect(await aDone).toBe(false);
    const after = await o.pool.query<{ partition: number; position: string }>(
      "SELECT partition, position::text FROM alert_series_cursors ORDER BY partition",
    );
    expect(after.rows).toEqual(before.rows);
    const audit = await auditCount(o.pool);
    const keys = written.map(key);
    expect(new Set(keys).size).toBe(audit);
    // Only the batch in flight was written twice.
    expect(keys.length).toBe(audit + inFlight);
  });

  it("a feed pruned before any writer: every transition is filled in from the audit, as a single process writes them, and writing goes on after the cut", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    await o.fallCycle(0);
    await o.fallCycle(1);
    // Nobody wrote these before the retention ran out.
    const pruned = await ageFeed(o.pool);
    expect(pruned).toBeGreaterThan(0);
    expect(await inFeed(o.pool)).toEqual(new Set());
    const { store, db, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    const gaps: { partition: number; pruned: number }[] = [];
    a.on("gap", (g) => gaps.push(g));
    await a.start();
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}`,
      () => caughtUp(o.pool),
    );
    expect(gaps.reduce((s, g) => s + g.pruned, 0)).toBe(pruned);
    // No cursor, so no lower bound; nothing left in the feed, so no upper one: the whole audit, once.
    expectOnceEach(written, audit);
    expect(a.status()).toMatchObject({ pruned, filled: audit, unfilled: 0, pointsWritten: 0 });
    await o.fallCycle(0);
    const more = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${more}`,
      () => caughtUp(o.pool),
    );
    expectOnceEach(written, more);
    expect(stored(db)).toEqual(await singleProcessPoints(o.pool));
  });

  it("a writer stopped past the feed's retention: the next fills in every pruned transition across owners' clocks, duplicates only in the overlap, identical", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    const { store, db, written } = await recordingStore();
    const a = writer(url, "node-a", store);
    await a.start();
    await o.fallCycle(0);
    await o.fallCycle(1);
    await until(
      () => `${written.length} points`,
      () => caughtUp(o.pool),
    );
    const before = written.slice();
    expect(before).toHaveLength(await auditCount(o.pool));
    /** Audit entries of one fall's cycle. */
    const cycle = before.length / 2;
    await a.stop();
    // While nobody writes, partition 0 moves to a node whose clock is a minute behind the first
    // owner's (its transitions' at is below what was written last), partition 1 to one an hour ahead.
    o.setClock(0, T0 - 60_000);
    o.setClock(1, T0 + 3_600_000);
    const renotified = await o.fallCycle(0);
    await o.fallCycle(1);
    await o.fallCycle(0);
    await o.renotify(0, renotified);
    await o.fallCycle(1);
    const pruned = await ageFeed(o.pool);
    const cutIds = (await o.pool.query<{ id: number }>("SELECT id::int FROM alert_audit")).rows
      .map((r) => r.id)
      .filter((id) => !before.some((p) => auditId(p) === id));
    expect(cutIds).toHaveLength(4 * cycle);
    expect(await inFeed(o.pool)).toEqual(new Set());
    // Then partition 0's owner is one whose clock is two minutes behind: the first transition still
    // in the feed is older, by its at, than the pruned ones before it.
    o.setClock(0, T0 - 120_000);
    await o.fallCycle(0);
    const kept = await inFeed(o.pool);
    expect(kept.size).toBe(cycle);
    // The clocks as the window must cover them: in partition 0 the pruned transitions are older by
    // their at than the last written one, and the first one kept is older than the pruned ones.
    const atOf = async (ids: number[]) =>
      (
        await o.pool.query<{ at: string }>(
          "SELECT at::text FROM alert_audit WHERE id = ANY($1::bigint[]) AND site_id = $2",
          [ids, SITES[0]],
        )
      ).rows.map((r) => Number(r.at));
    const lastWritten = Math.max(
      ...before.filter((p) => p.tags.site === SITES[0]).map((p) => Number(p.timeNs / 1_000_000n)),
    );
    const cutAt = await atOf(cutIds);
    expect(cutAt).toHaveLength(2 * cycle);
    expect(Math.max(...cutAt)).toBeLessThan(lastWritten);
    expect(Math.max(...(await atOf([...kept])))).toBeLessThan(Math.min(...cutAt));
    const b = writer(url, "node-b", store, 100, { fillPage: 2 });
    const gaps: { partition: number; pruned: number }[] = [];
    const fills: { partitions: number[]; points: number; unfilled: number }[] = [];
    b.on("gap", (g) => gaps.push(g));
    b.on("filled", (f) => fills.push(f));
    await b.start();
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}: ${JSON.stringify(b.status())}`,
      () => caughtUp(o.pool),
    );
    // The prune took the entries written before the stop too; the cut is what came after them.
    const cut = pruned - before.length;
    expect(gaps.reduce((s, g) => s + g.pruned, 0)).toBe(cut);
    expect(new Set(fills.flatMap((f) => f.partitions))).toEqual(new Set([0, 1]));
    expect(fills.reduce((s, f) => s + f.unfilled, 0)).toBe(0);
    // Every transition's point, each as a single process makes it.
    const byKey = expectEveryOneIdentical(written, audit);
    expect(stored(db)).toEqual(await singleProcessPoints(o.pool));
    // Written again only what lies in the window's margins: points written before the stop, and
    // transitions still in the feed after the cut.
    const overlap = new Set([...before.map(auditId), ...kept]);
    const twice = [...byKey.values()].filter((ps) => ps.length > 1).map((ps) => auditId(ps[0]!));
    expect(twice.filter((id) => !overlap.has(id))).toEqual([]);
    expect([...byKey.values()].every((ps) => ps.length <= 2)).toBe(true);
    expect(b.status()).toMatchObject({ pruned: cut, unfilled: 0, pointsRejected: 0 });
    expect(b.status().filled).toBeGreaterThanOrEqual(cutIds.length);
  });

  it("a writer cut off in the middle of a fill-in leaves its cursor before the cut, and the next writer fills the window in", async () => {
    const url = await pgdb.fresh();
    const o = await owners(url);
    await o.fallCycle(0);
    await o.fallCycle(1);
    expect(await ageFeed(o.pool)).toBeGreaterThan(0);
    const { store, db, written, holdNext } = await recordingStore();
    const a = writer(url, "node-a", store);
    const b = writer(url, "node-b", store);
    const hold = holdNext();
    await a.start();
    await b.start();
    expect([a.isWriter, b.isWriter]).toEqual([true, false]);
    // a is inside the fill-in's first write, nothing of it accepted, when its lock goes.
    const inFlight = await hold.entered;
    expect(inFlight).toBeGreaterThan(0);
    expect(written).toHaveLength(0);
    await o.pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 3 AND granted",
    );
    await until(
      () => "b is not the writer",
      () => b.isWriter,
    );
    const audit = await auditCount(o.pool);
    await until(
      () => `${written.length} points of ${audit}: ${JSON.stringify(b.status())}`,
      () => caughtUp(o.pool),
    );
    // b found the cut itself (a's cursor did not pass it) and wrote the whole window.
    expect(b.status()).toMatchObject({ filled: audit, unfilled: 0 });
    expectOnceEach(written, audit);
    const aDone = new Promise((r) => a.once("writer", r));
    hold.release();
    expect(await aDone).toBe(false);
    expectEveryOneIdentical(written, audit);
    expect(stored(db)).toEqual(await singleProcessPoints(o.pool));
  });
});
