/**
 * InfluxDB catch-up after an outage: how fast the time-series sink drains a backlog of 100k event rows
 * from the SQLite event log into InfluxDB, against the npm `influx` client writing the same 100k points
 * in batches of 5000 (the reference: ~159k points/s on the 2-core machine, DESIGN.md "Targets").
 * Target: sink >= 100k points/s and >= 0.6x the raw client in the same run.
 *
 *   npx tsx bench/influx-catchup.ts [rows=100000] [runs=3]
 *
 * Starts its own influxd (test/helpers/influxd.ts) and stops it by PID; the last line is one JSON object.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { InfluxDB, type IPoint } from "influx";
import { type Db, openDb, setCursor } from "../src/store/db.js";
import { InfluxStore } from "../src/store/influx.js";
import { EVENTS_CURSOR, type EventRow, eventToPoint, TimeSeriesSink } from "../src/store/sink.js";
import { startInfluxd } from "../test/helpers/influxd.js";

const ROWS = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 3);
const BATCH = 5000;
const DEVICES = 200;

/** A six-hour outage's worth of events from 200 devices: mostly heartbeats, some bed exits, calls, falls. */
function fillEvents(db: Db, rows: number): void {
  const insert = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, site_id, unit_id,
       room_id, resident_ref, profile, data)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const start = Date.now() - 6 * 3_600_000;
  const step = (6 * 3_600_000) / rows;
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      const d = i % DEVICES;
      const at = Math.floor(start + i * step);
      const r = (i * 7919) % 100;
      let type = "device.heartbeat";
      let priority: string | null = null;
      let phase = "point";
      let data: Record<string, unknown> = { battery: 100 - (i % 60), rssi: -40 - (i % 50) };
      if (r >= 98) {
        type = "fall.detected";
        priority = "high";
        phase = "update";
        data = { confidence: 0.9, location: { x: 1.2, y: 3.4 }, onGroundSec: i % 600 };
      } else if (r >= 95) {
        type = "call.manual";
        priority = "high";
        data = { pressDurationSec: 1 + (i % 3) };
      } else if (r >= 90) {
        type = "bed.exit";
        priority = "medium";
        data = { dwellSec: i % 1800 };
      }
      insert.run(
        `e-${i}`,
        `dev-${d}`,
        type,
        phase,
        priority,
        at,
        at + 3,
        `site-${d % 4}`,
        `unit-${d % 12}`,
        `room-${d}`,
        d % 3 === 0 ? `r-${d}` : null,
        d % 2 === 0 ? "acme-radar" : "nordic-mat",
        JSON.stringify(data),
      );
    }
  })();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const influxd = await startInfluxd();
  const dir = mkdtempSync(join(tmpdir(), "ata-bench-catchup-"));
  const db = openDb({ path: join(dir, "ata.db") });
  try {
    const t0 = performance.now();
    fillEvents(db, ROWS);
    console.log(
      `filled ${ROWS} event rows in ${(performance.now() - t0).toFixed(0)} ms; influxd pid ${influxd.pid}`,
    );

    // The raw baseline writes exactly the points the sink writes, prepared before the clock starts.
    const rows = db.prepare("SELECT * FROM events ORDER BY seq").all() as EventRow[];
    const rawPoints: IPoint[] = rows.map((row) => {
      const p = eventToPoint(row);
      return { measurement: p.measurement, tags: p.tags, fields: p.fields, timestamp: p.timeNs.toString() };
    });

    const sinkRates: number[] = [];
    const rawRates: number[] = [];

    const runSink = async (run: number): Promise<number> => {
      const store = new InfluxStore({
        host: influxd.host,
        port: influxd.port,
        database: `bench_sink_${run}`,
      });
      await store.start();
      setCursor(db, EVENTS_CURSOR, 0);
      const sink = new TimeSeriesSink({ db, store, batchSize: BATCH, maxDelayMs: 0, pollIntervalMs: 1 });
      const done = new Promise<void>((resolve, reject) => {
        sink.on("written", () => {
          if (sink.backlog() === 0) resolve();
        });
        sink.on("writeFailed", (e: { error: Error }) => reject(e.error));
      });
      const start = performance.now();
      sink.start();
      await done;
      const seconds = (performance.now() - start) / 1000;
      await sink.stop();
      if (sink.counters.pointsWritten !== ROWS) throw new Error(`sink wrote ${sink.counters.pointsWritten}`);
      return ROWS / seconds;
    };

    const runRaw = async (run: number): Promise<number> => {
      const database = `bench_raw_${run}`;
      const client = new InfluxDB({ host: influxd.host, port: influxd.port, database });
      await client.createDatabase(database);
      const start = performance.now();
      for (let i = 0; i < rawPoints.length; i += BATCH) {
        await client.writePoints(rawPoints.slice(i, i + BATCH), { precision: "n" });
      }
      return rawPoints.length / ((performance.now() - start) / 1000);
    };

    const verify = async (database: string): Promise<number> => {
      const res = await fetch(
        `${influxd.url}/query?db=${database}&q=${encodeURIComponent('SELECT count("count") FROM "event"')}`,
      );
      const body = (await res.json()) as { results: { series?: { values: number[][] }[] }[] };
      return body.results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
    };

    for (let run = 0; run < RUNS; run++) {
      // Alternate the order so neither side always meets a warmer (or busier) influxd.
      if (run % 2 === 0) {
        sinkRates.push(await runSink(run));
        rawRates.push(await runRaw(run));
      } else {
        rawRates.push(await runRaw(run));
        sinkRates.push(await runSink(run));
      }
      for (const database of [`bench_sink_${run}`, `bench_raw_${run}`]) {
        const count = await verify(database);
        if (count !== ROWS) throw new Error(`${database} holds ${count} points, expected ${ROWS}`);
      }
    }

    const sinkMedian = median(sinkRates);
    const rawMedian = median(rawRates);
    const ratio = sinkMedian / rawMedian;
    const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(10);
    console.log(`\n${ROWS} points, batches of ${BATCH}, points/s`);
    console.log("run         sink        raw   sink/raw");
    for (let i = 0; i < RUNS; i++) {
      console.log(
        `${String(i + 1).padEnd(4)}${fmt(sinkRates[i]!)} ${fmt(rawRates[i]!)}   ${(sinkRates[i]! / rawRates[i]!).toFixed(2)}`,
      );
    }
    console.log(`median${fmt(sinkMedian).slice(2)} ${fmt(rawMedian)}   ${ratio.toFixed(2)}`);
    console.log(
      `target: sink >= 100,000 points/s (${sinkMedian >= 100_000 ? "met" : "NOT met"}), >= 0.6x raw (${ratio >= 0.6 ? "met" : "NOT met"})`,
    );
    console.log(
      JSON.stringify({
        bench: "influx-catchup",
        rows: ROWS,
        batch: BATCH,
        runs: RUNS,
        sinkPointsPerSec: Math.round(sinkMedian),
        rawPointsPerSec: Math.round(rawMedian),
        ratio: Number(ratio.toFixed(3)),
        sinkRuns: sinkRates.map(Math.round),
        rawRuns: rawRates.map(Math.round),
      }),
    );
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
    await influxd.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
