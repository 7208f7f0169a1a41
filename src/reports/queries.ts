/**
 * The manager reports: time saved (read from the TimeSeriesStore, where TimeSavedJob writes it),
 * response times, alert volume, false alarms and device coverage (read from SQLite). Each report
 * returns its JSON and the same figures as flat tables for CSV, and names the model it used.
 *
 * Scope and range are already checked by the caller (routes.ts): these functions trust them.
 */
import type { Db } from "../store/db.js";
import { bucketStarts, type TimeSeriesStore } from "../store/timeseries.js";
import { HOUR, localDate, localHour, MINUTE, monthStart, monthStarts } from "../time/zone.js";
import { Slicer } from "../util/slicer.js";
import { type AlertExtras, type AlertReads, alertReadsOf } from "./alert-reads.js";
import type { EventReads } from "./event-reads.js";
import { type ModelView, modelView, siteModel, type TimeModel } from "./model.js";
import { CATEGORIES, type Category, type ProfileKinds, TIME_SAVED_MEASUREMENT } from "./timesaved.js";
import { type OnlineHistory, type PresenceReads, presenceReadsOf, uptime } from "./uptime.js";

export interface ReportSite {
  id: string;
  timeZone: string;
  units: readonly { id: string; rooms?: readonly string[] }[];
}

export interface ReportContext {
  db: Db;
  /** Where alerts are read; absent: `db` (a cluster node passes PostgreSQL's, src/cluster/pg/alert-reads.ts). */
  alertReads?: AlertReads;
  /** Where events are read; absent: `db` (a cluster node passes the shared log's, src/cluster/pg/event-reads.ts). */
  eventReads?: EventReads;
  /** Where devices' online history is read; absent: `db` (a cluster node passes src/cluster/pg/presence-reads.ts). */
  presenceReads?: PresenceReads;
  store: TimeSeriesStore;
  model: TimeModel;
  sites: readonly ReportSite[];
  profiles: ProfileKinds;
  now?: () => number;
}

/** What the caller may see and asked for: sites, and units (null: every unit of those sites). */
export interface Scope {
  sites: readonly ReportSite[];
  units: readonly string[] | null;
}

/** Per-site [from, to) in ms: a date range means local midnights, which differ between zones. */
export type RangeOf = (site: ReportSite) => { from: number; to: number };

export type Cell = string | number | boolean | null;
export interface Table {
  name: string;
  columns: string[];
  rows: Cell[][];
  /** The same rows with their texts in Danish, when the table has texts (the model's units and sources). */
  da?: Cell[][];
}

/** Minutes keep three decimals: the derived lift saving (6.505) and its multiples stay exact. */
const round = (x: number, digits = 3) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
const iso = (ms: number) => new Date(ms).toISOString();

export function rangeView(scope: Scope, rangeOf: RangeOf) {
  return scope.sites.map((s) => {
    const r = rangeOf(s);
    return { site: s.id, timeZone: s.timeZone, from: iso(r.from), to: iso(r.to) };
  });
}

function modelTable(view: ModelView): Table {
  const row = (k: string, p: ModelView["parameters"][string], unit: string, source: string): Cell[] => [
    k,
    typeof p.value === "number" ? round(p.value, 4) : p.value,
    unit,
    p.placeholder,
    source,
  ];
  const params = Object.entries(view.parameters);
  return {
    name: "model",
    columns: ["parameter", "value", "unit", "placeholder", "source"],
    rows: params.map(([k, p]) => row(k, p, p.unit, p.source)),
    da: params.map(([k, p]) => row(k, p, p.da?.unit ?? p.unit, p.da?.source ?? p.source)),
  };
}

// ---------------------------------------------------------------------------------------------
// Time saved

export type TimeSavedInterval = "day" | "week" | "month";

interface Cat {
  minutes: number;
  hours: number;
  count: number;
}
const emptyCats = (): Record<Category, Cat> =>
  Object.fromEntries(CATEGORIES.map((c) => [c, { minutes: 0, hours: 0, count: 0 }])) as Record<Category, Cat>;

function periodLabel(ms: number, interval: TimeSavedInterval, tz: string): string {
  const d = localDate(ms, tz);
  return interval === "month" ? d.slice(0, 7) : d;
}

export async function timeSavedReport(
  ctx: ReportContext,
  scope: Scope,
  rangeOf: RangeOf,
  interval: TimeSavedInterval,
) {
  const series: {
    site: string;
    unit: string;
    category: Category;
    period: string;
    start: string;
    minutes: number;
    hours: number;
    count: number;
  }[] = [];
  const byUnit: {
    site: string;
    unit: string;
    minutes: number;
    hours: number;
    categories: Record<Category, Cat>;
    nightSupervision: {
      residentNights: number;
      eligibleResidentNights: number;
      visits: number;
      checksSaved: number;
    };
    liftTransfers: {
      oneHelper: number;
      twoHelper: number;
      observedOneHelperShare: number | null;
      publishedRange: [number, number] | null;
    };
  }[] = [];
  const trend: {
    site: string;
    period: string;
    start: string;
    computed: boolean;
    minutes: number | null;
    hours: number | null;
    change: number | null;
  }[] = [];
  const totals = { minutes: 0, hours: 0, categories: emptyCats() };

  await Promise.all(
    scope.sites.map(async (site) => {
      const { from, to } = rangeOf(site);
      const sm = siteModel(ctx.model, site.id);
      const tz = site.timeZone;
      const where: Record<string, string | readonly string[]> = {
        site: site.id,
        model_version: sm.modelVersion,
      };
      if (scope.units) where.unit = scope.units;
      const base = {
        measurement: TIME_SAVED_MEASUREMENT,
        fn: "sum" as const,
        from: new Date(from),
        to: new Date(to),
        where,
        timeZone: tz,
      };
      const storeInterval = interval === "week" ? ("7d" as const) : ("1d" as const);
      const byCat = ["unit", "category"];
      const nightOnly = { ...where, category: "night_supervision" };
      const liftOnly = { ...where, category: "lift_transfers" };
      const [minutes, counts, eligible, visits, checks, twoHelper] = await Promise.all([
        ctx.store.aggregate({ ...base, field: "minutes", groupBy: byCat, interval: storeInterval }),
        ctx.store.aggregate({ ...base, field: "count", groupBy: byCat, interval: storeInterval }),
        ctx.store.aggregate({ ...base, field: "eligible", where: nightOnly, groupBy: ["unit"] }),
        ctx.store.aggregate({ ...base, field: "visits", where: nightOnly, groupBy: ["unit"] }),
        ctx.store.aggregate({ ...base, field: "checks_saved", where: nightOnly, groupBy: ["unit"] }),
        ctx.store.aggregate({ ...base, field: "two_helper", where: liftOnly, groupBy: ["unit"] }),
      ]);

      // Cells keyed by period start x unit x category (months rolled up from days here).
      // A bucket start and its label depend only on the instant: a month has ~31 distinct ones, and
      // each zone conversion costs microseconds, so they are cached for the thousands of rows.
      const monthOf = new Map<number, number>();
      const labels = new Map<number, string>();
      const periodOf = (t: number) => {
        if (interval !== "month") return t;
        let start = monthOf.get(t);
        if (start === undefined) {
          start = monthStart(t, tz);
          monthOf.set(t, start);
        }
        return start;
      };
      const label = (start: number) => {
        let l = labels.get(start);
        if (l === undefined) {
          l = periodLabel(start, interval, tz);
          labels.set(start, l);
        }
        return l;
      };
      const cells = new Map<
        string,
        { start: number; unit: string; category: Category; minutes: number; count: number }
      >();
      const cell = (t: number, unit: string, category: Category) => {
        const start = periodOf(t);
        const key = `${start}\u0000${unit}\u0000${category}`;
        let c = cells.get(key);
        if (!c) {
          c = { start, unit, category, minutes: 0, count: 0 };
          cells.set(key, c);
        }
        return c;
      };
      for (const r of minutes)
        cell(r.time!.getTime(), r.tags.unit!, r.tags.category as Category).minutes += r.value;
      for (const r of counts)
        cell(r.time!.getTime(), r.tags.unit!, r.tags.category as Category).count += r.value;

      const units = new Map<string, (typeof byUnit)[number]>();
      const unitRow = (unit: string) => {
        let u = units.get(unit);
        if (!u) {
          u = {
            site: site.id,
            unit,
            minutes: 0,
            hours: 0,
            categories: emptyCats(),
            nightSupervision: { residentNights: 0, eligibleResidentNights: 0, visits: 0, checksSaved: 0 },
            liftTransfers: { oneHelper: 0, twoHelper: 0, observedOneHelperShare: null, publishedRange: null },
          };
          units.set(unit, u);
        }
        return u;
      };
      for (const u of site.units) if (!scope.units || scope.units.includes(u.id)) unitRow(u.id);

      const perPeriod = new Map<number, number>();
      for (const c of [...cells.values()].sort(
        (a, b) =>
          a.start - b.start ||
          (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0) ||
          CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category),
      )) {
        series.push({
          site: site.id,
          unit: c.unit,
          category: c.category,
          period: label(c.start),
          start: iso(c.start),
          minutes: round(c.minutes),
          hours: round(c.minutes / 60, 2),
          count: c.count,
        });
        const u = unitRow(c.unit);
        u.minutes += c.minutes;
        u.categories[c.category].minutes += c.minutes;
        u.categories[c.category].count += c.count;
        perPeriod.set(c.start, (perPeriod.get(c.start) ?? 0) + c.minutes);
      }
      for (const r of eligible) unitRow(r.tags.unit!).nightSupervision.eligibleResidentNights += r.value;
      for (const r of visits) unitRow(r.tags.unit!).nightSupervision.visits += r.value;
      for (const r of checks) unitRow(r.tags.unit!).nightSupervision.checksSaved += r.value;
      for (const r of twoHelper) unitRow(r.tags.unit!).liftTransfers.twoHelper += r.value;
      const share = sm.parameters.oneHelperTransferShare;
      for (const u of units.values()) {
        u.nightSupervision.residentNights = u.categories.night_supervision.count;
        u.nightSupervision.checksSaved = round(u.nightSupervision.checksSaved, 3);
        u.liftTransfers.oneHelper = u.categories.lift_transfers.count;
        const lifts = u.liftTransfers.oneHelper + u.liftTransfers.twoHelper;
        u.liftTransfers.observedOneHelperShare =
          lifts > 0 ? round(u.liftTransfers.oneHelper / lifts, 3) : null;
        u.liftTransfers.publishedRange = share.range ?? null;
        for (const c of CATEGORIES) {
          totals.categories[c].minutes += u.categories[c].minutes;
          totals.categories[c].count += u.categories[c].count;
          u.categories[c].hours = round(u.categories[c].minutes / 60, 2);
          u.categories[c].minutes = round(u.categories[c].minutes);
        }
        totals.minutes += u.minutes;
        u.hours = round(u.minutes / 60, 2);
        u.minutes = round(u.minutes);
        byUnit.push(u);
      }

      const periods =
        interval === "month" ? monthStarts(from, to, tz) : bucketStarts(from, to, storeInterval, tz);
      let previous: number | null = null;
      for (const start of periods) {
        const net = perPeriod.get(start);
        trend.push({
          site: site.id,
          period: label(start),
          start: iso(start),
          computed: net !== undefined,
          minutes: net === undefined ? null : round(net),
          hours: net === undefined ? null : round(net / 60, 2),
          change: net === undefined || previous === null ? null : round(net - previous),
        });
        if (net !== undefined) previous = net;
      }
    }),
  );

  for (const c of CATEGORIES) {
    totals.categories[c].hours = round(totals.categories[c].minutes / 60, 2);
    totals.categories[c].minutes = round(totals.categories[c].minutes);
  }
  totals.hours = round(totals.minutes / 60, 2);
  totals.minutes = round(totals.minutes);
  byUnit.sort((a, b) => (a.site + a.unit < b.site + b.unit ? -1 : 1));
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  const body = {
    report: "time-saved",
    interval,
    ranges: rangeView(scope, rangeOf),
    totals,
    byUnit,
    trend,
    series,
    model,
  };
  const tables: Table[] = [
    {
      name: "by_unit",
      columns: [
        "site",
        "unit",
        "net_minutes",
        "net_hours",
        ...CATEGORIES.flatMap((c) => [`${c}_minutes`, `${c}_count`]),
        "resident_nights",
        "eligible_resident_nights",
        "night_visits",
        "checks_saved",
        "lift_one_helper",
        "lift_two_helper",
        "observed_one_helper_share",
      ],
      rows: byUnit.map((u) => [
        u.site,
        u.unit,
        u.minutes,
        u.hours,
        ...CATEGORIES.flatMap((c) => [u.categories[c].minutes, u.categories[c].count]),
        u.nightSupervision.residentNights,
        u.nightSupervision.eligibleResidentNights,
        u.nightSupervision.visits,
        u.nightSupervision.checksSaved,
        u.liftTransfers.oneHelper,
        u.liftTransfers.twoHelper,
        u.liftTransfers.observedOneHelperShare,
      ]),
    },
    {
      name: "series",
      columns: ["site", "unit", "category", "period", "start", "minutes", "hours", "count"],
      rows: series.map((r) => [r.site, r.unit, r.category, r.period, r.start, r.minutes, r.hours, r.count]),
    },
    {
      name: "trend",
      columns: ["site", "period", "start", "computed", "net_minutes", "net_hours", "change_minutes"],
      rows: trend.map((r) => [r.site, r.period, r.start, r.computed, r.minutes, r.hours, r.change]),
    },
    modelTable(model),
  ];
  return { body, tables };
}

// ---------------------------------------------------------------------------------------------
// Alerts: from SQLite in one process, from PostgreSQL on a cluster node (alert-reads.ts)

interface AlertTimes {
  site_id: string;
  unit_id: string;
  priority: string;
  state: string;
  raised_at: number;
  accepted_at: number | null;
  attending_at: number | null;
  resolved_at: number | null;
}

/** A site's alerts in the range and scope, in raised_at order, page by page. */
export function scopedAlerts(
  ctx: ReportContext,
  scope: Scope,
  site: ReportSite,
  range: { from: number; to: number },
  extras?: AlertExtras,
) {
  return alertReadsOf(ctx).alerts(
    { siteId: site.id, from: range.from, to: range.to, units: scope.units },
    extras,
  );
}

/** Nearest-rank percentile of sorted values: the smallest value with at least p of them at or below. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1]!;
}

interface Stat {
  n: number;
  p50Sec: number | null;
  p90Sec: number | null;
}
function stat(values: number[]): Stat {
  values.sort((a, b) => a - b);
  const p50 = percentile(values, 0.5);
  const p90 = percentile(values, 0.9);
  return {
    n: values.length,
    p50Sec: p50 === null ? null : round(p50 / 1000, 1),
    p90Sec: p90 === null ? null : round(p90 / 1000, 1),
  };
}

class TimesGroup {
  alerts = 0;
  accept: number[] = [];
  attend: number[] = [];
  resolve: number[] = [];
  add(a: AlertTimes) {
    this.alerts++;
    if (a.accepted_at !== null) this.accept.push(a.accepted_at - a.raised_at);
    if (a.attending_at !== null) this.attend.push(a.attending_at - a.raised_at);
    if (a.state === "resolved" && a.resolved_at !== null) this.resolve.push(a.resolved_at - a.raised_at);
  }
  view() {
    return {
      alerts: this.alerts,
      toAccept: stat(this.accept),
      toAttend: stat(this.attend),
      toResolve: stat(this.resolve),
    };
  }
}

const PRIORITY_ORDER = ["high", "medium", "low", "info"];
const byPriority = (a: string, b: string) => PRIORITY_ORDER.indexOf(a) - PRIORITY_ORDER.indexOf(b);

export async function responseTimesReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  const units = new Map<string, { site: string; unit: string; priority: string; g: TimesGroup }>();
  const priorities = new Map<string, TimesGroup>();
  const overall = new TimesGroup();
  for (const site of scope.sites) {
    for await (const a of scopedAlerts(ctx, scope, site, rangeOf(site)) as AsyncIterable<AlertTimes>) {
      const key = `${a.site_id}\u0000${a.unit_id}\u0000${a.priority}`;
      let u = units.get(key);
      if (!u) {
        u = { site: a.site_id, unit: a.unit_id, priority: a.priority, g: new TimesGroup() };
        units.set(key, u);
      }
      u.g.add(a);
      let p = priorities.get(a.priority);
      if (!p) {
        p = new TimesGroup();
        priorities.set(a.priority, p);
      }
      p.add(a);
      overall.add(a);
    }
  }
  const byUnitAndPriority = [...units.values()]
    .sort((a, b) =>
      a.site + a.unit < b.site + b.unit
        ? -1
        : a.site + a.unit > b.site + b.unit
          ? 1
          : byPriority(a.priority, b.priority),
    )
    .map((u) => ({ site: u.site, unit: u.unit, priority: u.priority, ...u.g.view() }));
  const byPriorityRows = [...priorities.entries()]
    .sort(([a], [b]) => byPriority(a, b))
    .map(([priority, g]) => ({ priority, ...g.view() }));
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  const cols = [
    "alerts",
    "accept_n",
    "accept_p50_sec",
    "accept_p90_sec",
    "attend_n",
    "attend_p50_sec",
    "attend_p90_sec",
    "resolve_n",
    "resolve_p50_sec",
    "resolve_p90_sec",
  ];
  const cells = (v: ReturnType<TimesGroup["view"]>): Cell[] => [
    v.alerts,
    v.toAccept.n,
    v.toAccept.p50Sec,
    v.toAccept.p90Sec,
    v.toAttend.n,
    v.toAttend.p50Sec,
    v.toAttend.p90Sec,
    v.toResolve.n,
    v.toResolve.p50Sec,
    v.toResolve.p90Sec,
  ];
  return {
    body: {
      report: "response-times",
      percentile: "nearest rank",
      ranges: rangeView(scope, rangeOf),
      overall: overall.view(),
      byPriority: byPriorityRows,
      byUnitAndPriority,
      model,
    },
    tables: [
      {
        name: "by_unit_priority",
        columns: ["site", "unit", "priority", ...cols],
        rows: byUnitAndPriority.map((r) => [r.site, r.unit, r.priority, ...cells(r)]),
      },
      {
        name: "by_priority",
        columns: ["priority", ...cols],
        rows: byPriorityRows.map((r) => [r.priority, ...cells(r)]),
      },
      modelTable(model),
    ] as Table[],
  };
}

const QUARTER = 15 * MINUTE;

export async function alertVolumeReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  const byType = new Map<string, { type: string; count: number; byPriority: Record<string, number> }>();
  const byHour = Array.from({ length: 24 }, (_, hour) => ({ hour, count: 0 }));
  const byTypeHour = new Map<string, number>();
  const byUnit = new Map<string, number>();
  let total = 0;
  for (const site of scope.sites) {
    // Quarter-hour buckets in SQL (integer division), local hours in JS: exact for every zone whose
    // offset is a whole number of quarter hours, which is all of them today.
    const range = rangeOf(site);
    const rows = await alertReadsOf(ctx).volume(
      { siteId: site.id, from: range.from, to: range.to, units: scope.units },
      QUARTER,
    );
    const hourOf = new Map<number, number>();
    for (const r of rows) {
      let hour = hourOf.get(r.q);
      if (hour === undefined) {
        hour = localHour(r.q * QUARTER, site.timeZone);
        hourOf.set(r.q, hour);
      }
      total += r.n;
      let t = byType.get(r.type);
      if (!t) {
        t = { type: r.type, count: 0, byPriority: {} };
        byType.set(r.type, t);
      }
      t.count += r.n;
      t.byPriority[r.priority] = (t.byPriority[r.priority] ?? 0) + r.n;
      byHour[hour]!.count += r.n;
      const th = `${r.type}\u0000${hour}`;
      byTypeHour.set(th, (byTypeHour.get(th) ?? 0) + r.n);
      const u = `${site.id}\u0000${r.unit_id}`;
      byUnit.set(u, (byUnit.get(u) ?? 0) + r.n);
    }
  }
  const types = [...byType.values()].sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : 1));
  const typeHour = [...byTypeHour.entries()]
    .map(([k, count]) => {
      const [type, hour] = k.split("\u0000") as [string, string];
      return { type, hour: Number(hour), count };
    })
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : a.hour - b.hour));
  const units = [...byUnit.entries()]
    .map(([k, count]) => {
      const [site, unit] = k.split("\u0000") as [string, string];
      return { site, unit, count };
    })
    .sort((a, b) => (a.site + a.unit < b.site + b.unit ? -1 : 1));
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  return {
    body: {
      report: "alert-volume",
      ranges: rangeView(scope, rangeOf),
      total,
      byType: types,
      byHour,
      byTypeAndHour: typeHour,
      byUnit: units,
      model,
    },
    tables: [
      { name: "by_type", columns: ["type", "count"], rows: types.map((t) => [t.type, t.count]) },
      { name: "by_hour", columns: ["hour", "count"], rows: byHour.map((h) => [h.hour, h.count]) },
      {
        name: "by_type_hour",
        columns: ["type", "hour", "count"],
        rows: typeHour.map((r) => [r.type, r.hour, r.count]),
      },
      {
        name: "by_unit",
        columns: ["site", "unit", "count"],
        rows: units.map((u) => [u.site, u.unit, u.count]),
      },
      modelTable(model),
    ] as Table[],
  };
}

interface FaCounts {
  alerts: number;
  resolved: number;
  cancelled: number;
  falseAlarms: number;
  attendedFalseAlarms: number;
}
const faView = (c: FaCounts) => ({
  ...c,
  rate: c.resolved > 0 ? round(c.falseAlarms / c.resolved, 4) : null,
});

export async function falseAlarmReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  const devices = new Map<
    string,
    { site: string; unit: string; room: string | null; device: string; profile: string | null; c: FaCounts }
  >();
  const rooms = new Map<string, { site: string; unit: string; room: string | null; c: FaCounts }>();
  const total: FaCounts = { alerts: 0, resolved: 0, cancelled: 0, falseAlarms: 0, attendedFalseAlarms: 0 };
  const zero = (): FaCounts => ({
    alerts: 0,
    resolved: 0,
    cancelled: 0,
    falseAlarms: 0,
    attendedFalseAlarms: 0,
  });
  for (const site of scope.sites) {
    for await (const a of scopedAlerts(ctx, scope, site, rangeOf(site), { profile: true })) {
      const dk = `${site.id}\u0000${a.device_id}`;
      let d = devices.get(dk);
      if (!d) {
        d = {
          site: site.id,
          unit: a.unit_id,
          room: a.room_id,
          device: a.device_id,
          profile: a.profile ?? null,
          c: zero(),
        };
        devices.set(dk, d);
      }
      const rk = `${site.id}\u0000${a.unit_id}\u0000${a.room_id ?? ""}`;
      let r = rooms.get(rk);
      if (!r) {
        r = { site: site.id, unit: a.unit_id, room: a.room_id, c: zero() };
        rooms.set(rk, r);
      }
      for (const c of [d.c, r.c, total]) {
        c.alerts++;
        if (a.state === "resolved") c.resolved++;
        if (a.state === "cancelled") c.cancelled++;
        if (a.outcome === "false-alarm") {
          c.falseAlarms++;
          if (a.attending_at !== null) c.attendedFalseAlarms++;
        }
      }
    }
  }
  const byDevice = [...devices.values()]
    .map((d) => ({
      site: d.site,
      unit: d.unit,
      room: d.room,
      device: d.device,
      profile: d.profile,
      ...faView(d.c),
    }))
    .sort(
      (a, b) =>
        (b.rate ?? -1) - (a.rate ?? -1) || b.falseAlarms - a.falseAlarms || (a.device < b.device ? -1 : 1),
    );
  const byRoom = [...rooms.values()]
    .map((r) => ({ site: r.site, unit: r.unit, room: r.room, ...faView(r.c) }))
    .sort(
      (a, b) =>
        (b.rate ?? -1) - (a.rate ?? -1) ||
        b.falseAlarms - a.falseAlarms ||
        ((a.room ?? "") < (b.room ?? "") ? -1 : 1),
    );
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  const cols = ["alerts", "resolved", "cancelled", "false_alarms", "attended_false_alarms", "rate"];
  const cells = (c: ReturnType<typeof faView>): Cell[] => [
    c.alerts,
    c.resolved,
    c.cancelled,
    c.falseAlarms,
    c.attendedFalseAlarms,
    c.rate,
  ];
  return {
    body: {
      report: "false-alarms",
      rate: "false-alarm outcomes / resolved alerts",
      ranges: rangeView(scope, rangeOf),
      total: faView(total),
      byDevice,
      byRoom,
      model,
    },
    tables: [
      {
        name: "by_device",
        columns: ["site", "unit", "room", "device", "profile", ...cols],
        rows: byDevice.map((d) => [d.site, d.unit, d.room, d.device, d.profile, ...cells(d)]),
      },
      {
        name: "by_room",
        columns: ["site", "unit", "room", ...cols],
        rows: byRoom.map((r) => [r.site, r.unit, r.room, ...cells(r)]),
      },
      modelTable(model),
    ] as Table[],
  };
}

// ---------------------------------------------------------------------------------------------
// Coverage and uptime

/**
 * Per device a few index seeks (src/reports/uptime.ts); for a site of thousands of devices that is
 * long enough to matter to a fall arriving meanwhile, so the loop hands the event loop back every
 * few milliseconds.
 */
export async function coverageReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  const slicer = new Slicer();
  const now = (ctx.now ?? Date.now)();
  const devices: {
    site: string;
    unit: string;
    room: string | null;
    resident: string | null;
    device: string;
    profile: string;
    kind: string | null;
    enabled: boolean;
    /** The window the report asks about, up to now. */
    windowHours: number;
    /** The part of it since the device was registered: a share is only ever of this. */
    observedHours: number;
    onlineHours: number;
    offlineHours: number;
    unknownHours: number;
    onlineShare: number | null;
    outages: number;
    longestOutageMinutes: number;
  }[] = [];
  const units: {
    site: string;
    unit: string;
    devices: number;
    fallSensors: number;
    windowHours: number;
    /** From the first registration of one of its devices in the window: how long anything was seen. */
    observedHours: number;
    onlineShare: number | null;
    fallSensorOnlineShare: number | null;
    residents: number;
    residentsWithFallSensor: number;
    residentCoverage: number | null;
    rooms: number | null;
    roomsWithFallSensor: number | null;
  }[] = [];
  for (const site of scope.sites) {
    const range = rangeOf(site);
    const end = Math.min(range.to, now);
    const windowMs = Math.max(0, end - range.from);
    const inScope = (unit: string) => !scope.units || scope.units.includes(unit);
    const rows = (
      ctx.db
        .prepare(
          "SELECT id, profile, unit_id, room_id, resident_ref, enabled, created_at FROM devices WHERE site_id = ? ORDER BY unit_id, room_id, id",
        )
        .all(site.id) as {
        id: string;
        profile: string;
        unit_id: string;
        room_id: string | null;
        resident_ref: string | null;
        enabled: number;
        created_at: number;
      }[]
    ).filter((d) => inScope(d.unit_id));
    const agg = new Map<
      string,
      {
        online: number;
        observed: number;
        longest: number;
        fsOnline: number;
        fsObserved: number;
        n: number;
        fs: number;
      }
    >();
    // Time before a device was registered is not downtime: each device's window starts then, so
    // histories are read per start (most devices share the range's).
    const startOf = (d: { created_at: number }) => Math.max(range.from, d.created_at);
    const byStart = new Map<number, string[]>();
    for (const d of rows) {
      const start = startOf(d);
      if (start >= end) continue;
      const ids = byStart.get(start);
      if (ids) ids.push(d.id);
      else byStart.set(start, [d.id]);
    }
    const histories = new Map<string, OnlineHistory>();
    for (const [start, ids] of byStart) {
      await slicer.pause();
      for (const [id, h] of await presenceReadsOf(ctx).onlineHistories(ids, start, end)) histories.set(id, h);
    }
    const fallRooms = new Map<string, Set<string>>();
    const fallResidents = new Set<string>();
    for (const d of rows) {
      await slicer.pause();
      const kind = ctx.profiles.get(d.profile)?.kind ?? null;
      const start = startOf(d);
      const history = histories.get(d.id);
      const up = history ? uptime(history, start, end) : null;
      const observed = up ? end - start : 0;
      devices.push({
        site: site.id,
        unit: d.unit_id,
        room: d.room_id,
        resident: d.resident_ref,
        device: d.id,
        profile: d.profile,
        kind,
        enabled: d.enabled === 1,
        windowHours: round(windowMs / HOUR),
        observedHours: round(observed / HOUR),
        onlineHours: round((up?.onlineMs ?? 0) / HOUR),
        offlineHours: round((up?.offlineMs ?? 0) / HOUR),
        unknownHours: round((up?.unknownMs ?? 0) / HOUR),
        onlineShare: observed > 0 ? round((up?.onlineMs ?? 0) / observed, 4) : null,
        outages: up?.outages ?? 0,
        longestOutageMinutes: round((up?.longestOutageMs ?? 0) / MINUTE, 1),
      });
      let a = agg.get(d.unit_id);
      if (!a) {
        a = { online: 0, observed: 0, longest: 0, fsOnline: 0, fsObserved: 0, n: 0, fs: 0 };
        agg.set(d.unit_id, a);
      }
      a.n++;
      a.online += up?.onlineMs ?? 0;
      a.observed += observed;
      a.longest = Math.max(a.longest, observed);
      if (kind === "fall-sensor") {
        a.fs++;
        a.fsOnline += up?.onlineMs ?? 0;
        a.fsObserved += observed;
        if (d.room_id) {
          const set = fallRooms.get(d.unit_id) ?? new Set<string>();
          fallRooms.set(d.unit_id, set);
          set.add(d.room_id);
        }
        if (d.resident_ref) fallResidents.add(d.resident_ref);
      }
    }
    const residents = (
      ctx.db.prepare("SELECT ref, unit_id, room_id FROM residents WHERE site_id = ?").all(site.id) as {
        ref: string;
        unit_id: string;
        room_id: string | null;
      }[]
    ).filter((r) => inScope(r.unit_id));
    const unitIds = new Set([...site.units.map((u) => u.id).filter(inScope), ...agg.keys()]);
    for (const unit of [...unitIds].sort()) {
      const a = agg.get(unit) ?? {
        online: 0,
        observed: 0,
        longest: 0,
        fsOnline: 0,
        fsObserved: 0,
        n: 0,
        fs: 0,
      };
      const res = residents.filter((r) => r.unit_id === unit);
      const covered = res.filter(
        (r) =>
          fallResidents.has(r.ref) || (r.room_id !== null && (fallRooms.get(unit)?.has(r.room_id) ?? false)),
      ).length;
      const configured = site.units.find((u) => u.id === unit)?.rooms;
      const roomsWith = configured ? configured.filter((r) => fallRooms.get(unit)?.has(r)).length : null;
      units.push({
        site: site.id,
        unit,
        devices: a.n,
        fallSensors: a.fs,
        windowHours: round(windowMs / HOUR),
        observedHours: round(a.longest / HOUR),
        onlineShare: a.observed > 0 ? round(a.online / a.observed, 4) : null,
        fallSensorOnlineShare: a.fsObserved > 0 ? round(a.fsOnline / a.fsObserved, 4) : null,
        residents: res.length,
        residentsWithFallSensor: covered,
        residentCoverage: res.length > 0 ? round(covered / res.length, 4) : null,
        rooms: configured && configured.length > 0 ? configured.length : null,
        roomsWithFallSensor: configured && configured.length > 0 ? roomsWith : null,
      });
    }
  }
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  return {
    body: {
      report: "coverage",
      ranges: rangeView(scope, rangeOf),
      byUnit: units,
      byDevice: devices,
      model,
    },
    tables: [
      {
        name: "by_unit",
        columns: [
          "site",
          "unit",
          "devices",
          "fall_sensors",
          "window_hours",
          "observed_hours",
          "online_share",
          "fall_sensor_online_share",
          "residents",
          "residents_with_fall_sensor",
          "resident_coverage",
          "rooms",
          "rooms_with_fall_sensor",
        ],
        rows: units.map((u) => [
          u.site,
          u.unit,
          u.devices,
          u.fallSensors,
          u.windowHours,
          u.observedHours,
          u.onlineShare,
          u.fallSensorOnlineShare,
          u.residents,
          u.residentsWithFallSensor,
          u.residentCoverage,
          u.rooms,
          u.roomsWithFallSensor,
        ]),
      },
      {
        name: "by_device",
        columns: [
          "site",
          "unit",
          "room",
          "device",
          "profile",
          "kind",
          "enabled",
          "window_hours",
          "observed_hours",
          "online_hours",
          "offline_hours",
          "unknown_hours",
          "online_share",
          "outages",
          "longest_outage_minutes",
        ],
        rows: devices.map((d) => [
          d.site,
          d.unit,
          d.room,
          d.device,
          d.profile,
          d.kind,
          d.enabled,
          d.windowHours,
          d.observedHours,
          d.onlineHours,
          d.offlineHours,
          d.unknownHours,
          d.onlineShare,
          d.outages,
          d.longestOutageMinutes,
        ]),
      },
      modelTable(model),
    ] as Table[],
  };
}

export function modelReport(ctx: ReportContext, scope: Scope) {
  const model = modelView(
    ctx.model,
    scope.sites.map((s) => s.id),
  );
  return {
    body: { report: "model", version: model.version, parameters: model.parameters, model },
    tables: [modelTable(model), referencesTable(ctx.model)],
  };
}

function referencesTable(model: TimeModel): Table {
  return {
    name: "references",
    columns: ["name", "value", "detail", "source"],
    rows: model.references.map((r) => [r.name, r.value, r.detail ?? null, r.source]),
    da: model.references.map((r) => [
      r.da?.name ?? r.name,
      r.da?.value ?? r.value,
      r.da?.detail ?? r.detail ?? null,
      r.source,
    ]),
  };
}
