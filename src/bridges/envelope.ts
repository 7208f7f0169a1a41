/**
 * What a bridge hands to ingest, and the pure decoder blocks that device profiles build on to read it.
 *
 * LoRaWAN (channel `lorawan`): the network server's own uplink JSON, byte for byte, so the event log's
 * raw copy and a dead letter show exactly what the network server sent. Two dialects are read:
 * - ChirpStack v4 MQTT integration, `application/<applicationId>/device/<devEui>/event/up` (JSON
 *   marshaler; fields of `integration.UplinkEvent` in chirpstack/api/proto/integration/integration.proto):
 *   `deduplicationId` (UUID), `time`, `deviceInfo.devEui`, `fCnt`, `fPort`, `data` (base64 FRMPayload),
 *   `object` (only when a codec is set in the device profile), `rxInfo[].rssi`.
 * - The Things Stack v3 MQTT server, `v3/<app-id>@<tenant>/devices/<device-id>/up` (Data Formats page,
 *   thethingsindustries.com/docs/integrations/data-formats): `end_device_ids.dev_eui`,
 *   `correlation_ids` (`as:up:<ULID>` names the uplink), `received_at`, `uplink_message.f_port`,
 *   `f_cnt`, `frm_payload` (base64), `decoded_payload`, `rx_metadata[].rssi`. Empty fields are omitted
 *   there ("" / 0 / false are left out), so f_cnt 0 and f_port 0 arrive as absent.
 *
 * zigbee2mqtt (channel `zigbee2mqtt`): zigbee2mqtt publishes a device's whole cached state on every
 * change, so a decoder seeing one message cannot tell what changed. The bridge therefore sends
 * `{"model", "state", "previous"}`: the zigbee2mqtt model from `bridge/devices` (null until known),
 * the message as published, and the state the bridge saw before it (null after a restart).
 */
import { z } from "zod";
import { compact, describeIssues } from "../../devices/blocks.js";
import type { DecodedEvent } from "../model/event.js";
import { DecodeError, parseJson } from "../model/profile.js";

export const LORAWAN_CHANNEL = "lorawan";
export const ZIGBEE2MQTT_CHANNEL = "zigbee2mqtt";

/** A DevEUI as the registry knows it: 16 lowercase hex digits. */
export function normaliseDevEui(value: string): string | null {
  const hex = value.replace(/[-:\s]/g, "").toLowerCase();
  return /^[0-9a-f]{16}$/.test(hex) ? hex : null;
}

const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "not base64");
const Rssi = z.looseObject({ rssi: z.number().optional() });
const VendorObject = z.record(z.string(), z.unknown());

/** A ChirpStack v4 uplink event as the network server publishes it (also for docs/asyncapi.yaml). */
export const ChirpStackUp = z.looseObject({
  deduplicationId: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
  time: z.string().optional(),
  deviceInfo: z.looseObject({ devEui: z.string() }),
  fCnt: z.number().int().nonnegative().default(0),
  fPort: z.number().int().nonnegative().default(0),
  data: Base64.optional(),
  object: VendorObject.optional(),
  rxInfo: z.array(Rssi).optional(),
});

/** A The Things Stack v3 uplink message as its MQTT server publishes it (also for docs/asyncapi.yaml). */
export const TtsUp = z.looseObject({
  end_device_ids: z.looseObject({ dev_eui: z.string(), device_id: z.string().optional() }),
  correlation_ids: z.array(z.string()).optional(),
  received_at: z.string().optional(),
  uplink_message: z.looseObject({
    f_port: z.number().int().nonnegative().default(0),
    f_cnt: z.number().int().nonnegative().default(0),
    frm_payload: Base64.optional(),
    decoded_payload: VendorObject.optional(),
    rx_metadata: z.array(Rssi).optional(),
    received_at: z.string().optional(),
  }),
});

/** One LoRaWAN uplink, whichever network server it came through. */
export interface Uplink {
  network: "chirpstack" | "tts";
  devEui: string;
  /** The network server's id for this uplink: stable across redeliveries, new for every uplink. */
  uplinkId: string;
  fPort: number;
  fCnt: number;
  /** FRMPayload; null when the uplink carried none. */
  bytes: Buffer | null;
  /** What the network server's codec made of the bytes, when one ran there. */
  object: Record<string, unknown> | null;
  /** When the network server received it (UTC ISO), or null when it did not say. */
  receivedAt: string | null;
  /** The strongest gateway's RSSI. */
  rssi: number | undefined;
}

function isoOrNull(text: string | undefined): string | null {
  if (text === undefined) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

function bestRssi(rx: readonly { rssi?: number | undefined }[] | undefined): number | undefined {
  const values = (rx ?? []).map((r) => r.rssi).filter((v): v is number => typeof v === "number");
  return values.length ? Math.max(...values) : undefined;
}

function parsed<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new DecodeError("bad_schema", `${what}: ${describeIssues(r.error)}`);
  return r.data;
}

/** Read a network server's uplink JSON (ChirpStack v4 or The Things Stack v3). */
export function readUplink(payload: Buffer): Uplink {
  const json = parseJson(payload);
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new DecodeError("bad_schema", "uplink: expected a JSON object");
  if ("deduplicationId" in json || "deviceInfo" in json) {
    const up = parsed(ChirpStackUp, json, "ChirpStack uplink");
    const devEui = normaliseDevEui(up.deviceInfo.devEui);
    if (!devEui) throw new DecodeError("bad_schema", "ChirpStack uplink: deviceInfo.devEui is not an EUI-64");
    return {
      network: "chirpstack",
      devEui,
      uplinkId: up.deduplicationId,
      fPort: up.fPort,
      fCnt: up.fCnt,
      bytes: up.data ? Buffer.from(up.data, "base64") : null,
      object: up.object ?? null,
      receivedAt: isoOrNull(up.time),
      rssi: bestRssi(up.rxInfo),
    };
  }
  if ("end_device_ids" in json || "uplink_message" in json) {
    const up = parsed(TtsUp, json, "The Things Stack uplink");
    const devEui = normaliseDevEui(up.end_device_ids.dev_eui);
    if (!devEui)
      throw new DecodeError("bad_schema", "The Things Stack uplink: end_device_ids.dev_eui is not an EUI-64");
    const m = up.uplink_message;
    const receivedAt = isoOrNull(m.received_at ?? up.received_at);
    // The application server's correlation id names this uplink; without one, the frame counter and
    // the network server's receive time together do (both are the same in a redelivery).
    const asUp = up.correlation_ids?.find((c) => /^as:up:[A-Za-z0-9]{1,64}$/.test(c));
    const uplinkId = asUp ?? `f${m.f_cnt}-${receivedAt ? Date.parse(receivedAt).toString(36) : "0"}`;
    return {
      network: "tts",
      devEui,
      uplinkId,
      fPort: m.f_port,
      fCnt: m.f_cnt,
      bytes: m.frm_payload ? Buffer.from(m.frm_payload, "base64") : null,
      object: m.decoded_payload ?? null,
      receivedAt,
      rssi: bestRssi(m.rx_metadata),
    };
  }
  throw new DecodeError(
    "bad_schema",
    "uplink: neither a ChirpStack v4 event (deduplicationId, deviceInfo) nor a The Things Stack v3 uplink (end_device_ids, uplink_message)",
  );
}

/** The context a LoRaWAN device's mapping gets beside its decoded object. */
export interface UplinkContext {
  occurredAt: string;
  rssi: number | undefined;
  fPort: number;
}

export interface LorawanCodec<T> {
  /** The vendor's binary format -> the object its published codec would output. Throws DecodeError. */
  decodeBytes(bytes: Buffer, fPort: number): T;
  /**
   * The vendor codec's output, as a network server that runs that codec delivers it (`object`,
   * `decoded_payload`). Used only when the uplink carries no bytes: the bytes are what the device
   * sent, while the network server's codec version is outside this gateway's control.
   */
  object: z.ZodType<T>;
  /** The decoded object -> canonical events (without eventIds: the uplink's id is added here). */
  toEvents(decoded: T, ctx: UplinkContext): DecodedEvent[];
}

/**
 * The decoder for a profile's `lorawan` channel: read the envelope, decode its bytes (or take the
 * network server's object), map to events, and give each event an id derived from the uplink id, so a
 * redelivered or replayed uplink is a duplicate in the event log however long after it comes.
 */
export function lorawanDecoder<T>(codec: LorawanCodec<T>) {
  return ({ payload, receivedAt }: { payload: Buffer; receivedAt: string }): DecodedEvent[] => {
    const up = readUplink(payload);
    let decoded: T;
    if (up.bytes && up.bytes.length > 0) decoded = codec.decodeBytes(up.bytes, up.fPort);
    else if (up.object) decoded = parsed(codec.object, up.object, "network server's decoded object");
    else decoded = codec.decodeBytes(Buffer.alloc(0), up.fPort);
    const ctx = { occurredAt: up.receivedAt ?? receivedAt, rssi: up.rssi, fPort: up.fPort };
    const events = codec.toEvents(decoded, ctx);
    return events.map((e, i) => ({
      ...e,
      eventId: events.length === 1 ? `lw:${up.uplinkId}` : `lw:${up.uplinkId}:${i}`,
    }));
  };
}

/** A forward-only reader over a binary payload that throws bad_schema when it runs out. */
export class Bytes {
  private at = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  get offset(): number {
    return this.at;
  }
  get done(): boolean {
    return this.at >= this.buf.length;
  }
  private need(n: number): void {
    if (this.at + n > this.buf.length)
      throw new DecodeError(
        "bad_schema",
        `${this.what}: payload ends at byte ${this.buf.length}, ${n} more needed at byte ${this.at}`,
      );
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.at++);
  }
  u16le(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.at += n;
  }
}

// ---------------------------------------------------------------------------------------------------
// zigbee2mqtt

const State = z.record(z.string(), z.unknown());
const Z2mEnvelope = z.strictObject({
  model: z.string().max(128).nullable(),
  state: State,
  previous: State.nullable(),
});
export type Z2mEnvelope = z.output<typeof Z2mEnvelope>;

/** The bridge's side: the bytes it submits for one zigbee2mqtt state message. */
export function z2mEnvelope(model: string | null, state: object, previous: object | null): Buffer {
  return Buffer.from(JSON.stringify({ model, state, previous }));
}

export interface Z2mContext {
  occurredAt: string;
  /** Whether `key` differs from the previous state (always true when there is none). */
  changed(key: string): boolean;
  /** Whether the bridge saw a state before this one (false after a restart). */
  hadPrevious: boolean;
}

/**
 * The decoder for a profile's `zigbee2mqtt` channel. `models` are the zigbee2mqtt models
 * (`definition.model`) the profile is for: a device whose model zigbee2mqtt reports as another is
 * refused (`unsupported`), as its state would be read with the wrong meaning.
 */
export function zigbee2mqttDecoder<S>(
  models: readonly string[],
  schema: z.ZodType<S>,
  toEvents: (state: S, ctx: Z2mContext) => DecodedEvent[],
) {
  return ({ payload, receivedAt }: { payload: Buffer; receivedAt: string }): DecodedEvent[] => {
    const env = parsed(Z2mEnvelope, parseJson(payload), "zigbee2mqtt envelope");
    if (env.model !== null && !models.includes(env.model))
      throw new DecodeError(
        "unsupported",
        `zigbee2mqtt reports model "${env.model}"; this profile is for ${models.join(", ")}`,
      );
    const state = parsed(schema, env.state, "zigbee2mqtt state");
    const previous = env.previous;
    const lastSeen = typeof env.state.last_seen === "string" ? isoOrNull(env.state.last_seen) : null;
    const ctx: Z2mContext = {
      occurredAt: lastSeen ?? receivedAt,
      hadPrevious: previous !== null,
      changed: (key) => previous === null || JSON.stringify(previous[key]) !== JSON.stringify(env.state[key]),
    };
    return toEvents(state, ctx).map((e) => compact(e));
  };
}
