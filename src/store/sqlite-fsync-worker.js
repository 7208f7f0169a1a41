// The event log's fsync thread (store/sqlite-writer-worker.js, after-commit durability). Plain
// JavaScript, as the writer thread.
//
// The writer commits a group and names it here; this thread fsyncs the WAL and answers with the
// last group the fsync covered, so the writer is free for the next commit meanwhile. One fsync
// covers every group named before it started. A thread of its own, not libuv's pool: that pool
// also runs the main database's fsyncs, key derivations and file reads, and a busy pool must not
// hold devices' PUBACKs.

import { closeSync, fsyncSync, openSync } from "node:fs";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";

/** Tests hold the fsync with it (WriterOptions.holdFsync): while not 0, this thread waits. */
const held = workerData.holdFsync ? new Int32Array(workerData.holdFsync) : null;
/** The WAL file, opened at the first fsync (SQLite creates it at the first write). */
let fd = null;

function stop() {
  if (fd !== null) closeSync(fd);
  parentPort.close();
}

parentPort.on("message", (first) => {
  if (first.type === "close") return stop();
  let upTo = first.upTo;
  for (let next = receiveMessageOnPort(parentPort); next; next = receiveMessageOnPort(parentPort)) {
    if (next.message.type === "close") return stop();
    upTo = Math.max(upTo, next.message.upTo);
  }
  while (held && Atomics.load(held, 0) !== 0) Atomics.wait(held, 0, Atomics.load(held, 0), 5);
  try {
    if (fd === null) fd = openSync(workerData.walPath, "r+");
    fsyncSync(fd);
  } catch (err) {
    parentPort.postMessage({
      type: "failed",
      error: err instanceof Error ? err.message : String(err),
      code: err && typeof err.code === "string" ? err.code : undefined,
    });
    return;
  }
  parentPort.postMessage({ type: "durable", upTo });
});
