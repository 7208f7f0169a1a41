/**
 * The event log on a real PostgreSQL 15 (started by the harness for this file): ingest "nodes" (each
 * its own pool) append groups at once with overlapping redeliveries, and a partition's owner follows
 * its partitions (`EventLogFollower`) in order, each event once, across added and removed partitions,
 * a killed connection, a slow consumer and retention.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/cluster/partitions.js";
import {
  appendEvents,
  EventLogFollower,
  type EventLogFollowerOptions,
  type EventToLog,
  type LoggedAt,
  type PartitionEvent,
  positionAtSeq,
  pruneEvents,
  readPartitionWindow,
} from "../../../src/cluster/pg/event-log.js";
import { exportToPostgres } from "../../../src/cluster/pg/export.js";
import type { PlacedEvent } from "../../../src/model/event.js";
import { EVENT_LOG_SCHEMA, openDb } from "../../../src/store/db.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { until } from "../../helpers/until.js";

const COUNT = 4;
const HOUR = 60 * 60 * 1000;

const pgdb = pgTestDatabases("evlog");

function newPool(url: string, name: string, max = 2): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name });
  pool.on("error", () => undefined);
  pgdb.cleanup(() => pool.end());
  return pool;
}

/** Two sites in each partition, so a partition's events come from more than one site. */
const SITES: string[][] = Array.from({ length: COUNT }, () => []);
for (let i = 0; SITES.some((s) => s.length < 2); i++) {
  const site = `home-${i}`;
  const list = SITES[partitionOf(site, COUNT)]!;
  if (list.length < 2) list.push(site);
}
/** Device d is at site DEVICE_SITE(d); 8 devices per partition. */
const deviceSite = (d: number): string => SITES[d % COUNT]![Math.floor(d / COUNT) % 2]!;

function logged(
  device: number,
  id: string,
  opts: { receivedAt?: number; type?: "device.heartbeat" | "call.manual"; raw?: Buffer } = {},
): EventToLog {
  const at = new Date(opts.receivedAt ?? Date.now()).toISOString();
  const type = opts.type ?? "device.heartbeat";
  const event = {
    eventId: id,
    schemaVersion: 1,
    type,
    deviceId: `dev-${device}`,
    occurredAt: at,
    receivedAt: at,
    phase: "point",
    data: type === "call.manual" ? { pressDurationSec: 1 } : { battery: 90 },
    placement: { siteId: deviceSite(device), unitId: "unit-1", roomId: null, residentRef: null },
  } as PlacedEvent;
  return { event, profile: "native", topic: `ata/v1/dev-${device}/events`, raw: opts.raw ?? null };
}

const partitionOfEvent = (e: EventToLog) => partitionOf(e.event.placement.siteId, COUNT);

async function append(pool: pg.Pool, events: EventToLog[]): Promise<(LoggedAt | null)[]> {
  const c = await pool.connect();
  try {
    return await appendEvents(c, events, { partitions: COUNT });
  } finally {
    c.release();
  }
}

interface Owner {
  follower: EventLogFollower;
  got: PartitionEvent[];
  gaps: { partition: number; reason: string; at: number }[];
  errors: Error[];
}

async function owner(
  url: string,
  name: string,
  opts: Partial<EventLogFollowerOptions> & { deliver?: EventLogFollowerOptions["deliver"] } = {},
): Promise<Owner> {
  const pool = newPool(url, name, 2);
  const o: Owner = { follower: null as unknown as EventLogFollower, got: [], gaps: [], errors: [] };
  o.follower = new EventLogFollower({
    pool,
    pollMs: 60_000,
    deliver: async (_p, events) => {
      o.got.push(...events);
    },
    ...opts,
  });
  o.follower.on("gap", (partition, reason, at) => o.gaps.push({ partition, reason, at }));
  o.follower.on("error", (err) => o.errors.push(err));
  await o.follower.start();
  pgdb.cleanup(() => o.follower.stop());
  return o;
}

/** Each event once, positions 1, 2, 3 ... in each partition in delivery order, only `partitions`. */
function expectInOrder(got: PartitionEvent[], partitions: readonly number[]): void {
  const last = new Map<number, number>();
  for (const e of got) {
    expect(partitions).toContain(e.partition);
    expect(e.position, `partition ${e.partition}`).toBe((last.get(e.partition) ?? 0) + 1);
    expect(e.event.logSeq).toBe(e.position);
    last.set(e.partition, e.position);
  }
}

async function rowsOf<R>(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<R[]> {
  return (await pool.query(sql, values)).rows as R[];
}

async function one<R>(pool: pg.Pool, sql: string): Promise<R> {
  const [row] = await rowsOf<R>(pool, sql);
  if (!row) throw new Error(`no row: ${sql}`);
  return row;
}

describe("the event log on PostgreSQL", () => {
  it("two nodes appending overlapping redeliveries at once log each event once, dense and in commit order per partition; owners started before, during and after get exactly their partitions' events", async () => {
    const url = await pgdb.fresh();
    const [nodeA, nodeB, check] = [newPool(url, "node-a"), newPool(url, "node-b"), newPool(url, "check")];
    // 1,600 events of 32 devices; node A takes 0..1000, node B 600..1600 from the other end, so
    // both hold the 400 in the middle and reach them at about the same time.
    const all = Array.from({ length: 1600 }, (_, i) => logged(i % 32, `e-${i}`));
    const GROUP = 40;
    const groupsA: EventToLog[][] = [];
    const groupsB: EventToLog[][] = [];
    for (let i = 0; i < 1000; i += GROUP) groupsA.push(all.slice(i, i + GROUP));
    for (let i = 1600; i > 600; i -= GROUP) groupsB.push(all.slice(i - GROUP, i));
    // A redelivery inside one group, too.
    groupsA[3] = [...groupsA[3]!, groupsA[3]![0]!];
    const mine = [0, 1, 2];

    const before = await owner(url, "owner-before");
    for (const p of mine) before.follower.add(p, 0);
    const answers = new Map<string, LoggedAt[]>();
    /** Per partition, the group ids in the order their positions were drawn. */
    const order = new Map<number, { group: string; from: number }[]>();
    const late: { during?: Owner } = {};
    const run = async (node: pg.Pool, name: string, groups: EventToLog[][]) => {
      for (const [g, group] of groups.entries()) {
        const answer = await append(node, group);
        expect(answer).toHaveLength(group.length);
        const seen = new Map<number, number>();
        answer.forEach((a, i) => {
          if (!a) return;
          const key = `${group[i]!.event.deviceId}/${group[i]!.event.eventId}`;
          answers.set(key, [...(answers.get(key) ?? []), a]);
          expect(a.partition).toBe(partitionOfEvent(group[i]!));
          // A group's new events take consecutive positions in each partition, in the group's order.
          const prev = seen.get(a.partition);
          if (prev !== undefined) expect(a.position).toBe(prev + 1);
          else
            (order.get(a.partition) ?? order.set(a.partition, []).get(a.partition)!).push({
              group: `${name}${g}`,
              from: a.position,
            });
          seen.set(a.partition, a.position);
        });
        if (name === "a" && g === 10) {
          late.during = await owner(url, "owner-during");
          for (const p of mine) late.during.follower.add(p, 0);
        }
      }
    };
    await Promise.all([run(nodeA, "a", groupsA), run(nodeB, "b", groupsB)]);

    // Every event logged exactly once, by whichever node came first.
    expect(answers.size).toBe(all.length);
    for (const [key, a] of answers) expect(a, key).toHaveLength(1);
    const { n, distinct } = await one<{ n: number; distinct: number }>(
      check,
      "SELECT count(*)::int AS n, count(DISTINCT (device_id, event_id))::int AS distinct FROM events",
    );
    expect([n, distinct]).toEqual([1600, 1600]);
    // Everything given twice has its `duplicates` row: the 400 both nodes held and the one in a group.
    const { dups } = await one<{ dups: number }>(check, "SELECT count(*)::int AS dups FROM duplicates");
    expect(dups).toBe(401);
    // Positions dense 1..n per partition, the head at n.
    const dense = await rowsOf<{ partition: number; n: number; min: string; max: string; head: string }>(
      check,
      `SELECT e.partition, count(*)::int AS n, min(position) AS min, max(position) AS max, h.head
         FROM events e JOIN event_log_heads h USING (partition) GROUP BY e.partition, h.head ORDER BY 1`,
    );
    expect(dense).toHaveLength(COUNT);
    for (const d of dense) expect([Number(d.min), Number(d.max), Number(d.head)]).toEqual([1, d.n, d.n]);
    // Commit order: within each node its groups follow one another, and two groups are in the same
    // order in every partition both touched (one order of commits, drawn under the head locks).
    const rank = new Map<string, Map<number, number>>();
    for (const [p, list] of order) {
      list.sort((x, y) => x.from - y.from);
      list.forEach(({ group }, i) => {
        rank.set(group, (rank.get(group) ?? new Map()).set(p, i));
      });
      for (const node of ["a", "b"]) {
        const own = list.filter((x) => x.group.startsWith(node)).map((x) => Number(x.group.slice(1)));
        expect(own).toEqual([...own].sort((x, y) => x - y));
      }
    }
    const groups = [...rank.keys()];
    for (const x of groups)
      for (const y of groups) {
        const shared = [...rank.get(x)!.keys()].filter((p) => rank.get(y)!.has(p));
        const signs = new Set(shared.map((p) => Math.sign(rank.get(x)!.get(p)! - rank.get(y)!.get(p)!)));
        expect(signs.size, `${x} and ${y} in partitions ${shared.join(", ")}`).toBeLessThanOrEqual(1);
      }

    const after = await owner(url, "owner-after");
    for (const p of mine) after.follower.add(p, 0);
    const expected = all.filter((e) => mine.includes(partitionOfEvent(e))).length;
    const during = late.during!;
    expect(during).toBeDefined();
    for (const o of [before, during, after]) {
      await until(
        () => `${o.got.length} of ${expected}`,
        () => o.got.length >= expected,
      );
      expectInOrder(o.got, mine);
      expect(o.errors).toEqual([]);
    }
    await new Promise((r) => setTimeout(r, 100));
    for (const o of [before, during, after]) {
      expect(o.got).toHaveLength(expected);
      expect(new Set(o.got.map((e) => `${e.event.deviceId}/${e.event.eventId}`)).size).toBe(expected);
    }
    // What was delivered is the event as logged.
    const sample = after.got.find((e) => e.event.eventId === "e-5")!;
    expect(sample.event).toMatchObject({
      ...all[5]!.event,
      logSeq: sample.position,
      profile: "native",
    });
  }, 40_000);

  it("a partition removed while a read of it is out gets nothing of what that read returns", async () => {
    const url = await pgdb.fresh();
    const o = await owner(url, "owner");
    o.follower.add(0, 0);
    o.follower.add(1, 0);
    // Whoever holds the heads table exclusively stops the follower's next read at its first row.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    pgdb.cleanup(() => blocker.end());
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE event_log_heads IN ACCESS EXCLUSIVE MODE");
    o.follower.add(2, 0); // a read of partitions 0, 1 and 2
    const pid = o.follower.status().backendPid;
    const check = newPool(url, "check");
    for (;;) {
      const { rows } = await check.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [
        pid,
      ]);
      if (rows[0]?.wait_event_type === "Lock") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    o.follower.remove(1);
    // The same transaction appends to partitions 0 and 1 and commits, which lets the read go on.
    await appendEvents(blocker, [logged(0, "a"), logged(1, "b")], { partitions: COUNT });
    await until("partition 0's event", () => o.got.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(o.got.map((e) => `${e.partition}:${e.event.eventId}`)).toEqual(["0:a"]);
    expect(o.errors).toEqual([]);
  });

  it("a partition removed mid-stream delivers nothing after its removal, and added again goes on from where it is added", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    let gate: (() => void) | null = null;
    const calls: { partition: number; first: number; at: number }[] = [];
    let removedAt = Number.POSITIVE_INFINITY;
    const o = await owner(url, "owner", {
      batch: 20,
      deliver: async (p, events) => {
        calls.push({ partition: p, first: events[0]!.position, at: performance.now() });
        // The first batch of partition 1 waits until the test removes the partition.
        if (p === 1 && !gate && calls.filter((c) => c.partition === 1).length === 1)
          await new Promise<void>((r) => {
            gate = r;
          });
        o.got.push(...events);
      },
    });
    o.follower.add(0, 0);
    o.follower.add(1, 0);
    const devices = [0, 1]; // partitions 0 and 1
    let i = 0;
    const burst = async (n: number) => {
      for (let k = 0; k < n; k++)
        await append(
          node,
          devices.map((d) => logged(d, `e-${i++}`)),
        );
    };
    await burst(30);
    await until("partition 1's first batch is held by its consumer", () => gate !== null);
    o.follower.remove(1);
    removedAt = performance.now();
    gate!();
    await burst(30);
    await until("partition 0 has all 60", () => o.got.filter((e) => e.partition === 0).length >= 60);
    await new Promise((r) => setTimeout(r, 200));
    // Partition 1 was handed exactly one batch (the one its consumer held when it was removed).
    expect(calls.filter((c) => c.partition === 1)).toHaveLength(1);
    expect(calls.filter((c) => c.partition === 1 && c.at > removedAt)).toEqual([]);
    expect(o.follower.status().position.has(1)).toBe(false);
    // Added again from its consumer's last position: the rest, once, in order.
    const last = Math.max(...o.got.filter((e) => e.partition === 1).map((e) => e.position));
    o.follower.add(1, last);
    await until("partition 1 caught up", () => o.got.filter((e) => e.partition === 1).length >= 60);
    await new Promise((r) => setTimeout(r, 100));
    expectInOrder(
      o.got.filter((e) => e.partition === 1),
      [1],
    );
    expect(o.got.filter((e) => e.partition === 1)).toHaveLength(60);
    expect(o.errors).toEqual([]);
  });

  it("a delivery that fails stops its partition, reported, while the others go on", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    const calls: number[] = [];
    const o = await owner(url, "owner", {
      deliver: async (p, events) => {
        calls.push(p);
        if (p === 0) throw new Error("flush refused");
        o.got.push(...events);
      },
    });
    o.follower.add(0, 0);
    o.follower.add(1, 0);
    await append(node, [logged(0, "a-1"), logged(1, "b-1")]);
    await until("the failure reported", () => o.errors.length >= 1);
    expect(o.errors[0]!.message).toMatch(/partition 0 failed; it is no longer followed/);
    expect((o.errors[0]!.cause as Error).message).toBe("flush refused");
    expect(o.follower.status().position.has(0)).toBe(false);
    await append(node, [logged(0, "a-2"), logged(1, "b-2")]);
    await until("partition 1 goes on", () => o.got.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(calls.filter((p) => p === 0)).toHaveLength(1);
    expect(o.got.map((e) => e.event.eventId)).toEqual(["b-1", "b-2"]);
  });

  it("an owner whose connection is killed mid-stream catches up without loss or repeat", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    const o = await owner(url, "owner", { reconnectMs: 1500 });
    for (let p = 0; p < COUNT; p++) o.follower.add(p, 0);
    let appended = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const group = Array.from({ length: 5 }, (_, k) => logged((i * 5 + k) % 32, `e-${i}-${k}`));
        await append(node, group);
        appended += group.length;
      }
    })();
    await until("some events delivered", () => o.got.length >= 100);
    const pid = o.follower.status().backendPid;
    expect(pid).not.toBeNull();
    await pgdb.admin.query("SELECT pg_terminate_backend($1)", [pid]);
    const atKill = appended;
    await until("the follower sees its connection gone", () => !o.follower.status().connected);
    // Events committed while it is away, and none after it is back: only its catch-up brings them.
    await until("events appended while away", () => appended >= atKill + 100);
    stop = true;
    await writer;
    expect(o.follower.status().reconnects).toBe(0);
    expect(o.got.length).toBeLessThan(appended);
    await until(
      () => `${o.got.length} of ${appended}`,
      () => o.got.length >= appended,
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(o.got).toHaveLength(appended);
    expectInOrder(o.got, [0, 1, 2, 3]);
    expect(o.follower.status().reconnects).toBe(1);
    expect(o.follower.status().backendPid).not.toBe(pid);
  });

  it("a slow consumer never gets a second batch of a partition before the first's promise resolves, while other partitions go on", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    const pending = new Map<number, () => void>();
    const calls = new Map<number, number>();
    let inFlight0 = 0;
    let maxInFlight0 = 0;
    const o = await owner(url, "owner", {
      batch: 25,
      deliver: async (p, events) => {
        calls.set(p, (calls.get(p) ?? 0) + 1);
        if (p === 0) {
          inFlight0++;
          maxInFlight0 = Math.max(maxInFlight0, inFlight0);
          await new Promise<void>((r) => pending.set(0, r));
          inFlight0--;
        }
        o.got.push(...events);
      },
    });
    o.follower.add(0, 0);
    o.follower.add(1, 0);
    // 100 events in each of partitions 0 and 1, in groups that each announce the partitions.
    for (let i = 0; i < 20; i++)
      await append(
        node,
        [0, 1].flatMap((d) => [0, 1, 2, 3, 4].map((k) => logged(d, `e-${i}-${k}`))),
      );
    const delivered = (p: number) => o.got.filter((e) => e.partition === p).length;
    await until("partition 1 delivered whole", () => delivered(1) >= 100);
    // Partition 0's first batch is still with its consumer: nothing more of it was handed over
    // while every group was announced and partition 1 was read to its end.
    expect(calls.get(0)).toBe(1);
    expect(o.follower.status().busy).toEqual([0]);
    while (delivered(0) < 100) {
      const before = calls.get(0);
      await new Promise((r) => setTimeout(r, 30));
      expect(calls.get(0)).toBe(before);
      const release = pending.get(0)!;
      pending.delete(0);
      release();
      await until("the next batch of partition 0, or its end", () => pending.has(0) || delivered(0) >= 100);
    }
    expect(maxInFlight0).toBe(1);
    expect(calls.get(0)).toBeGreaterThanOrEqual(4);
    expectInOrder(o.got, [0, 1]);
    expect(o.got).toHaveLength(200);
  });

  it("a prune cuts each partition's oldest events and a follower starting below the cut is told too_old, one past the head unknown", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    const day = 24 * HOUR;
    const now = Date.now();
    // Partition 0: five old, then three new; partition 1: two old only.
    await append(
      node,
      [0, 1, 2, 3, 4].map((k) => logged(0, `old-${k}`, { receivedAt: now - day - HOUR })),
    );
    await append(
      node,
      [0, 1].map((k) => logged(1, `old-${k}`, { receivedAt: now - day - HOUR })),
    );
    await append(
      node,
      [0, 1, 2].map((k) => logged(0, `new-${k}`)),
    );
    expect(await pruneEvents(node, day)).toBe(7);
    expect(await pruneEvents(node, day)).toBe(0);
    const heads = await rowsOf<{ partition: number; head: string; pruned_through: string }>(
      node,
      "SELECT partition, head, pruned_through FROM event_log_heads ORDER BY partition",
    );
    expect(heads.map((h) => [h.partition, Number(h.head), Number(h.pruned_through)])).toEqual([
      [0, 8, 5],
      [1, 2, 2],
    ]);

    const o = await owner(url, "owner");
    o.follower.add(0, 2);
    o.follower.add(1, 2);
    o.follower.add(2, 3);
    await until("two gaps told", () => o.gaps.length >= 2);
    expect(o.gaps.sort((x, y) => x.partition - y.partition)).toEqual([
      { partition: 0, reason: "too_old", at: 5 },
      { partition: 2, reason: "unknown", at: 0 },
    ]);
    expect(o.follower.status().position.has(0)).toBe(false);
    expect(o.got).toEqual([]);
    // From the cut, what is kept; partition 1 (at its head) gets its next event.
    o.follower.add(0, 5);
    await append(node, [logged(1, "next")]);
    await until("the kept events and the next", () => o.got.length >= 4);
    expect(o.got.map((e) => `${e.partition}:${e.position}:${e.event.eventId}`)).toEqual(
      expect.arrayContaining(["0:6:new-0", "0:7:new-1", "0:8:new-2", "1:3:next"]),
    );
    expect(o.got).toHaveLength(4);
    await expect(async () => pruneEvents(node, 0)).rejects.toThrow(RangeError);
  });

  it("a new owner reads a partition's recent events in one query: from the first received in the window up to its cursor, without holes", async () => {
    const url = await pgdb.fresh();
    const node = newPool(url, "node-a");
    const now = Date.now();
    const raw = Buffer.from('{"t":"call"}');
    // Partition 0: positions 1-3 received 3 h ago, 4 received 30 min ago, 5 two hours ago (a late
    // commit from a slow node), 6-7 now; partition 1 in between, never read for partition 0.
    await append(
      node,
      [1, 2, 3].map((k) => logged(0, `a-${k}`, { receivedAt: now - 3 * HOUR })),
    );
    await append(node, [logged(1, "other", { receivedAt: now })]);
    await append(node, [logged(0, "b", { receivedAt: now - HOUR / 2, type: "call.manual", raw })]);
    await append(node, [logged(0, "c", { receivedAt: now - 2 * HOUR })]);
    const [d, e] = await append(node, [logged(0, "d"), logged(0, "e")]);
    expect([d?.position, e?.position]).toEqual([6, 7]);

    const window = await readPartitionWindow(node, 0, { sinceMs: now - HOUR, through: 6 });
    expect(window.map((x) => [x.logSeq, x.eventId])).toEqual([
      [4, "b"],
      [5, "c"],
      [6, "d"],
    ]);
    expect(window[0]).toMatchObject({
      type: "call.manual",
      data: { pressDurationSec: 1 },
      profile: "native",
    });
    const { stored } = await one<{ stored: Buffer }>(
      node,
      "SELECT raw AS stored FROM events WHERE event_id = 'b'",
    );
    expect(stored).toEqual(raw);
    expect(await readPartitionWindow(node, 0, { sinceMs: now + HOUR, through: 7 })).toEqual([]);
    expect((await readPartitionWindow(node, 0, { sinceMs: 0, through: 7 })).map((x) => x.logSeq)).toEqual([
      1, 2, 3, 4, 5, 6, 7,
    ]);
    // The single process's cursor (a seq) as a position in each partition.
    const seqOfB = (await rowsOf<{ seq: string }>(node, "SELECT seq FROM events WHERE event_id = 'b'"))[0]!
      .seq;
    expect(await positionAtSeq(node, 0, Number(seqOfB))).toBe(4);
    expect(await positionAtSeq(node, 1, Number(seqOfB))).toBe(1);
    expect(await positionAtSeq(node, 0, 0)).toBe(0);
  });

  it("an export numbers a single process's events in their partitions in seq order: its rules cursor becomes a position per partition, and appends go on after them", async () => {
    const url = await pgdb.fresh();
    const dir = mkdtempSync(join(tmpdir(), "ata-evlog-export-"));
    pgdb.cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const sqlitePath = join(dir, "ata.db");
    const db = openDb({ path: sqlitePath });
    const insert = db.prepare(
      `INSERT INTO ${EVENT_LOG_SCHEMA}.events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data)
       VALUES (?, ?, 'device.heartbeat', 'point', ?, ?, ?, 'unit-1', 'native', '{"battery":90}')`,
    );
    const exported = Array.from({ length: 24 }, (_, i) => ({ seq: i + 1, device: (i * 7) % 32 }));
    const now = Date.now();
    for (const e of exported) insert.run(`s-${e.seq}`, `dev-${e.device}`, now, now, deviceSite(e.device));
    // The single process's rules had dealt with everything up to seq 15.
    db.prepare("UPDATE cursors SET position = 15, updated_at = ? WHERE name = 'rules:events'").run(now);
    db.close();
    await exportToPostgres({ sqlitePath, url, partitions: COUNT });

    const pool = newPool(url, "check");
    const placed = await rowsOf<{ seq: string; partition: number; position: string }>(
      pool,
      "SELECT seq, partition, position FROM events ORDER BY seq",
    );
    const next = new Map<number, number>();
    expect(placed.map((r) => [Number(r.seq), r.partition, Number(r.position)])).toEqual(
      exported.map((e) => {
        const p = partitionOf(deviceSite(e.device), COUNT);
        next.set(p, (next.get(p) ?? 0) + 1);
        return [e.seq, p, next.get(p)];
      }),
    );
    const heads = await rowsOf<{ partition: number; head: string }>(
      pool,
      "SELECT partition, head FROM event_log_heads",
    );
    expect(new Map(heads.map((h) => [h.partition, Number(h.head)]))).toEqual(next);

    // An owner of each partition starts at the cursor's position there and gets exactly seq 16..24.
    const o = await owner(url, "owner");
    const { position: cursor } = await one<{ position: string }>(
      pool,
      "SELECT position FROM cursors WHERE name = 'rules:events'",
    );
    expect(Number(cursor)).toBe(15);
    for (let p = 0; p < COUNT; p++) o.follower.add(p, await positionAtSeq(pool, p, Number(cursor)));
    await until("the nine events after the cursor", () => o.got.length >= 9);
    await new Promise((r) => setTimeout(r, 100));
    expect(o.got.map((e) => e.seq).sort((a, b) => a - b)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24]);
    // Cluster mode's appends go on from the heads.
    const [a] = await append(pool, [logged(0, "after-export")]);
    expect(a).toMatchObject({ partition: 0, position: next.get(0)! + 1 });
  });

  it("throughput of appendEvents in groups of 500, from one node and from two at once (printed, not asserted)", async () => {
    const url = await pgdb.fresh();
    const nodes = [newPool(url, "node-a"), newPool(url, "node-b")];
    const GROUPS = 12;
    const SIZE = 500;
    let id = 0;
    const groups = (n: number) =>
      Array.from({ length: n }, () => Array.from({ length: SIZE }, (_, k) => logged(k % 64, `t-${id++}`)));
    const measure = async (pools: pg.Pool[]) => {
      const work = pools.map(() => groups(GROUPS));
      const started = performance.now();
      await Promise.all(
        pools.map(async (pool, i) => {
          for (const g of work[i]!) await append(pool, g);
        }),
      );
      const s = (performance.now() - started) / 1000;
      return Math.round((pools.length * GROUPS * SIZE) / s);
    };
    await measure([nodes[0]!]); // warm-up: plans, caches
    const single = await measure([nodes[0]!]);
    const two = await measure(nodes);
    console.log(
      `appendEvents, groups of ${SIZE}: one node ${single} events/s, two nodes at once ${two} events/s`,
    );
    const { n } = await one<{ n: number }>(nodes[0]!, "SELECT count(*)::int AS n FROM events");
    expect(n).toBe(id);
  }, 40_000);
});
