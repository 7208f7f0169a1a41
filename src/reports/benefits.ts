/**
 * The benefits account (gevinstrealisering): realised time saved beside potential, in hours per week
 * and per year, full-time equivalents (årsværk) and kroner, with every caveat said in words, the
 * baselines it was measured against, and a comparison of the period with the one before it and with
 * the baseline period. docs/reports-api.md "benefits" and docs/time-model.md "Realised and potential".
 *
 * Realised and potential are both read from the time-series store, where TimeSavedJob writes them;
 * årsværk and kroner are computed here from the hours (src/reports/economics.ts).
 */

import { addDays, DAY, localDate, localDays, nightWindow, startOfLocalDay } from "../time/zone.js";
import { alertReadsOf } from "./alert-reads.js";
import type { Baseline } from "./baseline/schema.js";
import {
  type BaselineStore,
  baselineForUnit,
  baselineKey,
  baselineLabel,
  baselinesInForce,
} from "./baseline/store.js";
import { type Economics, STAFF_OF, toMinorUnit } from "./economics.js";
import { economicsOf, type ParameterKey, siteModel } from "./model.js";
import { QUALITY_MINIMUMS, qualityReport, TOO_LITTLE } from "./quality.js";
import {
  type Cell,
  type RangeOf,
  type ReportContext,
  type ReportSite,
  rangeView,
  type Scope,
  type Table,
} from "./queries.js";
import { REALISED_NEEDS, realisedRates } from "./realised.js";
import { CATEGORIES, type Category, REALISED_MEASUREMENT, TIME_SAVED_MEASUREMENT } from "./timesaved.js";

export interface BenefitsContext extends ReportContext {
  baselineStore?: BaselineStore;
}

/** Weeks in the year the annual figures use: the same 52 as the årsværk's 37 x 52 hours. */
export const WEEKS_PER_YEAR = 52;
/** Fewer observed days than this and the yearly figures are flagged as extrapolated from little. */
export const SHORT_PERIOD_DAYS = 28;

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** The comparison's note for a previous period before the site's first data. */
export const NO_PREVIOUS = {
  da: "ingen data i forrige periode",
  en: "no data for the previous period",
} as const;

/** A caveat in both languages; `code` is stable for clients. */
export interface Caveat {
  code: string;
  da: string;
  en: string;
}

export interface Amounts {
  minutes: number;
  hours: number;
  hoursPerWeek: number;
  hoursPerYear: number;
  /** Årsværk: hours per year / the annual hours of one full-time equivalent. */
  fte: number;
  /** For the period, in the currency; to the øre. */
  cost: number;
  costPerYear: number;
}

interface CategorySum {
  minutes: number;
  count: number;
}

type Sums = Record<Category, CategorySum>;
const emptySums = (): Sums =>
  Object.fromEntries(CATEGORIES.map((c) => [c, { minutes: 0, count: 0 }])) as Sums;

/** Sums of one measurement per category (and the night and lift detail fields) over a range. */
async function sums(
  ctx: BenefitsContext,
  site: ReportSite,
  measurement: string,
  where: Record<string, string | readonly string[]>,
  from: number,
  to: number,
): Promise<{ sums: Sums; detail: Record<string, number>; days: number; first: number | null }> {
  const base = {
    measurement,
    fn: "sum" as const,
    from: new Date(from),
    to: new Date(to),
    where,
    timeZone: site.timeZone,
  };
  const nightOnly = { ...where, category: "night_supervision" };
  const liftOnly = { ...where, category: "lift_transfers" };
  const [minutes, counts, visits, daysRows, twoHelper, eligible] = await Promise.all([
    ctx.store.aggregate({ ...base, field: "minutes", groupBy: ["category"] }),
    ctx.store.aggregate({ ...base, field: "count", groupBy: ["category"] }),
    ctx.store.aggregate({ ...base, field: "visits", where: nightOnly }),
    ctx.store.aggregate({ ...base, field: "count", fn: "count", where: nightOnly, interval: "1d" }),
    measurement === TIME_SAVED_MEASUREMENT
      ? ctx.store.aggregate({ ...base, field: "two_helper", where: liftOnly })
      : Promise.resolve([]),
    ctx.store.aggregate({ ...base, field: "eligible", where: nightOnly }),
  ]);
  const out = emptySums();
  for (const r of minutes) out[r.tags.category as Category].minutes += r.value;
  for (const r of counts) out[r.tags.category as Category].count += r.value;
  const total = (rows: readonly { value: number }[]) => rows.reduce((a, r) => a + r.value, 0);
  return {
    sums: out,
    detail: { visits: total(visits), twoHelper: total(twoHelper), eligible: total(eligible) },
    days: daysRows.filter((r) => r.value > 0).length,
    first: daysRows.find((r) => r.value > 0)?.time?.getTime() ?? null,
  };
}

function amounts(byCategory: Sums, days: number, economics: Economics): Amounts {
  let minutes = 0;
  let cost = 0;
  for (const c of CATEGORIES) {
    const m = byCategory[c].minutes;
    minutes += m;
    cost += (m / 60) * economics.hourlyCost[STAFF_OF[c]].value;
  }
  const weeks = days / 7;
  const hoursPerWeek = weeks > 0 ? minutes / 60 / weeks : 0;
  const hoursPerYear = hoursPerWeek * WEEKS_PER_YEAR;
  return {
    minutes: round(minutes, 3),
    hours: round(minutes / 60, 2),
    hoursPerWeek: round(hoursPerWeek, 2),
    hoursPerYear: round(hoursPerYear, 1),
    fte: round(hoursPerYear / economics.annualHoursPerFte.value, 3),
    cost: toMinorUnit(cost),
    costPerYear: toMinorUnit(weeks > 0 ? (cost / weeks) * WEEKS_PER_YEAR : 0),
  };
}

const addSums = (into: Sums, from: Sums) => {
  for (const c of CATEGORIES) {
    into[c].minutes += from[c].minutes;
    into[c].count += from[c].count;
  }
};

/** Local days of [from, to) that have ended by `now`. */
function endedDays(site: ReportSite, from: number, to: number, now: number): number {
  const end = Math.min(to, startOfLocalDay(localDate(now, site.timeZone), site.timeZone));
  return end > from ? localDays(from, end, site.timeZone).length : 0;
}

/** Care alerts raised in the night windows of [from, to), per night. */
async function alarmsPerNight(
  ctx: BenefitsContext,
  site: ReportSite,
  scope: Scope,
  from: number,
  to: number,
  now: number,
) {
  const p = siteModel(ctx.model, site.id).params;
  const windows = localDays(from, to, site.timeZone)
    .map((date) => nightWindow(date, p.nightStart, p.nightEnd, site.timeZone))
    .filter(([, end]) => end <= now && end <= to + DAY);
  if (windows.length === 0) return { alarms: 0, nights: 0 };
  // One read of the range's raise times (the alerts' site/time index), placed into the nights here:
  // the nights are in time order and do not overlap.
  const raised = await alertReadsOf(ctx).careRaisedAt({
    siteId: site.id,
    from: windows[0]![0],
    to: windows[windows.length - 1]![1],
    units: scope.units,
  });
  let alarms = 0;
  let w = 0;
  for (const at of raised) {
    while (w < windows.length && at >= windows[w]![1]) w++;
    if (w === windows.length) break;
    if (at >= windows[w]![0]) alarms++;
  }
  return { alarms, nights: windows.length };
}

interface ComparisonRow {
  site: string;
  figure: string;
  unit: { da: string; en: string };
  baseline: number | null;
  previous: number | null;
  current: number | null;
  note: { da: string; en: string } | null;
}

export async function benefitsReport(ctx: BenefitsContext, scope: Scope, rangeOf: RangeOf) {
  const now = (ctx.now ?? Date.now)();
  const realisedTotal = emptySums();
  const potentialTotal = emptySums();
  let days = 0;
  let anyBaseline = false;
  const caveats: Caveat[] = [];
  const baselines: (Baseline & { label: string; appliesTo: string[] })[] = [];
  const comparison: ComparisonRow[] = [];
  const periods: { site: string; name: "baseline" | "previous" | "current"; from: string; to: string }[] = [];
  const placeholderParams = new Set<ParameterKey>();
  const realisedPlaceholders = new Set<string>();
  const unitsWithout: string[] = [];
  const unmeasured = new Map<Category, string[]>();
  const measured = new Set<Category>();
  let notComputed = 0;
  /** Sites whose data begin inside the period: "site date". */
  const firstData: string[] = [];
  let economics: Economics | undefined;

  for (const site of scope.sites) {
    const { from, to } = rangeOf(site);
    const sm = siteModel(ctx.model, site.id);
    const eco = economicsOf(ctx.model, site.id);
    // Several sites in one account: amounts use the first site's economics; the caveat says so.
    if (!economics) economics = eco;
    else if (
      !caveats.some((c) => c.code === "mixed_economics") &&
      JSON.stringify(economics) !== JSON.stringify(eco)
    )
      caveats.push({
        code: "mixed_economics",
        da: "Stederne har forskellige timepriser eller årsværk; beløbene er regnet med det første steds.",
        en: "The sites have different hourly costs or annual hours; amounts use the first site's.",
      });
    const units = site.units.map((u) => u.id).filter((u) => !scope.units || scope.units.includes(u));
    const inForce = ctx.baselineStore ? baselinesInForce(ctx.baselineStore, site.id) : [];
    const key = baselineKey(inForce);
    for (const b of inForce) {
      const appliesTo = units.filter((u) => baselineForUnit(inForce, u) === b);
      if (appliesTo.length > 0) baselines.push({ ...b, label: baselineLabel(b), appliesTo });
    }
    for (const u of units) {
      const b = baselineForUnit(inForce, u);
      if (!b) {
        unitsWithout.push(`${site.id}/${u}`);
        continue;
      }
      anyBaseline = true;
      for (const c of CATEGORIES)
        if (b.measurements[REALISED_NEEDS[c]] === undefined)
          unmeasured.set(c, [...(unmeasured.get(c) ?? []), `${site.id}/${u}`]);
        else measured.add(c);
      const rates = realisedRates(b, sm);
      if (rates.nightCheckPlaceholder && b.measurements.nightChecksPerResident)
        realisedPlaceholders.add("minutesPerNightCheck");
      if (rates.falseAlarmPlaceholder) realisedPlaceholders.add("minutesPerFalseAlarm");
    }
    for (const k of ["minutesPerNightCheck", "minutesPerFalseAlarm", "minutesPerAvoidedVisit"] as const)
      if (sm.parameters[k].placeholder) placeholderParams.add(k);

    const where: Record<string, string | readonly string[]> = {
      site: site.id,
      model_version: sm.modelVersion,
    };
    if (scope.units) where.unit = scope.units;
    const realisedWhere = key !== null ? { ...where, baseline: key } : null;
    const length = to - from;
    const prevFrom = startOfLocalDay(localDate(from - length, site.timeZone), site.timeZone);

    const [potential, realised, prevPotential, prevRealised] = await Promise.all([
      sums(ctx, site, TIME_SAVED_MEASUREMENT, where, from, to),
      realisedWhere ? sums(ctx, site, REALISED_MEASUREMENT, realisedWhere, from, to) : null,
      sums(ctx, site, TIME_SAVED_MEASUREMENT, where, prevFrom, from),
      realisedWhere ? sums(ctx, site, REALISED_MEASUREMENT, realisedWhere, prevFrom, from) : null,
    ]);
    addSums(potentialTotal, potential.sums);
    if (realised) addSums(realisedTotal, realised.sums);
    // The days a figure rests on are the days computed: from the site's first activity on. Ended
    // days after the first computed one that have no figures are a gap (the job has not caught up).
    const observed = potential.days;
    const prevObserved = prevPotential.days;
    days = Math.max(days, observed);
    if (potential.first !== null) {
      notComputed += Math.max(0, endedDays(site, potential.first, to, now) - observed);
      if (potential.first > from) firstData.push(`${site.id} ${localDate(potential.first, site.timeZone)}`);
    }

    // The comparison: the same figures for the baseline period, the period before, and this one.
    const iso = (ms: number) => localDate(ms, site.timeZone);
    periods.push({ site: site.id, name: "previous", from: iso(prevFrom), to: addDays(iso(from), -1) });
    periods.push({ site: site.id, name: "current", from: iso(from), to: iso(to - 1) });
    const siteBaseline = inForce.find((b) => b.unit === undefined) ?? inForce[0];
    if (siteBaseline)
      periods.push({
        site: site.id,
        name: "baseline",
        from: siteBaseline.period.from,
        to: siteBaseline.period.to,
      });
    const bm = siteBaseline?.measurements;
    const minNights = QUALITY_MINIMUMS.residentNights;
    const perNight = (s: { detail: Record<string, number>; sums: Sums }) =>
      s.sums.night_supervision.count >= minNights
        ? round(s.detail.visits! / s.sums.night_supervision.count, 2)
        : null;
    const twoShare = (s: { detail: Record<string, number>; sums: Sums }) => {
      const n = s.sums.lift_transfers.count + s.detail.twoHelper!;
      return n >= QUALITY_MINIMUMS.liftCycles ? round(s.detail.twoHelper! / n, 3) : null;
    };
    const nightMinutes = bm?.minutesPerNightCheck?.value ?? sm.params.minutesPerNightCheck;
    // Nights from the first computed day on: before it nothing was observed.
    const nightsOf = async (first: number | null, a: number, b: number) =>
      first === null
        ? { alarms: 0, nights: 0 }
        : await alarmsPerNight(ctx, site, scope, Math.max(a, first), b, now);
    const alarmsNow = await nightsOf(potential.first, from, to);
    const alarmsBefore = await nightsOf(prevPotential.first, prevFrom, from);
    const perNightAlarms = (a: { alarms: number; nights: number }) =>
      a.nights >= 7 ? round(a.alarms / a.nights, 2) : null;
    const weekly = (s: Sums | undefined, d: number) => {
      if (!s || d === 0) return null;
      return round(CATEGORIES.reduce((acc, c) => acc + s[c].minutes, 0) / 60 / (d / 7), 2);
    };
    const tooLittle = (...xs: (number | null)[]) => (xs.some((x) => x === null) ? TOO_LITTLE : null);
    const rows: Omit<ComparisonRow, "site">[] = [
      {
        figure: "night_checks_per_resident_night",
        unit: { da: "tilsyn/besøg pr. borger pr. nat", en: "checks or visits per resident per night" },
        baseline: bm?.nightChecksPerResident?.value ?? null,
        previous: perNight(prevPotential),
        current: perNight(potential),
        note: null,
      },
      {
        figure: "night_check_minutes_per_resident_night",
        unit: { da: "personaleminutter pr. borger pr. nat", en: "staff-minutes per resident per night" },
        baseline:
          bm?.nightChecksPerResident !== undefined
            ? round(bm.nightChecksPerResident.value * nightMinutes, 2)
            : null,
        previous: perNight(prevPotential) !== null ? round(perNight(prevPotential)! * nightMinutes, 2) : null,
        current: perNight(potential) !== null ? round(perNight(potential)! * nightMinutes, 2) : null,
        note: null,
      },
      {
        figure: "two_helper_transfer_share",
        unit: { da: "andel af forflytninger med to hjælpere", en: "share of transfers by two helpers" },
        baseline: bm?.twoHelperTransferShare?.value ?? null,
        previous: twoShare(prevPotential),
        current: twoShare(potential),
        note: null,
      },
      {
        figure: "alarms_per_night",
        unit: { da: "alarmer pr. nat", en: "alarms per night" },
        baseline: bm?.alarmsPerNight?.value ?? null,
        previous: perNightAlarms(alarmsBefore),
        current: perNightAlarms(alarmsNow),
        note: null,
      },
      {
        figure: "realised_hours_per_week",
        unit: { da: "timer pr. uge", en: "hours per week" },
        baseline: null,
        previous: prevRealised ? weekly(prevRealised.sums, prevObserved) : null,
        current: realised ? weekly(realised.sums, observed) : null,
        note: null,
      },
      {
        figure: "potential_hours_per_week",
        unit: { da: "timer pr. uge", en: "hours per week" },
        baseline: null,
        previous: weekly(prevPotential.sums, prevObserved),
        current: weekly(potential.sums, observed),
        note: null,
      },
    ];
    // Quality beside time, for both periods.
    const [qNow, qBefore] = await Promise.all([
      qualityReport(ctx, { sites: [site], units: scope.units }, () => ({ from, to })),
      qualityReport(ctx, { sites: [site], units: scope.units }, () => ({ from: prevFrom, to: from })),
    ]);
    rows.push(
      {
        figure: "falls_per_1000_bed_days",
        unit: { da: "fald pr. 1.000 sengedøgn", en: "falls per 1,000 bed-days" },
        baseline: null,
        previous: qBefore.body.falls.per1000BedDays,
        current: qNow.body.falls.per1000BedDays,
        note: null,
      },
      {
        figure: "false_alarms_per_resident_night",
        unit: { da: "falske alarmer pr. borger pr. nat", en: "false alarms per resident-night" },
        baseline: null,
        previous: qBefore.body.falseAlarms.perResidentNight,
        current: qNow.body.falseAlarms.perResidentNight,
        note: null,
      },
    );
    for (const r of rows) {
      // A period without computed days has no figures at all (not zeros: nothing was observed).
      if (prevObserved === 0) r.previous = null;
      if (observed === 0) r.current = null;
      // Too little data where this period has no value (the baseline's null is "not recorded"); a
      // previous period the gateway did not observe says so.
      r.note = r.current === null ? TOO_LITTLE : prevObserved === 0 ? NO_PREVIOUS : tooLittle(r.previous);
      comparison.push({ site: site.id, ...r });
    }
  }

  const eco = economics ?? economicsOf(ctx.model, null);
  const potentialAmounts = amounts(potentialTotal, days, eco);
  const realisedAmounts = anyBaseline ? amounts(realisedTotal, days, eco) : null;

  // The caveats, in the order a reader needs them.
  if (!anyBaseline)
    caveats.unshift({
      code: "no_baseline",
      da: "Ingen baseline er registreret, så realiseret tid kan ikke opgøres; kun potentialet vises.",
      en: "No baseline is recorded, so realised time cannot be stated; only the potential is shown.",
    });
  else if (unitsWithout.length > 0)
    caveats.push({
      code: "units_without_baseline",
      da: `Ingen baseline for ${unitsWithout.join(", ")}: de tæller ikke med i den realiserede tid.`,
      en: `No baseline for ${unitsWithout.join(", ")}: they add nothing to the realised time.`,
    });
  const categoryDa: Record<Category, string> = {
    night_supervision: "natligt tilsyn",
    lift_transfers: "forflytninger med loftlift",
    remote_resolution: "afklaring på afstand",
    false_alarms: "falske alarmer",
  };
  const categoryEn: Record<Category, string> = {
    night_supervision: "night supervision",
    lift_transfers: "ceiling-lift transfers",
    remote_resolution: "remote resolution",
    false_alarms: "false alarms",
  };
  for (const [c, where] of unmeasured)
    caveats.push({
      code: `not_in_baseline:${c}`,
      da: `Baselinen for ${where.join(", ")} har ikke målt det, ${categoryDa[c]} kræver; den del er ikke med i den realiserede tid.`,
      en: `The baseline for ${where.join(", ")} did not measure what ${categoryEn[c]} needs; that part is not in the realised time.`,
    });
  const names = (keys: Iterable<string>) => [...keys].join(", ");
  if (realisedPlaceholders.size > 0 && anyBaseline)
    caveats.push({
      code: "realised_placeholders",
      da: `Den realiserede tid hviler delvis på pladsholdere, som stedet ikke har målt (${names(realisedPlaceholders)}).`,
      en: `The realised time rests in part on placeholders the site has not measured (${names(realisedPlaceholders)}).`,
    });
  if (placeholderParams.size > 0)
    caveats.push({
      code: "potential_placeholders",
      da: `Potentialet hviler på pladsholdere, som stedet ikke har målt (${names(placeholderParams)}).`,
      en: `The potential rests on placeholders the site has not measured (${names(placeholderParams)}).`,
    });
  const costPlaceholders = [
    ...(eco.hourlyCost.night.placeholder ? ["hourlyCost.night"] : []),
    ...(eco.hourlyCost.day.placeholder ? ["hourlyCost.day"] : []),
    ...(eco.annualHoursPerFte.placeholder ? ["annualHoursPerFte"] : []),
  ];
  if (costPlaceholders.length > 0)
    caveats.push({
      code: "cost_placeholders",
      da: `Kronebeløbene bygger på pladsholdere for timepris (${names(costPlaceholders)}); sæt stedets egne med kilde.`,
      en: `The amounts rest on placeholder hourly costs (${names(costPlaceholders)}); set the site's own with a source.`,
    });
  if (firstData.length > 0)
    caveats.push({
      code: "partial_period",
      da: `Perioden begynder før de første data (${firstData.join(", ")}); tallene dækker ${days} dage.`,
      en: `The period begins before the first data (${firstData.join(", ")}); the figures cover ${days} days.`,
    });
  if (days < SHORT_PERIOD_DAYS)
    caveats.push({
      code: "short_period",
      da: `Årstallene er fremskrevet fra kun ${days} dage.`,
      en: `The yearly figures are extrapolated from only ${days} days.`,
    });
  if (notComputed > 0)
    caveats.push({
      code: "not_computed",
      da: `${notComputed} dage i perioden er endnu ikke beregnet; tallene er for lave, indtil de er.`,
      en: `${notComputed} days of the period are not computed yet; the figures are too low until they are.`,
    });

  const above = CATEGORIES.filter(
    (c) => measured.has(c) && realisedTotal[c].minutes > potentialTotal[c].minutes + 1e-9,
  );
  if (anyBaseline && above.length > 0)
    caveats.push({
      code: "realised_above_potential",
      da: `Den realiserede tid er større end potentialet for ${above.map((c) => categoryDa[c]).join(", ")}: stedets baseline har flere eller længere tilsyn/forflytninger end modellens standardtal. Sæt stedets egne målte tal i modellen, så potentialet bygger på dem.`,
      en: `Realised time is above the potential for ${above.map((c) => categoryEn[c]).join(", ")}: the site's baseline has more or longer checks or transfers than the model's defaults. Set the site's measured figures in the model so the potential rests on them.`,
    });

  const categories = CATEGORIES.map((c) => {
    const rate = eco.hourlyCost[STAFF_OF[c]].value;
    return {
      category: c,
      staff: STAFF_OF[c],
      potential: {
        minutes: round(potentialTotal[c].minutes, 3),
        hours: round(potentialTotal[c].minutes / 60, 2),
        count: potentialTotal[c].count,
        cost: toMinorUnit((potentialTotal[c].minutes / 60) * rate),
      },
      // Null where no unit's baseline measured what the category needs: unknown, not zero.
      realised: measured.has(c)
        ? {
            minutes: round(realisedTotal[c].minutes, 3),
            hours: round(realisedTotal[c].minutes / 60, 2),
            count: realisedTotal[c].count,
            cost: toMinorUnit((realisedTotal[c].minutes / 60) * rate),
          }
        : null,
    };
  });

  const body = {
    report: "benefits",
    ranges: rangeView(scope, rangeOf),
    observedDays: days,
    headline: { realised: realisedAmounts, potential: potentialAmounts, caveats },
    categories,
    economics: eco,
    weeksPerYear: WEEKS_PER_YEAR,
    baselines,
    periods,
    comparison,
    modelVersions: Object.fromEntries(
      scope.sites.map((s) => [s.id, siteModel(ctx.model, s.id).modelVersion]),
    ),
  };

  const amountRow = (basis: string, a: Amounts | null): Cell[] => [
    basis,
    a?.minutes ?? null,
    a?.hoursPerWeek ?? null,
    a?.hoursPerYear ?? null,
    a?.fte ?? null,
    a?.cost ?? null,
    a?.costPerYear ?? null,
    eco.currency,
  ];
  const tables: Table[] = [
    {
      name: "headline",
      columns: [
        "basis",
        "minutes",
        "hours_per_week",
        "hours_per_year",
        "fte",
        "cost",
        "cost_per_year",
        "currency",
      ],
      rows: [amountRow("realised", realisedAmounts), amountRow("potential", potentialAmounts)],
    },
    {
      name: "categories",
      columns: [
        "category",
        "staff",
        "realised_minutes",
        "realised_count",
        "realised_cost",
        "potential_minutes",
        "potential_count",
        "potential_cost",
      ],
      rows: categories.map((c) => [
        c.category,
        c.staff,
        c.realised?.minutes ?? null,
        c.realised?.count ?? null,
        c.realised?.cost ?? null,
        c.potential.minutes,
        c.potential.count,
        c.potential.cost,
      ]),
    },
    {
      name: "comparison",
      columns: ["site", "figure", "unit", "baseline", "previous", "current", "note"],
      rows: comparison.map((r) => [
        r.site,
        r.figure,
        r.unit.en,
        r.baseline,
        r.previous,
        r.current,
        r.note?.en ?? null,
      ]),
      da: comparison.map((r) => [
        r.site,
        r.figure,
        r.unit.da,
        r.baseline,
        r.previous,
        r.current,
        r.note?.da ?? null,
      ]),
    },
    {
      name: "baselines",
      columns: [
        "site",
        "unit",
        "version",
        "fingerprint",
        "period_from",
        "period_to",
        "recorded_by",
        "recorded_at",
      ],
      rows: baselines.map((b) => [
        b.site,
        b.unit ?? null,
        b.version,
        b.fingerprint,
        b.period.from,
        b.period.to,
        b.recordedBy,
        b.recordedAt,
      ]),
    },
    {
      name: "caveats",
      columns: ["code", "text"],
      rows: caveats.map((c) => [c.code, c.en]),
      da: caveats.map((c) => [c.code, c.da]),
    },
  ];
  return { body, tables };
}
