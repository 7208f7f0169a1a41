/**
 * The rule engine: every committed event is evaluated against the rules in file order; matching
 * rules raise, cancel or resolve alerts. Absence conditions ("a bed exit not followed by a return
 * within 10 minutes") are durable timers, so a restart inside the window still raises on time.
 *
 * Every logged event reaches the rules exactly once, across crashes. The engine keeps a cursor over
 * the event log (`RulesCursor`, cursor.ts: a log seq): every event up to it has had its rule
 * effects committed. The cursor is written in the same step as the alert changes, audit entries and
 * timer rows of the events it covers (one AlertManager.batch(), the partition's unit of work,
 * partition.ts: on SQLite one transaction on the main connection), so after any crash either an
 * event's effects and the cursor past it are both durable, or neither is:
 * - at least once: an event past the cursor at start (its group commit reached the log, its rule
 *   transaction did not) is replayed from the log in log order before the broker takes devices, so
 *   the device's redelivery, a duplicate the rules never see, loses nothing;
 * - at most once: an event at or before the cursor is skipped (its effects are already committed),
 *   live or replayed, so a fall is never raised twice and a count never counts twice.
 * A batch that fails to commit (a full disk) leaves the cursor where it was; the engine then reads
 * from the log instead of the live stream until it has caught up (same code as the start replay).
 *
 * Replayed events are judged by their own times, not by when they are replayed: staleness already
 * compares the event's receivedAt with its occurredAt; count and time-of-day conditions use its
 * occurredAt; absence windows run from its receivedAt (a window that ended while the gateway was
 * down fires at once, and a return logged inside the window still cancels it, because timers that
 * fell due are fired in between, in the order they would have fired live); maintenance is looked up
 * at its receivedAt.
 *
 * Batches of heartbeats no rule looks at move the cursor in memory and it is persisted at most once
 * a second on its own, so the hot path gains no transaction; after a crash those few seconds of
 * irrelevant events are read again and skipped.
 *
 * The cursor and the maintenance windows in force are the partition's (`RulesCursor`,
 * `MaintenanceWindows`); the event log is read through `RulesEventLog` (event-log.ts: replay, an
 * absence timer's event, count conditions): the whole SQLite log in one process, a partition's
 * recent events in memory on its owner in cluster mode.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { ChannelName } from "../alerts/channels/channel.js";
import type { AlertManager, RaiseSpec } from "../alerts/manager.js";
import { ConfigError, formatPath } from "../config/load.js";
import type { LoggedEvent } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { DeviceProfile } from "../model/profile.js";
import type { Registry } from "../registry/registry.js";
import { isStorageError, type StorageHealth } from "../store/health.js";
import { evaluate, typeMatches } from "./conditions.js";
import type { RulesCursor } from "./cursor.js";
import { expandTypes, type RulesEventLog } from "./event-log.js";
import type { MaintenanceWindows } from "./maintenance.js";
import { ladderChannelProblems, type Rule, type RuleFile, RuleFileSchema, ruleProblems } from "./schema.js";
import type { DurableTimers, Timer } from "./timers.js";

export function parseRules(text: string, source: string): RuleFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, [{ path: "(file)", message: (err as Error).message }]);
  }
  const parsed = RuleFileSchema.safeParse(raw);
  if (!parsed.success) throw ruleFileError(source, parsed.error.issues);
  const problems = ruleProblems(parsed.data);
  if (problems.length) throw ruleFileError(source, problems);
  return parsed.data;
}

function ruleFileError(
  source: string,
  problems: readonly { path: readonly PropertyKey[]; message: string }[],
) {
  return new ConfigError(
    source,
    problems.map((p) => ({ path: formatPath(p.path), message: p.message })),
  );
}

/** Where each channel is configured, for the error that says it is not. */
const CHANNEL_HINTS: Partial<Record<ChannelName, string>> = {
  webhook: "alarms.fallbackWebhook in the main configuration",
  push: "channels.push in the main configuration",
  paging: "channels.paging in the main configuration",
};

/**
 * Every ladder names only channels the gateway has: at boot (main.ts, with the other configuration
 * problems) and on a SIGHUP reload (a refused file keeps the running rules).
 */
export function checkRuleChannels(
  file: RuleFile,
  configured: ReadonlySet<ChannelName>,
  source: string,
): void {
  const problems = ladderChannelProblems(file, configured, CHANNEL_HINTS);
  if (problems.length) throw ruleFileError(source, problems);
}

export function loadRuleFile(path: string): RuleFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [{ path: "(file)", message: (err as Error).message }]);
  }
  return parseRules(text, path);
}

export interface RuleEngineContext {
  /** The event log: read for replay, for an absence timer's event and for count conditions. */
  events: RulesEventLog;
  /** The rules' position in the event log, moved inside the steps that commit events' effects. */
  cursor: RulesCursor;
  /** The maintenance windows in force, read inside a step. */
  maintenance: MaintenanceWindows;
  registry: Registry;
  profiles: ReadonlyMap<string, DeviceProfile>;
  alerts: AlertManager;
  timers: DurableTimers;
  log: Logger;
  timeZones: ReadonlyMap<string, string>;
  now?: () => number;
  /** Where storage failures are reported (and recovery announced). */
  storage?: StorageHealth;
  metrics?: Metrics;
  /** Delay before a failed batch is retried from the log when no recovery is announced; default 1 s. */
  retryMs?: number;
}

// The rules' cursor's name, where it was always imported from.
export { RULES_CURSOR } from "./cursor.js";

/** Events read from the log per transaction while replaying. */
const REPLAY_PAGE = 1000;

interface AbsencePayload {
  ruleId: string;
  eventSeq: number;
}

export class RuleEngine {
  private file!: RuleFile;
  /** Event types some rule may act on; null when a rule has no `event` condition (then all are). */
  private relevant: Set<string> | null = null;
  private urgent: ReadonlySet<string> = new Set();
  private readonly now: () => number;
  /** Every event up to this log seq has had its rule effects committed (or had none). */
  private cursor = 0;
  private persistedCursor = 0;
  /** A batch failed to commit: live events wait in the log until catch-up reads them. */
  private behind = false;
  /** Set while evaluating events read back from the log: then each event's receivedAt is "now". */
  private clock: number | null = null;
  private retry: NodeJS.Timeout | null = null;
  private persistTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly ctx: RuleEngineContext,
    file: RuleFile,
  ) {
    this.use(file);
    this.now = ctx.now ?? Date.now;
    ctx.timers.on<AbsencePayload>("absence", (t) => this.onAbsenceElapsed(t));
    ctx.storage?.on("recovered", () => {
      if (this.behind) this.scheduleCatchUp(0);
    });
  }

  /**
   * Read the cursor and replay every logged event after it, in log order, with the timers that fell
   * due in between. Call before the broker accepts devices and before timers.start(). A storage
   * failure does not stop the start: the engine stays behind and retries.
   */
  start(): { replayed: number } {
    this.stopped = false;
    // Replayed events cancel and consult timers armed before the crash: those must be in memory.
    this.ctx.timers.load();
    this.cursor = this.persistedCursor = this.ctx.cursor.position();
    const from = this.cursor;
    this.behind = true;
    const t0 = performance.now();
    const replayed = this.catchUp(Number.POSITIVE_INFINITY);
    if (replayed > 0 || this.behind)
      this.ctx.log.warn(
        { from, to: this.cursor, replayed, behind: this.behind, ms: Math.round(performance.now() - t0) },
        "events logged before the restart replayed through the rules",
      );
    return { replayed };
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.retry = this.persistTimer = null;
    if (!this.behind) this.persistCursor();
  }

  /** The log seq up to which every event's rule effects are committed (for tests and /readyz). */
  get position(): { cursor: number; behind: boolean } {
    return { cursor: this.cursor, behind: this.behind };
  }

  /**
   * Devices whose events count as late, whatever time they carry: logged and counted, may cancel or
   * resolve, page nobody. The demo fills it while it plays a simulated history through its own
   * devices (a VS373 sends local time without an offset, so the gateway stamps such events on
   * arrival and the staleAfter rule cannot see their age); every other device pages as always.
   */
  replaying: ReadonlySet<string> = new Set();
  readonly stats = { staleSkipped: 0 };

  get rules(): readonly Rule[] {
    return this.file.rules;
  }

  /** The rule file in force (a cluster node takes up partitions with it). */
  get ruleFile(): RuleFile {
    return this.file;
  }

  /** Swap in a new rule file; an invalid one leaves the running rules in place. */
  reload(load: () => RuleFile): { ok: true; rules: number } | { ok: false; error: ConfigError } {
    try {
      this.use(load());
      this.ctx.log.info({ rules: this.file.rules.length }, "rules reloaded");
      return { ok: true, rules: this.file.rules.length };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems)
        this.ctx.log.error(
          { path: p.path, problem: p.message },
          "rule file invalid; keeping the running rules",
        );
      return { ok: false, error: err };
    }
  }

  /**
   * Event types an enabled rule raises a high-priority alert on at once (no `unless` wait): the
   * ingest's urgent lane. A rule without an event condition does not make every event urgent.
   */
  get urgentTypes(): ReadonlySet<string> {
    return this.urgent;
  }

  private use(file: RuleFile): void {
    this.file = file;
    const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);
    const urgent = new Set<string>();
    for (const r of file.rules)
      if (r.enabled && r.raise?.priority === "high" && !r.raise.unless && r.when.event !== undefined)
        for (const t of expandTypes(list(r.when.event))) urgent.add(t);
    this.urgent = urgent;
    const types = new Set<string>(["staff.presence"]);
    for (const r of file.rules) {
      if (r.when.event === undefined) {
        this.relevant = null;
        return;
      }
      for (const t of expandTypes(list(r.when.event))) types.add(t);
      if (r.raise?.unless) for (const t of expandTypes(list(r.raise.unless.event))) types.add(t);
    }
    this.relevant = types;
  }

  onEvents(events: readonly LoggedEvent[]): void {
    // Behind: these are in the log, and catch-up reads them in order after what failed.
    if (this.behind || events.length === 0) return;
    let fresh = events;
    // Already evaluated (catch-up read them from the log before their commit was announced).
    if (events[0]!.logSeq <= this.cursor) fresh = events.filter((e) => e.logSeq > this.cursor);
    if (fresh.length === 0) return;
    const last = fresh[fresh.length - 1]!.logSeq;
    // Most traffic is heartbeats no rule looks at: they cost a set lookup, not a transaction.
    const relevant = this.relevant;
    if (relevant && !fresh.some((e) => relevant.has(e.type))) {
      this.cursor = last;
      this.schedulePersist();
      return;
    }
    try {
      this.evaluate(fresh, last);
    } catch (err) {
      this.fallBehind(err, fresh[0]!.logSeq);
    }
  }

  /**
   * One transaction for the whole commit group, the cursor included: absence timers and alert
   * changes of a burst (5,000 devices going offline when a Wi-Fi controller reboots) cost one fsync,
   * not one each, and the event loop is not held for seconds. Each event is a savepoint: one whose
   * rule fails leaves no trace and is not retried (it would fail again); a storage error fails the
   * whole batch, so nothing of it is half-applied and all of it is retried.
   */
  private evaluate(events: readonly LoggedEvent[], last: number): void {
    const relevant = this.relevant;
    // Replayable: the events are in the log and the cursor moves in this transaction.
    this.ctx.alerts.replayable(() => {
      for (const e of events) {
        if (relevant && !relevant.has(e.type)) continue;
        try {
          this.ctx.alerts.batch(() => this.onEvent(e));
        } catch (err) {
          if (isStorageError(err)) throw err;
          this.ctx.log.error(
            { err, eventSeq: e.logSeq, type: e.type },
            "rule evaluation failed for an event",
          );
        }
      }
      this.ctx.cursor.set(last, this.now());
    });
    this.cursor = this.persistedCursor = last;
    this.ctx.storage?.succeeded();
  }

  private fallBehind(err: unknown, fromSeq: number): void {
    this.behind = true;
    if (this.ctx.storage?.failed("rules", err) !== true && !isStorageError(err))
      this.ctx.log.error({ err, fromSeq }, "rule batch could not be committed; retrying from the event log");
    this.scheduleCatchUp(this.ctx.retryMs ?? 1000);
  }

  private scheduleCatchUp(delayMs: number): void {
    if (this.stopped) return;
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = null;
      // A few pages per turn of the event loop (tens of milliseconds): a long backlog must not hold
      // up live traffic, and must still outrun heartbeat traffic while it catches up.
      this.catchUp(4);
      if (this.behind && !this.retry) this.scheduleCatchUp(0);
    }, delayMs);
  }

  /**
   * Evaluate logged events after the cursor, up to `pages` pages; clears `behind` once the log has
   * nothing more. Never throws: a failure leaves the engine behind with a retry scheduled.
   */
  private catchUp(pages: number): number {
    let replayed = 0;
    try {
      for (let p = 0; p < pages; p++) {
        const events = this.ctx.events.after(this.cursor, REPLAY_PAGE);
        if (events.length === 0) {
          this.behind = false;
          break;
        }
        replayed += this.replay(events);
        if (events.length < REPLAY_PAGE) {
          this.behind = false;
          break;
        }
      }
    } catch (err) {
      this.fallBehind(err, this.cursor + 1);
    } finally {
      this.clock = null;
    }
    if (replayed) this.ctx.metrics?.rulesReplayed.inc(replayed);
    return replayed;
  }

  /**
   * Events read back from the log, judged by their own times. Timers that fell due before an event
   * was received fire before it (outside the batch), as they would have live; the events between
   * two such points share one transaction.
   */
  private replay(events: LoggedEvent[]): number {
    let group: LoggedEvent[] = [];
    const flush = () => {
      if (!group.length) return;
      this.clock = Date.parse(group[0]!.receivedAt);
      this.evaluate(group, group[group.length - 1]!.logSeq);
      group = [];
    };
    for (const e of events) {
      const at = Date.parse(e.receivedAt);
      const due = this.ctx.timers.nextDue();
      if (due !== undefined && due <= at) {
        flush();
        this.ctx.timers.fireDueUntil(at);
      }
      group.push(e);
    }
    flush();
    return events.length;
  }

  /** The rule clock: the event's receipt while replaying from the log, the wall clock live. */
  private eventNow(e: LoggedEvent): number {
    return this.clock === null ? this.now() : Date.parse(e.receivedAt);
  }

  private schedulePersist(): void {
    if (this.persistTimer || this.stopped) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      if (!this.behind) this.persistCursor();
    }, 1000);
    this.persistTimer.unref();
  }

  /** The cursor past events that had no effects: best effort, a failure only means a longer replay. */
  private persistCursor(): void {
    if (this.cursor <= this.persistedCursor || !this.ctx.cursor.available()) return;
    try {
      this.ctx.cursor.set(this.cursor, this.now());
      this.persistedCursor = this.cursor;
      this.ctx.storage?.succeeded();
    } catch (err) {
      if (!this.ctx.storage?.failed("rules-cursor", err))
        this.ctx.log.error({ err }, "could not persist the rules cursor");
    }
  }

  private onEvent(e: LoggedEvent): void {
    // Whatever this event is, it may be the "return" an absence window was waiting for.
    for (const rule of this.file.rules) {
      const unless = rule.raise?.unless;
      if (unless && typeMatches(e.type, Array.isArray(unless.event) ? unless.event : [unless.event]))
        this.ctx.timers.cancel(absenceId(rule.id, e.deviceId));
    }
    if (e.type === "staff.presence") this.ctx.alerts.presenceInRoom(e);

    const device = this.ctx.registry.peek(e.deviceId);
    const kind = device ? (this.ctx.profiles.get(device.profile)?.kind ?? "unknown") : "unknown";
    const resident = e.placement.residentRef
      ? this.ctx.registry.resident(e.placement.residentRef)
      : undefined;
    // What a rule's count condition measured, for `{count}` in its message.
    let measured: number | undefined;
    const evalCtx = {
      event: e,
      deviceKind: kind,
      residentFlags: resident?.flags ?? [],
      timeZone: this.ctx.timeZones.get(e.placement.siteId) ?? "UTC",
      count: (per: "device" | "resident", types: readonly string[] | null, sinceMs: number) => {
        measured = this.count(e, per, types, sinceMs);
        return measured;
      },
    };
    // Late events (a device replaying its buffer after an outage) are logged and counted, and may
    // cancel or resolve, but page nobody (staleAfter in the rule file).
    const stale =
      this.replaying.has(e.deviceId) ||
      Date.parse(e.receivedAt) - Date.parse(e.occurredAt) > this.file.staleAfter;
    for (const rule of this.file.rules) {
      measured = undefined;
      if (!rule.enabled || !evaluate(rule.when, evalCtx)) continue;
      if (rule.raise && stale) this.stats.staleSkipped++;
      else if (rule.raise) {
        if (rule.raise.unless) {
          const id = absenceId(rule.id, e.deviceId);
          // The window runs from the first exit; a second exit inside it does not restart it.
          if (!this.ctx.timers.get(id))
            this.ctx.timers.set<AbsencePayload>(id, "absence", this.eventNow(e) + rule.raise.unless.within, {
              ruleId: rule.id,
              eventSeq: e.logSeq,
            });
        } else this.raise(rule, e, measured);
      } else {
        // The schema lets one rule both cancel and resolve (two alert types): do both.
        if (rule.cancel)
          this.ctx.alerts.close("cancelled", rule.cancel.alert, e, rule.id, { reason: rule.cancel.reason });
        if (rule.resolve)
          this.ctx.alerts.close("resolved", rule.resolve.alert, e, rule.id, {
            outcome: rule.resolve.outcome,
          });
      }
    }
  }

  private raise(rule: Rule, e: LoggedEvent, counted?: number): void {
    const r = rule.raise!;
    const spec: RaiseSpec = {
      ...(counted === undefined ? {} : { count: counted }),
      ruleId: rule.id,
      alert: r.alert,
      priority: r.priority,
      message: r.message,
      ladder: r.escalation ?? this.file.escalation[r.priority],
      renotifyMs: r.renotify ?? this.file.renotify[r.priority],
    };
    this.ctx.alerts.raise(spec, e, this.maintenance(e));
  }

  private onAbsenceElapsed(t: Timer<AbsencePayload>): void {
    const rule = this.file.rules.find((r) => r.id === t.payload.ruleId);
    if (!rule?.raise) return;
    const e = this.loadEvent(t.payload.eventSeq);
    if (e) this.raise(rule, e);
  }

  /** An event back from the log (absence timers keep only its position). */
  loadEvent(seq: number): LoggedEvent | undefined {
    return this.ctx.events.get(seq);
  }

  private count(
    e: LoggedEvent,
    per: "device" | "resident",
    types: readonly string[] | null,
    sinceMs: number,
  ): number {
    const key = per === "device" ? e.deviceId : e.placement.residentRef;
    if (key === null || key === undefined) return 0;
    return this.ctx.events.count({
      per,
      key,
      types,
      since: sinceMs,
      until: Date.parse(e.occurredAt),
      upTo: e.logSeq,
    });
  }

  private maintenance(e: LoggedEvent): { id: number; reason: string } | null {
    return this.ctx.maintenance.inForce(e.placement.siteId, e.deviceId, e.placement.roomId, this.eventNow(e));
  }
}

function absenceId(ruleId: string, deviceId: string): string {
  return `absence:${ruleId}:${deviceId}`;
}
