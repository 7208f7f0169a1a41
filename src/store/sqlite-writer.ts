/**
 * A writer thread for one SQLite file (src/store/sqlite-writer-worker.js): each run() is one
 * transaction on the thread's own connection. Used by the event log (the PUBACK waits for it) and
 * by the embedded time-series store, so that neither holds the event loop while SQLite inserts and
 * fsyncs. Reads stay on the main thread's connections (WAL lets them proceed meanwhile).
 *
 * Durability "commit" answers each run() once its transaction is on disk. "after-commit" (the
 * event log) answers twice: `visible` as soon as the transaction is written (every connection sees
 * it, a crash of the process keeps it), and the returned promise once an fsync has covered it; the
 * fsync runs off the writer's way, so the next transaction does not wait for it.
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

export type WriterDurability = "commit" | "after-commit";

type Results = (number[] | null)[];

interface Waiting {
  resolve: (r: Results) => void;
  reject: (e: Error) => void;
  visible: ((r: Results) => void) | undefined;
  /** After-commit: the results, once committed, until an fsync covers them. */
  results?: Results;
}

export interface WriterOptions {
  /** Told the thread's Linux id once it runs (per-thread CPU accounting). */
  onThread?: (tid: number) => void;
  /** The thread sets its own nice value to this at start (Linux: per thread); none leaves it. */
  nice?: number;
  /** Told the nice value the thread runs at, and why a wanted one was refused (null when it was not). */
  onNice?: (nice: number, refusal: string | null) => void;
  /** false when a Checkpointer thread checkpoints this file. */
  autoCheckpoint?: boolean;
  /** See the class comment. Default "commit". */
  durability?: WriterDurability;
  /** After-commit: at most this many rows written and not yet on disk (see the worker). */
  maxUndurable?: number;
  /**
   * After-commit: the thread numbers the rows of `stmt` itself, in parameter `column` (0-based),
   * from one past `maxSql`'s answer, past a gap after a stop that was not clean (the file needs a
   * `writer_state` table; see the worker).
   */
  sequence?: { stmt: string; column: number; maxSql: string };
  /** After-commit: a failed fsync. Default: logged as fatal, and the process exits (70). */
  onFatal?: (err: Error) => void;
  /** Tests: an Int32Array's buffer; while its first element is not 0, the background fsync waits. */
  holdFsync?: SharedArrayBuffer;
}

/** An error the thread reported, with SQLite's or the system's code (SQLITE_FULL, EIO). */
function threadError(m: { error?: string; code?: string }, prefix = ""): Error {
  return Object.assign(new Error(`${prefix}${m.error}`), m.code ? { code: m.code } : {});
}

export class SqliteWriterThread {
  private readonly worker: Worker;
  /** In id order: run() hands the thread messages in order, and it answers them in order. */
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private failed: Error | null = null;
  private readonly durability: WriterDurability;
  /** After-commit: the last message an fsync has covered. */
  private durableUpTo = 0;

  constructor(path: string, statements: Record<string, string>, log: Logger, options: WriterOptions = {}) {
    const {
      onThread,
      onNice,
      autoCheckpoint = true,
      durability = "commit",
      maxUndurable,
      sequence,
    } = options;
    this.durability = durability;
    const onFatal =
      options.onFatal ??
      ((err: Error) => {
        log.fatal({ err, path }, "fsync of the WAL failed; stopping");
        process.exit(70);
      });
    this.worker = new Worker(new URL("./sqlite-writer-worker.js", import.meta.url), {
      workerData: {
        path,
        statements,
        autoCheckpoint,
        walSizeLimit: WAL_SIZE_LIMIT,
        durability,
        maxUndurable,
        sequence,
        holdFsync: options.holdFsync,
        nice: options.nice,
      },
    });
    this.worker.on(
      "message",
      (m: {
        type: string;
        id: number;
        ok: boolean;
        results: Results;
        upTo: number;
        error?: string;
        code?: string;
      }) => {
        if (m.type === "thread") onThread?.((m as unknown as { tid: number }).tid);
        else if (m.type === "nice") {
          const n = m as unknown as { nice: number; refusal: string | null };
          onNice?.(n.nice, n.refusal);
        } else if (m.type === "done") this.done(m.id, m.ok ? m.results : null, m);
        else if (m.type === "durable") this.durable(m.upTo);
        else if (m.type === "gap")
          log.warn(
            {
              after: (m as unknown as { after: number }).after,
              next: (m as unknown as { next: number }).next,
            },
            "the last stop was not clean: numbering resumes past a gap, so that no position already shown comes back",
          );
        else if (m.type === "durable-failed") {
          // What was shown as written may not be on disk, and nothing later can prove it is: as a
          // failed fsync of the main database (store/durability.ts), fatal.
          const err = threadError(m, "fsync of the WAL failed: ");
          fail(err);
          // Nothing it writes can be trusted to reach the disk: it takes no more work.
          void this.worker.terminate();
          onFatal(err);
        }
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

  /**
   * Commit the batches in one transaction; rejects (and nothing is committed) if any row fails.
   * Resolves once the transaction is on disk. After-commit: `visible` is called before, as soon as
   * the transaction is written; a failed fsync after it rejects (and the thread is done).
   */
  run(batches: WriteBatch[], visible?: (results: Results) => void): Promise<Results> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, visible });
      this.worker.postMessage({ type: "write", id, batches });
    });
  }

  private done(id: number, results: Results | null, m: { error?: string; code?: string }): void {
    const w = this.waiting.get(id);
    if (!w) return;
    if (results === null) {
      this.waiting.delete(id);
      w.reject(threadError(m));
    } else if (this.durability === "commit") {
      this.waiting.delete(id);
      w.resolve(results);
    } else {
      w.results = results;
      w.visible?.(results);
      // Answered after an fsync on the writer's own thread already covered it (its bound).
      if (id <= this.durableUpTo) this.durable(this.durableUpTo);
    }
  }

  /** After-commit: every message up to `upTo` is on disk. */
  private durable(upTo: number): void {
    this.durableUpTo = Math.max(this.durableUpTo, upTo);
    // In id order, and no further than the first not yet answered `done` (the writer's own fsync
    // names its groups before it answers them): devices get their PUBACKs in the order they
    // published (MQTT 3.1.1, 4.6), and done() picks up from there.
    for (const [id, w] of this.waiting) {
      if (id > upTo || !w.results) break;
      this.waiting.delete(id);
      w.resolve(w.results);
    }
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
