/**
 * What the alert change feed (change-feed.ts) and the event log (event-log.ts) share: a table whose
 * rows carry a dense position per partition, drawn under the partition's row in a heads table so
 * that positions follow commits, announced by a NOTIFY of `<partition>:<head>`, pruned from the
 * front per partition with the cut kept in `pruned_through`, and followed on one dedicated listening
 * connection. Why positions drawn this way cannot be skipped by a reader, what NOTIFY guarantees and
 * why the retention keeps a contiguous suffix is change-feed.ts's header; this module is that
 * mechanism once, given a table (`PartitionedLog`) and a row decoder.
 *
 * `LogFollower` follows either every partition (the change feed: each node hands every alert change
 * to its staff sockets) or a changing set of partitions, each from its own start (a partition's owner
 * following its events). A partition can be held: while held, nothing more of it is read, which is how
 * a consumer gets back-pressure (it holds a partition until it has dealt with what it was given).
 */
import type pg from "pg";
import { z } from "zod";
import { PgListener } from "./listener.js";
import { NUMBERS } from "./partition-schema.js";

/** Partition -> the last position read in it (0, or absent: nothing read yet). */
export type LogPosition = ReadonlyMap<number, number>;

export interface LogRow {
  partition: number;
  position: number;
}

/** A table of partitioned rows and its heads table, as the reader and the prune need to know them. */
export interface PartitionedLog<R extends LogRow> {
  /** Rows: `partition`, `position`, unique together, dense per partition from 1. */
  table: string;
  /** One row per partition: `partition` (key), `head` (last position), `pruned_through`. */
  heads: string;
  /** The NOTIFY channel; the payload is `<partition>:<head>`. */
  channel: string;
  /** The table's columns a reader gets besides partition and position (BIGINTs come as numbers). */
  columns: readonly string[];
  /** One row as read back; throws when the row is not what the table holds. */
  decode(row: Record<string, unknown>, partition: number, position: number): R;
  /** SQL condition on the table (no alias) for a row older than $1 milliseconds: what a prune deletes. */
  olderThan: string;
  /**
   * What the prune keeps of the rows it deletes: a data-modifying statement over `gone` (the deleted
   * rows with the `returning` columns), run in the delete's own statement, so it sees exactly the
   * rows this prune deleted.
   */
  onPrune?: { returning: string; sql: string };
}

const Count = z.number().int().nonnegative();
const HeadRow = z.object({ partition: Count, head: Count, pruned_through: Count });
const ReadRow = HeadRow.extend({ position: Count.nullable() });

/** Every partition's head now: where a new subscriber that wants live rows only starts. */
export async function logHeads<R extends LogRow>(
  db: pg.Pool | pg.PoolClient | pg.Client,
  log: PartitionedLog<R>,
): Promise<LogPosition> {
  const { rows } = await db.query({
    text: `SELECT partition, head, pruned_through FROM ${log.heads}`,
    types: NUMBERS,
  });
  return new Map(rows.map((r) => HeadRow.parse(r)).map((h) => [h.partition, h.head]));
}

/**
 * One snapshot (one statement) of the heads and cuts, and up to $4 rows after the given position in
 * each partition that is not behind its cut. $3: only these partitions (NULL: all).
 */
function readSql(log: PartitionedLog<LogRow>): string {
  return `
  WITH heads AS (
    SELECT h.partition, h.head, h.pruned_through, coalesce(a.after, 0) AS after
      FROM ${log.heads} AS h
      LEFT JOIN unnest($1::int[], $2::bigint[]) AS a(partition, after) ON a.partition = h.partition
     WHERE $3::int[] IS NULL OR h.partition = ANY($3::int[]))
  SELECT heads.partition, heads.head, heads.pruned_through, f.position${log.columns.map((c) => `, f.${c}`).join("")}
    FROM heads LEFT JOIN LATERAL (
      SELECT position${log.columns.map((c) => `, ${c}`).join("")} FROM ${log.table} AS f
       WHERE f.partition = heads.partition AND f.position > heads.after
         AND heads.after >= heads.pruned_through AND heads.after <= heads.head
       ORDER BY f.position LIMIT $4) AS f ON true
   ORDER BY heads.partition, f.position`;
}

export interface LogBatch<R> {
  rows: R[];
  /** Some partition returned a full batch: there may be more. */
  more: boolean;
  /** Partitions whose position is below their cut (rows after it were pruned). */
  tooOld: number[];
  /** Partitions whose position is past their head, or that have no head at all. */
  unknown: number[];
  /** Partition -> its cut, for the partitions behind it. */
  cuts: Map<number, number>;
  heads: Map<number, number>;
}

export async function readLogBatch<R extends LogRow>(
  db: pg.Pool | pg.PoolClient,
  log: PartitionedLog<R>,
  position: LogPosition,
  limit: number,
  only: readonly number[] | null,
): Promise<LogBatch<R>> {
  const known = [...position].filter(([p, n]) => n > 0 && (only === null || only.includes(p)));
  const { rows } = await db.query({
    text: readSql(log),
    values: [known.map((k) => k[0]), known.map((k) => k[1]), only, limit],
    types: NUMBERS,
  });
  const batch: LogBatch<R> = {
    rows: [],
    more: false,
    tooOld: [],
    unknown: [],
    cuts: new Map(),
    heads: new Map(),
  };
  const seen = new Map<number, number>();
  for (const raw of rows as Record<string, unknown>[]) {
    const row = ReadRow.parse(raw);
    if (!batch.heads.has(row.partition)) {
      batch.heads.set(row.partition, row.head);
      const after = position.get(row.partition) ?? 0;
      if (after > row.head) batch.unknown.push(row.partition);
      else if (after < row.pruned_through) {
        batch.tooOld.push(row.partition);
        batch.cuts.set(row.partition, row.pruned_through);
      }
    }
    if (row.position === null) continue;
    const n = (seen.get(row.partition) ?? 0) + 1;
    seen.set(row.partition, n);
    if (n === limit) batch.more = true;
    batch.rows.push(log.decode(raw, row.partition, row.position));
  }
  // A position in a partition that has no head row at all was not issued by this database either.
  for (const [p] of known) if (!batch.heads.has(p)) batch.unknown.push(p);
  return batch;
}

/**
 * Deletes, per partition, every row up to the newest that is older than `retentionMs` (a prefix, so
 * what is kept stays contiguous), recording the cut in `pruned_through`; one partition at a time, so
 * that a prune locks one head row at a time, as an append does. Returns the rows deleted.
 */
export async function pruneLog<R extends LogRow>(
  db: pg.Pool,
  log: PartitionedLog<R>,
  retentionMs: number,
): Promise<number> {
  // Per partition from the heads, each over the partition's old rows only ("OFFSET 0" keeps the
  // planner from reading max(position) backwards through every newer row instead).
  const { rows: cuts } = await db.query({
    text: `SELECT h.partition,
                  (SELECT max(o.position) FROM (SELECT position FROM ${log.table}
                     WHERE partition = h.partition AND ${log.olderThan} OFFSET 0) AS o) AS through
             FROM ${log.heads} AS h`,
    values: [Math.round(retentionMs)],
    types: NUMBERS,
  });
  let deleted = 0;
  for (const c of cuts.map((r) => z.object({ partition: Count, through: Count.nullable() }).parse(r))) {
    if (c.through === null) continue;
    const { rows } = await db.query<{ deleted: number }>(
      `WITH gone AS (DELETE FROM ${log.table} WHERE partition = $1 AND position <= $2
                      RETURNING ${log.onPrune?.returning ?? "1"}),${log.onPrune ? ` kept AS (${log.onPrune.sql}),` : ""}
            cut AS (UPDATE ${log.heads} SET pruned_through = $2
                     WHERE partition = $1 AND pruned_through < $2 RETURNING 1)
       SELECT (SELECT count(*) FROM gone)::int AS deleted`,
      [c.partition, c.through],
    );
    deleted += rows[0]?.deleted ?? 0;
  }
  return deleted;
}

export interface LogFollowerHooks<R> {
  /** New rows, in position order per partition, each once; the follower's position is already past them. */
  rows(rows: R[]): void;
  /**
   * Partitions whose rows cannot all be delivered: `pruned`, the position is below the cut;
   * `unknown`, it is past the head (the database was restored or replaced). `at` holds each one's
   * cut or head.
   */
  gap(partitions: number[], reason: "pruned" | "unknown", at: ReadonlyMap<number, number>): void;
  error(err: Error): void;
}

/** How a follower reads; each with a default. */
export interface FollowerTuning {
  /** Rows per partition per read; 500. */
  batch?: number;
  /** Wait before opening a lost connection again; 1 s. */
  reconnectMs?: number;
  /** Read even without a notification this often, which also finds a connection that hangs; 5 s. */
  pollMs?: number;
  /** A read that has not answered by then drops the connection (it is opened again); 5 s. */
  timeoutMs?: number;
}

export interface LogFollowerOptions extends FollowerTuning {
  pool: pg.Pool;
  /**
   * `all`: every partition, from the position given at start (absent ones from 0). `listed`: only
   * the partitions `follow()` names, each from its own position.
   */
  partitions: "all" | "listed";
  /**
   * After a gap: `skip` goes on from the partition's cut or head (a subscriber that takes a snapshot
   * instead); `drop` stops following the partition (its consumer decides).
   */
  onGap: "skip" | "drop";
}

export interface LogFollowerStatus {
  connected: boolean;
  /** The listening connection's server process, for pg_stat_activity. */
  backendPid: number | null;
  delivered: number;
  reconnects: number;
  lastError: string | null;
}

/**
 * One dedicated connection (taken from the pool and never given back, so nobody else inherits its
 * LISTEN) that listens and reads from this follower's positions on. Listening comes before reading,
 * at start and after every reconnect, so whatever commits in between is either read or announced.
 */
export class LogFollower<R extends LogRow> {
  private position = new Map<number, number>();
  /** The partitions followed (`listed`); each follow() gives the partition a new generation. */
  private readonly followed = new Map<number, number>();
  /** Partitions not read until released: the generation that held each. */
  private readonly held = new Map<number, number>();
  private generation = 0;
  private running = false;
  private readonly listener: PgListener;
  private reading: Promise<void> | null = null;
  private again = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private delivered = 0;
  private lastError: string | null = null;

  private readonly options: Required<LogFollowerOptions>;

  constructor(
    private readonly log: PartitionedLog<R>,
    options: LogFollowerOptions,
    private readonly hooks: LogFollowerHooks<R>,
  ) {
    this.options = {
      batch: options.batch ?? 500,
      reconnectMs: options.reconnectMs ?? 1000,
      pollMs: options.pollMs ?? 5000,
      timeoutMs: options.timeoutMs ?? 5000,
      pool: options.pool,
      partitions: options.partitions,
      onGap: options.onGap,
    };
    this.listener = new PgListener({
      pool: this.options.pool,
      channels: [log.channel],
      reconnectMs: this.options.reconnectMs,
      onNotification: (msg) => {
        if (!msg.payload) return;
        const [p, head] = msg.payload.split(":").map(Number) as [number, number];
        if (this.wants(p) && !(head <= (this.position.get(p) ?? 0))) void this.catchUp();
      },
      // Listening again before reading: what committed while away is read now, what commits from
      // here on is announced. The first LISTEN's read is start()'s, after `init`.
      onListening: (reconnected) => {
        if (reconnected) void this.catchUp();
      },
      onError: (err) => this.fail(err),
    });
  }

  private get client(): pg.PoolClient | null {
    return this.listener.client;
  }

  /**
   * Listens, lets `init` set the starting positions on the listening connection, and reads what is
   * already there after them. Throws (stopped again) when it cannot.
   */
  async start(init: (c: pg.PoolClient) => Promise<void> = async () => undefined): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.listener.start();
      if (!this.client) throw new Error(`${this.log.table} follower stopped while starting`);
      await init(this.client);
      await this.catchUp();
    } catch (err) {
      await this.stop();
      throw err;
    }
    if (this.options.pollMs > 0) this.pollTimer = setInterval(() => void this.catchUp(), this.options.pollMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    await this.reading?.catch(() => undefined);
    this.listener.stop();
  }

  get isRunning(): boolean {
    return this.running;
  }

  positions(): Map<number, number> {
    return new Map(this.position);
  }

  /** Sets where reading goes on in a partition (`all`: at start; `listed`: use follow()). */
  setPosition(partition: number, position: number): void {
    this.position.set(partition, position);
  }

  /** Follows the partition from `after` (its last position dealt with); `listed` only. */
  follow(partition: number, after: number): void {
    this.followed.set(partition, ++this.generation);
    this.held.delete(partition);
    this.position.set(partition, after);
    void this.catchUp();
  }

  /** Nothing of the partition is delivered from now on, including what a read in flight returns. */
  unfollow(partition: number): void {
    this.followed.delete(partition);
    this.held.delete(partition);
    this.position.delete(partition);
  }

  isFollowing(partition: number): boolean {
    return this.options.partitions === "all" || this.followed.has(partition);
  }

  /** Reads nothing more of the partition until release() with the generation this returns. */
  hold(partition: number): number {
    const g = this.followed.get(partition) ?? 0;
    this.held.set(partition, g);
    return g;
  }

  /** Whether the partition is still held by the hold that returned `generation`. */
  holding(partition: number, generation: number): boolean {
    return this.held.get(partition) === generation;
  }

  heldPartitions(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Ends a hold (if the partition was not dropped or followed anew since) and reads on. */
  release(partition: number, generation: number): void {
    if (this.held.get(partition) !== generation) return;
    this.held.delete(partition);
    void this.catchUp();
  }

  status(): LogFollowerStatus {
    const { connected, backendPid, reconnects } = this.listener.status();
    return { connected, backendPid, delivered: this.delivered, reconnects, lastError: this.lastError };
  }

  fail(err: Error): void {
    this.lastError = err.message;
    this.hooks.error(err);
  }

  /** Partitions a read asks for now: null for every one. */
  private wanted(): number[] | null {
    if (this.options.partitions === "all") return null;
    return [...this.followed.keys()].filter((p) => !this.held.has(p));
  }

  private wants(partition: number): boolean {
    return this.isFollowing(partition) && !this.held.has(partition);
  }

  /** One read at a time; a notification (or a new partition, or a release) during a read asks for another. */
  catchUp(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        if (!this.running || !this.client) return;
        await this.readOnce(this.client);
      } while (this.again);
    })()
      .catch((err: Error) => this.fail(err))
      .finally(() => {
        this.reading = null;
        // Asked for after the last read's loop ended but before this ran (a release is a promise
        // callback, so it can land in between): read again rather than drop the request.
        if (this.again && this.running) void this.catchUp();
      });
    return this.reading;
  }

  private async readOnce(c: pg.PoolClient): Promise<void> {
    for (;;) {
      const only = this.wanted();
      if (only !== null && only.length === 0) return;
      const asked = new Map(this.position);
      const generations = new Map(this.followed);
      const batch = await this.withTimeout(c, readLogBatch(c, this.log, asked, this.options.batch, only));
      if (!this.running || this.client !== c) return;
      // What changed for a partition while the read was out (dropped, followed anew, held) makes
      // its part of the answer stale: it is left for the next read.
      const current = (p: number) =>
        this.wants(p) && generations.get(p) === this.followed.get(p) && asked.get(p) === this.position.get(p);
      const gaps = (partitions: number[], reason: "pruned" | "unknown", at: Map<number, number>) => {
        const hit = partitions.filter(current);
        if (hit.length === 0) return false;
        for (const p of hit)
          if (this.options.onGap === "skip") this.position.set(p, at.get(p) ?? 0);
          else this.unfollow(p);
        this.tell(() => this.hooks.gap(hit, reason, new Map(hit.map((p) => [p, at.get(p) ?? 0]))));
        return true;
      };
      if (gaps(batch.unknown, "unknown", batch.heads)) continue;
      if (gaps(batch.tooOld, "pruned", batch.cuts)) continue;
      const fresh: R[] = [];
      const gapped = new Set<number>();
      const stalled = new Set<number>();
      const stale = new Set<number>();
      const at = new Map<number, number>();
      for (const row of batch.rows) {
        if (stalled.has(row.partition) || stale.has(row.partition)) continue;
        if (!current(row.partition)) {
          // Followed anew or moved meanwhile: read again. Held or dropped: not until released.
          if (this.wants(row.partition)) stale.add(row.partition);
          else stalled.add(row.partition);
          continue;
        }
        // Positions are dense: a missing one is not committed yet (change-feed.ts's header rules
        // it out), so nothing after it in that partition is delivered before it.
        const last = at.get(row.partition) ?? this.position.get(row.partition) ?? 0;
        if (row.position !== last + 1) {
          stalled.add(row.partition);
          gapped.add(row.partition);
          continue;
        }
        at.set(row.partition, row.position);
        fresh.push(row);
      }
      for (const [p, n] of at) this.position.set(p, n);
      if (fresh.length > 0) {
        this.delivered += fresh.length;
        this.tell(() => this.hooks.rows(fresh));
      }
      if (gapped.size > 0)
        this.fail(new Error(`${this.log.table}: a gap in partitions ${[...gapped].join(", ")}`));
      if (stale.size > 0) this.again = true;
      if (!batch.more || gapped.size > 0) return;
    }
  }

  /** A read that hangs (a network partition swallowing packets) drops the connection. */
  private async withTimeout<T>(c: pg.PoolClient, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.listener.drop(c);
        reject(new Error(`no answer from PostgreSQL within ${this.options.timeoutMs} ms`));
      }, this.options.timeoutMs);
    });
    work.catch(() => undefined);
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A hook that throws is reported as an error; the follower's position has moved on regardless. */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err as Error);
    }
  }
}
