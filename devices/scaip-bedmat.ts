/**
 * `scaip/bed-mat`: a bed-exit mat (SCAIP device type 0012) whose transmitter publishes SCAIP alarm
 * messages as JSON on channel `scaip` (the message is described at `ScaipMessage` in blocks.ts), from
 * a bridge or from the gateway's SCAIP receiver (src/scaip/, docs/scaip.md); ME/IN/RE/PI and codes
 * of 1-4 digits are read:
 *
 *   {"mty":"AL","dty":"0012","stc":"0010","ref":"B-004512","ts":1736907185}   left the bed
 *   {"mty":"AL","dty":"0012","stc":"0117","ref":"B-004513","ts":1736907520}   lying in bed again
 *   {"mty":"PI","dty":"0012","ts":1736907185,"bat":71}                         heartbeat
 *
 * The SCAIP mapping in `scaip` is also the decoder. stc 0010 (alarm activation) on a bed sensor is
 * the mat's trigger, i.e. the resident has left the bed; 0117 "lying in bed" (DESIGN.md) is the return.
 * 0010 on a mat and 0016 for low battery are this profile's readings and must be checked against
 * CLC/TS 50134-9 before alarms are forwarded to an alarm receiving centre. The mat does not measure
 * how long the bed was empty; rules derive that from the exit/return pair.
 */
import type { DeviceProfile, ScaipMapping } from "../src/model/profile.js";
import { byChannel, ScaipMessage, scaipDecoder } from "./blocks.js";

const scaip: ScaipMapping = {
  dty: "0012",
  stc: { "bed.exit": "0010", "bed.return": "0117", "device.battery_low": "0016" },
};

export const scaipBedMat: DeviceProfile = {
  id: "scaip/bed-mat",
  vendor: "SCAIP",
  model: "Bed mat (dty 0012, JSON over MQTT)",
  kind: "bed-mat",
  description:
    "Bed-exit mat with SCAIP codes in JSON on `scaip`: AL/0010 the resident left the bed, AL/0117 lying in bed " +
    "again, AL/0016 low battery, PI a heartbeat.",
  topics: ["scaip"],
  // 5 minutes: a battery-powered mat transmitter, as for pendants. A mat is a night-time safety sensor,
  // so 15 minutes of silence is reported, long before a morning round would find a dead mat.
  supervision: { heartbeatSec: 300, missedHeartbeats: 3 },
  scaip,
  emits: ["bed.exit", "bed.return", "device.heartbeat", "device.battery_low"],
  decode: byChannel({ scaip: scaipDecoder(scaip) }),
  payloads: { scaip: ScaipMessage },
  fixtures: [
    {
      name: "out of bed, time in epoch seconds",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0010", ref: "B-004512", ts: 1736907185 },
      expected: [{ type: "bed.exit", eventId: "B-004512", occurredAt: "2025-01-15T02:13:05.000Z", data: {} }],
    },
    {
      name: "lying in bed again, time in epoch milliseconds",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0117", ref: "B-004513", ts: 1736907520000 },
      expected: [
        { type: "bed.return", eventId: "B-004513", occurredAt: "2025-01-15T02:18:40.000Z", data: {} },
      ],
    },
    {
      name: "out of bed without a time or reference",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0010" },
      expected: [{ type: "bed.exit", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "low battery alarm",
      topic: "scaip",
      payload: {
        mty: "AL",
        dty: "0012",
        stc: "0016",
        ref: "B-004514",
        ts: "2025-01-15T03:14:00+01:00",
        bat: 15,
      },
      expected: [
        {
          type: "device.battery_low",
          eventId: "B-004514",
          occurredAt: "2025-01-15T02:14:00.000Z",
          data: { battery: 15, reason: "SCAIP stc 0016" },
        },
      ],
    },
    {
      name: "heartbeat",
      topic: "scaip",
      payload: { mty: "PI", dty: "0012", ts: 1736907240, bat: 71 },
      expected: [{ type: "device.heartbeat", occurredAt: "2025-01-15T02:14:00.000Z", data: { battery: 71 } }],
    },
    {
      name: "SCAIP mty ME from a field unit: dty 12, stc 010",
      topic: "scaip",
      payload: { mty: "ME", cid: "4670005678", dty: "12", stc: "010", ref: "B-004520.a1b2c3d4" },
      expected: [
        { type: "bed.exit", eventId: "B-004520.a1b2c3d4", occurredAt: "2025-01-15T02:14:07.250Z", data: {} },
      ],
    },
    {
      name: "SCAIP mty IN lying in bed again with a three-digit code (117)",
      topic: "scaip",
      payload: { mty: "IN", dty: "0012", stc: "117", ref: "B-004521" },
      expected: [
        { type: "bed.return", eventId: "B-004521", occurredAt: "2025-01-15T02:14:07.250Z", data: {} },
      ],
    },
    {
      name: "SCAIP mty PI heartbeat",
      topic: "scaip",
      payload: { mty: "PI", dty: "12", ref: "P-000002" },
      expected: [{ type: "device.heartbeat", occurredAt: "2025-01-15T02:14:07.250Z", data: {} }],
    },
    {
      name: "a status code a mat does not have is rejected",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0088", ref: "B-004515", ts: 1736907185 },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "an unknown message type is rejected",
      topic: "scaip",
      payload: { mty: "XX", dty: "0012", stc: "0010", ts: 1736907185 },
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "a local time without offset is rejected",
      topic: "scaip",
      payload: { mty: "AL", dty: "0012", stc: "0010", ref: "B-004516", ts: "2025-01-15 03:13:05" },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
