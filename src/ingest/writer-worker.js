// The event-log writer thread. Plain JavaScript so that it loads the same way under every runner
// (node, tsx, vitest) without a TypeScript loader in the worker.
//
// It owns one SQLite connection and commits each batch it receives in one transaction (one fsync),
// then reports the log position of every event (0 for a duplicate) and the id of every dead letter.
// The main thread keeps parsing and validating MQTT traffic while this thread waits on the disk.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
// As the main connection: an acknowledged event must survive power loss, not only a crash.
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");

const insertEvent = db.prepare(
  `INSERT OR IGNORE INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, device_seq,
     site_id, unit_id, room_id, resident_ref, profile, data, raw, topic)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const insertDead = db.prepare(
  `INSERT INTO dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload, truncated)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);

/** Structured clone turns a Buffer into a Uint8Array; SQLite binds Buffers as BLOBs. */
const blob = (v) =>
  v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;

const commit = db.transaction((events, dead) => {
  const seqs = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const row = events[i];
    row[14] = blob(row[14]);
    const info = insertEvent.run(row);
    seqs[i] = info.changes === 0 ? 0 : Number(info.lastInsertRowid);
  }
  const deadIds = new Array(dead.length);
  for (let i = 0; i < dead.length; i++) {
    const row = dead[i];
    row[7] = blob(row[7]);
    deadIds[i] = Number(insertDead.run(row).lastInsertRowid);
  }
  return { seqs, deadIds };
});

parentPort.on("message", (msg) => {
  if (msg.type === "close") {
    db.close();
    parentPort.postMessage({ type: "closed" });
    return;
  }
  try {
    const started = process.hrtime.bigint();
    const { seqs, deadIds } = commit(msg.events, msg.dead);
    parentPort.postMessage({
      type: "done",
      id: msg.id,
      ok: true,
      seqs,
      deadIds,
      ns: Number(process.hrtime.bigint() - started),
    });
  } catch (err) {
    parentPort.postMessage({
      type: "done",
      id: msg.id,
      ok: false,
      error: err instanceof Error ? err.message : String(err),
    });
  }
});
