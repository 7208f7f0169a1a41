/**
 * Device online history on a real PostgreSQL (Debian's postgresql 15, started for this file): the
 * contract shared with SQLite over the shared event log as nodes append to it (`appendEvents`), and
 * the retention: what the prune keeps of presence, with several nodes appending and pruning at once.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { appendEvents, type EventToLog, pruneEvents } from "../../../src/cluster/pg/event-log.js";
import { PgEventReads } from "../../../src/cluster/pg/event-reads.js";
import { PgPresenceReads } from "../../../src/cluster/pg/presence-reads.js";
import type { PlacedEvent } from "../../../src/model/event.js";
import { TimeSavedJob } from "../../../src/reports/timesaved.js";
import { EmbeddedSeriesStore } from "../../../src/store/embedded-series.js";
import type { Point, TimeSeriesStore } from "../../../src/store/timeseries.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { tempDbs } from "../../helpers/tempdb.js";
import { addDevice, addResident, PROFILES, shippedModel } from "../../reports/fixtures.js";
import {
  off,
  on,
  type PresenceLogged,
  type PresenceReadsFixture,
  presenceReadsContract,
  T0,
} from "../../reports/presence-reads.contract.js";

const pgs = pgTestDatabases("presence_reads");
const dbs = tempDbs("ata-presence-reads-job-");
afterEach(() => dbs.cleanup());
const PARTITIONS = 8;
const HOUR = 3_600_000;

let n = 0;
function toLog(x: PresenceLogged & { receivedAt?: number }): EventToLog {
  const at = new Date(x.at).toISOString();
  const event = {
    eventId: `e-${++n}`,
    schemaVersion: 1,
    type: x.type,
    deviceId: x.deviceId,
    occurredAt: at,
    receivedAt: new Date(x.receivedAt ?? x.at).toISOString(),
    phase: "point",
    data: x.node ? { reason: "test", node: x.node } : { reason: "test" },
    // Devices spread over sites, so over partitions: a prune works partition by partition.
    placement: { siteId: `site-${x.deviceId}`, unitId: "unit-1", roomId: null, residentRef: null },
  } as PlacedEvent;
  return { event, profile: "native", topic: null, raw: null };
}

async function append(pool: pg.Pool, events: readonly PresenceLogged[]): Promise<void> {
  const c = await pool.connect();
  try {
    await appendEvents(c, events.map(toLog), { partitions: PARTITIONS });
  } finally {
    c.release();
  }
}

/** Prunes what was received before `before` (the log's retention is counted back from now). */
const pruneBefore = (pool: pg.Pool, before: number) => pruneEvents(pool, Date.now() - before);

presenceReadsContract("PostgreSQL", async (): Promise<PresenceReadsFixture> => {
  const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 4 });
  return {
    reads: new PgPresenceReads(pool),
    // One group per event: the order given is the log's order.
    log: async (...events) => {
      for (const e of events) await append(pool, [e]);
    },
    prune: async (before) => {
      await pruneBefore(pool, before);
    },
    cleanup: () => pool.end(),
  };
});

describe("presence on a cluster: the prune keeps each device's state at the log's start", () => {
  it("two nodes appending and pruning at once leave every device's history at and after the cut as it was", async () => {
    const url = await pgs.fresh();
    const a = new pg.Pool({ connectionString: url, max: 4 });
    const b = new pg.Pool({ connectionString: url, max: 4 });
    pgs.cleanup(() => a.end());
    pgs.cleanup(() => b.end());
    const reads = new PgPresenceReads(a);
    // 120 devices, each a different history over 48 hours before T0 on nodes a and b, a change every
    // 1-7 hours.
    const devices = Array.from({ length: 120 }, (_, d) => `radar-${d}`);
    const byNode: Record<"node-a" | "node-b", PresenceLogged[]> = { "node-a": [], "node-b": [] };
    devices.forEach((id, d) => {
      let t = T0 - 48 * HOUR + d * 1000;
      let k = d;
      while (t < T0) {
        const node = k % 3 === 0 ? "node-b" : "node-a";
        byNode[node].push((k * 7 + d) % 5 < 3 ? on(id, t, node) : off(id, t, node));
        t += (1 + ((k * 13 + d) % 7)) * HOUR;
        k++;
      }
    });
    // Appended by receipt as a node would, in 6-hour slices (the prune cuts by position, which follows
    // receipt): both nodes append a slice's changes at once, in groups of 50.
    const groups = (list: PresenceLogged[]) =>
      Array.from({ length: Math.ceil(list.length / 50) }, (_, g) => list.slice(g * 50, g * 50 + 50));
    for (let t = T0 - 48 * HOUR; t < T0; t += 6 * HOUR) {
      const slice = (list: PresenceLogged[]) => list.filter((e) => e.at >= t && e.at < t + 6 * HOUR);
      await Promise.all([
        (async () => {
          for (const g of groups(slice(byNode["node-a"]))) await append(a, g);
        })(),
        (async () => {
          for (const g of groups(slice(byNode["node-b"]))) await append(b, g);
        })(),
      ]);
    }
    const windows = [T0 - 12 * HOUR, T0 - 6 * HOUR, T0];
    const before = await Promise.all(windows.map((w) => reads.onlineHistories(devices, w, T0 + HOUR)));
    expect(before[2]!.size).toBe(120);
    // Every device has a known state at T0 before the prune: the test compares something.
    expect([...before[2]!.values()].every((h) => h.initial !== null)).toBe(true);

    // Both nodes prune at once, twice, while a node appends the next changes. Each cut falls half an
    // hour before a slice's end, where no change is, so it takes whole slices (all changes are at
    // whole hours plus under two minutes).
    const later = devices.slice(0, 40).map((id, d) => on(id, T0 + 10 * 60_000 + d, "node-b"));
    const [deleted] = await Promise.all([
      Promise.all([pruneBefore(a, T0 - 24.5 * HOUR), pruneBefore(b, T0 - 24.5 * HOUR)]),
      append(b, later),
    ]);
    await Promise.all([pruneBefore(b, T0 - 12.5 * HOUR), pruneBefore(a, T0 - 12.5 * HOUR)]);
    expect(deleted[0]! + deleted[1]!).toBeGreaterThan(0);
    const { rows } = await a.query("SELECT count(*)::int AS n FROM events WHERE occurred_at < $1", [
      T0 - 24 * HOUR,
    ]);
    expect(rows[0].n).toBe(0);

    const after = await Promise.all(windows.map((w) => reads.onlineHistories(devices, w, T0 + HOUR)));
    for (const [k, w] of windows.entries())
      for (const id of devices) {
        const want = before[k]!.get(id)!;
        const got = after[k]!.get(id)!;
        // Only the changes appended meanwhile differ.
        expect({ id, w, initial: got.initial }).toEqual({ id, w, initial: want.initial });
        expect(got.changes.filter((c) => c.at < T0)).toEqual(want.changes.filter((c) => c.at < T0));
      }
  }, 60_000);
});

describe("presence on a cluster: a change received late", () => {
  it("a pruned change that occurred before the one kept does not replace it", async () => {
    const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 4 });
    pgs.cleanup(() => pool.end());
    await append(pool, [on("radar-1", T0 - 40 * HOUR, "node-a"), off("radar-1", T0 - 30 * HOUR, "node-a")]);
    await pruneBefore(pool, T0 - 29.5 * HOUR);
    // Forwarded a day late (a node cut off from PostgreSQL): received after the offline it precedes.
    const late = { ...off("radar-1", T0 - 50 * HOUR, "node-a"), receivedAt: T0 - 29 * HOUR };
    const c = await pool.connect();
    try {
      await appendEvents(c, [toLog(late)], { partitions: PARTITIONS });
    } finally {
      c.release();
    }
    await pruneBefore(pool, T0 - 28 * HOUR);
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM events");
    expect(rows[0].n).toBe(0);
    const got = await new PgPresenceReads(pool).onlineHistories(["radar-1"], T0, T0 + HOUR);
    expect(got.get("radar-1")).toEqual({ initial: false, changes: [] });
  });
});

describe("night supervision on a cluster node", () => {
  it("the time-saved job reads fall sensors' nights from the shared log, pruned or not, with the owner's offline only", async () => {
    const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 4 });
    pgs.cleanup(() => pool.end());
    const series = new EmbeddedSeriesStore({ path: ":memory:" });
    await series.start();
    pgs.cleanup(() => series.stop());
    const written: Point[] = [];
    const store = new Proxy(series, {
      get(target, prop, receiver) {
        if (prop === "write")
          return async (points: Point[]) => {
            written.push(...points);
            return target.write(points);
          };
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as TimeSeriesStore;
    // The node's SQLite has the replicated devices and residents, and none of the presence changes.
    const { db } = dbs.open();
    const site = { id: "site-a", timeZone: "Europe/Copenhagen", units: [{ id: "unit-1" }, { id: "unit-2" }] };
    for (const [unit, n] of [
      ["unit-1", 1],
      ["unit-2", 2],
    ] as const) {
      addResident(db, `res-${n}`, "site-a", unit, `room-${n}`);
      addDevice(db, { id: `radar-${n}`, profile: "acme/radar", site: "site-a", unit, room: `room-${n}` });
    }
    const at = (iso: string) => Date.parse(iso);
    const siteOf = (e: EventToLog) => ({
      ...e,
      event: { ...e.event, placement: { ...e.event.placement, siteId: "site-a" } },
    });
    const appendAtSite = async (...events: PresenceLogged[]) => {
      const c = await pool.connect();
      try {
        await appendEvents(c, events.map(toLog).map(siteOf), { partitions: PARTITIONS });
      } finally {
        c.release();
      }
    };
    // radar-1: online on node-a since 10 November (pruned below), moved to node-b in the night of
    // the 19th, node-a's stale session timing out after: online throughout.
    // radar-2: online on node-a, which lets it go in the night: not.
    await appendAtSite(
      on("radar-1", at("2026-11-10T12:00:00Z"), "node-a"),
      on("radar-2", at("2026-11-10T12:00:00Z"), "node-a"),
    );
    await pruneBefore(pool, at("2026-11-15T00:00:00Z"));
    await appendAtSite(
      on("radar-1", at("2026-11-20T01:00:00Z"), "node-b"),
      off("radar-1", at("2026-11-20T01:02:00Z"), "node-a"),
      off("radar-2", at("2026-11-20T02:00:00Z"), "node-a"),
    );
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM events WHERE occurred_at < $1", [
      at("2026-11-15T00:00:00Z"),
    ]);
    expect(rows[0].n).toBe(0);
    const job = new TimeSavedJob({
      db,
      eventReads: new PgEventReads(pool, 5),
      presenceReads: new PgPresenceReads(pool),
      store,
      model: shippedModel(),
      sites: [site],
      profiles: PROFILES,
      now: () => at("2026-11-20T12:00:00Z"),
    });
    await job.recompute("site-a", "2026-11-19", "2026-11-20");
    const checks = (unit: string) =>
      written
        .filter((p) => p.tags.category === "night_supervision" && p.tags.unit === unit)
        .map((p) => p.fields.checks_saved);
    expect(checks("unit-1")).toHaveLength(1);
    expect(checks("unit-1")[0]).toBeGreaterThan(0);
    expect(checks("unit-2")).toEqual([0]);
  }, 30_000);
});
