/**
 * decode -> validate -> place -> dedupe -> durable event log -> bus.
 *
 * `submit()` resolves only after the publish's events (or its dead letter) are committed, and the
 * broker withholds the PUBACK until then, so an acknowledged QoS 1 event survives a crash. Commits
 * are grouped: everything submitted while the previous commit ran goes into the next transaction,
 * so one fsync serves hundreds of publishes (group commit, as in database WALs).
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import {
  CanonicalEvent,
  type DecodedEvent,
  defaultPhase,
  deriveEventId,
  type PlacedEvent,
  payloadKey,
  SCHEMA_VERSION,
} from "../model/event.js";
import { DecodeError, type DeviceProfile } from "../model/profile.js";
import type { Device, Registry } from "../registry/registry.js";
import { KeyedBuckets } from "../security/throttle.js";
import type { Db } from "../store/db.js";
import {
  applyQuota,
  type DeadLetterQuota,
  deadLetterUsage,
  TALLY_DEVICE,
  TALLY_TOTAL,
  TRIM_DEVICE,
  TRIM_TOTAL,
} from "../store/dead-letter-quota.js";
import { isStorageError, type StorageHealth } from "../store/health.js";
import { SqliteWriterThread, type WriterOptions } from "../store/sqlite-writer.js";
import { reportFallPathNice } from "../util/threads.js";
import { parseDerivedId, RecentPayloads } from "./redelivery.js";

export interface IngestOptions {
  /**
   * "worker": commits run on a writer thread with its own connection, so the event loop keeps
   * taking MQTT traffic while a batch waits for its fsync. "inline": on the main thread (needed for
   * an in-memory database, and simpler to reason about in tests).
   */
  writer?: "worker" | "inline";
  /** The event log's database file (store/db.ts eventLogPath), for the writer thread. */
  dbPath?: string;
  /** Longest a submission waits for companions; 0 = commit on the next turn of the event loop. */
  commitMaxDelayMs: number;
  commitMaxEvents: number;
  /**
   * Least time from the start of one background group commit to the start of the next (ms). Left
   * at 0, background groups follow each other back to back and keep the writer busy, so a fall
   * usually arrives while one is committing and waits for its fsync; spaced out, the writer is idle
   * most of the time and a fall's commit starts at once. Larger groups also cost fewer fsyncs per
   * event. A group reaching commitMaxEvents goes at once. Default 0 (unit tests); the gateway's
   * configuration sets its own.
   */
  backgroundIntervalMs?: number;
  keepRawPayload: boolean;
  maxPayloadBytes: number;
  /**
   * The most of a refused payload that is stored. Never more than maxPayloadBytes, whatever this
   * says: a refused payload takes no more room than the largest accepted one.
   */
  maxDeadLetterBytes?: number;
  /** Bounds of the dead-letter store (store/dead-letter-quota.ts); none when absent. */
  deadLetters?: DeadLetterQuota;
  /** The same bytes without an eventId within this window are a redelivery (default 120 s). */
  redeliveryWindowSec?: number;
  /** false when a Checkpointer thread checkpoints the log (the gateway runs one). */
  autoCheckpoint?: boolean;
  /**
   * The writer thread's nice value (a fall's commit runs there; config `priority.fallPathNice`).
   * Absent or 0: left as it is.
   */
  writerNice?: number;
  /**
   * Publishes per device per second, sustained and in a burst; past it a publish is dead-lettered
   * with rate_limited (and the device told why), unless it carries an urgent event: a fall from a
   * device that is also flooding is still a fall. None: no limit.
   */
  deviceRate?: { perSec: number; burst: number };
}

export interface IngestContext {
  db: Db;
  registry: Registry;
  profiles: ReadonlyMap<string, DeviceProfile>;
  log: Logger;
  metrics: Metrics;
  options: IngestOptions;
  now?: () => number;
  /** Told about every commit the storage refused, and every one it took after that. */
  storage?: StorageHealth;
  /**
   * Event types that can raise a high-priority alert (from the rules): publishes carrying one go by
   * the urgent lane. Events a device itself marks high priority always do.
   */
  urgentTypes?: () => ReadonlySet<string>;
  /** Told of each device found publishing past its rate (folded there). */
  onRateLimited?: (deviceId: string) => void;
}

/**
 * The two lanes to the event log. "background": heartbeats and telemetry, gathered into large
 * groups (one fsync for hundreds). "urgent": a fall or a call, handed to the writer at once in a
 * small group of its own, never waiting for a free slot behind background groups.
 */
export type Lane = "urgent" | "background";

export interface Rejection {
  code: ErrorCode;
  message: string;
  /** The dead letter keeping the payload; null for a publish past its device's rate (not stored). */
  deadLetterId: number | null;
}

/**
 * Why a submission was not committed: its group's transaction failed, with the underlying error's
 * message and `code`. `rowsRefused` when SQLite refused rows of the group (a constraint or trigger,
 * a value too big or of the wrong type): what a payload can cause. Anything else (the storage
 * refusing writes, store/health.ts; the database busy, corrupt or gone; the writer thread failed)
 * is not a payload's doing.
 */
export class CommitError extends Error {
  readonly code: string | undefined;
  readonly storage: boolean;
  readonly rowsRefused: boolean;
  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = "CommitError";
    const code = (cause as { code?: unknown }).code;
    this.code = typeof code === "string" ? code : undefined;
    this.storage = isStorageError(cause);
    this.rowsRefused = !this.storage && /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH|RANGE)/.test(this.code ?? "");
  }
}

export interface SubmitOptions {
  /**
   * Commit this publish in a transaction of its own, not grouped with others: a payload whose rows
   * make a commit fail then fails only itself (the RabbitMQ consumer's redelivered messages,
   * src/cluster/rabbit-ingest.ts). What was queued before it is committed ahead of it.
   */
  alone?: boolean;
}

export type IngestResult =
  | { ok: true; events: number; duplicates: number }
  | { ok: false; rejection: Rejection };

/** An event committed to the log: the canonical event, its placement and its log position. */
export type LoggedEvent = PlacedEvent & { logSeq: number; profile: string };

interface PendingEvents {
  kind: "events";
  deviceId: string;
  profile: string;
  topic: string;
  events: PlacedEvent[];
  /** Traces of events dropped before the commit as redeliveries (rows for `duplicates`). */
  redelivered: Row[];
  /** The payload key remembered for redelivery detection, forgotten again if the commit fails. */
  key: { key: string; at: number } | null;
  raw: Buffer | null;
  /** For an urgent publish, when its submit began (performance.now()), for the path's stages; else 0. */
  at: number;
  resolve: (r: IngestResult) => void;
  reject: (e: Error) => void;
}
interface PendingDeadLetter {
  kind: "dead";
  deviceId: string | null;
  topic: string;
  code: ErrorCode;
  message: string;
  payload: Buffer;
  receivedAt: number;
  resolve: (r: IngestResult) => void;
  reject: (e: Error) => void;
}
type Pending = PendingEvents | PendingDeadLetter;

/**
 * Emits "events" (LoggedEvent[]) after each commit, in log order, duplicates excluded;
 * "rejected" ({ deviceId, topic, rejection }) after a dead letter is committed.
 */
export class Ingest extends EventEmitter {
  private queue: Pending[] = [];
  /** Publishes for the urgent lane, handed over at the end of the current callback. */
  private urgent: Pending[] = [];
  private urgentScheduled = false;
  private scheduled: { immediate: NodeJS.Immediate } | { timeout: NodeJS.Timeout } | null = null;
  /** When the last background group went to the writer (performance.now()), for the spacing. */
  private lastBackgroundAt = -Infinity;
  private writer!: EventLogWriter;
  /**
   * Batches handed to the writer and not yet committed, oldest first. Up to PIPELINE_DEPTH: while
   * the writer commits one, the next is already prepared and waiting for it, so neither thread
   * idles while the other works; new publishes gather meanwhile (group commit).
   */
  private readonly inFlight: Promise<void>[] = [];
  /** Groups written (their events announced) and not yet on disk: their answers wait for the fsync. */
  private readonly unacknowledged = new Set<Promise<void>>();
  private readonly now: () => number;
  private readonly recent: RecentPayloads;
  /** The most of a refused payload that is stored: maxDeadLetterBytes, at most maxPayloadBytes. */
  private readonly maxStored: number;
  private stopped = false;
  /** Totals since start, for benchmarks and /metrics-free inspection. */
  /** Publish budgets per device (options.deviceRate), or null for no limit. */
  private readonly rates: KeyedBuckets | null;
  readonly stats = { commits: 0, committedEvents: 0, duplicates: 0, deadLetters: 0, maxBatch: 0 };

  constructor(private readonly ctx: IngestContext) {
    super();
    this.now = ctx.now ?? Date.now;
    this.recent = new RecentPayloads((ctx.options.redeliveryWindowSec ?? 120) * 1000);
    this.maxStored = Math.min(ctx.options.maxDeadLetterBytes ?? Infinity, ctx.options.maxPayloadBytes);
    this.rates = ctx.options.deviceRate ? new KeyedBuckets(ctx.options.deviceRate) : null;
  }

  start(): void {
    const { db, options } = this.ctx;
    this.primeRedeliveries();
    if (options.deadLetters) {
      // Before the writer thread starts: the quotas may have been lowered since the last run.
      const trimmed = applyQuota(db, options.deadLetters, this.now());
      if (trimmed.device || trimmed.total)
        this.ctx.log.info(trimmed, "dead letters over the configured quotas deleted, oldest first");
      // The counter carries the durable count, so it and the store agree across restarts.
      const { dropped } = deadLetterUsage(db);
      this.ctx.metrics.deadLettersDropped.inc({ reason: "device_quota" }, dropped.device);
      this.ctx.metrics.deadLettersDropped.inc({ reason: "total_quota" }, dropped.total);
    }
    this.writer =
      options.writer === "worker" && options.dbPath && options.dbPath !== ":memory:"
        ? new WorkerWriter(
            options.dbPath,
            this.ctx.log,
            (tid) => this.ctx.metrics.threads.set({ thread: "event-log-writer", tid: String(tid) }, 1),
            options.autoCheckpoint ?? true,
            options.writerNice
              ? {
                  nice: options.writerNice,
                  onNice: (nice, refusal) => {
                    this.ctx.metrics.threadNice.set({ thread: "event-log-writer" }, nice);
                    reportFallPathNice(this.ctx.log, "event-log-writer", options.writerNice!, refusal);
                  },
                }
              : {},
          )
        : new InlineWriter(db);
  }

  /** Finish what is queued and in flight; later submissions are refused. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unschedule();
    while (this.queue.length || this.urgent.length || this.inFlight.length) {
      this.flushUrgent();
      this.flush();
      if (this.inFlight.length) await this.inFlight[0];
    }
    await Promise.all(this.unacknowledged);
    await this.writer.close();
  }

  /**
   * Take one publish from a device. Resolves once the outcome is durable: the events committed,
   * or the payload dead-lettered with its reason.
   */
  submit(
    deviceId: string,
    topic: string,
    channel: string,
    payload: Buffer,
    options?: SubmitOptions,
  ): Promise<IngestResult> {
    if (this.stopped) return Promise.reject(new Error("ingest is stopped"));
    const at = performance.now();
    const receivedAtMs = this.now();
    const outcome = this.decode(deviceId, channel, payload, receivedAtMs);
    if ("events" in outcome && outcome.events.length === 0)
      return Promise.resolve({ ok: true, events: 0, duplicates: 0 });
    // Every publish counts against its device's rate, valid or not; only one carrying an urgent
    // event always passes. Past the rate nothing is written, neither event nor dead letter: a device
    // flooding (garbage or not) must not turn into a flood of writes (the disk, the WAL, the commits
    // a fall shares). It is counted, and the device told. Checked before the redelivery check, so
    // refused bytes are not remembered as seen.
    const urgent = "events" in outcome && this.isUrgent(outcome.events);
    if (this.rates && !urgent && !this.rates.take(deviceId, receivedAtMs)) {
      this.ctx.onRateLimited?.(deviceId);
      this.ctx.metrics.eventsRejected.inc({ reason: "rate_limited" });
      const { perSec, burst } = this.rates.limits;
      return Promise.resolve({
        ok: false,
        rejection: {
          code: "rate_limited",
          message: `more than ${perSec} publishes a second (bursts of ${burst}); this one was not logged or kept`,
          deadLetterId: null,
        },
      });
    }
    const redelivered: Row[] = [];
    let key: { key: string; at: number } | null = null;
    if ("events" in outcome && outcome.key) {
      const age = this.recent.seen(deviceId, outcome.key, receivedAtMs);
      if (age === null) {
        key = { key: outcome.key, at: receivedAtMs };
        this.recent.remember(deviceId, outcome.key, receivedAtMs);
      } else {
        // The same bytes within the window: the events derived from them are dropped, each with a
        // trace committed before the PUBACK. Events with the device's own ids go on to the log's key.
        const prefix = `${outcome.key}:`;
        const reason = `redelivery (same bytes ${Math.round(age / 1000)} s earlier)`;
        const kept: PlacedEvent[] = [];
        for (const e of outcome.events)
          if (e.eventId.startsWith(prefix))
            redelivered.push([receivedAtMs, deviceId, e.eventId, channel, reason]);
          else kept.push(e);
        outcome.events = kept;
      }
    }
    // One anonymous executor: this runs for every publish, and named closures cost more than nothing
    // under the TypeScript loader.
    return new Promise<IngestResult>((resolve, reject) => {
      if ("events" in outcome)
        this.enqueue(
          {
            kind: "events",
            deviceId,
            profile: outcome.profile,
            topic: channel,
            events: outcome.events,
            redelivered,
            key,
            raw: this.ctx.options.keepRawPayload ? payload : null,
            at: urgent ? at : 0,
            resolve,
            reject,
          },
          urgent,
          options?.alone,
        );
      else
        this.enqueue(
          {
            kind: "dead",
            deviceId,
            topic,
            code: outcome.code,
            message: outcome.message,
            payload,
            receivedAt: receivedAtMs,
            resolve,
            reject,
          },
          false,
          options?.alone,
        );
    });
  }

  /**
   * Dead-letter a message that never reached a decoder: a bridge's message for a device the registry
   * does not know, or one without a readable device id (deviceId null). Resolves once it is durable.
   */
  refuse(
    deviceId: string | null,
    topic: string,
    code: ErrorCode,
    message: string,
    payload: Buffer,
  ): Promise<IngestResult> {
    if (this.stopped) return Promise.reject(new Error("ingest is stopped"));
    const receivedAt = this.now();
    return new Promise<IngestResult>((resolve, reject) =>
      this.enqueue({ kind: "dead", deviceId, topic, code, message, payload, receivedAt, resolve, reject }),
    );
  }

  /** A publish to canonical, placed events, or the reason it is refused. */
  private decode(
    deviceId: string,
    channel: string,
    payload: Buffer,
    receivedAtMs: number,
  ): { events: PlacedEvent[]; profile: string; key: string | null } | { code: ErrorCode; message: string } {
    const receivedAt = new Date(receivedAtMs).toISOString();
    const device = this.ctx.registry.peek(deviceId);
    const profile = device ? this.ctx.profiles.get(device.profile) : undefined;
    if (!device || !profile)
      return { code: "profile_missing", message: `no profile "${device?.profile}" for device` };
    if (payload.length > this.ctx.options.maxPayloadBytes)
      return {
        code: "payload_too_large",
        message: `payload is ${payload.length} bytes; the limit is ${this.ctx.options.maxPayloadBytes}`,
      };
    if (!profile.topics.includes(channel))
      return {
        code: "unknown_topic",
        message: `profile ${profile.id} publishes on ${profile.topics.join(", ")}, not "${channel}"`,
      };
    let decoded: DecodedEvent[];
    try {
      decoded = profile.decode({ topic: channel, payload, receivedAt });
    } catch (err) {
      if (err instanceof DecodeError) return { code: err.code, message: err.message };
      this.ctx.log.warn({ err, deviceId, profile: profile.id }, "decoder threw an unexpected error");
      return { code: "unsupported", message: `decoder failed: ${(err as Error).message}` };
    }
    // Only publishes with an event that lacks the device's own id need the payload's hash.
    const key = decoded.some((d) => d.eventId === undefined) ? payloadKey(device.id, channel, payload) : null;
    const checked = profile.canonicalChannels?.includes(channel) ?? false;
    const built = canonicalise(device, key, decoded, receivedAt, receivedAtMs, checked);
    if (typeof built === "string") return { code: "bad_schema", message: built };
    return { events: built, profile: profile.id, key };
  }

  /** Events the gateway itself observed about a device (presence); logged like device events. */
  record(deviceId: string, decoded: DecodedEvent[]): Promise<IngestResult> {
    if (this.stopped) return Promise.reject(new Error("ingest is stopped"));
    const device = this.ctx.registry.get(deviceId);
    if (!device) return Promise.reject(new Error(`no device "${deviceId}"`));
    const now = this.now();
    const key = decoded.some((d) => d.eventId === undefined)
      ? payloadKey(device.id, "gateway", Buffer.from(JSON.stringify(decoded)))
      : null;
    const built = canonicalise(device, key, decoded, new Date(now).toISOString(), now);
    if (typeof built === "string") return Promise.reject(new Error(built));
    return new Promise((resolve, reject) =>
      this.enqueue({
        kind: "events",
        deviceId,
        profile: device.profile,
        topic: "gateway",
        events: built,
        redelivered: [],
        key: null,
        raw: null,
        at: 0,
        resolve,
        reject,
      }),
    );
  }

  private isUrgent(events: readonly PlacedEvent[]): boolean {
    const types = this.ctx.urgentTypes?.();
    for (const e of events) if (e.priority === "high" || types?.has(e.type)) return true;
    return false;
  }

  private enqueue(p: Pending, urgent = false, alone = false): void {
    if (alone) {
      // What waits in either lane goes first, in a group of its own, so order is kept; then this
      // one, whatever is in flight (the writer thread retries each of its messages on its own when
      // a merged transaction fails: src/store/sqlite-writer-worker.js).
      this.flushUrgent();
      if (this.queue.length) {
        this.unschedule();
        const waiting = this.queue;
        this.queue = [];
        this.post(waiting, "background");
      }
      this.post([p], urgent ? "urgent" : "background");
      return;
    }
    if (urgent) {
      // The device's earlier publishes still waiting here go with it, ahead of it: a device's
      // events reach the log in the order it sent them, whatever their lane.
      if (this.queue.some((q) => q.deviceId === p.deviceId)) {
        const keep: Pending[] = [];
        for (const q of this.queue) (q.deviceId === p.deviceId ? this.urgent : keep).push(q);
        this.queue = keep;
      }
      this.urgent.push(p);
      if (!this.urgentScheduled) {
        this.urgentScheduled = true;
        // After the current callback: falls arriving in one read from the sockets share a group.
        process.nextTick(() => this.flushUrgent());
      }
      return;
    }
    this.queue.push(p);
    if (this.queue.length >= this.ctx.options.commitMaxEvents) {
      this.flush();
      return;
    }
    if (this.scheduled) return;
    const delay = this.ctx.options.commitMaxDelayMs;
    this.scheduled =
      delay > 0
        ? { timeout: setTimeout(() => this.flush(), delay) }
        : { immediate: setImmediate(() => this.flush()) };
  }

  /**
   * Each handle goes to its own clear function: clearImmediate() on a Timeout corrupts Node's
   * count of pending immediates, after which setImmediate callbacks stall until other I/O wakes
   * the loop.
   */
  private unschedule(): void {
    if (!this.scheduled) return;
    if ("immediate" in this.scheduled) clearImmediate(this.scheduled.immediate);
    else clearTimeout(this.scheduled.timeout);
    this.scheduled = null;
  }

  /** The urgent lane: to the writer at once, whatever is in flight (the writer merges what waits). */
  private flushUrgent(): void {
    this.urgentScheduled = false;
    if (this.urgent.length === 0) return;
    const batch = this.urgent;
    this.urgent = [];
    this.post(batch, "urgent");
  }

  private flush(): void {
    this.unschedule();
    if (this.inFlight.length >= PIPELINE_DEPTH || this.queue.length === 0) return;
    const now = performance.now();
    const early = this.lastBackgroundAt + (this.ctx.options.backgroundIntervalMs ?? 0) - now;
    if (early > 0 && this.queue.length < this.ctx.options.commitMaxEvents && !this.stopped) {
      // Too soon after the last group: this one keeps gathering, and the writer stays free for a fall.
      this.scheduled = { timeout: setTimeout(() => this.flush(), Math.ceil(early)) };
      return;
    }
    this.lastBackgroundAt = now;
    const batch = this.queue;
    this.queue = [];
    this.post(batch, "background");
  }

  private post(batch: Pending[], lane: Lane): void {
    const rows = toRows(batch, this.maxStored, this.ctx.options.deadLetters !== undefined);
    const t0 = performance.now();
    // Urgent groups too go to the writer thread, which merges them with what waits there.
    // (Committing them on this thread while the writer idles was measured: p99 19.6-79.6 ms against
    // 14.4-15.1 ms, the fsync and the log's checkpoints then holding the event loop.)
    // The group is announced to the listeners (rules, presence, sink) once it is written, and
    // answered (PUBACK, dead-letter replies) once it is on disk: a fall's alert waits for no fsync.
    let shown = false;
    let release: () => void = () => {};
    /** Each submission's outcome, known once the group is written, given once it is on disk. */
    let outcomes: IngestResult[] = [];
    const show = (result: WriteResult) => {
      if (shown) return;
      shown = true;
      release();
      outcomes = this.committed(batch, result, t0, lane);
      if (this.queue.length) this.flush();
    };
    let written: WriteResult | Promise<WriteResult>;
    try {
      written = this.writer.write(rows, show);
    } catch (err) {
      this.failed(batch, err as Error);
      return;
    }
    if (!(written instanceof Promise)) {
      show(written);
      this.acknowledge(batch, outcomes);
      return;
    }
    // Until the group is written it holds one of the writer's PIPELINE_DEPTH places; until it is on
    // disk, stop() waits for it. The writer answers in the order it was given groups, so both settle
    // in order too.
    const visible = new Promise<void>((resolve) => {
      release = () => {
        this.inFlight.splice(this.inFlight.indexOf(visible), 1);
        resolve();
      };
    });
    this.inFlight.push(visible);
    const acked: Promise<void> = written.then(
      (result) => {
        this.unacknowledged.delete(acked);
        show(result);
        this.acknowledge(batch, outcomes);
      },
      (err: Error) => {
        this.unacknowledged.delete(acked);
        // A group shown and then refused its fsync gave its place back when shown: releasing it
        // again would splice out another group's place (indexOf -1).
        if (!shown) {
          shown = true;
          release();
        }
        this.failed(batch, err);
        if (this.queue.length) this.flush();
      },
    );
    this.unacknowledged.add(acked);
  }

  /** Nothing in this group is durable: fail every submission so no PUBACK goes out; devices redeliver. */
  private failed(batch: Pending[], err: Error): void {
    // A full disk is reported once per outage by the storage health, not once per group commit.
    if (!this.ctx.storage?.failed("ingest", err))
      this.ctx.log.error({ err, size: batch.length }, "event log commit failed");
    const failure = new CommitError(err);
    for (const p of batch) {
      if (p.kind === "events" && p.key) this.recent.forget(p.deviceId, p.key.key, p.key.at);
      p.reject(failure);
    }
  }

  /**
   * Rebuild the recent payload keys from the log's last window: a device redelivering after a
   * crash (its event committed, the PUBACK never sent) is recognised as it would have been before.
   * Walks back from the newest event and stops at the first one older than the window (group
   * commits log in receipt order), and after PRIME_ROWS at most, so a restart reads only what the
   * window holds.
   */
  private primeRedeliveries(): void {
    const since = this.now() - this.recent.windowMsValue;
    const newestFirst = this.ctx.db
      .prepare("SELECT device_id, event_id, received_at FROM events ORDER BY seq DESC LIMIT ?")
      .iterate(PRIME_ROWS) as IterableIterator<{ device_id: string; event_id: string; received_at: number }>;
    const found: { deviceId: string; key: string; at: number }[] = [];
    for (const r of newestFirst) {
      if (r.received_at < since) break;
      const d = parseDerivedId(r.event_id);
      if (d) found.push({ deviceId: r.device_id, ...d });
    }
    // Oldest first, so each device keeps its most recent keys.
    for (let i = found.length - 1; i >= 0; i--)
      this.recent.remember(found[i]!.deviceId, found[i]!.key, found[i]!.at);
  }

  /**
   * The group is written: its events go to the listeners. `t0`: when it went to the writer
   * (performance.now()). Returns each submission's outcome, which acknowledge() gives once the group
   * is on disk.
   */
  private committed(batch: Pending[], result: WriteResult, t0: number, lane: Lane): IngestResult[] {
    const committedAt = performance.now();
    const seconds = (committedAt - t0) / 1000;
    this.ctx.storage?.succeeded();
    const m = this.ctx.metrics;
    m.commitSeconds.observe({ lane }, seconds);
    m.commitBatchSize.observe({ lane }, batch.length);
    this.stats.commits++;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, batch.length);
    const logged: LoggedEvent[] = [];
    const outcomes: IngestResult[] = [];
    if (result.dropped.device) m.deadLettersDropped.inc({ reason: "device_quota" }, result.dropped.device);
    if (result.dropped.total) m.deadLettersDropped.inc({ reason: "total_quota" }, result.dropped.total);
    let e = 0;
    let d = 0;
    for (const p of batch) {
      if (p.kind === "dead") {
        outcomes.push({
          ok: false,
          rejection: { code: p.code, message: p.message, deadLetterId: result.deadIds[d++]! },
        });
        continue;
      }
      let duplicates = 0;
      const redelivered = p.redelivered.length;
      for (const ev of p.events) {
        const seq = result.seqs[e++]!;
        if (seq === 0) duplicates++;
        else {
          // The event object is this pipeline's own (built in canonicalise): completed in place.
          const le = ev as LoggedEvent;
          le.logSeq = seq;
          le.profile = p.profile;
          logged.push(le);
        }
      }
      if (duplicates) m.eventsDuplicate.inc({ reason: "event_id" }, duplicates);
      if (redelivered) m.eventsDuplicate.inc({ reason: "redelivery" }, redelivered);
      this.stats.duplicates += duplicates + redelivered;
      outcomes.push({ ok: true, events: p.events.length - duplicates, duplicates: duplicates + redelivered });
    }
    this.stats.committedEvents += logged.length;
    // One labelled increment per type and batch, not per event: label lookup is the costly part.
    const perType = new Map<string, number>();
    for (const ev of logged) perType.set(ev.type, (perType.get(ev.type) ?? 0) + 1);
    for (const [type, n] of perType) m.eventsAccepted.inc({ type }, n);
    if (logged.length) this.safeEmit("events", logged);
    if (lane === "urgent") this.urgentStages(batch, t0, seconds, committedAt);
    return outcomes;
  }

  /** The group is on disk: each submission gets its outcome (the PUBACK, a dead letter's reply). */
  private acknowledge(batch: Pending[], outcomes: IngestResult[]): void {
    batch.forEach((p, i) => {
      const outcome = outcomes[i]!;
      p.resolve(outcome);
      if (outcome.ok) return;
      this.stats.deadLetters++;
      this.ctx.metrics.eventsRejected.inc({ reason: outcome.rejection.code });
      this.safeEmit("rejected", { deviceId: p.deviceId, topic: p.topic, rejection: outcome.rejection });
    });
  }

  /**
   * Where an urgent publish's time went before its alert was announced: from its submit to its
   * group going to the writer (decode, the rest of the callback it arrived in), the commit (waiting
   * for the writer, the fsync, the answer back), and the rules with the alert's own transaction.
   */
  private urgentStages(batch: Pending[], posted: number, commit: number, committedAt: number): void {
    const stages = this.ctx.metrics.urgentStageSeconds;
    const rules = (performance.now() - committedAt) / 1000;
    for (const p of batch) {
      if (p.kind !== "events" || p.at === 0) continue;
      stages.observe({ stage: "handover" }, (posted - p.at) / 1000);
      stages.observe({ stage: "commit" }, commit);
      stages.observe({ stage: "rules" }, rules);
    }
  }

  /** A failing listener is logged with its source and never undoes a commit or stops ingest. */
  private safeEmit(name: string, arg: unknown): void {
    for (const listener of this.listeners(name)) {
      try {
        (listener as (a: unknown) => void)(arg);
      } catch (err) {
        this.ctx.log.error(
          { err, listener: listener.name || "anonymous", event: name },
          "ingest listener failed",
        );
      }
    }
  }
}

/**
 * Fill the envelope, validate, attach placement. A string is the first validation problem.
 * `checked`: the decoder already checked the events with the canonical schemas (the profile's
 * `canonicalChannels`); what this adds (deviceId, receivedAt, a derived eventId) is the gateway's own.
 */
export function canonicalise(
  device: Pick<Device, "id" | "siteId" | "unitId" | "roomId" | "residentRef">,
  key: string | null,
  decoded: readonly DecodedEvent[],
  receivedAt: string,
  receivedAtMs: number,
  checked = false,
): PlacedEvent[] | string {
  const placement = {
    siteId: device.siteId,
    unitId: device.unitId,
    roomId: device.roomId,
    residentRef: device.residentRef,
  };
  const events: PlacedEvent[] = [];
  for (let i = 0; i < decoded.length; i++) {
    const d = decoded[i]!;
    const candidate: Record<string, unknown> = {
      eventId: d.eventId ?? deriveEventId(key!, i, receivedAtMs),
      schemaVersion: SCHEMA_VERSION,
      type: d.type,
      deviceId: device.id,
      occurredAt: d.occurredAt ?? receivedAt,
      receivedAt,
      phase: d.phase ?? defaultPhase(d.type),
      data: d.data,
    };
    if (d.seq !== undefined) candidate.seq = d.seq;
    if (d.priority !== undefined) candidate.priority = d.priority;
    if (checked) {
      const placed = candidate as unknown as PlacedEvent;
      placed.placement = placement;
      events.push(placed);
      continue;
    }
    const parsed = CanonicalEvent.safeParse(candidate);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return `event ${i} (${d.type}): ${issue?.path.join(".") || "(root)"}: ${issue?.message}`;
    }
    // zod's output is a fresh object: placed in place rather than copied once more.
    const placed = parsed.data as PlacedEvent;
    placed.placement = placement;
    events.push(placed);
  }
  return events;
}

/**
 * One event as the log stores it, in INSERT_EVENT's column order: SQLite's log here, and the shared
 * log on PostgreSQL (src/cluster/pg/event-log.ts), whose `events` has the same columns.
 */
export function eventRow(e: PlacedEvent, profile: string, raw: unknown, topic: string | null): unknown[] {
  return [
    e.eventId,
    e.deviceId,
    e.type,
    e.phase,
    e.priority ?? null,
    Date.parse(e.occurredAt),
    Date.parse(e.receivedAt),
    e.seq ?? null,
    e.placement.siteId,
    e.placement.unitId,
    e.placement.roomId,
    e.placement.residentRef,
    profile,
    JSON.stringify(e.data),
    raw,
    topic,
  ];
}

/** The most events read back at start to rebuild redelivery detection. */
const PRIME_ROWS = 200_000;

/** Batches in flight to the writer thread at once: one committing, one ready behind it. */
const PIPELINE_DEPTH = 2;

/** Positional parameters, in the order of the INSERTs in the writers. */
type Row = unknown[];

interface WriteResult {
  /** Log position per event row, 0 for a duplicate (eventId already logged for the device). */
  seqs: number[];
  deadIds: number[];
  /** Old dead letters deleted for the per-device and the total quotas in this commit. */
  dropped: { device: number; total: number };
}

/** One group commit's rows, positional parameters for the statements below. */
interface Rows {
  events: Row[];
  dead: Row[];
  duplicates: Row[];
  /** Per device with a dead letter in this group, its id twice (TRIM_DEVICE); empty without quotas. */
  trims: Row[];
}

interface EventLogWriter {
  /**
   * Commit one group. A promise resolves once the group is on disk; `visible` may be called
   * before, once it is written (then listeners may see it while its answers wait for the fsync).
   */
  write(rows: Rows, visible?: (result: WriteResult) => void): WriteResult | Promise<WriteResult>;
  close(): Promise<void>;
}

/** The last parameter is the log position: the writer thread's own number, or null (SQLite's next rowid). */
const INSERT_EVENT = `INSERT OR IGNORE INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at,
  device_seq, site_id, unit_id, room_id, resident_ref, profile, data, raw, topic, seq)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const SEQ_COLUMN = 16;
const INSERT_DUPLICATE =
  "INSERT INTO duplicates (received_at, device_id, event_id, topic, reason) VALUES (?, ?, ?, ?, ?)";
/** For an event row the log's unique key ignored: its received_at, device_id, event_id and topic. */
const INSERT_IGNORED =
  "INSERT INTO duplicates (received_at, device_id, event_id, topic, reason) VALUES (?, ?, ?, ?, 'event_id (already logged)')";
const IGNORED_COLUMNS = [6, 1, 0, 15];
const INSERT_DEAD = `INSERT INTO dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload, truncated)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;

function toRows(batch: Pending[], maxDead: number, quotas: boolean): Rows {
  const events: Row[] = [];
  const dead: Row[] = [];
  const duplicates: Row[] = [];
  const trimmed = new Set<string | null>();
  // The raw payloads are views into the sockets' read buffers (64 KiB each). Handed to the writer
  // thread as they are, every one of those whole buffers would be copied with the batch; copied
  // into one buffer of exactly their size, the batch carries only its own bytes.
  let rawBytes = 0;
  for (const p of batch) {
    if (p.kind === "dead") rawBytes += Math.min(p.payload.length, maxDead);
    else if (p.raw && p.events.length > 0) rawBytes += p.raw.length;
  }
  const arena = Buffer.allocUnsafeSlow(rawBytes);
  let offset = 0;
  const own = (raw: Buffer): Buffer => {
    raw.copy(arena, offset);
    offset += raw.length;
    return arena.subarray(offset - raw.length, offset);
  };
  for (const p of batch) {
    if (p.kind === "dead") {
      const truncated = p.payload.length > maxDead;
      dead.push([
        p.receivedAt,
        p.deviceId,
        p.topic,
        p.code,
        p.message,
        p.payload.length,
        createHash("sha256").update(p.payload).digest("hex"),
        own(truncated ? p.payload.subarray(0, maxDead) : p.payload),
        truncated ? 1 : 0,
      ]);
      if (quotas) trimmed.add(p.deviceId);
      continue;
    }
    for (const d of p.redelivered) duplicates.push(d);
    const raw = p.raw && p.events.length > 0 ? own(p.raw) : null;
    p.events.forEach((e, i) => {
      const row = eventRow(e, p.profile, i === 0 ? raw : null, p.topic);
      row.push(null);
      events.push(row);
    });
  }
  const trims: Row[] = [];
  for (const id of trimmed) trims.push([id, id]);
  return { events, dead, duplicates, trims };
}

class InlineWriter implements EventLogWriter {
  private readonly commit: (rows: Rows) => WriteResult;

  constructor(db: Db) {
    const insertEvent = db.prepare(INSERT_EVENT);
    const insertDead = db.prepare(INSERT_DEAD);
    const insertDuplicate = db.prepare(INSERT_DUPLICATE);
    const insertIgnored = db.prepare(INSERT_IGNORED);
    const trimDevice = db.prepare(TRIM_DEVICE);
    const trimTotal = db.prepare(TRIM_TOTAL);
    const tallyDevice = db.prepare(TALLY_DEVICE);
    const tallyTotal = db.prepare(TALLY_TOTAL);
    this.commit = db.transaction(({ events, dead, duplicates, trims }: Rows) => {
      const seqs = events.map((r) => {
        const info = insertEvent.run(r);
        if (info.changes === 0) insertIgnored.run(IGNORED_COLUMNS.map((c) => r[c]));
        return info.changes === 0 ? 0 : Number(info.lastInsertRowid);
      });
      for (const d of duplicates) insertDuplicate.run(d);
      const deadIds = dead.map((r) => Number(insertDead.run(r).lastInsertRowid));
      // As the writer thread's repeat batches (store/sqlite-writer.ts).
      let device = 0;
      for (const t of trims) device += trimDevice.run(t).changes;
      let total = 0;
      if (trims.length) while (trimTotal.run().changes > 0) total++;
      if (device) tallyDevice.run(device);
      if (total) tallyTotal.run(total);
      return { seqs, deadIds, dropped: { device, total } };
    });
  }

  write(rows: Rows): WriteResult {
    return this.commit(rows);
  }

  async close(): Promise<void> {}
}

class WorkerWriter implements EventLogWriter {
  private readonly thread: SqliteWriterThread;

  constructor(
    path: string,
    log: Logger,
    onThread: (tid: number) => void,
    autoCheckpoint: boolean,
    priority: Pick<WriterOptions, "nice" | "onNice">,
  ) {
    // After-commit: a group is shown to the listeners once written, answered once on disk.
    this.thread = new SqliteWriterThread(
      path,
      {
        event: INSERT_EVENT,
        dead: INSERT_DEAD,
        duplicate: INSERT_DUPLICATE,
        ignored: INSERT_IGNORED,
        trimDevice: TRIM_DEVICE,
        trimTotal: TRIM_TOTAL,
        tallyDevice: TALLY_DEVICE,
        tallyTotal: TALLY_TOTAL,
      },
      log,
      {
        onThread,
        ...priority,
        autoCheckpoint,
        durability: "after-commit",
        sequence: { stmt: "event", column: SEQ_COLUMN, maxSql: "SELECT max(seq) FROM events" },
      },
    );
  }

  async write(
    { events, dead, duplicates, trims }: Rows,
    visible?: (r: WriteResult) => void,
  ): Promise<WriteResult> {
    const result = ([seqs, deadIds, , device, total]: (number[] | null)[]): WriteResult => ({
      seqs: seqs ?? [],
      deadIds: deadIds ?? [],
      dropped: { device: device?.[0] ?? 0, total: total?.[0] ?? 0 },
    });
    const written = await this.thread.run(
      [
        { stmt: "event", rows: events, ids: true, ignored: { stmt: "ignored", columns: IGNORED_COLUMNS } },
        { stmt: "dead", rows: dead, ids: true },
        { stmt: "duplicate", rows: duplicates },
        // After the inserts, in the same transaction: the oldest dead letters beyond the quotas.
        ...(trims.length
          ? [
              { stmt: "trimDevice", rows: trims, repeat: { tally: "tallyDevice" } },
              { stmt: "trimTotal", rows: [[]], repeat: { tally: "tallyTotal" } },
            ]
          : []),
      ],
      visible && ((r) => visible(result(r))),
    );
    return result(written);
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}
