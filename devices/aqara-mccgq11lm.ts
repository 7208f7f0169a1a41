/**
 * `aqara/mccgq11lm`: Aqara door & window sensor through a zigbee2mqtt bridge (src/bridges/,
 * docs/bridges.md), registered with its IEEE address as the device id (`0x00158d0001a2b3c4`).
 *
 * Payload: zigbee2mqtt's published state (zigbee2mqtt.io/devices/MCCGQ11LM.html, "Exposes"):
 * `contact` (true = closed, false = open), `battery` %, `voltage` mV, `linkquality`. The bridge wraps
 * each message with the previous state it saw (src/bridges/envelope.ts), because zigbee2mqtt repeats
 * every cached attribute in every message.
 *
 * Mapping decisions:
 * - contact changed to false -> door.open phase start; changed to true -> door.open phase end. An
 *   unchanged contact (a battery report) gives nothing. After a gateway restart (no previous state)
 *   an open door is reported again rather than missed; a closed one ends nothing.
 * - Any message without such an event -> device.heartbeat with the battery (+ device.battery_low
 *   under 20 %). `linkquality` is an LQI (0-255), not an RSSI, and is not carried.
 */
import { z } from "zod";
import { ZIGBEE2MQTT_CHANNEL, zigbee2mqttDecoder } from "../src/bridges/envelope.js";
import type { DecodedEvent } from "../src/model/event.js";
import type { DeviceProfile } from "../src/model/profile.js";
import { byChannel, event, heartbeat } from "./blocks.js";

const Battery = { battery: z.number().min(0).max(100).optional(), voltage: z.number().optional() };

const DoorState = z.looseObject({ contact: z.boolean().optional(), ...Battery });
function orHeartbeat(
  events: DecodedEvent[],
  battery: number | undefined,
  occurredAt: string,
): DecodedEvent[] {
  return events.length ? events : heartbeat({ battery }, occurredAt);
}

const env = (model: string | null, state: object, previous: object | null) => ({ model, state, previous });
const ts = "2025-01-15T02:14:07.250Z";

export const aqaraMccgq11lm: DeviceProfile = {
  id: "aqara/mccgq11lm",
  vendor: "Aqara",
  model: "MCCGQ11LM",
  kind: "door-sensor",
  description:
    "Zigbee door & window contact via zigbee2mqtt: `contact` open/closed and battery on `zigbee2mqtt`.",
  topics: [ZIGBEE2MQTT_CHANNEL],
  // Xiaomi/Aqara end devices check in about every 50-60 minutes (zigbee2mqtt's availability for
  // battery devices defaults to 25 hours; an hour is what these send on their own).
  supervision: { heartbeatSec: 3600, missedHeartbeats: 3 },
  scaip: { dty: "0014" },
  emits: ["door.open", "device.heartbeat", "device.battery_low"],
  payloads: { [ZIGBEE2MQTT_CHANNEL]: DoorState },
  decode: byChannel({
    [ZIGBEE2MQTT_CHANNEL]: zigbee2mqttDecoder(["MCCGQ11LM"], DoorState, (s, ctx) => {
      const { occurredAt } = ctx;
      const out: DecodedEvent[] = [];
      // After a restart (no previous state) a closed door ends nothing; an open one is reported.
      if (s.contact !== undefined && ctx.changed("contact") && (ctx.hadPrevious || !s.contact))
        out.push(event("door.open", {}, { occurredAt, phase: s.contact ? "end" : "start" }));
      return orHeartbeat(out, s.battery, occurredAt);
    }),
  }),
  fixtures: [
    {
      name: "door opened",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        "MCCGQ11LM",
        { battery: 91, contact: false, linkquality: 144, voltage: 3005 },
        { battery: 91, contact: true, linkquality: 150, voltage: 3005 },
      ),
      expected: [{ type: "door.open", occurredAt: ts, phase: "start", data: {} }],
    },
    {
      name: "door closed, time from zigbee2mqtt's last_seen",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        "MCCGQ11LM",
        { battery: 91, contact: true, last_seen: "2025-01-15T03:14:01+01:00" },
        { battery: 91, contact: false, last_seen: "2025-01-15T03:10:00+01:00" },
      ),
      expected: [{ type: "door.open", occurredAt: "2025-01-15T02:14:01.000Z", phase: "end", data: {} }],
    },
    {
      name: "an unchanged contact is a heartbeat with low battery",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("MCCGQ11LM", { battery: 12, contact: true }, { battery: 13, contact: true }),
      expected: [
        { type: "device.heartbeat", occurredAt: ts, data: { battery: 12 } },
        {
          type: "device.battery_low",
          occurredAt: ts,
          data: { battery: 12, reason: "battery 12% is below 20%" },
        },
      ],
    },
    {
      name: "first message after a restart counts as a change",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(null, { battery: 90, contact: false }, null),
      expected: [{ type: "door.open", occurredAt: ts, phase: "start", data: {} }],
    },
    {
      name: "a closed door after a restart ends nothing",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("MCCGQ11LM", { battery: 90, contact: true }, null),
      expected: [{ type: "device.heartbeat", occurredAt: ts, data: { battery: 90 } }],
    },
    {
      name: "a device zigbee2mqtt knows as another model is refused",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("WXKG11LM", { action: "single" }, null),
      expected: [],
      rejects: "unsupported",
    },
    {
      name: "a contact that is not a boolean is refused",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("MCCGQ11LM", { contact: "open" }, null),
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
