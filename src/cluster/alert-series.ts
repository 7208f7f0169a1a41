/**
 * The alerts' time series on a cluster: the points a single process's sink makes from SQLite's
 * `alert_audit` (src/alerts/series.ts), made here from PostgreSQL's audit in the order of the alert
 * change feed, by one node at a time.
 *
 * Why the feed and not the audit ids: PostgreSQL's audit ids are drawn in blocks by each partition's
 * owner, so a cursor over ids would pass an id whose transaction commits later and never come back to
 * it. The feed's positions are dense per partition and drawn in commit order (change-feed.ts), so a
 * cursor per partition misses nothing. Each entry is a transition's `seq` (its audit id); the point is
 * made from the audit row and its alert with the single process's `alertPoint`, so the measurement,
 * tags, time and fields are the same, and a replay overwrites the same point.
 *
 * Renotify entries (`kind: "renotify"`) are the repeated signal of an alert nobody accepted; a single
 * process writes no audit entry for them, so they make no point here either. The cursor passes them.
 *
 * One writer: the node holding a session advisory lock (job-lock.ts, `JOB_LOCKS.alertSeries`) on a
 * connection of its own, for as long as it writes. The others try for it every `retryMs` and take
 * over when the holder stops or its connection is lost (PostgreSQL releases a session lock with its
 * session). A lock rather than each partition's owner because the owner's flush is on a fall's path
 * and must not wait for, or fail with, InfluxDB; and rather than a lease because nothing here needs
 * fencing: the points are deterministic and the cursor only moves forward, so a former holder still
 * finishing a batch after losing its connection writes the same points again and cannot move the
 * cursor back. The lock only keeps the work from being done twice.
 *
 * The cursor (pg/alert-series.ts) is per store and partition, moved after the store accepted a
 * batch: a crash or a takeover replays at most the batches in flight. A partition whose feed was
 * pruned past the cursor (no writer for longer than the feed's retention, `changeFeedRetentionHours`)
 * loses the transitions in between from the time series (they stay in PostgreSQL's audit and the
 * reports read them there): logged at warn with the positions, counted in `lost`, and the cursor goes
 * on from the cut.
 *
 * Events (never "error"): "writer" (boolean: this node became the writer, or stopped being it),
 * "written" {points, rows}, "gap" {partition, reason, from, through, lost}.
 */
import { EventEmitter } from "node:events";
import type pg from "pg";
import { alertPoint } from "../alerts/series.js";
import type { Logger } from "../log.js";
import { isPermanentWriteError, type Point, type TimeSeriesStore } from "../store/timeseries.js";
import { advanceCursors, auditWithAlerts, readCursors, seriesBacklog, setCursor } from "./pg/alert-series.js";
import { CHANGE_FEED_LOG, type FeedChange } from "./pg/change-feed.js";
import { ATA, JOB_LOCKS } from "./pg/job-lock.js";
import { type FollowerTuning, LogFollower } from "./pg/partitioned-log.js";

export interface ClusterAlertSeriesOptions {
  pool: pg.Pool;
  store: TimeSeriesStore;
  /** The store's id, as the sink names its cursors: `embedded`, `influx:<url>/<database>`. */
  storeId: string;
  /** The cluster's partition count. */
  partitions: number;
  log: Logger;
  /** How often a node that is not the writer asks for the lock, and the writer checks its connection; 5 s. */
  retryMs?: number;
  /** First wait after a failed write; doubles up to retryMaxMs (30 s). 250 ms. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** How the feed is read (partitioned-log.ts). */
  follower?: FollowerTuning;
  /** Advisory lock key (second of the pair); JOB_LOCKS.alertSeries. */
  lockKey?: number;
}

export interface ClusterAlertSeriesStatus {
  writer: boolean;
  pointsWritten: number;
  /** Points the store refused for good (a field type conflict): skipped. */
  pointsRejected: number;
  /** Feed entries pruned before this node wrote them (header). */
  lost: number;
  lastError: string | null;
}

export class ClusterAlertSeries extends EventEmitter {
  private readonly retryMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  /** The lock's connection while this node is the writer. */
  private lockClient: pg.PoolClient | null = null;
  private follower: LogFollower<FeedChange> | null = null;
  /** Per partition, the last position whose points the store accepted. */
  private written = new Map<number, number>();
  /** What the cursors in PostgreSQL say, as far as this node knows. */
  private saved = new Map<number, number>();
  /** Batches are written one after another, each partition's in feed order. */
  private work: Promise<void> = Promise.resolve();
  private ticking: Promise<void> | null = null;
  private wakeRetry: (() => void) | null = null;
  private readonly counters = { pointsWritten: 0, pointsRejected: 0, lost: 0 };
  private lastError: string | null = null;

  constructor(private readonly options: ClusterAlertSeriesOptions) {
    super();
    this.retryMs = options.retryMs ?? 5000;
    this.retryInitialMs = options.retryInitialMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
  }

  /** Asks for the lock once now (and writes if it gets it), then every retryMs. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.retryMs);
  }

  /** Stops writing: the batch in flight is finished (or given up at a failing store), the cursor saved, the lock released. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    await this.resign("stopped");
  }

  get isWriter(): boolean {
    return this.lockClient !== null;
  }

  status(): ClusterAlertSeriesStatus {
    return { writer: this.isWriter, ...this.counters, lastError: this.lastError };
  }

  /** Feed entries not yet written to this store, by the cursors in PostgreSQL (whoever writes). */
  backlog(): Promise<number> {
    return seriesBacklog(this.options.pool, this.options.storeId);
  }

  private tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = (this.isWriter ? this.check() : this.acquire())
      .catch((err: Error) => this.fail(err, "alert series lock"))
      .finally(() => {
        this.ticking = null;
      });
    return this.ticking;
  }

  /** The writer's connection still answers (one that hangs without failing loses the lock). */
  private async check(): Promise<void> {
    const c = this.lockClient;
    if (!c) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        c.query("SELECT 1"),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer")), this.retryMs);
        }),
      ]);
    } catch (err) {
      this.fail(err as Error, "alert series lock connection");
      await this.resign("lock connection lost");
      return;
    } finally {
      clearTimeout(timer);
    }
    // Cursors a failed save left behind.
    await this.save().catch((err: Error) => this.fail(err, "alert series cursor"));
  }

  private async acquire(): Promise<void> {
    if (!this.running) return;
    const c = await this.options.pool.connect();
    let got = false;
    try {
      const { rows } = await c.query<{ got: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS got", [
        ATA,
        this.options.lockKey ?? JOB_LOCKS.alertSeries,
      ]);
      got = rows[0]?.got === true;
    } finally {
      if (!got) c.release();
    }
    if (!got) return;
    if (!this.running) {
      c.release(true);
      return;
    }
    this.lockClient = c;
    const lost = () => {
      if (this.lockClient === c) void this.resign("lock connection lost");
    };
    c.on("error", lost);
    c.on("end", lost);
    try {
      const cursors = await readCursors(this.options.pool, this.options.storeId);
      this.written = new Map(cursors);
      this.saved = new Map(cursors);
      const follower = new LogFollower(
        CHANGE_FEED_LOG,
        { ...this.options.follower, pool: this.options.pool, partitions: "listed", onGap: "skip" },
        {
          rows: (entries) => this.deliver(follower, entries),
          gap: (partitions, reason, at) => this.gap(partitions, reason, at),
          error: (err) => this.fail(err, "alert change feed"),
        },
      );
      this.follower = follower;
      await follower.start(async () => {
        for (let p = 0; p < this.options.partitions; p++) follower.follow(p, cursors.get(p) ?? 0);
      });
    } catch (err) {
      await this.resign("could not start");
      throw err;
    }
    this.options.log.info(
      { store: this.options.storeId, partitions: this.options.partitions },
      "writing the alerts' time series from the change feed",
    );
    this.emit("writer", true);
  }

  /** Gives the writer's role up: nothing more is read, the batch in flight ends, the cursor is saved, the lock goes. */
  private async resign(why: string): Promise<void> {
    const c = this.lockClient;
    const follower = this.follower;
    if (!c) return;
    this.follower = null;
    await follower?.stop();
    this.wakeRetry?.();
    await this.work;
    await this.save().catch((err: Error) => this.fail(err, "alert series cursor"));
    if (this.lockClient !== c) return;
    this.lockClient = null;
    // Closing the session releases its lock, whatever state the connection is in.
    c.release(true);
    this.options.log.info({ why }, "no longer writing the alerts' time series");
    this.emit("writer", false);
  }

  /** A batch from the follower: each of its partitions is held until its points are written. */
  private deliver(follower: LogFollower<FeedChange>, entries: FeedChange[]): void {
    const holds = new Map<number, number>();
    for (const e of entries) if (!holds.has(e.partition)) holds.set(e.partition, follower.hold(e.partition));
    this.work = this.work
      .then(() => this.write(follower, entries))
      .catch((err: Error) => this.fail(err, "alert series write"))
      .finally(() => {
        for (const [p, g] of holds) follower.release(p, g);
      });
  }

  private async write(follower: LogFollower<FeedChange>, entries: FeedChange[]): Promise<void> {
    const seqs = entries.filter((e) => e.change.kind !== "renotify").map((e) => e.change.seq);
    let delay = this.retryInitialMs;
    for (;;) {
      if (this.follower !== follower) return;
      try {
        const points: Point[] = [];
        for (const { row, alert } of await auditWithAlerts(this.options.pool, seqs))
          if (alert) points.push(alertPoint(row, alert));
        if (points.length > 0) await this.options.store.write(points);
        this.counters.pointsWritten += points.length;
        this.emit("written", { points: points.length, rows: entries.length });
        break;
      } catch (err) {
        if (isPermanentWriteError(err)) {
          // As the single process's sink: one bad batch must not stall everything behind it.
          this.counters.pointsRejected += seqs.length;
          this.fail(err as Error, "alert points refused by the store, skipped");
          break;
        }
        this.fail(err as Error, "alert points not written, retrying");
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wakeRetry = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wakeRetry = null;
        delay = Math.min(delay * 2, this.retryMaxMs);
      }
    }
    for (const e of entries)
      if (e.position > (this.written.get(e.partition) ?? 0)) this.written.set(e.partition, e.position);
    this.lastError = null;
    await this.save().catch((err: Error) => this.fail(err, "alert series cursor"));
  }

  /** Cursors moved since they were last saved. */
  private async save(): Promise<void> {
    const moved = new Map([...this.written].filter(([p, n]) => n > (this.saved.get(p) ?? -1)));
    if (moved.size === 0) return;
    await advanceCursors(this.options.pool, this.options.storeId, moved);
    for (const [p, n] of moved) if (n > (this.saved.get(p) ?? -1)) this.saved.set(p, n);
  }

  private gap(partitions: number[], reason: "pruned" | "unknown", at: ReadonlyMap<number, number>): void {
    for (const p of partitions) {
      const from = this.written.get(p) ?? 0;
      const through = at.get(p) ?? 0;
      if (reason === "pruned") {
        const lost = Math.max(0, through - from);
        this.counters.lost += lost;
        this.options.log.warn(
          { partition: p, after: from, through, lost },
          "alert change feed pruned before these transitions reached the time series: their points are missing",
        );
        this.written.set(p, through);
      } else {
        this.options.log.warn(
          { partition: p, cursor: from, head: through },
          "alert series cursor is past the change feed's head (database restored?): going on from the head",
        );
        this.written.set(p, through);
        this.saved.set(p, through);
        this.work = this.work
          .then(() => setCursor(this.options.pool, this.options.storeId, p, through))
          .catch((err: Error) => this.fail(err, "alert series cursor"));
      }
      this.emit("gap", {
        partition: p,
        reason,
        from,
        through,
        lost: reason === "pruned" ? through - from : 0,
      });
    }
    this.work = this.work
      .then(() => this.save())
      .catch((err: Error) => this.fail(err, "alert series cursor"));
  }

  private fail(err: Error, what: string): void {
    this.lastError = `${what}: ${err.message}`;
    this.options.log.warn({ err: err.message }, what);
  }
}
