/**
 * WAL checkpoints off the paths that wait for commits (src/store/checkpointer-worker.js): the
 * gateway's connections turn SQLite's automatic checkpoints off (`wal_autocheckpoint = 0`), and
 * this thread checkpoints each database once its WAL passes `minWalBytes`, checking every
 * `intervalMs`. A checkpoint in a commit stalled a fall's commit by 10-30 ms every few seconds.
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";

export interface CheckpointerOptions {
  /** Database files whose WALs this thread checkpoints. */
  paths: string[];
  intervalMs?: number;
  /** Below this WAL size a pass leaves the file alone (SQLite's own default is ~4 MiB). */
  minWalBytes?: number;
  /**
   * Past this WAL size, a WAL that PASSIVE passes could not copy whole, or that grew again after
   * one did without starting over, is checkpointed with RESTART: it waits for the writer between two commits and holds the next one until the rest of
   * the WAL is copied, so the WAL starts over (writers wait for the lock: store/db.ts
   * writeLockFirst). Without it a writer committing without pause (a flood) could keep PASSIVE
   * from ever catching up, and the file grew without bound (2.6 GB in 60 s here). Default 64 MiB.
   */
  maxWalBytes?: number;
}

export class Checkpointer {
  private readonly worker: Worker;
  private closed = false;
  /** restarts: passes that found a WAL past maxWalBytes and checkpointed with RESTART. */
  readonly stats = { checkpoints: 0, restarts: 0 };

  constructor(
    options: CheckpointerOptions,
    private readonly log: Logger,
    metrics?: Metrics,
  ) {
    this.worker = new Worker(new URL("./checkpointer-worker.js", import.meta.url), {
      workerData: {
        paths: options.paths,
        intervalMs: options.intervalMs ?? 1000,
        minWalBytes: options.minWalBytes ?? 1 << 20,
        maxWalBytes: options.maxWalBytes ?? 64 << 20,
      },
    });
    this.worker.unref();
    this.worker.on(
      "message",
      (m: {
        type: string;
        path: string;
        mode?: string;
        ms: number;
        heldMs?: number;
        error?: string;
        tid?: number;
      }) => {
        if (m.type === "thread") metrics?.threads.set({ thread: "checkpointer", tid: String(m.tid) }, 1);
        else if (m.type === "checkpoint") {
          this.stats.checkpoints++;
          if (m.mode === "RESTART") {
            this.stats.restarts++;
            this.log.warn(
              { path: m.path, ms: Math.round(m.ms), writersHeldMs: Math.round(m.heldMs!) },
              "WAL past its ceiling; checkpointed with RESTART",
            );
          }
          metrics?.walCheckpointSeconds.observe(m.ms / 1000);
        } else if (m.type === "failed") {
          // A full disk or a busy database: the WAL keeps growing until a later pass succeeds.
          this.log.warn({ path: m.path, error: m.error }, "WAL checkpoint failed; retried on the next pass");
        }
      },
    );
    this.worker.on("error", (err) => this.log.error({ err }, "WAL checkpointer thread failed"));
  }

  /** A last checkpoint of everything, then the thread ends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = new Promise<void>((resolve) => {
      this.worker.on("message", (m: { type: string }) => {
        if (m.type === "closed") resolve();
      });
    });
    this.worker.postMessage({ type: "close" });
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    await this.worker.terminate();
  }
}
