import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Db, getCursor, openDb, setCursor } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { InfluxStore } from "../../src/store/influx.js";
import { EVENTS_CURSOR, TimeSeriesSink } from "../../src/store/sink.js";
import { type Influxd, startInfluxd } from "../helpers/influxd.js";

const BASE_MS = Date.parse("2026-05-01T00:00:00Z");

interface EventInsert {
  device?: string;
  type?: string;
  priority?: string | null;
  room?: string | null;
  resident?: string | null;
  data?: Record<string, unknown>;
  occurredAt?: number;
}

/** Inserts `count` event rows numbered from `first` (event ids e-<n>), as the ingest would. */
function insertEvents(db: Db, first: number, count: number, row: EventInsert = {}): void {
  const insert = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, site_id, unit_id,
       room_id, resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', ?, ?, ?, 'site-1', 'unit-a', ?, ?, 'acme-radar', ?)`,
  );
  db.transaction(() => {
    for (let n = first; n < first + count; n++) {
      const at = row.occurredAt ?? BASE_MS + n * 1000;
      insert.run(
        `e-${n}`,
        row.device ?? `dev-${n % 50}`,
        row.type ?? "device.heartbeat",
        row.priority === undefined ? null : row.priority,
        at,
        at + 5,
        row.room === undefined ? `room-${n % 10}` : row.room,
        row.resident === undefined ? null : row.resident,
        JSON.stringify(row.data ?? { battery: 90, rssi: -60 }),
      );
    }
  })();
}

/** Resolves once the sink has no backlog (checked after every batch it writes). */
function drained(sink: TimeSeriesSink, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sink.backlog() === 0) return resolve();
    const timer = setTimeout(() => {
      sink.off("written", check);
      reject(
        new Error(
          `backlog still ${sink.backlog()} after ${timeoutMs} ms (last error: ${sink.lastError?.message})`,
        ),
      );
    }, timeoutMs);
    const check = () => {
      if (sink.backlog() === 0) {
        clearTimeout(timer);
        sink.off("written", check);
        resolve();
      }
    };
    sink.on("written", check);
  });
}

function once<T = unknown>(sink: TimeSeriesSink, event: string): Promise<T> {
  return new Promise((resolve) => sink.once(event, resolve));
}

describe("TimeSeriesSink with InfluxDB", () => {
  let influxd: Influxd;
  let dir: string;
  let db: Db;
  let dbCounter = 0;
  let store: InfluxStore;
  const sinks: TimeSeriesSink[] = [];

  const query = async (text: string): Promise<unknown[][]> => {
    const url = `${influxd.url}/query?db=${store.database}&q=${encodeURIComponent(text)}`;
    const body = (await (await fetch(url)).json()) as {
      results: { error?: string; series?: { values: unknown[][] }[] }[];
    };
    if (body.results[0]?.error) throw new Error(body.results[0].error);
    return body.results[0]?.series?.[0]?.values ?? [];
  };
  const countPoints = async (): Promise<number> => {
    const values = await query('SELECT count("count") FROM "event"');
    return Number(values[0]?.[1] ?? 0);
  };
  const newSink = (options: Partial<ConstructorParameters<typeof TimeSeriesSink>[0]> = {}) => {
    const sink = new TimeSeriesSink({
      db,
      store,
      maxDelayMs: 20,
      pollIntervalMs: 10,
      retryInitialMs: 20,
      retryMaxMs: 200,
      ...options,
    });
    sinks.push(sink);
    return sink;
  };

  beforeAll(async () => {
    influxd = await startInfluxd();
  });
  afterAll(async () => {
    await influxd?.stop();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "ata-sink-"));
    db = openDb({ path: join(dir, "ata.db") });
    store = new InfluxStore({ host: influxd.host, port: influxd.port, database: `sink_${++dbCounter}` });
    await store.start();
  });
  afterEach(async () => {
    for (const sink of sinks.splice(0)) await sink.stop(1000);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes every event row as one point with placement tags and numeric data fields", async () => {
    insertEvents(db, 0, 1234);
    insertEvents(db, 1234, 1, {
      device: "pendant-7",
      type: "call.manual",
      priority: "high",
      room: "Room 12, east wing",
      resident: "r-5f2a",
      data: { pressDurationSec: 1.5 },
    });
    insertEvents(db, 1235, 1, {
      device: "radar-1",
      type: "fall.detected",
      room: null,
      data: { confidence: 0.93, location: { x: 1.5, y: 2 }, onGroundSec: 40 },
    });
    const sink = newSink();
    sink.start();
    await drained(sink);
    expect(await countPoints()).toBe(1236);
    expect(getCursor(db, EVENTS_CURSOR)).toBe(1236);
    expect(sink.counters).toMatchObject({
      rowsRead: 1236,
      pointsWritten: 1236,
      pointsSkipped: 0,
      writeFailures: 0,
    });

    const call = await query(
      `SELECT "count", "event_id", "pressDurationSec", "priority", "resident", "room", "site", "unit", "profile"
       FROM "event" WHERE "type"::tag = 'call.manual'`,
    );
    expect(call).toEqual([
      [
        "2026-05-01T00:20:34.000001235Z", // occurred_at + (seq 1235 mod 1e6) ns
        1,
        "e-1234",
        1.5,
        "high",
        "r-5f2a",
        "Room 12, east wing",
        "site-1",
        "unit-a",
        "acme-radar",
      ],
    ]);
    const fall = await query(
      `SELECT "confidence", "location_x", "location_y", "onGroundSec", "room" FROM "event" WHERE "device"::tag = 'radar-1'`,
    );
    expect(fall.map((r) => r.slice(1))).toEqual([[0.93, 1.5, 2, 40, null]]);
    const byType = await store.aggregate({
      measurement: "event",
      field: "count",
      fn: "sum",
      from: new Date(BASE_MS),
      to: new Date(BASE_MS + 86_400_000),
      groupBy: ["type"],
    });
    expect(byType.map((r) => [r.tags.type, r.value])).toEqual([
      ["call.manual", 1],
      ["device.heartbeat", 1234],
      ["fall.detected", 1],
    ]);
  });

  it("loses nothing and duplicates nothing when InfluxDB is killed and restarted while events keep coming", async () => {
    const sink = newSink({ batchSize: 500 });
    const failures: number[] = [];
    sink.on("writeFailed", (e: { attempt: number }) => failures.push(e.attempt));
    sink.start();
    let inserted = 0;
    const insert = (n: number) => {
      insertEvents(db, inserted, n);
      inserted += n;
      sink.notify();
    };

    insert(2000);
    await drained(sink);
    expect(await countPoints()).toBe(2000);

    influxd.kill(); // SIGKILL: nothing flushed, no goodbye
    for (let i = 0; i < 10; i++) {
      insert(300);
      if (i === 2) await once(sink, "writeFailed");
    }
    await once(sink, "writeFailed");
    expect(sink.backlog()).toBeGreaterThan(0);
    expect(sink.consecutiveFailures).toBeGreaterThan(0);
    expect(sink.lastError).toBeInstanceOf(Error);
    const stuckAt = getCursor(db, EVENTS_CURSOR);
    expect(stuckAt).toBeLessThan(inserted);

    const recovered = once(sink, "recovered");
    await influxd.restart(); // same data directory, same port
    insert(700);
    await recovered;
    await drained(sink);

    expect(inserted).toBe(5700);
    expect(await countPoints()).toBe(inserted);
    const distinct = await query('SELECT count(distinct("event_id")) FROM "event"');
    expect(Number(distinct[0]?.[1])).toBe(inserted);
    expect(getCursor(db, EVENTS_CURSOR)).toBe(inserted);
    expect(sink.consecutiveFailures).toBe(0);
    expect(failures.length).toBeGreaterThan(0);
    // /readyz shows lastError: the outage's error is history once writes succeed again.
    expect(sink.lastError).toBeUndefined();
  });

  it("resumes from the persisted cursor after a restart of the sink, and a replay from zero overwrites", async () => {
    insertEvents(db, 0, 10_000);
    const first = newSink({ batchSize: 1000 });
    first.start();
    await once(first, "written");
    await first.stop(0); // mid-way: no time to flush
    const position = getCursor(db, EVENTS_CURSOR);
    expect(position).toBeGreaterThanOrEqual(1000);
    expect(position).toBeLessThan(10_000);

    const second = newSink({ batchSize: 1000 });
    let reread = 0;
    second.on("written", (e: { rows: number }) => {
      reread += e.rows;
    });
    second.start();
    await drained(second);
    expect(reread).toBe(10_000 - position); // it did not start over
    expect(await countPoints()).toBe(10_000);
    await second.stop();

    setCursor(db, EVENTS_CURSOR, 0); // e.g. an operator replays the whole log
    const third = newSink({ batchSize: 1000 });
    third.start();
    await drained(third);
    expect(third.counters.pointsWritten).toBe(10_000);
    expect(await countPoints()).toBe(10_000);
  });

  it("waits up to maxDelay for a batch to fill, and stop() flushes what is left", async () => {
    const sink = newSink({ maxDelayMs: 60_000, pollIntervalMs: 5 });
    sink.start();
    insertEvents(db, 0, 10);
    sink.notify();
    expect(sink.backlog()).toBe(10);
    await sink.stop(5000);
    expect(sink.backlog()).toBe(0);
    expect(await countPoints()).toBe(10);
  });
});

describe("TimeSeriesSink sources and refusals (embedded store)", () => {
  let db: Db;
  let store: EmbeddedSeriesStore;
  let sink: TimeSeriesSink | undefined;

  beforeEach(async () => {
    db = openDb({ path: ":memory:" });
    store = new EmbeddedSeriesStore({ db });
    await store.start();
  });
  afterEach(async () => {
    await sink?.stop(1000);
    sink = undefined;
    await store.stop();
    db.close();
  });

  const sumOf = async (measurement: string, field: string) =>
    (
      await store.aggregate({
        measurement,
        field,
        fn: "sum",
        from: new Date(BASE_MS - 86_400_000),
        to: new Date(BASE_MS + 86_400_000),
      })
    ).map((r) => r.value);

  it("reads another registered outbox table with its own cursor", async () => {
    db.exec(
      "CREATE TABLE test_transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT, state TEXT, at INTEGER, site_id TEXT)",
    );
    const insert = db.prepare(
      "INSERT INTO test_transitions (alert_id, state, at, site_id) VALUES (?, ?, ?, 'site-1')",
    );
    for (let i = 0; i < 30; i++)
      insert.run(`a-${i % 10}`, ["raised", "accepted", "resolved"][i % 3], BASE_MS + i);
    insertEvents(db, 0, 5);
    sink = new TimeSeriesSink({ db, store, maxDelayMs: 10, pollIntervalMs: 5 });
    sink.addSource<{ id: number; alert_id: string; state: string; at: number; site_id: string }>({
      name: "transitions",
      table: "test_transitions",
      seqColumn: "id",
      map: (row) => ({
        measurement: "alert_transition",
        tags: { site: row.site_id, state: row.state },
        fields: { count: 1, alert_id: row.alert_id },
        timeNs: BigInt(row.at) * 1_000_000n,
      }),
    });
    sink.start();
    await drained(sink);
    expect(getCursor(db, "sink:transitions")).toBe(30);
    expect(getCursor(db, EVENTS_CURSOR)).toBe(5);
    expect(await sumOf("alert_transition", "count")).toEqual([30]);
    expect(await sumOf("event", "count")).toEqual([5]);
  });

  it("skips points the store refuses for good, reports them, and writes the rows behind them", async () => {
    // A string `battery` first: the numeric battery of the heartbeats below now conflicts.
    await store.write([
      {
        measurement: "event",
        tags: { device: "x" },
        fields: { battery: "full" },
        timeNs: BigInt(BASE_MS) * 1_000_000n,
      },
    ]);
    insertEvents(db, 0, 3);
    insertEvents(db, 3, 4, { type: "call.manual", data: { pressDurationSec: 2 } });
    sink = new TimeSeriesSink({ db, store, batchSize: 3, maxDelayMs: 10, pollIntervalMs: 5 });
    const rejected: unknown[] = [];
    sink.on("rejected", (e) => rejected.push(e));
    sink.start();
    await drained(sink);
    expect(rejected).toHaveLength(1);
    expect(sink.counters.pointsRejected).toBe(3);
    expect(await sumOf("event", "pressDurationSec")).toEqual([8]);
    expect(getCursor(db, EVENTS_CURSOR)).toBe(7);
  });

  it("skips a row whose mapping throws, and keeps going", async () => {
    db.exec("CREATE TABLE things (seq INTEGER PRIMARY KEY, v REAL)");
    db.exec("INSERT INTO things (v) VALUES (1), (NULL), (3)");
    sink = new TimeSeriesSink({
      db,
      store,
      sources: [
        {
          name: "things",
          table: "things",
          map: (row: { seq: number; v: number | null }) => {
            if (row.v === null) throw new Error("no value");
            return {
              measurement: "thing",
              tags: {},
              fields: { v: row.v },
              timeNs: BigInt(BASE_MS + row.seq) * 1_000_000n,
            };
          },
        },
      ],
      maxDelayMs: 10,
      pollIntervalMs: 5,
    });
    const skipped = once<{ seq: number; reason: string }>(sink, "skipped");
    sink.start();
    expect(await skipped).toMatchObject({ seq: 2, reason: "map threw: no value" });
    await drained(sink);
    expect(await sumOf("thing", "v")).toEqual([4]);
  });
});
