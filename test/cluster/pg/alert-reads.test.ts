/**
 * The reports' alert reads on a real PostgreSQL (Debian's postgresql 15, started for this file): the
 * contract shared with SQLite, over alerts and audit written to the tables a partition's owner
 * flushes to; and the time-saved job run by one node at a time.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/cluster/partitions.js";
import { PgAlertReads } from "../../../src/cluster/pg/alert-reads.js";
import { JOB_LOCKS, PgJobLock } from "../../../src/cluster/pg/job-lock.js";
import { TimeSavedJob } from "../../../src/reports/timesaved.js";
import { EmbeddedSeriesStore } from "../../../src/store/embedded-series.js";
import type { Point, TimeSeriesStore } from "../../../src/store/timeseries.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { tempDbs } from "../../helpers/tempdb.js";
import { alertReadsContract } from "../../reports/alert-reads.contract.js";
import { PROFILES, shippedModel } from "../../reports/fixtures.js";

const pgs = pgTestDatabases("alert_reads");
const PARTITIONS = 8;

alertReadsContract("PostgreSQL", async () => {
  const pool = new pg.Pool({ connectionString: await pgs.fresh(), max: 4 });
  let position = 0;
  return {
    reads: new PgAlertReads(pool, PARTITIONS),
    alert: async (row) => {
      const cols = Object.keys(row);
      await pool.query(
        `INSERT INTO alerts (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`,
        Object.values(row),
      );
    },
    audit: async (e) => {
      await pool.query(
        `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, reason, state_after, site_id, unit_id, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          e.alertId,
          e.at,
          e.action,
          e.actor.id,
          e.actor.name,
          e.reason,
          e.stateAfter,
          e.siteId,
          e.unitId,
          null,
        ],
      );
    },
    device: async (id, profile, siteId) => {
      await pool.query(
        "INSERT INTO devices (id, profile, site_id, unit_id, secret_hash, created_at, updated_at) VALUES ($1, $2, $3, 'unit-1', 'x', 0, 0)",
        [id, profile, siteId],
      );
    },
    event: async (siteId, at) => {
      // The alert's partition holds the event; another partition has a decoy at the same position.
      const p = partitionOf(siteId, PARTITIONS);
      const n = ++position;
      for (const [partition, occurred] of [
        [p, at],
        [(p + 1) % PARTITIONS, at + 12_345],
      ])
        await pool.query(
          `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data,
                               partition, position)
           VALUES ($1, 'radar-1', 'fall.detected', 'start', $2, $2, $3, 'unit-1', 'p', '{}', $4, $5)`,
          [`e-${partition}-${n}`, occurred, siteId, partition, n],
        );
      return n;
    },
    cleanup: () => pool.end(),
  };
});

const dbs = tempDbs("ata-job-lock-");
afterEach(() => dbs.cleanup());

describe("one time-saved run at a time across nodes", () => {
  it("two nodes' time-saved jobs started together: one computes and writes, the other skips its run", async () => {
    const url = await pgs.fresh();
    const pools = [1, 2].map(() => new pg.Pool({ connectionString: url, max: 3 }));
    pgs.cleanup(() => Promise.all(pools.map((p) => p.end())));
    const series = new EmbeddedSeriesStore({ path: ":memory:" });
    await series.start();
    pgs.cleanup(() => series.stop());
    // The shared store holds the first write until both runs have been asked for.
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const writes: string[] = [];
    const sharedBy = (node: string): TimeSeriesStore =>
      new Proxy(series, {
        get(target, prop, receiver) {
          if (prop === "write")
            return async (points: Point[]) => {
              writes.push(node);
              // A second node writing at all is the failure: let both finish so the test says so.
              if (node !== "node-1") open();
              await gate;
              return target.write(points);
            };
          const v = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    const site = { id: "site-a", timeZone: "Europe/Copenhagen", units: [{ id: "unit-1" }] };
    const now = Date.parse("2026-11-20T12:00:00Z");
    const jobs = (["node-1", "node-2"] as const).map(
      (node, i) =>
        new TimeSavedJob({
          db: dbs.open().db,
          store: sharedBy(node),
          model: shippedModel(),
          sites: [site],
          profiles: PROFILES,
          now: () => now,
          alertReads: new PgAlertReads(pools[i]!, PARTITIONS),
          lock: new PgJobLock(pools[i]!, JOB_LOCKS.timeSaved),
        }),
    );
    const skipped: string[] = [];
    for (const [i, j] of jobs.entries()) j.on("skipped", () => skipped.push(`node-${i + 1}`));
    const first = jobs[0]!.runOnce();
    // node-1 is inside its run (its first write waits at the gate) when node-2's run starts.
    while (writes.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await jobs[1]!.runOnce();
    open();
    const ran = await first;
    expect(ran.map((r) => r.site)).toEqual(["site-a"]);
    expect(ran[0]!.points).toBeGreaterThan(0);
    expect(second).toEqual([]);
    expect(skipped).toEqual(["node-2"]);
    expect(new Set(writes)).toEqual(new Set(["node-1"]));
    // The lock went with node-1's run: node-2's next run computes.
    expect((await jobs[1]!.runOnce()).map((r) => r.site)).toEqual(["site-a"]);
  });

  it("of two nodes' runs started together, one runs and the other skips; the next run is free again", async () => {
    const url = await pgs.fresh();
    const pools = [1, 2].map(() => new pg.Pool({ connectionString: url, max: 2 }));
    pgs.cleanup(() => Promise.all(pools.map((p) => p.end())));
    const [a, b] = pools.map((p) => new PgJobLock(p, JOB_LOCKS.timeSaved)) as [PgJobLock, PgJobLock];
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inside = new Promise<void>((r) => {
      entered = r;
    });
    const first = a.run(async () => {
      entered();
      await held;
      return "a";
    });
    await inside;
    // While a's run is inside its work, b's try finds the lock taken.
    expect(await b.run(async () => "b")).toEqual({ ran: false });
    release();
    expect(await first).toEqual({ ran: true, value: "a" });
    expect(await b.run(async () => "b")).toEqual({ ran: true, value: "b" });
  });
});
