/**
 * The time-series sink: reads append-only tables of the embedded database as outboxes and writes
 * them to the time-series store (InfluxDB or embedded).
 *
 * Each source is `{ name, table, map(row) }`: rows are read in the order of their sequence column from
 * a cursor persisted in `cursors` under `sink:<name>@<store>` (`sink:events@embedded`,
 * `sink:events@influx:http://host:8086/ata`), mapped to points and written in batches. The
 * cursor moves only after the store accepted the batch, so a crash or an outage replays from the last
 * acknowledged batch; points have deterministic identities (measurement + tags + time), so a replay
 * overwrites instead of duplicating. SQLite has one writer and commits a transaction's rows at once, so
 * a row with a lower seq can never become visible after a higher one: `seq > cursor` misses nothing.
 *
 * The cursor is per store so that switching stores (embedded to InfluxDB, or back, or another
 * InfluxDB) fills the new one from the log from its own position: from the start for a store never
 * written, from where it stopped for one written before. Installs from before per-store cursors have
 * `sink:<name>`: the first start that names its store adopts it for that store (the store it was
 * written for, unless the configuration changed in the same upgrade), and removes it.
 *
 * Store failures are retried with capped exponential backoff, forever: the event log is the buffer,
 * and `backlog()` says how far behind the store is. Points a store refuses for good (a field type
 * conflict) are counted, reported and skipped, so one bad point cannot stall everything behind it.
 *
 * Events (never "error"): "written" {source, rows, points, position, ms}; "writeFailed" {source,
 * error, attempt, retryInMs}; "recovered" {source, failures}; "rejected" {source, error, points};
 * "skipped" {source, seq, reason}; "cursorFailed" {source, error} (the database refused the cursor).
 */
import { EventEmitter } from "node:events";
import type { Statement } from "better-sqlite3";
import type { Logger } from "../log.js";
import { type Db, getCursor, setCursor } from "./db.js";
import {
  InvalidInputError,
  isIdentifier,
  isPermanentWriteError,
  PartialWriteError,
  type Point,
  pointProblem,
  sanitizeTagValue,
  type TimeSeriesStore,
} from "./timeseries.js";

export interface OutboxSource<Row extends object = Record<string, unknown>> {
  /** Names the cursor: `sink:<name>@<store>`. */
  name: string;
  table: string;
  /** An increasing integer column; default "seq". Index it (the rowid alias is best). */
  seqColumn?: string;
  /** Columns to read; default all. Include the sequence column. */
  columns?: readonly string[];
  /**
   * The select list as SQL, when plain columns are not enough (expressions). Written in code, never
   * taken from configuration. With `raw`, the sequence value must come first.
   */
  select?: string;
  /**
   * Hand rows to map() as arrays in select order instead of objects: about twice as fast to read,
   * for sources on the catch-up path. Needs `columns` or `select`.
   */
  raw?: boolean;
  /** A row -> its points; null or [] for none. Must be deterministic: replays overwrite. */
  map(row: Row): Point | readonly Point[] | null | undefined;
}

export interface TimeSeriesSinkOptions {
  db: Db;
  store: TimeSeriesStore;
  /**
   * Which store this is, for its cursors (`embedded`, `influx:<url>/<database>`). Without it the
   * cursors are the shared `sink:<name>` (one store for the life of the database, as in tests).
   */
  storeId?: string;
  /** Default: the event log only. More can be added with addSource(). */
  sources?: OutboxSource<never>[];
  logger?: Logger;
  /** Rows per write; default 5000. */
  batchSize?: number;
  /** Longest a row waits for a batch to fill up; default 1000 ms. */
  maxDelayMs?: number;
  /** How often to look for new rows when not notified; default 250 ms. */
  pollIntervalMs?: number;
  /**
   * Writes a cursor somewhere other than `db` (the sink thread hands its cursors to the main
   * thread, which keeps the database's only writer connection). Default: setCursor on `db`.
   */
  persistCursor?: (name: string, position: number) => void;
  /** Adopt cursors from before per-store cursors (writes to `db`); default true. */
  adoptLegacyCursors?: boolean;
  /** First retry delay after a failed write; doubles per failure up to retryMaxMs. Default 250 ms. */
  retryInitialMs?: number;
  /** Default 30 s. */
  retryMaxMs?: number;
  /** How long stop() keeps flushing; default 5 s. */
  stopTimeoutMs?: number;
  /** Batches in flight at once while catching up; default 2 (InfluxDB parses them in parallel). */
  concurrency?: number;
  /**
   * Rows read and mapped between two yields to the event loop; default 256. A batch of 5,000 rows
   * is about 20 ms of work on this thread: in one piece it would hold up every fall that arrives
   * meanwhile, sliced it costs a fall at most a slice (about 1 ms).
   */
  sliceRows?: number;
  /**
   * How often the cursor is written to the database while catching up; default 250 ms. It is always
   * written when a source is drained and on stop(). A crash replays at most this much, and replays
   * overwrite: each cursor commit is an fsync, which is worth sparing in a catch-up.
   */
  cursorPersistMs?: number;
}

export interface SinkCounters {
  rowsRead: number;
  pointsWritten: number;
  batchesWritten: number;
  /** Points a map refused or produced invalid: never sent. */
  pointsSkipped: number;
  /** Points in batches the store refused for good. */
  pointsRejected: number;
  writeFailures: number;
}

/** All counters at zero. */
export function zeroCounters(): SinkCounters {
  return {
    rowsRead: 0,
    pointsWritten: 0,
    batchesWritten: 0,
    pointsSkipped: 0,
    pointsRejected: 0,
    writeFailures: 0,
  };
}

interface Batch {
  points: Point[];
  /** The sequence value of the row each point came from. */
  seqs: number[];
  rows: number;
  /** The sequence value of the batch's last row: the cursor once it is written. */
  last: number;
}

interface SourceState {
  source: OutboxSource<Record<string, unknown>>;
  cursorName: string;
  /** Where the sink is: every row up to here is written. */
  cursor: number;
  /** What the cursors table says (at most cursorPersistMs behind `cursor`). */
  persisted: number;
  persistedAt: number;
  select: Statement<unknown[]>;
  maxSeq: Statement<unknown[]>;
  seqColumn: string;
  /** Where the sequence value sits in a row: the column name, or its index for raw rows. */
  seqKey: string | number;
  /** When rows were first seen waiting for a batch to fill. */
  pendingSince: number | undefined;
}

/** The event log's cursor without a store id (tests, benchmarks, installs before per-store cursors). */
export const EVENTS_CURSOR = "sink:events";

/** `sink:<source>@<store>`, or `sink:<source>` without a store id. */
export function sinkCursorName(source: string, storeId: string | undefined): string {
  return storeId === undefined ? `sink:${source}` : `sink:${source}@${storeId}`;
}

/**
 * The cursor of an install from before per-store cursors becomes the named store's, once: returns
 * the position adopted, or undefined when there was nothing to adopt (or the store has its own).
 */
export function adoptLegacyCursor(db: Db, legacy: string, name: string): number | undefined {
  return db.transaction((): number | undefined => {
    const old = db.prepare("SELECT position FROM cursors WHERE name = ?").pluck().get(legacy) as
      | number
      | undefined;
    if (old === undefined) return undefined;
    const own = db.prepare("SELECT 1 FROM cursors WHERE name = ?").pluck().get(name);
    db.prepare("DELETE FROM cursors WHERE name = ?").run(legacy);
    if (own !== undefined) return undefined;
    setCursor(db, name, old);
    return old;
  })();
}

export class TimeSeriesSink extends EventEmitter {
  readonly counters: SinkCounters = zeroCounters();
  /** The last error, until writes succeed again (shown by /readyz). */
  lastError: Error | undefined;
  lastErrorAt: number | undefined;
  /** Failed writes since the last successful one: > 0 means the store is unreachable right now. */
  consecutiveFailures = 0;

  private readonly db: Db;
  private readonly store: TimeSeriesStore;
  private readonly storeId: string | undefined;
  private readonly log: Logger | undefined;
  private readonly batchSize: number;
  private readonly maxDelayMs: number;
  private readonly pollIntervalMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly stopTimeoutMs: number;
  private readonly concurrency: number;
  private readonly cursorPersistMs: number;
  private readonly sliceRows: number;
  private readonly sources: SourceState[] = [];
  private loop: Promise<void> | undefined;
  private running = false;
  private flushing = false;
  /** Bumped by stop(): a loop of an older generation must not touch the cursors any more. */
  private generation = 0;
  private readonly sleepers = new Set<{ wakeable: boolean; done: () => void }>();
  private readonly persistCursor: (name: string, position: number) => void;
  private readonly adoptLegacyCursors: boolean;

  constructor(options: TimeSeriesSinkOptions) {
    super();
    this.db = options.db;
    this.persistCursor = options.persistCursor ?? ((name, position) => setCursor(this.db, name, position));
    this.adoptLegacyCursors = options.adoptLegacyCursors ?? true;
    this.store = options.store;
    this.storeId = options.storeId;
    this.log = options.logger;
    this.batchSize = options.batchSize ?? 5000;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.retryInitialMs = options.retryInitialMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 2));
    this.cursorPersistMs = options.cursorPersistMs ?? 250;
    this.sliceRows = Math.max(1, Math.floor(options.sliceRows ?? 256));
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new Error("batchSize must be a positive integer");
    for (const source of options.sources ?? [eventsSource()]) this.addSource(source);
  }

  /** Registers another outbox (e.g. alert transitions). Safe before or after start(). */
  addSource<Row extends object>(source: OutboxSource<Row>): void {
    const seqColumn = source.seqColumn ?? "seq";
    for (const name of [source.table, seqColumn, ...(source.columns ?? [])]) {
      if (!isIdentifier(name))
        throw new Error(`outbox source ${source.name}: ${JSON.stringify(name)} is not an identifier`);
    }
    if (this.sources.some((s) => s.source.name === source.name)) {
      throw new Error(`outbox source ${source.name} is already registered`);
    }
    const columns =
      source.select ?? (source.columns === undefined ? "*" : source.columns.map((c) => `"${c}"`).join(", "));
    const seqIndex = source.select !== undefined ? 0 : (source.columns?.indexOf(seqColumn) ?? -1);
    if (source.raw === true && seqIndex < 0) {
      throw new Error(`outbox source ${source.name}: raw rows need columns that include ${seqColumn}`);
    }
    const select = this.db.prepare(
      `SELECT ${columns} FROM "${source.table}" WHERE "${seqColumn}" > ? ORDER BY "${seqColumn}" LIMIT ?`,
    );
    if (source.raw === true) select.raw(true);
    const cursorName = sinkCursorName(source.name, this.storeId);
    if (this.storeId !== undefined && this.adoptLegacyCursors) {
      const adopted = adoptLegacyCursor(this.db, `sink:${source.name}`, cursorName);
      if (adopted !== undefined)
        this.log?.info(
          { source: source.name, cursor: cursorName, position: adopted },
          "sink cursor is now per store",
        );
    }
    const cursor = getCursor(this.db, cursorName);
    this.sources.push({
      source: source as unknown as OutboxSource<Record<string, unknown>>,
      cursorName,
      cursor,
      persisted: cursor,
      persistedAt: 0,
      select,
      maxSeq: this.db.prepare(`SELECT MAX("${seqColumn}") FROM "${source.table}"`).pluck(),
      seqColumn,
      seqKey: source.raw === true ? seqIndex : seqColumn,
      pendingSince: undefined,
    });
    this.wake();
  }

  start(): void {
    if (this.loop !== undefined) return;
    for (const s of this.sources) {
      s.cursor = getCursor(this.db, s.cursorName);
      s.persisted = s.cursor;
    }
    this.running = true;
    this.flushing = false;
    const generation = ++this.generation;
    this.loop = this.run(generation).catch((err: unknown) => {
      // run() handles store errors itself; this is a bug or a closed database.
      this.recordError(err);
      this.log?.error({ err }, "time-series sink stopped on an unexpected error");
    });
  }

  /** Writes what it can within the timeout, then stops. Never throws. */
  async stop(timeoutMs = this.stopTimeoutMs): Promise<void> {
    const loop = this.loop;
    if (loop === undefined) return;
    this.flushing = true;
    this.wake(true);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([loop, deadline]);
    clearTimeout(timer);
    this.running = false;
    this.generation++;
    this.wake(true);
    // A write still in flight may finish later; its generation is stale, so it moves no cursor.
    this.loop = undefined;
    for (const s of this.sources) {
      try {
        this.persist(s);
      } catch (err) {
        this.recordError(err); // the database was closed under us: the rows replay on start
      }
    }
    const left = this.backlog();
    if (left > 0)
      this.log?.warn({ backlog: left }, "time-series sink stopped with a backlog; it resumes on start");
  }

  /** Tells the sink new rows were committed, so it need not wait for the next poll. */
  notify(): void {
    this.wake();
  }

  /** Rows not yet written: max(seq) - cursor, for one source or all. */
  backlog(sourceName?: string): number {
    let total = 0;
    for (const s of this.sources) {
      if (sourceName !== undefined && s.source.name !== sourceName) continue;
      total += Math.max(0, this.maxSeqOf(s) - s.cursor);
    }
    return total;
  }

  /** The position of a source: the seq of the last row written. */
  position(sourceName = "events"): number {
    const s = this.sources.find((x) => x.source.name === sourceName);
    return s === undefined ? 0 : s.cursor;
  }

  private maxSeqOf(s: SourceState): number {
    const max = s.maxSeq.get() as number | bigint | null;
    return max === null ? 0 : Number(max);
  }

  private async run(generation: number): Promise<void> {
    while (this.running && generation === this.generation) {
      let worked = false;
      let wait = this.pollIntervalMs;
      /** Rows are waiting for their batch to fill or fall due: notify() need not wake the loop. */
      let waitingForDue = false;
      for (const s of this.sources) {
        if (!this.running || generation !== this.generation) return;
        const pending = this.maxSeqOf(s) - s.cursor;
        if (pending <= 0) {
          s.pendingSince = undefined;
          continue;
        }
        if (pending < this.batchSize && !this.flushing) {
          const now = Date.now();
          s.pendingSince ??= now;
          const due = s.pendingSince + this.maxDelayMs - now;
          if (due > 0) {
            wait = Math.min(wait, due);
            waitingForDue = true;
            continue;
          }
        }
        await this.drain(s, generation);
        worked = true;
      }
      if (this.flushing && this.backlog() === 0) return;
      // Every commit notifies; while rows wait to fall due, waking for each would only count them
      // again (two queries per commit on the event loop). A full batch waits at most maxDelayMs.
      if (!worked) await this.sleep(wait, !waitingForDue);
    }
  }

  /**
   * Writes everything the source has now. Up to `concurrency` batches are in flight while the next
   * is read and mapped; cursors still move strictly in order, each only once its batch and every
   * batch before it are written.
   */
  private async drain(s: SourceState, generation: number): Promise<void> {
    const window: { batch: Batch; written: Promise<void> }[] = [];
    let readAfter = s.cursor;
    let more = true;
    while (this.running && generation === this.generation) {
      while (more && window.length < this.concurrency) {
        const batch = await this.read(s, readAfter);
        if (!this.running || generation !== this.generation) return;
        if (batch === undefined) {
          more = false;
          break;
        }
        const written = this.attempt(batch);
        written.catch(() => undefined); // settled (and retried) in order below
        window.push({ batch, written });
        readAfter = batch.last;
        more = this.maxSeqOf(s) > readAfter;
        // Let the request go out before reading the next batch, so InfluxDB and this thread overlap.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const head = window.shift();
      if (head === undefined) break;
      const outcome = await this.settle(s, head.batch, head.written, generation);
      if (outcome === "stopped") return;
      if (outcome === "retried" && window.length > 0) {
        // The batches behind it most likely failed too; read them again rather than retry each.
        window.length = 0;
        readAfter = s.cursor;
        more = true;
      }
    }
    s.pendingSince = undefined;
  }

  /** Up to batchSize rows after `after`, mapped to points, in slices of sliceRows between yields. */
  private async read(s: SourceState, after: number): Promise<Batch | undefined> {
    const points: Point[] = [];
    const seqs: number[] = [];
    const seqKey = s.seqKey;
    let rows = 0;
    let last = after;
    while (rows < this.batchSize) {
      if (rows > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const slice = s.select.all(last, Math.min(this.sliceRows, this.batchSize - rows)) as Record<
        string | number,
        unknown
      >[];
      if (slice.length === 0) break;
      rows += slice.length;
      last = Number(slice[slice.length - 1]![seqKey]);
      for (const row of slice) {
        let mapped: Point | readonly Point[] | null | undefined;
        try {
          mapped = s.source.map(row);
        } catch (err) {
          this.skip(s, row[seqKey], `map threw: ${(err as Error).message}`);
          continue;
        }
        if (mapped === null || mapped === undefined) continue;
        const seq = Number(row[seqKey]);
        if (Array.isArray(mapped)) {
          for (const p of mapped as readonly Point[]) {
            points.push(p);
            seqs.push(seq);
          }
        } else {
          points.push(mapped as Point);
          seqs.push(seq);
        }
      }
      if (slice.length < this.sliceRows) break;
    }
    if (rows === 0) return undefined;
    this.counters.rowsRead += rows;
    return { points, seqs, rows, last };
  }

  /**
   * Drops the points the store would refuse as invalid, reporting each. Only run after the store
   * refused a batch as invalid: validating every point up front would do the store's work twice.
   */
  private dropInvalid(s: SourceState, batch: Batch): void {
    const points: Point[] = [];
    const seqs: number[] = [];
    for (let i = 0; i < batch.points.length; i++) {
      const problem = pointProblem(batch.points[i]!);
      if (problem === undefined) {
        points.push(batch.points[i]!);
        seqs.push(batch.seqs[i]!);
      } else {
        this.skip(s, batch.seqs[i], problem);
      }
    }
    batch.points = points;
    batch.seqs = seqs;
  }

  private skip(s: SourceState, seq: unknown, reason: string): void {
    this.counters.pointsSkipped++;
    this.tell("skipped", { source: s.source.name, seq, reason });
    this.log?.warn({ source: s.source.name, seq, reason }, "outbox row skipped");
  }

  private attempt(batch: Batch): Promise<void> {
    if (batch.points.length === 0) return Promise.resolve();
    try {
      return this.store.write(batch.points);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Resolves once the batch is written or refused for good ("retried" if that took retries), or stopped. */
  private async settle(
    s: SourceState,
    batch: Batch,
    inFlight: Promise<void>,
    generation: number,
  ): Promise<"ok" | "retried" | "stopped"> {
    const started = Date.now();
    let pending = inFlight;
    let failures = 0;
    let filtered = false;
    for (;;) {
      try {
        await pending;
        if (generation !== this.generation) return "stopped";
        this.commit(s, batch);
        if (failures > 0 || this.consecutiveFailures > 0) {
          this.log?.info(
            { source: s.source.name, failures: this.consecutiveFailures },
            "time-series store writes again",
          );
          this.tell("recovered", { source: s.source.name, failures: this.consecutiveFailures });
          // What /readyz shows is the present: the outage's error ends with it.
          this.lastError = undefined;
          this.lastErrorAt = undefined;
        }
        this.consecutiveFailures = 0;
        this.counters.pointsWritten += batch.points.length;
        if (batch.points.length > 0) this.counters.batchesWritten++;
        this.tell("written", {
          source: s.source.name,
          rows: batch.rows,
          points: batch.points.length,
          position: batch.last,
          ms: Date.now() - started,
        });
        return failures > 0 ? "retried" : "ok";
      } catch (err) {
        if (generation !== this.generation) return "stopped";
        if (err instanceof InvalidInputError && !filtered) {
          filtered = true;
          this.dropInvalid(s, batch);
          pending = this.attempt(batch);
          continue;
        }
        this.recordError(err);
        if (isPermanentWriteError(err)) {
          this.commit(s, batch);
          const dropped =
            err instanceof PartialWriteError && err.dropped !== undefined ? err.dropped : batch.points.length;
          this.counters.pointsRejected += dropped;
          this.counters.pointsWritten += batch.points.length - dropped;
          this.tell("rejected", { source: s.source.name, error: err, points: dropped });
          this.log?.error(
            { source: s.source.name, err, points: dropped, position: batch.last },
            "time-series store refused points; they are skipped",
          );
          return failures > 0 ? "retried" : "ok";
        }
        failures++;
        this.consecutiveFailures++;
        this.counters.writeFailures++;
        const retryInMs = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(failures - 1, 30));
        this.tell("writeFailed", { source: s.source.name, error: err, attempt: failures, retryInMs });
        if (this.consecutiveFailures === 1) {
          this.log?.warn(
            { source: s.source.name, err },
            "time-series store write failed; retrying with backoff",
          );
        } else {
          this.log?.debug(
            { source: s.source.name, err, attempt: failures, retryInMs },
            "time-series write retry",
          );
        }
        await this.sleep(retryInMs, false);
        if (!this.running || generation !== this.generation) return "stopped";
        pending = this.attempt(batch);
      }
    }
  }

  private commit(s: SourceState, batch: Batch): void {
    s.cursor = batch.last;
    if (Date.now() - s.persistedAt >= this.cursorPersistMs || s.cursor >= this.maxSeqOf(s)) this.persist(s);
  }

  private persist(s: SourceState): void {
    if (s.persisted === s.cursor) return;
    try {
      this.persistCursor(s.cursorName, s.cursor);
    } catch (err) {
      // A full disk: the cursor stays ahead in memory and is written once the disk takes writes.
      // A crash meanwhile replays a little more, which overwrites (see above); it is not a failed
      // store write and must not stall or re-send the batch.
      this.cursorFailures++;
      this.recordError(err);
      this.tell("cursorFailed", { source: s.source.name, error: err });
      if (this.cursorFailures === 1)
        this.log?.warn({ source: s.source.name, err }, "sink cursor not persisted");
      return;
    }
    this.cursorFailures = 0;
    s.persisted = s.cursor;
    s.persistedAt = Date.now();
  }
  private cursorFailures = 0;

  /** Emits without letting a throwing listener disturb the sink (it would look like a failed write). */
  private tell(event: string, payload: object): void {
    try {
      this.emit(event, payload);
    } catch (err) {
      this.log?.error({ err, event }, "a time-series sink listener threw");
    }
  }

  private recordError(err: unknown): void {
    this.lastError = err instanceof Error ? err : new Error(String(err));
    this.lastErrorAt = Date.now();
  }

  /** Sleeps; notify() ends a wakeable sleep early, stop() ends every sleep. */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = {
        wakeable,
        done: () => {
          clearTimeout(timer);
          this.sleepers.delete(sleeper);
          resolve();
        },
      };
      const timer = setTimeout(sleeper.done, Math.max(0, ms));
      this.sleepers.add(sleeper);
    });
  }

  private wake(all = false): void {
    for (const sleeper of [...this.sleepers]) if (all || sleeper.wakeable) sleeper.done();
  }
}

// ---------------------------------------------------------------------------------------------
// The event log as a source

/** An `events` row as the sink maps it. */
export interface EventRow {
  seq: number;
  event_id: string;
  device_id: string;
  type: string;
  priority: string | null;
  occurred_at: number;
  site_id: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  profile: string;
  data: string;
}

export const EVENT_MEASUREMENT = "event";

/**
 * What the sink reads per event row: the placement columns come as one JSON array, built by SQLite,
 * that keys a cache of tag sets, so a series' tags are built, checked and escaped once, not per row
 * (raw payloads stay in the database).
 */
const EVENT_SELECT =
  "seq, event_id, occurred_at, data, json_array(device_id, priority, profile, resident_ref, room_id, site_id, type, unit_id)";
type EventTuple = [seq: number, eventId: string, occurredAt: number, data: string, placement: string];
type Placement = [
  deviceId: string,
  priority: string | null,
  profile: string,
  residentRef: string | null,
  roomId: string | null,
  siteId: string,
  type: string,
  unitId: string,
];
const TAG_CACHE_LIMIT = 50_000;

/** Names a data field cannot take: the fixed fields and the tags. */
const RESERVED = new Set([
  "count",
  "event_id",
  "site",
  "unit",
  "room",
  "device",
  "profile",
  "type",
  "priority",
  "resident",
]);

/** Frozen, so that the stores can check and escape a shared tag set once. */
function eventTags([
  deviceId,
  priority,
  profile,
  residentRef,
  roomId,
  siteId,
  type,
  unitId,
]: Placement): Readonly<Record<string, string>> {
  // Built in key order, so the line protocol needs no sort.
  const tags: Record<string, string> = { device: sanitizeTagValue(deviceId) };
  if (priority) tags.priority = sanitizeTagValue(priority);
  tags.profile = sanitizeTagValue(profile);
  if (residentRef) tags.resident = sanitizeTagValue(residentRef);
  if (roomId) tags.room = sanitizeTagValue(roomId);
  tags.site = sanitizeTagValue(siteId);
  tags.type = sanitizeTagValue(type);
  tags.unit = sanitizeTagValue(unitId);
  return Object.freeze(tags);
}

/** Numeric data, flattened one level of nesting deep (`location.x` -> `location_x`). */
function addDataFields(
  fields: Record<string, number | string | boolean>,
  data: unknown,
  prefix: string,
  depth: number,
) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return;
  const obj = data as Record<string, unknown>;
  for (const key in obj) {
    const value = obj[key];
    if (typeof value === "number") {
      const name = prefix === "" ? key : prefix + key;
      if (Number.isFinite(value) && isIdentifier(name) && !RESERVED.has(name)) fields[name] = value;
    } else if (depth > 0 && value !== null && typeof value === "object") {
      addDataFields(fields, value, `${prefix}${key}_`, depth - 1);
    }
  }
}

function eventPoint(
  seq: number,
  eventId: string,
  occurredAt: number,
  json: string,
  tags: Readonly<Record<string, string>>,
): Point {
  const fields: Record<string, number | string | boolean> = { count: 1, event_id: eventId };
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    data = undefined;
  }
  addDataFields(fields, data, "", 1);
  if (
    tags.type === "lift.cycle" &&
    fields.durationSec === undefined &&
    data !== null &&
    typeof data === "object"
  ) {
    const { startedAt, endedAt } = data as { startedAt?: unknown; endedAt?: unknown };
    const sec = (Date.parse(String(endedAt)) - Date.parse(String(startedAt))) / 1000;
    if (Number.isFinite(sec) && sec >= 0) fields.durationSec = sec;
  }
  return {
    measurement: EVENT_MEASUREMENT,
    tags,
    fields,
    timeNs: BigInt(occurredAt) * 1_000_000n + BigInt(seq % 1_000_000),
  };
}

/**
 * An event row -> one point of measurement `event`. Tags: site, unit, room (when set), device,
 * profile, type, priority (when set), resident (the pseudonymous ref, when set; never a name).
 * Fields: count = 1, event_id, and the numeric data fields as floats (one level of nesting
 * flattened: location_x), plus durationSec for a lift cycle. Time: occurred_at in ms plus seq mod 1e6
 * as nanoseconds, so two events of one device in the same millisecond stay two points and a replay
 * of the same row lands on the same point.
 */
export function eventToPoint(row: EventRow): Point {
  const tags = eventTags([
    row.device_id,
    row.priority,
    row.profile,
    row.resident_ref,
    row.room_id,
    row.site_id,
    row.type,
    row.unit_id,
  ]);
  return eventPoint(row.seq, row.event_id, row.occurred_at, row.data, tags);
}

/** The event log as an outbox source (cursor `sink:events`), mapping rows as eventToPoint does. */
export function eventsSource(): OutboxSource<EventTuple> {
  const tagCache = new Map<string, Readonly<Record<string, string>>>();
  return {
    name: "events",
    table: "events",
    seqColumn: "seq",
    select: EVENT_SELECT,
    raw: true,
    map: ([seq, eventId, occurredAt, data, placement]) => {
      let tags = tagCache.get(placement);
      if (tags === undefined) {
        if (tagCache.size >= TAG_CACHE_LIMIT) tagCache.clear();
        tags = eventTags(JSON.parse(placement) as Placement);
        tagCache.set(placement, tags);
      }
      return eventPoint(seq, eventId, occurredAt, data, tags);
    },
  };
}
