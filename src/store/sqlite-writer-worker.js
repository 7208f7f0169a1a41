// A SQLite writer thread. Plain JavaScript so that it loads the same way under every runner (node,
// tsx, vitest) without a TypeScript loader in the worker.
//
// It owns one connection to one database file, prepares the statements it was given, and commits
// each message's batches in one transaction (one fsync), answering with what each row changed.
// The main thread keeps serving sockets while a batch waits for the disk.

import { readlinkSync } from "node:fs";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

// This thread's Linux id, for per-thread CPU accounting (Linux only).
try {
  const tid = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"))?.[1];
  if (tid) parentPort.postMessage({ type: "thread", tid: Number(tid) });
} catch {}

const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
// As the main connections: what a writer acknowledges must survive power loss, not only a crash.
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
// A burst (a device flooding dead letters, a backlog after an outage) grows the WAL past the
// checkpoint threshold; without a limit the file keeps its high-water mark for good. With one,
// SQLite cuts it back to this size when it next starts the WAL over (store/db.ts WAL_SIZE_LIMIT).
db.pragma(`journal_size_limit = ${workerData.walSizeLimit ?? 16 * 1024 * 1024}`);
// A checkpoint inside a commit would hold every PUBACK (and a fall) behind it: a Checkpointer
// thread does them instead when the owner runs one.
if (workerData.autoCheckpoint === false) db.pragma("wal_autocheckpoint = 0");

/** @type {Record<string, import("better-sqlite3").Statement>} */
const statements = {};
for (const [name, sql] of Object.entries(workerData.statements)) statements[name] = db.prepare(sql);

/** Structured clone turns a Buffer into a Uint8Array; SQLite binds only Buffers as BLOBs. */
function fixBlobs(row) {
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v instanceof Uint8Array && !Buffer.isBuffer(v))
      row[i] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  return row;
}

const commit = db.transaction((batches) =>
  batches.map(({ stmt, rows, ids, ignored, repeat }) => {
    const s = statements[stmt];
    if (!s) throw new Error(`unknown statement ${stmt}`);
    if (repeat) {
      let n = 0;
      for (const row of rows) {
        for (let c = s.run(row).changes; c > 0; c = s.run(row).changes) n += c;
      }
      if (n > 0 && repeat.tally) statements[repeat.tally].run(n);
      return [n];
    }
    if (!ids) {
      for (const row of rows) s.run(fixBlobs(row));
      return null;
    }
    // Per row: the new rowid, or 0 when the row was ignored (INSERT OR IGNORE on a duplicate).
    const out = new Array(rows.length);
    const trace = ignored ? statements[ignored.stmt] : null;
    for (let i = 0; i < rows.length; i++) {
      const info = s.run(fixBlobs(rows[i]));
      out[i] = info.changes === 0 ? 0 : Number(info.lastInsertRowid);
      if (out[i] === 0 && trace) trace.run(ignored.columns.map((c) => rows[i][c]));
    }
    return out;
  }),
);

function failure(id, err) {
  return {
    type: "done",
    id,
    ok: false,
    error: err instanceof Error ? err.message : String(err),
    // SQLITE_FULL, SQLITE_IOERR_*: the main thread tells a full disk from a bug by it.
    code: err && typeof err.code === "string" ? err.code : undefined,
  };
}

/** Several messages in one transaction, in order: one fsync for all; each answered on its own. */
const commitMany = db.transaction((msgs) => msgs.map((m) => commit(m.batches)));

function write(msgs) {
  let results;
  try {
    results = msgs.length === 1 ? [commit(msgs[0].batches)] : commitMany(msgs);
  } catch (err) {
    if (msgs.length === 1) parentPort.postMessage(failure(msgs[0].id, err));
    // One of them failed: each on its own, so the others are not failed with it.
    else for (const m of msgs) write([m]);
    return;
  }
  for (let i = 0; i < msgs.length; i++)
    parentPort.postMessage({ type: "done", id: msgs[i].id, ok: true, results: results[i] });
}

function close() {
  db.close();
  parentPort.postMessage({ type: "closed" });
}

parentPort.on("message", (msg) => {
  if (msg.type === "close") return close();
  // Whatever else waits for this thread (a fall posted while the last group committed, behind the
  // next background group) goes into the same transaction, in order: it waits for one commit, not
  // one per group ahead of it.
  const msgs = [msg];
  let closing = false;
  for (let next = receiveMessageOnPort(parentPort); next; next = receiveMessageOnPort(parentPort)) {
    if (next.message.type === "close") {
      closing = true;
      break;
    }
    msgs.push(next.message);
  }
  write(msgs);
  if (closing) close();
});
