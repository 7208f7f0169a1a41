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
  // copiedWholeAt: the WAL's length in frames when the last pass copied it whole (null: it did not).
  return { path, db, copiedWholeAt: null };
});

function walBytes(path) {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

/**
 * PASSIVE passes until the WAL is copied whole, at most `rounds`: a pass copies what was committed
 * when it began, and a writer committing meanwhile leaves a remainder, smaller each time. Copied
 * whole, the WAL starts over at the next commit without anyone being held, so a steady writer
 * (the event log at thousands of events per second) does not grow it to the RESTART ceiling.
 * Returns whether it was copied whole, and its length in frames.
 */
function passive(db, rounds) {
  let r = db.pragma("wal_checkpoint(PASSIVE)")[0];
  for (let i = 1; i < rounds && r.log > r.checkpointed; i++) r = db.pragma("wal_checkpoint(PASSIVE)")[0];
  return { whole: r.log <= r.checkpointed, frames: r.log };
}

function pass(force) {
  for (const entry of dbs) {
    const { path, db } = entry;
    const size = walBytes(path);
    if (!force && size < minWalBytes) continue;
    const t0 = performance.now();
    try {
      // PASSIVE first, until the WAL is copied whole (passive() above): it holds nobody. A WAL past
      // the ceiling gets RESTART when PASSIVE could not copy it whole (a reader pinning an old
      // snapshot, a writer faster than the copy), or when it has grown since a pass that did: a
      // commit came and could not start it over, because a reader was still on it. RESTART waits
      // (busy_timeout) for the commit in progress, holds the writers (the event log's, the main
      // thread's alert steps) while it copies what is left and waits for old readers, and lets the
      // WAL start over, cut back to journal_size_limit. Measured under `bench alert-latency` at 5k
      // events/s: RESTART after a single PASSIVE pass held the event log's writer 9-52 ms.
      const { whole, frames } = passive(db, 4);
      const stuck = !whole || (entry.copiedWholeAt !== null && frames > entry.copiedWholeAt);
      if (size > maxWalBytes && stuck) {
        const t1 = performance.now();
        db.pragma("wal_checkpoint(RESTART)");
        const heldMs = performance.now() - t1;
        entry.copiedWholeAt = null;
        parentPort.postMessage({
          type: "checkpoint",
          path,
          mode: "RESTART",
          ms: performance.now() - t0,
          heldMs,
        });
      } else {
        entry.copiedWholeAt = whole ? frames : null;
        parentPort.postMessage({ type: "checkpoint", path, mode: "PASSIVE", ms: performance.now() - t0 });
      }
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
