/**
 * `ata/native`: the gateway's own format, for devices and integrators that speak the canonical event
 * model (docs/mqtt-contract.md) directly.
 *
 * Channel `events`: one event or an array of them, each `{eventId?, type, occurredAt?, seq?,
 * priority?, phase?, data}` — a canonical event without deviceId, receivedAt and schemaVersion, which
 * the gateway fills in (and eventId too when absent, from the payload bytes, so a QoS 1 redelivery
 * dedupes). `data` is checked against the type's schema; unknown keys are errors here, unlike in the
 * vendor profiles, because this format is ours and a typo should be caught at onboarding.
 * Channel `heartbeat`: `{occurredAt?, battery?, rssi?, firmware?, lowBattery?}`.
 *
 * device.online / device.offline are not accepted: the gateway derives them from the retained
 * `status` topic and supervision, and a device cannot report its own absence.
 */
import { z } from "zod";
import {
  CanonicalEvent,
  type DecodedEvent,
  EVENT_DATA,
  EVENT_TYPES,
  type EventData,
  type EventType,
} from "../src/model/event.js";
import { DecodeError, type DeviceProfile, parseJson } from "../src/model/profile.js";
import { byChannel, describeIssues, event, HealthFields, heartbeat, parseWith, toIso } from "./blocks.js";

const envelope = CanonicalEvent.options[0].shape;
const GATEWAY_ONLY: readonly EventType[] = ["device.online", "device.offline"];
const NATIVE_TYPES = EVENT_TYPES.filter((t) => !GATEWAY_ONLY.includes(t));

const NativeEvent = z.strictObject({
  eventId: envelope.eventId.optional(),
  type: z.string(),
  occurredAt: envelope.occurredAt.optional(),
  seq: envelope.seq,
  priority: envelope.priority,
  phase: envelope.phase.optional(),
  data: z.looseObject({}),
});

function decodeEvent(value: unknown, where: string, receivedAt: string) {
  const e = parseWith(NativeEvent, value, where);
  if (!Object.hasOwn(EVENT_DATA, e.type))
    throw new DecodeError("unknown_event", `${where}: unknown type "${e.type}"`);
  const type = e.type as EventType;
  if (GATEWAY_ONLY.includes(type)) {
    throw new DecodeError("unsupported", `${where}: ${type} is derived by the gateway from the status topic`);
  }
  const data = EVENT_DATA[type].safeParse(e.data);
  if (!data.success) throw new DecodeError("bad_schema", `${where}.data: ${describeIssues(data.error)}`);
  return event(type, data.data as EventData<typeof type>, {
    eventId: e.eventId,
    occurredAt: toIso(e.occurredAt ?? receivedAt, `${where}.occurredAt`),
    seq: e.seq,
    priority: e.priority,
    phase: e.phase,
  });
}

/** One event of every type a native device may send: documentation as much as a fixture. */
const ONE_OF_EACH: DecodedEvent[] = [
  { type: "fall.suspected", phase: "start", data: {} },
  { type: "fall.detected", data: {} },
  { type: "fall.confirmed", data: { onGroundSec: 60 } },
  { type: "fall.cancelled", data: {} },
  { type: "fall.ended", data: { onGroundSec: 312 } },
  { type: "bed.exit", data: {} },
  { type: "bed.return", data: { dwellSec: 95 } },
  { type: "chair.exit", data: {} },
  { type: "room.exit", data: { doorId: "corridor" } },
  { type: "door.open", data: { doorId: "balcony" } },
  { type: "presence.motionless", data: { zone: "bathroom", durationSec: 900 } },
  { type: "presence.dwell", data: { zone: "toilet", durationSec: 1800 } },
  { type: "call.manual", data: { pressDurationSec: 1.5 } },
  { type: "staff.presence", data: { staffRef: "badge-118" } },
  { type: "intervention.complete", data: { staffRef: "badge-118" } },
  {
    type: "lift.cycle",
    data: {
      startedAt: "2025-01-15T07:42:10Z",
      endedAt: "2025-01-15T07:44:36Z",
      loadKg: 68,
      helpers: 1,
      transfer: "bed-chair",
    },
  },
  { type: "device.heartbeat", data: { battery: 88 } },
  { type: "device.battery_low", data: { battery: 9 } },
  { type: "device.tamper", data: { reason: "cover opened" } },
  { type: "device.power", data: { reason: "mains lost" } },
];

const NativeHeartbeat = z.strictObject({ occurredAt: envelope.occurredAt.optional(), ...HealthFields });

/**
 * What `events` accepts, as one schema per type, for docs/asyncapi.yaml. decodeEvent checks the same
 * in two steps (envelope, then the type's data) so that an unknown type is unknown_event, not bad_schema.
 */
const NativeEventOfType = NATIVE_TYPES.map((type) =>
  NativeEvent.extend({ type: z.literal(type), data: EVENT_DATA[type] }),
);
const NativeEventPayload = z.discriminatedUnion(
  "type",
  NativeEventOfType as unknown as [
    (typeof NativeEventOfType)[number],
    ...(typeof NativeEventOfType)[number][],
  ],
);

export const nativeProfile: DeviceProfile = {
  id: "ata/native",
  vendor: "ATA Gateway",
  model: "Native canonical events",
  kind: "gateway-native",
  description:
    "The gateway's own format: canonical events without deviceId/receivedAt/schemaVersion on `events`, " +
    "health on `heartbeat`. For devices and integrators that map to the canonical model themselves.",
  topics: ["events", "heartbeat"],
  // decodeEvent checks envelope and data with the canonical schemas themselves.
  canonicalChannels: ["events"],
  payloads: {
    events: z.union([NativeEventPayload, z.array(NativeEventPayload)]),
    heartbeat: NativeHeartbeat,
  },
  // Same supervision as a fall sensor: a native device may be one, and the gateway cannot tell.
  supervision: { heartbeatSec: 60, missedHeartbeats: 3 },
  // No SCAIP device type of its own: forwarding to an alarm receiving centre maps per canonical type.
  scaip: { dty: "0000" },
  emits: NATIVE_TYPES,
  decode: byChannel({
    events: ({ payload, receivedAt }) => {
      const json = parseJson(payload);
      if (!Array.isArray(json)) return [decodeEvent(json, "event", receivedAt)];
      return json.map((item, i) => decodeEvent(item, `events[${i}]`, receivedAt));
    },
    heartbeat: ({ payload, receivedAt }) => {
      const hb = parseWith(NativeHeartbeat, parseJson(payload), "heartbeat");
      const { occurredAt, ...health } = hb;
      return heartbeat(health, toIso(occurredAt ?? receivedAt, "heartbeat.occurredAt"));
    },
  }),
  fixtures: [
    {
      name: "a fall with the device's own id, priority and location",
      topic: "events",
      payload: {
        eventId: "fd-20250115-0007",
        type: "fall.detected",
        occurredAt: "2025-01-15T03:13:05+01:00",
        priority: "high",
        data: { confidence: 0.92, location: { x: 1.2, y: 2.4, z: 0.3 } },
      },
      expected: [
        {
          type: "fall.detected",
          eventId: "fd-20250115-0007",
          occurredAt: "2025-01-15T02:13:05.000Z",
          priority: "high",
          data: { confidence: 0.92, location: { x: 1.2, y: 2.4, z: 0.3 } },
        },
      ],
    },
    {
      name: "a batch without ids or times takes the gateway clock",
      topic: "events",
      payload: [
        { type: "bed.exit", seq: 41, data: {} },
        { type: "bed.return", seq: 42, data: { dwellSec: 240 } },
      ],
      expected: [
        { type: "bed.exit", seq: 41, occurredAt: "2025-01-15T02:14:07.250Z", data: {} },
        { type: "bed.return", seq: 42, occurredAt: "2025-01-15T02:14:07.250Z", data: { dwellSec: 240 } },
      ],
    },
    {
      name: "every type a native device may send, one of each",
      topic: "events",
      receivedAt: "2025-01-15T07:44:36.000Z",
      payload: ONE_OF_EACH,
      expected: ONE_OF_EACH.map((e) => ({ ...e, occurredAt: "2025-01-15T07:44:36.000Z" })),
    },
    {
      name: "a heartbeat with a low battery also reports battery_low",
      topic: "heartbeat",
      payload: { battery: 14, rssi: -71, firmware: "2.3.0" },
      expected: [
        {
          type: "device.heartbeat",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { battery: 14, rssi: -71, firmware: "2.3.0" },
        },
        {
          type: "device.battery_low",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { battery: 14, reason: "battery 14% is below 20%" },
        },
      ],
    },
    {
      name: "an unknown type is rejected",
      topic: "events",
      payload: { type: "fall.maybe", data: {} },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a field the type does not have is rejected",
      topic: "events",
      payload: { type: "call.manual", data: { pressDurationSec: 2, button: "red" } },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "a device cannot report itself offline",
      topic: "events",
      payload: { type: "device.offline", data: {} },
      expected: [],
      rejects: "unsupported",
    },
    {
      name: "a local time without offset is rejected",
      topic: "events",
      payload: { type: "bed.exit", occurredAt: "2025-01-15T03:13:05", data: {} },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
