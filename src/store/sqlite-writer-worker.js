// A SQLite writer thread. Plain JavaScript so that it loads the same way under every runner (node,
// tsx, vitest) without a TypeScript loader in the worker.
//
// It owns one connection to one database file, prepares the statements it was given, and commits
// each message's batches in one transaction (one fsync), answering with what each row changed.
// The main thread keeps serving sockets while a batch waits for the disk.

import { closeSync, fsyncSync, openSync, readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, receiveMessageOnPort, Worker, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

// This thread's Linux id, for per-thread CPU accounting (Linux only).
try {
  const tid = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"))?.[1];
  if (tid) parentPort.postMessage({ type: "thread", tid: Number(tid) });
} catch {}

const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
// "commit" (the default): each transaction fsyncs the WAL before its answer, as the main
// connections do, so what a writer acknowledges survives power loss, not only a crash.
// "after-commit": a transaction is answered as soon as SQLite has written it (`done`, visible to
// every connection, safe from a crash of the process), and the WAL is fsynced on a thread of its
// own while this thread commits the next one; `durable` then names the last message on disk. One
// fsync covers every commit written before it started. The event log uses it so that a fall's alert
// waits for no disk, while its PUBACK still waits for the fsync (store/sqlite-writer.ts).
const afterCommit = workerData.durability === "after-commit";
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

const maxUndurable = workerData.maxUndurable ?? 50_000;
/**
 * After-commit, with a sequence: this thread numbers the rows of one statement itself (the event
 * log's seq), in the column named, and a row the statement ignored does not use its number. A
 * start after a stop that was not clean (the writer_state row still says 0) continues past a gap of
 * maxUndurable: a power loss may have taken back up to that many rows already shown, and a number a
 * listener saw (the rules' cursor, an alert's event) must not come back for another event.
 */
const sequence = afterCommit ? workerData.sequence : undefined;
let nextSeq = 0;
if (sequence) {
  const last = db.prepare(sequence.maxSql).pluck().get() ?? 0;
  const state = db.prepare("SELECT clean FROM writer_state WHERE id = 1").pluck().get();
  const gap = state === 0 ? maxUndurable : 0;
  nextSeq = last + 1 + gap;
  if (gap) parentPort.postMessage({ type: "gap", after: last, next: nextSeq });
  // On disk before the first row is shown (this connection still commits with FULL here).
  db.prepare(
    "INSERT INTO writer_state (id, clean, updated_at) VALUES (1, 0, ?) ON CONFLICT(id) DO UPDATE SET clean = 0, updated_at = excluded.updated_at",
  ).run(Date.now());
}
if (afterCommit) db.pragma("synchronous = NORMAL");

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
    const numbered = sequence && sequence.stmt === stmt ? sequence.column : -1;
    for (let i = 0; i < rows.length; i++) {
      if (numbered >= 0) rows[i][numbered] = nextSeq;
      const info = s.run(fixBlobs(rows[i]));
      out[i] = info.changes === 0 ? 0 : Number(info.lastInsertRowid);
      if (numbered >= 0 && info.changes > 0) nextSeq++;
      if (out[i] === 0 && trace) trace.run(ignored.columns.map((c) => rows[i][c]));
    }
    return out;
  }),
);

/** An error as a message carries it. code: SQLITE_FULL, SQLITE_IOERR_*, EIO: the main thread tells a full disk from a bug by it. */
function errorFields(err) {
  return {
    error: err instanceof Error ? err.message : String(err),
    code: err && typeof err.code === "string" ? err.code : undefined,
  };
}

function failure(id, err) {
  return { type: "done", id, ok: false, ...errorFields(err) };
}

/** Several messages in one transaction, in order: one fsync for all; each answered on its own. */
const commitMany = db.transaction((msgs) => msgs.map((m) => commit(m.batches)));

// ---- after-commit durability: the WAL's fsync on a thread of its own (sqlite-fsync-worker.js).
/** The last message committed, and the last one an fsync has covered. */
let committedId = 0;
let durableId = 0;
/** Rows committed and not yet covered by an fsync, with the messages they came in. */
let undurableRows = 0;
const undurable = [];
/** The WAL file, for the fsyncs this thread does itself (the bound, and at close). */
let walFd = null;
let closed = false;

function walFile() {
  if (walFd === null) walFd = openSync(`${workerData.path}-wal`, "r+");
  return walFd;
}

function durableFailed(err) {
  // As the main database's durability (store/durability.ts): after a failed fsync Linux may have
  // dropped the dirty pages, and a retry that succeeds proves nothing. The owner stops.
  parentPort.postMessage({ type: "durable-failed", ...errorFields(err) });
}

function covered(upTo) {
  if (upTo <= durableId) return;
  durableId = upTo;
  while (undurable.length && undurable[0].id <= upTo) undurableRows -= undurable.shift().rows;
  parentPort.postMessage({ type: "durable", upTo });
}

const fsyncThread = afterCommit
  ? new Worker(new URL("./sqlite-fsync-worker.js", import.meta.url), {
      workerData: { walPath: `${workerData.path}-wal`, holdFsync: workerData.holdFsync },
    })
  : null;
fsyncThread?.on("message", (m) => {
  if (closed) return;
  if (m.type === "durable") covered(m.upTo);
  else if (m.type === "failed") durableFailed(Object.assign(new Error(m.error), { code: m.code }));
});
fsyncThread?.on("error", (err) => {
  if (!closed) durableFailed(err);
});

// A raised priority, when asked (the event log: a fall's commit runs here). Linux keeps a nice
// value per thread, so this changes this thread only; it comes after the fsync thread is started,
// which would otherwise inherit it (a PUBACK waits for that fsync, a fall's alert does not).
// Refused, it runs at normal priority and says why; `nice` is what the thread has either way.
if (typeof workerData.nice === "number") {
  let refusal = null;
  try {
    setPriority(workerData.nice);
  } catch (err) {
    // A SystemError: its code is ERR_SYSTEM_ERROR, the errno's name (EACCES) is in `info`.
    refusal = err?.info?.code || err?.code || String(err);
  }
  parentPort.postMessage({ type: "nice", nice: getPriority(), refusal });
}

/** Everything committed on disk now, on this thread (the bound, and at close). */
function syncWalNow() {
  if (durableId === committedId) return true;
  try {
    fsyncSync(walFile());
  } catch (err) {
    durableFailed(err);
    return false;
  }
  covered(committedId);
  return true;
}

function rowCount(msgs) {
  let n = 0;
  for (const m of msgs) for (const b of m.batches) n += b.rows.length;
  return n;
}

function write(msgs) {
  let results;
  const next = nextSeq;
  try {
    results = msgs.length === 1 ? [commit(msgs[0].batches)] : commitMany(msgs);
  } catch (err) {
    // Rolled back: the numbers it took are free again.
    nextSeq = next;
    if (msgs.length === 1) parentPort.postMessage(failure(msgs[0].id, err));
    // One of them failed: each on its own, so the others are not failed with it.
    else for (const m of msgs) write([m]);
    return;
  }
  if (afterCommit) {
    committedId = msgs[msgs.length - 1].id;
    const rows = rowCount(msgs);
    undurable.push({ id: committedId, rows });
    undurableRows += rows;
    // The bound: past it, on disk before it is shown.
    if (undurableRows > maxUndurable && !syncWalNow()) return;
  }
  for (let i = 0; i < msgs.length; i++)
    parentPort.postMessage({ type: "done", id: msgs[i].id, ok: true, results: results[i] });
  if (afterCommit && committedId > durableId) fsyncThread.postMessage({ type: "sync", upTo: committedId });
}

function close() {
  if (afterCommit && syncWalNow()) {
    if (walFd !== null) closeSync(walFd);
    // Everything is on disk: the next start needs no gap.
    if (sequence) {
      db.pragma("synchronous = FULL");
      db.prepare("UPDATE writer_state SET clean = 1, updated_at = ? WHERE id = 1").run(Date.now());
    }
  }
  closed = true;
  fsyncThread?.postMessage({ type: "close" });
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
