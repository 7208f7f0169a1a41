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
 * batch: a crash or a takeover replays at most the batches in flight.
 *
 * A feed pruned past the cursor (no writer for longer than the feed's retention,
 * `changeFeedRetentionHours`): the entries between the cursor and the cut are gone, but their
 * transitions are still in PostgreSQL's `alert_audit`, which is append-only (a trigger refuses
 * UPDATE, DELETE and TRUNCATE) and never pruned. The writer fills them in from there before its
 * cursor passes the cut: every audit entry of the partition's sites whose `at` lies in
 *
 *   [last_at - fillMarginMs, first_at + fillMarginMs]
 *
 * `last_at` is the newest audit time among the entries written up to the cursor (kept beside it);
 * `first_at` is the audit time of the first transition still in the feed after the cut (none: no
 * upper bound). Why this covers every pruned entry: a partition's positions are in commit order, and
 * its transitions happen in that order in real time too (an owner appends in the order it changes
 * alerts, and a new owner changes nothing before the old one's lease, and with it every fenced
 * commit of the old one, has ended). But `at` is the owner's wall clock, and the owner can change
 * between entries: the `at` of a later entry can be below an earlier one's by as much as two nodes'
 * clocks disagree (or one clock stepped back). `fillMarginMs` (10 min by default) is that bound,
 * generous because a superset costs only points written again over themselves: a point is
 * deterministic, and a replay overwrites it. Without `last_at` (a cursor from before it was kept, or
 * none) the window has no lower bound: the partition's whole audit up to `first_at`.
 *
 * The audit is read by (at, id) in pages of `fillPage` (an outage of days is many entries), every
 * site's, keeping the cut partitions' (`partitionOf`), yielding between pages; the points are made
 * with `alertPoint`, as every other. Renotify entries are not in the audit, so nothing is skipped.
 * A failing store or database is retried as a batch is; the cursor stays before the cut until the
 * whole window is written, so a writer that stops meanwhile leaves the fill-in to the next. Counted:
 * `pruned` (feed entries cut), `filled` (points written from the audit, the overlap with what was
 * written or is still in the feed included), `unfilled` (entries in the window whose alert row is
 * gone, which make no point; the audit's foreign key keeps that from happening).
 *
 * Events (never "error"): "writer" (boolean: this node became the writer, or stopped being it),
 * "written" {points, rows}, "gap" {partition, reason, from, through, pruned}, "filled" {partitions,
 * from, to, points, unfilled}.
 */
import { EventEmitter } from "node:events";
import type pg from "pg";
import { alertPoint } from "../alerts/series.js";
import type { Logger } from "../log.js";
import { isPermanentWriteError, type Point, type TimeSeriesStore } from "../store/timeseries.js";
import { partitionOf } from "./partitions.js";
import {
  type AuditMark,
  advanceCursors,
  auditByTime,
  auditWithAlerts,
  firstTransitionAt,
  readCursors,
  readCursorTimes,
  seriesBacklog,
  setCursor,
} from "./pg/alert-series.js";
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
  /** How far two nodes' clocks may disagree, widening a fill-in's window on each side (header); 10 min. */
  fillMarginMs?: number;
  /** Audit entries read per page of a fill-in; 1000. */
  fillPage?: number;
}

export interface ClusterAlertSeriesStatus {
  writer: boolean;
  pointsWritten: number;
  /** Points the store refused for good (a field type conflict): skipped. */
  pointsRejected: number;
  /** Feed entries pruned before this node wrote them (header). */
  pruned: number;
  /** Points written from the audit for those cuts, the window's overlap included. */
  filled: number;
  /** Audit entries in a fill-in's window that made no point (their alert row gone). */
  unfilled: number;
  lastError: string | null;
}

export class ClusterAlertSeries extends EventEmitter {
  private readonly retryMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly fillMarginMs: number;
  private readonly fillPage: number;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  /** The lock's connection while this node is the writer. */
  private lockClient: pg.PoolClient | null = null;
  private follower: LogFollower<FeedChange> | null = null;
  /** Per partition, the last position whose points the store accepted. */
  private written = new Map<number, number>();
  /** What the cursors in PostgreSQL say, as far as this node knows. */
  private saved = new Map<number, number>();
  /** Per partition, the newest audit time among the entries written up to `written` (header). */
  private lastAt = new Map<number, number>();
  /** Batches are written one after another, each partition's in feed order. */
  private work: Promise<void> = Promise.resolve();
  private ticking: Promise<void> | null = null;
  private wakeRetry: (() => void) | null = null;
  private readonly counters = { pointsWritten: 0, pointsRejected: 0, pruned: 0, filled: 0, unfilled: 0 };
  private lastError: string | null = null;

  constructor(private readonly options: ClusterAlertSeriesOptions) {
    super();
    this.retryMs = options.retryMs ?? 5000;
    this.retryInitialMs = options.retryInitialMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
    this.fillMarginMs = options.fillMarginMs ?? 10 * 60_000;
    this.fillPage = options.fillPage ?? 1000;
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
      this.lastAt = await readCursorTimes(this.options.pool, this.options.storeId);
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
    const newest = new Map<number, number>();
    const done = await this.retrying(follower, seqs.length, async () => {
      const points: Point[] = [];
      newest.clear();
      for (const { row, alert } of await auditWithAlerts(this.options.pool, seqs)) {
        if (alert) points.push(alertPoint(row, alert));
        const p = partitionOf(row.site_id, this.options.partitions);
        newest.set(p, Math.max(newest.get(p) ?? row.at, row.at));
      }
      if (points.length > 0) await this.options.store.write(points);
      this.counters.pointsWritten += points.length;
      this.emit("written", { points: points.length, rows: entries.length });
    });
    if (!done) return;
    for (const e of entries)
      if (e.position > (this.written.get(e.partition) ?? 0)) this.written.set(e.partition, e.position);
    for (const [p, at] of newest) this.lastAt.set(p, Math.max(this.lastAt.get(p) ?? at, at));
    this.lastError = null;
    await this.save().catch((err: Error) => this.fail(err, "alert series cursor"));
  }

  /**
   * Runs one write until it succeeds, retrying with backoff, or until the store refuses its points
   * for good (`count` of them counted and skipped). False when this node stopped writing meanwhile.
   */
  private async retrying(
    follower: LogFollower<FeedChange>,
    count: number,
    attempt: () => Promise<void>,
  ): Promise<boolean> {
    let delay = this.retryInitialMs;
    for (;;) {
      if (this.follower !== follower) return false;
      try {
        await attempt();
        return true;
      } catch (err) {
        if (isPermanentWriteError(err)) {
          // As the single process's sink: one bad batch must not stall everything behind it.
          this.counters.pointsRejected += count;
          this.fail(err as Error, "alert points refused by the store, skipped");
          return true;
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
  }

  /**
   * Writes the points of every audit entry of the cut partitions in their windows (header), page by
   * page; then the cursors may pass the cuts. False when this node stopped writing meanwhile.
   */
  private async fill(follower: LogFollower<FeedChange>, cuts: ReadonlyMap<number, number>): Promise<boolean> {
    const windows = new Map<number, { from: number; to: number }>();
    const found = await this.retrying(follower, 0, async () => {
      for (const [p, through] of cuts) {
        const last = this.lastAt.get(p);
        const first = await firstTransitionAt(this.options.pool, p, through);
        windows.set(p, {
          from: last === undefined ? Number.MIN_SAFE_INTEGER : last - this.fillMarginMs,
          to: first === null ? Number.MAX_SAFE_INTEGER : first + this.fillMarginMs,
        });
      }
    });
    if (!found || windows.size === 0) return found;
    const from = Math.min(...[...windows.values()].map((w) => w.from));
    const to = Math.max(...[...windows.values()].map((w) => w.to));
    const shown = (t: number) =>
      Number.isSafeInteger(t) && Math.abs(t) < Number.MAX_SAFE_INTEGER ? t : null;
    this.options.log.info(
      { partitions: [...windows.keys()], from: shown(from), to: shown(to) },
      "filling in the alert points cut from the change feed from alert_audit",
    );
    let after: AuditMark | null = null;
    let points = 0;
    let unfilled = 0;
    for (;;) {
      let page: Awaited<ReturnType<typeof auditByTime>> = [];
      const done = await this.retrying(follower, 0, async () => {
        page = await auditByTime(this.options.pool, from, to, after, this.fillPage);
        const batch: Point[] = [];
        let missing = 0;
        for (const { row, alert } of page) {
          const w = windows.get(partitionOf(row.site_id, this.options.partitions));
          if (!w || row.at < w.from || row.at > w.to) continue;
          if (alert) batch.push(alertPoint(row, alert));
          else missing++;
        }
        try {
          if (batch.length > 0) await this.options.store.write(batch);
        } catch (err) {
          if (isPermanentWriteError(err)) this.counters.pointsRejected += batch.length;
          throw err;
        }
        points += batch.length;
        unfilled += missing;
        this.counters.filled += batch.length;
        this.counters.unfilled += missing;
      });
      if (!done) return false;
      const last = page[page.length - 1];
      if (!last || page.length < this.fillPage) break;
      after = { at: last.row.at, id: last.row.id };
      // A long outage is many pages: the node's own work (a fall's path) runs between them. The other
      // partitions' batches queue behind the fill-in, as behind any batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const log =
      unfilled > 0
        ? this.options.log.warn.bind(this.options.log)
        : this.options.log.info.bind(this.options.log);
    log(
      { partitions: [...windows.keys()], points, unfilled },
      unfilled > 0
        ? "alert points filled in from alert_audit; some entries have no alert row and make no point"
        : "alert points filled in from alert_audit",
    );
    this.emit("filled", { partitions: [...windows.keys()], from, to, points, unfilled });
    return true;
  }

  /** Cursors moved since they were last saved. */
  private async save(): Promise<void> {
    const moved = new Map([...this.written].filter(([p, n]) => n > (this.saved.get(p) ?? -1)));
    if (moved.size === 0) return;
    await advanceCursors(this.options.pool, this.options.storeId, moved, this.lastAt);
    for (const [p, n] of moved) if (n > (this.saved.get(p) ?? -1)) this.saved.set(p, n);
  }

  private gap(partitions: number[], reason: "pruned" | "unknown", at: ReadonlyMap<number, number>): void {
    const cuts = new Map<number, number>();
    for (const p of partitions) {
      const from = this.written.get(p) ?? 0;
      const through = at.get(p) ?? 0;
      if (reason === "pruned") {
        const pruned = Math.max(0, through - from);
        this.counters.pruned += pruned;
        this.options.log.warn(
          { partition: p, after: from, through, pruned },
          "alert change feed pruned before these transitions reached the time series: filling them in from alert_audit",
        );
        cuts.set(p, through);
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
        pruned: reason === "pruned" ? through - from : 0,
      });
    }
    const follower = this.follower;
    if (cuts.size > 0 && follower) {
      // Before the batches after the cut (which queue behind it), and before the cursor passes it.
      this.work = this.work.then(async () => {
        if (!(await this.fill(follower, cuts))) return;
        for (const [p, through] of cuts)
          if (through > (this.written.get(p) ?? 0)) this.written.set(p, through);
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
