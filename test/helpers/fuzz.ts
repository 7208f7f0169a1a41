/**
 * Bounded, seeded fuzzing for the suite: a small PRNG, generators and mutators for bytes and JSON,
 * and a memory probe. Everything random comes from one seed so a failure can be replayed:
 * `FUZZ_SEED=<seed> npx vitest run test/fuzz/<file>`. Each file derives its own stream from the
 * seed and its name, so adding inputs to one file does not change another's.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** The seed when FUZZ_SEED is not set: fixed, so the suite is deterministic by default. */
export const DEFAULT_FUZZ_SEED = 0x5eed_a7a;

/** The run's seed: FUZZ_SEED (decimal or 0x hex) or the default. */
export function fuzzSeed(): number {
  const raw = process.env.FUZZ_SEED;
  if (raw === undefined || raw.trim() === "") return DEFAULT_FUZZ_SEED;
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got "${raw}"`);
  return n >>> 0;
}

/** FNV-1a of a string, to derive one stream per file (or per profile) from the run's seed. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator, public domain): one 32-bit state, good enough
 * statistics for test inputs, and trivially reproducible from the seed.
 */
export class Rng {
  private state: number;

  constructor(
    readonly seed: number,
    readonly stream = "",
  ) {
    this.state = (seed ^ fnv1a(stream)) >>> 0;
  }

  /** A fresh generator for a sub-stream (one per profile, per worker), independent of draw order. */
  fork(name: string): Rng {
    return new Rng(this.seed, `${this.stream}/${name}`);
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(0, items.length - 1)]!;
  }

  /** Pick by weight: `[[weight, value], ...]`. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((s, [w]) => s + w, 0);
    let r = this.float() * total;
    for (const [w, v] of choices) {
      r -= w;
      if (r < 0) return v;
    }
    return choices[choices.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/** The text to put in a failure message: enough to replay this exact input. */
export function replayHint(rng: Rng, index: number, input: unknown): string {
  return `FUZZ_SEED=${rng.seed} (stream "${rng.stream}") input #${index}: ${preview(input)}`;
}

/** A short printable form of an input for failure messages. */
export function preview(input: unknown, max = 300): string {
  let text: string;
  if (Buffer.isBuffer(input)) {
    const utf8 = input.toString("utf8");
    const printable = ![...utf8].some((ch) => {
      const code = ch.codePointAt(0)!;
      return (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0xfffd;
    });
    text = printable ? JSON.stringify(utf8) : `hex:${input.toString("hex")}`;
  } else if (typeof input === "string") text = JSON.stringify(input);
  else {
    try {
      // Buffers inside an object print as text or hex, not as Buffer.toJSON's array of numbers.
      text =
        JSON.stringify(input, (_k, v: unknown) => {
          const b = v as { type?: unknown; data?: unknown } | null;
          return b?.type === "Buffer" && Array.isArray(b.data) ? preview(Buffer.from(b.data), max) : v;
        }) ?? String(input);
    } catch {
      text = String(input);
    }
  }
  return text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text;
}

// ---------------------------------------------------------------------------------------------------
// Interesting values

/** Integers at the edges of the widths parsers and databases use. */
export const BOUNDARY_INTEGERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  2,
  7,
  127,
  128,
  255,
  256,
  32767,
  32768,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  -(2 ** 53),
  1e11,
  1e11 - 1,
  9.99e12,
  8.64e15,
  8.64e15 + 1,
  -8.64e15,
];

/** Numbers that are not integers, or barely numbers. */
export const BOUNDARY_FLOATS: readonly number[] = [
  0.5,
  -0.5,
  1e-7,
  5e-324,
  Number.MIN_VALUE,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  1e308,
  1.7976931348623157e308,
  Math.PI,
  100.00000000000001,
  0.30000000000000004,
];

/** Number literals as JSON text that JSON.stringify cannot produce (overflow, exponent forms). */
export const RAW_NUMBER_TEXTS: readonly string[] = [
  "1e400",
  "-1e400",
  "1e-400",
  "123456789012345678901234567890",
  "-0.0",
  "0e0",
  "1E+2",
  "0.0000000000000000000000000001",
  "9007199254740993",
  "1.0",
];

/** Strings that break naive handling: NUL, control characters, RTL, emoji, lone surrogates. */
export const NASTY_STRINGS: readonly string[] = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\u0000".repeat(16),
  "\n\r\t\b\f",
  "\u001b[31mred",
  "\u202eevil",
  "\ufeffbom",
  "\ud83d\ude00",
  "\ud800",
  "\udfff",
  "e\u0301",
  "ﬃ",
  "ǅ",
  "İ",
  "%s%s%n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder as data, on purpose
  "${process.exit()}",
  "'; DROP TABLE events; --",
  "../../etc/passwd",
  "<script>alert(1)</script>",
  "__proto__",
  "constructor",
  "toString",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "1970-01-01T00:00:00Z",
  "2025-01-15T03:13:05",
  "2025-13-45T25:61:61+01:00",
  "9999-12-31T23:59:59.999+14:00",
  "+275760-09-13T00:00:00.000Z",
  "0000-01-01T00:00:00Z",
  "2025-01-15T03:13:05+99:99",
  "ata/v1/#",
  "+/+/#",
  "$SYS/x",
];

/** Keys that collide with Object.prototype, or are empty or odd. */
export const NASTY_KEYS: readonly string[] = [
  "__proto__",
  "constructor",
  "prototype",
  "hasOwnProperty",
  "toJSON",
  "",
  " ",
  "\u0000",
  "type ",
  "TYPE",
  "data.x",
];

export function longString(rng: Rng, max = 70_000): string {
  const n = rng.pick([65, 129, 257, 1025, 4097, 16_385, max]);
  return rng.pick(["x", "é", "\u0000", "😀", "ab"]).repeat(n).slice(0, Math.max(n, 1));
}

/** A random JSON-able scalar of a random kind. */
export function randomScalar(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [3, () => rng.pick(BOUNDARY_INTEGERS)],
    [2, () => rng.pick(BOUNDARY_FLOATS)],
    [3, () => rng.pick(NASTY_STRINGS)],
    [1, () => longString(rng, 5000)],
    [1, () => rng.chance(0.5)],
    [1, () => null],
    [1, () => rng.int(-1000, 1000)],
    [1, () => rng.float()],
  ])();
}

/** A value nested `depth` levels deep in arrays or objects. */
export function deepNesting(rng: Rng, depth: number): unknown {
  let v: unknown = randomScalar(rng);
  const asArray = rng.chance(0.5);
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v };
  return v;
}

/** Deep nesting as text: cheap to build, and past any depth JSON.stringify would reach. */
export function deepNestingText(depth: number, open = "[", close = "]"): string {
  return open.repeat(depth) + close.repeat(depth);
}

/** A value of another JSON type than `v`. */
export function wrongType(rng: Rng, v: unknown): unknown {
  const options: unknown[] = [
    null,
    true,
    false,
    0,
    -1,
    "",
    "0",
    "true",
    [],
    {},
    [v],
    { value: v },
    String(v),
    Number.NaN, // serialises as null
  ];
  if (typeof v === "string") options.push(Number(v), v.length);
  if (typeof v === "number") options.push(`${v}`, [v]);
  let out = rng.pick(options);
  // Same type by chance: take another pass once.
  if (typeof out === typeof v && Array.isArray(out) === Array.isArray(v)) out = rng.pick(options);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// JSON mutation

/** Every path to a value in a JSON tree (the root is []). */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(at);
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) paths(v[i], [...at, i], out);
  else if (v !== null && typeof v === "object")
    for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

function getAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const p of path) v = (v as Record<string | number, unknown>)[p];
  return v;
}

/** Replace the value at `path` (the root when empty); returns the new root. */
function setAt(root: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  // defineProperty: a "__proto__" key must stay an own data property, as JSON.parse makes it.
  Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  return root;
}

function deleteAt(root: unknown, path: readonly (string | number)[]): unknown {
  if (path.length === 0) return root;
  const parent = getAt(root, path.slice(0, -1));
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) parent.splice(key as number, 1);
  else delete (parent as Record<string, unknown>)[key as string];
  return root;
}

const clone = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/**
 * One to three structural mutations of a JSON value: wrong types, boundary numbers, nasty or long
 * strings, deep nesting, keys removed, unknown or prototype-named keys added, arrays emptied or
 * repeated, a piece of another example spliced in.
 */
export function mutateJson(rng: Rng, value: unknown, donors: readonly unknown[] = []): unknown {
  let root = clone(value);
  const n = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 3],
  ]);
  for (let k = 0; k < n; k++) {
    const all = paths(root);
    const path = rng.pick(all);
    const here = getAt(root, path);
    // Half the time keep the value's type, so inputs get past the schema to the decoder's logic.
    if (rng.chance(0.5) && (typeof here === "number" || typeof here === "string")) {
      root = setAt(root, path, sameType(rng, here));
      continue;
    }
    const op = rng.int(0, 12);
    switch (op) {
      case 0:
        root = setAt(root, path, wrongType(rng, here));
        break;
      case 1:
        root = setAt(root, path, rng.pick(BOUNDARY_INTEGERS));
        break;
      case 2:
        root = setAt(root, path, rng.pick(BOUNDARY_FLOATS));
        break;
      case 3:
        root = setAt(root, path, rng.pick(NASTY_STRINGS));
        break;
      case 4:
        root = setAt(root, path, longString(rng, 5000));
        break;
      case 5:
        root = setAt(root, path, deepNesting(rng, rng.pick([2, 10, 64, 300])));
        break;
      case 6:
        root = deleteAt(root, path);
        break;
      case 7: {
        // A new key on an object (or the root made one).
        const target = here !== null && typeof here === "object" && !Array.isArray(here) ? here : null;
        const key = rng.chance(0.5) ? rng.pick(NASTY_KEYS) : `k${rng.int(0, 99)}`;
        if (target) setAt(target, [key], randomScalar(rng));
        else root = setAt(root, path, { [key]: randomScalar(rng) });
        break;
      }
      case 8:
        if (Array.isArray(here)) {
          if (rng.chance(0.5)) here.length = 0;
          else
            root = setAt(
              root,
              path,
              Array.from({ length: rng.int(2, 40) }, () => clone(here[0] ?? null)),
            );
        } else root = setAt(root, path, rng.chance(0.5) ? [here] : [here, here]);
        break;
      case 9:
        if (donors.length) {
          const donor = clone(rng.pick(donors));
          const from = rng.pick(paths(donor));
          root = setAt(root, path, clone(getAt(donor, from)));
        }
        break;
      case 10:
        if (typeof here === "number") root = setAt(root, path, -here || here * 1000 + 0.5);
        else if (typeof here === "string") root = setAt(root, path, here.toUpperCase() + here);
        else root = setAt(root, path, randomScalar(rng));
        break;
      case 11:
        if (typeof here === "string" && here.length)
          root = setAt(root, path, here.slice(0, rng.int(0, here.length - 1)));
        else root = setAt(root, path, randomScalar(rng));
        break;
      default:
        root = setAt(root, path, randomScalar(rng));
    }
  }
  return root;
}

/** Another value of the same JSON type: a boundary number, a nasty, long or cut string. */
function sameType(rng: Rng, v: number | string): unknown {
  if (typeof v === "number")
    return rng.weighted<() => number>([
      [3, () => rng.pick(BOUNDARY_INTEGERS)],
      [2, () => rng.pick(BOUNDARY_FLOATS)],
      [2, () => v + rng.pick([-1, 1, 0.5, -0.001])],
      [1, () => -v],
      [1, () => v * rng.pick([10, 1000, 1e6])],
    ])();
  return rng.weighted<() => string>([
    [3, () => rng.pick(NASTY_STRINGS)],
    [1, () => longString(rng, 5000)],
    [2, () => v.slice(0, rng.int(0, v.length))],
    [1, () => `${v}${rng.pick(NASTY_STRINGS)}`],
    [1, () => v.toUpperCase()],
  ])();
}

/**
 * JSON text with mutations JSON.stringify cannot make: an overflowing number literal, a duplicate
 * key, a trailing comma, a comment, a BOM, whitespace where it is allowed and where it is not.
 */
export function mutateJsonText(rng: Rng, text: string): string {
  const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
  return rng.weighted<() => string>([
    [
      3,
      () => {
        if (!numbers.length) return `${text.slice(0, -1)},"n":${rng.pick(RAW_NUMBER_TEXTS)}}`;
        const m = rng.pick(numbers);
        return text.slice(0, m.index) + rng.pick(RAW_NUMBER_TEXTS) + text.slice(m.index! + m[0].length);
      },
    ],
    [1, () => (text.startsWith("{") ? `{"type":"x",${text.slice(1)}` : text)],
    [1, () => text.replace(/}$/, ",}")],
    [1, () => `/* c */${text}`],
    [1, () => `\ufeff${text}`],
    [1, () => `  \n\t${text}\n  `],
    [1, () => text.replace(/:/, ":\u00a0")],
    [1, () => text.replace(/"/, "'")],
    [1, () => `${text}${text}`],
    [1, () => `${text}\u0000`],
    [1, () => deepNestingText(rng.pick([100, 1000, 2000]))],
    [1, () => `{"a":${deepNestingText(rng.pick([100, 1500]), '{"a":', "}").replace(/\{"a":}$/, "1")}}`],
  ])();
}

// ---------------------------------------------------------------------------------------------------
// Byte mutation

/** Invalid or overlong UTF-8 sequences. */
export const BAD_UTF8: readonly Buffer[] = [
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0x80]), // overlong NUL
  Buffer.from([0xe0, 0x80, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // beyond U+10FFFF
  Buffer.from([0xc3]), // truncated
  Buffer.from([0x80]),
  Buffer.from([0xfe, 0xff]),
];

/** One to four byte-level mutations: flips, boundary bytes, truncation, insertion, splicing. */
export function mutateBytes(rng: Rng, input: Buffer, donors: readonly Buffer[] = []): Buffer {
  let b = Buffer.from(input);
  const n = rng.int(1, 4);
  for (let k = 0; k < n; k++) {
    const at = b.length ? rng.int(0, b.length - 1) : 0;
    switch (rng.int(0, 9)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(0, 7));
        break;
      case 1:
        if (b.length) b[at] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xc0, 0xfe, 0xff]);
        break;
      case 2:
        b = b.subarray(0, rng.int(0, b.length));
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.int(1, 16)), b.subarray(at)]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), rng.pick(BAD_UTF8), b.subarray(at)]);
        break;
      case 5:
        b = Buffer.concat([b.subarray(0, at), Buffer.from([0]), b.subarray(at)]);
        break;
      case 6: {
        const len = rng.int(1, Math.max(1, b.length - at));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        break;
      }
      case 7: {
        const len = rng.int(1, Math.max(1, Math.min(64, b.length - at)));
        const chunk = b.subarray(at, at + len);
        b = Buffer.concat([b.subarray(0, at), chunk, chunk, b.subarray(at)]);
        break;
      }
      case 8:
        if (donors.length) {
          const d = rng.pick(donors);
          const from = d.length ? rng.int(0, d.length - 1) : 0;
          b = Buffer.concat([b.subarray(0, at), d.subarray(from, from + rng.int(1, 64))]);
        }
        break;
      default:
        if (b.length) {
          const j = rng.int(0, b.length - 1);
          const t = b[at]!;
          b[at] = b[j]!;
          b[j] = t;
        }
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------------
// Memory

let gcFn: (() => void) | null | undefined;

/** A full GC when the runtime lets us turn it on; null otherwise (then bounds must be generous). */
export function forceGc(): boolean {
  if (gcFn === undefined) {
    const existing = (globalThis as { gc?: () => void }).gc;
    if (existing) gcFn = existing;
    else {
      try {
        setFlagsFromString("--expose-gc");
        gcFn = runInNewContext("gc") as () => void;
      } catch {
        gcFn = null;
      }
    }
  }
  if (!gcFn) return false;
  gcFn();
  gcFn();
  return true;
}

export interface MemorySample {
  heapUsed: number;
  rss: number;
  external: number;
  gc: boolean;
}

export function memorySample(): MemorySample {
  const gc = forceGc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external + m.arrayBuffers, gc };
}

export const MiB = 1024 * 1024;

/** "heap +12.3 MiB, rss +40.0 MiB, external +1.0 MiB (after a forced GC)" */
export function describeGrowth(before: MemorySample, after: MemorySample): string {
  const d = (a: number, b: number) => `${((b - a) / MiB).toFixed(1)} MiB`;
  return (
    `heap +${d(before.heapUsed, after.heapUsed)}, rss +${d(before.rss, after.rss)}, ` +
    `external +${d(before.external, after.external)}${after.gc ? " (after a forced GC)" : " (no GC available)"}`
  );
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
) {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}
