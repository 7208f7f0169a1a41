/**
 * The event log as the rules read it: the events after the rules' cursor (replay, catch-up), one
 * event by its position (an absence timer keeps only that), and counts for count conditions. Reads
 * are synchronous: they happen inside a partition's step (partition.ts), whose input nobody else
 * changes meanwhile.
 *
 * Two implementations, one contract (test/rules/event-log.contract.ts):
 * - `SqliteRulesEventLog`: one process, the whole event log in SQLite (`log.events`, written by
 *   ingest; the position is the log's `seq`), counts joined with the `maintenance` table;
 * - `EventWindow`: a partition's owner in cluster mode. The event log of record is shared
 *   (PostgreSQL), read asynchronously; the owner keeps the partition's recent events in memory, as
 *   many as its rules can look back at (`lookBackMs`), filled when it takes the partition over and
 *   appended as the partition's events reach it, in position order. Positions are then the
 *   partition's own (dense per partition, docs/cluster.md). Counts leave out events the partition's
 *   maintenance windows covered when they were received (`MaintenanceWindows`, which on PostgreSQL
 *   holds all of a partition's windows, ended ones too).
 *
 * What a count counts, in both: events of one device (or one resident) of the given types (all
 * types when none are given), that occurred from `since` to `until` inclusive, logged at or before
 * the position `upTo` (a later event of the same group commit, or one already logged when this one
 * is replayed, must not count toward this one), and not received while a maintenance window of its
 * device, or of its room, was in force (a radar being recalibrated and tested: its events are not
 * the resident's).
 */
import type { LoggedEvent } from "../ingest/pipeline.js";
import { EVENT_TYPES, type EventType } from "../model/event.js";
import { type Db, NOT_HEARTBEAT } from "../store/db.js";
import { Statements } from "../store/statements.js";
import { typeMatches } from "./conditions.js";
import type { MaintenanceWindows } from "./maintenance.js";
import type { Condition, Rule } from "./schema.js";

export interface EventCount {
  per: "device" | "resident";
  /** The device id, or the resident's pseudonymous reference. */
  key: string;
  /** Type patterns as rules write them ("*", "fall.*"); null: every type. */
  types: readonly string[] | null;
  since: number;
  until: number;
  /** Only events logged at or before this position. */
  upTo: number;
}

export interface RulesEventLog {
  /** Events logged after `position`, in log order, at most `limit`. */
  after(position: number, limit: number): LoggedEvent[];
  /** The event logged at `position`, if the log still holds it. */
  get(position: number): LoggedEvent | undefined;
  count(q: EventCount): number;
}

/** Concrete types a list of patterns covers. */
export function expandTypes(patterns: readonly string[]): EventType[] {
  return EVENT_TYPES.filter((t) => typeMatches(t, patterns));
}

/** The log's columns an event is rebuilt from (not the raw payload). */
export const EVENT_ROW_COLUMNS =
  "seq, event_id, device_id, type, phase, priority, occurred_at, received_at, device_seq, site_id, unit_id, room_id, resident_ref, profile, data";

export interface EventRow {
  seq: number;
  event_id: string;
  device_id: string;
  type: LoggedEvent["type"];
  phase: LoggedEvent["phase"];
  priority: LoggedEvent["priority"] | null;
  occurred_at: number;
  received_at: number;
  device_seq: number | null;
  site_id: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  profile: string;
  data: string;
}

/** A row of the SQLite log (`EVENT_ROW_COLUMNS`) as the event it logged, its `seq` as its position. */
export function rowToEvent(r: EventRow): LoggedEvent {
  return {
    logSeq: r.seq,
    eventId: r.event_id,
    schemaVersion: 1,
    deviceId: r.device_id,
    type: r.type,
    phase: r.phase,
    ...(r.priority ? { priority: r.priority } : {}),
    ...(r.device_seq !== null ? { seq: r.device_seq } : {}),
    occurredAt: new Date(r.occurred_at).toISOString(),
    receivedAt: new Date(r.received_at).toISOString(),
    data: JSON.parse(r.data),
    profile: r.profile,
    placement: { siteId: r.site_id, unitId: r.unit_id, roomId: r.room_id, residentRef: r.resident_ref },
  } as LoggedEvent;
}

/** The single process's event log (SQLite), read on the main connection. */
export class SqliteRulesEventLog implements RulesEventLog {
  private readonly statements: Statements;

  constructor(db: Db) {
    this.statements = new Statements(db);
  }

  after(position: number, limit: number): LoggedEvent[] {
    const rows = this.statements
      .get(`SELECT ${EVENT_ROW_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`)
      .all(position, limit) as EventRow[];
    return rows.map(rowToEvent);
  }

  get(position: number): LoggedEvent | undefined {
    const r = this.statements.get(`SELECT ${EVENT_ROW_COLUMNS} FROM events WHERE seq = ?`).get(position) as
      | EventRow
      | undefined;
    return r ? rowToEvent(r) : undefined;
  }

  count(q: EventCount): number {
    const concrete = q.types ? expandTypes(q.types) : null;
    const key = q.per === "device" ? "device_id" : "resident_ref";
    const sql = `SELECT count(*) AS n FROM events ev WHERE ev.${key} = ? AND ev.occurred_at >= ? AND ev.occurred_at <= ? AND ev.seq <= ?${
      concrete ? ` AND ev.type IN (${concrete.map(() => "?").join(",")})` : ""
    }${
      // The per-device and per-resident indexes leave heartbeats out; a count of heartbeats (or of
      // everything) is still right, only without them.
      concrete && !concrete.includes("device.heartbeat") ? ` AND ev.${NOT_HEARTBEAT}` : ""
    } AND NOT EXISTS (SELECT 1 FROM maintenance m WHERE m.site_id = ev.site_id
        AND m.starts_at <= ev.received_at AND m.ends_at > ev.received_at
        AND (m.device_id = ev.device_id OR (m.room_id IS NOT NULL AND m.room_id = ev.room_id)))`;
    const row = this.statements.get(sql).get(q.key, q.since, q.until, q.upTo, ...(concrete ?? [])) as {
      n: number;
    };
    return row.n;
  }
}

export interface EventWindowOptions {
  /**
   * How long after its receipt an event is kept: at least the longest count window and the longest
   * absence window of the rule file (`lookBack`, below), plus a margin for a timer that fires late
   * (a takeover, a restart). Older events are let go.
   */
  lookBackMs: number;
  /** The partition's maintenance windows (its state's copy). */
  maintenance: MaintenanceWindows;
  now?: () => number;
}

/**
 * The longest a rule file's conditions look back: count windows (`when.count.within`) and absence
 * windows (`raise.unless.within`, whose timer names the event that opened it). The window for a
 * partition's owner keeps at least this much.
 */
export function lookBack(rules: readonly Pick<Rule, "when" | "raise">[]): number {
  const within = (c: Condition): number =>
    Math.max(
      c.count?.within ?? 0,
      ...(c.all ?? []).map(within),
      ...(c.any ?? []).map(within),
      c.not ? within(c.not) : 0,
    );
  return Math.max(0, ...rules.map((r) => Math.max(within(r.when), r.raise?.unless?.within ?? 0)));
}

/**
 * A partition's recent events in memory, in position order. Appended in order by the partition's
 * owner (a position at or below the last held is refused: the caller's order is broken); what was
 * received more than `lookBackMs` ago is let go as newer events arrive. By receipt, not occurrence:
 * an absence timer runs from the event's receipt, and a count window ends at an occurrence no later
 * than the receipt (a device clock running ahead only keeps an event longer).
 */
export class EventWindow implements RulesEventLog {
  /** In position order. `start` skips what was let go, so trimming is not a shift per event. */
  private events: LoggedEvent[] = [];
  private start = 0;
  private readonly byDevice = new Map<string, LoggedEvent[]>();
  private readonly byResident = new Map<string, LoggedEvent[]>();
  private readonly now: () => number;
  private last = 0;

  constructor(private readonly options: EventWindowOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The last position held (0: none yet). */
  head(): number {
    return this.last;
  }

  append(events: readonly LoggedEvent[]): void {
    for (const e of events) {
      if (e.logSeq <= this.last)
        throw new Error(`event window: position ${e.logSeq} after ${this.last} is out of order`);
      this.last = e.logSeq;
      this.events.push(e);
      index(this.byDevice, e.deviceId, e);
      if (e.placement.residentRef) index(this.byResident, e.placement.residentRef, e);
    }
    this.trim();
  }

  after(position: number, limit: number): LoggedEvent[] {
    const i = this.firstAfter(position);
    return this.events.slice(i, i + limit);
  }

  get(position: number): LoggedEvent | undefined {
    const i = this.firstAfter(position - 1);
    const e = this.events[i];
    return e?.logSeq === position ? e : undefined;
  }

  count(q: EventCount): number {
    const list = (q.per === "device" ? this.byDevice : this.byResident).get(q.key);
    if (!list) return 0;
    const types = q.types ? new Set<string>(expandTypes(q.types)) : null;
    let n = 0;
    for (const e of list) {
      if (e.logSeq > q.upTo) break;
      const at = Date.parse(e.occurredAt);
      if (at < q.since || at > q.until) continue;
      if (types && !types.has(e.type)) continue;
      const p = e.placement;
      if (this.options.maintenance.inForce(p.siteId, e.deviceId, p.roomId, Date.parse(e.receivedAt)))
        continue;
      n++;
    }
    return n;
  }

  /** Events held (for status and tests). */
  size(): number {
    return this.events.length - this.start;
  }

  /** Index of the first held event after `position` (binary search over positions). */
  private firstAfter(position: number): number {
    let lo = this.start;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.logSeq <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Lets go of the oldest events received before the look-back, from the front only, which keeps
   * what is held a contiguous run of positions (so `after` never skips). The newest is always kept,
   * so `head()` and `get(head())` hold.
   */
  private trim(): void {
    const cut = this.now() - this.options.lookBackMs;
    let i = this.start;
    while (i < this.events.length - 1 && Date.parse(this.events[i]!.receivedAt) < cut) i++;
    if (i === this.start) return;
    for (let k = this.start; k < i; k++) {
      const e = this.events[k]!;
      drop(this.byDevice, e.deviceId, e);
      if (e.placement.residentRef) drop(this.byResident, e.placement.residentRef, e);
    }
    this.start = i;
    // Compact once the dead prefix is most of the array.
    if (this.start > 1024 && this.start * 2 > this.events.length) {
      this.events = this.events.slice(this.start);
      this.start = 0;
    }
  }
}

function index(map: Map<string, LoggedEvent[]>, key: string, e: LoggedEvent): void {
  const list = map.get(key);
  if (list) list.push(e);
  else map.set(key, [e]);
}

/** Removes `e`, the oldest held of its key (events go in position order). */
function drop(map: Map<string, LoggedEvent[]>, key: string, e: LoggedEvent): void {
  const list = map.get(key);
  if (!list) return;
  if (list[0] === e) list.shift();
  else {
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
  }
  if (list.length === 0) map.delete(key);
}
