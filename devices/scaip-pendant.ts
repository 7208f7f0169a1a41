/**
 * `scaip/pendant`: a social-alarm pendant (SCAIP device type 0003) whose base unit publishes SCAIP
 * alarm messages as JSON on channel `scaip` (the message is described at `ScaipMessage` in blocks.ts),
 * directly over MQTT from a bridge or from the gateway's own SCAIP receiver (src/scaip/, SIP MESSAGE
 * with `<mrq>` XML, docs/scaip.md). Message types ME/IN/RE/PI and codes of 1-4 digits are read:
 *
 *   {"mty":"AL","dty":"0003","stc":"0010","ref":"A-000731","ts":1736907185,"dur":1.2}   manual call
 *   {"mty":"PI","dty":"0003","ts":1736907185,"bat":64,"rssi":-72,"fw":"3.1.4"}         heartbeat
 *
 * The SCAIP mapping in `scaip` is also the decoder: stc 0010 (alarm activation) on a pendant is a
 * manual call. stc 0016 for low battery is this profile's reading of the device.* codes DESIGN.md
 * lists and must be checked against CLC/TS 50134-9 before alarms are forwarded to an alarm receiving
 * centre. `ref`, SCAIP's reference for the message, becomes the eventId, so a resend dedupes.
 */
import type { DeviceProfile, ScaipMapping } from "../src/model/profile.js";
import { byChannel, ScaipMessage, scaipDecoder } from "./blocks.js";

const scaip: ScaipMapping = { dty: "0003", stc: { "call.manual": "0010", "device.battery_low": "0016" } };

export const scaipPendant: DeviceProfile = {
  id: "scaip/pendant",
  vendor: "SCAIP",
  model: "Alarm pendant (dty 0003, JSON over MQTT)",
  kind: "pendant",
  description:
    "Alarm pendant with SCAIP codes in JSON on `scaip`: AL/0010 is a manual call, AL/0016 low battery, PI a " +
    "heartbeat with battery, signal strength and firmware.",
  topics: ["scaip"],
  // 5 minutes: a worn, battery-powered pendant cannot afford a radio report every minute, and a
  // social alarm's usual supervision of hours is too slow to notice a pendant left out of range.
  supervision: { heartbeatSec: 300, missedHeartbeats: 3 },
  scaip,
  emits: ["call.manual", "device.heartbeat", "device.battery_low"],
  decode: byChannel({ scaip: scaipDecoder(scaip) }),
  payloads: { scaip: ScaipMessage },
  fixtures: [
    {
      name: "manual call with press duration, time in epoch seconds",
      topic: "scaip",
      payload: { mty: "AL", dty: "0003", stc: "0010", ref: "A-000731", ts: 1736907185, dur: 1.2 },
      expected: [
        {
          type: "call.manual",
          eventId: "A-000731",
          occurredAt: "2025-01-15T02:13:05.000Z",
          data: { pressDurationSec: 1.2 },
        },
      ],
    },
    {
      name: "manual call from a pendant whose clock was never set uses the gateway clock",
      topic: "scaip",
      payload: { mty: "AL", dty: "0003", stc: "0010", ref: "A-000732", ts: 0 },
      expected: [
        { type: "call.manual", eventId: "A-000732", occurredAt: "2025-01-15T02:14:07.250Z", data: {} },
      ],
    },
    {
      name: "low battery alarm",
      topic: "scaip",
      payload: { mty: "AL", dty: "0003", stc: "0016", ref: "A-000733", ts: 1736907240000, bat: 11 },
      expected: [
        {
          type: "device.battery_low",
          eventId: "A-000733",
          occurredAt: "2025-01-15T02:14:00.000Z",
          data: { battery: 11, reason: "SCAIP stc 0016" },
        },
      ],
    },
    {
      name: "heartbeat with battery, signal and firmware",
      topic: "scaip",
      payload: { mty: "PI", dty: "0003", ts: 1736907240, bat: 64, rssi: -72, fw: "3.1.4" },
      expected: [
        {
          type: "device.heartbeat",
          occurredAt: "2025-01-15T02:14:00.000Z",
          data: { battery: 64, rssi: -72, firmware: "3.1.4" },
        },
      ],
    },
    {
      name: "heartbeat with a low battery also reports battery_low",
      topic: "scaip",
      payload: { mty: "PI", dty: "0003", ts: 1736907185, bat: 8 },
      expected: [
        { type: "device.heartbeat", occurredAt: "2025-01-15T02:13:05.000Z", data: { battery: 8 } },
        {
          type: "device.battery_low",
          occurredAt: "2025-01-15T02:13:05.000Z",
          data: { battery: 8, reason: "battery 8% is below 20%" },
        },
      ],
    },
    {
      name: "SCAIP mty ME with short codes as field units send them (dty 3, stc 10)",
      topic: "scaip",
      payload: { mty: "ME", cid: "4670001234", dty: "3", stc: "10", ref: "A-000741.1f2e3d4c" },
      expected: [
        {
          type: "call.manual",
          eventId: "A-000741.1f2e3d4c",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: {},
        },
      ],
    },
    {
      name: "SCAIP mty IN (information) with a three-digit battery code",
      topic: "scaip",
      payload: { mty: "IN", dty: "003", stc: "016", ref: "A-000742", bat: 9 },
      expected: [
        {
          type: "device.battery_low",
          eventId: "A-000742",
          occurredAt: "2025-01-15T02:14:07.250Z",
          data: { battery: 9, reason: "SCAIP stc 0016" },
        },
      ],
    },
    {
      name: "SCAIP mty PI heartbeat with a two-digit device type",
      topic: "scaip",
      payload: { mty: "PI", cid: "4670001234", dty: "03", ref: "P-000001" },
      expected: [{ type: "device.heartbeat", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "a reset (RE) with a code the pendant does not map (0093 manual reset) is refused, not guessed",
      topic: "scaip",
      payload: { mty: "RE", dty: "0003", stc: "0093", ref: "A-000743" },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a five-digit status code is rejected",
      topic: "scaip",
      payload: { mty: "ME", dty: "0003", stc: "00010", ref: "A-000744" },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "an unknown status code is rejected",
      topic: "scaip",
      payload: { mty: "AL", dty: "0003", stc: "0999", ref: "A-000734", ts: 1736907185 },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "an alarm without a status code is rejected",
      topic: "scaip",
      payload: { mty: "AL", dty: "0003", ref: "A-000735", ts: 1736907185 },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "another device type is not this profile's",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0010", ref: "A-000736", ts: 1736907185 },
      expected: [],
      rejects: "unsupported",
    },
  ],
};
