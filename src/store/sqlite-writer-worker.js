// A SQLite writer thread. Plain JavaScript so that it loads the same way under every runner (node,
// tsx, vitest) without a TypeScript loader in the worker.
//
// It owns one connection to one database file, prepares the statements it was given, and commits
// each message's batches in one transaction (one fsync), answering with what each row changed.
// The main thread keeps serving sockets while a batch waits for the disk.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
// As the main connections: what a writer acknowledges must survive power loss, not only a crash.
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");

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
  batches.map(({ stmt, rows, ids, ignored }) => {
    const s = statements[stmt];
    if (!s) throw new Error(`unknown statement ${stmt}`);
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

parentPort.on("message", (msg) => {
  if (msg.type === "close") {
    db.close();
    parentPort.postMessage({ type: "closed" });
    return;
  }
  try {
    parentPort.postMessage({ type: "done", id: msg.id, ok: true, results: commit(msg.batches) });
  } catch (err) {
    parentPort.postMessage({
      type: "done",
      id: msg.id,
      ok: false,
      error: err instanceof Error ? err.message : String(err),
    });
  }
});
