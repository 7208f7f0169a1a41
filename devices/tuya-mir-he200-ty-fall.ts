/**
 * `tuya/mir-he200-ty-fall`: Tuya MIR-HE200-TY_fall mmWave human presence radar with fall detection,
 * through a zigbee2mqtt bridge (src/bridges/, docs/bridges.md), registered with its IEEE address.
 *
 * Payload is zigbee2mqtt's published state (zigbee2mqtt.io/devices/MIR-HE200-TY_fall.html, "Exposes"):
 * `fall_down_status` none | maybe_fall | fall, `presence`, `occupancy`, `motion_speed`,
 * `motion_direction`, `static_dwell_alarm` (text), `illuminance_lux`, settings, `linkquality`.
 * The bridge wraps each message with the previous state it saw (src/bridges/envelope.ts).
 *
 * Mapping decisions:
 * - fall_down_status changed to maybe_fall -> fall.suspected; to fall -> fall.detected; back to none
 *   -> fall.ended. Unchanged values (every presence or illuminance update repeats the cached status)
 *   give nothing, so one fall is one alert. After a gateway restart the first message counts as a
 *   change: a fall in progress is reported again rather than missed; "none" then gives nothing.
 * - presence / occupancy / motion: no canonical occupancy type (as for the Milesight radar); not mapped.
 * - static_dwell_alarm is free text zigbee2mqtt does not document further: not mapped.
 * - Any message without a fall change -> device.heartbeat (the radar is mains powered: no battery).
 */
import { z } from "zod";
import { ZIGBEE2MQTT_CHANNEL, zigbee2mqttDecoder } from "../src/bridges/envelope.js";
import type { DeviceProfile } from "../src/model/profile.js";
import { byChannel, event, heartbeat } from "./blocks.js";

const RadarState = z.looseObject({
  fall_down_status: z.enum(["none", "maybe_fall", "fall"]).optional(),
  presence: z.boolean().optional(),
});

const env = (model: string | null, state: object, previous: object | null) => ({ model, state, previous });
const ts = "2025-01-15T02:14:07.250Z";
const MODEL = "MIR-HE200-TY_fall";

export const tuyaMirHe200TyFall: DeviceProfile = {
  id: "tuya/mir-he200-ty-fall",
  vendor: "Tuya",
  model: "MIR-HE200-TY_fall",
  kind: "fall-sensor",
  description:
    "Zigbee mmWave presence radar with fall detection via zigbee2mqtt: `fall_down_status` on `zigbee2mqtt`.",
  topics: [ZIGBEE2MQTT_CHANNEL],
  // Mains powered and chatty (presence and illuminance reports); 5 minutes of silence is a fault.
  supervision: { heartbeatSec: 300, missedHeartbeats: 2 },
  scaip: { dty: "0005" },
  emits: ["fall.suspected", "fall.detected", "fall.ended", "device.heartbeat"],
  payloads: { [ZIGBEE2MQTT_CHANNEL]: RadarState },
  decode: byChannel({
    [ZIGBEE2MQTT_CHANNEL]: zigbee2mqttDecoder([MODEL], RadarState, (s, ctx) => {
      const { occurredAt } = ctx;
      const status = s.fall_down_status;
      if (status !== undefined && ctx.changed("fall_down_status")) {
        if (status === "maybe_fall") return [event("fall.suspected", {}, { occurredAt })];
        if (status === "fall") return [event("fall.detected", {}, { occurredAt })];
        // "none" with nothing known before it (a restart) ends nothing.
        if (ctx.hadPrevious) return [event("fall.ended", {}, { occurredAt })];
      }
      return heartbeat({}, occurredAt);
    }),
  }),
  fixtures: [
    {
      name: "maybe a fall",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        MODEL,
        { fall_down_status: "maybe_fall", presence: true, motion_speed: 0, linkquality: 120 },
        { fall_down_status: "none", presence: true, motion_speed: 3, linkquality: 120 },
      ),
      expected: [{ type: "fall.suspected", occurredAt: ts, data: {} }],
    },
    {
      name: "a fall",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        MODEL,
        { fall_down_status: "fall", presence: true },
        { fall_down_status: "maybe_fall", presence: true },
      ),
      expected: [{ type: "fall.detected", occurredAt: ts, data: {} }],
    },
    {
      name: "an illuminance update repeating the fall status is a heartbeat, not a second fall",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        MODEL,
        { fall_down_status: "fall", presence: true, illuminance_lux: 40 },
        { fall_down_status: "fall", presence: true, illuminance_lux: 38 },
      ),
      expected: [{ type: "device.heartbeat", occurredAt: ts, data: {} }],
    },
    {
      name: "back to none ends the fall",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(
        MODEL,
        { fall_down_status: "none", presence: true },
        { fall_down_status: "fall", presence: true },
      ),
      expected: [{ type: "fall.ended", occurredAt: ts, data: {} }],
    },
    {
      name: "none after a restart ends nothing",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(MODEL, { fall_down_status: "none", presence: false }, null),
      expected: [{ type: "device.heartbeat", occurredAt: ts, data: {} }],
    },
    {
      name: "an unknown fall status is refused",
      topic: ZIGBEE2MQTT_CHANNEL,
      payload: env(MODEL, { fall_down_status: "fallen" }, null),
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
