/**
 * A device profile is data plus pure decoders. Core code never branches on a vendor or a model: it
 * looks the profile up by id and calls `decode`.
 */
import type { z } from "zod";
import type { DecodedEvent, EventType } from "./event.js";

export const DEVICE_KINDS = [
  "fall-sensor",
  "bed-mat",
  "chair-mat",
  "pendant",
  "door-sensor",
  "presence-button",
  "ceiling-lift",
  "standing-aid",
  "gateway-native",
] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** Input to a decoder: the topic suffix below `ata/v1/<deviceId>/` and the raw payload bytes. */
export interface DecodeInput {
  /** e.g. "events", "up", "state": one of the profile's declared `topics`. */
  topic: string;
  payload: Buffer;
  /** Gateway clock, ISO 8601; decoders use it only when the device sends no time of its own. */
  receivedAt: string;
}

/**
 * Thrown by a decoder for a payload it cannot understand. `code` is machine-readable and ends up on
 * the device's error topic and in the dead-letter store.
 */
export class DecodeError extends Error {
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "DecodeError";
  }
}
export type DecodeErrorCode =
  | "bad_json"
  | "bad_encoding"
  | "bad_schema"
  | "unknown_event"
  | "unknown_topic"
  | "unsupported";

/** A recorded raw payload and exactly the events it must decode to. */
export interface Fixture {
  name: string;
  topic: string;
  /** A JSON value (serialised as the device would) or raw bytes given as a hex string. */
  payload: unknown;
  payloadHex?: string;
  receivedAt?: string;
  expected: DecodedEvent[];
  /** For fixtures that must be rejected: the DecodeError code. */
  rejects?: DecodeErrorCode;
}

/** SCAIP (CLC/TS 50134-9) codes for forwarding to an alarm receiving centre. */
export interface ScaipMapping {
  /** Device type code, e.g. "0003" alarm pendant, "0012" bed sensor. */
  dty: string;
  /** Canonical type -> SCAIP status code it corresponds to. */
  stc?: Partial<Record<EventType, string>>;
}

export interface DeviceProfile {
  /** Stable id, `<vendor>/<model>` in lowercase. Stored with each registered device. */
  id: string;
  vendor: string;
  model: string;
  kind: DeviceKind;
  description: string;
  /** Topic suffixes the device publishes on, below `ata/v1/<deviceId>/`. */
  topics: readonly string[];
  /** Expected heartbeat interval: a device silent for `missedHeartbeats` of these is offline. */
  supervision: { heartbeatSec: number; missedHeartbeats: number };
  scaip: ScaipMapping;
  /** Canonical event types this profile may emit (documentation and rule validation). */
  emits: readonly EventType[];
  decode(input: DecodeInput): DecodedEvent[];
  /**
   * Channels whose decoder checks every event it returns with the canonical model's own schemas
   * (envelope fields and the type's data schema), so the gateway does not check that output a
   * second time (a zod parse per event, a fifth of the allocations on the ingest path). Only for
   * decoders that do; a vendor profile leaves it out and its output is always checked.
   */
  canonicalChannels?: readonly string[];
  /**
   * Channel -> the zod schema of a payload as the device sends it, for docs/asyncapi.yaml
   * (scripts/gen-asyncapi.ts turns its input side into JSON Schema; refinements are left out). The
   * decoder may check more, but every fixture that decodes must match it
   * (test/devices/asyncapi.test.ts). A channel without one is described by its fixtures alone.
   * Behind a bridge: the state as zigbee2mqtt publishes it (not the bridge's envelope); a LoRaWAN
   * uplink's JSON is described by the bridge (src/bridges/envelope.ts), so LoRaWAN profiles need none.
   */
  payloads?: Readonly<Record<string, z.ZodType>>;
  fixtures: readonly Fixture[];
}

/** One decoder for every payload: decode() without `stream` keeps no state between calls. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Parse a JSON payload or throw the DecodeError every profile uses for it. */
export function parseJson(payload: Buffer): unknown {
  let text: string;
  try {
    text = UTF8.decode(payload);
  } catch {
    throw new DecodeError("bad_encoding", "payload is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DecodeError("bad_json", `payload is not JSON: ${(err as Error).message}`);
  }
}
