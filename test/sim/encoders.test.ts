import { describe, expect, it } from "vitest";
import { getProfile, PROFILES } from "../../devices/index.js";
import { type DecodedEvent, EVENT_DATA, type EventType } from "../../src/model/event.js";
import {
  ENCODERS,
  type FallHappening,
  type FallStage,
  getEncoder,
  type Happening,
  UnsupportedHappening,
} from "../../src/sim/encoders.js";
import { NursingHomeModel, RateModel } from "../../src/sim/model.js";

const T = Date.UTC(2025, 0, 15, 2, 13, 5); // 03:13:05 in Copenhagen
const ISO = new Date(T).toISOString();
const RECEIVED_AT = "2025-01-15T02:14:07.250Z";
const TZ = { timeZone: "Europe/Copenhagen" };

function decode(profileId: string, h: Happening): DecodedEvent[] {
  const { channel, payload } = getEncoder(profileId)!.encode(h, TZ);
  const profile = getProfile(profileId)!;
  expect(profile.topics).toContain(channel);
  return profile.decode({ topic: channel, payload, receivedAt: RECEIVED_AT });
}

const fallOf = (detected = true) => ({ id: "f-7c21", n: 7, at: T - 5000, detected });
const fall = (stage: FallStage, extra: Partial<FallHappening> = {}): FallHappening => ({
  kind: "fall",
  stage,
  at: T,
  id: `m-${stage}`,
  n: 9,
  fall: fallOf(),
  ...extra,
});
const location = { x: -0.8, y: 2.35, z: 0.2 };
const heartbeat = (battery?: number): Happening => ({
  kind: "heartbeat",
  at: T,
  id: "h-1",
  n: 1,
  battery,
  rssi: -61,
  firmware: "fw-1",
});
const lift: Happening = {
  kind: "lift.cycle",
  at: T + 146_000,
  id: "c-000412",
  n: 412,
  startedAt: T,
  endedAt: T + 146_000,
  loadKg: 71.5,
  helpers: 1,
  transfer: "bed-chair",
};
const liftData = {
  startedAt: ISO,
  endedAt: new Date(T + 146_000).toISOString(),
  loadKg: 71.5,
  helpers: 1,
  transfer: "bed-chair",
};

/** Each profile: happenings and exactly the canonical events its real decoder must make of them. */
const CASES: Record<string, { name: string; h: Happening; expected: DecodedEvent[] }[]> = {
  "ata/native": [
    {
      name: "a detected fall with confidence and location",
      h: fall("detected", { confidence: 0.91, location }),
      expected: [
        {
          type: "fall.detected",
          eventId: "m-detected",
          occurredAt: ISO,
          data: { confidence: 0.91, location },
        },
      ],
    },
    {
      name: "every fall stage",
      h: fall("cancelled"),
      expected: [{ type: "fall.cancelled", eventId: "m-cancelled", occurredAt: ISO, data: {} }],
    },
    {
      name: "a fall ended with the time on the ground",
      h: fall("ended", { onGroundSec: 335 }),
      expected: [{ type: "fall.ended", eventId: "m-ended", occurredAt: ISO, data: { onGroundSec: 335 } }],
    },
    {
      name: "bed exit",
      h: { kind: "bed.exit", at: T, id: "b-1", n: 1 },
      expected: [{ type: "bed.exit", eventId: "b-1", occurredAt: ISO, data: {} }],
    },
    {
      name: "bed return with the time out of bed",
      h: { kind: "bed.return", at: T, id: "b-2", n: 2, dwellSec: 240 },
      expected: [{ type: "bed.return", eventId: "b-2", occurredAt: ISO, data: { dwellSec: 240 } }],
    },
    {
      name: "manual call",
      h: { kind: "call.manual", at: T, id: "a-1", n: 1, pressDurationSec: 1.2 },
      expected: [{ type: "call.manual", eventId: "a-1", occurredAt: ISO, data: { pressDurationSec: 1.2 } }],
    },
    {
      name: "lift cycle",
      h: lift,
      expected: [
        { type: "lift.cycle", eventId: "c-000412", occurredAt: liftData.endedAt, data: liftData as never },
      ],
    },
    {
      name: "heartbeat",
      h: heartbeat(88),
      expected: [
        { type: "device.heartbeat", occurredAt: ISO, data: { battery: 88, rssi: -61, firmware: "fw-1" } },
      ],
    },
  ],
  "vayyar/care": [
    {
      name: "suspected (the format carries no confidence)",
      h: fall("suspected", { confidence: 0.4 }),
      expected: [
        { type: "fall.suspected", eventId: `${T - 5000}:fall_suspected`, occurredAt: ISO, data: {} },
      ],
    },
    {
      name: "detected (nor a location)",
      h: fall("detected", { confidence: 0.91, location }),
      expected: [{ type: "fall.detected", eventId: `${T - 5000}:fall_detected`, occurredAt: ISO, data: {} }],
    },
    {
      name: "confirmed",
      h: fall("confirmed"),
      expected: [
        { type: "fall.confirmed", eventId: `${T - 5000}:fall_confirmed`, occurredAt: ISO, data: {} },
      ],
    },
    {
      name: "cancelled",
      h: fall("cancelled", { fall: fallOf(false) }),
      expected: [{ type: "fall.cancelled", eventId: `${T - 5000}:canceled`, occurredAt: ISO, data: {} }],
    },
    {
      name: "ended by getting up (fall_exit), with the time on the ground",
      h: fall("ended", { onGroundSec: 5 }),
      expected: [
        { type: "fall.ended", eventId: `${T - 5000}:fall_exit`, occurredAt: ISO, data: { onGroundSec: 5 } },
      ],
    },
    {
      name: "ended without getting up (finished)",
      h: fall("ended"),
      expected: [{ type: "fall.ended", eventId: `${T - 5000}:finished`, occurredAt: ISO, data: {} }],
    },
    {
      name: "out of bed",
      h: { kind: "bed.exit", at: T, id: "b-1", n: 1 },
      expected: [{ type: "bed.exit", occurredAt: ISO, data: {} }],
    },
    {
      name: "bed region occupied again",
      h: { kind: "bed.return", at: T, id: "b-2", n: 2, dwellSec: 240 },
      expected: [{ type: "bed.return", occurredAt: ISO, data: {} }],
    },
    {
      name: "state report (mains powered, no battery; no device time or firmware in it)",
      h: heartbeat(88),
      expected: [{ type: "device.heartbeat", occurredAt: RECEIVED_AT, data: { rssi: -61 } }],
    },
  ],
  "milesight/vs373": [
    {
      name: "fall alarm with location (millimetres on the wire)",
      h: fall("detected", { confidence: 0.91, location: { x: 0.565, y: -0.838, z: 0.277 } }),
      expected: [
        {
          type: "fall.detected",
          occurredAt: RECEIVED_AT,
          data: { location: { x: 0.565, y: -0.838, z: 0.277 } },
        },
      ],
    },
    {
      name: "lying alarm is a suspected fall",
      h: fall("suspected", { location: { x: 0.41, y: -1.02, z: 0.19 } }),
      expected: [
        {
          type: "fall.suspected",
          occurredAt: RECEIVED_AT,
          data: { location: { x: 0.41, y: -1.02, z: 0.19 } },
        },
      ],
    },
    {
      name: "fall resolved",
      h: fall("ended", { onGroundSec: 5 }),
      expected: [{ type: "fall.ended", occurredAt: RECEIVED_AT, data: {} }],
    },
    {
      name: "lying resolved",
      h: fall("ended", { fall: fallOf(false) }),
      expected: [{ type: "fall.ended", occurredAt: RECEIVED_AT, data: {} }],
    },
    {
      name: "out of bed",
      h: { kind: "bed.exit", at: T, id: "b-1", n: 1 },
      expected: [{ type: "bed.exit", occurredAt: RECEIVED_AT, data: {} }],
    },
    {
      name: "out of bed resolved",
      h: { kind: "bed.return", at: T, id: "b-2", n: 2 },
      expected: [{ type: "bed.return", occurredAt: RECEIVED_AT, data: {} }],
    },
    {
      name: "periodic report",
      h: heartbeat(),
      expected: [{ type: "device.heartbeat", occurredAt: RECEIVED_AT, data: { firmware: "fw-1" } }],
    },
  ],
  "scaip/pendant": [
    {
      name: "manual call",
      h: { kind: "call.manual", at: T, id: "A-000731", n: 1, pressDurationSec: 1.2 },
      expected: [
        { type: "call.manual", eventId: "A-000731", occurredAt: ISO, data: { pressDurationSec: 1.2 } },
      ],
    },
    {
      name: "heartbeat",
      h: heartbeat(64),
      expected: [
        { type: "device.heartbeat", occurredAt: ISO, data: { battery: 64, rssi: -61, firmware: "fw-1" } },
      ],
    },
    {
      name: "heartbeat with a low battery",
      h: heartbeat(8),
      expected: [
        { type: "device.heartbeat", occurredAt: ISO, data: { battery: 8, rssi: -61, firmware: "fw-1" } },
        {
          type: "device.battery_low",
          occurredAt: ISO,
          data: { battery: 8, reason: "battery 8% is below 20%" },
        },
      ],
    },
  ],
  "scaip/bed-mat": [
    {
      name: "left the bed",
      h: { kind: "bed.exit", at: T, id: "B-004512", n: 1 },
      expected: [{ type: "bed.exit", eventId: "B-004512", occurredAt: ISO, data: {} }],
    },
    {
      name: "lying in bed again",
      h: { kind: "bed.return", at: T, id: "B-004513", n: 2, dwellSec: 300 },
      expected: [{ type: "bed.return", eventId: "B-004513", occurredAt: ISO, data: {} }],
    },
    {
      name: "heartbeat",
      h: heartbeat(71),
      expected: [
        { type: "device.heartbeat", occurredAt: ISO, data: { battery: 71, rssi: -61, firmware: "fw-1" } },
      ],
    },
  ],
  "generic/ceiling-lift": [
    {
      name: "one-helper bed-to-chair cycle",
      h: lift,
      expected: [
        { type: "lift.cycle", eventId: "c-000412", occurredAt: liftData.endedAt, data: liftData as never },
      ],
    },
    {
      name: "a cycle that ended in a fault",
      h: { ...lift, id: "c-000413", helpers: 2, fault: "E17-overcurrent" },
      expected: [
        {
          type: "lift.cycle",
          eventId: "c-000413",
          occurredAt: liftData.endedAt,
          data: { ...liftData, helpers: 2, fault: "E17-overcurrent" } as never,
        },
      ],
    },
    {
      name: "heartbeat",
      h: heartbeat(83),
      expected: [
        { type: "device.heartbeat", occurredAt: ISO, data: { battery: 83, rssi: -61, firmware: "fw-1" } },
      ],
    },
  ],
  // Behind bridges: the network server's uplink JSON or zigbee2mqtt's state, with its time.
  "milesight/vs373-lorawan": [
    {
      name: "fall alarm, event id from the uplink id",
      h: fall("detected"),
      expected: [{ type: "fall.detected", eventId: "lw:m-detected", occurredAt: ISO, data: {} }],
    },
    {
      name: "fall deactivated",
      h: fall("ended"),
      expected: [{ type: "fall.ended", eventId: "lw:m-ended", occurredAt: ISO, data: {} }],
    },
    {
      name: "out of bed and back",
      h: { kind: "bed.exit", at: T, id: "b-1", n: 1 },
      expected: [{ type: "bed.exit", eventId: "lw:b-1", occurredAt: ISO, data: {} }],
    },
    {
      name: "back in bed",
      h: { kind: "bed.return", at: T, id: "b-2", n: 2 },
      expected: [{ type: "bed.return", eventId: "lw:b-2", occurredAt: ISO, data: {} }],
    },
    {
      name: "periodic report",
      h: heartbeat(),
      expected: [
        {
          type: "device.heartbeat",
          eventId: "lw:h-1",
          occurredAt: ISO,
          data: { rssi: -61, firmware: "v1.2" },
        },
      ],
    },
  ],
  "milesight/ws301": [
    {
      name: "battery report, low",
      h: heartbeat(15),
      expected: [
        { type: "device.heartbeat", eventId: "lw:h-1:0", occurredAt: ISO, data: { battery: 15, rssi: -61 } },
        {
          type: "device.battery_low",
          eventId: "lw:h-1:1",
          occurredAt: ISO,
          data: { battery: 15, reason: "battery 15% is below 20%" },
        },
      ],
    },
  ],
  "aqara/mccgq11lm": [
    {
      name: "an unchanged closed door is a heartbeat",
      h: heartbeat(88),
      expected: [{ type: "device.heartbeat", occurredAt: ISO, data: { battery: 88 } }],
    },
  ],
  "aqara/wxkg11lm": [
    {
      name: "a press is a call",
      h: { kind: "call.manual", at: T, id: "c-1", n: 1 },
      expected: [{ type: "call.manual", occurredAt: ISO, data: {} }],
    },
    {
      name: "battery report",
      h: heartbeat(70),
      expected: [{ type: "device.heartbeat", occurredAt: ISO, data: { battery: 70 } }],
    },
  ],
  "tuya/mir-he200-ty-fall": [
    {
      name: "maybe a fall",
      h: fall("suspected"),
      expected: [{ type: "fall.suspected", occurredAt: ISO, data: {} }],
    },
    { name: "a fall", h: fall("detected"), expected: [{ type: "fall.detected", occurredAt: ISO, data: {} }] },
    { name: "fall over", h: fall("ended"), expected: [{ type: "fall.ended", occurredAt: ISO, data: {} }] },
    {
      name: "a presence report is a heartbeat",
      h: heartbeat(),
      expected: [{ type: "device.heartbeat", occurredAt: ISO, data: {} }],
    },
  ],
};

/** What a happening is, canonically: the types its decoded events must have (occurredAt aside). */
function intendedTypes(h: Happening): EventType[] {
  switch (h.kind) {
    case "fall":
      return [`fall.${h.stage}`];
    case "heartbeat":
      return h.battery !== undefined && h.battery < 20
        ? ["device.heartbeat", "device.battery_low"]
        : ["device.heartbeat"];
    default:
      return [h.kind];
  }
}

describe("simulator encoders", () => {
  it("cover every profile in the catalogue", () => {
    expect([...ENCODERS.keys()].sort()).toEqual(PROFILES.map((p) => p.id).sort());
    expect(Object.keys(CASES).sort()).toEqual(PROFILES.map((p) => p.id).sort());
  });

  for (const [profileId, cases] of Object.entries(CASES)) {
    describe(profileId, () => {
      for (const c of cases) {
        it(`${c.name} decodes with the real profile to the intended events`, () => {
          const decoded = decode(profileId, c.h);
          expect(decoded.map((e) => ({ ...e, phase: undefined }))).toEqual(
            c.expected.map((e) => ({ ...e, phase: undefined })),
          );
          for (const e of decoded) expect(EVENT_DATA[e.type].safeParse(e.data).success).toBe(true);
        });
      }

      it("refuses what the device does not emit", () => {
        const encoder = getEncoder(profileId)!;
        const all: Happening[] = [
          ...(["suspected", "detected", "confirmed", "cancelled", "ended"] as const).map((s) => fall(s)),
          { kind: "bed.exit", at: T, id: "x", n: 1 },
          { kind: "bed.return", at: T, id: "x", n: 1 },
          { kind: "call.manual", at: T, id: "x", n: 1 },
          lift,
          heartbeat(50),
        ];
        for (const h of all) {
          const stage = h.kind === "fall" ? h.stage : undefined;
          const declared =
            encoder.kinds.has(h.kind) && (stage === undefined || encoder.fallStages.has(stage));
          if (declared) expect(() => encoder.encode(h, TZ)).not.toThrow();
          else expect(() => encoder.encode(h, TZ)).toThrow(UnsupportedHappening);
          // What it does emit is among what the profile says it emits.
          if (declared) for (const t of intendedTypes(h)) expect(getProfile(profileId)!.emits).toContain(t);
        }
      });
    });
  }

  it("every happening of a simulated week, on every profile, decodes to its intended types and time", () => {
    const devices = PROFILES.map((p) => ({
      id: `d-${p.id.replace("/", "-")}`,
      profile: p.id,
      siteId: "s",
      unitId: "u",
      roomId: "r1",
      residentRef: "R-1",
    }));
    const model = new NursingHomeModel({
      sites: [{ id: "s", timeZone: "Europe/Copenhagen" }],
      residents: [{ ref: "R-1", siteId: "s", unitId: "u", roomId: "r1", flags: ["fall-risk"] }],
      devices,
      seed: "encoders",
      start: Date.UTC(2025, 2, 24),
      durationSec: 7 * 86400,
      // Enough falls and false alarms in a week to see every stage on every fall sensor.
      params: { fallsPerBedYear: 500, falseAlarmsPerSensorWeek: 5, cancelledFallsPerSensorWeek: 5 },
    });
    const rate = new RateModel({
      devices,
      eventsPerSec: 100,
      speed: 1,
      start: Date.UTC(2025, 2, 24),
      durationSec: 30,
      seed: "encoders",
    });
    const seen = new Set<string>();
    const wrong: string[] = [];
    for (const source of [model, rate]) {
      for (let e = source.next(); e; e = source.next()) {
        const { channel, payload } = getEncoder(e.profile)!.encode(e.happening, TZ);
        const decoded = getProfile(e.profile)!.decode({ topic: channel, payload, receivedAt: RECEIVED_AT });
        const types = decoded.map((d) => d.type).join(",");
        if (types !== intendedTypes(e.happening).join(","))
          wrong.push(`${e.profile} ${e.happening.kind}: ${types}`);
        // The VS373 sends local time without an offset, and the Vayyar state report no time at all:
        // those events take the gateway clock.
        const carriesTime =
          e.profile !== "milesight/vs373" &&
          !(e.profile === "vayyar/care" && e.happening.kind === "heartbeat");
        const when = new Date(
          e.happening.kind === "lift.cycle" ? e.happening.endedAt : e.happening.at,
        ).toISOString();
        for (const d of decoded) {
          if (carriesTime && d.occurredAt !== when)
            wrong.push(`${e.profile} ${d.type} at ${d.occurredAt}, not ${when}`);
          if (!EVENT_DATA[d.type].safeParse(d.data).success)
            wrong.push(`${e.profile} ${d.type}: invalid data`);
          seen.add(`${e.profile} ${d.type}`);
        }
      }
    }
    expect(wrong.slice(0, 10)).toEqual([]);
    for (const p of ["vayyar/care", "milesight/vs373"]) {
      for (const t of ["fall.suspected", "fall.detected", "fall.ended", "bed.exit", "bed.return"]) {
        expect(seen).toContain(`${p} ${t}`);
      }
    }
    expect(seen).toContain("vayyar/care fall.confirmed");
    expect(seen).toContain("vayyar/care fall.cancelled");
    expect(seen).toContain("scaip/pendant call.manual");
    expect(seen).toContain("ata/native call.manual");
    expect(seen).toContain("generic/ceiling-lift lift.cycle");
    expect(seen).toContain("scaip/bed-mat bed.exit");
  });
});
