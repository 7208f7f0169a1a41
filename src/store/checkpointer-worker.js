// The WAL checkpointer thread. Plain JavaScript, like the writer thread, so it loads the same way
// under every runner.
//
// The gateway's connections commit with automatic checkpoints off; this thread copies the WAL's
// pages back into each database file (PRAGMA wal_checkpoint(PASSIVE)) on its own connection, once
// a WAL has grown past a threshold. A checkpoint copies megabytes and fsyncs the database file:
// done inside a commit, as SQLite does by default, it stalled the event-log writer (and a fall's
// commit behind it) or the event loop (the main connection) for 10-30 ms every few seconds.
// PASSIVE never waits for readers or writers; what it could not copy it copies on a later pass.
import { readlinkSync, statSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

// This thread's Linux id, for per-thread CPU accounting (Linux only).
try {
  const tid = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"))?.[1];
  if (tid) parentPort.postMessage({ type: "thread", tid: Number(tid) });
} catch {}

/** @type {{ paths: string[]; intervalMs: number; minWalBytes: number; maxWalBytes: number }} */
const { paths, intervalMs, minWalBytes, maxWalBytes } = workerData;
const dbs = paths.map((path) => {
  const db = new Database(path);
  db.pragma("busy_timeout = 5000");
  db.pragma("wal_autocheckpoint = 0");
  return { path, db };
});

function walBytes(path) {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

function pass(force) {
  for (const { path, db } of dbs) {
    const size = walBytes(path);
    if (!force && size < minWalBytes) continue;
    const t0 = performance.now();
    try {
      // A WAL past the ceiling: a writer that never pauses keeps PASSIVE behind for good. RESTART
      // waits (busy_timeout) for the commit in progress, holds the writers while it copies, and
      // lets the WAL start over, cut back to journal_size_limit. Only under a flood. A PASSIVE pass
      // first copies the bulk without holding anyone, so RESTART holds the writers (the main
      // thread's alert steps among them) only for what was committed meanwhile.
      const mode = size > maxWalBytes ? "RESTART" : "PASSIVE";
      let heldMs;
      if (mode === "RESTART") {
        db.pragma("wal_checkpoint(PASSIVE)");
        const t1 = performance.now();
        db.pragma("wal_checkpoint(RESTART)");
        heldMs = performance.now() - t1;
      } else db.pragma("wal_checkpoint(PASSIVE)");
      parentPort.postMessage({ type: "checkpoint", path, mode, ms: performance.now() - t0, heldMs });
    } catch (err) {
      parentPort.postMessage({
        type: "failed",
        path,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}

const timer = setInterval(() => pass(false), intervalMs);

parentPort.on("message", (msg) => {
  if (msg.type !== "close") return;
  clearInterval(timer);
  pass(true);
  for (const { db } of dbs) db.close();
  parentPort.postMessage({ type: "closed" });
});
