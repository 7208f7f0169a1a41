/**
 * A cluster node's ingest, carried into the shared event log. Each gateway node still commits what
 * it ingests to its own SQLite log first (the pipeline, its group commits and its dedupe are the
 * single process's); the forwarder then appends those rows, in the local log's order, to the event
 * log on PostgreSQL (pg/event-log.ts `appendEvents`), where the partition's owner reads them.
 *
 * The promise to a device is kept by waiting: a publish is acknowledged (the embedded broker's
 * PUBACK, RabbitMQ's ack of the delivery) only once its events are in PostgreSQL (`drained()`), so
 * an acknowledged event survives the loss of this node's machine, not only of its process. What
 * this node logged but had not forwarded when it died is, at its restart, forwarded from its cursor;
 * if it never comes back, the publishes it had not acknowledged are redelivered (by RabbitMQ to
 * another node, or by the device after reconnecting elsewhere), and PostgreSQL's unique key keeps
 * the one that gets there first.
 *
 * Order: rows are appended in local `seq` order, one group per round, so one device's events keep
 * the order this node logged them in (partition positions follow commit order, event-log.ts). The
 * forwarder's position is a cursor in the local database (`cursors`, name `pg-event-log`), moved
 * after each appended group: a crash between the two forwards a group again, which PostgreSQL's
 * dedupe turns into `duplicates` rows, not events.
 *
 * PostgreSQL unreachable: the round fails, the forwarder tries again, doubling its wait up to
 * `maxRetryMs`, and `drained()` waits meanwhile: devices get no acknowledgement and keep their
 * publishes (QoS 1), RabbitMQ keeps its deliveries unacknowledged. Nothing is lost; what waits is
 * bounded by the devices' in-flight windows and the consumer's prefetch.
 */
import type pg from "pg";
import type { Logger } from "../log.js";
import type { PlacedEvent } from "../model/event.js";
import { EVENT_ROW_COLUMNS, type EventRow, rowToEvent } from "../rules/event-log.js";
import { type Db, getCursor, setCursor } from "../store/db.js";
import { Statements } from "../store/statements.js";
import { appendEvents, type EventToLog } from "./pg/event-log.js";

export const FORWARDER_CURSOR = "pg-event-log";

export interface EventForwarderOptions {
  /** The node's SQLite database (its event log attached as `log`). */
  db: Db;
  pool: pg.Pool;
  /** The cluster's partition count. */
  partitions: number;
  log: Logger;
  /** Rows per appended group. */
  batch?: number;
  minRetryMs?: number;
  maxRetryMs?: number;
}

export interface EventForwarderStatus {
  /** The local log's seq up to which everything is in PostgreSQL. */
  forwarded: number;
  /** The highest local seq known to be logged. */
  logged: number;
  /** Events appended here that PostgreSQL already had (another node got there first). */
  duplicates: number;
  appended: number;
  lastError: string | null;
}

interface Waiter {
  through: number;
  resolve: () => void;
}

export class EventForwarder {
  private cursor = 0;
  private logged = 0;
  private waiters: Waiter[] = [];
  private running = false;
  private pumping: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retryMs: number;
  private readonly batch: number;
  private readonly stats = { appended: 0, duplicates: 0, lastError: null as string | null };

  private readonly statements: Statements;

  constructor(private readonly o: EventForwarderOptions) {
    this.statements = new Statements(o.db);
    this.batch = o.batch ?? 1000;
    this.retryMs = o.minRetryMs ?? 200;
  }

  /** Reads its cursor and forwards what the local log has after it. */
  start(): void {
    this.running = true;
    this.cursor = getCursor(this.o.db, FORWARDER_CURSOR);
    const row = this.o.db.prepare("SELECT coalesce(max(seq), 0) AS seq FROM events").get() as { seq: number };
    this.logged = Math.max(this.cursor, row.seq);
    this.pump();
  }

  /** Events up to this local seq were committed (the ingest's `events`, in log order). */
  notify(seq: number): void {
    if (seq > this.logged) this.logged = seq;
    this.pump();
  }

  /** Resolves once everything logged locally so far is in PostgreSQL. */
  drained(): Promise<void> {
    const through = this.logged;
    if (through <= this.cursor) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ through, resolve }));
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    await this.pumping;
  }

  status(): EventForwarderStatus {
    return {
      forwarded: this.cursor,
      logged: this.logged,
      appended: this.stats.appended,
      duplicates: this.stats.duplicates,
      lastError: this.stats.lastError,
    };
  }

  private pump(): void {
    if (!this.running || this.pumping || this.retry || this.cursor >= this.logged) return;
    this.pumping = this.round().finally(() => {
      this.pumping = null;
      if (this.cursor < this.logged) this.pump();
    });
  }

  private async round(): Promise<void> {
    try {
      while (this.running && this.cursor < this.logged) {
        const rows = this.statements
          .get(`SELECT ${EVENT_ROW_COLUMNS}, raw, topic FROM events WHERE seq > ? ORDER BY seq LIMIT ?`)
          .all(this.cursor, this.batch) as (EventRow & { raw: Buffer | null; topic: string | null })[];
        if (rows.length === 0) {
          // Known to be logged but not readable: the log's rows are what counts.
          this.logged = this.cursor;
          break;
        }
        const group: EventToLog[] = rows.map((r) => {
          const { logSeq: _seq, profile, ...event } = rowToEvent(r);
          return { event: event as PlacedEvent, profile, topic: r.topic, raw: r.raw };
        });
        const client = await this.o.pool.connect();
        let placed: Awaited<ReturnType<typeof appendEvents>>;
        try {
          placed = await appendEvents(client, group, { partitions: this.o.partitions });
        } finally {
          client.release();
        }
        const last = rows[rows.length - 1]!.seq;
        setCursor(this.o.db, FORWARDER_CURSOR, last);
        this.cursor = last;
        for (const p of placed) {
          if (p) this.stats.appended++;
          else this.stats.duplicates++;
        }
        this.stats.lastError = null;
        this.retryMs = this.o.minRetryMs ?? 200;
        this.release();
      }
    } catch (err) {
      this.stats.lastError = (err as Error).message;
      this.o.log.error(
        { err: (err as Error).message, forwarded: this.cursor, logged: this.logged },
        "could not append events to the shared log; trying again",
      );
      this.scheduleRetry();
    }
  }

  private release(): void {
    if (!this.waiters.length) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.through <= this.cursor) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private scheduleRetry(): void {
    if (!this.running || this.retry) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.o.maxRetryMs ?? 10_000);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.pump();
    }, wait);
    this.retry.unref();
  }
}
