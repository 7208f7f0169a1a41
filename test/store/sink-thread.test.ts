/**
 * The sink on its own thread against a real database file and a real embedded store: rows committed
 * on the main connection become points, the cursors come back and are written on the main
 * connection (the thread's is read-only), the backlog is answered on this thread, and a thread that
 * dies is started again and resumes from its cursors without losing or doubling a point.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Logger } from "../../src/log.js";
import { getCursor } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { EVENT_MEASUREMENT } from "../../src/store/sink.js";
import { SinkThread } from "../../src/store/sink-thread.js";
import { currentThreadId } from "../../src/util/threads.js";
import { eventually } from "../helpers/gateway.js";
import { addDevice, addResident, prepareEventInsert, tempDb } from "../reports/fixtures.js";

const T0 = Date.parse("2026-11-02T10:00:00Z");

describe("the time-series sink on its own thread", () => {
  let t: ReturnType<typeof tempDb>;
  let thread: SinkThread;
  let store: EmbeddedSeriesStore;
  const seriesPath = () => join(t.dir, "series.db");

  beforeEach(async () => {
    t = tempDb();
    addResident(t.db, "R1", "home-a", "unit-1", "r1");
    addDevice(t.db, { id: "radar-1", profile: "acme/radar", site: "home-a", unit: "unit-1", room: "r1" });
    thread = new SinkThread({
      db: t.db,
      dbPath: join(t.dir, "ata.db"),
      store: { kind: "embedded", path: seriesPath() },
      storeId: "embedded",
      batchSize: 100,
      log: pino({ level: "silent" }) as unknown as Logger,
    });
    store = new EmbeddedSeriesStore({ path: seriesPath() });
  });
  afterEach(async () => {
    await thread.stop();
    await store.stop();
    t.close();
  });

  const insert = (n: number, from: number) => {
    const add = prepareEventInsert(t.db);
    for (let i = 0; i < n; i++)
      add({
        device: "radar-1",
        type: "device.heartbeat",
        at: T0 + (from + i) * 1000,
        site: "home-a",
        unit: "unit-1",
        room: "r1",
        data: { battery: 90 },
      });
    thread.notify();
  };
  const points = async () => {
    await store.start();
    const rows = await store.aggregate({
      measurement: EVENT_MEASUREMENT,
      field: "count",
      fn: "count",
      from: new Date(T0 - 1000),
      to: new Date(T0 + 3_600_000),
    });
    return rows[0]?.value ?? 0;
  };

  it("writes committed rows as points and hands its cursor to the main connection", async () => {
    thread.start();
    insert(250, 0);
    expect(thread.backlog()).toBe(250);
    await eventually(() => thread.backlog() === 0, 15_000, 50);
    expect(await points()).toBe(250);
    await eventually(() => getCursor(t.db, "sink:events@embedded") === thread.position(), 5_000, 50);
    expect(thread.position()).toBeGreaterThan(0);
    // The counters come in a message of their own, after the cursor's (the thread runs at background
    // priority, so on a busy machine a moment after).
    await eventually(() => thread.counters.pointsWritten >= 250, 5_000, 20);
    expect(thread.counters.pointsWritten).toBe(250);
    expect(thread.lastError).toBeUndefined();
  });

  it.runIf(process.platform === "linux")(
    "reports its Linux thread id, for per-thread CPU accounting, and the new one after a restart; runs at background priority",
    async () => {
      const tids: number[] = [];
      thread = new SinkThread({
        db: t.db,
        dbPath: join(t.dir, "ata.db"),
        store: { kind: "embedded", path: seriesPath() },
        storeId: "embedded",
        log: pino({ level: "silent" }) as unknown as Logger,
        onThread: (tid) => tids.push(tid),
      });
      thread.start();
      await eventually(() => tids.length === 1, 15_000, 20);
      expect(tids[0]).not.toBe(currentThreadId());
      expect(existsSync(`/proc/self/task/${tids[0]}`)).toBe(true);
      // Background priority for the thread alone (field 19 of stat: nice); this thread keeps its own.
      const nice = (tid: number | null) =>
        Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
      expect(nice(tids[0]!)).toBe(10);
      expect(nice(currentThreadId())).toBe(0);
      await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await eventually(() => tids.length === 2, 15_000, 20);
      expect(tids[1]).not.toBe(tids[0]);
    },
  );

  it("a thread that dies is started again and resumes from its cursors: no point lost or doubled", async () => {
    thread.start();
    insert(100, 0);
    await eventually(() => thread.backlog() === 0, 15_000, 50);
    // Kill the thread the hard way, then commit more while it is gone.
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    insert(150, 100);
    expect(thread.backlog()).toBe(150);
    await eventually(() => thread.backlog() === 0, 15_000, 50);
    expect(await points()).toBe(250);
  });
});
