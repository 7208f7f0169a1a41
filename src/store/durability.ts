/**
 * Durability of the main database without an fsync on the event loop.
 *
 * The gateway's own connection commits with `synchronous = NORMAL`: SQLite writes the commit's WAL
 * frames and returns, without the fsync (WAL stays atomic and consistent; only the durability of
 * the newest commits waits). What a commit makes visible outside the process, a message to a
 * staff WebSocket, a call to a push service or paging system, an HTTP answer, waits for `after()`
 * / `durable()`, which fsyncs the WAL file on libuv's thread pool. One fsync covers every commit
 * written before it started (group commit, as PostgreSQL's WAL writer does), and callbacks run in
 * the order they were queued, so staff see changes in their order and never one that a power loss
 * could take back.
 *
 * Before this, every alert transaction (a raise, an audit entry, a delivery outcome) held the event
 * loop for a full fsync, 1-20 ms here, and a fall arriving meanwhile waited behind it.
 *
 * A failed fsync is fatal, as in PostgreSQL: after a failed fsync Linux may have dropped the dirty
 * pages, and a retry that succeeds proves nothing. The process exits; at restart the rules replay
 * the event log after their cursor, so what the lost commits derived from devices is derived again.
 */
import { closeSync, fsync, fsyncSync, openSync } from "node:fs";
import type { Logger } from "../log.js";
import type { Db } from "./db.js";

interface Waiting {
  /** The connection's total_changes() when queued: durable once an fsync started after it. */
  changes: number;
  fn: () => void;
}

export class Durability {
  private readonly changes: () => number;
  private fd: number | null = null;
  private readonly queue: Waiting[] = [];
  /** An fsync is running on the thread pool. */
  private syncing = false;
  /** total_changes() when the last completed fsync started: everything up to it is on disk. */
  private synced: number;
  private closed = false;
  readonly stats = { fsyncs: 0 };

  /**
   * @param walPath the main database's WAL file (`<path>-wal`), or null for a database without
   *   one (in memory): then everything is as durable as it will be, and callbacks run at once.
   */
  constructor(
    db: Db,
    private readonly walPath: string | null,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void = (err) => {
      log.fatal({ err, path: walPath }, "fsync of the database's WAL failed; stopping");
      process.exit(70);
    },
  ) {
    const total = db.prepare("SELECT total_changes()").pluck();
    this.changes = () => total.get() as number;
    this.synced = this.changes();
  }

  /**
   * Run fn once everything committed so far is on disk (at once when it already is). With
   * `sync: false` fn needs no fsync of its own, only its place in the order: it runs at once when
   * nothing waits ahead of it, else right after what does.
   */
  after(fn: () => void, opts: { sync?: boolean } = {}): void {
    if (this.walPath === null || this.closed) {
      fn();
      return;
    }
    const changes = opts.sync === false ? 0 : this.changes();
    if (this.queue.length === 0 && changes <= this.synced) {
      fn();
      return;
    }
    this.queue.push({ changes, fn });
    this.kick();
  }

  /** Resolves once everything committed so far is on disk. */
  durable(): Promise<void> {
    return new Promise((resolve) => this.after(resolve));
  }

  /** Make everything durable now, on this thread, and run what waits (at stop). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== null) {
      try {
        fsyncSync(this.fd);
      } catch (err) {
        this.log.error({ err }, "final fsync of the database's WAL failed");
      }
      closeSync(this.fd);
      this.fd = null;
    }
    this.synced = Number.MAX_SAFE_INTEGER;
    this.release();
  }

  private kick(): void {
    if (this.syncing || this.queue.length === 0) return;
    if (this.fd === null) this.fd = openSync(this.walPath!, "r+");
    const startedAt = this.changes();
    this.syncing = true;
    fsync(this.fd, (err) => {
      this.syncing = false;
      if (this.closed) return;
      if (err) {
        this.onFatal(err);
        return;
      }
      this.stats.fsyncs++;
      this.synced = startedAt;
      this.release();
      this.kick();
    });
  }

  /** Run the waiting callbacks that are durable now, in order; stop at the first that is not. */
  private release(): void {
    let i = 0;
    while (i < this.queue.length && this.queue[i]!.changes <= this.synced) i++;
    if (i === 0) return;
    const ready = this.queue.splice(0, i);
    for (const w of ready) {
      try {
        w.fn();
      } catch (err) {
        this.log.error({ err }, "a callback waiting for durability failed");
      }
    }
  }
}

/** The WAL file of a database file (null in memory). */
export function walPathOf(dbPath: string): string | null {
  return dbPath === ":memory:" ? null : `${dbPath}-wal`;
}
