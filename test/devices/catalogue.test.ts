/**
 * The device catalogue as a whole (after zigbee-herdsman-converters' checks.test.ts), then focused
 * decoder tests per profile for the edges fixtures do not show: clocks, optional fields, encodings.
 */
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { byChannel, heartbeat, parseWith, readTime, toIso } from "../../devices/blocks.js";
import { ceilingLift } from "../../devices/ceiling-lift.js";
import {
  checkCatalogue,
  checkProfile,
  checkSamples,
  formatSampleResults,
} from "../../devices/conformance.js";
import { getProfile, PROFILES } from "../../devices/index.js";
import { milesightVs373 } from "../../devices/milesight-vs373.js";
import { nativeProfile } from "../../devices/native.js";
import { scaipBedMat } from "../../devices/scaip-bedmat.js";
import { scaipPendant } from "../../devices/scaip-pendant.js";
import { vayyarCare } from "../../devices/vayyar-care.js";
import { type DecodedEvent, EVENT_TYPES, type EventType } from "../../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../../src/model/profile.js";

const RECEIVED_AT = "2025-01-15T02:14:07.250Z";

function decode(
  profile: DeviceProfile,
  topic: string,
  payload: unknown,
  receivedAt = RECEIVED_AT,
): DecodedEvent[] {
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  return profile.decode({ topic, payload: bytes, receivedAt });
}

/** The DecodeError a payload is rejected with, as "code: message"; fails the test if it decodes. */
function rejection(profile: DeviceProfile, topic: string, payload: unknown): string {
  try {
    const events = decode(profile, topic, payload);
    throw new Error(`expected a rejection, decoded ${JSON.stringify(events)}`);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return `${err.code}: ${err.message}`;
  }
}

function isProfile(value: unknown): value is DeviceProfile {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as DeviceProfile).id === "string" &&
    typeof (value as DeviceProfile).decode === "function" &&
    Array.isArray((value as DeviceProfile).fixtures)
  );
}

describe("the device catalogue", () => {
  it("gives every profile a unique id", () => {
    const ids = PROFILES.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it.each(PROFILES.map((p) => [p.id, p] as const))(
    "%s conforms: checkProfile finds nothing",
    (_id, profile) => {
      expect(checkProfile(profile)).toEqual([]);
    },
  );

  it("checkCatalogue agrees for the catalogue as a whole", () => {
    expect(checkCatalogue(PROFILES)).toEqual([]);
    expect(checkCatalogue([vayyarCare, vayyarCare])).toContain("vayyar/care: id is used by two profiles");
  });

  it("registers every profile file in devices/ in PROFILES", async () => {
    const dir = new URL("../../devices/", import.meta.url);
    const library = new Set(["index.ts", "blocks.ts", "conformance.ts"]);
    const files = readdirSync(dir).filter((f) => f.endsWith(".ts") && !library.has(f));
    expect(files.length).toBeGreaterThanOrEqual(PROFILES.length);
    for (const file of files) {
      const mod: Record<string, unknown> = await import(new URL(file, dir).href);
      const exported = Object.values(mod).filter(isProfile);
      expect(exported, `${file} exports no DeviceProfile`).not.toHaveLength(0);
      for (const p of exported) expect(PROFILES, `${file}: ${p.id} is not in PROFILES`).toContain(p);
    }
  });

  it("finds a profile by id, and nothing for an unknown id", () => {
    for (const p of PROFILES) expect(getProfile(p.id)).toBe(p);
    expect(getProfile("acme/unknown")).toBeUndefined();
  });

  describe("covers every canonical event type a device would send", () => {
    // What real devices send, shown by a vendor profile's fixtures (not by ata/native, which takes anything).
    const vendorFixtureTypes = new Set(
      PROFILES.filter((p) => p.kind !== "gateway-native").flatMap((p) =>
        p.fixtures.flatMap((f) => (f.rejects ? [] : f.expected.map((e) => e.type))),
      ),
    );
    const REQUIRED: EventType[] = [
      "fall.suspected",
      "fall.detected",
      "fall.confirmed",
      "fall.cancelled",
      "fall.ended",
      "bed.exit",
      "bed.return",
      "presence.motionless",
      "presence.dwell",
      "call.manual",
      "lift.cycle",
      "device.heartbeat",
      "device.battery_low",
      // Door contacts (milesight/ws301 over LoRaWAN, aqara/mccgq11lm via zigbee2mqtt); WS301 tamper.
      "door.open",
      "device.tamper",
    ];
    // No profile yet: chair mats, room-exit sensors, presence buttons and mains supervision.
    const NO_DEVICE_YET: EventType[] = [
      "chair.exit",
      "room.exit",
      "staff.presence",
      "intervention.complete",
      "device.power",
    ];
    // Derived by the gateway from the status topic and supervision, never sent.
    const GATEWAY_ONLY: EventType[] = ["device.online", "device.offline"];

    it("accounts for every canonical type exactly once", () => {
      expect([...REQUIRED, ...NO_DEVICE_YET, ...GATEWAY_ONLY].sort()).toEqual([...EVENT_TYPES].sort());
    });

    it.each(REQUIRED)("a vendor profile's fixture shows %s", (type) => {
      expect(vendorFixtureTypes.has(type)).toBe(true);
    });

    it.each(NO_DEVICE_YET)("%s is still a gap (move it to REQUIRED once a profile covers it)", (type) => {
      expect(vendorFixtureTypes.has(type)).toBe(false);
    });

    it("shows every type a device may send through ata/native", () => {
      const nativeTypes = new Set(nativeProfile.fixtures.flatMap((f) => f.expected.map((e) => e.type)));
      for (const t of [...REQUIRED, ...NO_DEVICE_YET]) expect(nativeTypes.has(t), t).toBe(true);
    });
  });

  describe("rejects undecodable bytes on every JSON channel", () => {
    const channels = PROFILES.flatMap((p) => p.topics.map((t) => [p.id, t, p] as const));
    it.each(channels)("%s on %s: invalid UTF-8 is bad_encoding", (_id, topic, profile) => {
      expect(rejection(profile, topic, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]))).toMatch(
        /^bad_encoding/,
      );
    });
    it.each(channels)("%s on %s: text that is not JSON is bad_json", (_id, topic, profile) => {
      expect(rejection(profile, topic, Buffer.from("fallStatus=fall_detected"))).toMatch(/^bad_json/);
    });
    it.each(PROFILES.map((p) => [p.id, p] as const))(
      "%s: an undeclared channel is unknown_topic",
      (_id, profile) => {
        expect(rejection(profile, "nonsense", {})).toMatch(/^unknown_topic/);
      },
    );
  });
});

describe("blocks", () => {
  it("reads epoch seconds and milliseconds as the same instant", () => {
    expect(readTime(1736907185)).toEqual({ iso: "2025-01-15T02:13:05.000Z" });
    expect(readTime(1736907185000)).toEqual({ iso: "2025-01-15T02:13:05.000Z" });
    expect(readTime(1736907185.25)).toEqual({ iso: "2025-01-15T02:13:05.250Z" });
    expect(readTime("1736907185")).toEqual({ iso: "2025-01-15T02:13:05.000Z" });
  });

  it("normalises ISO times with an offset to UTC and refuses local times", () => {
    expect(readTime("2025-01-15T03:13:05+01:00")).toEqual({ iso: "2025-01-15T02:13:05.000Z" });
    expect(readTime("2025-01-15T02:13:05.5Z")).toEqual({ iso: "2025-01-15T02:13:05.500Z" });
    expect(readTime("2025-01-15T03:13:05")).toMatchObject({ reason: expect.stringMatching(/UTC offset/) });
    expect(readTime("yesterday")).toMatchObject({ reason: expect.any(String) });
    expect(readTime(-5)).toMatchObject({ reason: expect.any(String) });
  });

  it("treats a clock before 2001 as not set", () => {
    expect(readTime(0)).toEqual({ unset: true });
    expect(readTime(946684800)).toEqual({ unset: true });
    expect(() => toIso(0, "start")).toThrowError(/start: device clock is not set/);
  });

  it("turns a zod failure into bad_schema naming the path", () => {
    const schema = (async () => (await import("zod")).z)();
    return schema.then((z) => {
      const S = z.object({ a: z.object({ b: z.number() }) });
      try {
        parseWith(S, { a: { b: "x" } }, "thing");
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
        expect((err as DecodeError).code).toBe("bad_schema");
        expect((err as DecodeError).message).toMatch(/^thing: a\.b: /);
      }
    });
  });

  it("reports a low battery below the threshold only", () => {
    const at = RECEIVED_AT;
    expect(heartbeat({ battery: 20 }, at).map((e) => e.type)).toEqual(["device.heartbeat"]);
    expect(heartbeat({ battery: 19.5 }, at).map((e) => e.type)).toEqual([
      "device.heartbeat",
      "device.battery_low",
    ]);
    expect(heartbeat({}, at)).toEqual([{ type: "device.heartbeat", occurredAt: at, data: {} }]);
  });

  it("dispatches by channel and names the known ones for an unknown channel", () => {
    const d = byChannel({ a: () => [], b: () => [] });
    expect(d({ topic: "a", payload: Buffer.alloc(0), receivedAt: RECEIVED_AT })).toEqual([]);
    expect(() => d({ topic: "toString", payload: Buffer.alloc(0), receivedAt: RECEIVED_AT })).toThrowError(
      /not one of this profile's: a, b/,
    );
  });
});

describe("ata/native", () => {
  it("fills occurredAt from the gateway clock and keeps what the device set", () => {
    expect(
      decode(nativeProfile, "events", { type: "call.manual", seq: 7, priority: "high", data: {} }),
    ).toEqual([{ type: "call.manual", seq: 7, priority: "high", occurredAt: RECEIVED_AT, data: {} }]);
  });

  it("accepts an empty batch", () => {
    expect(decode(nativeProfile, "events", [])).toEqual([]);
  });

  it("rejects the whole batch when one event is wrong, naming which", () => {
    const batch = [
      { type: "bed.exit", data: {} },
      { type: "bed.return", data: { dwellSec: -3 } },
    ];
    expect(rejection(nativeProfile, "events", batch)).toMatch(/^bad_schema: events\[1\]\.data: dwellSec: /);
  });

  it("rejects a missing data object and a bad eventId", () => {
    expect(rejection(nativeProfile, "events", { type: "bed.exit" })).toMatch(
      /^bad_schema: event: data: .*expected object/,
    );
    expect(rejection(nativeProfile, "events", { type: "bed.exit", eventId: "a b", data: {} })).toMatch(
      /^bad_schema: event: eventId: /,
    );
  });

  it("does not accept envelope fields the gateway fills in", () => {
    expect(rejection(nativeProfile, "events", { type: "bed.exit", deviceId: "other", data: {} })).toMatch(
      /^bad_schema: .*deviceId/,
    );
  });
});

describe("vayyar/care", () => {
  const fall = (status: string, extra: Record<string, unknown> = {}) => ({
    type: 1,
    payload: { status, timestamp: 1736907185, ...extra },
  });

  it("reads the fall time in seconds, milliseconds and ISO alike", () => {
    const times = [1736907185, 1736907185000, "2025-01-15T02:13:05Z"].map(
      (timestamp) => decode(vayyarCare, "events", fall("fall_detected", { timestamp }))[0]?.occurredAt,
    );
    expect(times).toEqual(Array(3).fill("2025-01-15T02:13:05.000Z"));
  });

  it("gives each transition of one fall its own eventId, and a redelivery the same one", () => {
    const ids = ["fall_detected", "fall_confirmed", "calling", "finished"].map(
      (status) => decode(vayyarCare, "events", fall(status))[0]?.eventId,
    );
    expect(new Set(ids).size).toBe(4);
    expect(decode(vayyarCare, "events", fall("fall_detected"))[0]?.eventId).toBe(ids[0]);
  });

  it("reads a status spelled with spaces or underscores, in any case, as one status with one eventId", () => {
    const spellings = ["fall exit", "fall_exit", "Fall Exit"].map(
      (status) => decode(vayyarCare, "events", fall(status, { endTimestamp: 1736907245 }))[0],
    );
    expect(spellings).toEqual(Array(3).fill(spellings[0]));
    expect(spellings[0]).toMatchObject({ type: "fall.ended", data: { onGroundSec: 60 } });
  });

  it("uses the gateway clock when the device clock is unset or absent", () => {
    expect(decode(vayyarCare, "events", fall("fall_detected", { timestamp: 0 }))).toEqual([
      { type: "fall.detected", occurredAt: RECEIVED_AT, data: {} },
    ]);
    expect(decode(vayyarCare, "events", { type: 1, payload: { status: "fall_detected" } })).toEqual([
      { type: "fall.detected", occurredAt: RECEIVED_AT, data: {} },
    ]);
  });

  it("ignores fields it does not know, so a firmware update does not silence falls", () => {
    const events = decode(vayyarCare, "events", {
      ...fall("fall_detected", { isSilent: false, radarVersion: "41" }),
      deviceId: "id_ODQ6ODk6ZWM6NDA6NDc6ZDA",
    });
    expect(events).toEqual([
      {
        type: "fall.detected",
        eventId: "1736907185000:fall_detected",
        occurredAt: "2025-01-15T02:13:05.000Z",
        data: {},
      },
    ]);
  });

  it("rejects a message without a numeric type and a fall status that is not text", () => {
    expect(rejection(vayyarCare, "events", { type: "fall", payload: {} })).toMatch(
      /^bad_schema: event: type/,
    );
    expect(rejection(vayyarCare, "events", fall("fall_detected", { status: 3 }))).toMatch(
      /^bad_schema: fall event: payload: status/,
    );
  });
});

describe("milesight/vs373", () => {
  const info = { device_model: "VS373-915M", device_sn: "6806E51510750004", time: "2025-01-15 03:13:05" };

  it("reads the spaced, nested layout of Milesight's examples like the flat one", () => {
    const flat = { device_info: info, trigger_data: { type: 0, trigger_id: 9, event: 3, status: 1 } };
    const spaced = {
      "device info": {
        "device model": "VS373-915M",
        time: "2025-01-15 03:13:05",
        "trigger data": { event: 3, status: 1 },
      },
    };
    expect(decode(milesightVs373, "up", spaced)).toEqual(decode(milesightVs373, "up", flat));
  });

  it("keeps a fall whose location cannot be read, without the location", () => {
    const payload = { device_info: info, trigger_data: { event: 0, status: 1, location: "somewhere" } };
    expect(decode(milesightVs373, "up", payload)).toEqual([
      { type: "fall.detected", occurredAt: RECEIVED_AT, data: {} },
    ]);
  });

  it("maps vacant to nothing and a tachypnea alarm to unsupported", () => {
    expect(
      decode(milesightVs373, "up", { device_info: info, trigger_data: { event: 5, status: 1 } }),
    ).toEqual([]);
    expect(
      rejection(milesightVs373, "up", { device_info: info, trigger_data: { event: 7, status: 1 } }),
    ).toMatch(/^unsupported: event 7 Tachypnea/);
  });

  it("rejects an unknown status code and a non-numeric event", () => {
    expect(
      rejection(milesightVs373, "up", { device_info: info, trigger_data: { event: 0, status: 9 } }),
    ).toMatch(/^unknown_event: trigger status 9/);
    expect(
      rejection(milesightVs373, "up", { device_info: info, trigger_data: { event: "fall", status: 1 } }),
    ).toMatch(/^bad_schema: VS373 report: trigger_data\.event/);
  });

  it("uses the gateway clock, as the device's local time has no offset", () => {
    const at = "2025-06-01T12:00:00.000Z";
    expect(decode(milesightVs373, "up", { device_info: info }, at)[0]?.occurredAt).toBe(at);
  });
});

describe("scaip/pendant and scaip/bed-mat", () => {
  it("reads ts in seconds and milliseconds alike, and falls back to the gateway clock", () => {
    const call = { mty: "AL", dty: "0003", stc: "0010", ref: "r1" };
    expect(decode(scaipPendant, "scaip", { ...call, ts: 1736907185 })).toEqual(
      decode(scaipPendant, "scaip", { ...call, ts: 1736907185000 }),
    );
    expect(decode(scaipPendant, "scaip", call)[0]?.occurredAt).toBe(RECEIVED_AT);
  });

  it("leaves the press duration out when the pendant does not measure it", () => {
    expect(decode(scaipPendant, "scaip", { mty: "AL", dty: "0003", stc: "0010", ref: "r2" })).toEqual([
      { type: "call.manual", eventId: "r2", occurredAt: RECEIVED_AT, data: {} },
    ]);
  });

  it("decodes with the profile's own SCAIP mapping, so a code means what the profile says it means", () => {
    expect(scaipBedMat.scaip.stc?.["bed.return"]).toBe("0117");
    expect(decode(scaipBedMat, "scaip", { mty: "AL", dty: "0012", stc: "0117" })[0]?.type).toBe("bed.return");
    // The mat's exit code on a pendant is a call; the pendant's call on a mat is an exit: same stc, own dty.
    expect(decode(scaipPendant, "scaip", { mty: "AL", dty: "0003", stc: "0010" })[0]?.type).toBe(
      "call.manual",
    );
    expect(decode(scaipBedMat, "scaip", { mty: "AL", dty: "0012", stc: "0010" })[0]?.type).toBe("bed.exit");
    expect(rejection(scaipBedMat, "scaip", { mty: "AL", dty: "0012", stc: "0999" })).toMatch(
      /^unknown_event: stc 0999/,
    );
  });

  it("rejects a ref that cannot be an eventId and a dty that is not 1 to 4 digits", () => {
    expect(rejection(scaipPendant, "scaip", { mty: "AL", dty: "0003", stc: "0010", ref: "a/b" })).toMatch(
      /^bad_schema: SCAIP message: ref/,
    );
    expect(rejection(scaipPendant, "scaip", { mty: "PI", dty: "00003" })).toMatch(
      /^bad_schema: SCAIP message: dty/,
    );
    expect(rejection(scaipPendant, "scaip", { mty: "PI", dty: "3a" })).toMatch(
      /^bad_schema: SCAIP message: dty/,
    );
  });

  it("reads SCAIP codes of 1 to 4 digits as one code, as field units send them", () => {
    for (const stc of ["10", "010", "0010"])
      expect(decode(scaipPendant, "scaip", { mty: "ME", dty: "3", stc })[0]?.type).toBe("call.manual");
  });
});

describe("generic/ceiling-lift", () => {
  const cycle = { cycleId: "c-1", start: 1736926930, end: 1736927076, helpers: 1 };

  it("reads cycle times in seconds and milliseconds alike", () => {
    const ms = { ...cycle, start: cycle.start * 1000, end: cycle.end * 1000 };
    expect(decode(ceilingLift, "cycle", ms)).toEqual(decode(ceilingLift, "cycle", cycle));
  });

  it("leaves out what the lift did not measure", () => {
    expect(decode(ceilingLift, "cycle", { ...cycle, fault: null })).toEqual([
      {
        type: "lift.cycle",
        eventId: "c-1",
        occurredAt: "2025-01-15T07:44:36.000Z",
        data: { startedAt: "2025-01-15T07:42:10.000Z", endedAt: "2025-01-15T07:44:36.000Z", helpers: 1 },
      },
    ]);
  });

  it("rejects an unset clock on a cycle and more helpers than the model allows", () => {
    expect(rejection(ceilingLift, "cycle", { ...cycle, start: 0 })).toMatch(
      /^bad_schema: lift cycle: start: device clock/,
    );
    expect(rejection(ceilingLift, "cycle", { ...cycle, helpers: 5 })).toMatch(
      /^bad_schema: lift cycle: helpers/,
    );
  });
});

describe("checkSamples", () => {
  it("tells a vendor which recorded payloads decode, to what, and why the others do not", () => {
    const results = checkSamples(milesightVs373, [
      {
        topic: "ata/v1/radar-7/up",
        payload: Buffer.from(JSON.stringify({ device_info: {}, trigger_data: { event: 0, status: 1 } })),
      },
      {
        topic: "up",
        payload: Buffer.from(JSON.stringify({ device_info: {}, trigger_data: { event: 4, status: 1 } })),
      },
      { topic: "up", payload: Buffer.from("not json") },
      { topic: "ata/v1/radar-7/down", payload: Buffer.from("{}") },
      { topic: "up", payload: Buffer.alloc(20_000, 0x20) },
    ]);
    expect(results.map((r) => [r.ok, r.error?.code ?? r.events.map((e) => e.type).join()])).toEqual([
      [true, "fall.detected"],
      [true, ""],
      [false, "bad_json"],
      [false, "unknown_topic"],
      [false, "payload_too_large"],
    ]);
    expect(formatSampleResults(results)[0]).toBe("ok   #0 up -> fall.detected");
    expect(formatSampleResults(results)[2]).toMatch(/^FAIL #2 up: bad_json: /);
  });

  it("flags events that decode but break the contract, such as a type the profile does not declare", () => {
    const sloppy: DeviceProfile = { ...ceilingLift, emits: ["device.heartbeat"] };
    const [result] = checkSamples(sloppy, [
      {
        topic: "cycle",
        payload: Buffer.from(JSON.stringify({ start: 1736926930, end: 1736927076, helpers: 2 })),
      },
    ]);
    expect(result?.ok).toBe(false);
    expect(result?.problems.join()).toMatch(/lift\.cycle, which is not in the profile's "emits"/);
  });
});
