import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { siteModel } from "../../src/reports/model.js";
import { timeSavedReport } from "../../src/reports/queries.js";
import {
  CATEGORIES,
  computeDay,
  computeDaySteps,
  type DayResult,
  TIME_SAVED_MEASUREMENT,
  TimeSavedJob,
} from "../../src/reports/timesaved.js";
import type { Db } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { addDays, nightWindow } from "../../src/time/zone.js";
import { DST_DAYS } from "../time/dst-table.js";
import { ms, PROFILES, shippedModel, tempDb } from "./fixtures.js";
import { AFTER_WEEK, buildScenario, EXPECTED, OVERRIDES, SITE, WEEK, WEEK_TOTAL } from "./scenario.js";

const HOUR = 3_600_000;

function unitA(day: DayResult, category: (typeof CATEGORIES)[number]) {
  const r = day.results.find((x) => x.unit === "a" && x.category === category);
  if (!r) throw new Error(`no ${category} result for unit a on ${day.date}`);
  return r;
}

describe("night windows in the site's time zone", () => {
  const { nightStart, nightEnd } = siteModel(shippedModel(), null).params;

  it.each(DST_DAYS)("the shipped model's night before $date in $zone is the table's night", (d) => {
    expect([nightStart, nightEnd]).toEqual([d.night.from, d.night.to]);
    const [start, end] = nightWindow(d.eve, nightStart, nightEnd, d.zone);
    expect([new Date(start).toISOString(), new Date(end).toISOString()]).toEqual([
      d.night.start,
      d.night.end,
    ]);
    expect((end - start) / HOUR).toBe(d.night.hours);
  });

  it("a night window inside one date (00:00-06:00) belongs to that date", () => {
    const [start, end] = nightWindow("2026-10-20", "00:00", "06:00", "Europe/Copenhagen");
    expect(new Date(start).toISOString()).toBe("2026-10-19T22:00:00.000Z");
    expect((end - start) / HOUR).toBe(6);
  });
});

describe("time saved on a hand-computed week (19-25 October 2026, Europe/Copenhagen)", () => {
  let t: ReturnType<typeof tempDb>;
  let db: Db;
  const model = shippedModel(OVERRIDES);
  const sm = siteModel(model, SITE.id);

  beforeEach(() => {
    t = tempDb();
    db = t.db;
    buildScenario(db);
  });
  afterEach(() => t.close());

  it("uses the shipped parameters with the site's overrides, and the derived lift saving of 6.505 min", () => {
    expect(sm.params.nightChecksPerResident).toBe(2.5);
    expect(sm.params.minutesPerNightCheck).toBe(4);
    expect(sm.params.minutesPerAvoidedVisit).toBe(3);
    expect(sm.params.minutesPerFalseAlarm).toBe(7);
    // (2 x 273.6 s - 1 x 156.9 s) / 60 = 390.3 / 60
    expect(sm.params.liftMinutesSavedPerTransfer).toBeCloseTo(6.505, 10);
    expect(sm.modelVersion).toMatch(/^2026\.1\+[0-9a-f]{8}$/);
  });

  for (const [date, want] of Object.entries(EXPECTED)) {
    it(`computes ${date} to the minute: net ${want.net} min`, () => {
      const day = computeDay({ db, profiles: PROFILES }, SITE, sm, date, AFTER_WEEK);
      expect(day.nightComplete).toBe(true);
      const got = {
        night: [unitA(day, "night_supervision").minutes, unitA(day, "night_supervision").count],
        lift: [unitA(day, "lift_transfers").minutes, unitA(day, "lift_transfers").count],
        remote: [unitA(day, "remote_resolution").minutes, unitA(day, "remote_resolution").count],
        falseAlarms: [unitA(day, "false_alarms").minutes, unitA(day, "false_alarms").count],
      };
      for (const key of ["night", "lift", "remote", "falseAlarms"] as const) {
        expect(got[key][0], `${key} minutes`).toBeCloseTo(want[key][0], 9);
        expect(got[key][1], `${key} count`).toBe(want[key][1]);
      }
      const net = day.results.filter((r) => r.unit === "a").reduce((s, r) => s + r.minutes, 0);
      expect(net).toBeCloseTo(want.net, 9);
      // Unit b has no residents, devices or alerts: every category is written, as zero.
      for (const c of CATEGORIES) {
        const b = day.results.find((x) => x.unit === "b" && x.category === c);
        expect(b?.minutes).toBe(0);
        expect(b?.count).toBe(0);
      }
    });
  }

  it("keeps the detail behind the night figure: eligible residents, visits, checks saved", () => {
    const detail = (date: string) => {
      const n = unitA(
        computeDay({ db, profiles: PROFILES }, SITE, sm, date, AFTER_WEEK),
        "night_supervision",
      );
      return { eligible: n.ints.eligible, visits: n.ints.visits, checks: n.floats.checks_saved };
    };
    // R1 and R2 have radars; R3 has none. Visits on the 22nd: R1 3 (merged 23:35, 05:00, 06:00), R2 2.
    expect(detail("2026-10-22")).toEqual({ eligible: 2, visits: 5, checks: 0.5 });
    expect(detail("2026-10-21")).toEqual({ eligible: 2, visits: 3, checks: 2 });
    const lifts = unitA(
      computeDay({ db, profiles: PROFILES }, SITE, sm, "2026-10-20", AFTER_WEEK),
      "lift_transfers",
    );
    expect(lifts.ints).toEqual({ two_helper: 1, faults: 1 });
  });

  it("the DST night counts the 06:40 CET visit and the 06:30 CET outage, which lie after 07:00 CEST", () => {
    const day = computeDay({ db, profiles: PROFILES }, SITE, sm, "2026-10-24", AFTER_WEEK);
    const r1 = day.nights.find((n) => n.resident === "R1")!;
    const r2 = day.nights.find((n) => n.resident === "R2")!;
    expect(r1.qualified).toBe(true);
    expect(r1.visits.map((v) => new Date(v).toISOString())).toEqual(["2026-10-25T05:40:00.000Z"]);
    expect(r1.checksSaved).toBe(1.5);
    expect(r2.qualified).toBe(false);
  });

  it("a night that has not ended yet saves nothing so far", () => {
    const now = ms("2026-10-25T12:00:00+01:00");
    const day = computeDay({ db, profiles: PROFILES }, SITE, sm, "2026-10-25", now);
    expect(day.nightComplete).toBe(false);
    expect(unitA(day, "night_supervision").minutes).toBe(0);
    expect(unitA(day, "night_supervision").ints.eligible).toBe(2);
    // The day's lift cycle at 10:00 is already counted.
    expect(unitA(day, "lift_transfers").count).toBe(1);
  });

  describe("stored through the TimeSeriesStore", () => {
    let store: EmbeddedSeriesStore;
    beforeEach(async () => {
      store = new EmbeddedSeriesStore({ path: ":memory:" });
      await store.start();
    });
    afterEach(() => store.stop());

    const job = (m = model, now = AFTER_WEEK) =>
      new TimeSavedJob({ db, store, model: m, sites: [SITE], profiles: PROFILES, now: () => now });
    const report = (m = model, interval: "day" | "week" | "month" = "day") =>
      timeSavedReport(
        { db, store, model: m, sites: [SITE], profiles: PROFILES },
        { sites: [SITE], units: null },
        () => ({ from: ms("2026-10-19T00:00:00+02:00"), to: ms("2026-10-26T00:00:00+01:00") }),
        interval,
      );

    it("a week's report matches the hand-computed totals, per day and per category", async () => {
      const summary = await job().recompute(SITE.id, WEEK.from, WEEK.to);
      // 7 days x 2 units x 4 categories.
      expect(summary).toMatchObject({ days: 7, points: 56 });
      const { body } = await report();
      const a = body.byUnit.find((u) => u.unit === "a")!;
      expect(a.categories.night_supervision.minutes).toBe(WEEK_TOTAL.night);
      expect(a.categories.lift_transfers.minutes).toBe(WEEK_TOTAL.lift);
      expect(a.categories.remote_resolution.minutes).toBe(WEEK_TOTAL.remote);
      expect(a.categories.false_alarms.minutes).toBe(WEEK_TOTAL.falseAlarms);
      expect(a.minutes).toBe(WEEK_TOTAL.net);
      expect(a.hours).toBe(1.61); // 96.525 / 60 = 1.60875
      expect(a.nightSupervision).toEqual({
        residentNights: 11,
        eligibleResidentNights: 14,
        visits: 10,
        checksSaved: 18,
      });
      // One-helper share observed: 5 of 6 fault-free cycles in the week (the 26th is outside).
      expect(a.liftTransfers).toMatchObject({ oneHelper: 5, twoHelper: 1, observedOneHelperShare: 0.833 });
      expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
      expect(body.trend.map((p) => [p.period, p.minutes])).toEqual(
        Object.entries(EXPECTED).map(([date, e]) => [date, e.net]),
      );
      // Sunday 25 October has 25 hours: its bucket starts at local midnight CEST.
      expect(body.trend[6]!.start).toBe("2026-10-24T22:00:00.000Z");
      expect(body.model.modelVersion).toBe(sm.modelVersion);
      expect(body.model.parameters.minutesPerNightCheck).toMatchObject({ value: 4, siteOverride: true });

      const weekly = await report(model, "week");
      expect(weekly.body.trend).toEqual([
        expect.objectContaining({ period: "2026-10-19", minutes: WEEK_TOTAL.net, computed: true }),
      ]);
    });

    it("recomputing the same week overwrites instead of adding", async () => {
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      await job().recompute(SITE.id, "2026-10-21", "2026-10-23");
      await job().recompute(SITE.id, new Date(ms("2026-10-19T00:00:00+02:00")), new Date(AFTER_WEEK));
      const { body } = await report();
      expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
    });

    it("after a parameter change the recomputed range carries the new version and the new minutes", async () => {
      await job().recompute(SITE.id, WEEK.from, WEEK.to);
      const changed = shippedModel({ solbakken: { ...OVERRIDES.solbakken, minutesPerNightCheck: 6 } });
      const newVersion = siteModel(changed, SITE.id).modelVersion;
      expect(newVersion).not.toBe(sm.modelVersion);
      await job(changed).recompute(SITE.id, WEEK.from, WEEK.to);
      const { body } = await report(changed);
      // 18 checks saved x 6 min = 108; the other categories are unchanged.
      expect(body.totals.categories.night_supervision.minutes).toBe(108);
      expect(body.totals.minutes).toBe(108 + 32.525 + 6 - 14);
      // The points of the old version are kept (traceable), and not mixed into the new report.
      const old = await store.aggregate({
        measurement: TIME_SAVED_MEASUREMENT,
        field: "minutes",
        fn: "sum",
        from: new Date(ms("2026-10-19T00:00:00+02:00")),
        to: new Date(AFTER_WEEK),
        where: { site: SITE.id, model_version: sm.modelVersion },
      });
      expect(old[0]!.value).toBeCloseTo(WEEK_TOTAL.net, 9);
    });

    it("the job backfills missing days at start, then keeps yesterday and today current", async () => {
      const now = ms("2026-10-26T12:00:00+01:00");
      const j = new TimeSavedJob({
        db,
        store,
        model,
        sites: [SITE],
        profiles: PROFILES,
        now: () => now,
        backfillDays: 30,
        intervalMs: 3_600_000,
      });
      const computed: { from: string; to: string }[] = [];
      j.on("computed", (s) => computed.push({ from: s.from, to: s.to }));
      await j.start();
      await j.idle();
      await j.stop();
      // First activity is the radars' online events on 18 October: backfill 18-24, then 25-26.
      expect(computed).toEqual([
        { from: "2026-10-18", to: "2026-10-25" },
        { from: "2026-10-25", to: "2026-10-27" },
      ]);
      const { body } = await report();
      expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
      expect(addDays("2026-10-25", 1)).toBe("2026-10-26");
    });

    it("a store that cannot answer at start gets the backfill on a later run", async () => {
      let down = true;
      const flaky = new Proxy(store, {
        get(target, prop, receiver) {
          if (down && (prop === "aggregate" || prop === "write"))
            return async () => Promise.reject(new Error("store down"));
          const v = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const j = new TimeSavedJob({
        db,
        store: flaky,
        model,
        sites: [SITE],
        profiles: PROFILES,
        now: () => AFTER_WEEK,
        backfillDays: 30,
      });
      j.on("error", () => undefined);
      await j.start();
      await j.idle();
      down = false;
      const computed: { from: string; to: string }[] = [];
      j.on("computed", (s) => computed.push({ from: s.from, to: s.to }));
      await j.runOnce();
      await j.stop();
      // The failed run left 25-26 to retry; the backfill asks again and finds 18-24 missing.
      expect(computed).toEqual([
        { from: "2026-10-18", to: "2026-10-25" },
        { from: "2026-10-25", to: "2026-10-27" },
      ]);
      const { body } = await report();
      expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
    });

    it("a store that fails is retried by the next run from the first day it missed", async () => {
      let failing = true;
      const flaky = new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === "write" && failing) return async () => Promise.reject(new Error("store down"));
          const v = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      let now = ms("2026-10-24T12:00:00+02:00");
      const j = new TimeSavedJob({
        db,
        store: flaky,
        model,
        sites: [SITE],
        profiles: PROFILES,
        now: () => now,
      });
      const errors: unknown[] = [];
      j.on("error", (e) => errors.push(e));
      expect(await j.runOnce()).toEqual([]);
      expect(errors).toHaveLength(1);
      failing = false;
      now = AFTER_WEEK;
      const [summary] = await j.runOnce();
      // Failed at 23-24 on the 24th; the run on the 26th covers 23-26.
      expect(summary).toMatchObject({ from: "2026-10-23", to: "2026-10-27", days: 4 });
    });
  });
});

describe("a large site's day is computed in steps", () => {
  it("pauses between groups of residents and gives the same result as in one piece", () => {
    const t = tempDb();
    try {
      const at = ms("2026-11-01T00:00:00Z");
      const insertRes = t.db.prepare(
        "INSERT INTO residents (ref, site_id, unit_id, room_id, flags) VALUES (?, 's', ?, ?, '[]')",
      );
      const insertDev = t.db.prepare(
        `INSERT INTO devices (id, profile, site_id, unit_id, room_id, resident_ref, secret_hash, created_at, updated_at)
         VALUES (?, 'acme/radar', 's', ?, ?, ?, 'x', ?, ?)`,
      );
      const insertOnline = t.db.prepare(
        `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, room_id, profile, data)
         VALUES (?, ?, 'device.online', 'point', ?, ?, 's', ?, ?, 'acme/radar', '{}')`,
      );
      t.db.transaction(() => {
        for (let i = 0; i < 240; i++) {
          const unit = `u${i % 4}`;
          insertRes.run(`R-${i}`, unit, `room-${i}`);
          // Half the sensors name their resident, half are only in the room.
          insertDev.run(`d${i}`, unit, `room-${i}`, i % 2 ? `R-${i}` : null, at, at);
          insertOnline.run(`on-${i}`, `d${i}`, at, at, unit, `room-${i}`);
        }
      })();
      const site = {
        id: "s",
        timeZone: "Europe/Copenhagen",
        units: [0, 1, 2, 3].map((i) => ({ id: `u${i}` })),
      };
      const sm = siteModel(shippedModel(), "s");
      const now = ms("2026-11-23T12:00:00Z");
      const steps = computeDaySteps({ db: t.db, profiles: PROFILES }, site, sm, "2026-11-20", now);
      let pauses = 0;
      let step = steps.next();
      for (; !step.done; step = steps.next()) pauses++;
      expect(pauses).toBeGreaterThanOrEqual(4);
      const whole = computeDay({ db: t.db, profiles: PROFILES }, site, sm, "2026-11-20", now);
      expect(step.value).toEqual(whole);
      expect(whole.nights.filter((n) => n.qualified)).toHaveLength(240);
      expect(whole.nights.every((n) => n.sensors.length === 1)).toBe(true);
    } finally {
      t.close();
    }
  });
});
