/**
 * The time-saved (ATA) computation: per site, local day and unit, four categories of staff-minutes,
 * computed from the event log and the alerts (never guessed per event) and stored as points of
 * measurement `time_saved` through the TimeSeriesStore, so reports read the same numbers from
 * InfluxDB or the embedded store. docs/time-model.md states the arithmetic with a worked example.
 *
 *   night_supervision   per resident whose room has a fall sensor online the whole night:
 *                       max(0, baseline checks - physical visits) x minutes per check
 *   lift_transfers      one-helper lift cycles without fault x staff-minutes saved per transfer
 *   remote_resolution   care alerts resolved by staff without a visit x minutes per avoided visit
 *   false_alarms        attended false alarms x -minutes per false alarm (a cost)
 *
 * A day is a local calendar day in the site's time zone; the night that starts on a date belongs to
 * that date. A point's identity is (site, unit, category, model_version, day start), so computing a
 * day again overwrites it: recomputing a past range after a parameter change is safe.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../log.js";
import type { Db } from "../store/db.js";
import type { Point, TimeSeriesStore } from "../store/timeseries.js";
import { addDays, DAY, dayWindow, isDate, localDate, localDays, MINUTE, nightWindow } from "../time/zone.js";
import { Slicer } from "../util/slicer.js";
import { type AlertReads, alertReadsOf, type DayAlert, sqliteAlertReads } from "./alert-reads.js";
import type { Baseline } from "./baseline/schema.js";
import { type BaselineStore, baselineForUnit, baselineKey, baselinesInForce } from "./baseline/store.js";
import { type EventReads, eventReadsOf, sqliteEventReads, type TypedEvent } from "./event-reads.js";
import { type Params, type SiteModel, siteModel, type TimeModel } from "./model.js";
import { perResidentValue, REALISED_NEEDS, type RealisedRates, realisedRates } from "./realised.js";
import {
  type OnlineHistory,
  onlineThroughout,
  type PresenceReads,
  presenceReadsOf,
  sqlitePresenceReads,
} from "./uptime.js";

/** Potential time saved: what the technology makes possible, with the model's figures. */
export const TIME_SAVED_MEASUREMENT = "time_saved";
/** Realised time saved: what changed against the site's baseline (src/reports/realised.ts). */
export const REALISED_MEASUREMENT = "time_saved_realised";

export const CATEGORIES = [
  "night_supervision",
  "lift_transfers",
  "remote_resolution",
  "false_alarms",
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Outcomes that mean somebody was in the room, whatever else was recorded. */
const VISIT_OUTCOMES = new Set(["fall-with-injury", "fall-without-injury", "assistance-given"]);
/** Outcomes a remote resolution can have: nothing needed doing in the room. */
const REMOTE_OUTCOMES = new Set(["no-action", "false-alarm"]);
/**
 * Alerts that would have needed a visit without remote means: care alerts. Low and info priority
 * (battery, offline, tamper) are technical; counting their remote handling as saved visits would
 * flatter the figure.
 */
const CARE_PRIORITIES = new Set(["high", "medium"]);

export interface SiteInfo {
  id: string;
  timeZone: string;
  units: readonly { id: string }[];
}

/** Profile id -> its kind ("fall-sensor", ...): the gateway's profile map fits. */
export type ProfileKinds = ReadonlyMap<string, { kind: string }>;

export interface CategoryResult {
  unit: string;
  category: Category;
  minutes: number;
  count: number;
  /** Integer detail fields stored beside minutes and count. */
  ints: Record<string, number>;
  /** Float detail fields. */
  floats: Record<string, number>;
}

/** One resident-night, for tests, the worked example and debugging. */
export interface ResidentNight {
  resident: string;
  unit: string;
  sensors: string[];
  qualified: boolean;
  /** Visit instants after merging (ms). */
  visits: number[];
  checksSaved: number;
  minutes: number;
  /** The resident's night checks in the baseline, or null without a baseline measurement. */
  baselineChecks: number | null;
  /** Against that baseline; null when not measured. */
  realisedChecksSaved: number | null;
  realisedMinutes: number | null;
}

export interface DayResult {
  site: string;
  date: string;
  dayStart: number;
  modelVersion: string;
  /** False while the night that starts on this date has not ended: its saving is still 0. */
  nightComplete: boolean;
  results: CategoryResult[];
  /** Against the baselines in force; empty without any. Units without one have no rows. */
  realised: CategoryResult[];
  /** The `baseline` tag of the realised points; null without a baseline. */
  baselineKey: string | null;
  nights: ResidentNight[];
}

type AlertRow = DayAlert;

interface PresenceRow {
  room_id: string | null;
  resident_ref: string | null;
  at: number;
}

interface Statements {
  residents: import("better-sqlite3").Statement;
  devices: import("better-sqlite3").Statement;
}

const statements = new WeakMap<Db, Statements>();

function prepared(db: Db): Statements {
  let s = statements.get(db);
  if (!s) {
    s = {
      residents: db.prepare("SELECT ref, unit_id, room_id FROM residents WHERE site_id = ? ORDER BY ref"),
      devices: db.prepare(
        "SELECT id, profile, unit_id, room_id, resident_ref FROM devices WHERE site_id = ?",
      ),
    };
    statements.set(db, s);
  }
  return s;
}

export interface ComputeContext {
  db: Db;
  profiles: ProfileKinds;
  /**
   * The alerts of dayAlertRange(), read beforehand where they are not in `db` (a cluster node's are
   * in PostgreSQL); absent: read from `db`.
   */
  alerts?: readonly DayAlert[];
  /**
   * The events of dayEventRanges() (with the same alerts and `now`), read beforehand where `db` does
   * not hold them all (a cluster node's share of them); absent: read from `db`.
   */
  events?: DayEvents;
  /**
   * The online histories over the day's night of dayNightSensors(), read beforehand where `db` does
   * not hold them (a cluster node's are in the shared log); absent: read from `db`. A sensor without
   * one counts as not known online.
   */
  nightHistories?: ReadonlyMap<string, OnlineHistory>;
  /** The site's baselines in force (baselinesInForce); absent or empty: no realised figures. */
  baselines?: readonly Baseline[];
}

type Place = { room_id: string | null; resident_ref: string | null };

/**
 * Staff presses by room and by resident, so that finding the presses of one room is a lookup, not a
 * scan of the site's: the day's work stays linear in residents + alerts + presses.
 */
class PresenceIndex {
  private readonly byRoom = new Map<string, PresenceRow[]>();
  private readonly byResident = new Map<string, PresenceRow[]>();
  private readonly cache = new Map<string, PresenceRow[]>();

  constructor(rows: readonly PresenceRow[]) {
    const add = (map: Map<string, PresenceRow[]>, key: string | null, row: PresenceRow) => {
      if (key === null) return;
      const list = map.get(key);
      if (list) list.push(row);
      else map.set(key, [row]);
    };
    for (const row of rows) {
      add(this.byRoom, row.room_id, row);
      add(this.byResident, row.resident_ref, row);
    }
  }

  /** Presses in the place's room or tagged with its resident, in time order. */
  of(place: Place): readonly PresenceRow[] {
    const key = `${place.room_id ?? ""}\u0000${place.resident_ref ?? ""}`;
    let rows = this.cache.get(key);
    if (!rows) {
      const room = place.room_id !== null ? (this.byRoom.get(place.room_id) ?? []) : [];
      const resident = place.resident_ref !== null ? (this.byResident.get(place.resident_ref) ?? []) : [];
      rows = resident.length === 0 ? room : [...new Set([...room, ...resident])].sort((a, b) => a.at - b.at);
      this.cache.set(key, rows);
    }
    return rows;
  }
}

/** The first staff press in the alert's room while it was open. */
function presenceDuring(a: AlertRow, presence: PresenceIndex): number | undefined {
  const end = a.resolved_at ?? Number.POSITIVE_INFINITY;
  for (const p of presence.of(a)) {
    if (p.at < a.raised_at) continue;
    if (p.at > end) break;
    return p.at;
  }
  return undefined;
}

/**
 * When somebody was physically in the room for an alert, or null when nobody was: attending, an
 * outcome that needs hands (a fall, assistance), or a staff press in the room while it was open.
 * Accepted and then cancelled, or accepted and still open, counts as a visit at acceptance: the
 * conservative reading (an open alert is computed again once it closes).
 */
function visitOf(a: AlertRow, presence: PresenceIndex): number | null {
  const pressed = presenceDuring(a, presence);
  if (a.attending_at !== null) return a.attending_at;
  if (pressed !== undefined) return pressed;
  if (a.outcome !== null && VISIT_OUTCOMES.has(a.outcome))
    return a.accepted_at ?? a.resolved_at ?? a.raised_at;
  if (a.accepted_at !== null && a.state !== "resolved") return a.accepted_at;
  return null;
}

function isRemoteResolution(a: AlertRow, visit: number | null): boolean {
  return (
    visit === null &&
    a.state === "resolved" &&
    a.outcome !== null &&
    REMOTE_OUTCOMES.has(a.outcome) &&
    CARE_PRIORITIES.has(a.priority) &&
    // Resolved by a person: an alert a rule closed (bed.return) saved nobody a decision.
    (a.resolved_by?.startsWith("staff:") ?? false)
  );
}

function isAttendedFalseAlarm(a: AlertRow, visit: number | null): boolean {
  return visit !== null && a.state === "resolved" && a.outcome === "false-alarm";
}

/** Merges instants closer than `windowMs` to the start of the current visit. */
function mergeVisits(instants: number[], windowMs: number): number[] {
  const sorted = [...instants].sort((x, y) => x - y);
  const visits: number[] = [];
  for (const t of sorted) {
    const last = visits[visits.length - 1];
    if (last === undefined || t - last > windowMs) visits.push(t);
  }
  return visits;
}

/** The raise times [from, to) of the alerts computeDay reads for a local day of a site. */
export function dayAlertRange(site: SiteInfo, sm: SiteModel, date: string): [number, number] {
  const [dayStart, dayEnd] = dayWindow(date, site.timeZone);
  const [nightStart, nightEnd] = nightWindow(date, sm.params.nightStart, sm.params.nightEnd, site.timeZone);
  // Alerts raised up to two days before the night still matter for visits in it.
  return [Math.min(dayStart, nightStart) - 2 * DAY, Math.max(dayEnd, nightEnd)];
}

/** The event types computeDay reads, each over its range of occurred_at. */
export interface DayEvents {
  /** Staff presses (staff.presence), for visits. */
  presence: readonly TypedEvent[];
  /** Lift cycles (lift.cycle) that ended on the day. */
  liftCycles: readonly TypedEvent[];
}

export type DayEventRanges = { [K in keyof DayEvents]: { type: string; from: number; to: number } };

/**
 * The occurred_at ranges [from, to) of the events computeDay reads for a local day of a site, given
 * the alerts of dayAlertRange() and the instant it computes at (an open alert's presses count up to it).
 */
export function dayEventRanges(
  site: SiteInfo,
  sm: SiteModel,
  date: string,
  alerts: readonly DayAlert[],
  now: number,
): DayEventRanges {
  const [dayStart, dayEnd] = dayWindow(date, site.timeZone);
  const [, nightEnd] = nightWindow(date, sm.params.nightStart, sm.params.nightEnd, site.timeZone);
  const [alertFrom] = dayAlertRange(site, sm, date);
  let presenceTo = Math.max(dayEnd, nightEnd);
  for (const a of alerts) presenceTo = Math.max(presenceTo, a.resolved_at ?? now);
  return {
    presence: { type: "staff.presence", from: alertFrom, to: presenceTo + 1 },
    liftCycles: { type: "lift.cycle", from: dayStart, to: dayEnd },
  };
}

/**
 * The fall sensors whose online history computeDay reads for night supervision, and the night
 * [from, to) it reads it over; none before the night has ended (the day is not final then).
 */
export function dayNightSensors(
  ctx: Pick<ComputeContext, "db" | "profiles">,
  site: SiteInfo,
  sm: SiteModel,
  date: string,
  now: number,
): { ids: string[]; from: number; to: number } {
  const [from, to] = nightWindow(date, sm.params.nightStart, sm.params.nightEnd, site.timeZone);
  if (to > now) return { ids: [], from, to };
  const devices = prepared(ctx.db).devices.all(site.id) as { id: string; profile: string }[];
  return {
    ids: devices.filter((d) => ctx.profiles.get(d.profile)?.kind === "fall-sensor").map((d) => d.id),
    from,
    to,
  };
}

/** Computes one local day of one site. Pure over the database: writes nothing. */
export function computeDay(
  ctx: ComputeContext,
  site: SiteInfo,
  sm: SiteModel,
  date: string,
  now: number,
): DayResult {
  const steps = computeDaySteps(ctx, site, sm, date, now);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Residents between two pauses of computeDaySteps: a few ms of queries at most. */
const RESIDENTS_PER_STEP = 50;

/**
 * computeDay in steps: it pauses (yields) between groups of residents, so the periodic job can hand
 * the event loop back to ingest and staff sockets in between. A day of a 5,000-bed site is tens of
 * milliseconds of queries; in one piece it would hold up a fall arriving meanwhile.
 */
export function* computeDaySteps(
  ctx: ComputeContext,
  site: SiteInfo,
  sm: SiteModel,
  date: string,
  now: number,
): Generator<void, DayResult, void> {
  const { db, profiles } = ctx;
  const p: Params = sm.params;
  const s = prepared(db);
  const tz = site.timeZone;
  const [dayStart, dayEnd] = dayWindow(date, tz);
  const [nightStart, nightEnd] = nightWindow(date, p.nightStart, p.nightEnd, tz);
  const nightComplete = nightEnd <= now;

  const results = new Map<string, CategoryResult>();
  const bucket = (unit: string, category: Category): CategoryResult => {
    const key = `${unit}\u0000${category}`;
    let r = results.get(key);
    if (!r) {
      r = { unit, category, minutes: 0, count: 0, ints: {}, floats: {} };
      results.set(key, r);
    }
    return r;
  };
  // Realised: per unit with a baseline, the categories its baseline measured.
  const baselines = ctx.baselines ?? [];
  const realisedOf = new Map<string, { baseline: Baseline; rates: RealisedRates }>();
  const realisedResults = new Map<string, CategoryResult>();
  const realisedBucket = (unit: string, category: Category): CategoryResult | undefined => {
    const r = realisedOf.get(unit);
    if (!r || r.baseline.measurements[REALISED_NEEDS[category]] === undefined) return undefined;
    const key = `${unit}\u0000${category}`;
    let c = realisedResults.get(key);
    if (!c) {
      c = { unit, category, minutes: 0, count: 0, ints: {}, floats: {} };
      realisedResults.set(key, c);
    }
    return c;
  };
  for (const u of site.units) {
    const baseline = baselineForUnit(baselines, u.id);
    if (baseline) realisedOf.set(u.id, { baseline, rates: realisedRates(baseline, sm) });
    const n = realisedBucket(u.id, "night_supervision");
    if (n) {
      n.ints = {
        eligible: 0,
        visits: 0,
        placeholder: realisedOf.get(u.id)!.rates.nightCheckPlaceholder ? 1 : 0,
      };
      n.floats = { checks_saved: 0, baseline_checks: 0 };
    }
    const l = realisedBucket(u.id, "lift_transfers");
    if (l) {
      l.ints = { one_helper: 0 };
      l.floats = { two_helper_share: 0 };
    }
    realisedBucket(u.id, "remote_resolution");
    const f = realisedBucket(u.id, "false_alarms");
    if (f) f.ints = { placeholder: realisedOf.get(u.id)!.rates.falseAlarmPlaceholder ? 1 : 0 };
    bucket(u.id, "night_supervision").ints = { eligible: 0, visits: 0 };
    bucket(u.id, "night_supervision").floats = { checks_saved: 0 };
    bucket(u.id, "lift_transfers").ints = { two_helper: 0, faults: 0 };
    bucket(u.id, "remote_resolution");
    bucket(u.id, "false_alarms");
  }

  const [alertFrom, alertTo] = dayAlertRange(site, sm, date);
  const alerts = ctx.alerts ?? sqliteAlertReads(db).dayAlertsNow(site.id, alertFrom, alertTo);
  const ranges = dayEventRanges(site, sm, date, alerts, now);
  const eventsOf = (k: keyof DayEvents): readonly TypedEvent[] =>
    ctx.events?.[k] ??
    sqliteEventReads(db).eventsOfTypeNow(site.id, ranges[k].type, ranges[k].from, ranges[k].to);
  const presence = new PresenceIndex(
    eventsOf("presence").map(
      (r): PresenceRow => ({ room_id: r.room_id, resident_ref: r.resident_ref, at: r.at }),
    ),
  );
  const visits = new Map<AlertRow, number | null>();
  for (const a of alerts) visits.set(a, visitOf(a, presence));

  // Remote resolution and false alarms: alerts raised on this day.
  for (const a of alerts) {
    if (a.raised_at < dayStart || a.raised_at >= dayEnd) continue;
    const visit = visits.get(a)!;
    if (isRemoteResolution(a, visit)) {
      const r = bucket(a.unit_id, "remote_resolution");
      r.count++;
      r.minutes += p.minutesPerAvoidedVisit;
      const real = realisedBucket(a.unit_id, "remote_resolution");
      if (real) {
        real.count++;
        real.minutes += realisedOf.get(a.unit_id)!.rates.minutesPerAlarm!;
      }
    } else if (isAttendedFalseAlarm(a, visit)) {
      const r = bucket(a.unit_id, "false_alarms");
      r.count++;
      r.minutes -= p.minutesPerFalseAlarm;
      const real = realisedBucket(a.unit_id, "false_alarms");
      if (real) {
        real.count++;
        real.minutes -= realisedOf.get(a.unit_id)!.rates.minutesPerFalseAlarm;
      }
    }
  }

  // Lift transfers: cycles that ended on this day.
  for (const c of eventsOf("liftCycles")) {
    const data = JSON.parse(c.data) as { helpers?: number; fault?: string };
    const r = bucket(c.unit_id, "lift_transfers");
    r.ints.two_helper ??= 0;
    r.ints.faults ??= 0;
    if (data.fault) r.ints.faults++;
    else if (data.helpers === 1) {
      r.count++;
      r.minutes += p.liftMinutesSavedPerTransfer;
      const real = realisedBucket(c.unit_id, "lift_transfers");
      if (real) {
        const { baseline, rates } = realisedOf.get(c.unit_id)!;
        const share = perResidentValue(
          baseline.measurements.twoHelperTransferShare,
          c.resident_ref,
          c.room_id,
        )!;
        real.ints.one_helper! += 1;
        real.floats.two_helper_share! += share;
        // Counted where the baseline had two helpers for this resident at all; credited by its share.
        if (share > 0) real.count++;
        real.minutes += share * rates.liftMinutesSaved;
      }
    } else if ((data.helpers ?? 0) >= 2) r.ints.two_helper++;
  }

  // Night supervision: residents whose room has a fall sensor.
  const devices = s.devices.all(site.id) as {
    id: string;
    profile: string;
    room_id: string | null;
    resident_ref: string | null;
  }[];
  const fallSensors = devices.filter((d) => profiles.get(d.profile)?.kind === "fall-sensor");
  // A resident's sensors: those naming the resident, and those in the resident's room.
  const order = new Map(fallSensors.map((d, i) => [d, i]));
  const sensorsByResident = new Map<string, typeof fallSensors>();
  const sensorsByRoom = new Map<string, typeof fallSensors>();
  for (const d of fallSensors) {
    for (const [map, key] of [
      [sensorsByResident, d.resident_ref],
      [sensorsByRoom, d.room_id],
    ] as const) {
      if (key === null) continue;
      const list = map.get(key);
      if (list) list.push(d);
      else map.set(key, [d]);
    }
  }
  const residents = s.residents.all(site.id) as { ref: string; unit_id: string; room_id: string | null }[];
  const nights: ResidentNight[] = [];
  const mergeMs = p.visitMergeMinutes * MINUTE;
  // Alerts by the resident they name, or by room when they name none.
  const alertsOf = new Map<string, AlertRow[]>();
  for (const a of alerts) {
    const key =
      a.resident_ref !== null
        ? `r\u0000${a.resident_ref}`
        : a.room_id !== null
          ? `p\u0000${a.room_id}`
          : null;
    if (key === null) continue;
    const list = alertsOf.get(key);
    if (list) list.push(a);
    else alertsOf.set(key, [a]);
  }
  let done = 0;
  for (const res of residents) {
    if (++done % RESIDENTS_PER_STEP === 0) yield;
    const byRoom = res.room_id !== null ? (sensorsByRoom.get(res.room_id) ?? []) : [];
    const byRef = sensorsByResident.get(res.ref) ?? [];
    // In the order of the devices query, once each (a sensor can name the resident and be in the room).
    const sensors =
      byRoom.length === 0
        ? byRef
        : byRef.length === 0
          ? byRoom
          : [...new Set([...byRef, ...byRoom])].sort((a, b) => order.get(a)! - order.get(b)!);
    if (sensors.length === 0) continue;
    const r = bucket(res.unit_id, "night_supervision");
    r.ints.eligible = (r.ints.eligible ?? 0) + 1;
    r.ints.visits ??= 0;
    r.floats.checks_saved ??= 0;
    if (!nightComplete) continue;
    const qualified = sensors.some((d) => {
      const h = ctx.nightHistories
        ? ctx.nightHistories.get(d.id)
        : sqlitePresenceReads(db).onlineHistoryNow(d.id, nightStart, nightEnd);
      return h !== undefined && onlineThroughout(h);
    });
    const realisedNight = realisedBucket(res.unit_id, "night_supervision");
    const baselineChecks = realisedNight
      ? perResidentValue(
          realisedOf.get(res.unit_id)!.baseline.measurements.nightChecksPerResident,
          res.ref,
          res.room_id,
        )!
      : null;
    if (realisedNight) realisedNight.ints.eligible! += 1;
    const night: ResidentNight = {
      resident: res.ref,
      unit: res.unit_id,
      sensors: sensors.map((d) => d.id),
      qualified,
      visits: [],
      checksSaved: 0,
      minutes: 0,
      baselineChecks,
      realisedChecksSaved: null,
      realisedMinutes: null,
    };
    nights.push(night);
    if (!qualified) continue;
    const mine = [
      ...(alertsOf.get(`r\u0000${res.ref}`) ?? []),
      ...(res.room_id !== null ? (alertsOf.get(`p\u0000${res.room_id}`) ?? []) : []),
    ];
    // False alarms that were attended are costed in their own category: their visit is not
    // subtracted from the night checks a second time.
    const excluded = mine.filter((a) => isAttendedFalseAlarm(a, visits.get(a)!));
    const instants: number[] = [];
    for (const pr of presence.of({ room_id: res.room_id, resident_ref: res.ref })) {
      if (pr.at < nightStart || pr.at >= nightEnd) continue;
      if (excluded.some((a) => pr.at >= a.raised_at && pr.at <= (a.resolved_at ?? now))) continue;
      instants.push(pr.at);
    }
    for (const a of mine) {
      const at = visits.get(a)!;
      if (at === null || a.outcome === "false-alarm") continue;
      if (at >= nightStart && at < nightEnd) instants.push(at);
    }
    night.visits = mergeVisits(instants, mergeMs);
    night.checksSaved = Math.max(0, p.nightChecksPerResident - night.visits.length);
    night.minutes = night.checksSaved * p.minutesPerNightCheck;
    r.count++;
    r.ints.visits += night.visits.length;
    r.floats.checks_saved! += night.checksSaved;
    r.minutes += night.minutes;
    if (realisedNight && baselineChecks !== null) {
      night.realisedChecksSaved = Math.max(0, baselineChecks - night.visits.length);
      night.realisedMinutes =
        night.realisedChecksSaved * realisedOf.get(res.unit_id)!.rates.minutesPerNightCheck;
      // A resident-night counts where the baseline had night checks for the resident.
      if (baselineChecks > 0) realisedNight.count++;
      realisedNight.ints.visits! += night.visits.length;
      realisedNight.floats.checks_saved! += night.realisedChecksSaved;
      realisedNight.floats.baseline_checks! += baselineChecks;
      realisedNight.minutes += night.realisedMinutes;
    }
  }

  const byUnitAndCategory = (a: CategoryResult, b: CategoryResult) =>
    (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0) ||
    CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category);
  return {
    site: site.id,
    date,
    dayStart,
    modelVersion: sm.modelVersion,
    nightComplete,
    results: [...results.values()].sort(byUnitAndCategory),
    realised: [...realisedResults.values()].sort(byUnitAndCategory),
    baselineKey: baselineKey(baselines),
    nights,
  };
}

/**
 * A computed day as points, at the day's local midnight: potential, one per unit x category; and
 * realised, one per unit x category its baseline measured, tagged with the baseline key.
 */
export function dayPoints(day: DayResult): Point[] {
  const timeNs = BigInt(day.dayStart) * 1_000_000n;
  const point = (measurement: string, r: CategoryResult, extra: Record<string, string>): Point => ({
    measurement,
    tags: { site: day.site, unit: r.unit, category: r.category, model_version: day.modelVersion, ...extra },
    fields: { minutes: r.minutes, count: r.count, ...r.ints, ...r.floats },
    ints: ["count", ...Object.keys(r.ints)],
    timeNs,
  });
  const points = day.results.map((r) => point(TIME_SAVED_MEASUREMENT, r, {}));
  if (day.baselineKey !== null)
    for (const r of day.realised) points.push(point(REALISED_MEASUREMENT, r, { baseline: day.baselineKey }));
  return points;
}

// ---------------------------------------------------------------------------------------------
// The periodic job

/** One run at a time across processes that share the time-series store (a cluster's nodes). */
export interface JobLock {
  /** Runs work holding the lock; without `wait`, gives up at once when another holds it. */
  run<T>(
    work: () => Promise<T>,
    opts?: { wait?: boolean },
  ): Promise<{ ran: true; value: T } | { ran: false }>;
}

export interface TimeSavedJobContext {
  db: Db;
  /** Where alerts are read; absent: `db` (a cluster node passes PostgreSQL's). */
  alertReads?: AlertReads;
  /**
   * Where events are read; absent: `db` (a cluster node passes PostgreSQL's shared log). Days that
   * reach before its `keptFrom` are not computed: their points, if any, stay as written.
   */
  eventReads?: EventReads;
  /** Where fall sensors' online history is read; absent: `db` (a cluster node passes the shared log's). */
  presenceReads?: PresenceReads;
  /** Absent: runs are only kept apart within this process (one process, one store). */
  lock?: JobLock;
  store: TimeSeriesStore;
  model: TimeModel;
  sites: readonly SiteInfo[];
  /** Profile id -> kind; the gateway's `profiles` map. Fall sensors are kind "fall-sensor". */
  profiles: ProfileKinds;
  /** Where sites' baselines are; without it only potential time is computed. */
  baselineStore?: BaselineStore;
  log?: Logger;
  now?: () => number;
  /** How often yesterday and today are recomputed; default 10 minutes. */
  intervalMs?: number;
  /**
   * On start, and when a site's baseline changes, days this far back that have no points of the
   * current model version (and baseline) are computed: after a restart, an outage of the store, a
   * parameter change or a new baseline. Default 400: this quarter, the previous one and a baseline
   * period up to a year back. Older ranges: recompute().
   */
  backfillDays?: number;
}

export interface RunSummary {
  site: string;
  from: string;
  to: string;
  days: number;
  points: number;
  ms: number;
}

/**
 * Emits "computed" (RunSummary) after each site's range is written and "error" ({site, error})
 * when one fails; a failed range is retried by the next run.
 */
export class TimeSavedJob extends EventEmitter {
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  /** Site -> the earliest date a failed run did not write. */
  private readonly retryFrom = new Map<string, string>();
  private running = false;
  /** Set by start(); stays set while the backfill could not ask the store what is missing. */
  private backfillPending = false;
  /** Site -> the baseline key its history was last brought up to. */
  private readonly keys = new Map<string, string | null>();
  lastError: Error | undefined;

  constructor(private readonly ctx: TimeSavedJobContext) {
    super();
    this.now = ctx.now ?? Date.now;
  }

  /** Arms the timer and queues the first run, with the backfill; does not wait for them. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.backfillPending = true;
    // Not awaited: a run that fails (a full disk) must be logged, not become an unhandled
    // rejection, which ends the process. Failed ranges are retried by the next run.
    const background = () =>
      this.enqueue(() => this.run()).catch((err: Error) =>
        this.ctx.log?.error({ err: err.message }, "time-saved run failed; the next run retries"),
      );
    void background();
    this.timer = setInterval(
      () => {
        void background();
      },
      this.ctx.intervalMs ?? 10 * MINUTE,
    );
    this.timer.unref();
  }

  /** Stops the timer and waits for the work in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** Resolves when every queued run has finished. */
  async idle(): Promise<void> {
    for (;;) {
      const current = this.chain;
      await current.catch(() => undefined);
      if (current === this.chain) return;
    }
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(work);
    this.chain = next;
    return next;
  }

  /**
   * Yesterday and today so far (plus anything a failed run left) for every site. With a lock held by
   * another process (another node's run), this run is skipped: that one writes the same days.
   */
  runOnce(): Promise<RunSummary[]> {
    return this.enqueue(() => this.run());
  }

  private async run(): Promise<RunSummary[]> {
    if (!this.ctx.lock) return this.runLocked();
    const r = await this.ctx.lock.run(() => this.runLocked());
    if (r.ran) return r.value;
    this.ctx.log?.debug("time-saved run skipped: another node is running it");
    this.emit("skipped");
    return [];
  }

  private async runLocked(): Promise<RunSummary[]> {
    // A baseline saved since the last run (through the API, or `ata baseline set` from another
    // process) changes which history is current: fill it in.
    if (
      this.ctx.sites.some((site) => this.keys.has(site.id) && this.keys.get(site.id) !== this.keyOf(site.id))
    )
      this.backfillPending = true;
    if (this.backfillPending) await this.backfill();
    const out: RunSummary[] = [];
    for (const site of this.ctx.sites) {
      const today = localDate(this.now(), site.timeZone);
      let from = addDays(today, -1);
      const retry = this.retryFrom.get(site.id);
      if (retry !== undefined && retry < from) from = retry;
      const summary = await this.computeRange(site, from, addDays(today, 1));
      if (summary) out.push(summary);
    }
    return out;
  }

  /**
   * Computes and stores local dates [from, to) of a site again: after a parameter change, a late
   * correction of alerts, or to fill history. Dates are "YYYY-MM-DD" or instants (the local dates
   * whose day starts in [from, to)).
   */
  recompute(siteId: string, from: string | Date, to: string | Date): Promise<RunSummary> {
    return this.enqueue(async () => {
      const site = this.ctx.sites.find((s) => s.id === siteId);
      if (!site) throw new Error(`unknown site "${siteId}"`);
      const [fromDate, toDate] = toDates(from, to, site.timeZone);
      // Asked for: waits for another node's run rather than skipping.
      const compute = () => this.computeRange(site, fromDate, toDate, true);
      const r = this.ctx.lock
        ? await this.ctx.lock.run(compute, { wait: true })
        : { ran: true, value: await compute() };
      const summary = r.ran ? r.value : undefined;
      return summary ?? { site: siteId, from: fromDate, to: toDate, days: 0, points: 0, ms: 0 };
    });
  }

  private inForce(siteId: string): Baseline[] {
    return this.ctx.baselineStore ? baselinesInForce(this.ctx.baselineStore, siteId) : [];
  }

  private keyOf(siteId: string): string | null {
    return baselineKey(this.inForce(siteId));
  }

  /** Local dates in [fromMs, toMs) with no point of `measurement` matching `where`. */
  private async missingDays(
    site: SiteInfo,
    measurement: string,
    where: Record<string, string>,
    fromMs: number,
    toMs: number,
  ): Promise<string[]> {
    const rows = await this.ctx.store.aggregate({
      measurement,
      field: "count",
      fn: "count",
      from: new Date(fromMs),
      to: new Date(toMs),
      where,
      interval: "1d",
      timeZone: site.timeZone,
    });
    const present = new Set(rows.map((r) => localDate(r.time!.getTime(), site.timeZone)));
    return localDays(fromMs, toMs, site.timeZone).filter((d) => !present.has(d));
  }

  /** Days in the backfill window without points of the current model version (and baseline). */
  private async backfill(): Promise<void> {
    const days = this.ctx.backfillDays ?? 400;
    this.backfillPending = false;
    for (const site of this.ctx.sites) {
      try {
        const sm = siteModel(this.ctx.model, site.id);
        const inForce = this.inForce(site.id);
        const key = baselineKey(inForce);
        const today = localDate(this.now(), site.timeZone);
        const first = await this.firstActivity(site.id);
        if (first === undefined) continue;
        let from = addDays(today, -days);
        const firstDate = localDate(first, site.timeZone);
        if (firstDate > from) from = firstDate;
        const [fromMs] = dayWindow(from, site.timeZone);
        const [toMs] = dayWindow(addDays(today, -1), site.timeZone);
        if (fromMs >= toMs) {
          this.keys.set(site.id, key);
          continue;
        }
        const where = { site: site.id, model_version: sm.modelVersion };
        const missingSet = new Set(await this.missingDays(site, TIME_SAVED_MEASUREMENT, where, fromMs, toMs));
        // Realised points exist where a baseline measured something a category needs.
        const measuresAny = inForce.some((b) =>
          Object.values(REALISED_NEEDS).some((k) => b.measurements[k] !== undefined),
        );
        if (key !== null && measuresAny)
          for (const d of await this.missingDays(
            site,
            REALISED_MEASUREMENT,
            { ...where, baseline: key },
            fromMs,
            toMs,
          ))
            missingSet.add(d);
        // Days past the event log's retention (a cluster's) would be skipped by computeRange anyway;
        // left out here, they do not split the ranges. They stay missing, and are asked about again
        // only on the next backfill (start, a new baseline), which skips them again.
        const now = this.now();
        const missing = [...missingSet].filter((d) => this.eventsKept(site, sm, d, now)).sort();
        // Contiguous runs, so a long gap is one range with one write per batch of days.
        let start: string | undefined;
        let prev: string | undefined;
        for (const d of [...missing, undefined]) {
          if (d !== undefined && prev !== undefined && addDays(prev, 1) === d) {
            prev = d;
            continue;
          }
          if (start !== undefined && prev !== undefined)
            await this.computeRange(site, start, addDays(prev, 1));
          start = d;
          prev = d;
        }
        this.keys.set(site.id, key);
      } catch (err) {
        // The store did not answer which days are missing (a range that failed to write is retried
        // through retryFrom instead): ask again on the next run.
        this.backfillPending = true;
        this.fail(site.id, undefined, err as Error);
      }
    }
  }

  /** The earliest event or alert of a site (index seeks), or undefined for a site with neither. */
  private async firstActivity(siteId: string): Promise<number | undefined> {
    const e = await eventReadsOf(this.ctx).firstEventAt(siteId);
    const a = await alertReadsOf(this.ctx).firstRaisedAt(siteId);
    const ts = [e ?? null, a ?? null].filter((t): t is number => t !== null);
    return ts.length ? Math.min(...ts) : undefined;
  }

  /**
   * Whether the event log still holds everything the day's computation reads (from two days before
   * its night: dayAlertRange); always on SQLite, within the retention on PostgreSQL.
   */
  private eventsKept(site: SiteInfo, sm: SiteModel, date: string, now: number): boolean {
    return dayAlertRange(site, sm, date)[0] >= eventReadsOf(this.ctx).keptFrom(now);
  }

  private fail(siteId: string, from: string | undefined, error: Error): void {
    this.lastError = error;
    if (from !== undefined) {
      const prev = this.retryFrom.get(siteId);
      if (prev === undefined || from < prev) this.retryFrom.set(siteId, from);
    }
    this.ctx.log?.warn(
      { site: siteId, from, err: error.message },
      "time-saved computation failed; will retry",
    );
    if (this.listenerCount("error") > 0) this.emit("error", { site: siteId, error });
  }

  private async computeRange(
    site: SiteInfo,
    from: string,
    to: string,
    rethrow = false,
  ): Promise<RunSummary | undefined> {
    const t0 = performance.now();
    const sm = siteModel(this.ctx.model, site.id);
    const compute = { db: this.ctx.db, profiles: this.ctx.profiles, baselines: this.inForce(site.id) };
    let points: Point[] = [];
    let written = 0;
    let days = 0;
    try {
      for (let date = from; date < to; date = addDays(date, 1)) {
        const now = this.now();
        if (!this.eventsKept(site, sm, date, now)) {
          // A day computed without its events would be written as empty: leave what is there.
          this.ctx.log?.debug(
            { site: site.id, date },
            "time-saved day skipped: its events are past the log's retention",
          );
          continue;
        }
        // Read here, where they can be awaited: on a cluster node they are in PostgreSQL.
        const [alertFrom, alertTo] = dayAlertRange(site, sm, date);
        const alerts = await alertReadsOf(this.ctx).dayAlerts(site.id, alertFrom, alertTo);
        const ranges = dayEventRanges(site, sm, date, alerts, now);
        const reads = eventReadsOf(this.ctx);
        const read = (k: keyof DayEvents) =>
          reads.eventsOfType(site.id, ranges[k].type, ranges[k].from, ranges[k].to);
        const events: DayEvents = { presence: await read("presence"), liftCycles: await read("liftCycles") };
        const night = dayNightSensors(compute, site, sm, date, now);
        const nightHistories = await presenceReadsOf(this.ctx).onlineHistories(
          night.ids,
          night.from,
          night.to,
        );
        const day = await sliced(
          computeDaySteps({ ...compute, alerts, events, nightHistories }, site, sm, date, now),
        );
        points.push(...dayPoints(day));
        days++;
        if (points.length >= 2000) {
          await this.ctx.store.write(points);
          written += points.length;
          points = [];
        }
        // better-sqlite3 is synchronous: let ingest and HTTP in between days of a long range.
        await new Promise((r) => setImmediate(r));
      }
      if (points.length > 0) await this.ctx.store.write(points);
      written += points.length;
    } catch (err) {
      this.fail(site.id, from, err as Error);
      if (rethrow) throw err;
      return undefined;
    }
    const retry = this.retryFrom.get(site.id);
    if (retry !== undefined && retry >= from) this.retryFrom.delete(site.id);
    const summary = { site: site.id, from, to, days, points: written, ms: performance.now() - t0 };
    this.ctx.log?.debug(summary, "time saved computed");
    this.emit("computed", summary);
    return summary;
  }
}

/** Runs a stepwise computation, handing the event loop back every few milliseconds. */
async function sliced<T>(steps: Generator<void, T, void>): Promise<T> {
  const slicer = new Slicer();
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await slicer.pause();
  }
}

function toDates(from: string | Date, to: string | Date, tz: string): [string, string] {
  const one = (v: string | Date, name: string): string => {
    if (typeof v === "string") {
      if (isDate(v)) return v;
      const ms = Date.parse(v);
      if (Number.isNaN(ms)) throw new Error(`${name} is neither a date (YYYY-MM-DD) nor an instant`);
      v = new Date(ms);
    }
    // An instant: the first local date whose day starts at or after it.
    const date = localDate(v.getTime(), tz);
    return dayWindow(date, tz)[0] < v.getTime() ? addDays(date, 1) : date;
  };
  return [one(from, "from"), one(to, "to")];
}
