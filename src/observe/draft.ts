/**
 * A drafted device profile from what an observed device sent: the channels it used, a zod schema
 * per JSON channel inferred from the samples (field names, types, which fields were always there,
 * the values of status-like fields), the lengths and first bytes of binary payloads, and fixtures
 * made from the samples with `expected: []` for the vendor to fill in. The output is a
 * devices/*.ts-style module (devices/README.md, "Adding a device") and a samples file for
 * `ata conform`. In the spirit of zigbee2mqtt, which generates a definition for a device it does
 * not support from what the device exposes (zigbee2mqtt.io, "Support new devices"); the code here is
 * our own and works from payloads, not clusters.
 *
 * Pure: samples in, text out. Nothing here guesses canonical events: a payload's meaning is the
 * vendor's to say.
 */
import type { Sample } from "./store.js";

/** A JSON value's shape, merged over every sample of a channel. */
export type Shape =
  | { kind: "object"; count: number; fields: Map<string, { shape: Shape; count: number }> }
  | { kind: "array"; items: Shape | null }
  | { kind: "string"; count: number; values: Map<string, number>; manyValues: boolean; isoTime: boolean }
  | { kind: "number"; integer: boolean; min: number; max: number }
  | { kind: "boolean" }
  | { kind: "null" }
  | { kind: "union"; options: Shape[] };

/** Distinct string values remembered per field; past this, a field is free text. */
const MAX_VALUES = 8;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const TIME_NAME = /(time|stamp|date|^ts$|At$|_at$)/i;
const STATUS_NAME = /(status|state|type|kind|event|mode|level|reason|cmd|command)/i;
/** Identifiers repeat across samples (one fall's transitions) but are never a closed set. */
const ID_NAME = /(^id|Id|_id|ID|uuid|Uuid|UUID|eui|Eui|EUI|serial|Serial)$/;
/** Epoch seconds and milliseconds between 2001 and 2100. */
const EPOCH_S = [978_307_200, 4_102_444_800] as const;
const EPOCH_MS = [978_307_200_000, 4_102_444_800_000] as const;

export function shapeOf(value: unknown): Shape {
  if (value === null) return { kind: "null" };
  if (Array.isArray(value))
    return {
      kind: "array",
      items: value.reduce<Shape | null>((acc, v) => mergeShapes(acc, shapeOf(v)), null),
    };
  switch (typeof value) {
    case "string":
      return {
        kind: "string",
        count: 1,
        values: new Map([[value, 1]]),
        manyValues: false,
        isoTime: ISO_TIME.test(value),
      };
    case "number":
      return { kind: "number", integer: Number.isInteger(value), min: value, max: value };
    case "boolean":
      return { kind: "boolean" };
    case "object": {
      const fields = new Map<string, { shape: Shape; count: number }>();
      for (const [k, v] of Object.entries(value as Record<string, unknown>))
        fields.set(k, { shape: shapeOf(v), count: 1 });
      return { kind: "object", count: 1, fields };
    }
    default:
      return { kind: "null" };
  }
}

export function mergeShapes(a: Shape | null, b: Shape): Shape {
  if (a === null) return b;
  if (a.kind === "union") {
    const i = a.options.findIndex((o) => o.kind === b.kind);
    const options = [...a.options];
    if (i === -1) options.push(b);
    else options[i] = mergeShapes(options[i]!, b);
    return { kind: "union", options };
  }
  if (b.kind === "union") return b.options.reduce<Shape>((acc, o) => mergeShapes(acc, o), a);
  if (a.kind !== b.kind) return { kind: "union", options: [a, b] };
  switch (a.kind) {
    case "object": {
      const o = b as Extract<Shape, { kind: "object" }>;
      const fields = new Map(a.fields);
      for (const [k, f] of o.fields) {
        const had = fields.get(k);
        fields.set(k, had ? { shape: mergeShapes(had.shape, f.shape), count: had.count + f.count } : f);
      }
      return { kind: "object", count: a.count + o.count, fields };
    }
    case "array": {
      const o = b as Extract<Shape, { kind: "array" }>;
      return { kind: "array", items: o.items === null ? a.items : mergeShapes(a.items, o.items) };
    }
    case "string": {
      const o = b as Extract<Shape, { kind: "string" }>;
      const values = new Map(a.values);
      for (const [v, n] of o.values) values.set(v, (values.get(v) ?? 0) + n);
      const manyValues = a.manyValues || o.manyValues || values.size > MAX_VALUES;
      return {
        kind: "string",
        count: a.count + o.count,
        values: manyValues ? new Map() : values,
        manyValues,
        isoTime: a.isoTime && o.isoTime,
      };
    }
    case "number": {
      const o = b as Extract<Shape, { kind: "number" }>;
      return {
        kind: "number",
        integer: a.integer && o.integer,
        min: Math.min(a.min, o.min),
        max: Math.max(a.max, o.max),
      };
    }
    default:
      return a;
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (k: string) => (IDENT.test(k) ? k : JSON.stringify(k));

function looksEpoch(s: Extract<Shape, { kind: "number" }>): "s" | "ms" | null {
  if (!s.integer) return null;
  if (s.min >= EPOCH_MS[0] && s.max <= EPOCH_MS[1]) return "ms";
  if (s.min >= EPOCH_S[0] && s.max <= EPOCH_S[1]) return "s";
  return null;
}

/** Whether ClockTime (devices/blocks.ts: epoch s, ms or ISO -> UTC ISO) fits this field. */
function isTimeField(name: string, s: Shape): boolean {
  if (s.kind === "string") return s.isoTime;
  return s.kind === "number" && TIME_NAME.test(name) && looksEpoch(s) !== null;
}

/** A zod expression for a shape, with a trailing comment saying what was seen. */
export function renderZod(s: Shape, name: string, indent = ""): { code: string; note: string } {
  if (isTimeField(name, s))
    return {
      code: "ClockTime",
      note:
        s.kind === "string"
          ? "ISO times seen"
          : `epoch ${looksEpoch(s as Extract<Shape, { kind: "number" }>)} seen`,
    };
  switch (s.kind) {
    case "null":
      return { code: "z.null()", note: "" };
    case "boolean":
      return { code: "z.boolean()", note: "" };
    case "number": {
      const epoch = looksEpoch(s);
      const range = s.min === s.max ? `${s.min} seen` : `${s.min}..${s.max} seen`;
      return {
        code: s.integer ? "z.number().int()" : "z.number()",
        note: epoch ? `${range}; looks like epoch ${epoch === "s" ? "seconds" : "milliseconds"}` : range,
      };
    }
    case "string": {
      const values = [...s.values.keys()];
      const repeated = s.count > values.length;
      const enumLike =
        !s.manyValues &&
        !ID_NAME.test(name) &&
        values.length > 0 &&
        values.every((v) => v.length <= 40) &&
        (STATUS_NAME.test(name) || (repeated && values.length <= 4));
      if (enumLike)
        return {
          code: `z.enum([${values.map((v) => JSON.stringify(v)).join(", ")}])`,
          note: "values seen; the vendor's documentation has the rest",
        };
      return {
        code: "z.string()",
        note: s.manyValues
          ? "many values"
          : `${values.length} distinct value${values.length === 1 ? "" : "s"}`,
      };
    }
    case "array": {
      if (s.items === null) return { code: "z.array(z.unknown())", note: "only empty arrays seen" };
      const item = renderZod(s.items, name, indent);
      return { code: `z.array(${item.code})`, note: item.note };
    }
    case "union": {
      const nonNull = s.options.filter((o) => o.kind !== "null");
      const nullable = nonNull.length < s.options.length;
      const inner =
        nonNull.length === 1
          ? renderZod(nonNull[0]!, name, indent)
          : {
              code: `z.union([${nonNull.map((o) => renderZod(o, name, indent).code).join(", ")}])`,
              note: "more than one type seen",
            };
      return { code: nullable ? `${inner.code}.nullable()` : inner.code, note: inner.note };
    }
    case "object": {
      const inner = `${indent}  `;
      const lines = [...s.fields].map(([k, f]) => {
        const r = renderZod(f.shape, k, inner);
        const optional = f.count < s.count ? ".optional()" : "";
        const seen = f.count < s.count ? `in ${f.count} of ${s.count}` : "";
        const note = [r.note, seen].filter(Boolean).join("; ");
        return `${inner}${key(k)}: ${r.code}${optional},${note ? ` // ${note}` : ""}`;
      });
      return { code: `z.looseObject({\n${lines.join("\n")}\n${indent}})`, note: "" };
    }
  }
}

/** What one channel's samples look like. */
export interface ChannelDraft {
  channel: string;
  /** json: every sample parsed; text: UTF-8 but not JSON; binary: anything else. */
  format: "json" | "text" | "binary";
  samples: number;
  /** Samples longer than the store keeps (observe.maxPayloadBytes): their shape is not inferred. */
  cut: number;
  sizes: { min: number; max: number };
  shape: Shape | null;
  /** Distinct first bytes (up to 4, hex) of binary payloads, most frequent first. */
  firstBytes: string[];
  /** Median seconds between samples on this channel, when there are several. */
  medianIntervalSec: number | null;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function parsePayload(
  p: Buffer,
): { kind: "json"; value: unknown } | { kind: "text"; text: string } | { kind: "binary" } {
  let text: string;
  try {
    text = UTF8.decode(p);
  } catch {
    return { kind: "binary" };
  }
  try {
    return { kind: "json", value: JSON.parse(text) };
  } catch {
    return { kind: "text", text };
  }
}

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function describeChannels(samples: readonly Sample[]): ChannelDraft[] {
  const byChannel = new Map<string, Sample[]>();
  for (const s of samples) {
    const list = byChannel.get(s.channel) ?? [];
    list.push(s);
    byChannel.set(s.channel, list);
  }
  return [...byChannel.keys()].sort().map((channel) => {
    const list = byChannel
      .get(channel)!
      .slice()
      .sort((a, b) => a.id - b.id);
    const whole = list.filter((s) => s.payload.length === s.size);
    const parsed = whole.map((s) => parsePayload(s.payload));
    const format: ChannelDraft["format"] =
      parsed.length && parsed.every((p) => p.kind === "json")
        ? "json"
        : parsed.length && parsed.every((p) => p.kind !== "binary")
          ? "text"
          : "binary";
    const shape =
      format === "json"
        ? parsed.reduce<Shape | null>(
            (acc, p) => (p.kind === "json" ? mergeShapes(acc, shapeOf(p.value)) : acc),
            null,
          )
        : null;
    const heads = new Map<string, number>();
    if (format === "binary")
      for (const s of list) {
        const h = s.payload.subarray(0, 4).toString("hex");
        heads.set(h, (heads.get(h) ?? 0) + 1);
      }
    const times = list.map((s) => Date.parse(s.receivedAt));
    const gaps = times.slice(1).map((t, i) => (t - times[i]!) / 1000);
    const sizes = list.map((s) => s.size);
    return {
      channel,
      format,
      samples: list.length,
      cut: list.length - whole.length,
      sizes: { min: Math.min(...sizes), max: Math.max(...sizes) },
      shape,
      firstBytes: [...heads].sort((a, b) => b[1] - a[1]).map(([h]) => h),
      medianIntervalSec: median(gaps),
    };
  });
}

export interface DraftFixture {
  name: string;
  topic: string;
  payload?: unknown;
  payloadHex?: string;
  receivedAt: string;
  expected: [];
  rejects?: "bad_json" | "bad_schema";
}

/**
 * Fixtures from the samples: per channel the distinct payloads (up to `perChannel`, the ones that
 * differ most in their status-like values and fields first), with `expected: []` for the vendor to
 * fill in; and for JSON channels with required fields, two that must be rejected.
 */
export function draftFixtures(
  samples: readonly Sample[],
  channels: readonly ChannelDraft[],
  perChannel = 3,
): DraftFixture[] {
  const out: DraftFixture[] = [];
  for (const c of channels) {
    const list = samples.filter((s) => s.channel === c.channel && s.payload.length === s.size);
    const seen = new Set<string>();
    const picked: Sample[] = [];
    // A sample whose field set or short string values were not seen yet comes first.
    const signature = (s: Sample) => {
      const p = parsePayload(s.payload);
      if (p.kind !== "json" || typeof p.value !== "object" || p.value === null)
        return s.payload.toString("hex");
      return Object.entries(p.value as Record<string, unknown>)
        .map(([k, v]) => (typeof v === "string" && v.length <= 40 && STATUS_NAME.test(k) ? `${k}=${v}` : k))
        .sort()
        .join(",");
    };
    for (const s of list) {
      const sig = signature(s);
      if (seen.has(sig)) continue;
      seen.add(sig);
      picked.push(s);
      if (picked.length >= perChannel) break;
    }
    const bytes = new Set(picked.map((s) => s.payload.toString("hex")));
    for (const s of list) {
      if (picked.length >= perChannel) break;
      const hex = s.payload.toString("hex");
      if (bytes.has(hex)) continue;
      bytes.add(hex);
      picked.push(s);
    }
    picked.forEach((s, i) => {
      const p = parsePayload(s.payload);
      out.push({
        name: `${c.channel} #${i + 1} as observed (${s.size} B, ${s.receivedAt}): fill in the events it means`,
        topic: c.channel,
        ...(c.format === "json" && p.kind === "json"
          ? { payload: p.value }
          : { payloadHex: s.payload.toString("hex") }),
        receivedAt: s.receivedAt,
        expected: [],
      });
    });
    if (c.format === "json") {
      out.push({
        name: `${c.channel}: not JSON`,
        topic: c.channel,
        payloadHex: Buffer.from("{").toString("hex"),
        receivedAt: picked[0]?.receivedAt ?? new Date(0).toISOString(),
        expected: [],
        rejects: "bad_json",
      });
      if (
        c.shape?.kind === "object" &&
        [...c.shape.fields.values()].some((f) => f.count === (c.shape as { count: number }).count)
      )
        out.push({
          name: `${c.channel}: an empty object lacks the fields every sample had`,
          topic: c.channel,
          payload: {},
          receivedAt: picked[0]?.receivedAt ?? new Date(0).toISOString(),
          expected: [],
          rejects: "bad_schema",
        });
    }
  }
  return out;
}

/** A value as a TypeScript literal in the style of devices/*.ts: identifier keys unquoted, two-space indent. */
function literal(v: unknown, indent: string): string {
  if (Array.isArray(v)) {
    if (!v.length) return "[]";
    const inner = `${indent}  `;
    return `[\n${v.map((x) => `${inner}${literal(x, inner)},`).join("\n")}\n${indent}]`;
  }
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    if (!entries.length) return "{}";
    const inner = `${indent}  `;
    return `{\n${entries.map(([k, x]) => `${inner}${key(k)}: ${literal(x, inner)},`).join("\n")}\n${indent}}`;
  }
  return JSON.stringify(v) ?? "null";
}

const pascal = (s: string) =>
  s
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");

const camel = (s: string) => {
  const p = pascal(s);
  return p ? p[0]!.toLowerCase() + p.slice(1) : "draft";
};

export interface Draft {
  deviceId: string;
  profileId: string;
  channels: ChannelDraft[];
  fixtures: DraftFixture[];
  /** The devices/*.ts-style module. */
  module: string;
  /** One `{"topic", "payload" | "payloadHex"}` per line, for `ata conform --file`. */
  samplesJsonl: string;
}

export interface DraftOptions {
  /** Where the module's imports point: "../src/model/profile.js" and "./blocks.js" from devices/. */
  imports?: { profile: string; blocks: string };
  /** The date written into the header. */
  now?: Date;
}

/** The status channel is presence (docs/mqtt-contract.md), never a profile's topic. */
const NOT_A_PROFILE_TOPIC = new Set(["status"]);

export function draftProfile(deviceId: string, samples: readonly Sample[], opts: DraftOptions = {}): Draft {
  const imports = opts.imports ?? { profile: "../src/model/profile.js", blocks: "./blocks.js" };
  const kept = samples.filter((s) => !NOT_A_PROFILE_TOPIC.has(s.channel));
  const channels = describeChannels(kept);
  const fixtures = draftFixtures(kept, channels);
  // A profile id's model part: lowercase letters and digits in runs joined by - (conformance).
  const slug =
    deviceId
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "device";
  const profileId = `draft/${slug}`;
  const constName = camel(`draft ${slug}`);
  const usesClock = channels.some((c) => c.shape && renderZod(c.shape, "").code.includes("ClockTime"));
  const busiest = [...channels].sort((a, b) => b.samples - a.samples)[0];
  const heartbeat = Math.max(1, Math.round(busiest?.medianIntervalSec ?? 60));
  const date = (opts.now ?? new Date()).toISOString().slice(0, 10);

  const schemas: string[] = [];
  const decoders: string[] = [];
  for (const c of channels) {
    const topicKey = key(c.channel);
    const what = `${c.samples} sample${c.samples === 1 ? "" : "s"}, ${c.sizes.min === c.sizes.max ? c.sizes.min : `${c.sizes.min}..${c.sizes.max}`} B${c.medianIntervalSec !== null ? `, about every ${Math.round(c.medianIntervalSec)} s` : ""}${c.cut ? `; ${c.cut} longer than the store keeps, not inferred` : ""}`;
    if (c.format === "json" && c.shape) {
      const name = `${pascal(c.channel) || "Channel"}Message`;
      const zod = renderZod(c.shape, c.channel);
      schemas.push(
        `/** \`${c.channel}\`: JSON, ${what}. */\nconst ${name} = ${zod.code};${zod.note ? ` // ${zod.note}` : ""}`,
      );
      decoders.push(
        `    ${topicKey}: ({ payload }) => {\n      const m = decodeJson(payload, ${name}, "${c.channel} message");\n      void m; // map m to canonical events (src/model/event.ts) and list their types in emits\n      return [];\n    },`,
      );
    } else if (c.format === "text") {
      schemas.push(`// \`${c.channel}\`: text, not JSON; ${what}.`);
      decoders.push(
        `    ${topicKey}: ({ payload }) => {\n      const text = payload.toString("utf8");\n      void text; // parse the text and map it to canonical events\n      return [];\n    },`,
      );
    } else {
      const fixed = c.sizes.min === c.sizes.max && c.cut === 0;
      schemas.push(
        `// \`${c.channel}\`: binary, ${what}; first bytes seen: ${c.firstBytes.slice(0, 6).join(", ") || "none"}.`,
      );
      const check = fixed
        ? `      if (payload.length !== ${c.sizes.min})\n        throw new DecodeError("bad_schema", \`${c.channel}: \${payload.length} bytes; every sample had ${c.sizes.min}\`);`
        : `      if (payload.length < ${c.sizes.min})\n        throw new DecodeError("bad_schema", \`${c.channel}: \${payload.length} bytes; the shortest sample had ${c.sizes.min}\`);`;
      decoders.push(
        `    ${topicKey}: ({ payload }) => {\n${check}\n      // read the fields (payload.readUInt8, readUInt16BE, ...) and map them to canonical events\n      return [];\n    },`,
      );
    }
  }

  const header = [
    "/**",
    ` * \`${profileId}\`: DRAFT drafted by \`ata observe draft ${deviceId}\` on ${date} from ${kept.length} payload${kept.length === 1 ? "" : "s"}`,
    ` * device ${deviceId} sent in observe mode, on ${channels.map((c) => `\`${c.channel}\``).join(", ") || "no channel"}.`,
    " *",
    " * Field names, types and the values below are what the device sent, nothing more. To finish it",
    ' * (devices/README.md, "Adding a device"):',
    " * - name the vendor and model, and the public document the format follows, in this header;",
    " * - set id, kind, supervision (heartbeatSec is the median interval seen), scaip and emits;",
    " * - map each message to canonical events and fill in each fixture's `expected`;",
    " * - register the profile in devices/index.ts and run `ata conform`.",
    " */",
  ].join("\n");
  const profileImports = [
    channels.some((c) => c.format === "binary") ? "DecodeError" : null,
    "type DeviceProfile",
  ].filter(Boolean);
  const blockImports = [
    "byChannel",
    usesClock ? "ClockTime" : null,
    channels.some((c) => c.format === "json") ? "decodeJson" : null,
  ].filter(Boolean);
  const fixtureText = literal(fixtures, "  ");
  const module = `${header}
${channels.some((c) => c.format === "json") ? 'import { z } from "zod";\n' : ""}import { ${profileImports.join(", ")} } from "${imports.profile}";
import { ${blockImports.join(", ")} } from "${imports.blocks}";

${schemas.join("\n\n")}

export const ${constName}: DeviceProfile = {
  id: "${profileId}",
  vendor: "Unknown vendor",
  model: ${JSON.stringify(deviceId)},
  kind: "gateway-native", // set: one of DEVICE_KINDS in src/model/profile.ts
  description: "Drafted from observation; describe what the device is and sends on each channel.",
  topics: [${channels.map((c) => JSON.stringify(c.channel)).join(", ")}],
  supervision: { heartbeatSec: ${heartbeat}, missedHeartbeats: 3 },
  scaip: { dty: "????" }, // set: the SCAIP device type (CLC/TS 50134-9), four digits
  emits: [], // set: the canonical event types the decoders return
  decode: byChannel({
${decoders.join("\n")}
  }),
  fixtures: ${fixtureText},
};
`;
  const samplesJsonl = kept
    .slice()
    .sort((a, b) => a.id - b.id)
    .filter((s) => s.payload.length === s.size)
    .map((s) => {
      const p = parsePayload(s.payload);
      return JSON.stringify(
        // ata conform reads a string payload as the raw text, so a JSON string goes as bytes.
        p.kind === "json" && typeof p.value !== "string"
          ? { topic: s.channel, payload: p.value }
          : { topic: s.channel, payloadHex: s.payload.toString("hex") },
      );
    })
    .join("\n");
  return { deviceId, profileId, channels, fixtures, module, samplesJsonl };
}

/** One field of an inferred shape, flattened for tables and JSON (the API, `ata observe show`). */
export interface FieldSummary {
  /** Dotted path; `[]` marks array items. */
  path: string;
  type: string;
  /** Missing from some samples of its object. */
  optional: boolean;
  /** What was seen: a range, the values, ISO times. */
  seen: string;
}

export function flattenShape(shape: Shape, path = "", optional = false): FieldSummary[] {
  const out: FieldSummary[] = [];
  const here = (type: string, seen: string) => out.push({ path: path || "(payload)", type, optional, seen });
  switch (shape.kind) {
    case "object":
      if (path) here("object", `${shape.fields.size} fields`);
      for (const [k, f] of shape.fields)
        out.push(...flattenShape(f.shape, path ? `${path}.${k}` : k, f.count < shape.count));
      break;
    case "array":
      here("array", shape.items ? "" : "only empty");
      if (shape.items) out.push(...flattenShape(shape.items, `${path}[]`));
      break;
    case "string":
      here(
        "string",
        shape.isoTime
          ? "ISO times"
          : shape.manyValues
            ? "many values"
            : [...shape.values.keys()].map((v) => JSON.stringify(v)).join(" "),
      );
      break;
    case "number": {
      const epoch = looksEpoch(shape);
      here(
        shape.integer ? "integer" : "number",
        `${shape.min === shape.max ? shape.min : `${shape.min}..${shape.max}`}${epoch ? ` (epoch ${epoch}?)` : ""}`,
      );
      break;
    }
    case "union":
      here(
        shape.options.map((o) => o.kind).join(" | "),
        shape.options.flatMap((o) => flattenShape(o, "x").map((f) => f.seen)).filter(Boolean)[0] ?? "",
      );
      break;
    default:
      here(shape.kind, "");
  }
  return out;
}

/** A channel's description without the Map-based shape: for JSON replies. */
export function channelSummary(c: ChannelDraft): Omit<ChannelDraft, "shape"> & { fields: FieldSummary[] } {
  const { shape, ...rest } = c;
  return { ...rest, fields: shape ? flattenShape(shape) : [] };
}

/** A payload for people: the text when it is UTF-8, else the first bytes in hex. */
export function preview(payload: Buffer, maxChars = 400): { text: string } | { hex: string } {
  try {
    const text = UTF8.decode(payload);
    return { text: text.length > maxChars ? `${text.slice(0, maxChars)}…` : text };
  } catch {
    const hex = payload.subarray(0, Math.ceil(maxChars / 2)).toString("hex");
    return { hex: payload.length * 2 > maxChars ? `${hex}…` : hex };
  }
}
