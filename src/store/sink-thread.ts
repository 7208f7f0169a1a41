/**
 * The time-series sink on a worker thread (src/store/sink-thread-worker.ts), seen from the main
 * thread. Reading the log back, mapping rows to points and writing them was a tenth of the main
 * thread's allocations under load, and its garbage made the young-generation pauses a fall waits
 * behind longer; on its own thread it has its own heap.
 *
 * The main thread keeps what must stay here: the database's one writer (cursors the thread reports
 * are written here, so the thread's connection is read-only), the backlog (max seq - cursor, read on
 * this connection, so /readyz and the metrics answer at once), and the logger. The thread's events
 * ("written", "writeFailed", "recovered", "rejected", "skipped", "cursorFailed") are re-emitted here.
 * A thread that dies is started again after a second: its cursors replay what it had not written.
 */
import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { type Db, getCursor, setCursor } from "./db.js";
import type { SeriesStoreSpec } from "./series-spec.js";
import { adoptLegacyCursor, type SinkCounters, sinkCursorName, zeroCounters } from "./sink.js";

export interface SinkThreadData {
  dbPath: string;
  store: SeriesStoreSpec;
  storeId?: string;
  batchSize?: number;
}

export type ToSinkThread = { type: "notify" } | { type: "stop"; timeoutMs: number };

export type FromSinkThread =
  | { type: "ready" }
  /** The thread's Linux id, for per-thread CPU accounting (Linux only). */
  | { type: "thread"; tid: number }
  | { type: "stopped" }
  | { type: "cursor"; name: string; position: number }
  | { type: "event"; event: string; payload: Record<string, unknown> }
  | {
      type: "state";
      counters: SinkCounters;
      lastError: string | null;
      lastErrorAt: number | null;
      consecutiveFailures: number;
    }
  | { type: "log"; level: "debug" | "info" | "warn" | "error"; obj: Record<string, unknown>; msg: string };

/** The sources the thread reads: the event log and the alert audit (src/alerts/series.ts). */
const SOURCES = [
  { name: "events", sql: "SELECT MAX(seq) FROM events" },
  { name: "alerts", sql: "SELECT MAX(id) FROM alert_audit" },
] as const;

export interface SinkThreadOptions extends SinkThreadData {
  /** The main thread's connection: cursors are written and the backlog read on it. */
  db: Db;
  log: Logger;
  /** Called when a cursor could not be written (a full disk); the thread's position is kept meanwhile. */
  onCursorFailed?: (err: unknown) => void;
  /** The thread's Linux id (ata_thread_info), each time it starts. */
  onThread?: (tid: number) => void;
}

export class SinkThread extends EventEmitter {
  counters: SinkCounters = zeroCounters();
  lastError: Error | undefined;
  lastErrorAt: number | undefined;
  consecutiveFailures = 0;

  private worker: Worker | null = null;
  private running = false;
  private notifyQueued = false;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Cursor name -> the position the thread reported; `pending` ones are not written yet. */
  private readonly cursors = new Map<string, number>();
  private readonly pending = new Map<string, number>();
  private readonly maxSeq: { name: string; cursor: string; stmt: import("better-sqlite3").Statement }[];
  private stopped: (() => void) | null = null;

  constructor(private readonly options: SinkThreadOptions) {
    super();
    const { db, storeId } = options;
    this.maxSeq = SOURCES.map((s) => ({
      name: s.name,
      cursor: sinkCursorName(s.name, storeId),
      stmt: db.prepare(s.sql).pluck(),
    }));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const { db, storeId, log } = this.options;
    for (const s of this.maxSeq) {
      // Installs from before per-store cursors: adopted here, where the database is written.
      if (storeId !== undefined) {
        const adopted = adoptLegacyCursor(db, `sink:${s.name}`, s.cursor);
        if (adopted !== undefined)
          log.info({ source: s.name, cursor: s.cursor, position: adopted }, "sink cursor is now per store");
      }
      this.cursors.set(s.cursor, getCursor(db, s.cursor));
    }
    this.spawn();
  }

  private spawn(): void {
    const { dbPath, store, storeId, batchSize, log } = this.options;
    // From source (npm start, the tests) the thread is TypeScript: a plain entry registers tsx first.
    const fromSource = import.meta.url.endsWith(".ts");
    const data: SinkThreadData = {
      dbPath,
      store,
      ...(storeId !== undefined ? { storeId } : {}),
      ...(batchSize !== undefined ? { batchSize } : {}),
    };
    const worker = new Worker(
      new URL(fromSource ? "./sink-thread-boot.js" : "./sink-thread-worker.js", import.meta.url),
      { workerData: data },
    );
    this.worker = worker;
    worker.on("message", (m: FromSinkThread) => this.onMessage(m));
    worker.on("error", (err) => {
      this.recordError(err);
      log.error({ err }, "time-series sink thread failed");
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = null;
      this.stopped?.();
      if (!this.running) return;
      log.error({ code }, "time-series sink thread ended; starting it again in 1 s");
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.running) this.spawn();
      }, 1000);
      this.restartTimer.unref();
    });
  }

  private onMessage(m: FromSinkThread): void {
    const { log } = this.options;
    switch (m.type) {
      case "thread":
        this.options.onThread?.(m.tid);
        break;
      case "cursor":
        this.cursors.set(m.name, m.position);
        this.pending.set(m.name, m.position);
        this.writeCursors();
        break;
      case "state":
        this.counters = m.counters;
        this.consecutiveFailures = m.consecutiveFailures;
        if (m.lastError === null) {
          this.lastError = undefined;
          this.lastErrorAt = undefined;
        } else if (this.lastError?.message !== m.lastError) {
          this.lastError = new Error(m.lastError);
          this.lastErrorAt = m.lastErrorAt ?? Date.now();
        }
        break;
      case "event":
        try {
          this.emit(m.event, m.payload);
        } catch (err) {
          log.error({ err, event: m.event }, "a time-series sink listener threw");
        }
        break;
      case "log":
        log[m.level](m.obj, m.msg);
        break;
      case "stopped":
        this.stopped?.();
        break;
      case "ready":
        // New rows may have been committed while the thread started.
        this.notify();
        break;
    }
  }

  /** Writes the cursors the thread reported; one that fails stays pending for the next report. */
  private writeCursors(): void {
    for (const [name, position] of this.pending) {
      try {
        setCursor(this.options.db, name, position);
        this.pending.delete(name);
      } catch (err) {
        this.recordError(err);
        this.options.onCursorFailed?.(err);
        this.emit("cursorFailed", { source: name, error: err });
        return;
      }
    }
  }

  /** Tells the thread new rows were committed (once per turn of the event loop). */
  notify(): void {
    if (this.notifyQueued || !this.worker) return;
    this.notifyQueued = true;
    setImmediate(() => {
      this.notifyQueued = false;
      this.worker?.postMessage({ type: "notify" } satisfies ToSinkThread);
    });
  }

  /** Rows not yet written: max(seq) - cursor, for one source or all, read on this thread. */
  backlog(sourceName?: string): number {
    let total = 0;
    for (const s of this.maxSeq) {
      if (sourceName !== undefined && s.name !== sourceName) continue;
      const max = s.stmt.get() as number | bigint | null;
      total += Math.max(0, (max === null ? 0 : Number(max)) - (this.cursors.get(s.cursor) ?? 0));
    }
    return total;
  }

  /** The position of a source: the seq of the last row written. */
  position(sourceName = "events"): number {
    const s = this.maxSeq.find((x) => x.name === sourceName);
    return s ? (this.cursors.get(s.cursor) ?? 0) : 0;
  }

  /** Lets the thread write what it can within the timeout, then ends it. Never throws. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const worker = this.worker;
    if (worker) {
      const done = new Promise<void>((resolve) => {
        this.stopped = resolve;
      });
      worker.postMessage({ type: "stop", timeoutMs } satisfies ToSinkThread);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs + 2000)))]);
      clearTimeout(timer);
      this.stopped = null;
      await worker.terminate();
      this.worker = null;
    }
    this.writeCursors();
    const left = this.backlog();
    if (left > 0)
      this.options.log.warn(
        { backlog: left },
        "time-series sink stopped with a backlog; it resumes on start",
      );
  }

  private recordError(err: unknown): void {
    this.lastError = err instanceof Error ? err : new Error(String(err));
    this.lastErrorAt = Date.now();
  }
}
