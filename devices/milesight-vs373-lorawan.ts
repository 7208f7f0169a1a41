/**
 * `milesight/vs373-lorawan`: Milesight VS373 radar fall sensor, LoRaWAN variant, through a network
 * server bridge (src/bridges/, docs/bridges.md). Registered with its DevEUI as the device id.
 *
 * Format from Milesight's public SensorDecoders repository (github.com/Milesight-IoT/SensorDecoders,
 * VS_Series/VS373: README.md "Payload Definition" and VS373_Decoder.js): a sequence of
 * `channel_id channel_type value` records:
 *   ff 01 (1) protocol version · ff 09 (2) hardware · ff 0a (2) firmware major.minor · ff 0b (1) device
 *   status · ff 0f (1) LoRaWAN class · ff 16 (8) serial number · ff ff (2) TSL version
 *   03 f8 (6) room detection: detection_status, target_status, use_time_now u16le, use_time_today u16le
 *   04 f9 (4) region 1-4 occupancy · 05 fa (8) region 1-4 out-of-bed time u16le seconds
 *   06 fb (5) alarm: alarm_id u16le, alarm_type, alarm_status, region_id
 *   20 ce      history record
 * The decoded object keeps the field names of Milesight's decoder output (`events[].alarm_type`
 * "fall", `alarm_status` "alarm_triggered", ...), so a network server running that codec delivers an
 * object this profile also reads (used when an uplink arrives without its bytes).
 *
 * Mapping decisions:
 * - The README and the decoder disagree on the alarm codes (README: type 0 "normal", status 0/1/2
 *   triggered/deactivated/ignored; decoder: type 0 fall, status 1/2/3). The decoder's numbering is
 *   followed: it is the one deployed on network servers, and it agrees with the VS373's MQTT trigger
 *   report (devices/milesight-vs373.ts: event 0 Fall, status 1 alarm, 2 resolve, 3 ignore). A status
 *   0 is refused (`unknown_event`) rather than guessed, so a device that follows the README shows up
 *   in the dead letters instead of having its alarms read backwards.
 * - alarm fall: triggered -> fall.detected, deactivated -> fall.ended; motionless / dwell -> presence.*
 *   start / end with `region-<n>` as zone where given; out_of_bed -> bed.exit / bed.return;
 *   occupied / vacant -> [] (no canonical occupancy type, as for the MQTT variant); ignored -> [].
 * - History records (20 ce) are refused as `unsupported`: the README gives them 9 bytes (a timestamp
 *   first), the decoder reads 5, and a misaligned read would invent alarms. The dead letter keeps them.
 * - Room detection, region occupancy, out-of-bed times and attribute records are the periodic report:
 *   one device.heartbeat (firmware from ff 0a, RSSI from the network server). The VS373 is mains
 *   powered and reports no battery.
 * - An unknown channel makes the rest unreadable (no length is known): the uplink is refused
 *   (`bad_schema`) with the byte offset, never partly decoded.
 * - occurredAt is the network server's receive time; event ids come from its uplink id
 *   (src/bridges/envelope.ts), so a redelivered uplink is a duplicate.
 */
import { z } from "zod";
import { Bytes, LORAWAN_CHANNEL, type LorawanCodec, lorawanDecoder } from "../src/bridges/envelope.js";
import type { DecodedEvent } from "../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../src/model/profile.js";
import { byChannel, event, heartbeat } from "./blocks.js";

const ALARM_TYPES = ["fall", "motionless", "dwell", "out_of_bed", "occupied", "vacant"] as const;
const ALARM_STATUSES = { 1: "alarm_triggered", 2: "alarm_deactivated", 3: "alarm_ignored" } as const;

const Alarm = z.looseObject({
  alarm_id: z.number().int().nonnegative(),
  alarm_type: z.enum(ALARM_TYPES),
  alarm_status: z.enum(["alarm_triggered", "alarm_deactivated", "alarm_ignored"]),
  region_id: z.number().int().nonnegative().optional(),
});
const Vs373Object = z.looseObject({
  firmware_version: z.string().max(64).optional(),
  detection_status: z.string().optional(),
  events: z.array(Alarm).optional(),
});
type Vs373Object = z.output<typeof Vs373Object>;

const hex = (n: number) => n.toString(16).padStart(2, "0");

function decodeBytes(bytes: Buffer): Vs373Object {
  const r = new Bytes(bytes, "VS373 uplink");
  const out: Vs373Object = {};
  const events: z.output<typeof Alarm>[] = [];
  while (!r.done) {
    const at = r.offset;
    const id = r.u8();
    const type = r.u8();
    const key = `${hex(id)}${hex(type)}`;
    if (key === "ff0a") out.firmware_version = `v${r.u8()}.${r.u8()}`;
    else if (key === "ff01" || key === "ff0b" || key === "ff0f") r.skip(1);
    else if (key === "ff09" || key === "ffff") r.skip(2);
    else if (key === "ff16") r.skip(8);
    else if (key === "03f8") {
      const status = r.u8();
      out.detection_status = ["normal", "vacant", "in_bed", "out_of_bed", "fall"][status] ?? String(status);
      r.skip(5);
    } else if (key === "04f9") r.skip(4);
    else if (key === "05fa") r.skip(8);
    else if (key === "06fb") {
      const alarmId = r.u16le();
      const typeCode = r.u8();
      const statusCode = r.u8();
      const region = r.u8();
      const alarmType = ALARM_TYPES[typeCode];
      if (alarmType === undefined)
        throw new DecodeError(
          "unknown_event",
          `VS373 alarm type ${typeCode} at byte ${at} is not a known type`,
        );
      const alarmStatus = ALARM_STATUSES[statusCode as keyof typeof ALARM_STATUSES];
      if (alarmStatus === undefined)
        throw new DecodeError(
          "unknown_event",
          `VS373 alarm status ${statusCode} at byte ${at} is not 1 triggered, 2 deactivated or 3 ignored`,
        );
      events.push({
        alarm_id: alarmId,
        alarm_type: alarmType,
        alarm_status: alarmStatus,
        ...(alarmType === "out_of_bed" ? { region_id: region } : {}),
      });
    } else if (key === "20ce")
      throw new DecodeError(
        "unsupported",
        `VS373 history record at byte ${at}: its length differs between Milesight's README and decoder`,
      );
    else throw new DecodeError("bad_schema", `VS373 uplink: unknown channel ${key} at byte ${at}`);
  }
  if (events.length) out.events = events;
  return out;
}

const STARTS = { alarm_triggered: "start", alarm_deactivated: "end" } as const;

function toEvents(o: Vs373Object, ctx: { occurredAt: string; rssi: number | undefined }): DecodedEvent[] {
  const { occurredAt } = ctx;
  if (!o.events) return heartbeat({ firmware: o.firmware_version, rssi: ctx.rssi }, occurredAt);
  const out: DecodedEvent[] = [];
  for (const a of o.events) {
    if (a.alarm_status === "alarm_ignored") continue;
    const on = a.alarm_status === "alarm_triggered";
    const zone = a.region_id === undefined ? undefined : `region-${a.region_id}`;
    switch (a.alarm_type) {
      case "fall":
        out.push(event(on ? "fall.detected" : "fall.ended", {}, { occurredAt }));
        break;
      case "motionless":
      case "dwell":
        out.push(event(`presence.${a.alarm_type}`, { zone }, { occurredAt, phase: STARTS[a.alarm_status] }));
        break;
      case "out_of_bed":
        out.push(event(on ? "bed.exit" : "bed.return", {}, { occurredAt }));
        break;
      case "occupied":
      case "vacant":
        break;
    }
  }
  return out;
}

const codec: LorawanCodec<Vs373Object> = {
  decodeBytes: (bytes) => decodeBytes(bytes),
  object: Vs373Object,
  toEvents,
};

const ts = "2025-01-15T02:14:05.123Z";
/** A ChirpStack v4 up event around a payload, as the network server publishes it. */
function chirpstack(dedup: string, fCnt: number, hexPayload: string, extra: object = {}) {
  return {
    deduplicationId: dedup,
    time: "2025-01-15T02:14:05.123456789+00:00",
    deviceInfo: {
      tenantId: "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
      applicationId: "17c82e96-be03-4f38-aef3-f83d48582d97",
      applicationName: "care-sensors",
      deviceProfileName: "Milesight VS373",
      deviceName: "room-12-radar",
      devEui: "24e124713d070131",
    },
    devAddr: "01fa3b2c",
    fCnt,
    fPort: 85,
    confirmed: false,
    data: Buffer.from(hexPayload, "hex").toString("base64"),
    rxInfo: [{ gatewayId: "24e124fffef0a1b2", rssi: -87, snr: 7.5 }],
    ...extra,
  };
}

export const milesightVs373Lorawan: DeviceProfile = {
  id: "milesight/vs373-lorawan",
  vendor: "Milesight",
  model: "VS373 (LoRaWAN)",
  kind: "fall-sensor",
  description:
    "Ceiling radar fall sensor over LoRaWAN: Milesight channel records (alarm events, room detection) in " +
    "the network server's uplink JSON on `lorawan` (ChirpStack v4 or The Things Stack v3 bridge).",
  topics: [LORAWAN_CHANNEL],
  // Set the device's reporting interval to 5 minutes; LoRaWAN airtime rules out the MQTT variant's 60 s.
  supervision: { heartbeatSec: 300, missedHeartbeats: 3 },
  scaip: { dty: "0005" },
  emits: [
    "fall.detected",
    "fall.ended",
    "presence.motionless",
    "presence.dwell",
    "bed.exit",
    "bed.return",
    "device.heartbeat",
  ],
  decode: byChannel({ [LORAWAN_CHANNEL]: lorawanDecoder(codec) }),
  fixtures: [
    {
      name: "fall alarm triggered (ChirpStack v4)",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("3ac7e3c4-4401-4b8d-9386-a5c902f9202d", 412, "06fb0a01000100"),
      expected: [
        {
          type: "fall.detected",
          eventId: "lw:3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
          occurredAt: ts,
          data: {},
        },
      ],
    },
    {
      name: "fall alarm deactivated",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("6e0b3a53-61a3-4c0c-a2c6-1b0bcd3a1e40", 413, "06fb0a01000200"),
      expected: [
        { type: "fall.ended", eventId: "lw:6e0b3a53-61a3-4c0c-a2c6-1b0bcd3a1e40", occurredAt: ts, data: {} },
      ],
    },
    {
      name: "out of bed in region 2, then motionless, in one uplink",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("a1d2b3c4-0000-4000-8000-00000000000a", 414, "06fb0b0003010206fb0c00010100"),
      expected: [
        { type: "bed.exit", eventId: "lw:a1d2b3c4-0000-4000-8000-00000000000a:0", occurredAt: ts, data: {} },
        {
          type: "presence.motionless",
          eventId: "lw:a1d2b3c4-0000-4000-8000-00000000000a:1",
          occurredAt: ts,
          phase: "start",
          data: {},
        },
      ],
    },
    {
      name: "back in bed",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("a1d2b3c4-0000-4000-8000-00000000000b", 415, "06fb0b0003020206fb0c00010200"),
      expected: [
        {
          type: "bed.return",
          eventId: "lw:a1d2b3c4-0000-4000-8000-00000000000b:0",
          occurredAt: ts,
          data: {},
        },
        {
          type: "presence.motionless",
          eventId: "lw:a1d2b3c4-0000-4000-8000-00000000000b:1",
          occurredAt: ts,
          phase: "end",
          data: {},
        },
      ],
    },
    {
      name: "dwell alarm (The Things Stack v3, decoded_payload ignored when bytes are there)",
      topic: LORAWAN_CHANNEL,
      payload: {
        end_device_ids: {
          device_id: "room-14-radar",
          application_ids: { application_id: "care-sensors" },
          dev_eui: "24E124713D070131",
          join_eui: "24E124C0002A0001",
        },
        correlation_ids: ["as:up:01JHF8Q2V8P0XG6Y3J2M4N5K7R", "gs:uplink:01JHF8Q2T1"],
        received_at: "2025-01-15T02:14:05.200Z",
        uplink_message: {
          f_port: 85,
          f_cnt: 88,
          frm_payload: Buffer.from("06fb0d00020100", "hex").toString("base64"),
          decoded_payload: {
            events: [{ alarm_id: 13, alarm_type: "fall", alarm_status: "alarm_triggered" }],
          },
          rx_metadata: [{ rssi: -101 }, { rssi: -95 }],
          received_at: "2025-01-15T02:14:05.123Z",
        },
      },
      expected: [
        {
          type: "presence.dwell",
          eventId: "lw:as:up:01JHF8Q2V8P0XG6Y3J2M4N5K7R",
          occurredAt: ts,
          phase: "start",
          data: {},
        },
      ],
    },
    {
      name: "no bytes: the network server's codec output (Milesight decoder field names) is read",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("b9f0c2de-1111-4222-8333-444455556666", 416, "", {
        data: undefined,
        object: { events: [{ alarm_id: 14, alarm_type: "fall", alarm_status: "alarm_triggered" }] },
      }),
      expected: [
        {
          type: "fall.detected",
          eventId: "lw:b9f0c2de-1111-4222-8333-444455556666",
          occurredAt: ts,
          data: {},
        },
      ],
    },
    {
      name: "periodic report is a heartbeat with firmware and RSSI",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack(
        "c0ffee00-aaaa-4bbb-8ccc-dddddddddddd",
        417,
        "ff0a0102ff0b0103f802000000340104f900010101",
      ),
      expected: [
        {
          type: "device.heartbeat",
          eventId: "lw:c0ffee00-aaaa-4bbb-8ccc-dddddddddddd",
          occurredAt: ts,
          data: { firmware: "v1.2", rssi: -87 },
        },
      ],
    },
    {
      name: "an ignored alarm and an occupancy alarm give no events",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("d1d2d3d4-0000-4000-8000-0000000000ee", 418, "06fb0e0000030006fb0f00040100"),
      expected: [],
    },
    {
      name: "alarm status 0 (the README's numbering) is refused",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("e1e2e3e4-0000-4000-8000-0000000000ff", 419, "06fb1000000000"),
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a history record is dead-lettered",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("f1f2f3f4-0000-4000-8000-000000000100", 420, "20ce0050876711000100"),
      expected: [],
      rejects: "unsupported",
    },
    {
      name: "a truncated alarm record is refused",
      topic: LORAWAN_CHANNEL,
      payload: chirpstack("f1f2f3f4-0000-4000-8000-000000000101", 421, "06fb0a01"),
      expected: [],
      rejects: "bad_schema",
    },
    {
      name: "an uplink without a DevEUI is refused",
      topic: LORAWAN_CHANNEL,
      payload: { deduplicationId: "f1f2f3f4-0000-4000-8000-000000000102", fCnt: 1, data: "BvsKAQABAA==" },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
