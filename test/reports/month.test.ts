import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  alertVolumeReport,
  coverageReport,
  falseAlarmReport,
  type ReportContext,
  responseTimesReport,
  type Scope,
  timeSavedReport,
} from "../../src/reports/queries.js";
import { TimeSavedJob } from "../../src/reports/timesaved.js";
import type { Db } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { shippedModel, tempDb } from "./fixtures.js";
import {
  AFTER_MONTH,
  BIG,
  BIG_PROFILES,
  buildMonth,
  MONTH,
  MONTH_FROM_MS,
  MONTH_TO_MS,
} from "./month-data.js";

/*
 * Expected figures for October 2026 (31 days, 745 hours: the 25th has 25), default parameters
 * (5 min per night check, per false alarm and per avoided visit; 6.505 min per lift transfer).
 *
 * Night supervision, per unit and night: r8's radar drops out every night -> 7 residents qualify;
 * r1-r3 have one visit (2.5 - 1 = 1.5 checks saved), r4-r7 none (2.5): 3 x 1.5 + 4 x 2.5 = 14.5
 * checks. Month: 14.5 x 31 = 449.5 checks x 5 min = 2247.5 min per unit; 22475 for ten units.
 * Resident-nights counted: 7 x 31 = 217 per unit; eligible (r1-r8 have radars): 8 x 31 = 248.
 * Lift transfers: 2 lifts x 4 one-helper fault-free cycles x 31 days = 248 per unit x 6.505 =
 * 1613.24 min; 16132.4 for ten units. Two-helper: 2 x 31 = 62 per unit; share 248 / 310 = 0.8.
 * Remote resolution: 2 pendants x 31 remote calls = 62 per unit x 5 = 310 min; 3100 in all.
 * False alarms: 31 attended per unit x -5 = -155 min; -1550 in all.
 * Net per unit: 2247.5 + 1613.24 + 310 - 155 = 4015.74 min (66.93 h); site: 40157.4 min (669.29 h).
 */
const PER_UNIT = { night: 2247.5, lift: 1613.24, remote: 310, falseAlarms: -155, net: 4015.74 };
const SITE_NET = 40157.4;

describe("reports over a month of simulated data for 200 devices", () => {
  let t: ReturnType<typeof tempDb>;
  let db: Db;
  let store: EmbeddedSeriesStore;
  let ctx: ReportContext;
  const model = shippedModel();
  const scope: Scope = { sites: [BIG], units: null };
  const month = () => ({ from: MONTH_FROM_MS, to: MONTH_TO_MS });

  beforeAll(async () => {
    t = tempDb();
    db = t.db;
    buildMonth(db);
    store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    ctx = { db, store, model, sites: [BIG], profiles: BIG_PROFILES, now: () => AFTER_MONTH };
    const job = new TimeSavedJob({ ...ctx, now: () => AFTER_MONTH });
    const summary = await job.recompute(BIG.id, MONTH.from, MONTH.to);
    // 31 days x 10 units x 4 categories.
    expect(summary.points).toBe(1240);
  }, 120_000);
  afterAll(async () => {
    await store.stop();
    t.close();
  });

  it("time saved by unit for the month matches the hand-worked totals", async () => {
    const { body } = await timeSavedReport(ctx, scope, month, "month");
    expect(body.byUnit).toHaveLength(10);
    for (const u of body.byUnit) {
      expect(u.categories.night_supervision.minutes).toBe(PER_UNIT.night);
      expect(u.categories.lift_transfers.minutes).toBe(PER_UNIT.lift);
      expect(u.categories.remote_resolution.minutes).toBe(PER_UNIT.remote);
      expect(u.categories.false_alarms.minutes).toBe(PER_UNIT.falseAlarms);
      expect(u.minutes).toBe(PER_UNIT.net);
      expect(u.hours).toBe(66.93);
      expect(u.nightSupervision).toEqual({
        residentNights: 217,
        eligibleResidentNights: 248,
        visits: 93, // 3 residents x 31 nights
        checksSaved: 449.5,
      });
      expect(u.liftTransfers).toEqual({
        oneHelper: 248,
        twoHelper: 62,
        observedOneHelperShare: 0.8,
        publishedRange: [0.6, 0.74],
      });
    }
    expect(body.totals.minutes).toBe(SITE_NET);
    expect(body.totals.hours).toBe(669.29);
    expect(body.trend).toEqual([
      {
        site: "big",
        period: "2026-10",
        start: "2026-09-30T22:00:00.000Z",
        computed: true,
        minutes: SITE_NET,
        hours: 669.29,
        change: null,
      },
    ]);
  });

  it("daily and weekly intervals add up to the same month", async () => {
    const daily = await timeSavedReport(ctx, scope, month, "day");
    expect(daily.body.trend).toHaveLength(31);
    // Every day is the same: 40157.4 / 31 = 1295.4 min.
    for (const d of daily.body.trend) expect(d.minutes).toBe(1295.4);
    const weekly = await timeSavedReport(ctx, scope, month, "week");
    // Mondays: 28 Sep (1-4 Oct: 4 days), 5, 12, 19, 26 Oct (26-31: 6 days).
    expect(weekly.body.trend.map((w) => [w.period, w.minutes])).toEqual([
      ["2026-09-28", 5181.6], // 4 x 1295.4
      ["2026-10-05", 9067.8], // 7 x 1295.4
      ["2026-10-12", 9067.8],
      ["2026-10-19", 9067.8],
      ["2026-10-26", 7772.4], // 6 x 1295.4
    ]);
  });

  it("a unit filter returns that unit only", async () => {
    const { body } = await timeSavedReport(ctx, { sites: [BIG], units: ["u3"] }, month, "month");
    expect(body.byUnit.map((u) => u.unit)).toEqual(["u3"]);
    expect(body.totals.minutes).toBe(PER_UNIT.net);
  });

  it("response times: nearest-rank p50 and p90 per priority", async () => {
    const { body } = await responseTimesReport(ctx, scope, month);
    /*
     * Medium (the daily false alarm, 31 per unit): accept after d = 10 s x (1 + D mod 10). Over days
     * 1..31 d is 10 s on 3 days, 20 s on 4, 30..100 s on 3 each: sorted ranks 1-3: 10, 4-7: 20,
     * 8-10: 30, 11-13: 40, 14-16: 50, 17-19: 60, 20-22: 70, 23-25: 80, 26-28: 90, 29-31: 100.
     * p50 = rank ceil(0.5 x 31) = 16 -> 50 s; p90 = rank ceil(0.9 x 31) = 28 -> 90 s. Ten units
     * repeat the same days, so the site's figures are the same. Attend = d + 60; resolve = d + 300.
     */
    const medium = body.byPriority.find((p) => p.priority === "medium")!;
    expect(medium.alerts).toBe(310);
    expect(medium.toAccept).toEqual({ n: 310, p50Sec: 50, p90Sec: 90 });
    expect(medium.toAttend).toEqual({ n: 310, p50Sec: 110, p90Sec: 150 });
    expect(medium.toResolve).toEqual({ n: 310, p50Sec: 350, p90Sec: 390 });
    /*
     * High (pendant calls, 124 per unit): 62 remote (accept 30 s, resolve 60 s, never attended) and
     * 62 attended (accept d, attend d + 60, resolve d + 300, two per day).
     * Accept: 10 s x6, 20 s x8, 30 s x(62 + 6) -> rank 62 (p50) is 30 s; p90 rank ceil(111.6) = 112:
     *   cumulative 14, 82, 88 (40), 94, 100, 106, 112 (80 s) -> 80 s.
     * Attend (62): 70 x6, 80 x8, 90 x6, 100 x6, 110 x6 -> rank 31 = 110 s; rank ceil(55.8) = 56:
     *   120 -> 38, 130 -> 44, 140 -> 50, 150 -> 56 -> 150 s.
     * Resolve: 60 s x62 -> p50 = 60 s; p90 rank 112: 62 + (310 x6, 320 x8, 330 .. 380 x6) -> 380 s.
     */
    const high = body.byPriority.find((p) => p.priority === "high")!;
    expect(high.alerts).toBe(1240);
    expect(high.toAccept).toEqual({ n: 1240, p50Sec: 30, p90Sec: 80 });
    expect(high.toAttend).toEqual({ n: 620, p50Sec: 110, p90Sec: 150 });
    expect(high.toResolve).toEqual({ n: 1240, p50Sec: 60, p90Sec: 380 });
    expect(body.byUnitAndPriority).toHaveLength(20);
    const u0high = body.byUnitAndPriority.find((r) => r.unit === "u0" && r.priority === "high")!;
    expect(u0high.toAccept).toEqual({ n: 124, p50Sec: 30, p90Sec: 80 });
    expect(body.overall.alerts).toBe(1550);
  });

  it("alert volume by hour of day follows the local clock across the DST change", async () => {
    const { body } = await alertVolumeReport(ctx, scope, month);
    // 1550 = 31 days x (20 remote calls + 20 attended calls + 10 false alarms).
    expect(body.total).toBe(1550);
    expect(body.byType).toEqual([
      { type: "call", count: 1240, byPriority: { high: 1240 } },
      { type: "fall", count: 310, byPriority: { medium: 310 } },
    ]);
    // 08:00, 12:00 and 14:00 UTC are 10, 14 and 16 local on 1-24 October (CEST, 24 days) and 9, 13
    // and 15 on 25-31 October (CET, 7 days).
    const hours = Object.fromEntries(body.byHour.filter((h) => h.count > 0).map((h) => [h.hour, h.count]));
    expect(hours).toEqual({ 9: 140, 10: 480, 13: 70, 14: 240, 15: 140, 16: 480 });
    expect(body.byUnit.every((u) => u.count === 155)).toBe(true);
  });

  it("false-alarm rate per device and room", async () => {
    const { body } = await falseAlarmReport(ctx, scope, month);
    // 310 false alarms of 1550 resolved alerts.
    expect(body.total).toMatchObject({
      alerts: 1550,
      resolved: 1550,
      falseAlarms: 310,
      attendedFalseAlarms: 310,
      rate: 0.2,
    });
    const radar = body.byDevice.find((d) => d.device === "u4-radar-1")!;
    expect(radar).toMatchObject({
      room: "u4-r1",
      profile: "acme/radar",
      alerts: 31,
      falseAlarms: 31,
      rate: 1,
    });
    const pendant = body.byDevice.find((d) => d.device === "u4-pendant-9")!;
    expect(pendant).toMatchObject({ alerts: 62, falseAlarms: 0, rate: 0 });
    expect(body.byRoom.find((r) => r.room === "u4-r1")?.rate).toBe(1);
  });

  it("coverage: uptime from presence events, and residents with a fall sensor", async () => {
    const { body } = await coverageReport(ctx, scope, month);
    expect(body.byDevice).toHaveLength(200);
    // The r8 radar is offline 1 hour a night; October's local month has 745 hours: 714 / 745.
    const r8 = body.byDevice.find((d) => d.device === "u0-radar-8")!;
    expect(r8).toMatchObject({
      observedHours: 745,
      onlineHours: 714,
      offlineHours: 31,
      outages: 31,
      longestOutageMinutes: 60,
    });
    expect(r8.onlineShare).toBe(0.9584);
    const u0 = body.byUnit.find((u) => u.unit === "u0")!;
    expect(u0).toEqual({
      site: "big",
      unit: "u0",
      devices: 20,
      fallSensors: 8,
      windowHours: 745,
      observedHours: 745,
      onlineShare: 0.9979, // (19 x 745 + 714) / (20 x 745) = 14869 / 14900
      fallSensorOnlineShare: 0.9948, // (7 x 745 + 714) / (8 x 745) = 5929 / 5960
      residents: 10,
      residentsWithFallSensor: 8,
      residentCoverage: 0.8,
      rooms: 10,
      roomsWithFallSensor: 8,
    });
  });
});
