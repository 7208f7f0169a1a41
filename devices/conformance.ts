/**
 * Conformance: what a vendor runs to learn whether a device profile, and payloads recorded from their
 * device, meet the contract in docs/mqtt-contract.md. Both checks return findings as plain strings
 * rather than throwing, so that one run lists everything that is wrong.
 *
 * - checkProfile: the profile as data (id, topics, supervision, SCAIP mapping, emits), every fixture
 *   decoding to exactly its expected events or rejecting with its code, every decoded event valid in
 *   the canonical model, the decoder pure, and garbage input answered with a DecodeError, never a crash.
 * - checkSamples: which recorded payloads decode, to what, and why the others do not.
 */
import { isDeepStrictEqual } from "node:util";
import { COMMANDS, deviceTopic, ERRORS, parseDeviceTopic, STATUS } from "../src/broker/topics.js";
import {
  CanonicalEvent,
  type DecodedEvent,
  defaultPhase,
  EVENT_DATA,
  type EventType,
  SCHEMA_VERSION,
} from "../src/model/event.js";
import {
  DEVICE_KINDS,
  DecodeError,
  type DecodeErrorCode,
  type DeviceProfile,
  type Fixture,
} from "../src/model/profile.js";
import { describeIssues, FIXTURE_RECEIVED_AT } from "./blocks.js";

/** Fixtures a profile must have: enough to show its events, and at least one payload it rejects. */
export const MIN_FIXTURES = 4;
/** The gateway's default payload limit (docs/mqtt-contract.md); larger publishes are refused. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024;

const PROFILE_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*\/[a-z0-9]+(?:[.-][a-z0-9]+)*$/;
const RESERVED_CHANNELS = new Set([STATUS, ERRORS, COMMANDS]);
/** The gateway derives these from the status topic and supervision; no payload may claim them. */
const GATEWAY_TYPES: readonly EventType[] = ["device.online", "device.offline"];
const DECODED_KEYS = new Set(["type", "data", "occurredAt", "eventId", "seq", "priority", "phase"]);
const PROBE_DEVICE = "conformance-device";
const PROBE_CHANNEL = "conformance-unknown-channel";
const SCAIP_CODE = /^\d{4}$/;

/** The bytes a fixture stands for: `payloadHex` when given, otherwise the JSON of `payload`. */
export function fixtureBytes(fixture: Fixture): Buffer {
  if (fixture.payloadHex !== undefined) return Buffer.from(fixture.payloadHex, "hex");
  return Buffer.from(JSON.stringify(fixture.payload) ?? "");
}

type Outcome =
  | { kind: "events"; events: DecodedEvent[] }
  | { kind: "rejected"; error: DecodeError }
  | { kind: "crash"; error: unknown };

function run(profile: DeviceProfile, topic: string, payload: Buffer, receivedAt: string): Outcome {
  try {
    const events = profile.decode({ topic, payload, receivedAt });
    return { kind: "events", events };
  } catch (error) {
    return error instanceof DecodeError ? { kind: "rejected", error } : { kind: "crash", error };
  }
}

function crashText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** JSON as it will be stored: undefined-valued keys vanish, key order does not matter. */
function asStored(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value) ?? "null");
  } catch (error) {
    return `<not serialisable: ${crashText(error)}>`;
  }
}

const show = (value: unknown) => JSON.stringify(asStored(value));

/** Contract problems of one decoded event: keys, type, emits, data schema and the filled envelope. */
export function eventProblems(profile: DeviceProfile, decoded: unknown, receivedAt: string): string[] {
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) {
    return [`decoded ${show(decoded)}, not an event object`];
  }
  const ev = decoded as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(ev)) {
    if (!DECODED_KEYS.has(key))
      problems.push(`event sets "${key}", which a decoder may not (the gateway fills it in)`);
  }
  const type = ev.type;
  if (typeof type !== "string" || !Object.hasOwn(EVENT_DATA, type)) {
    return [...problems, `type ${show(type)} is not a canonical event type`];
  }
  const t = type as EventType;
  if (!profile.emits.includes(t)) problems.push(`emits ${t}, which is not in the profile's "emits"`);
  const data = EVENT_DATA[t].safeParse(ev.data);
  if (!data.success) return [...problems, `${t} data ${show(ev.data)}: ${describeIssues(data.error)}`];
  const filled = {
    eventId: ev.eventId ?? "d:conformance:0",
    schemaVersion: SCHEMA_VERSION,
    type: t,
    deviceId: PROBE_DEVICE,
    occurredAt: ev.occurredAt ?? receivedAt,
    receivedAt,
    ...(ev.seq === undefined ? {} : { seq: ev.seq }),
    ...(ev.priority === undefined ? {} : { priority: ev.priority }),
    phase: ev.phase ?? defaultPhase(t),
    data: ev.data,
  };
  const envelope = CanonicalEvent.safeParse(filled);
  if (!envelope.success) problems.push(`${t} envelope: ${describeIssues(envelope.error)}`);
  return problems;
}

function staticProblems(p: DeviceProfile): string[] {
  const problems: string[] = [];
  if (!PROFILE_ID.test(p.id))
    problems.push(`id "${p.id}" is not "<vendor>/<model>" in lowercase letters, digits, - and .`);
  for (const field of ["vendor", "model", "description"] as const) {
    if (!p[field]?.trim()) problems.push(`${field} is empty`);
  }
  if (!DEVICE_KINDS.includes(p.kind))
    problems.push(`kind "${p.kind}" is not one of ${DEVICE_KINDS.join(", ")}`);

  if (p.topics.length === 0)
    problems.push("topics is empty: the device must publish on at least one channel");
  if (new Set(p.topics).size !== p.topics.length)
    problems.push(`topics has duplicates: ${p.topics.join(", ")}`);
  for (const channel of p.topics) {
    if (RESERVED_CHANNELS.has(channel)) {
      problems.push(`topic "${channel}" is reserved by the gateway (${[...RESERVED_CHANNELS].join(", ")})`);
    } else if (parseDeviceTopic(deviceTopic(PROBE_DEVICE, channel)) === null) {
      problems.push(
        `topic "${channel}" is not a valid channel: lowercase letter, then a-z 0-9 _ -, at most 32`,
      );
    }
  }

  const { heartbeatSec, missedHeartbeats } = p.supervision;
  if (!Number.isInteger(heartbeatSec) || heartbeatSec < 10 || heartbeatSec > 86_400) {
    problems.push(
      `supervision.heartbeatSec ${heartbeatSec} is not a whole number of seconds from 10 to 86400`,
    );
  }
  if (!Number.isInteger(missedHeartbeats) || missedHeartbeats < 1 || missedHeartbeats > 10) {
    problems.push(`supervision.missedHeartbeats ${missedHeartbeats} is not a whole number from 1 to 10`);
  }

  if (p.emits.length === 0) problems.push("emits is empty");
  if (new Set(p.emits).size !== p.emits.length) problems.push("emits has duplicates");
  for (const t of p.emits) {
    if (!Object.hasOwn(EVENT_DATA, t)) problems.push(`emits "${t}", which is not a canonical event type`);
    if (GATEWAY_TYPES.includes(t))
      problems.push(`emits ${t}, which only the gateway derives (from the status topic)`);
  }

  if (!SCAIP_CODE.test(p.scaip.dty)) problems.push(`scaip.dty "${p.scaip.dty}" is not four digits`);
  const stcs = Object.entries(p.scaip.stc ?? {});
  for (const [type, stc] of stcs) {
    if (!p.emits.includes(type as EventType))
      problems.push(`scaip.stc maps ${type}, which the profile does not emit`);
    if (!stc || !SCAIP_CODE.test(stc)) problems.push(`scaip.stc for ${type} "${stc}" is not four digits`);
  }
  const codes = stcs.map(([, stc]) => stc);
  if (new Set(codes).size !== codes.length)
    problems.push("scaip.stc gives two event types the same status code");
  return problems;
}

function fixtureProblems(p: DeviceProfile): string[] {
  const problems: string[] = [];
  const fixtures = p.fixtures;
  if (fixtures.length < MIN_FIXTURES)
    problems.push(`has ${fixtures.length} fixtures; at least ${MIN_FIXTURES} are needed`);
  if (!fixtures.some((f) => f.rejects))
    problems.push("has no fixture that must be rejected (bad schema, unknown code)");
  const names = fixtures.map((f) => f.name);
  for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) {
    problems.push(`fixture name "${name}" is used twice`);
  }
  for (const channel of p.topics) {
    if (!fixtures.some((f) => f.topic === channel)) problems.push(`no fixture on topic "${channel}"`);
  }
  const shown = new Set(fixtures.flatMap((f) => (f.rejects ? [] : f.expected.map((e) => e.type))));
  for (const t of p.emits)
    if (!shown.has(t)) problems.push(`emits ${t} but no fixture shows a payload that decodes to it`);

  const eventIds = new Map<string, string>();
  for (const f of fixtures) {
    const where = `fixture "${f.name}"`;
    if (!f.name.trim()) problems.push("a fixture has no name");
    if (!p.topics.includes(f.topic) && f.rejects !== "unknown_topic") {
      problems.push(`${where}: topic "${f.topic}" is not one of the profile's topics`);
    }
    if (f.rejects && f.expected.length > 0)
      problems.push(`${where}: rejects ${f.rejects} but also expects events`);
    if (f.payloadHex !== undefined && !/^(?:[0-9a-fA-F]{2})*$/.test(f.payloadHex)) {
      problems.push(`${where}: payloadHex is not an even number of hex digits`);
      continue;
    }
    const receivedAt = f.receivedAt ?? FIXTURE_RECEIVED_AT;
    const bytes = fixtureBytes(f);
    const outcome = run(p, f.topic, bytes, receivedAt);
    if (outcome.kind === "crash") {
      problems.push(`${where}: decoder threw ${crashText(outcome.error)}; decoders throw only DecodeError`);
      continue;
    }
    if (outcome.kind === "rejected") {
      const { code, message } = outcome.error;
      if (!f.rejects)
        problems.push(`${where}: rejected with ${code} (${message}); expected ${show(f.expected)}`);
      else if (code !== f.rejects)
        problems.push(`${where}: rejected with ${code} (${message}); expected ${f.rejects}`);
      continue;
    }
    const { events } = outcome;
    if (!Array.isArray(events)) {
      problems.push(`${where}: decoder returned ${show(events)}, not an array of events`);
      continue;
    }
    if (f.rejects) {
      problems.push(`${where}: decoded to ${show(events)}; expected rejection with ${f.rejects}`);
      continue;
    }
    if (!isDeepStrictEqual(asStored(events), asStored(f.expected))) {
      problems.push(`${where}: decoded to ${show(events)}; expected ${show(f.expected)}`);
    }
    for (const [i, e] of events.entries()) {
      for (const problem of eventProblems(p, e, receivedAt))
        problems.push(`${where}, event ${i}: ${problem}`);
      const id = (e as { eventId?: unknown }).eventId;
      if (typeof id === "string") {
        const first = eventIds.get(id);
        if (first !== undefined) {
          problems.push(
            `${where}: eventId "${id}" repeats fixture "${first}"'s; replayed in order, one would dedupe`,
          );
        } else eventIds.set(id, f.name);
      }
    }
    const again = run(p, f.topic, bytes, receivedAt);
    if (again.kind !== "events" || !isDeepStrictEqual(asStored(again.events), asStored(events))) {
      problems.push(`${where}: decoding the same input twice gave different results; decoders must be pure`);
    }
  }
  return problems;
}

/** Inputs every decoder meets sooner or later; each must give events or a DecodeError, never a crash. */
const PROBES: readonly [string, Buffer][] = [
  ["invalid UTF-8", Buffer.from([0xff, 0xfe, 0x00, 0x81, 0xc3, 0x28])],
  ["non-JSON text", Buffer.from("fall detected!")],
  ["truncated JSON", Buffer.from('{"type": "fall.detected", ')],
  ["an empty payload", Buffer.alloc(0)],
  ["JSON null", Buffer.from("null")],
  ["a JSON number", Buffer.from("42")],
  ["a JSON string", Buffer.from('"fall"')],
  ["an empty JSON array", Buffer.from("[]")],
  ["an empty JSON object", Buffer.from("{}")],
  ["a deeply nested JSON value", Buffer.from(`${"[".repeat(200)}${"]".repeat(200)}`)],
];

function robustnessProblems(p: DeviceProfile): string[] {
  const problems: string[] = [];
  for (const channel of p.topics) {
    for (const [what, payload] of PROBES) {
      const outcome = run(p, channel, payload, FIXTURE_RECEIVED_AT);
      if (outcome.kind === "crash") {
        problems.push(
          `${what} on "${channel}" made the decoder throw ${crashText(outcome.error)}, not a DecodeError`,
        );
      } else if (outcome.kind === "events") {
        if (!Array.isArray(outcome.events)) {
          problems.push(`${what} on "${channel}" returned ${show(outcome.events)}, not an array`);
          continue;
        }
        for (const e of outcome.events) {
          for (const problem of eventProblems(p, e, FIXTURE_RECEIVED_AT))
            problems.push(`${what} on "${channel}": ${problem}`);
        }
      }
    }
  }
  const outcome = run(p, PROBE_CHANNEL, Buffer.from("{}"), FIXTURE_RECEIVED_AT);
  if (outcome.kind !== "rejected" || outcome.error.code !== "unknown_topic") {
    const got =
      outcome.kind === "rejected"
        ? outcome.error.code
        : outcome.kind === "crash"
          ? crashText(outcome.error)
          : "events";
    problems.push(`a channel outside "topics" must be rejected with unknown_topic, got ${got}`);
  }
  return problems;
}

/** Everything wrong with a profile, as readable sentences; [] when it conforms. */
export function checkProfile(profile: DeviceProfile): string[] {
  return [...staticProblems(profile), ...fixtureProblems(profile), ...robustnessProblems(profile)];
}

/** checkProfile over a catalogue, plus unique ids; each finding is prefixed with its profile id. */
export function checkCatalogue(profiles: readonly DeviceProfile[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const p of profiles) {
    if (seen.has(p.id)) problems.push(`${p.id}: id is used by two profiles`);
    seen.add(p.id);
    for (const problem of checkProfile(p)) problems.push(`${p.id}: ${problem}`);
  }
  return problems;
}

export interface Sample {
  /** The full topic (`ata/v1/<deviceId>/<channel>`) or just the channel. */
  topic: string;
  payload: Buffer;
  /** Gateway clock to decode with; defaults to a fixed time so that reports are reproducible. */
  receivedAt?: string;
}

export interface SampleResult {
  index: number;
  topic: string;
  /** The channel the sample was decoded as, or null when the topic could not be read. */
  channel: string | null;
  /** Decoded to events (possibly none) that all satisfy the canonical model, within the size limit. */
  ok: boolean;
  events: DecodedEvent[];
  /** Why the gateway would reject it: a DecodeError code, payload_too_large, or crash (a decoder bug). */
  error?: { code: DecodeErrorCode | "payload_too_large" | "crash"; message: string };
  /** Ways the decoded events break the contract (wrong data, a type the profile does not declare). */
  problems: string[];
}

function channelOf(topic: string): string | null {
  const parsed = parseDeviceTopic(topic);
  if (parsed) return parsed.channel;
  return topic.includes("/") ? null : topic;
}

/**
 * Decode a vendor's recorded payloads with a profile and say, for each, what it became or why it
 * would be rejected. A sample's `ok` is true only when the gateway would accept and log it.
 */
export function checkSamples(profile: DeviceProfile, samples: readonly Sample[]): SampleResult[] {
  return samples.map((sample, index): SampleResult => {
    const base = { index, topic: sample.topic, events: [] as DecodedEvent[], problems: [] as string[] };
    const channel = channelOf(sample.topic);
    if (channel === null) {
      const message = `topic "${sample.topic}" is not ata/v1/<deviceId>/<channel> or a bare channel`;
      return { ...base, channel, ok: false, error: { code: "unknown_topic", message } };
    }
    if (sample.payload.length > DEFAULT_MAX_PAYLOAD_BYTES) {
      const message = `${sample.payload.length} bytes is over the default limit of ${DEFAULT_MAX_PAYLOAD_BYTES}`;
      return { ...base, channel, ok: false, error: { code: "payload_too_large", message } };
    }
    const receivedAt = sample.receivedAt ?? FIXTURE_RECEIVED_AT;
    const outcome = run(profile, channel, sample.payload, receivedAt);
    if (outcome.kind === "crash") {
      const message = `decoder threw ${crashText(outcome.error)}: a bug in the profile, not in the payload`;
      return { ...base, channel, ok: false, error: { code: "crash", message } };
    }
    if (outcome.kind === "rejected") {
      const { code, message } = outcome.error;
      return { ...base, channel, ok: false, error: { code, message } };
    }
    const events = Array.isArray(outcome.events) ? outcome.events : [];
    const problems = Array.isArray(outcome.events)
      ? events.flatMap((e, i) => eventProblems(profile, e, receivedAt).map((p) => `event ${i}: ${p}`))
      : [`decoder returned ${show(outcome.events)}, not an array`];
    return { ...base, channel, ok: problems.length === 0, events, problems };
  });
}

/** One line per sample, for people: "ok   #0 events -> fall.detected" / "FAIL #3 up: bad_schema: ...". */
export function formatSampleResults(results: readonly SampleResult[]): string[] {
  return results.map((r) => {
    const where = `#${r.index} ${r.channel ?? r.topic}`;
    if (r.error) return `FAIL ${where}: ${r.error.code}: ${r.error.message}`;
    if (!r.ok) return `FAIL ${where}: ${r.problems.join("; ")}`;
    const types = r.events.map((e) => e.type).join(", ") || "no events (accepted, nothing to log)";
    return `ok   ${where} -> ${types}`;
  });
}
