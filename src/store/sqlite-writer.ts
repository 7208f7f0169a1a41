/**
 * A writer thread for one SQLite file (src/store/sqlite-writer-worker.js): each run() is one
 * transaction on the thread's own connection. Used by the event log (the PUBACK waits for it) and
 * by the embedded time-series store, so that neither holds the event loop while SQLite inserts and
 * fsyncs. Reads stay on the main thread's connections (WAL lets them proceed meanwhile).
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { WAL_SIZE_LIMIT } from "./db.js";

export interface WriteBatch {
  /** Name of a statement given to the constructor. */
  stmt: string;
  /** Positional parameters per row. */
  rows: unknown[][];
  /** Report each row's new rowid (0 when ignored); otherwise null comes back for this batch. */
  ids?: boolean;
  /**
   * For a row that was ignored (INSERT OR IGNORE hit a unique key): run this statement, in the same
   * transaction, with these columns of the ignored row (a trace of what was dropped).
   */
  ignored?: { stmt: string; columns: number[] };
  /**
   * Run each row's statement again until it changes nothing (a DELETE of the oldest row while a
   * quota is exceeded, say). The rows changed in all come back as [n]; the `tally` statement, if
   * named, is run with [n] in the same transaction when n > 0.
   */
  repeat?: { tally?: string };
}

export class SqliteWriterThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<
    number,
    { resolve: (r: (number[] | null)[]) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private failed: Error | null = null;

  constructor(
    path: string,
    statements: Record<string, string>,
    log: Logger,
    /** Told the thread's Linux id once it runs (per-thread CPU accounting). */
    onThread?: (tid: number) => void,
    /** false when a Checkpointer thread checkpoints this file. */
    autoCheckpoint = true,
  ) {
    this.worker = new Worker(new URL("./sqlite-writer-worker.js", import.meta.url), {
      workerData: { path, statements, autoCheckpoint, walSizeLimit: WAL_SIZE_LIMIT },
    });
    this.worker.on(
      "message",
      (m: {
        type: string;
        id: number;
        ok: boolean;
        results: (number[] | null)[];
        error?: string;
        code?: string;
      }) => {
        if (m.type === "thread") onThread?.((m as unknown as { tid: number }).tid);
        if (m.type !== "done") return;
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (!w) return;
        if (m.ok) w.resolve(m.results);
        else w.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
      },
    );
    const fail = (err: Error) => {
      this.failed = err;
      log.fatal({ err, path }, "SQLite writer thread failed");
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => {
      if (code !== 0 && !this.failed) fail(new Error(`SQLite writer thread exited with ${code}`));
    });
  }

  /** Commit the batches in one transaction; rejects (and nothing is committed) if any row fails. */
  run(batches: WriteBatch[]): Promise<(number[] | null)[]> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ type: "write", id, batches });
    });
  }

  async close(): Promise<void> {
    if (this.failed) return;
    const closed = new Promise<void>((resolve) => {
      const onMessage = (m: { type: string }) => {
        if (m.type !== "closed") return;
        this.worker.off("message", onMessage);
        resolve();
      };
      this.worker.on("message", onMessage);
    });
    this.worker.postMessage({ type: "close" });
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    this.failed = new Error("writer closed");
    await this.worker.terminate();
  }
}
