/**
 * The time-saved job's event reads on a real PostgreSQL (Debian's postgresql 15, started for this
 * file): the contract shared with SQLite, over rows in the shared event log as the nodes append them
 * (partition, position); and the job on a cluster node, which counts every node's events and leaves
 * the days past the log's retention alone.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/cluster/partitions.js";
import { PgEventReads } from "../../../src/cluster/pg/event-reads.js";
import { type RunSummary, TimeSavedJob } from "../../../src/reports/timesaved.js";
import { EmbeddedSeriesStore } from "../../../src/store/embedded-series.js";
import type { Point, TimeSeriesStore } from "../../../src/store/timeseries.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { tempDbs } from "../../helpers/tempdb.js";
import {
  type EventReadsFixture,
  ev,
  eventReadsContract,
  type LoggedEvent,
} from "../../reports/event-reads.contract.js";
import { PROFILES, shippedModel } from "../../reports/fixtures.js";

const pgs = pgTestDatabases("event_reads");
const PARTITIONS = 8;

/** Appends events to the shared log as a node does: each in its site's partition, at the next position. */
function appender(pool: pg.Pool): (...events: LoggedEvent[]) => Promise<void> {
  const heads = new Map<number, number>();
  let e = 0;
  return async (...events) => {
    for (const x of events) {
      const p = partitionOf(x.siteId, PARTITIONS);
      const position = (heads.get(p) ?? 0) + 1;
      heads.set(p, position);
      await pool.query(
        `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, room_id,
           resident_ref, profile, data, partition, position)
         VALUES ($1, $2, $3, 'point', $4, $4, $5, $6, $7, $8, 'p', $9, $10, $11)`,
        [
          `e-${++e}`,
          x.deviceId,
          x.type,
          x.at,
          x.siteId,
          x.unitId,
          x.roomId,
          x.residentRef,
          x.data,
          p,
          position,
        ],
      );
    }
  };
}

eventReadsContract("PostgreSQL", async (): Promise<EventReadsFixture> => {
  const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 4 });
  return { reads: new PgEventReads(pool, 30), log: appender(pool), cleanup: () => pool.end() };
});

const dbs = tempDbs("ata-event-reads-job-");
afterEach(() => dbs.cleanup());

describe("the time-saved job on a cluster node", () => {
  const DAY = 86_400_000;
  const site = { id: "site-a", timeZone: "Europe/Copenhagen", units: [{ id: "unit-1" }] };
  const now = Date.parse("2026-11-20T12:00:00Z");
  const RETENTION_DAYS = 5;
  // With a retention of 5 days at `now`, the log is complete from 2026-11-15T12:00Z. A day reads from
  // two days before its start (local midnight, 23:00Z): 2026-11-18 is the first day it holds whole.
  const lift = (date: string) =>
    ev({
      at: Date.parse(`${date}T10:00:00Z`),
      type: "lift.cycle",
      deviceId: "lift-1",
      data: '{"helpers":1}',
    });

  async function node() {
    const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 2 });
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
    // The node's own SQLite logged none of these: another node ingested them.
    const { db } = dbs.open();
    const job = new TimeSavedJob({
      db,
      eventReads: new PgEventReads(pool, RETENTION_DAYS),
      store,
      model: shippedModel(),
      sites: [site],
      profiles: PROFILES,
      now: () => now,
      backfillDays: 30,
    });
    const lifts = (day: string) =>
      written
        .filter(
          (p) =>
            p.measurement === "time_saved" &&
            p.tags.category === "lift_transfers" &&
            Number(p.timeNs / 1_000_000n) === Date.parse(`${day}T00:00:00+01:00`),
        )
        .map((p) => p.fields.count);
    const days = () =>
      [
        ...new Set(
          written.map((p) => new Date(Number(p.timeNs / 1_000_000n) + DAY / 2).toISOString().slice(0, 10)),
        ),
      ].sort();
    return { log: appender(pool), job, lifts, days };
  }

  it("counts the lift cycles other nodes ingested, from the shared log", async () => {
    const n = await node();
    await n.log(lift("2026-11-19"), lift("2026-11-19"));
    await n.job.recompute("site-a", "2026-11-19", "2026-11-20");
    expect(n.lifts("2026-11-19")).toEqual([2]);
  });

  it("a recompute leaves out the days past the log's retention, and writes nothing for them", async () => {
    const n = await node();
    await n.log(lift("2026-11-05"), lift("2026-11-17"), lift("2026-11-18"));
    const summary = await n.job.recompute("site-a", "2026-11-01", "2026-11-20");
    expect(n.days()).toEqual(["2026-11-18", "2026-11-19"]);
    expect(n.lifts("2026-11-18")).toEqual([1]);
    expect(summary.days).toBe(2);
  });

  it("the backfill computes only the days the log holds whole, once", async () => {
    const n = await node();
    await n.log(lift("2026-11-05"), lift("2026-11-18"));
    const computed: RunSummary[] = [];
    n.job.on("computed", (s: RunSummary) => computed.push(s));
    await n.job.start();
    await n.job.idle();
    await n.job.runOnce();
    await n.job.stop();
    // The backfill (to yesterday) and the two runs (yesterday and today): nothing before 2026-11-18.
    expect(n.days()).toEqual(["2026-11-18", "2026-11-19", "2026-11-20"]);
    expect(computed.map((s) => [s.from, s.to, s.days])).toEqual([
      ["2026-11-18", "2026-11-19", 1],
      ["2026-11-19", "2026-11-21", 2],
      ["2026-11-19", "2026-11-21", 2],
    ]);
  });
});
