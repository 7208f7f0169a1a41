/**
 * The cross-node alert change feed. In cluster mode a site's alerts change on the one node that holds
 * its partition's lease (leases.ts), while staff connect to any node: every alert change (the staff
 * protocol's `alert` message: raised, accepted, escalated, resolved ...) is written by the owner to
 * `change_feed` inside its fenced transaction (`appendChanges`), and every node follows the feed
 * (`ChangeFeed`) to hand the changes to its own staff sockets. `readSince` answers a staff client that
 * reconnects to any node and resumes from where it was.
 *
 * Positions: one dense sequence per partition, drawn under the partition's row in
 * `change_feed_heads`, so per partition the order of positions is the order of commits; a position in
 * the feed is a vector {partition: last position read}. The choice, against the alternatives:
 *
 * - A plain bigserial is assigned when a row is inserted, not when it commits ("nextval ... is never
 *   rolled back", PostgreSQL 15 docs, 9.17 Sequence Manipulation Functions): a reader can see 11
 *   before 10 commits, move past it, and skip 10 for ever.
 * - Drawing the position from `change_feed_heads` (`head = head + n`, an INSERT ... ON CONFLICT DO
 *   UPDATE) takes the row's FOR NO KEY UPDATE lock, held until the transaction ends (13.3.2 Row-Level
 *   Locks). A second appender of the partition waits at that statement until the first commits or
 *   rolls back, then works on the row as the first left it (13.2.1 Read Committed: "the second updater
 *   ... will attempt to apply its operation to the updated version of the row"; for ON CONFLICT DO
 *   UPDATE the same holds for a conflicting row not yet visible to the command). So a partition's
 *   positions are handed out in commit order, and without gaps: a rollback gives its numbers back with
 *   the head. A reader of one snapshot sees a prefix of each partition's positions, and one that only
 *   ever advances from position k to k + 1 (it stops at a gap, which the lock rules out) cannot skip
 *   a row committed late. There is one writer per partition anyway (the lease's owner), so the lock
 *   costs nothing in normal work; partitions never wait for each other.
 * - Reading only below the oldest running transaction (`pg_snapshot_xmin(pg_current_snapshot())`
 *   with xid8 columns) is sound too, but couples every partition to every writer of the database: a
 *   fall raised in one partition would wait for the slowest open writing transaction anywhere (an
 *   owner paused inside `fenced` holds it for up to leaseMs, an operator's open psql session for
 *   ever), and its positions are (xid8, id) pairs beyond JavaScript's safe integers.
 * - One lock for every append until commit (a table lock, or one counter row) gives a single integer
 *   in commit order, at the price of serialising every partition's flush, so that one paused owner
 *   stops alert changes of the whole cluster for up to leaseMs.
 *
 * The price of vectors: a staff client's resume point is a vector too (`encodeFeedCursor`, one pair
 * per partition of its sites), not the single `seq` of docs/staff-protocol.md. `seq` stays the audit
 * id in each message, increasing per alert (an alert's site is in one partition, and its changes are
 * appended in its owner's order).
 *
 * Renotify entries: the staff `renotify` message (the signal of an alert nobody has accepted,
 * repeated) is no audit change, yet it must reach staff on every node as a change does. The owner
 * appends it as an entry of its own kind (`renotifyEntry`: `kind: "renotify"`, the alert's view and
 * the `seq` of the alert's latest change), in a fenced transaction of the alert's partition like any
 * change, so it takes a position in the partition's order. A node hands it to its staff sockets as
 * `renotify`; a resume passes over it (renotifies are not replayed, docs/staff-protocol.md).
 *
 * Notifications carry `<partition>:<head>` only: a message can exceed NOTIFY's 8000-byte payload, and
 * NOTIFY is transactional, so a subscriber hears of a row only once it has committed, and never of a
 * rolled-back one ("if a NOTIFY is executed inside a transaction, the notify events are not delivered
 * until and unless the transaction is committed", NOTIFY). A subscriber LISTENs before it reads, so
 * nothing committed between the two is missed; after a lost connection it LISTENs again and reads on
 * from its own position, so it needs no notification for what it missed. A slow poll (`pollMs`)
 * covers a connection that hangs without failing.
 *
 * Retention: `prune()` deletes, per partition, every row up to the newest that is older than
 * `retentionMs` (a prefix, so a partition's retained rows stay contiguous) and records the cut in
 * `pruned_through`. A resume from below the cut is answered `too_old` (take a snapshot), never with a
 * silent gap; a position above a partition's head was never issued by this database (restored or
 * replaced) and is answered `unknown`. The retention must be at least the staff server's resume-floor
 * TTL (an hour), so that a floor kept for a token can still be served.
 *
 * The reading, following and pruning are partitioned-log.ts's, shared with the event log
 * (event-log.ts), which draws its positions the same way.
 *
 * Use: `appendChanges(client, partition, changes)` only inside `PartitionLeases.fenced` for that same
 * partition, one partition per transaction (the head row stays locked until the commit), best as the
 * transaction's last statement so that the lock is held for the shortest time.
 */
import { EventEmitter } from "node:events";
import type pg from "pg";
import { z } from "zod";
import type { AlertChange } from "../../alerts/manager.js";
import { AlertView, AUDIT_ACTIONS } from "../../alerts/model.js";
import { ApiError } from "../../errors.js";
import type { PgMigration } from "./migrate.js";
import {
  type FollowerTuning,
  LogFollower,
  logHeads,
  type PartitionedLog,
  pruneLog,
  readLogBatch,
} from "./partitioned-log.js";

export const CHANGE_FEED_MIGRATION: PgMigration = {
  version: 5,
  name: "change_feed",
  sql: `
    CREATE TABLE change_feed_heads (
      partition INTEGER PRIMARY KEY CHECK (partition >= 0),
      head BIGINT NOT NULL CHECK (head >= 0),            -- the partition's last position appended
      pruned_through BIGINT NOT NULL DEFAULT 0           -- every position <= this one has been deleted
    );
    CREATE TABLE change_feed (
      partition INTEGER NOT NULL,
      position BIGINT NOT NULL CHECK (position > 0),
      token BIGINT NOT NULL,                             -- the lease's fencing token that wrote it
      site TEXT NOT NULL,
      alert_id TEXT NOT NULL,
      appended_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
      message JSONB NOT NULL,                            -- the AlertChange
      PRIMARY KEY (partition, position)
    );
    CREATE INDEX change_feed_appended_at ON change_feed (appended_at);
  `,
};

/** The NOTIFY channel; the payload is `<partition>:<head>`. */
export const CHANGE_FEED_CHANNEL = "ata_change_feed";

/** The staff server keeps a closed socket's resume floor for an hour (src/staff/server.ts). */
export const MIN_RETENTION_MS = 60 * 60 * 1000;

/** For the cluster configuration's PostgreSQL section, once it exists. */
export const ChangeFeedConfig = z.strictObject({
  retentionHours: z.number().min(1).default(24),
  pruneEveryMinutes: z.number().positive().default(10),
});
export type ChangeFeedConfig = z.infer<typeof ChangeFeedConfig>;

/** Partition -> the last position read in it (0, or absent: nothing read yet). */
export type FeedPosition = ReadonlyMap<number, number>;

/** One alert change as the feed holds it. */
export interface FeedChange {
  partition: number;
  position: number;
  /** The fencing token of the lease under which it was written. */
  token: number;
  site: string;
  alertId: string;
  appendedAt: Date;
  change: FeedMessage;
}

export type ResumeAnswer =
  | { kind: "changes"; changes: FeedChange[]; position: FeedPosition }
  /** Rows after the position were deleted by retention, or there are more than `limit`: take a snapshot. */
  | { kind: "too_old"; partitions: number[] }
  /** The position is past anything this database appended (restored or replaced): take a snapshot. */
  | { kind: "unknown"; partitions: number[] };

/**
 * The message read back: an alert change as src/alerts/manager.ts makes it, or (`kind: "renotify"`)
 * a renotify entry (header).
 */
const AlertChangeRecord = z.object({
  kind: z.literal("renotify").optional(),
  seq: z.number().int().nonnegative(),
  change: z.enum(AUDIT_ACTIONS),
  alert: AlertView,
  actor: z.string(),
  reason: z.string().nullable(),
});

/** A feed entry's message: an alert change, or a renotify entry (`kind: "renotify"`). */
export type FeedMessage = z.infer<typeof AlertChangeRecord>;

/**
 * The renotify entry the owner appends when an alert's signal is repeated (header); `seq` is the
 * id of the alert's latest audit entry, the change its view shows.
 */
export function renotifyEntry(alert: AlertView, seq: number): FeedMessage {
  return { kind: "renotify", seq, change: "renotified", alert, actor: "system", reason: null };
}

/** The feed as the shared reader and prune see it (partitioned-log.ts). */
const FeedRow = z.object({
  token: z.number().int(),
  site: z.string(),
  alert_id: z.string(),
  appended_at: z.date(),
  message: z.unknown(),
});
export const CHANGE_FEED_LOG: PartitionedLog<FeedChange> = {
  table: "change_feed",
  heads: "change_feed_heads",
  channel: CHANGE_FEED_CHANNEL,
  columns: ["token", "site", "alert_id", "appended_at", "message"],
  decode(raw, partition, position) {
    const row = FeedRow.parse(raw);
    const change = AlertChangeRecord.safeParse(row.message);
    if (!change.success)
      throw new Error(
        `change feed row ${partition}:${position} does not hold an alert change: ${change.error.message}`,
      );
    return {
      partition,
      position,
      token: row.token,
      site: row.site,
      alertId: row.alert_id,
      appendedAt: row.appended_at,
      change: change.data,
    };
  },
  olderThan: "appended_at < now() - $1::bigint * interval '1 millisecond'",
};

/**
 * Draws n positions for the partition: the row lock taken here is what puts positions in commit
 * order (header). The token is the lease row's, which the fence holds FOR KEY SHARE.
 */
const APPEND = `
  WITH head AS (
    INSERT INTO change_feed_heads AS h (partition, head) VALUES ($1, $2)
    ON CONFLICT (partition) DO UPDATE SET head = h.head + EXCLUDED.head
    RETURNING h.head)
  INSERT INTO change_feed (partition, position, token, site, alert_id, message)
  SELECT $1, head.head - $2 + c.ord, l.token, c.site, c.alert_id, c.message::jsonb
    FROM head, partition_leases AS l,
         unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS c(site, alert_id, message, ord)
   WHERE l.partition = $1
  RETURNING position`;

/**
 * Appends alert changes for the partition, inside the owner's fenced transaction on `client`; they
 * become visible to every node, and are announced, when that transaction commits, and never if it
 * rolls back. Returns the positions drawn (null for no changes).
 */
export async function appendChanges(
  client: pg.PoolClient | pg.Client,
  partition: number,
  changes: readonly AlertChange[],
): Promise<{ partition: number; from: number; to: number } | null> {
  if (changes.length === 0) return null;
  const { rows } = await client.query<{ position: string }>(APPEND, [
    partition,
    changes.length,
    changes.map((c) => c.alert.site),
    changes.map((c) => c.alert.id),
    changes.map((c) => JSON.stringify(c)),
  ]);
  if (rows.length !== changes.length)
    throw new Error(
      `partition ${partition} has no lease row: changes are appended inside its fenced transaction`,
    );
  const positions = rows.map((r) => Number(r.position));
  const to = Math.max(...positions);
  await client.query("SELECT pg_notify($1, $2)", [CHANGE_FEED_CHANNEL, `${partition}:${to}`]);
  return { partition, from: to - changes.length + 1, to };
}

/** Every partition's head now: where a snapshot stands, and a new subscriber starts. */
export function feedHeads(db: pg.Pool | pg.PoolClient | pg.Client): Promise<FeedPosition> {
  return logHeads(db, CHANGE_FEED_LOG);
}

/** Deletes what retention no longer keeps; returns the number of rows deleted. */
export async function pruneChanges(db: pg.Pool, retentionMs: number): Promise<number> {
  if (retentionMs < MIN_RETENTION_MS)
    throw new RangeError(`change feed retention ${retentionMs} ms is below the resume floor's hour`);
  return pruneLog(db, CHANGE_FEED_LOG, retentionMs);
}

export interface ReadSinceOptions {
  /** Only these partitions (a staff client's sites'); the position's other entries are ignored. */
  partitions?: readonly number[];
  /** More changes than this after the position: answered `too_old` (take a snapshot instead). */
  limit?: number;
}

/**
 * Every change after `position`, in order per partition, with the position after them; or why a
 * snapshot must be taken instead. Read on any node: a staff client's resume.
 */
export async function readSince(
  db: pg.Pool,
  position: FeedPosition,
  opts: ReadSinceOptions = {},
): Promise<ResumeAnswer> {
  const limit = opts.limit ?? 5000;
  const only = opts.partitions ?? null;
  const at = new Map(position);
  const changes: FeedChange[] = [];
  for (;;) {
    const batch = await readLogBatch(db, CHANGE_FEED_LOG, at, Math.min(limit + 1, 1000), only);
    if (batch.unknown.length > 0) return { kind: "unknown", partitions: batch.unknown.sort((a, b) => a - b) };
    if (batch.tooOld.length > 0) return { kind: "too_old", partitions: batch.tooOld.sort((a, b) => a - b) };
    const stalled = new Set<number>();
    for (const c of batch.rows) {
      // Dense positions (header): nothing is taken past a missing one.
      if (stalled.has(c.partition) || c.position !== (at.get(c.partition) ?? 0) + 1) {
        stalled.add(c.partition);
        continue;
      }
      changes.push(c);
      at.set(c.partition, c.position);
    }
    if (changes.length > limit) {
      const partitions = [...new Set(changes.map((c) => c.partition))].sort((a, b) => a - b);
      return { kind: "too_old", partitions };
    }
    if (!batch.more || stalled.size > 0) break;
  }
  if (only) for (const p of [...at.keys()]) if (!only.includes(p)) at.delete(p);
  return { kind: "changes", changes, position: at };
}

/** The position after `changes`, from `position` on. */
export function advance(position: FeedPosition, changes: readonly FeedChange[]): FeedPosition {
  const at = new Map(position);
  for (const c of changes) if (c.position > (at.get(c.partition) ?? 0)) at.set(c.partition, c.position);
  return at;
}

/** Whether `change` comes after `position` (a live change a resume has not replayed yet). */
export function isAfter(position: FeedPosition, change: FeedChange): boolean {
  return change.position > (position.get(change.partition) ?? 0);
}

/** The earlier of two positions, partition by partition: a resume floor kept across connections. */
export function earlier(a: FeedPosition, b: FeedPosition): FeedPosition {
  const at = new Map<number, number>();
  for (const p of new Set([...a.keys(), ...b.keys()])) at.set(p, Math.min(a.get(p) ?? 0, b.get(p) ?? 0));
  return at;
}

/** A position as a client carries it: `<partition>:<position>` pairs, comma-separated, by partition. */
export function encodeFeedCursor(position: FeedPosition): string {
  return [...position]
    .sort((a, b) => a[0] - b[0])
    .map(([p, n]) => `${p}:${n}`)
    .join(",");
}

/** The cursor in a client's message (a boundary): at most 1024 partitions, each once. */
export const FeedCursor = z
  .string()
  .max(24 * 1024)
  .regex(/^(\d{1,5}:\d{1,15}(,\d{1,5}:\d{1,15}){0,1023})?$/, "expected <partition>:<position>,...")
  .transform((text, ctx) => {
    const at = new Map<number, number>();
    for (const pair of text === "" ? [] : text.split(",")) {
      const [p, n] = pair.split(":").map(Number) as [number, number];
      if (at.has(p)) ctx.addIssue({ code: "custom", message: `partition ${p} appears twice` });
      at.set(p, n);
    }
    return at as FeedPosition;
  });

/** A client's cursor, or the catalogue's `invalid_body` with each problem's path and message. */
export function parseFeedCursor(text: unknown): FeedPosition {
  const r = FeedCursor.safeParse(text);
  if (r.success) return r.data;
  throw new ApiError(
    "invalid_body",
    "the resume cursor is malformed",
    r.error.issues.map((i) => ({ path: i.path, message: i.message })),
  );
}

export interface ChangeFeedEvents {
  /** New changes, in order per partition, each once; `position` is the feed's position after them. */
  changes: [changes: FeedChange[], position: FeedPosition];
  /**
   * This node cannot deliver every change of these partitions: `pruned`, rows were deleted before it
   * read them (it was away longer than the retention); `unknown`, its position is past the partition's
   * head (the database was restored or replaced). The feed goes on from the partitions' present state;
   * staff sessions relying on it must take a snapshot.
   */
  gap: [partitions: number[], reason: "pruned" | "unknown"];
  /** A read, a reconnect or a prune failed, or a listener threw; the feed goes on. */
  error: [err: Error];
}

export interface ChangeFeedOptions extends FollowerTuning {
  pool: pg.Pool;
  /** Where to start; the heads at start() when absent (live changes only). */
  from?: FeedPosition;
  /** Rows older than this are deleted; at least MIN_RETENTION_MS. 24 h by default. */
  retentionMs?: number;
  /** How often this node prunes (0: never; another node may). */
  pruneEveryMs?: number;
}

export interface ChangeFeedStatus {
  running: boolean;
  connected: boolean;
  /** The listening connection's server process, for pg_stat_activity. */
  backendPid: number | null;
  position: FeedPosition;
  delivered: number;
  reconnects: number;
  lastError: string | null;
}

/**
 * A node's subscription to the feed: every partition, in feed order, from this node's position on,
 * on one dedicated listening connection (partitioned-log.ts `LogFollower`). Constructing does nothing;
 * start() listens and catches up; stop() undoes it.
 */
export class ChangeFeed extends EventEmitter<ChangeFeedEvents> {
  readonly retentionMs: number;
  private readonly pruneEveryMs: number;
  private readonly follower: LogFollower<FeedChange>;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: ChangeFeedOptions) {
    super();
    this.retentionMs = options.retentionMs ?? 24 * MIN_RETENTION_MS;
    this.pruneEveryMs = options.pruneEveryMs ?? 10 * 60 * 1000;
    if (this.retentionMs < MIN_RETENTION_MS)
      throw new RangeError(`change feed retention ${this.retentionMs} ms is below the resume floor's hour`);
    this.follower = new LogFollower(
      CHANGE_FEED_LOG,
      { ...options, partitions: "all", onGap: "skip" },
      {
        rows: (changes) => this.emit("changes", changes, this.follower.positions()),
        gap: (partitions, reason) => this.emit("gap", partitions, reason),
        error: (err) => {
          if (this.listenerCount("error") > 0) this.emit("error", err);
        },
      },
    );
  }

  /** Listens, takes its starting position, and delivers what is already there after it. */
  async start(): Promise<void> {
    if (this.follower.isRunning) return;
    await this.follower.start(async (c) => {
      for (const [p, n] of this.options.from ?? (await feedHeads(c))) this.follower.setPosition(p, n);
    });
    if (this.pruneEveryMs > 0) this.pruneTimer = setInterval(() => void this.prune(), this.pruneEveryMs);
  }

  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
    await this.follower.stop();
  }

  /** Every change after `position` (a staff client's resume), on the pool. */
  readSince(position: FeedPosition, opts?: ReadSinceOptions): Promise<ResumeAnswer> {
    return readSince(this.options.pool, position, opts);
  }

  /** Deletes rows older than the retention; errors are reported, not thrown. */
  async prune(): Promise<number> {
    try {
      return await pruneChanges(this.options.pool, this.retentionMs);
    } catch (err) {
      this.follower.fail(err as Error);
      return 0;
    }
  }

  status(): ChangeFeedStatus {
    return {
      running: this.follower.isRunning,
      ...this.follower.status(),
      position: this.follower.positions(),
    };
  }
}
