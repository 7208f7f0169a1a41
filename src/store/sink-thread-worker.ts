/**
 * The time-series sink on its own thread (src/store/sink-thread.ts starts it): reads the event log
 * and the alert audit back, maps rows to points and writes them to the store, so none of that work
 * or its garbage lands on the event loop a fall is waiting for.
 *
 * Its database connection is read-only (`query_only`): cursors go to the main thread, which keeps
 * the database's one writer. Logs go to the main thread's logger.
 */

import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { alertAuditSource } from "../alerts/series.js";
import type { Logger } from "../log.js";
import { currentThreadId } from "../util/threads.js";
import { EVENT_LOG_SCHEMA, eventLogPath } from "./db.js";
import { type SeriesStoreSpec, seriesStoreFrom } from "./series-spec.js";
import { TimeSeriesSink, type TimeSeriesSinkOptions } from "./sink.js";
import type { FromSinkThread, SinkThreadData, ToSinkThread } from "./sink-thread.js";

/** The sink thread's nice value (0 normal, 19 lowest), set below. */
const SINK_NICE = 10;

const data = workerData as SinkThreadData;
const port = parentPort!;
const post = (m: FromSinkThread) => port.postMessage(m);
// Background work at background priority. Time series may lag a burst by seconds and catch up from
// their cursor; the main thread (a fall's decode, rules, delivery) and the event-log writer (its
// commit) may not. The sink took 0.11 CPU-s per 10k events in `bench ingest`, more than the writer
// (0.07), on the same cores. Linux keeps a nice value per thread, so this lowers this thread only;
// at nice 10 it still gets about a tenth of a busy core's share, so it is slowed, never starved.
// Where the platform refuses, it runs at normal priority.
try {
  setPriority(SINK_NICE);
} catch {}
{
  const tid = currentThreadId();
  if (tid !== null) post({ type: "thread", tid });
}

/** Plain values for postMessage: an Error becomes its message. */
function plain(obj: unknown): Record<string, unknown> {
  if (obj === null || typeof obj !== "object") return { value: obj };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>))
    out[k] = v instanceof Error ? { message: v.message, name: v.name } : v;
  return out;
}

const log = (() => {
  const at =
    (level: "debug" | "info" | "warn" | "error") =>
    (obj: unknown, msg?: string): void =>
      post({ type: "log", level, obj: plain(obj), msg: msg ?? "" });
  const logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return logger as unknown as Logger;
})();

const db = new Database(data.dbPath, { fileMustExist: true });
db.pragma("busy_timeout = 5000");
db.prepare(`ATTACH DATABASE ? AS ${EVENT_LOG_SCHEMA}`).run(eventLogPath(data.dbPath));
db.pragma("query_only = ON");

const store = seriesStoreFrom(data.store as SeriesStoreSpec);
try {
  await store.start();
} catch (err) {
  // As on the main thread: the sink retries, and creates what is missing on its first write.
  log.warn({ err }, "time-series store not reachable from the sink thread at start; will retry");
}

const options: TimeSeriesSinkOptions = {
  db,
  store,
  logger: log,
  adoptLegacyCursors: false,
  persistCursor: (name, position) => post({ type: "cursor", name, position }),
  ...(data.storeId !== undefined ? { storeId: data.storeId } : {}),
  ...(data.batchSize !== undefined ? { batchSize: data.batchSize } : {}),
};
const sink = new TimeSeriesSink(options);
sink.addSource(alertAuditSource(db));

const state = (): FromSinkThread => ({
  type: "state",
  counters: { ...sink.counters },
  lastError: sink.lastError?.message ?? null,
  lastErrorAt: sink.lastErrorAt ?? null,
  consecutiveFailures: sink.consecutiveFailures,
});
for (const event of ["written", "writeFailed", "recovered", "rejected", "skipped", "cursorFailed"] as const)
  sink.on(event, (payload: object) => {
    post({ type: "event", event, payload: plain(payload) });
    post(state());
  });

port.on("message", (m: ToSinkThread) => {
  if (m.type === "notify") sink.notify();
  else if (m.type === "stop")
    void sink.stop(m.timeoutMs).then(async () => {
      post(state());
      await store.stop().catch(() => undefined);
      db.close();
      post({ type: "stopped" });
    });
});

sink.start();
post({ type: "ready" });
