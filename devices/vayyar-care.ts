/**
 * `vayyar/care`: a wall- or ceiling-mounted radar fall sensor, "Vayyar-style".
 *
 * Vayyar does not publish its device MQTT format openly. What is public (integrator notes on the
 * Vayyar Care device class) and followed here: the fall status sequence fall_detected ->
 * fall_confirmed -> calling -> finished, with canceled and fall_exit; epoch-millisecond
 * `timestamp` / `statusUpdateTimestamp`; fall location in metres in the sensor's X/Y/Z frame; a
 * per-fall identity; presence, bed-region and heartbeat reports beside the fall events. The field
 * names `fallId`, `fallStatus`, `bedStatus` and the split over three channels are this gateway's
 * design, to be replaced by recorded payloads from a real device when a vendor provides them.
 *
 *   events     {"fallId","fallStatus","timestamp","statusUpdateTimestamp"?,"location"?,"confidence"?}
 *   state      {"timestamp"?,"presenceDetected"?,"bedStatus"?: "in"|"out"}, sent on change
 *   heartbeat  {"timestamp"?,"firmware"?,"rssi"?}, every 60 s (Vayyar's default presence report rate)
 *
 * Mapping decisions:
 * - `calling` -> fall.confirmed with phase "update" and eventId `<fallId>:calling`: the device has
 *   escalated (buzzer, dry contact) on a fall it already confirmed. It re-triggers the open alert
 *   rather than raising a second one, and still raises one if fall_confirmed was never seen
 *   (demo mode, or a device configured to call directly).
 * - `finished` and `fall_exit` -> fall.ended. `finished` only means the device's calling period is
 *   over, not that the resident is up, so onGroundSec is given for fall_exit alone (time from the
 *   fall to leaving the fall location). fall.ended must not resolve an alert by itself.
 * - eventId is `<fallId>:<fallStatus>`: each transition is its own event, and a QoS 1 redelivery of the
 *   same transition dedupes even if the device re-serialises it.
 * - `presenceDetected` has no canonical type and is accepted but not mapped.
 */
import { z } from "zod";
import type { EventType, Phase } from "../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../src/model/profile.js";
import {
  byChannel,
  ClockTime,
  compact,
  DeviceEventId,
  decodeJson,
  event,
  HealthFields,
  heartbeat,
} from "./blocks.js";

type FallType = Extract<EventType, `fall.${string}`>;
const FALL_STATUS: Readonly<Record<string, { type: FallType; phase?: Phase }>> = {
  fall_suspected: { type: "fall.suspected" },
  fall_detected: { type: "fall.detected" },
  fall_confirmed: { type: "fall.confirmed" },
  calling: { type: "fall.confirmed", phase: "update" },
  finished: { type: "fall.ended" },
  fall_exit: { type: "fall.ended" },
  canceled: { type: "fall.cancelled" },
};

const FallMessage = z.looseObject({
  fallId: DeviceEventId.optional(),
  fallStatus: z.string(),
  /** When the fall began. */
  timestamp: ClockTime.optional(),
  /** When the device entered this status. */
  statusUpdateTimestamp: ClockTime.optional(),
  location: z.object({ x: z.number(), y: z.number(), z: z.number().optional() }).optional(),
  confidence: z.number().min(0).max(1).optional(),
});

const StateMessage = z.looseObject({
  timestamp: ClockTime.optional(),
  presenceDetected: z.boolean().optional(),
  bedStatus: z.enum(["in", "out"]).optional(),
});

const HeartbeatMessage = z.looseObject({
  timestamp: ClockTime.optional(),
  firmware: HealthFields.firmware,
  rssi: HealthFields.rssi,
});

export const vayyarCare: DeviceProfile = {
  id: "vayyar/care",
  vendor: "Vayyar",
  model: "Care (Vayyar-style MQTT)",
  kind: "fall-sensor",
  description:
    "Radar fall sensor with Vayyar Care's fall status sequence on `events`, bed region in/out on `state` " +
    "and a heartbeat every 60 s. Vayyar-style: field names are ours until a device recording replaces them.",
  topics: ["events", "state", "heartbeat"],
  // A silent fall sensor is itself an alert: three missed 60 s reports is three minutes unwatched.
  supervision: { heartbeatSec: 60, missedHeartbeats: 3 },
  // SCAIP dty for a fall detector (DESIGN.md); no stc mapping until verified against CLC/TS 50134-9.
  scaip: { dty: "0005" },
  emits: [
    "fall.suspected",
    "fall.detected",
    "fall.confirmed",
    "fall.cancelled",
    "fall.ended",
    "bed.exit",
    "bed.return",
    "device.heartbeat",
  ],
  decode: byChannel({
    events: ({ payload, receivedAt }) => {
      const m = decodeJson(payload, FallMessage, "fall event");
      const mapped = Object.hasOwn(FALL_STATUS, m.fallStatus) ? FALL_STATUS[m.fallStatus] : undefined;
      if (!mapped) {
        throw new DecodeError(
          "unknown_event",
          `fallStatus "${m.fallStatus}" is not a known Vayyar fall status`,
        );
      }
      const onGroundSec =
        m.fallStatus === "fall_exit" && m.timestamp && m.statusUpdateTimestamp
          ? Math.max(0, (Date.parse(m.statusUpdateTimestamp) - Date.parse(m.timestamp)) / 1000)
          : undefined;
      return [
        event(
          mapped.type,
          { confidence: m.confidence, location: m.location && compact(m.location), onGroundSec },
          {
            occurredAt: m.statusUpdateTimestamp ?? m.timestamp ?? receivedAt,
            eventId: m.fallId && `${m.fallId}:${m.fallStatus}`,
            phase: mapped.phase,
          },
        ),
      ];
    },
    state: ({ payload, receivedAt }) => {
      const m = decodeJson(payload, StateMessage, "state report");
      if (m.bedStatus === undefined) return [];
      return [
        event(
          m.bedStatus === "out" ? "bed.exit" : "bed.return",
          {},
          { occurredAt: m.timestamp ?? receivedAt },
        ),
      ];
    },
    heartbeat: ({ payload, receivedAt }) => {
      const m = decodeJson(payload, HeartbeatMessage, "heartbeat");
      return heartbeat({ firmware: m.firmware, rssi: m.rssi }, m.timestamp ?? receivedAt);
    },
  }),
  fixtures: [
    {
      name: "fall_detected with location and confidence, times in epoch ms",
      topic: "events",
      payload: {
        fallId: "f-7c21",
        fallStatus: "fall_detected",
        timestamp: 1736907185000,
        statusUpdateTimestamp: 1736907190000,
        location: { x: -0.8, y: 2.35, z: 0.2 },
        confidence: 0.91,
      },
      expected: [
        {
          type: "fall.detected",
          eventId: "f-7c21:fall_detected",
          occurredAt: "2025-01-15T02:13:10.000Z",
          data: { confidence: 0.91, location: { x: -0.8, y: 2.35, z: 0.2 } },
        },
      ],
    },
    {
      name: "fall_suspected with only the fall time, in epoch seconds",
      topic: "events",
      payload: { fallId: "f-7c21", fallStatus: "fall_suspected", timestamp: 1736907185 },
      expected: [
        {
          type: "fall.suspected",
          eventId: "f-7c21:fall_suspected",
          occurredAt: "2025-01-15T02:13:05.000Z",
          data: {},
        },
      ],
    },
    {
      name: "fall_confirmed",
      topic: "events",
      payload: {
        fallId: "f-7c21",
        fallStatus: "fall_confirmed",
        timestamp: 1736907185000,
        statusUpdateTimestamp: 1736907237000,
        location: { x: -0.8, y: 2.35 },
      },
      expected: [
        {
          type: "fall.confirmed",
          eventId: "f-7c21:fall_confirmed",
          occurredAt: "2025-01-15T02:13:57.000Z",
          data: { location: { x: -0.8, y: 2.35 } },
        },
      ],
    },
    {
      name: "calling updates the confirmed fall",
      topic: "events",
      payload: {
        fallId: "f-7c21",
        fallStatus: "calling",
        timestamp: 1736907185000,
        statusUpdateTimestamp: 1736907267000,
      },
      expected: [
        {
          type: "fall.confirmed",
          eventId: "f-7c21:calling",
          occurredAt: "2025-01-15T02:14:27.000Z",
          phase: "update",
          data: {},
        },
      ],
    },
    {
      name: "fall_exit ends the fall with the time spent on the ground",
      topic: "events",
      payload: {
        fallId: "f-7c21",
        fallStatus: "fall_exit",
        timestamp: 1736907185000,
        statusUpdateTimestamp: 1736907520000,
      },
      expected: [
        {
          type: "fall.ended",
          eventId: "f-7c21:fall_exit",
          occurredAt: "2025-01-15T02:18:40.000Z",
          data: { onGroundSec: 335 },
        },
      ],
    },
    {
      name: "finished ends the device's calling period, without a time on the ground",
      topic: "events",
      payload: {
        fallId: "f-7c21",
        fallStatus: "finished",
        timestamp: 1736907185000,
        statusUpdateTimestamp: 1736907520000,
      },
      expected: [
        { type: "fall.ended", eventId: "f-7c21:finished", occurredAt: "2025-01-15T02:18:40.000Z", data: {} },
      ],
    },
    {
      name: "canceled, with an ISO time and no fall id (the gateway derives one)",
      topic: "events",
      payload: { fallStatus: "canceled", timestamp: "2025-01-15T03:14:00+01:00" },
      expected: [{ type: "fall.cancelled", occurredAt: "2025-01-15T02:14:00.000Z", data: {} }],
    },
    {
      name: "bed region empty is a bed exit",
      topic: "state",
      payload: { timestamp: 1736907240000, presenceDetected: true, bedStatus: "out" },
      expected: [{ type: "bed.exit", occurredAt: "2025-01-15T02:14:00.000Z", data: {} }],
    },
    {
      name: "back in bed, without a device time",
      topic: "state",
      payload: { presenceDetected: true, bedStatus: "in" },
      expected: [{ type: "bed.return", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "presence alone has no canonical event",
      topic: "state",
      payload: { timestamp: 1736907240000, presenceDetected: false },
      expected: [],
    },
    {
      name: "heartbeat with firmware and Wi-Fi signal",
      topic: "heartbeat",
      payload: { timestamp: 1736907240000, firmware: "v40.5.2", rssi: -58, uptime: 86400 },
      expected: [
        {
          type: "device.heartbeat",
          occurredAt: "2025-01-15T02:14:00.000Z",
          data: { rssi: -58, firmware: "v40.5.2" },
        },
      ],
    },
    {
      name: "an unknown fall status is rejected",
      topic: "events",
      payload: { fallId: "f-7c22", fallStatus: "fall_maybe", timestamp: 1736907185000 },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a bed status other than in/out is rejected",
      topic: "state",
      payload: { timestamp: 1736907240000, bedStatus: "sitting" },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
