/**
 * The canonical event model: every vendor payload is decoded into these, and everything downstream
 * (rules, alerts, time series, reports) speaks only this. One zod schema per event family; the
 * TypeScript types are inferred from it and the vendor-facing JSON Schema is generated from it.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const SCHEMA_VERSION = 1;

export const PRIORITIES = ["high", "medium", "low", "info"] as const;
export const Priority = z.enum(PRIORITIES);
export type Priority = z.infer<typeof Priority>;

export const PHASES = ["start", "update", "end", "point"] as const;
export const Phase = z.enum(PHASES);
export type Phase = z.infer<typeof Phase>;

const Location = z.strictObject({ x: z.number(), y: z.number(), z: z.number().optional() });

const FallData = z.strictObject({
  confidence: z.number().min(0).max(1).optional(),
  location: Location.optional(),
  onGroundSec: z.number().nonnegative().optional(),
});
const DwellData = z.strictObject({ dwellSec: z.number().nonnegative().optional() });
const DoorData = z.strictObject({ doorId: z.string().max(64).optional() });
const PresenceData = z.strictObject({
  zone: z.string().max(64).optional(),
  durationSec: z.number().nonnegative().optional(),
});
const CallData = z.strictObject({ pressDurationSec: z.number().nonnegative().optional() });
const StaffData = z.strictObject({ staffRef: z.string().max(64).optional() });
export const TRANSFERS = [
  "bed-chair",
  "chair-bed",
  "bed-toilet",
  "toilet-bed",
  "bed-bath",
  "floor-bed",
  "other",
] as const;
const LiftData = z.strictObject({
  startedAt: z.iso.datetime({ offset: true }),
  endedAt: z.iso.datetime({ offset: true }),
  loadKg: z.number().nonnegative().max(400).optional(),
  helpers: z.number().int().min(1).max(4),
  transfer: z.enum(TRANSFERS).optional(),
  fault: z.string().max(64).optional(),
});
const DeviceData = z.strictObject({
  battery: z.number().min(0).max(100).optional(),
  rssi: z.number().optional(),
  firmware: z.string().max(64).optional(),
  reason: z.string().max(128).optional(),
  /** device.online / device.offline on a cluster: the node that logged the change (src/reports/uptime.ts). */
  node: z.string().max(100).optional(),
});

/** Event type -> the schema of its `data`. The single list of canonical types. */
export const EVENT_DATA = {
  "fall.suspected": FallData,
  "fall.detected": FallData,
  "fall.confirmed": FallData,
  "fall.cancelled": FallData,
  "fall.ended": FallData,
  "bed.exit": DwellData,
  "bed.return": DwellData,
  "chair.exit": DwellData,
  "room.exit": DoorData,
  "door.open": DoorData,
  "presence.motionless": PresenceData,
  "presence.dwell": PresenceData,
  "call.manual": CallData,
  "staff.presence": StaffData,
  "intervention.complete": StaffData,
  "lift.cycle": LiftData,
  "device.heartbeat": DeviceData,
  "device.online": DeviceData,
  "device.offline": DeviceData,
  "device.battery_low": DeviceData,
  "device.tamper": DeviceData,
  "device.power": DeviceData,
} as const;

export type EventType = keyof typeof EVENT_DATA;
export const EVENT_TYPES = Object.keys(EVENT_DATA) as EventType[];
export const EventTypeSchema = z.enum(EVENT_TYPES as [EventType, ...EventType[]]);
export type EventData<T extends EventType> = z.infer<(typeof EVENT_DATA)[T]>;

const envelope = {
  eventId: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/, "eventId may contain letters, digits and . _ : -"),
  schemaVersion: z.literal(SCHEMA_VERSION),
  deviceId: z.string().min(1).max(64),
  occurredAt: z.iso.datetime({ offset: true }),
  receivedAt: z.iso.datetime({ offset: true }),
  seq: z.number().int().nonnegative().optional(),
  priority: Priority.optional(),
  phase: Phase,
};

const members = EVENT_TYPES.map((type) =>
  z.strictObject({ ...envelope, type: z.literal(type), data: EVENT_DATA[type] }),
);

/** A canonical event as the gateway stores and publishes it (placement and raw kept beside it). */
export const CanonicalEvent = z.discriminatedUnion(
  "type",
  members as unknown as [(typeof members)[number], ...(typeof members)[number][]],
);
export type CanonicalEvent = {
  [T in EventType]: {
    eventId: string;
    schemaVersion: typeof SCHEMA_VERSION;
    deviceId: string;
    occurredAt: string;
    receivedAt: string;
    seq?: number;
    priority?: Priority;
    phase: Phase;
    type: T;
    data: EventData<T>;
  };
}[EventType];

/**
 * What a device profile's decoder returns: the gateway fills in deviceId, receivedAt, schemaVersion
 * and, when the device gave none, a derived eventId.
 */
export type DecodedEvent = {
  [T in EventType]: {
    type: T;
    data: EventData<T>;
    occurredAt?: string;
    eventId?: string;
    seq?: number;
    priority?: Priority;
    phase?: Phase;
  };
}[EventType];

/** Placement is added by the gateway from the registry, never taken from a payload. */
export interface Placement {
  siteId: string;
  unitId: string;
  roomId: string | null;
  residentRef: string | null;
}

export type PlacedEvent = CanonicalEvent & { placement: Placement };

/**
 * What a publish without an eventId is known by: a hash of the device, channel and bytes. The same
 * key again within the redelivery window is a redelivery (src/ingest/redelivery.ts); the events'
 * ids add the index and the receipt time, so identical bytes later are new events.
 */
export function payloadKey(deviceId: string, topicSuffix: string, payload: Uint8Array): string {
  const h = createHash("sha256");
  h.update(deviceId);
  h.update("\0");
  h.update(topicSuffix);
  h.update("\0");
  h.update(payload);
  return `d:${h.digest("base64url").slice(0, 22)}`;
}

/** A derived event id: `d:<payload hash>:<index in the payload>:t<receipt ms, base 36>`. */
export function deriveEventId(key: string, index: number, receivedAtMs: number): string {
  return `${key}:${index}:t${receivedAtMs.toString(36)}`;
}

export function defaultPhase(type: EventType): Phase {
  if (type === "fall.cancelled" || type === "fall.ended" || type === "bed.return") return "end";
  if (type.startsWith("fall.")) return type === "fall.suspected" ? "start" : "update";
  return "point";
}
