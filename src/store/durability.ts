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
 * Order is kept where it means something, not across everything: a callback may name a `lane` (one
 * staff socket, the channels) and a `key` within it (an alert). It then waits only for callbacks
 * ahead of it in its lane with its key or with none (a keyless callback is a barrier in its lane),
 * and for callbacks with no lane at all (a barrier for everyone). So a fall's alert, replayable and
 * needing no fsync, goes to a socket at once even while another alert's delivery receipt on the
 * same socket waits for its fsync, and one socket's wait holds up no other socket or channel.
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
  lane: string | undefined;
  key: string | undefined;
}

export interface AfterOptions {
  /** false: fn needs no fsync of its own (a change a replay would make again), only its place. */
  sync?: boolean;
  /** The ordering domain fn keeps its place in (see the class comment); none: behind everything. */
  lane?: string;
  /** Within the lane, what fn must stay in order with (an alert's id); none: the whole lane. */
  key?: string;
}

/**
 * What is queued, counted by what it holds up, so "must this callback wait" is answered without
 * walking the queue: under load thousands may wait, and a walk per callback would turn a slow fsync
 * into a stalled event loop.
 */
class Pending {
  size = 0;
  /** Callbacks with no lane: everything behind them waits. */
  private unlaned = 0;
  private readonly lanes = new Map<string, { all: number; keyless: number; keys: Map<string, number> }>();

  add(w: Waiting): void {
    this.size++;
    if (w.lane === undefined) {
      this.unlaned++;
      return;
    }
    let lane = this.lanes.get(w.lane);
    if (!lane) {
      lane = { all: 0, keyless: 0, keys: new Map() };
      this.lanes.set(w.lane, lane);
    }
    lane.all++;
    if (w.key === undefined) lane.keyless++;
    else lane.keys.set(w.key, (lane.keys.get(w.key) ?? 0) + 1);
  }

  /** Whether a callback in `lane` with `key`, queued behind everything counted here, must wait. */
  holds(lane: string | undefined, key: string | undefined): boolean {
    if (this.size === 0) return false;
    if (lane === undefined || this.unlaned > 0) return true;
    const counts = this.lanes.get(lane);
    if (!counts) return false;
    if (key === undefined) return counts.all > 0;
    return counts.keyless > 0 || (counts.keys.get(key) ?? 0) > 0;
  }
}

export class Durability {
  private readonly changes: () => number;
  private fd: number | null = null;
  private queue: Waiting[] = [];
  /** The queue, counted (Pending). */
  private pending = new Pending();
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
  after(fn: () => void, opts: AfterOptions = {}): void {
    if (this.walPath === null || this.closed) {
      fn();
      return;
    }
    const changes = opts.sync === false ? 0 : this.changes();
    if (changes <= this.synced && !this.pending.holds(opts.lane, opts.key)) {
      fn();
      return;
    }
    const w: Waiting = { changes, fn, lane: opts.lane, key: opts.key };
    this.queue.push(w);
    this.pending.add(w);
    this.kick();
  }

  /**
   * Resolves once everything committed so far is on disk. In a lane (see after()), it waits for
   * nothing queued outside it: a request's answer needs its own writes on disk, not a socket's turn.
   */
  durable(lane?: string): Promise<void> {
    return new Promise((resolve) => this.after(resolve, { lane }));
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

  /**
   * Run the waiting callbacks that are durable now and wait for nothing still queued ahead of them,
   * in queue order. One pass: what a callback must wait for is always ahead of it.
   */
  private release(): void {
    const ready: Waiting[] = [];
    const waiting: Waiting[] = [];
    const stillPending = new Pending();
    for (const w of this.queue) {
      if (w.changes <= this.synced && !stillPending.holds(w.lane, w.key)) ready.push(w);
      else {
        waiting.push(w);
        stillPending.add(w);
      }
    }
    if (ready.length === 0) return;
    this.queue = waiting;
    this.pending = stillPending;
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
