/**
 * The event log on PostgreSQL, per partition. In cluster mode any gateway node may consume any
 * device's publish from RabbitMQ (rabbit-ingest.ts), while a site's rules run on the one node holding
 * its partition's lease (leases.ts). The shared `events` table (migration 2) is where the two meet:
 * every ingest node appends its group commit to it (`appendEvents`), and each partition's owner
 * follows its partitions' events from the rules' cursor (`EventLogFollower`), in order, each once.
 *
 * Positions (migration 6): each event gets its site's partition (`partitionOf`) and a dense position
 * in that partition, drawn under the partition's row in `event_log_heads` exactly as the alert change
 * feed draws its positions (change-feed.ts's header: a head row's lock held to the commit hands out
 * positions in commit order and without gaps, so a reader that only ever moves from k to k + 1
 * cannot skip a row that commits late; a bigserial could be skipped, a snapshot-xmin reader would tie
 * every partition to the slowest writer anywhere). What differs from the feed:
 *
 * - Several writers per partition. The feed has one (the lease's owner); here every ingest node
 *   appends to every partition, since a group of 500 events touches most of 64 partitions. The head
 *   rows are therefore locked last: the group's rows are inserted first (the long part, unlocked,
 *   so two nodes insert at the same time), and the transaction's last statement takes the touched
 *   heads, in partition order (so two appenders cannot deadlock on them), sets the new rows'
 *   positions and notifies; only that statement and the commit run under the locks.
 * - Dedupe. RabbitMQ redelivers what a node did not acknowledge, possibly to another node while the
 *   first one's commit is still running. The insert is `ON CONFLICT (device_id, event_id) DO
 *   NOTHING` on the existing unique index: of two transactions inserting the same event, the second
 *   waits for the first and then inserts nothing ("INSERT ... ON CONFLICT DO NOTHING ... the
 *   alternative action is taken if a conflicting row is inserted concurrently", PostgreSQL 15 docs,
 *   INSERT; the wait is the unique index's, 64.5 Index Uniqueness Checks). So a position is drawn
 *   only for a row that was inserted, and the caller learns which of its events were new. The rows
 *   are inserted ordered by (device_id, event_id): two groups holding the same two events in
 *   opposite orders would otherwise wait for each other. What was already logged gets a
 *   `duplicates` row, as on SQLite.
 * - The position is set by an UPDATE of the row inserted a statement earlier (NULL until then, and
 *   never seen so by anyone else: both happen in one transaction). The price is a second row
 *   version per event; the alternative, a narrow table of positions beside `events`, costs a join
 *   on every read instead.
 *
 * An event's `logSeq` on a partition's owner is its position in the partition (the rules' cursor,
 * `partition_state.rules_position`, and an absence timer's `eventSeq` are positions); `seq` stays the
 * row's id, unique over the table.
 *
 * Rows carried from a single process by the export are numbered too: their partition by the same
 * hash, positions 1..n per partition in SQLite's `seq` order (`ExportedPositions`), the heads set past
 * them. So the single process's rules cursor (a seq) is, for partition p, the greatest position of
 * p's rows with seq <= it (`positionAtSeq`), and events it had not processed yet are followed on.
 * Rows exported before this migration existed keep NULL in both and are in no partition's log.
 *
 * Retention (`pruneEvents`): per partition, a prefix of positions up to the newest event received
 * longer ago than the retention, with the cut in `pruned_through` (partitioned-log.ts): a follower
 * starting below it is told `too_old`, never skips silently. The retention must exceed the rules'
 * look-back (the longest count or absence window of the rule file; the schema bounds neither), or a
 * new owner's window read (`readPartitionWindow`) finds less than the rules count over.
 */
import { EventEmitter } from "node:events";
import type pg from "pg";
import { z } from "zod";
import { eventRow, type LoggedEvent } from "../../ingest/pipeline.js";
import { EVENT_TYPES, type EventType, PHASES, type PlacedEvent, PRIORITIES } from "../../model/event.js";
import { EVENT_ROW_COLUMNS, rowToEvent } from "../../rules/event-log.js";
import { partitionOf } from "../partitions.js";
import type { PgMigration } from "./migrate.js";
import { NUMBERS } from "./partition-schema.js";
import {
  type FollowerTuning,
  LogFollower,
  type LogRow,
  type PartitionedLog,
  pruneLog,
} from "./partitioned-log.js";
import { KEEP_PRUNED_PRESENCE } from "./presence-reads.js";

export const EVENT_LOG_MIGRATION: PgMigration = {
  version: 6,
  name: "event_log",
  sql: `
    -- NULL only for rows exported before this migration; position also inside the appending
    -- transaction, between its insert and its last statement (event-log.ts).
    ALTER TABLE events
      ADD COLUMN partition INTEGER CHECK (partition >= 0),
      ADD COLUMN position BIGINT CHECK (position > 0);
    CREATE UNIQUE INDEX events_partition_position ON events (partition, position);
    -- A new owner's window and the prune: a partition's events by receipt.
    CREATE INDEX events_partition_received ON events (partition, received_at);
    CREATE TABLE event_log_heads (
      partition INTEGER PRIMARY KEY CHECK (partition >= 0),
      head BIGINT NOT NULL CHECK (head >= 0),            -- the partition's last position appended
      pruned_through BIGINT NOT NULL DEFAULT 0           -- every position <= this one has been deleted
    );
  `,
};

/** The NOTIFY channel; the payload is `<partition>:<head>`. */
export const EVENT_LOG_CHANNEL = "ata_event_log";

/** One event of a group commit, as the ingest pipeline logs it (src/ingest/pipeline.ts `toRows`). */
export interface EventToLog {
  event: PlacedEvent;
  /** The device's profile. */
  profile: string;
  topic: string | null;
  /** The publish's payload, kept with its first event (null for the others, or when not kept). */
  raw: Buffer | null;
}

/** Where an appended event went; null in `appendEvents`' answer for one already logged. */
export interface LoggedAt {
  partition: number;
  position: number;
  /** The row's id. */
  seq: number;
}

/** An event as a partition's owner reads it: `event.logSeq` is its position in the partition. */
export interface PartitionEvent extends LogRow {
  seq: number;
  event: LoggedEvent;
}

export interface AppendOptions {
  /** The cluster's partition count (the leases'); every node must append with the same. */
  partitions: number;
}

const INSERT_COLUMNS = [
  ["event_id", "text"],
  ["device_id", "text"],
  ["type", "text"],
  ["phase", "text"],
  ["priority", "text"],
  ["occurred_at", "bigint"],
  ["received_at", "bigint"],
  ["device_seq", "bigint"],
  ["site_id", "text"],
  ["unit_id", "text"],
  ["room_id", "text"],
  ["resident_ref", "text"],
  ["profile", "text"],
  ["data", "text"],
  ["raw", "bytea"],
  ["topic", "text"],
  ["partition", "int"],
] as const;
const NAMES = INSERT_COLUMNS.map(([c]) => c).join(", ");

/**
 * The unlocked part: the group's new rows (without positions) and a `duplicates` row for each event
 * already logged, or given twice in the group. One statement: every data-modifying part sees the
 * same snapshot, and `ins` tells `dup` what was inserted.
 */
const INSERT = `
  WITH input AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.device_id, i.event_id ORDER BY i.ord) AS nth
      FROM unnest(${INSERT_COLUMNS.map(([, t], k) => `$${k + 1}::${t}[]`).join(", ")})
           WITH ORDINALITY AS i(${NAMES}, ord)),
  ins AS (
    INSERT INTO events (${NAMES})
    SELECT ${NAMES} FROM input WHERE nth = 1 ORDER BY device_id, event_id
    ON CONFLICT (device_id, event_id) DO NOTHING
    RETURNING seq, device_id, event_id),
  dup AS (
    INSERT INTO duplicates (received_at, device_id, event_id, topic, reason)
    SELECT i.received_at, i.device_id, i.event_id, i.topic, 'event_id (already logged)' FROM input AS i
     WHERE i.nth > 1
        OR NOT EXISTS (SELECT 1 FROM ins WHERE ins.device_id = i.device_id AND ins.event_id = i.event_id))
  SELECT seq, device_id, event_id FROM ins`;

/**
 * The locked part, the transaction's last statement: n positions per touched partition drawn from
 * its head (locked in partition order), the new rows numbered in the group's order, and one
 * notification per partition. $1: the new rows' seqs, $2: their partitions, in the group's order.
 */
const PLACE = `
  WITH n AS (
    SELECT seq, partition,
           count(*) OVER (PARTITION BY partition) AS c,
           row_number() OVER (PARTITION BY partition ORDER BY ord) AS k
      FROM unnest($1::bigint[], $2::int[]) WITH ORDINALITY AS n(seq, partition, ord)),
  heads AS (
    INSERT INTO event_log_heads AS h (partition, head)
    SELECT partition, count(*) FROM n GROUP BY partition ORDER BY partition
    ON CONFLICT (partition) DO UPDATE SET head = h.head + EXCLUDED.head
    RETURNING h.partition, h.head),
  placed AS (
    UPDATE events AS e SET position = heads.head - n.c + n.k
      FROM n JOIN heads ON heads.partition = n.partition
     WHERE e.seq = n.seq)
  SELECT heads.partition, heads.head, pg_notify($3, heads.partition || ':' || heads.head) IS NULL AS sent
    FROM heads`;

/**
 * Logs one group of events in one transaction on `client` (which must not be in one): each event
 * once, whichever node appends it first, numbered in its partition in commit order, and announced
 * when the transaction commits. Returns, per event in the group's order, where it went, or null
 * when it was already logged (or given earlier in the group). Throws when the transaction failed,
 * and then nothing of the group is logged, unless the connection broke during the COMMIT itself
 * (then it may have been): either way appending the group again is safe, since what is there
 * already comes back as duplicates.
 */
export async function appendEvents(
  client: pg.PoolClient | pg.Client,
  events: readonly EventToLog[],
  opts: AppendOptions,
): Promise<(LoggedAt | null)[]> {
  if (events.length === 0) return [];
  const partitionOfSite = new Map<string, number>();
  const partitions = events.map(({ event }) => {
    let p = partitionOfSite.get(event.placement.siteId);
    if (p === undefined) {
      p = partitionOf(event.placement.siteId, opts.partitions);
      partitionOfSite.set(event.placement.siteId, p);
    }
    return p;
  });
  const columns: unknown[][] = INSERT_COLUMNS.map(() => []);
  events.forEach(({ event: e, profile, topic, raw }, i) => {
    // The SQLite log's columns (the same in PostgreSQL's `events`), then the partition.
    const row = [...eventRow(e, profile, raw, topic), partitions[i]];
    row.forEach((v, c) => {
      columns[c]!.push(v);
    });
  });
  await client.query("BEGIN");
  try {
    const { rows: inserted } = await client.query({ text: INSERT, values: columns, types: NUMBERS });
    const seqOf = new Map<string, number>();
    for (const r of inserted as { seq: number; device_id: string; event_id: string }[])
      seqOf.set(`${r.device_id}\0${r.event_id}`, r.seq);
    // Each new row is the first of its key in the group.
    const taken = new Set<string>();
    const fresh: number[] = [];
    events.forEach((e, i) => {
      const key = keyOf(e);
      if (seqOf.has(key) && !taken.has(key)) {
        taken.add(key);
        fresh.push(i);
      }
    });
    const answer: (LoggedAt | null)[] = events.map(() => null);
    if (fresh.length > 0) {
      const { rows: heads } = await client.query({
        text: PLACE,
        values: [
          fresh.map((i) => seqOf.get(keyOf(events[i]!))),
          fresh.map((i) => partitions[i]),
          EVENT_LOG_CHANNEL,
        ],
        types: NUMBERS,
      });
      const head = new Map(
        (heads as { partition: number; head: number }[]).map((h) => [h.partition, h.head]),
      );
      const count = new Map<number, number>();
      for (const i of fresh) count.set(partitions[i]!, (count.get(partitions[i]!) ?? 0) + 1);
      const k = new Map<number, number>();
      for (const i of fresh) {
        const p = partitions[i]!;
        const nth = (k.get(p) ?? 0) + 1;
        k.set(p, nth);
        answer[i] = {
          partition: p,
          position: head.get(p)! - count.get(p)! + nth,
          seq: seqOf.get(keyOf(events[i]!))!,
        };
      }
    }
    await client.query("COMMIT");
    return answer;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

function keyOf({ event }: EventToLog): string {
  return `${event.deviceId}\0${event.eventId}`;
}

/** The columns an event is rebuilt from (not the raw payload), besides partition and position. */
const EVENT_COLUMNS = EVENT_ROW_COLUMNS.split(", ");

/** A row as node-postgres returns it (BIGINTs as numbers), checked before it is believed. */
const EventRow = z.object({
  seq: z.number().int(),
  event_id: z.string(),
  device_id: z.string(),
  type: z.enum(EVENT_TYPES as [EventType, ...EventType[]]),
  phase: z.enum(PHASES),
  priority: z.enum(PRIORITIES).nullable(),
  occurred_at: z.number().int(),
  received_at: z.number().int(),
  device_seq: z.number().int().nullable(),
  site_id: z.string(),
  unit_id: z.string(),
  room_id: z.string().nullable(),
  resident_ref: z.string().nullable(),
  profile: z.string(),
  data: z.string(),
});

/** A row back as the event the rules saw live; its `logSeq` is the position in its partition. */
function decodeEvent(raw: Record<string, unknown>, partition: number, position: number): PartitionEvent {
  const row = EventRow.parse(raw);
  return { partition, position, seq: row.seq, event: { ...rowToEvent(row), logSeq: position } };
}

/** The event log as the shared reader, follower and prune see it (partitioned-log.ts). */
export const EVENT_LOG: PartitionedLog<PartitionEvent> = {
  table: "events",
  heads: "event_log_heads",
  channel: EVENT_LOG_CHANNEL,
  columns: EVENT_COLUMNS,
  decode: decodeEvent,
  olderThan: "received_at < (extract(epoch FROM now()) * 1000)::bigint - $1::bigint",
  // A device's state at the log's start, once its changes are pruned (presence-reads.ts).
  onPrune: KEEP_PRUNED_PRESENCE,
};

/**
 * A newly acquired partition's recent events, in one query ("OFFSET 0": the window's first position
 * is found through the partition's events by receipt, not by reading up from position 1): every position from the first event
 * received at or after `sinceMs` up to `through` (the rules' cursor: what comes after it is the
 * follower's to deliver), in position order and without holes, so the owner's window
 * (src/rules/event-log.ts `EventWindow`) can be filled with it and then appended to from the
 * follower. `sinceMs` is now minus the rule file's look-back (`lookBack`) and a margin. Rows pruned
 * already are not there: the follower tells `too_old` when the cursor is below the cut.
 */
export async function readPartitionWindow(
  db: pg.Pool | pg.PoolClient,
  partition: number,
  window: { sinceMs: number; through: number },
): Promise<LoggedEvent[]> {
  const { rows } = await db.query({
    text: `SELECT position, ${EVENT_COLUMNS.join(", ")} FROM events
            WHERE partition = $1 AND position <= $3
              AND position >= (SELECT min(w.position) FROM (SELECT position FROM events
                                 WHERE partition = $1 AND received_at >= $2 OFFSET 0) AS w)
            ORDER BY position`,
    values: [partition, Math.floor(window.sinceMs), window.through],
    types: NUMBERS,
  });
  return (rows as Record<string, unknown>[]).map(
    (r) => decodeEvent(r, partition, z.number().int().parse(r.position)).event,
  );
}

/**
 * The partition's position of the single process's rules cursor (a SQLite seq carried by the
 * export): its greatest position at or below that seq (0 if none). A partition's first owner after
 * the move starts the rules there.
 */
export async function positionAtSeq(
  db: pg.Pool | pg.PoolClient,
  partition: number,
  seq: number,
): Promise<number> {
  const { rows } = await db.query({
    text: "SELECT coalesce(max(position), 0) AS position FROM events WHERE partition = $1 AND seq <= $2",
    values: [partition, seq],
    types: NUMBERS,
  });
  return z.number().int().parse(rows[0]?.position);
}

/** Deletes what the retention no longer keeps, per partition from the front; returns the rows deleted. */
export function pruneEvents(db: pg.Pool, retentionMs: number): Promise<number> {
  if (!(retentionMs > 0)) throw new RangeError(`event log retention ${retentionMs} ms`);
  return pruneLog(db, EVENT_LOG, retentionMs);
}

/**
 * Partitions and positions for rows copied by the export (export.ts): given in SQLite's `seq` order,
 * each row gets its site's partition and the next position there; `heads()` is what
 * `event_log_heads` must then hold.
 */
export class ExportedPositions {
  private readonly next = new Map<number, number>();
  constructor(private readonly partitions: number) {}

  place(siteId: string): [partition: number, position: number] {
    const p = partitionOf(siteId, this.partitions);
    const n = (this.next.get(p) ?? 0) + 1;
    this.next.set(p, n);
    return [p, n];
  }

  heads(): Map<number, number> {
    return new Map(this.next);
  }
}

export interface EventLogFollowerOptions extends FollowerTuning {
  pool: pg.Pool;
  /**
   * One partition's next events, in position order, each once. Nothing more of that partition is
   * read until the promise settles (the owner runs the rules and flushes first); one that rejects
   * stops the partition (reported as `error`): its owner gives it up or adds it again from its cursor.
   */
  deliver(partition: number, events: PartitionEvent[]): Promise<void>;
}

export interface EventLogFollowerEvents {
  /**
   * The partition cannot be followed from where it was added: `too_old`, events after that position
   * were pruned; `unknown`, the position is past anything this database logged (restored or
   * replaced). The partition is no longer followed.
   */
  gap: [partition: number, reason: "too_old" | "unknown", at: number];
  /** A read or a reconnect failed, or a delivery rejected or threw. */
  error: [err: Error];
}

export interface EventLogFollowerStatus {
  running: boolean;
  connected: boolean;
  backendPid: number | null;
  /** Followed partitions -> the last position handed over. */
  position: Map<number, number>;
  /** Partitions whose last batch has not settled yet. */
  busy: number[];
  delivered: number;
  reconnects: number;
  lastError: string | null;
}

/**
 * A node's following of the partitions it owns: `add(partition, after)` when a lease is acquired
 * (`after`: the rules' cursor), `remove(partition)` when it is lost, after which nothing of the
 * partition is delivered. One dedicated listening connection for all of them, caught up after a
 * reconnect, with a slow poll against a connection that hangs (partitioned-log.ts `LogFollower`).
 */
export class EventLogFollower extends EventEmitter<EventLogFollowerEvents> {
  private readonly follower: LogFollower<PartitionEvent>;

  constructor(private readonly options: EventLogFollowerOptions) {
    super();
    this.follower = new LogFollower(
      EVENT_LOG,
      { ...options, partitions: "listed", onGap: "drop" },
      {
        rows: (rows) => this.handOver(rows),
        gap: (partitions, reason, at) => {
          for (const p of partitions)
            this.emit("gap", p, reason === "pruned" ? "too_old" : "unknown", at.get(p) ?? 0);
        },
        error: (err) => {
          if (this.listenerCount("error") > 0) this.emit("error", err);
        },
      },
    );
  }

  /** Listens (partitions may be added before or after). */
  start(): Promise<void> {
    return this.follower.start();
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }

  /** Follows the partition's events after position `after`. Adding it again restarts it from there. */
  add(partition: number, after: number): void {
    if (!Number.isSafeInteger(partition) || partition < 0 || !Number.isSafeInteger(after) || after < 0)
      throw new RangeError(`partition ${partition} from position ${after}`);
    this.follower.follow(partition, after);
  }

  /** Stops following the partition: nothing more of it is delivered, not even what is being read. */
  remove(partition: number): void {
    this.follower.unfollow(partition);
  }

  status(): EventLogFollowerStatus {
    return {
      running: this.follower.isRunning,
      ...this.follower.status(),
      position: this.follower.positions(),
      busy: this.follower.heldPartitions(),
    };
  }

  private handOver(rows: PartitionEvent[]): void {
    const byPartition = new Map<number, PartitionEvent[]>();
    for (const r of rows) {
      const list = byPartition.get(r.partition);
      if (list) list.push(r);
      else byPartition.set(r.partition, [r]);
    }
    for (const [p, events] of byPartition) {
      const generation = this.follower.hold(p);
      Promise.resolve()
        .then(() => this.options.deliver(p, events))
        .then(
          () => this.follower.release(p, generation),
          (err: Error) => {
            // Unless the partition was removed or added anew meanwhile.
            if (this.follower.holding(p, generation)) this.remove(p);
            this.follower.fail(
              new Error(`event log: delivering partition ${p} failed; it is no longer followed`, {
                cause: err,
              }),
            );
          },
        );
    }
  }
}
