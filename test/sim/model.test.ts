import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { LiftHappening } from "../../src/sim/encoders.js";
import {
  DEFAULT_PARAMS,
  type DeviceSpec,
  type Incident,
  NursingHomeModel,
  type ResidentSpec,
  type SimEvent,
} from "../../src/sim/model.js";

const TZ = "Europe/Copenhagen";
const START = Date.UTC(2025, 0, 6, 12); // a Monday, noon UTC
const DAYS = 30;
const MONTH_SEC = DAYS * 86400;

/** Local hour by the platform's own time-zone data, independent of the model's clock. */
const hourFormat = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour: "numeric", hourCycle: "h23" });
const localHour = (t: number) => Number(hourFormat.format(t));
const atNight = (t: number) => localHour(t) >= 22 || localHour(t) < 7;

/**
 * A large home, so that a month holds enough incidents to measure rates: 2,000 residents, radars in
 * half the rooms, pendants for a quarter, ceiling lifts in 150 rooms (each for a lift-dependent
 * resident), and the rest with no device at all (their falls still happen).
 */
function bigHome() {
  const residents: ResidentSpec[] = [];
  const devices: DeviceSpec[] = [];
  for (let i = 0; i < 2000; i++) {
    const room = `r${i}`;
    const lift = i >= 1000 && i < 1150;
    residents.push({
      ref: `R-${i}`,
      siteId: "home",
      unitId: `u${i % 20}`,
      roomId: room,
      flags: lift ? ["lift-dependent"] : [],
    });
    const place = { siteId: "home", unitId: `u${i % 20}`, roomId: room, residentRef: `R-${i}` };
    if (i < 1000) devices.push({ id: `radar-${i}`, profile: "vayyar/care", ...place });
    if (i % 4 === 0) devices.push({ id: `pendant-${i}`, profile: "scaip/pendant", ...place });
    if (lift) devices.push({ id: `lift-${i}`, profile: "generic/ceiling-lift", ...place, residentRef: null });
  }
  return { sites: [{ id: "home", timeZone: TZ }], residents, devices };
}

function runMonth(params = {}) {
  const incidents: Incident[] = [];
  const events: SimEvent[] = [];
  const model = new NursingHomeModel({
    ...bigHome(),
    seed: "month",
    start: START,
    durationSec: MONTH_SEC,
    // One heartbeat a day keeps this population's month small; the interval has its own test below.
    params: { heartbeatSec: 86400, ...params },
    onIncident: (i) => incidents.push(i),
  });
  for (const e of model) if (e.happening.kind !== "heartbeat") events.push(e);
  return { incidents, events, model };
}

const within = (actual: number, expected: number, relative: number) => {
  expect(actual).toBeGreaterThanOrEqual(expected * (1 - relative));
  expect(actual).toBeLessThanOrEqual(expected * (1 + relative));
};

describe("nursing-home model over a simulated month", () => {
  const { incidents, events } = runMonth();
  const ofKind = (k: Incident["kind"]) => incidents.filter((i) => i.kind === k);
  const years = DAYS / 365.25;

  it("is in time order and within the simulated range", () => {
    expect(events.findIndex((e, i) => i > 0 && e.at < events[i - 1]!.at)).toBe(-1);
    expect(events[0]!.at).toBeGreaterThanOrEqual(START);
    expect(events.at(-1)!.at).toBeLessThan(START + MONTH_SEC * 1000);
  });

  it("has falls at the configured rate per bed per year, a third of them at night", () => {
    const falls = ofKind("fall");
    within(falls.length / 2000 / years, DEFAULT_PARAMS.fallsPerBedYear, 0.2);
    const night = falls.filter((f) => atNight(f.at)).length / falls.length;
    expect(Math.abs(night - DEFAULT_PARAMS.fallNightShare)).toBeLessThan(0.08);
    // The model's own night flag agrees with the platform's time-zone data.
    for (const f of falls) expect(f.night).toBe(atNight(f.at));
  });

  it("reports falls only where a radar is, and most of those", () => {
    const falls = ofKind("fall");
    const watched = falls.filter((f) => Number(f.residentRef!.slice(2)) < 1000);
    for (const f of falls) if (!watched.includes(f)) expect(f.devices).toEqual([]);
    const seen = watched.filter((f) => f.devices.length > 0).length / watched.length;
    expect(Math.abs(seen - DEFAULT_PARAMS.radarDetectionShare)).toBeLessThan(0.08);
    // Each seen fall is detected, confirmed and ended by its radar, in that order.
    const seenIds = new Set(watched.filter((f) => f.devices.length > 0).map((f) => f.id));
    const stages = new Map<string, string[]>();
    for (const e of events) {
      if (e.incident && seenIds.has(e.incident) && e.happening.kind === "fall") {
        stages.set(e.incident, [...(stages.get(e.incident) ?? []), e.happening.stage]);
      }
    }
    expect(stages.size).toBe(seenIds.size);
    for (const s of stages.values()) expect(s).toEqual(["detected", "confirmed", "ended"]);
  });

  it("has false alarms and self-cancelled suspected falls per sensor per week as configured", () => {
    const sensorWeeks = (1000 * DAYS) / 7;
    within(ofKind("false-alarm").length / sensorWeeks, DEFAULT_PARAMS.falseAlarmsPerSensorWeek, 0.25);
    within(ofKind("cancelled-fall").length / sensorWeeks, DEFAULT_PARAMS.cancelledFallsPerSensorWeek, 0.1);
  });

  it("has night-time bed exits per resident per night as configured, most back within 2-10 minutes", () => {
    const exits = events.filter((e) => e.happening.kind === "bed.exit");
    within(exits.length / 1000 / DAYS, DEFAULT_PARAMS.bedExitsPerNight, 0.1);
    expect(exits.filter((e) => !atNight(e.at))).toEqual([]);
    const returns = events.filter((e) => e.happening.kind === "bed.return");
    const soon = returns.filter((e) => e.happening.kind === "bed.return" && e.happening.dwellSec! <= 600);
    expect(Math.abs(soon.length / returns.length - DEFAULT_PARAMS.bedReturnShare)).toBeLessThan(0.03);
    // One exit at a time per resident: every exit is followed by its own return before the next exit.
    const last = new Map<string, string>();
    const repeated: SimEvent[] = [];
    for (const e of [...exits, ...returns].sort((a, b) => a.at - b.at)) {
      if (last.get(e.deviceId) === e.happening.kind) repeated.push(e);
      last.set(e.deviceId, e.happening.kind);
    }
    expect(repeated).toEqual([]);
  });

  it("has pendant calls per resident per day as configured, more by day", () => {
    const calls = events.filter((e) => e.happening.kind === "call.manual");
    within(calls.length / 500 / DAYS, DEFAULT_PARAMS.callsPerResidentDay, 0.1);
    const byDay = calls.filter((e) => !atNight(e.at)).length / calls.length;
    expect(Math.abs(byDay - DEFAULT_PARAMS.callDayShare)).toBeLessThan(0.03);
  });

  it("has lift transfers per lift-dependent resident per day, 60-74% by one helper, ~157 s each", () => {
    const cycles = events.map((e) => e.happening).filter((h): h is LiftHappening => h.kind === "lift.cycle");
    within(cycles.length / 150 / DAYS, DEFAULT_PARAMS.liftTransfersPerResidentDay, 0.05);
    const oneHelper = cycles.filter((c) => c.helpers === 1).length / cycles.length;
    expect(Math.abs(oneHelper - DEFAULT_PARAMS.liftOneHelperShare)).toBeLessThan(0.03);
    expect(oneHelper).toBeGreaterThanOrEqual(0.6);
    expect(oneHelper).toBeLessThanOrEqual(0.74);
    const meanSec = cycles.reduce((s, c) => s + (c.endedAt - c.startedAt), 0) / cycles.length / 1000;
    expect(Math.abs(meanSec - DEFAULT_PARAMS.liftDurationMeanSec)).toBeLessThan(5);
    for (const c of cycles) expect(localHour(c.startedAt)).toBeGreaterThanOrEqual(7);
    const faults = cycles.filter((c) => c.fault).length / cycles.length;
    expect(faults).toBeLessThan(0.02);
  });

  it("sends heartbeats at the configured interval", () => {
    const model = new NursingHomeModel({
      sites: [{ id: "home", timeZone: TZ }],
      residents: [{ ref: "R-1", siteId: "home", unitId: "u", roomId: "r1", flags: [] }],
      devices: ["vayyar/care", "scaip/bed-mat", "scaip/pendant"].map((profile, i) => ({
        id: `d${i}`,
        profile,
        siteId: "home",
        unitId: "u",
        roomId: "r1",
        residentRef: "R-1",
      })),
      seed: "heartbeats",
      start: START,
      durationSec: MONTH_SEC,
    });
    const last = new Map<string, number>();
    const count = new Map<string, number>();
    const gaps: number[] = [];
    for (const e of model) {
      if (e.happening.kind !== "heartbeat") continue;
      const prev = last.get(e.deviceId);
      if (prev !== undefined && e.at - prev !== DEFAULT_PARAMS.heartbeatSec * 1000) gaps.push(e.at - prev);
      last.set(e.deviceId, e.at);
      count.set(e.deviceId, (count.get(e.deviceId) ?? 0) + 1);
    }
    expect(gaps).toEqual([]);
    expect([...count.values()]).toEqual([MONTH_SEC / 60, MONTH_SEC / 60, MONTH_SEC / 60]);
  });

  it("thins heartbeats only when asked", () => {
    const model = new NursingHomeModel({
      sites: [{ id: "home", timeZone: TZ }],
      residents: [],
      devices: [
        { id: "d", profile: "scaip/pendant", siteId: "home", unitId: "u", roomId: null, residentRef: null },
      ],
      seed: 1,
      start: START,
      durationSec: 86400,
      params: { heartbeatKeepEvery: 10, callsPerResidentDay: 0 },
    });
    expect([...model].length).toBe(86400 / 600);
  });
});

describe("nursing-home model determinism", () => {
  const digest = (seed: string) => {
    const h = createHash("sha256");
    const model = new NursingHomeModel({
      ...bigHome(),
      seed,
      start: START,
      durationSec: 2 * 86400,
      params: { heartbeatSec: 3600 },
    });
    let n = 0;
    for (const e of model) {
      h.update(JSON.stringify(e));
      n++;
    }
    return { n, hash: h.digest("hex") };
  };

  it("gives the same stream for the same seed, and another for another seed", () => {
    const a = digest("same");
    expect(a.n).toBeGreaterThan(1000);
    expect(digest("same")).toEqual(a);
    expect(digest("other").hash).not.toBe(a.hash);
  });

  it("does not change a resident's stream when another resident is added", () => {
    const home = bigHome();
    const one = (extra: boolean) =>
      [
        ...new NursingHomeModel({
          sites: home.sites,
          residents: extra
            ? [
                ...home.residents.slice(0, 2),
                { ref: "R-new", siteId: "home", unitId: "u0", roomId: "rx", flags: [] },
              ]
            : home.residents.slice(0, 2),
          devices: [
            ...home.devices.filter((d) => d.residentRef === "R-0"),
            ...(extra
              ? [
                  {
                    id: "radar-new",
                    profile: "vayyar/care",
                    siteId: "home",
                    unitId: "u0",
                    roomId: "rx",
                    residentRef: "R-new",
                  },
                ]
              : []),
          ],
          seed: "stable",
          start: START,
          durationSec: 3 * 86400,
        }),
      ]
        .filter((e) => e.deviceId === "radar-0")
        .map((e) => JSON.stringify(e.happening));
    expect(one(true)).toEqual(one(false));
  });
});

describe("a first call on demand", () => {
  it("puts one pendant call at the asked time, before anything else but heartbeats", () => {
    const home = {
      sites: [{ id: "home", timeZone: TZ }],
      residents: [{ ref: "R-1", siteId: "home", unitId: "u", roomId: "r1", flags: [] }],
      devices: [
        {
          id: "radar-1",
          profile: "vayyar/care",
          siteId: "home",
          unitId: "u",
          roomId: "r1",
          residentRef: "R-1",
        },
        {
          id: "pendant-1",
          profile: "scaip/pendant",
          siteId: "home",
          unitId: "u",
          roomId: "r1",
          residentRef: "R-1",
        },
      ],
    };
    const first = (firstCallAfterSec?: number) => {
      const model = new NursingHomeModel({
        ...home,
        seed: "first-call",
        start: START,
        durationSec: 3600,
        ...(firstCallAfterSec === undefined ? {} : { firstCallAfterSec }),
      });
      for (const e of model) if (e.happening.kind !== "heartbeat") return e;
      return undefined;
    };
    const e = first(10);
    expect(e).toMatchObject({
      at: START + 10_000,
      deviceId: "pendant-1",
      happening: { kind: "call.manual" },
    });
    expect(e?.incident).not.toBeNull();
    // Without the option the stream is the model's own (one resident rarely calls in an hour).
    expect(first()?.at).not.toBe(START + 10_000);
  });
});
