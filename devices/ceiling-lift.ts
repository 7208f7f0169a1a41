/**
 * `generic/ceiling-lift`: a smart ceiling lift (or standing aid) that reports each completed lift
 * cycle. No ceiling-lift vendor publishes an MQTT format, so this is a generic one, meant to be the
 * format new lift vendors adopt (or map to in their own profile):
 *
 *   cycle      {"cycleId"?, "start", "end", "loadKg"?, "helpers", "transfer"?, "fault"?}
 *   heartbeat  {"ts"?, "battery"?, "rssi"?, "firmware"?, "lowBattery"?}
 *
 * Times are epoch seconds, epoch milliseconds or ISO 8601 with offset. `helpers` is how many carers
 * took part (the lift learns it from a button or staff badges); it is what the time-saved model
 * counts, so a cycle without it is rejected rather than guessed. `transfer` uses the canonical names
 * (bed-chair, chair-bed, bed-toilet, toilet-bed, bed-bath, floor-bed, other). A cycle that ended in a
 * fault is still a cycle: it yields lift.cycle with `fault`, and rules decide whether a fault pages.
 * `cycleId` becomes the eventId so a resent cycle dedupes.
 */
import { z } from "zod";
import { TRANSFERS } from "../src/model/event.js";
import type { DeviceProfile } from "../src/model/profile.js";
import {
  byChannel,
  ClockTime,
  DeviceEventId,
  decodeJson,
  event,
  HealthFields,
  heartbeat,
  Time,
} from "./blocks.js";

const Cycle = z
  .looseObject({
    cycleId: DeviceEventId.optional(),
    start: Time,
    end: Time,
    loadKg: z.number().nonnegative().max(400).optional(),
    helpers: z.number().int().min(1).max(4),
    transfer: z.enum(TRANSFERS).optional(),
    fault: z.string().min(1).max(64).nullable().optional(),
  })
  .refine((c) => Date.parse(c.end) >= Date.parse(c.start), { message: "end is before start", path: ["end"] });

const Heartbeat = z.looseObject({ ts: ClockTime.optional(), ...HealthFields });

export const ceilingLift: DeviceProfile = {
  id: "generic/ceiling-lift",
  vendor: "Generic",
  model: "Ceiling lift (MQTT)",
  kind: "ceiling-lift",
  description:
    "Ceiling lift reporting each completed cycle on `cycle` (times, load, helpers, transfer kind, fault) and " +
    "battery health on `heartbeat`.",
  topics: ["cycle", "heartbeat"],
  // 5 minutes: a lift out of contact costs statistics, not safety (staff are at the lift when it is
  // used), and its battery pack reports change slowly.
  supervision: { heartbeatSec: 300, missedHeartbeats: 3 },
  // SCAIP has no device type for lifts; lift cycles are not forwarded to an alarm receiving centre.
  scaip: { dty: "0000" },
  emits: ["lift.cycle", "device.heartbeat", "device.battery_low"],
  payloads: { cycle: Cycle, heartbeat: Heartbeat },
  decode: byChannel({
    cycle: ({ payload }) => {
      const c = decodeJson(payload, Cycle, "lift cycle");
      const data = {
        startedAt: c.start,
        endedAt: c.end,
        loadKg: c.loadKg,
        helpers: c.helpers,
        transfer: c.transfer,
        fault: c.fault ?? undefined,
      };
      return [event("lift.cycle", data, { occurredAt: c.end, eventId: c.cycleId })];
    },
    heartbeat: ({ payload, receivedAt }) => {
      const { ts, ...health } = decodeJson(payload, Heartbeat, "heartbeat");
      return heartbeat(health, ts ?? receivedAt);
    },
  }),
  fixtures: [
    {
      name: "one-helper bed-to-chair transfer, times in epoch seconds",
      topic: "cycle",
      payload: {
        cycleId: "c-000412",
        start: 1736926930,
        end: 1736927076,
        loadKg: 71.5,
        helpers: 1,
        transfer: "bed-chair",
        fault: null,
      },
      expected: [
        {
          type: "lift.cycle",
          eventId: "c-000412",
          occurredAt: "2025-01-15T07:44:36.000Z",
          data: {
            startedAt: "2025-01-15T07:42:10.000Z",
            endedAt: "2025-01-15T07:44:36.000Z",
            loadKg: 71.5,
            helpers: 1,
            transfer: "bed-chair",
          },
        },
      ],
    },
    {
      name: "a cycle that ended in a fault is still a cycle, times in ISO and ms",
      topic: "cycle",
      payload: {
        cycleId: "c-000413",
        start: "2025-01-15T08:50:02+01:00",
        end: 1736927480500,
        helpers: 2,
        fault: "E17-overcurrent",
      },
      expected: [
        {
          type: "lift.cycle",
          eventId: "c-000413",
          occurredAt: "2025-01-15T07:51:20.500Z",
          data: {
            startedAt: "2025-01-15T07:50:02.000Z",
            endedAt: "2025-01-15T07:51:20.500Z",
            helpers: 2,
            fault: "E17-overcurrent",
          },
        },
      ],
    },
    {
      name: "heartbeat with a healthy battery",
      topic: "heartbeat",
      payload: { ts: 1736927100, battery: 83, rssi: -64, firmware: "lift-2.8.1" },
      expected: [
        {
          type: "device.heartbeat",
          occurredAt: "2025-01-15T07:45:00.000Z",
          data: { battery: 83, rssi: -64, firmware: "lift-2.8.1" },
        },
      ],
    },
    {
      name: "the lift's own low-battery flag",
      topic: "heartbeat",
      payload: { battery: 31, lowBattery: true },
      expected: [
        { type: "device.heartbeat", occurredAt: "2025-01-15T02:14:07.250Z", data: { battery: 31 } },
        {
          type: "device.battery_low",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { battery: 31, reason: "device reports low battery" },
        },
      ],
    },
    {
      name: "a cycle without its helper count is rejected",
      topic: "cycle",
      payload: { cycleId: "c-000414", start: 1736926930, end: 1736927076, transfer: "chair-bed" },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "a cycle that ends before it starts is rejected",
      topic: "cycle",
      payload: { cycleId: "c-000415", start: 1736927076, end: 1736926930, helpers: 1 },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "a transfer kind outside the canonical list is rejected",
      topic: "cycle",
      payload: {
        cycleId: "c-000416",
        start: 1736926930,
        end: 1736927076,
        helpers: 1,
        transfer: "bed-to-chair",
      },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
