/**
 * Quality and work environment beside time saved (docs/reports-api.md "quality"): falls and falls
 * with injury per 1,000 bed-days, time on the floor after a fall, the weekly median time to accept,
 * false alarms per resident-night, and lift cycles with the share done by one helper.
 *
 * Every figure carries `n` (what it was computed from), the `minimum` it needs and `enough`; below
 * the minimum its value is null and `note` says "for lidt data", because a rate from a handful of
 * bed-days or a median of two falls would be read as a fact about the home.
 *
 * Bed-days: the residents registered for the site (or the unit) times the local days of the range.
 * The register has no admission or discharge dates, so a resident counts for every day of the range.
 */
import type { Outcome } from "../alerts/model.js";
import { addDays, localDate, localDays, startOfLocalDay, startOfLocalWeek } from "../time/zone.js";
import { eventReadsOf } from "./event-reads.js";
import {
  type Cell,
  percentile,
  type RangeOf,
  type ReportContext,
  rangeView,
  type Scope,
  scopedAlerts,
  type Table,
} from "./queries.js";

/**
 * The least data each figure needs, in one place. The reasons are arithmetic, not a standard:
 * - rates per 1,000 bed-days: 300 bed-days (ten residents for a month); one fall then moves the rate
 *   by at most 1000/300 = 3.3, where with 30 bed-days one fall would read as 33 per 1,000;
 * - false alarms per resident-night: 100 resident-nights; one alarm moves the figure by at most 0.01;
 * - time on the floor: 5 attended falls for the median (fewer and one long wait is the median);
 *   its p90 needs 10, because below that the nearest-rank p90 is just the longest wait;
 * - the weekly median time to accept: 5 accepted alerts in the week, as for the floor time;
 * - the share of lift cycles with one helper: 20 cycles, so one cycle moves it by at most 5 points.
 */
export const QUALITY_MINIMUMS = {
  bedDays: 300,
  residentNights: 100,
  floorTimeFalls: 5,
  floorTimeP90Falls: 10,
  weeklyAccepts: 5,
  liftCycles: 20,
} as const;

/** Outcomes that mean staff found a resident who had fallen (a false alarm is not a fall). */
export const FALL_OUTCOMES: readonly Outcome[] = ["fall-without-injury", "fall-with-injury"];
export const INJURY_OUTCOMES: readonly Outcome[] = ["fall-with-injury"];
/** False alarms of care alerts only: low and info priority are technical (battery, offline, tamper). */
const CARE_PRIORITIES = new Set(["high", "medium"]);

export const TOO_LITTLE = { da: "for lidt data", en: "too little data" } as const;

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

interface Figure {
  n: number;
  minimum: number;
  enough: boolean;
  note: typeof TOO_LITTLE | null;
}
const figure = (n: number, minimum: number): Figure => ({
  n,
  minimum,
  enough: n >= minimum,
  note: n >= minimum ? null : TOO_LITTLE,
});

interface QualityAlert {
  type: string;
  priority: string;
  state: string;
  outcome: string | null;
  raised_at: number;
  accepted_at: number | null;
  attending_at: number | null;
  occurred_at: number | null;
}

export async function qualityReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  let residents = 0;
  let bedDays = 0;
  let falls = 0;
  let injuries = 0;
  let unattendedFalls = 0;
  let falseAlarms = 0;
  const floor: number[] = [];
  const weeks = new Map<string, number[]>();
  const lift = { cycles: 0, oneHelper: 0, twoHelper: 0, faults: 0 };
  let liftDevices = 0;

  for (const site of scope.sites) {
    const range = rangeOf(site);
    const tz = site.timeZone;
    const unitSql = scope.units ? ` AND unit_id IN (${scope.units.map(() => "?").join(", ")})` : "";
    const unitArgs = scope.units ?? [];
    const count = (
      ctx.db
        .prepare(`SELECT COUNT(*) AS n FROM residents WHERE site_id = ?${unitSql}`)
        .get(site.id, ...unitArgs) as {
        n: number;
      }
    ).n;
    residents += count;
    bedDays += count * localDays(range.from, range.to, tz).length;
    // Every week the range touches, so a week with no accepted alert shows as too little data.
    for (let w = startOfLocalWeek(range.from, tz); w < range.to; ) {
      const date = localDate(w, tz);
      if (!weeks.has(date)) weeks.set(date, []);
      w = startOfLocalDay(addDays(date, 7), tz);
    }

    // Detection: the first event's occurredAt when it is before the raise (the sensor saw the fall
    // before the gateway raised it), else the raise.
    for await (const row of scopedAlerts(ctx, scope, site, range, { firstEventAt: true })) {
      const a: QualityAlert = { ...row, occurred_at: row.first_event_at ?? null };
      if (a.accepted_at !== null) {
        weeks.get(localDate(startOfLocalWeek(a.raised_at, tz), tz))!.push(a.accepted_at - a.raised_at);
      }
      if (a.state !== "resolved" || a.outcome === null) continue;
      if (FALL_OUTCOMES.includes(a.outcome as Outcome)) {
        falls++;
        if (INJURY_OUTCOMES.includes(a.outcome as Outcome)) injuries++;
        const detected = a.occurred_at !== null ? Math.min(a.occurred_at, a.raised_at) : a.raised_at;
        if (a.attending_at !== null) floor.push(a.attending_at - detected);
        else unattendedFalls++;
      } else if (a.outcome === "false-alarm" && CARE_PRIORITIES.has(a.priority)) falseAlarms++;
    }

    const lifts = liftProfiles(ctx);
    if (lifts.length > 0)
      liftDevices += (
        ctx.db
          .prepare(
            `SELECT COUNT(*) AS n FROM devices WHERE site_id = ? AND profile IN (${lifts.map(() => "?").join(", ")})${unitSql}`,
          )
          .get(site.id, ...lifts, ...unitArgs) as { n: number }
      ).n;
    // On a cluster node from the shared log: its own SQLite holds only what it ingested.
    const c = await eventReadsOf(ctx).liftCycleCounts(site.id, range.from, range.to, scope.units);
    lift.cycles += c.cycles;
    lift.faults += c.faults;
    lift.oneHelper += c.oneHelper;
    lift.twoHelper += c.twoHelper;
  }

  const M = QUALITY_MINIMUMS;
  const perThousand = (events: number) => {
    const f = figure(bedDays, M.bedDays);
    return { ...f, events, per1000BedDays: f.enough ? round((events / bedDays) * 1000, 2) : null };
  };
  const residentNights = bedDays; // one night per resident per local day of the range
  floor.sort((a, b) => a - b);
  const floorFig = figure(floor.length, M.floorTimeFalls);
  const p90 = percentile(floor, 0.9);
  const median = percentile(floor, 0.5);
  const helped = lift.oneHelper + lift.twoHelper;
  const liftFig = figure(helped, M.liftCycles);
  const trend = [...weeks.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([week, values]) => {
      values.sort((a, b) => a - b);
      const f = figure(values.length, M.weeklyAccepts);
      const m = percentile(values, 0.5);
      return { week, ...f, medianSec: f.enough && m !== null ? round(m / 1000, 1) : null };
    });

  const body = {
    report: "quality",
    ranges: rangeView(scope, rangeOf),
    minimums: M,
    residents,
    bedDays,
    falls: perThousand(falls),
    fallsWithInjury: perThousand(injuries),
    floorTime: {
      ...floorFig,
      unattended: unattendedFalls,
      medianSec: floorFig.enough && median !== null ? round(median / 1000, 1) : null,
      p90Sec: floor.length >= M.floorTimeP90Falls && p90 !== null ? round(p90 / 1000, 1) : null,
    },
    responseTrend: trend,
    falseAlarms: (() => {
      const f = figure(residentNights, M.residentNights);
      return {
        ...f,
        residentNights,
        events: falseAlarms,
        perResidentNight: f.enough ? round(falseAlarms / residentNights, 4) : null,
      };
    })(),
    // Only where lift data exists: a lift in the scope, or cycles in the range.
    lift:
      liftDevices === 0 && lift.cycles === 0
        ? null
        : {
            ...liftFig,
            ...lift,
            oneHelperShare: liftFig.enough ? round(lift.oneHelper / helped, 4) : null,
          },
  };

  const row = (
    figureName: string,
    n: number,
    enough: boolean,
    value: number | null,
    unit: string,
  ): Cell[] => [figureName, value, unit, n, enough, enough ? null : TOO_LITTLE.da];
  const rows: Cell[][] = [
    row("falls", body.falls.n, body.falls.enough, body.falls.per1000BedDays, "per 1000 bed-days"),
    row(
      "falls_with_injury",
      body.fallsWithInjury.n,
      body.fallsWithInjury.enough,
      body.fallsWithInjury.per1000BedDays,
      "per 1000 bed-days",
    ),
    row("floor_time_median", floor.length, floorFig.enough, body.floorTime.medianSec, "s"),
    row("floor_time_p90", floor.length, body.floorTime.p90Sec !== null, body.floorTime.p90Sec, "s"),
    row(
      "false_alarms",
      residentNights,
      body.falseAlarms.enough,
      body.falseAlarms.perResidentNight,
      "per resident-night",
    ),
  ];
  if (body.lift)
    rows.push(row("lift_one_helper_share", helped, body.lift.enough, body.lift.oneHelperShare, "share"));
  const tables: Table[] = [
    { name: "figures", columns: ["figure", "value", "unit", "n", "enough", "note"], rows },
    {
      name: "response_trend",
      columns: ["week", "median_accept_sec", "n", "enough", "note"],
      rows: trend.map((w) => [w.week, w.medianSec, w.n, w.enough, w.enough ? null : TOO_LITTLE.da]),
    },
  ];
  return { body, tables };
}

/** The profile ids whose kind is a ceiling lift. */
function liftProfiles(ctx: ReportContext): string[] {
  return [...ctx.profiles.entries()].filter(([, p]) => p.kind === "ceiling-lift").map(([id]) => id);
}
