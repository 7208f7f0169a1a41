/**
 * `milesight/ws301`: Milesight WS301 magnetic door/window contact over LoRaWAN, through a network
 * server bridge (src/bridges/, docs/bridges.md). Registered with its DevEUI as the device id.
 *
 * Format from Milesight's public SensorDecoders repository (github.com/Milesight-IoT/SensorDecoders,
 * WS_Series/WS301: README.md and WS301_Decoder.js), `channel_id channel_type value` records:
 *   01 75 (1) battery % · 03 00 (1) magnet 0 close / 1 open · 04 00 (1) install 0 installed /
 *   1 uninstalled (the tamper switch) · ff 01 (1) protocol · ff 09 (2) hardware · ff 0a (2) firmware ·
 *   ff 0f (1) LoRaWAN class · ff 08 (6) serial number · ff 0b (1) device status · ff fe (1) reset
 * README example: `01 75 64 03 00 01 04 00 01` is battery 100 %, open, not installed. The decoded
 * object keeps the decoder's field names (`battery`, `magnet_status` "open"/"close", `tamper_status`
 * "installed"/"uninstalled"), which is also what a network server running Milesight's codec delivers.
 *
 * Mapping decisions:
 * - open -> door.open, phase start; close -> door.open, phase end (the canonical model has no separate
 *   "closed" type; the phase pair is how a rule sees how long a door stood open).
 * - uninstalled -> device.tamper (the sensor was taken off its door or frame: a door that can no longer
 *   be watched). installed -> nothing.
 * - battery -> device.heartbeat with battery and RSSI, plus device.battery_low under 20 %.
 * - An uplink with only attribute records (after a join or reset) is a heartbeat.
 * - An unknown channel makes the rest unreadable: the uplink is refused with its byte offset.
 */
import { z } from "zod";
import { Bytes, LORAWAN_CHANNEL, type LorawanCodec, lorawanDecoder } from "../src/bridges/envelope.js";
import type { DecodedEvent } from "../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../src/model/profile.js";
import { byChannel, event, heartbeat } from "./blocks.js";

const Ws301Object = z.looseObject({
  battery: z.number().min(0).max(100).optional(),
  magnet_status: z.enum(["open", "close"]).optional(),
  tamper_status: z.enum(["installed", "uninstalled"]).optional(),
  firmware_version: z.string().max(64).optional(),
});
type Ws301Object = z.output<typeof Ws301Object>;

const hex = (n: number) => n.toString(16).padStart(2, "0");

function flag<const T extends string>(value: number, names: readonly [T, T], what: string, at: number): T {
  const name = names[value];
  if (name === undefined)
    throw new DecodeError("unknown_event", `WS301 ${what} ${value} at byte ${at} is not 0 or 1`);
  return name;
}

function decodeBytes(bytes: Buffer): Ws301Object {
  const r = new Bytes(bytes, "WS301 uplink");
  const out: Ws301Object = {};
  while (!r.done) {
    const at = r.offset;
    const key = `${hex(r.u8())}${hex(r.u8())}`;
    if (key === "0175") {
      const battery = r.u8();
      if (battery > 100) throw new DecodeError("bad_schema", `WS301 battery ${battery} % at byte ${at}`);
      out.battery = battery;
    } else if (key === "0300") out.magnet_status = flag(r.u8(), ["close", "open"], "magnet status", at);
    else if (key === "0400")
      out.tamper_status = flag(r.u8(), ["installed", "uninstalled"], "install status", at);
    else if (key === "ff0a") out.firmware_version = `v${r.u8()}.${r.u8()}`;
    else if (key === "ff01" || key === "ff0f" || key === "ff0b" || key === "fffe") r.skip(1);
    else if (key === "ff09" || key === "ffff") r.skip(2);
    else if (key === "ff08") r.skip(6);
    else throw new DecodeError("bad_schema", `WS301 uplink: unknown channel ${key} at byte ${at}`);
  }
  return out;
}

function toEvents(o: Ws301Object, ctx: { occurredAt: string; rssi: number | undefined }): DecodedEvent[] {
  const { occurredAt } = ctx;
  const out: DecodedEvent[] = [];
  if (o.magnet_status)
    out.push(event("door.open", {}, { occurredAt, phase: o.magnet_status === "open" ? "start" : "end" }));
  if (o.tamper_status === "uninstalled")
    out.push(event("device.tamper", { reason: "contact sensor removed from its mounting" }, { occurredAt }));
  if (o.battery !== undefined || out.length === 0)
    out.push(...heartbeat({ battery: o.battery, rssi: ctx.rssi, firmware: o.firmware_version }, occurredAt));
  return out;
}

const codec: LorawanCodec<Ws301Object> = {
  decodeBytes: (b) => decodeBytes(b),
  object: Ws301Object,
  toEvents,
};

const ts = "2025-01-15T02:14:05.000Z";
function tts(corr: string, fCnt: number, hexPayload: string, extra: object = {}) {
  return {
    end_device_ids: {
      device_id: "door-room-12",
      application_ids: { application_id: "care-doors" },
      dev_eui: "24E124141C147125",
      join_eui: "24E124C0002A0001",
    },
    correlation_ids: [`as:up:${corr}`],
    received_at: "2025-01-15T02:14:05.041Z",
    uplink_message: {
      f_port: 85,
      f_cnt: fCnt,
      frm_payload: Buffer.from(hexPayload, "hex").toString("base64"),
      rx_metadata: [{ gateway_ids: { gateway_id: "kerlink-3" }, rssi: -104, snr: 2.25 }],
      received_at: ts,
      ...extra,
    },
  };
}

export const milesightWs301: DeviceProfile = {
  id: "milesight/ws301",
  vendor: "Milesight",
  model: "WS301",
  kind: "door-sensor",
  description:
    "Magnetic door/window contact over LoRaWAN: open/close, tamper (removed from mounting) and battery in " +
    "the network server's uplink JSON on `lorawan` (ChirpStack v4 or The Things Stack v3 bridge).",
  topics: [LORAWAN_CHANNEL],
  // The WS301 reports on every change and every report interval (Milesight's default 1080 min); set
  // the interval to 60 minutes so that a dead sensor is noticed within a few hours.
  supervision: { heartbeatSec: 3600, missedHeartbeats: 3 },
  scaip: { dty: "0014" },
  emits: ["door.open", "device.tamper", "device.heartbeat", "device.battery_low"],
  decode: byChannel({ [LORAWAN_CHANNEL]: lorawanDecoder(codec) }),
  fixtures: [
    {
      name: "Milesight's README example: battery 100 %, open, not installed",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000001", 7, "017564030001040001"),
      expected: [
        {
          type: "door.open",
          eventId: "lw:as:up:01JHF9A0000000000000000001:0",
          occurredAt: ts,
          phase: "start",
          data: {},
        },
        {
          type: "device.tamper",
          eventId: "lw:as:up:01JHF9A0000000000000000001:1",
          occurredAt: ts,
          data: { reason: "contact sensor removed from its mounting" },
        },
        {
          type: "device.heartbeat",
          eventId: "lw:as:up:01JHF9A0000000000000000001:2",
          occurredAt: ts,
          data: { battery: 100, rssi: -104 },
        },
      ],
    },
    {
      name: "door closed",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000002", 8, "030000"),
      expected: [
        {
          type: "door.open",
          eventId: "lw:as:up:01JHF9A0000000000000000002",
          occurredAt: ts,
          phase: "end",
          data: {},
        },
      ],
    },
    {
      name: "low battery report",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000003", 9, "017512030000040000"),
      expected: [
        {
          type: "door.open",
          eventId: "lw:as:up:01JHF9A0000000000000000003:0",
          occurredAt: ts,
          phase: "end",
          data: {},
        },
        {
          type: "device.heartbeat",
          eventId: "lw:as:up:01JHF9A0000000000000000003:1",
          occurredAt: ts,
          data: { battery: 18, rssi: -104 },
        },
        {
          type: "device.battery_low",
          eventId: "lw:as:up:01JHF9A0000000000000000003:2",
          occurredAt: ts,
          data: { battery: 18, reason: "battery 18% is below 20%" },
        },
      ],
    },
    {
      name: "no bytes: decoded_payload from Milesight's codec on The Things Stack",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000004", 10, "", {
        frm_payload: undefined,
        decoded_payload: { battery: 97, magnet_status: "open", tamper_status: "installed" },
      }),
      expected: [
        {
          type: "door.open",
          eventId: "lw:as:up:01JHF9A0000000000000000004:0",
          occurredAt: ts,
          phase: "start",
          data: {},
        },
        {
          type: "device.heartbeat",
          eventId: "lw:as:up:01JHF9A0000000000000000004:1",
          occurredAt: ts,
          data: { battery: 97, rssi: -104 },
        },
      ],
    },
    {
      name: "attribute records after a join are a heartbeat",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000005", 1, "ff0bffff0101ff0a0104ff0f00"),
      expected: [
        {
          type: "device.heartbeat",
          eventId: "lw:as:up:01JHF9A0000000000000000005",
          occurredAt: ts,
          data: { rssi: -104, firmware: "v1.4" },
        },
      ],
    },
    {
      name: "a magnet status of 2 is refused",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000006", 11, "030002"),
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "an unknown channel is refused",
      topic: LORAWAN_CHANNEL,
      payload: tts("01JHF9A0000000000000000007", 12, "0567aa00"),
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
