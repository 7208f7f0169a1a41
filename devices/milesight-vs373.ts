/**
 * `milesight/vs373`: Milesight VS373 radar fall-detection sensor, MQTT "trigger report".
 *
 * Format from Milesight's published VS373 trigger-report examples (milesight.com/docs/en/vs373):
 *   {"device_info": {"device_model","device_sn","device_mac","ip_address","time": "2025-08-26 10:34:03"},
 *    "trigger_data": {"type": 0, "trigger_id"?, "event", "status", "sub_no"?, "location"?: " (565, -838, 277)"}}
 * with event 0 Fall, 1 Motionless, 2 Dwell, 3 Out-of-bed, 4 Occupancy, 5 Vacant, 6 Bradycardia,
 * 7 Tachypnea, 8 Lying and status 1 Alarm, 2 Resolve, 3 Ignore, 4 Status report. Milesight's own
 * examples also spell keys with spaces ("device info", "trigger data") and nest trigger data inside
 * device info; both layouts are accepted, as the device may follow either.
 *
 * Mapping decisions:
 * - 0 Fall: alarm -> fall.detected, resolve -> fall.ended.
 * - 8 Lying: alarm -> fall.suspected. The radar has seen someone lying on the floor outside the bed
 *   for its configured time without having seen a fall happen: the strongest hint of an unwitnessed
 *   or slow fall (sliding from a chair), but also a resident resting on the floor or a mis-drawn bed
 *   region. Rules decide how long a suspected fall may last before it pages; resolve -> fall.ended.
 * - 1 Motionless / 2 Dwell: alarm -> presence.* with phase start, resolve -> the same type, phase end.
 *   `sub_no` (the detection region) becomes `zone`.
 * - 3 Out-of-bed: alarm -> bed.exit, resolve -> bed.return.
 * - 4 Occupancy / 5 Vacant: [] — the canonical model has no occupancy type, and room-level occupancy
 *   says nothing a rule acts on. (If a rule ever needs it, Vacant would become room.exit.)
 * - 6 Bradycardia / 7 Tachypnea: `unsupported`, not []. Vital-sign alarms have no canonical type, and
 *   dropping a clinical alarm silently would be worse than dead-lettering it where an operator sees it.
 * - status 3 Ignore and 4 Status report: []. An ignore is a person's choice made on the device side;
 *   it must not cancel an alert the gateway raised.
 * - Any other code: `unknown_event`.
 * - `device_info.time` has no UTC offset (it is the device's local time), so occurredAt is the
 *   gateway clock. No eventId: the gateway derives one from the payload bytes, so a QoS 1
 *   redelivery dedupes while a new trigger (new time, new trigger_id) does not.
 * - `location` is in millimetres in the sensor's frame (" (565, -838, 277)" is a person on the floor
 *   0.28 m up); the canonical location is in metres. An unreadable location is dropped, not rejected:
 *   the fall matters more than where in the room it was.
 * - A message without trigger data is the periodic report, mapped to device.heartbeat. The VS373 is
 *   mains/PoE powered and reports no battery; `firmware_version`, if present, is carried.
 */
import { z } from "zod";
import type { DecodedEvent, EventType, Phase } from "../src/model/event.js";
import { DecodeError, type DeviceProfile, parseJson } from "../src/model/profile.js";
import { byChannel, event, HealthFields, heartbeat, parseWith } from "./blocks.js";

const ALARM = 1;
const RESOLVE = 2;
const IGNORE = 3;
const STATUS_REPORT = 4;

type Mapped = { type: EventType; phase?: Phase };
type EventRule =
  | { name: string; alarm: Mapped; resolve: Mapped }
  | { name: string; none: "not modelled" }
  | { name: string; unsupported: string };

const EVENTS: Readonly<Record<number, EventRule>> = {
  0: { name: "Fall", alarm: { type: "fall.detected" }, resolve: { type: "fall.ended" } },
  1: {
    name: "Motionless",
    alarm: { type: "presence.motionless", phase: "start" },
    resolve: { type: "presence.motionless", phase: "end" },
  },
  2: {
    name: "Dwell",
    alarm: { type: "presence.dwell", phase: "start" },
    resolve: { type: "presence.dwell", phase: "end" },
  },
  3: { name: "Out-of-bed", alarm: { type: "bed.exit" }, resolve: { type: "bed.return" } },
  4: { name: "Occupancy", none: "not modelled" },
  5: { name: "Vacant", none: "not modelled" },
  6: { name: "Bradycardia", unsupported: "vital-sign alarms have no canonical event type" },
  7: { name: "Tachypnea", unsupported: "vital-sign alarms have no canonical event type" },
  8: { name: "Lying", alarm: { type: "fall.suspected" }, resolve: { type: "fall.ended" } },
};

const TriggerData = z.looseObject({
  type: z.number().int().optional(),
  trigger_id: z.number().int().optional(),
  event: z.number().int(),
  status: z.number().int(),
  sub_no: z.number().int().nonnegative().optional(),
  location: z.string().optional(),
});

const DeviceInfo = z.looseObject({
  device_model: z.string().optional(),
  device_sn: z.string().optional(),
  time: z.string().optional(),
  firmware_version: HealthFields.firmware,
  trigger_data: TriggerData.optional(),
});

const Report = z.looseObject({ device_info: DeviceInfo, trigger_data: TriggerData.optional() });

/** The same keys spelt with spaces, as in Milesight's own examples ("device info", "trigger id"). */
function spaced(shape: z.ZodRawShape): z.ZodRawShape {
  return Object.fromEntries(Object.entries(shape).map(([k, v]) => [k.replaceAll("_", " "), v]));
}
const TriggerDataSpaced = z.looseObject(spaced(TriggerData.shape));
/**
 * A report as the device sends it, in either spelling, for docs/asyncapi.yaml; the decoder reads the
 * spaced one through normaliseKeys (which also takes the two spellings mixed).
 */
const ReportAsSent = z.union([
  Report,
  z.looseObject({
    "device info": z.looseObject({
      ...spaced(DeviceInfo.omit({ trigger_data: true }).shape),
      "trigger data": TriggerDataSpaced.optional(),
    }),
    "trigger data": TriggerDataSpaced.optional(),
  }),
]);

/** "device info" -> "device_info", one level deep and inside device_info, as Milesight's examples vary. */
function normaliseKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const key = k.trim().replace(/\s+/g, "_");
      return [key, key === "device_info" || key === "trigger_data" ? normaliseKeys(v) : v];
    }),
  );
}

/** " (565, -838, 277)" in millimetres -> metres, or undefined when it does not read as that. */
function readLocation(text: string | undefined): { x: number; y: number; z: number } | undefined {
  const m = text?.match(
    /^\s*\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)\s*$/,
  );
  if (!m) return undefined;
  return { x: Number(m[1]) / 1000, y: Number(m[2]) / 1000, z: Number(m[3]) / 1000 };
}

function decodeTrigger(t: z.output<typeof TriggerData>, occurredAt: string): DecodedEvent[] {
  const rule = EVENTS[t.event];
  if (!rule) throw new DecodeError("unknown_event", `trigger event ${t.event} is not a VS373 event code`);
  if ("unsupported" in rule)
    throw new DecodeError("unsupported", `event ${t.event} ${rule.name}: ${rule.unsupported}`);
  if (![ALARM, RESOLVE, IGNORE, STATUS_REPORT].includes(t.status)) {
    throw new DecodeError("unknown_event", `trigger status ${t.status} is not a VS373 status code`);
  }
  if ("none" in rule || t.status === IGNORE || t.status === STATUS_REPORT) return [];

  const { type, phase } = t.status === ALARM ? rule.alarm : rule.resolve;
  const extras = { occurredAt, phase };
  if (type.startsWith("fall.")) {
    const location = t.status === ALARM ? readLocation(t.location) : undefined;
    return [event(type as "fall.detected", { location }, extras)];
  }
  if (type.startsWith("presence.")) {
    const zone = t.sub_no === undefined ? undefined : `region-${t.sub_no}`;
    return [event(type as "presence.dwell", { zone }, extras)];
  }
  return [event(type as "bed.exit", {}, extras)];
}

export const milesightVs373: DeviceProfile = {
  id: "milesight/vs373",
  vendor: "Milesight",
  model: "VS373",
  kind: "fall-sensor",
  description:
    "Ceiling radar with numeric trigger events (fall, lying, motionless, dwell, out-of-bed) as alarm/resolve " +
    "pairs on `up`; messages without trigger data are the periodic report.",
  topics: ["up"],
  // Radar: 60 s, as for every fall sensor. Set the device's report interval to 1 minute to match.
  supervision: { heartbeatSec: 60, missedHeartbeats: 3 },
  // SCAIP dty for a fall detector (DESIGN.md); no stc mapping until verified against CLC/TS 50134-9.
  scaip: { dty: "0005" },
  emits: [
    "fall.suspected",
    "fall.detected",
    "fall.ended",
    "presence.motionless",
    "presence.dwell",
    "bed.exit",
    "bed.return",
    "device.heartbeat",
  ],
  payloads: { up: ReportAsSent },
  decode: byChannel({
    up: ({ payload, receivedAt }) => {
      const report = parseWith(Report, normaliseKeys(parseJson(payload)), "VS373 report");
      const trigger = report.trigger_data ?? report.device_info.trigger_data;
      if (trigger) return decodeTrigger(trigger, receivedAt);
      return heartbeat({ firmware: report.device_info.firmware_version }, receivedAt);
    },
  }),
  fixtures: [
    {
      name: "fall alarm with a location in millimetres (Milesight's own example layout)",
      topic: "up",
      payload: {
        "device info": {
          "device model": "VS373-915M",
          "device sn": "6806E51510750004",
          "device mac": "d8:3b:da:9e:6e:a4",
          ipAddress: "192.168.130.157",
          time: "2025-01-15 03:13:05",
          "trigger data": { type: 0, "trigger id": 266, event: 0, status: 1, location: " (565, -838, 277)" },
        },
      },
      expected: [
        {
          type: "fall.detected",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { location: { x: 0.565, y: -0.838, z: 0.277 } },
        },
      ],
    },
    {
      name: "fall resolved",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:18:40",
        },
        trigger_data: { type: 0, trigger_id: 266, event: 0, status: 2 },
      },
      expected: [{ type: "fall.ended", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "lying on the floor is a suspected fall",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:12:40",
        },
        trigger_data: { type: 0, trigger_id: 265, event: 8, status: 1, location: " (410, -1020, 190)" },
      },
      expected: [
        {
          type: "fall.suspected",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { location: { x: 0.41, y: -1.02, z: 0.19 } },
        },
      ],
    },
    {
      name: "lying resolved",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:20:02",
        },
        trigger_data: { type: 0, trigger_id: 265, event: 8, status: 2 },
      },
      expected: [{ type: "fall.ended", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "out-of-bed alarm (Milesight's published example)",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E41970333123",
          device_mac: "24:85:18:8c:17:ef",
          ip_address: "192.168.2.164",
          time: "2025-01-15 03:02:11",
        },
        trigger_data: { type: 0, trigger_id: 1073, event: 3, status: 1, sub_no: 3 },
      },
      expected: [{ type: "bed.exit", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "out-of-bed resolved is back in bed",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E41970333123",
          time: "2025-01-15 03:06:45",
        },
        trigger_data: { type: 0, trigger_id: 1073, event: 3, status: 2, sub_no: 3 },
      },
      expected: [{ type: "bed.return", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "motionless alarm in region 2 starts, its resolve ends it",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 02:40:00",
        },
        trigger_data: { type: 0, trigger_id: 301, event: 1, status: 1, sub_no: 2 },
      },
      expected: [
        {
          type: "presence.motionless",
          occurredAt: "2025-01-15T02:14:07.250Z",
          phase: "start",
          data: { zone: "region-2" },
        },
      ],
    },
    {
      name: "motionless resolved",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 02:47:30",
        },
        trigger_data: { type: 0, trigger_id: 301, event: 1, status: 2, sub_no: 2 },
      },
      expected: [
        {
          type: "presence.motionless",
          occurredAt: "2025-01-15T02:14:07.250Z",
          phase: "end",
          data: { zone: "region-2" },
        },
      ],
    },
    {
      name: "dwell alarm without a region",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 02:50:00",
        },
        trigger_data: { type: 0, trigger_id: 302, event: 2, status: 1 },
      },
      expected: [
        { type: "presence.dwell", occurredAt: "2025-01-15T02:14:07.250Z", phase: "start", data: {} },
      ],
    },
    {
      name: "occupancy has no canonical event (Milesight's published example)",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          device_mac: "d8:3b:da:9e:6e:a4",
          ipAddress: "192.168.130.157",
          time: "2025-08-26 10:34:03",
        },
        trigger_data: { type: 0, event: 4, status: 1 },
      },
      expected: [],
    },
    {
      name: "an ignored fall does not cancel anything",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:13:30",
        },
        trigger_data: { type: 0, trigger_id: 266, event: 0, status: 3 },
      },
      expected: [],
    },
    {
      name: "periodic report is a heartbeat",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:14:00",
          firmware_version: "V_373_1.0.4",
        },
      },
      expected: [
        {
          type: "device.heartbeat",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { firmware: "V_373_1.0.4" },
        },
      ],
    },
    {
      name: "an unknown event code is rejected",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:14:00",
        },
        trigger_data: { type: 0, event: 12, status: 1 },
      },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a vital-sign alarm is dead-lettered, not dropped",
      topic: "up",
      payload: {
        device_info: {
          device_model: "VS373-915M",
          device_sn: "6806E51510750004",
          time: "2025-01-15 03:14:00",
        },
        trigger_data: { type: 0, event: 6, status: 1 },
      },
      expected: [],
      rejects: "unsupported",
    },
    {
      name: "a report without device_info is rejected",
      topic: "up",
      payload: { trigger_data: { type: 0, event: 0, status: 1 } },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
