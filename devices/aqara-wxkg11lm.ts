/**
 * `aqara/wxkg11lm`: Aqara wireless mini switch through a zigbee2mqtt bridge (src/bridges/,
 * docs/bridges.md), used as a call button; registered with its IEEE address as the device id.
 *
 * Payload: zigbee2mqtt's published state (zigbee2mqtt.io/devices/WXKG11LM.html, "Exposes"): `action`
 * one of single, double, triple, quadruple, hold, release; `battery`, `voltage`, `linkquality`.
 *
 * Mapping decisions:
 * - action single/double/triple/quadruple/hold -> call.manual (a wall or bedside button used as a
 *   call button); release -> nothing (the end of a hold). zigbee2mqtt does not cache `action`, so
 *   each message with one is one press, also the same action twice in a row.
 * - Any message without a press -> device.heartbeat with the battery (+ device.battery_low under 20 %).
 */
import { z } from "zod";
import { ZIGBEE2MQTT_CHANNEL, zigbee2mqttDecoder } from "../src/bridges/envelope.js";
import type { DecodedEvent } from "../src/model/event.js";
import type { DeviceProfile } from "../src/model/profile.js";
import { byChannel, event, heartbeat } from "./blocks.js";

const Battery = { battery: z.number().min(0).max(100).optional(), voltage: z.number().optional() };

const ButtonState = z.looseObject({
  action: z.enum(["single", "double", "triple", "quadruple", "hold", "release", ""]).optional(),
  ...Battery,
});

function orHeartbeat(
  events: DecodedEvent[],
  battery: number | undefined,
  occurredAt: string,
): DecodedEvent[] {
  return events.length ? events : heartbeat({ battery }, occurredAt);
}

const env = (model: string | null, state: object, previous: object | null) => ({ model, state, previous });
const ts = "2025-01-15T02:14:07.250Z";

export const aqaraWxkg11lm: DeviceProfile = {
  id: "aqara/wxkg11lm",
  vendor: "Aqara",
  model: "WXKG11LM",
  kind: "pendant",
  description:
    "Zigbee wireless mini switch via zigbee2mqtt, used as a call button: `action` on `zigbee2mqtt`.",
  topics: [ZIGBEE2MQTT_CHANNEL],
  supervision: { heartbeatSec: 3600, missedHeartbeats: 3 },
  scaip: { dty: "0003", stc: { "call.manual": "0010" } },
  emits: ["call.manual", "device.heartbeat", "device.battery_low"],
  payloads: { [ZIGBEE2MQTT_CHANNEL]: ButtonState },
  decode: byChannel({
    [ZIGBEE2MQTT_CHANNEL]: zigbee2mqttDecoder(["WXKG11LM"], ButtonState, (s, { occurredAt }) => {
      const out: DecodedEvent[] = [];
      if (s.action && s.action !== "release") out.push(event("call.manual", {}, { occurredAt }));
      return orHeartbeat(out, s.battery, occurredAt);
    }),
  }),
  fixtures: [
    {
      name: "a single press is a call",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("WXKG11LM", { action: "single", battery: 100, linkquality: 87, voltage: 3045 }, null),
      expected: [{ type: "call.manual", occurredAt: ts, data: {} }],
    },
    {
      name: "the same press again is another call",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        "WXKG11LM",
        { action: "single", battery: 100, linkquality: 90 },
        { action: "single", battery: 100, linkquality: 87 },
      ),
      expected: [{ type: "call.manual", occurredAt: ts, data: {} }],
    },
    {
      name: "a hold is a call, its release is not",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("WXKG11LM", { action: "release", battery: 100 }, { action: "hold", battery: 100 }),
      expected: [{ type: "device.heartbeat", occurredAt: ts, data: { battery: 100 } }],
    },
    {
      name: "a battery report without an action is a heartbeat, low under 20 %",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("WXKG11LM", { battery: 17, voltage: 2755 }, null),
      expected: [
        { type: "device.heartbeat", occurredAt: ts, data: { battery: 17 } },
        {
          type: "device.battery_low",
          occurredAt: ts,
          data: { battery: 17, reason: "battery 17% is below 20%" },
        },
      ],
    },
    {
      name: "an action the switch does not have is refused",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env("WXKG11LM", { action: "brightness_up" }, null),
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
