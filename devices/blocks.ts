/**
 * Small named building blocks that device profiles are assembled from, in the manner of
 * zigbee-herdsman-converters' `m.battery()`: payload parsing with readable errors, device clocks to
 * ISO time, the heartbeat/battery mapping, dispatch by channel, and the SCAIP-style decoder shared by
 * social-alarm devices. Everything here is pure; nothing here knows a vendor.
 */
import { z } from "zod";
import type { DecodedEvent, EventData, EventType, Phase, Priority } from "../src/model/event.js";
import { DecodeError, type DecodeInput, parseJson, type ScaipMapping } from "../src/model/profile.js";

export type Decoder = (input: DecodeInput) => DecodedEvent[];

/** The gateway clock that fixtures are decoded with unless they name their own `receivedAt`. */
export const FIXTURE_RECEIVED_AT = "2025-01-15T02:14:07.250Z";

// ---------------------------------------------------------------------------------------------------
// Events

export interface EventExtras {
  occurredAt?: string;
  eventId?: string;
  seq?: number;
  priority?: Priority;
  phase?: Phase;
}

/** Drop keys whose value is undefined, so decoded events compare and serialise as they read. */
export function compact<T extends object>(obj: T): T {
  const out: Record<string, unknown> = {};
  for (const key in obj) if (Object.hasOwn(obj, key) && obj[key] !== undefined) out[key] = obj[key];
  return out as T;
}

/** One decoded event; undefined fields are left out of both the envelope and `data`. */
export function event<T extends EventType>(
  type: T,
  data: EventData<T>,
  extras: EventExtras = {},
): DecodedEvent {
  return { type, data: compact(data), ...compact(extras) } as DecodedEvent;
}

/** Characters the canonical `eventId` allows; device ids outside them are rejected, not rewritten. */
export const ID_CHARS = /^[A-Za-z0-9._:-]+$/;
/** A device-supplied id that will become (part of) an eventId. */
export const DeviceEventId = z
  .string()
  .min(1)
  .max(96)
  .regex(ID_CHARS, "may contain letters, digits and . _ : -");

// ---------------------------------------------------------------------------------------------------
// Parsing

/** "path: message; path: message" for the first few zod issues. */
export function describeIssues(error: z.ZodError, max = 4): string {
  const parts = error.issues
    .slice(0, max)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join(".") : "(root)"}: ${i.message}`);
  const more = error.issues.length - max;
  return more > 0 ? `${parts.join("; ")}; and ${more} more` : parts.join("; ");
}

/** Validate with zod, or throw DecodeError("bad_schema") naming the path of each problem. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new DecodeError("bad_schema", `${what}: ${describeIssues(result.error)}`);
  return result.data;
}

/** UTF-8 JSON payload validated against the vendor's schema (bad_encoding, bad_json, bad_schema). */
export function decodeJson<S extends z.ZodType>(payload: Buffer, schema: S, what: string): z.output<S> {
  return parseWith(schema, parseJson(payload), what);
}

// ---------------------------------------------------------------------------------------------------
// Time

/**
 * Epoch numbers below this are seconds, above it milliseconds: 1e11 s is in the year 5138 and 1e11 ms
 * in 1973, so no plausible device clock is ambiguous.
 */
const EPOCH_MS_FROM = 1e11;
/** A device clock before this has not been set (RTCs start at 0 or 2000-01-01 after a power loss). */
const CLOCK_SET_AFTER = Date.UTC(2001, 0, 1);
const NUMERIC = /^\d+(\.\d+)?$/;
// The patterns of zod's own ISO formats, tested directly: this runs for every event a device sends.
const ISO_WITH_OFFSET = z.iso.datetime({ offset: true })._zod.pattern;
const ISO_LOCAL = z.iso.datetime({ local: true })._zod.pattern;

type TimeResult = { iso: string } | { unset: true } | { reason: string };

/** Epoch seconds, epoch milliseconds (number or digit string) or ISO 8601 with offset -> UTC ISO. */
export function readTime(value: number | string): TimeResult {
  let ms: number;
  if (typeof value === "number" || NUMERIC.test(value)) {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) return { reason: "epoch time must be a non-negative number" };
    ms = Math.round(n < EPOCH_MS_FROM ? n * 1000 : n);
  } else if (ISO_WITH_OFFSET.test(value)) {
    ms = Date.parse(value);
  } else if (ISO_LOCAL.test(value)) {
    return { reason: "ISO time needs a UTC offset (Z or +hh:mm); a local time is ambiguous" };
  } else {
    return { reason: "expected epoch seconds, epoch milliseconds or ISO 8601 with offset" };
  }
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return { reason: "time is out of range" };
  if (ms < CLOCK_SET_AFTER) return { unset: true };
  return { iso: date.toISOString() };
}

/** Throwing form of readTime for code outside a zod schema. */
export function toIso(value: number | string, what = "time"): string {
  const r = readTime(value);
  if ("iso" in r) return r.iso;
  throw new DecodeError("bad_schema", `${what}: ${"reason" in r ? r.reason : "device clock is not set"}`);
}

const TimeInput = z.union([z.number(), z.string()]);

/** A time that must be real (e.g. the start of a lift cycle): unset clocks are a schema error. */
export const Time = TimeInput.transform((v, ctx): string => {
  const r = readTime(v);
  if ("iso" in r) return r.iso;
  ctx.issues.push({
    code: "custom",
    input: v,
    message: "reason" in r ? r.reason : "device clock is not set",
  });
  return z.NEVER;
});

/**
 * The time a device stamps an alarm with. An unset clock (1970, 2000) gives undefined so that the
 * decoder falls back to the gateway clock: a fall must not be rejected because the RTC lost power.
 */
export const ClockTime = TimeInput.transform((v, ctx): string | undefined => {
  const r = readTime(v);
  if ("iso" in r) return r.iso;
  if ("unset" in r) return undefined;
  ctx.issues.push({ code: "custom", input: v, message: r.reason });
  return z.NEVER;
});

// ---------------------------------------------------------------------------------------------------
// Heartbeat and battery

/** Battery percentage below which a heartbeat also yields `device.battery_low`. */
export const LOW_BATTERY_PCT = 20;

/** Common health fields; spread into a vendor schema: `z.looseObject({ ...HealthFields, ... })`. */
export const HealthFields = {
  battery: z.number().min(0).max(100).optional(),
  rssi: z.number().min(-200).max(50).optional(),
  firmware: z.string().max(64).optional(),
  lowBattery: z.boolean().optional(),
};

export interface Health {
  battery?: number | undefined;
  rssi?: number | undefined;
  firmware?: string | undefined;
  /** The device's own low-battery flag, for devices that know their cell chemistry better than we do. */
  lowBattery?: boolean | undefined;
}

/**
 * `device.heartbeat` with what the device told about itself, plus `device.battery_low` when the
 * device says so or the battery is under the threshold. Repeated on every heartbeat while low: the
 * alert manager updates the open alert instead of raising another.
 */
export function heartbeat(
  health: Health,
  occurredAt: string,
  lowBatteryPct = LOW_BATTERY_PCT,
): DecodedEvent[] {
  const { battery, rssi, firmware, lowBattery } = health;
  const events = [event("device.heartbeat", { battery, rssi, firmware }, { occurredAt })];
  const under = battery !== undefined && battery < lowBatteryPct;
  if (under || lowBattery === true) {
    const reason = under ? `battery ${battery}% is below ${lowBatteryPct}%` : "device reports low battery";
    events.push(event("device.battery_low", { battery, reason }, { occurredAt }));
  }
  return events;
}

// ---------------------------------------------------------------------------------------------------
// Channels

/** Dispatch on the channel; a channel the profile does not declare is `unknown_topic`. */
export function byChannel(handlers: Readonly<Record<string, Decoder>>): Decoder {
  return (input) => {
    const handler = Object.hasOwn(handlers, input.topic) ? handlers[input.topic] : undefined;
    if (!handler) {
      const known = Object.keys(handlers).join(", ");
      throw new DecodeError(
        "unknown_topic",
        `channel "${input.topic}" is not one of this profile's: ${known}`,
      );
    }
    return handler(input);
  };
}

// ---------------------------------------------------------------------------------------------------
// SCAIP-style JSON

/**
 * SCAIP codes as field devices send them: 1 to 4 digits, with or without leading zeros ("10", "010"
 * and "0010" are one code), read as the four-digit form the profiles' mappings use.
 */
export const ScaipCode = z
  .string()
  .regex(/^\d{1,4}$/, "a SCAIP code is 1 to 4 digits")
  .transform((v) => v.padStart(4, "0"));

/**
 * A SCAIP alarm message (CLC/TS 50134-9, from SS 91100) carried as JSON over MQTT instead of XML over
 * SIP, keeping SCAIP's element names: `mty` message type (ME message/alarm, IN information, RE reset,
 * PI periodic heartbeat; the element values of the public SCAIP schema, e.g. caruhome/scaip-gateway
 * `xml/scaip.py`), `dty` device type, `stc` status code, `ref` the sender's reference for this
 * message. AL is the name early bridges used for ME and is still read as ME. `dur` (button press,
 * seconds), `bat`, `rssi` and `fw` are this gateway's additions. Every element of the SCAIP request
 * that has no canonical field (cid, did, pri, lco, lva, lte, ...) may be present and is kept in `raw`.
 */
export const ScaipMessage = z
  .looseObject({
    mty: z.enum(["AL", "ME", "IN", "RE", "PI"]),
    dty: ScaipCode,
    stc: ScaipCode.optional(),
    ref: DeviceEventId.optional(),
    ts: ClockTime.optional(),
    dur: z.number().nonnegative().optional(),
    bat: HealthFields.battery,
    rssi: HealthFields.rssi,
    fw: HealthFields.firmware,
  })
  .refine((m) => m.mty === "PI" || m.stc !== undefined, {
    message: "a SCAIP message other than a heartbeat (PI) needs stc",
    path: ["stc"],
  });
export type ScaipMessage = z.output<typeof ScaipMessage>;

/**
 * Decoder for one SCAIP device type, driven by the profile's own `scaip` mapping read backwards
 * (stc -> canonical type), so the mapping used for decoding is the one used to forward to an alarm
 * receiving centre. Unknown stc is `unknown_event`; another device type is `unsupported`. ME, IN and
 * RE are all read through the stc: the status code, not the message type, says what happened (an RE
 * "reset" with stc 0093 is a manual reset, with 0010 it would be a call), so a reset whose code the
 * profile does not map is refused as unknown_event and kept as a dead letter, never guessed at.
 */
export function scaipDecoder(mapping: ScaipMapping): Decoder {
  const byStc = new Map<string, EventType>();
  for (const [type, stc] of Object.entries(mapping.stc ?? {})) if (stc) byStc.set(stc, type as EventType);

  return ({ payload, receivedAt }) => {
    const msg = decodeJson(payload, ScaipMessage, "SCAIP message");
    if (msg.dty !== mapping.dty) {
      throw new DecodeError("unsupported", `dty ${msg.dty} is not this profile's device type ${mapping.dty}`);
    }
    const occurredAt = msg.ts ?? receivedAt;
    if (msg.mty === "PI")
      return heartbeat({ battery: msg.bat, rssi: msg.rssi, firmware: msg.fw }, occurredAt);

    const stc = msg.stc!;
    const type = byStc.get(stc);
    if (!type) throw new DecodeError("unknown_event", `stc ${stc} is not mapped for dty ${mapping.dty}`);
    const extras = { occurredAt, eventId: msg.ref };
    if (type === "call.manual") return [event(type, { pressDurationSec: msg.dur }, extras)];
    if (type.startsWith("device.")) {
      const data = { battery: msg.bat, reason: `SCAIP stc ${stc}` };
      return [event(type as "device.battery_low", data, extras)];
    }
    // Every other canonical type has only optional data that a SCAIP message has no element for.
    return [event(type, {} as EventData<typeof type>, extras)];
  };
}
