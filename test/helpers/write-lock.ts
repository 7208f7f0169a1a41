/**
 * Another connection holding a database's write lock, as the checkpointer thread does while a
 * RESTART checkpoint copies the WAL. It runs on a thread of its own: the test's connection (or an
 * in-process gateway) blocks its thread while it waits for the lock, and the lock must still be let
 * go on time.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 5000");
db.exec("BEGIN IMMEDIATE");
parentPort.postMessage({ type: "locked" });
setTimeout(() => {
  db.exec("COMMIT");
  db.close();
  parentPort.postMessage({ type: "released", at: performance.timeOrigin + performance.now() });
}, workerData.holdMs);
`;

export interface HeldLock {
  /** Resolves with when it was let go (epoch ms, fractional). */
  released: Promise<number>;
}

/** Take the write lock of the database file at `path` on another thread and hold it for `holdMs`. */
export async function holdWriteLock(path: string, holdMs: number): Promise<HeldLock> {
  const module = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(SOURCE, { eval: true, workerData: { path, holdMs, module } });
  let onReleased!: (at: number) => void;
  let onFailed!: (err: Error) => void;
  const released = new Promise<number>((resolve, reject) => {
    onReleased = resolve;
    onFailed = reject;
  });
  await new Promise<void>((resolve, reject) => {
    worker.on("message", (m: { type: string; at: number }) => {
      if (m.type === "locked") resolve();
      else if (m.type === "released") {
        onReleased(m.at);
        void worker.terminate();
      }
    });
    worker.once("error", (err) => {
      reject(err);
      onFailed(err);
    });
  });
  return { released };
}
