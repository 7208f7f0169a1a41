/**
 * The disk's own commit latency, with no gateway: the floor under an urgent event's `commit` stage
 * (ata_urgent_stage_seconds, printed by `bench alert-latency`).
 *
 * A writer thread set up as the gateway's event-log writer (src/store/sqlite-writer-worker.js): WAL,
 * synchronous = FULL, no automatic checkpoints, whatever waits for it merged into one transaction.
 * This thread asks it for an "urgent" one-row commit every SPACING_MS and times the round trip, as
 * the gateway's main thread does for a fall. Three conditions, each in the same run:
 *
 *   - fsync:   a 200-byte append and fsync of a plain file, nothing else running (the device itself);
 *   - idle:    urgent commits alone;
 *   - loaded:  urgent commits while background groups of RATE x INTERVAL_MS / 1000 rows commit
 *              every INTERVAL_MS (the gateway's spacing of heartbeat groups, ingest.backgroundIntervalMs).
 *
 * The file lives in the same temporary directory as the benchmarks' gateways' data. Nothing else of
 * the gateway runs: the main thread idles between requests, so what is measured is the disk (and
 * the kernel's writeback), not the event loop or garbage collection.
 *
 *   npm run bench -- disk [urgent=1000] [rate=2000] [intervalMs=10] [spacingMs=20] [runs=3]
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { median, percentile, table } from "./lib.js";

const URGENT = Number(process.argv[2] ?? 1000);
const RATE = Number(process.argv[3] ?? 2000);
const INTERVAL_MS = Number(process.argv[4] ?? 10);
const SPACING_MS = Number(process.argv[5] ?? 20);
const RUNS = Number(process.argv[6] ?? 3);

/** The writer thread: plain JavaScript, as the gateway's, so it needs no loader. */
const WRITER = `
const { parentPort, receiveMessageOnPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("wal_autocheckpoint = 0");
db.exec(\`CREATE TABLE events (seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, event_id TEXT NOT NULL,
  type TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (device_id, event_id))\`);
const insert = db.prepare("INSERT INTO events (device_id, event_id, type, data) VALUES (?, ?, ?, ?)");
const data = JSON.stringify({ battery: 88, rssi: -60, firmware: "2.4.1", room: "r-000000000000" }).padEnd(150);
let n = 0;
const commit = db.transaction((msgs) => {
  for (const m of msgs)
    for (let i = 0; i < m.rows; i++) insert.run("dev-" + (n % 10000), "e-" + n++, m.urgent ? "fall.detected" : "device.heartbeat", data);
});
parentPort.on("message", (msg) => {
  if (msg.close) { db.close(); parentPort.postMessage({ closed: true }); return; }
  const msgs = [msg];
  for (let next = receiveMessageOnPort(parentPort); next; next = receiveMessageOnPort(parentPort)) msgs.push(next.message);
  commit(msgs);
  for (const m of msgs) if (m.urgent) parentPort.postMessage({ id: m.id });
});
`;

interface Figures {
  p50: number;
  p99: number;
  max: number;
  over5: number;
  over10: number;
}

function figures(ms: number[]): Figures {
  return {
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: Math.max(...ms),
    over5: ms.filter((x) => x > 5).length / ms.length,
    over10: ms.filter((x) => x > 10).length / ms.length,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Append-and-fsync of a plain file, URGENT times, SPACING_MS apart. */
async function rawFsync(dir: string): Promise<number[]> {
  const fd = openSync(join(dir, "fsync.bin"), "a");
  const buf = Buffer.alloc(200, 1);
  const out: number[] = [];
  try {
    for (let i = 0; i < URGENT; i++) {
      const t0 = performance.now();
      writeSync(fd, buf);
      fsyncSync(fd);
      out.push(performance.now() - t0);
      await sleep(SPACING_MS);
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

async function commits(dir: string, loaded: boolean): Promise<number[]> {
  const sqlite = import.meta.resolve("better-sqlite3").replace("file://", "");
  const worker = new Worker(WRITER, {
    eval: true,
    workerData: { path: join(dir, `log-${loaded}.db`), sqlite },
  });
  const waiting = new Map<number, number>();
  const out: number[] = [];
  worker.on("message", (m: { id?: number }) => {
    if (m.id === undefined) return;
    out.push(performance.now() - waiting.get(m.id)!);
    waiting.delete(m.id);
  });
  // Background groups paced by the clock, as the gateway's spacing: a late tick sends what is due.
  let background: NodeJS.Timeout | undefined;
  if (loaded) {
    const t0 = performance.now();
    let sent = 0;
    background = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
      if (due > sent) worker.postMessage({ rows: due - sent });
      sent = due;
    }, INTERVAL_MS);
  }
  await sleep(200);
  for (let id = 0; id < URGENT; id++) {
    waiting.set(id, performance.now());
    worker.postMessage({ id, urgent: true, rows: 1 });
    await sleep(SPACING_MS);
  }
  clearInterval(background);
  while (waiting.size) await sleep(10);
  await new Promise<void>((resolve) => {
    worker.on("message", (m: { closed?: boolean }) => m.closed && resolve());
    worker.postMessage({ close: true });
  });
  await worker.terminate();
  return out;
}

const conditions = ["fsync", "idle", "loaded"] as const;
const results: Record<(typeof conditions)[number], Figures[]> = { fsync: [], idle: [], loaded: [] };
for (let run = 1; run <= RUNS; run++) {
  const dir = mkdtempSync(join(tmpdir(), "ata-bench-disk-"));
  try {
    results.fsync.push(figures(await rawFsync(dir)));
    results.idle.push(figures(await commits(dir, false)));
    results.loaded.push(figures(await commits(dir, true)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(`run ${run}/${RUNS} done\n`);
}

const ms = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const rows = conditions.map((c) => {
  const r = results[c];
  return [
    c,
    r.map((f) => ms(f.p50)).join(" / "),
    r.map((f) => ms(f.p99)).join(" / "),
    ms(median(r.map((f) => f.p99))),
    ms(median(r.map((f) => f.max))),
    pct(median(r.map((f) => f.over5))),
    pct(median(r.map((f) => f.over10))),
  ];
});
process.stdout.write(
  `${URGENT} urgent one-row commits ${SPACING_MS} ms apart; loaded: ${RATE} rows/s in groups every ${INTERVAL_MS} ms\n`,
);
process.stdout.write(
  `${table(["condition", "p50 per run (ms)", "p99 per run (ms)", "p99 median", "max median", "> 5 ms", "> 10 ms"], rows)}\n`,
);
const json = Object.fromEntries(
  conditions.map((c) => [
    c,
    {
      p50Ms: median(results[c].map((f) => f.p50)),
      p99Ms: median(results[c].map((f) => f.p99)),
      maxMs: median(results[c].map((f) => f.max)),
      over10Share: median(results[c].map((f) => f.over10)),
      p99PerRun: results[c].map((f) => f.p99),
    },
  ]),
);
process.stdout.write(
  `${JSON.stringify({ bench: "disk", urgent: URGENT, rate: RATE, intervalMs: INTERVAL_MS, ...json })}\n`,
);
