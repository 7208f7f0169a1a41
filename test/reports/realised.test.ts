/**
 * Realised against potential on the hand-computed week of scenario.ts (19-25 October 2026, with the
 * DST night of 24-25 October), measured against a baseline recorded by the site. Every expected
 * figure is worked out by hand in the comments.
 *
 * The baseline (site-wide):
 *   night checks 3 per resident per night, but 0 for R2 (no night checks in R2's care plan);
 *   6 staff-minutes per check;
 *   two-helper share 0.8 of transfers; 10 staff-minutes per two-helper transfer, so one helper
 *   with a ceiling lift (156.9 s = 2.615 min) saves 10 - 2.615 = 7.385, credited x 0.8 = 5.908;
 *   12 staff-minutes per alarm handled in the room.
 * Economics (the site's own): 1,628 hours per årsværk, night 412.50 kr/h, day 310.37 kr/h.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BaselineInput } from "../../src/reports/baseline/schema.js";
import { parseBaseline } from "../../src/reports/baseline/schema.js";
import { BaselineStore, baselineKey, baselinesInForce } from "../../src/reports/baseline/store.js";
import { benefitsReport } from "../../src/reports/benefits.js";
import { siteModel } from "../../src/reports/model.js";
import {
  computeDay,
  type DayResult,
  REALISED_MEASUREMENT,
  TimeSavedJob,
} from "../../src/reports/timesaved.js";
import type { Db } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { ms, PROFILES, shippedModel, tempDb } from "./fixtures.js";
import { AFTER_WEEK, buildScenario, OVERRIDES, SITE, WEEK, WEEK_TOTAL } from "./scenario.js";

const ECONOMICS = {
  annualHoursPerFte: { value: 1628, source: "municipal business-case net hours (test)" },
  hourlyCost: {
    night: { value: 412.5, source: "wage table + night supplement + overhead (test)" },
    day: { value: 310.37, source: "wage table + overhead (test)" },
  },
};

function baselineInput(overrides: Record<string, unknown> = {}): BaselineInput {
  return parseBaseline({
    site: SITE.id,
    period: { from: "2026-09-01", to: "2026-09-14" },
    recordedBy: "Anna (unit manager)",
    measurements: {
      nightChecksPerResident: {
        value: 3,
        method: "care plans counted 2026-09-01",
        perResident: [{ resident: "R2", value: 0 }],
      },
      minutesPerNightCheck: { value: 6, method: "timed over two weeks" },
      twoHelperTransferShare: { value: 0.8, method: "transfer log" },
      minutesPerTwoHelperTransfer: { value: 10, method: "timed" },
      minutesPerAlarm: { value: 12, method: "timed" },
      alarmsPerNight: { value: 9, method: "legacy system's log" },
      ...overrides,
    },
  });
}

/** Realised per day for unit "a": [night, lift, remote, false alarms] minutes, by hand. */
const REALISED: Record<string, [number, number, number, number]> = {
  // R1 qualified, no visits: 3 x 6 = 18. Three one-helper cycles: 3 x 5.908 = 17.724. A3 remote: 12.
  "2026-10-19": [18, 17.724, 12, 0],
  // R1 not qualified (offline in the night); R2's baseline has no checks. A10 false alarm: -12.
  "2026-10-20": [0, 0, 0, -12],
  // R1: 2 visits -> 3 - 2 = 1 x 6 = 6. A7 resolved remotely: 12.
  "2026-10-21": [6, 0, 12, 0],
  // R1: 3 visits -> max(0, 3 - 3) = 0.
  "2026-10-22": [0, 0, 0, 0],
  // R1 offline when the night began.
  "2026-10-23": [0, 0, 0, 0],
  // The DST night (10 h): R1's 06:40 CET visit is inside it -> 3 - 1 = 2 x 6 = 12. Lift: 5.908.
  "2026-10-24": [12, 5.908, 0, 0],
  // R1: A2 is an attended false alarm, not a night visit -> 3 x 6 = 18. Lift 5.908. A2: -12.
  "2026-10-25": [18, 5.908, 0, -12],
};
// Week: night 54, lifts 29.54 (5 x 5.908), remote 24, false alarms -24; net 83.54 minutes.
const REALISED_WEEK = { night: 54, lift: 29.54, remote: 24, falseAlarms: -24, net: 83.54 };

const byCategory = (day: DayResult, unit = "a") =>
  Object.fromEntries(day.realised.filter((r) => r.unit === unit).map((r) => [r.category, r]));

describe("realised time saved against a site's baseline (hand-computed week with a DST night)", () => {
  let t: ReturnType<typeof tempDb>;
  let db: Db;
  let baselines: BaselineStore;
  const model = shippedModel({ solbakken: { ...OVERRIDES.solbakken, economics: ECONOMICS } });
  const sm = siteModel(model, SITE.id);

  beforeEach(() => {
    t = tempDb();
    db = t.db;
    buildScenario(db);
    baselines = new BaselineStore(db, () => ms("2026-10-01T10:00:00Z"));
  });
  afterEach(() => t.close());

  const day = (date: string) =>
    computeDay(
      { db, profiles: PROFILES, baselines: baselinesInForce(baselines, SITE.id) },
      SITE,
      sm,
      date,
      AFTER_WEEK,
    );

  it.each(Object.entries(REALISED))("%s: realised to the minute, potential unchanged", (date, want) => {
    baselines.save(baselineInput(), "staff:anna");
    const d = day(date);
    const r = byCategory(d);
    expect(r.night_supervision!.minutes).toBeCloseTo(want[0], 9);
    expect(r.lift_transfers!.minutes).toBeCloseTo(want[1], 9);
    expect(r.remote_resolution!.minutes).toBeCloseTo(want[2], 9);
    expect(r.false_alarms!.minutes).toBeCloseTo(want[3], 9);
    // Unit "b" has the site's baseline too, and nothing happened there.
    expect(byCategory(d, "b").night_supervision!.minutes).toBe(0);
    expect(d.baselineKey).toMatch(/^v1\+[0-9a-f]{8}$/);
  });

  it("a resident with no night checks in the baseline earns no night-supervision time", () => {
    baselines.save(baselineInput(), "staff:anna");
    // 19 October: R2 was qualified with no visits; potential credits 2.5 checks, realised none.
    const d = day("2026-10-19");
    const r2 = d.nights.find((n) => n.resident === "R2")!;
    expect(r2).toMatchObject({ qualified: true, checksSaved: 2.5, minutes: 10, baselineChecks: 0 });
    expect(r2.realisedChecksSaved).toBe(0);
    expect(r2.realisedMinutes).toBe(0);
    const r1 = d.nights.find((n) => n.resident === "R1")!;
    expect(r1).toMatchObject({ baselineChecks: 3, realisedChecksSaved: 3, realisedMinutes: 18 });
    // Only R1's night is counted as realised; both are eligible.
    expect(byCategory(d).night_supervision).toMatchObject({ count: 1, ints: { eligible: 2, visits: 0 } });
  });

  it("a one-helper transfer where the baseline had one helper earns none", () => {
    // The lift is in room a-1; that room's transfers took one helper before the ceiling lift.
    baselines.save(
      baselineInput({
        twoHelperTransferShare: {
          value: 0.8,
          method: "transfer log",
          perResident: [{ room: "a-1", value: 0 }],
        },
      }),
      "staff:anna",
    );
    const lift = byCategory(day("2026-10-19")).lift_transfers!;
    expect(lift.minutes).toBe(0);
    expect(lift.count).toBe(0);
    expect(lift.ints.one_helper).toBe(3);
    // Potential still credits the three cycles at the model's 6.505 minutes.
    const potential = day("2026-10-19").results.find(
      (x) => x.unit === "a" && x.category === "lift_transfers",
    )!;
    expect(potential.minutes).toBeCloseTo(19.515, 9);
  });

  it("a category the baseline did not measure has no realised figure, not a zero", () => {
    baselines.save(
      parseBaseline({
        site: SITE.id,
        period: { from: "2026-09-01", to: "2026-09-14" },
        recordedBy: "Anna",
        measurements: { nightChecksPerResident: { value: 3, method: "care plans" } },
      }),
      "staff:anna",
    );
    const r = byCategory(day("2026-10-19"));
    expect(Object.keys(r).sort()).toEqual(["night_supervision"]);
    // No minutes per check measured: the model's 4 (the site's override) is used. R1 and R2 (no
    // exception for R2 in this baseline) each 3 checks: 2 x 3 x 4 = 24.
    expect(r.night_supervision!.minutes).toBe(2 * 3 * 4);
  });

  it("without a baseline nothing realised is computed", () => {
    const d = day("2026-10-19");
    expect(d.realised).toEqual([]);
    expect(d.baselineKey).toBeNull();
  });

  describe("stored, and the benefits account", () => {
    let store: EmbeddedSeriesStore;
    beforeEach(async () => {
      store = new EmbeddedSeriesStore({ path: ":memory:" });
      await store.start();
    });
    afterEach(() => store.stop());

    const job = () =>
      new TimeSavedJob({
        db,
        store,
        model,
        sites: [SITE],
        profiles: PROFILES,
        baselineStore: baselines,
        now: () => AFTER_WEEK,
      });
    const WEEK_MS = { from: ms("2026-10-19T00:00:00+02:00"), to: ms("2026-10-26T00:00:00+01:00") };
    /** The account of unit "a" (or the whole site) for a range, with this test's model by default. */
    const account = (
      opts: { model?: typeof model; units?: string[] | null; range?: { from: number; to: number } } = {},
    ) =>
      benefitsReport(
        {
          db,
          store,
          model: opts.model ?? model,
          sites: [SITE],
          profiles: PROFILES,
          baselineStore: baselines,
          now: () => AFTER_WEEK,
        },
        { sites: [SITE], units: opts.units === undefined ? ["a"] : opts.units },
        () => opts.range ?? WEEK_MS,
      );

    it("realised and potential in hours, årsværk and kroner to the øre", async () => {
      baselines.save(baselineInput(), "staff:anna");
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      const { body, tables } = await account();
      expect(body.observedDays).toBe(7);
      const realised = body.headline.realised!;
      // 83.54 min in 7 days: 1.392333 h per week; x 52 = 72.40133 h per year; / 1,628 = 0.044 årsværk.
      expect(realised.minutes).toBe(REALISED_WEEK.net);
      expect(realised.hoursPerWeek).toBe(1.39);
      expect(realised.hoursPerYear).toBe(72.4);
      expect(realised.fte).toBe(0.044);
      // Night 54 min = 0.9 h x 412.50 = 371.25 kr; day 29.54 + 24 - 24 = 29.54 min x 310.37 / 60 =
      // 152.80550 kr; 524.05550 -> 524.06 kr. A year: 524.0555 x 52 = 27,250.886 -> 27,250.89 kr.
      expect(realised.cost).toBe(524.06);
      expect(realised.costPerYear).toBe(27250.89);
      const potential = body.headline.potential;
      // 96.525 min: night 72 min = 1.2 h x 412.50 = 495 kr; day 24.525 min x 310.37 / 60 =
      // 126.8637375 kr; 621.8637375 -> 621.86 kr; a year 32,336.914 -> 32,336.91 kr.
      expect(potential.minutes).toBe(WEEK_TOTAL.net);
      expect(potential.cost).toBe(621.86);
      expect(potential.costPerYear).toBe(32336.91);
      expect(potential.fte).toBe(0.051); // 1.60875 h/week x 52 = 83.655 h / 1,628
      const cats = Object.fromEntries(body.categories.map((c) => [c.category, c]));
      expect(cats.night_supervision!.realised).toMatchObject({ minutes: 54, cost: 371.25 });
      expect(cats.lift_transfers!.realised!.minutes).toBe(REALISED_WEEK.lift);
      expect(cats.remote_resolution!.realised!.minutes).toBe(REALISED_WEEK.remote);
      expect(cats.false_alarms!.realised!.minutes).toBe(REALISED_WEEK.falseAlarms);
      // The site measured every rate: no placeholder caveat about time or costs; a week is short.
      const codes = body.headline.caveats.map((c) => c.code);
      expect(codes).not.toContain("realised_placeholders");
      expect(codes).not.toContain("cost_placeholders");
      expect(codes).toContain("short_period");
      expect(body.baselines).toEqual([
        expect.objectContaining({ version: 1, recordedBy: "Anna (unit manager)", appliesTo: ["a"] }),
      ]);
      // Comparison: R1 and R2 were each eligible every night; the baseline had 3 checks per night.
      const row = (f: string) => body.comparison.find((r) => r.figure === f)!;
      expect(row("night_checks_per_resident_night").baseline).toBe(3);
      expect(row("alarms_per_night").baseline).toBe(9);
      // Care alerts raised in the 7 nights 22:00-07:00: A3 (19th), A4 (20th), A5 (01:00 on the 22nd:
      // the 21st's night), A1 (22nd), A2 and A6 (03:00 on the 26th: the 25th's night). A7, A9 and A10
      // are daytime, A8 is low priority. 6 / 7 = 0.86.
      expect(row("alarms_per_night").current).toBe(0.86);
      // 11 resident-nights is under the 100 a per-night figure needs: for lidt data.
      expect(row("night_checks_per_resident_night")).toMatchObject({
        current: null,
        note: { da: "for lidt data" },
      });
      expect(row("realised_hours_per_week").current).toBe(1.39);
      expect(tables.map((x) => x.name)).toEqual([
        "headline",
        "categories",
        "comparison",
        "baselines",
        "caveats",
      ]);
    });

    it("a period that begins before the first data rests on the computed days, and says so", async () => {
      baselines.save(baselineInput(), "staff:anna");
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      // Two weeks, of which only the second was computed.
      const { body } = await account({ range: { from: ms("2026-10-12T00:00:00+02:00"), to: WEEK_MS.to } });
      expect(body.observedDays).toBe(7);
      // Per week over the 7 computed days, not the 14 asked for.
      expect(body.headline.realised!.hoursPerWeek).toBe(1.39);
      const partial = body.headline.caveats.find((c) => c.code === "partial_period")!;
      expect(partial.da).toContain("solbakken 2026-10-19");
      expect(partial.en).toContain("cover 7 days");
      // The week before (5-11 October) was not observed: no figures, said so; not zeros.
      const row = body.comparison.find((r) => r.figure === "potential_hours_per_week")!;
      expect(row).toMatchObject({
        previous: null,
        current: 1.61,
        note: { en: "no data for the previous period" },
      });
    });

    it("sites with different hourly costs in one account are said once to use the first site's", async () => {
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      // Two more sites on the file's default economics, unlike solbakken's own.
      const others = ["elmehaven", "birkely"].map((id) => ({ ...SITE, id }));
      const { body } = await benefitsReport(
        {
          db,
          store,
          model,
          sites: [SITE, ...others],
          profiles: PROFILES,
          baselineStore: baselines,
          now: () => AFTER_WEEK,
        },
        { sites: [SITE, ...others], units: null },
        () => WEEK_MS,
      );
      expect(body.headline.caveats.filter((c) => c.code === "mixed_economics")).toHaveLength(1);
      expect(body.economics.hourlyCost.night.value).toBe(412.5);
    });

    it("without a baseline the headline says so in words and realised is null", async () => {
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      const { body } = await account();
      expect(body.headline.realised).toBeNull();
      expect(body.headline.caveats[0]).toMatchObject({ code: "no_baseline" });
      expect(body.headline.caveats[0]!.da).toContain("Ingen baseline");
      expect(body.categories.every((c) => c.realised === null)).toBe(true);
    });

    it("placeholders are named in the headline's caveats", async () => {
      // The shipped model (no site overrides): every minute per item is a placeholder, and so are costs.
      const shipped = shippedModel();
      baselines.save(
        parseBaseline({
          site: SITE.id,
          period: { from: "2026-09-01", to: "2026-09-14" },
          recordedBy: "Anna",
          measurements: { nightChecksPerResident: { value: 3, method: "care plans" } },
        }),
        "staff:anna",
      );
      const { body } = await account({ model: shipped, units: null });
      const byCode = Object.fromEntries(body.headline.caveats.map((c) => [c.code, c]));
      expect(byCode.realised_placeholders!.en).toContain("minutesPerNightCheck");
      expect(byCode.potential_placeholders!.da).toContain("pladsholdere");
      expect(byCode.cost_placeholders).toBeDefined();
      expect(byCode["not_in_baseline:lift_transfers"]).toBeDefined();
      expect(body.categories.find((c) => c.category === "lift_transfers")!.realised).toBeNull();
    });

    it("a new baseline version makes the job recompute history against it", async () => {
      baselines.save(baselineInput(), "staff:anna");
      const j = new TimeSavedJob({
        db,
        store,
        model,
        sites: [SITE],
        profiles: PROFILES,
        baselineStore: baselines,
        now: () => AFTER_WEEK,
        intervalMs: 3_600_000,
      });
      await j.start();
      await j.idle();
      expect((await account()).body.headline.realised!.minutes).toBe(REALISED_WEEK.net);
      // Version 2: 8 minutes per check instead of 6 -> night 54 / 6 x 8 = 72; net 83.54 + 18 = 101.54.
      baselines.save(
        baselineInput({ minutesPerNightCheck: { value: 8, method: "timed again" } }),
        "staff:anna",
      );
      await j.runOnce();
      await j.stop();
      const { body } = await account();
      expect(body.baselines[0]!.version).toBe(2);
      expect(body.headline.realised!.minutes).toBe(101.54);
      // The points of version 1 are kept under their own key, not mixed in.
      const keys = new Set(
        (
          await store.aggregate({
            measurement: REALISED_MEASUREMENT,
            field: "minutes",
            fn: "sum",
            from: new Date(ms("2026-10-19T00:00:00+02:00")),
            to: new Date(AFTER_WEEK),
            where: { site: SITE.id },
            groupBy: ["baseline"],
          })
        ).map((r) => r.tags.baseline),
      );
      expect(keys.size).toBe(2);
      expect(keys.has(baselineKey(baselinesInForce(baselines, SITE.id))!)).toBe(true);
    });
  });
});
