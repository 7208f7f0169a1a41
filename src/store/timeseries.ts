/**
 * The time-series store interface: InfluxDB (src/store/influx.ts) when configured, the embedded
 * SQLite store (src/store/embedded-series.ts) otherwise. Both pass one contract suite
 * (test/store/timeseries.contract.ts), so anything that holds here holds for both:
 *
 * - A point's identity is measurement + tag set + timeNs. Writing a point with the same identity again
 *   overwrites the fields it carries and keeps the others (InfluxDB merges field sets on the same
 *   series and timestamp); it never adds a second point. That is what makes the sink's replays safe.
 * - Tags with an empty value are dropped (InfluxDB does not store them), so `{room: ""}` and no room
 *   are the same series. Grouping by a tag a point lacks yields "" for it.
 * - Numbers are written as floats unless the field is named in `Point.ints`, which writes it as an
 *   integer. A field keeps the type it was first written with: a point that would change it is
 *   refused (PartialWriteError) while the rest of its batch is written, as InfluxDB does.
 * - Names (measurement, tag keys, field keys) are identifiers: a letter, then letters, digits or _,
 *   at most 64, not `time`. Anything else is refused before a byte is written or a query is built, so
 *   a name can never inject InfluxQL or SQL; values are escaped (InfluxQL) or bound (SQL).
 * - Tag values are any text without control characters or backslashes (a backslash cannot be written
 *   unambiguously in a 1.x line-protocol tag value), at most 256 characters.
 * - Aggregates omit empty buckets (InfluxQL `fill(none)`). Rows come sorted by bucket start, then by
 *   the group-by tag values in groupBy order.
 * - Buckets: "1h" starts on the hour of the zone (whole hours of UTC for whole-hour zones); "1d"
 *   starts at local midnight, so across a DST change a day is 23 or 25 hours; "7d" is a calendar week
 *   starting Monday 00:00 local time (ISO 8601). Without timeZone the zone is UTC. A bucket's
 *   reported start may lie before `from`; only points in [from, to) are counted.
 */

import {
  addDays,
  HOUR,
  isTimeZone,
  localDate,
  startOfLocalDay,
  startOfLocalHour,
  startOfLocalWeek,
} from "../time/zone.js";

export type FieldValue = number | boolean | string;

export interface Point {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  /** Nanoseconds since the epoch, UTC. */
  timeNs: bigint;
  /** Fields to write as integers (InfluxDB `i` suffix); every other number is a float. */
  ints?: readonly string[];
}

export type AggregateFn = "count" | "sum" | "mean" | "min" | "max";
export const AGGREGATE_FNS: readonly AggregateFn[] = ["count", "sum", "mean", "min", "max"];
export type Interval = "1h" | "1d" | "7d";
export const INTERVALS: readonly Interval[] = ["1h", "1d", "7d"];

export interface AggregateQuery {
  measurement: string;
  field: string;
  fn: AggregateFn;
  from: Date;
  /** Exclusive. */
  to: Date;
  /** Tag key -> the value, or any of the values (an empty list matches nothing). */
  where?: Record<string, string | readonly string[]>;
  /** Tag keys to group by. */
  groupBy?: readonly string[];
  interval?: Interval;
  /** IANA zone for bucket boundaries, e.g. "Europe/Copenhagen"; UTC when absent. */
  timeZone?: string;
}

export interface AggregateRow {
  /** Bucket start; absent when the query has no interval. */
  time?: Date;
  /** The group-by tags ("" for a tag the points lack); empty without groupBy. */
  tags: Record<string, string>;
  value: number;
}

export interface TimeSeriesStore {
  readonly kind: "influx" | "embedded";
  /** Creates what is missing (database, retention policy, tables); idempotent. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Writes the batch as given. Throws InvalidInputError (nothing written) or PartialWriteError. */
  write(points: Point[]): Promise<void>;
  aggregate(q: AggregateQuery): Promise<AggregateRow[]>;
  ping(): Promise<boolean>;
}

/** The input was refused before anything was written or queried: bad name, value or query. */
export class InvalidInputError extends Error {
  override readonly name = "InvalidInputError";
  readonly retryable = false;
}

/**
 * The store wrote the batch except for points it refused (e.g. a field type conflict). Retrying the
 * same batch cannot succeed; the points that were accepted are stored.
 */
export class PartialWriteError extends Error {
  override readonly name = "PartialWriteError";
  readonly retryable = false;
  constructor(
    message: string,
    /** How many points were refused, when the store says. */
    readonly dropped?: number,
  ) {
    super(message);
  }
}

/** True for errors that retrying the same write cannot fix. */
export function isPermanentWriteError(err: unknown): boolean {
  return err instanceof InvalidInputError || err instanceof PartialWriteError;
}

// ---------------------------------------------------------------------------------------------
// Validation

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
// Control characters and backslash: not representable in a 1.x line-protocol tag value.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const BAD_TAG_VALUE = /[\u0000-\u001f\u007f\\]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const BAD_TAG_VALUE_GLOBAL = /[\u0000-\u001f\u007f\\]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: newlines end a line-protocol line
const BAD_STRING_FIELD = /[\u0000\n\r]/;
export const MAX_TAG_VALUE_LENGTH = 256;
export const MAX_STRING_FIELD_LENGTH = 64 * 1024;
/** InfluxDB's representable range (1677-09-21 .. 2262-04-11). */
const MIN_TIME_NS = -9223372036854775806n;
const MAX_TIME_NS = 9223372036854775806n;

const validNames = new Set<string>();
/**
 * Frozen tag sets already found valid. A frozen object cannot change, so a producer that reuses one
 * tag object for many points (the sink does, per series) has it checked once.
 */
const validFrozenTags = new WeakSet<object>();

export function isIdentifier(name: unknown): name is string {
  if (typeof name !== "string") return false;
  if (validNames.has(name)) return true;
  if (!IDENTIFIER.test(name) || name === "time") return false;
  if (validNames.size < 10_000) validNames.add(name);
  return true;
}

export function assertIdentifier(name: unknown, what: string): asserts name is string {
  if (!isIdentifier(name)) {
    throw new InvalidInputError(
      `${what} ${JSON.stringify(name)} is not allowed: use a letter followed by letters, digits or _ (at most 64), not "time"`,
    );
  }
}

export function isValidTagValue(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_TAG_VALUE_LENGTH && !BAD_TAG_VALUE.test(value);
}

/** Makes any text a valid tag value: control characters and backslashes become "_", long text is cut. */
export function sanitizeTagValue(value: string): string {
  const cut = value.length > MAX_TAG_VALUE_LENGTH ? value.slice(0, MAX_TAG_VALUE_LENGTH) : value;
  return BAD_TAG_VALUE.test(cut) ? cut.replace(BAD_TAG_VALUE_GLOBAL, "_") : cut;
}

export type FieldType = "float" | "integer" | "boolean" | "string";

export function fieldType(point: Point, key: string, value: FieldValue): FieldType {
  if (typeof value === "number") return point.ints?.includes(key) ? "integer" : "float";
  return typeof value === "boolean" ? "boolean" : "string";
}

/** Why a point cannot be written, or undefined when it can. */
export function pointProblem(p: Point): string | undefined {
  if (p === null || typeof p !== "object") return "a point must be an object";
  if (!isIdentifier(p.measurement))
    return `measurement ${JSON.stringify(p.measurement)} is not an identifier`;
  if (typeof p.timeNs !== "bigint") return "timeNs must be a bigint";
  if (p.timeNs < MIN_TIME_NS || p.timeNs > MAX_TIME_NS) return `timeNs ${p.timeNs} is out of range`;
  if (p.tags === null || typeof p.tags !== "object") return "tags must be an object";
  if (!validFrozenTags.has(p.tags)) {
    for (const key in p.tags) {
      if (!isIdentifier(key)) return `tag key ${JSON.stringify(key)} is not an identifier`;
      const value = p.tags[key];
      if (!isValidTagValue(value)) {
        return `tag ${key} has a value that is not text of at most ${MAX_TAG_VALUE_LENGTH} characters without control characters or backslashes`;
      }
    }
    if (Object.isFrozen(p.tags)) validFrozenTags.add(p.tags);
  }
  if (p.fields === null || typeof p.fields !== "object") return "fields must be an object";
  let fields = 0;
  for (const key in p.fields) {
    if (!isIdentifier(key)) return `field key ${JSON.stringify(key)} is not an identifier`;
    if (key in p.tags) return `${key} is both a tag and a field`;
    const value = p.fields[key];
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return `field ${key} is not a finite number`;
      if (p.ints?.includes(key) && !Number.isSafeInteger(value))
        return `integer field ${key} is not a safe integer`;
    } else if (typeof value === "string") {
      if (value.length > MAX_STRING_FIELD_LENGTH)
        return `string field ${key} is longer than ${MAX_STRING_FIELD_LENGTH}`;
      if (BAD_STRING_FIELD.test(value)) return `string field ${key} contains a newline or NUL`;
    } else if (typeof value !== "boolean") {
      return `field ${key} must be a number, boolean or string`;
    }
    fields++;
  }
  if (fields === 0) return "a point needs at least one field";
  if (p.ints !== undefined) {
    for (const key of p.ints) {
      if (typeof p.fields[key] !== "number")
        return `ints names ${JSON.stringify(key)}, which is not a number field`;
    }
  }
  return undefined;
}

export function assertPoints(points: readonly Point[]): void {
  if (!Array.isArray(points)) throw new InvalidInputError("points must be an array");
  for (let i = 0; i < points.length; i++) {
    const problem = pointProblem(points[i]!);
    if (problem !== undefined) throw new InvalidInputError(`point ${i}: ${problem}`);
  }
}

/** Tags without the empty ones, as both stores store them. */
export function storedTags(tags: Record<string, string>): Record<string, string> {
  let empty = false;
  for (const key in tags) {
    if (tags[key] === "") {
      empty = true;
      break;
    }
  }
  if (!empty) return tags;
  const out: Record<string, string> = {};
  for (const key in tags) if (tags[key] !== "") out[key] = tags[key]!;
  return out;
}

export interface NormalizedQuery {
  measurement: string;
  field: string;
  fn: AggregateFn;
  fromMs: number;
  toMs: number;
  /** Tag key -> accepted values (non-empty). */
  where: [string, string[]][];
  groupBy: string[];
  interval: Interval | undefined;
  timeZone: string | undefined;
  /** True when the where clause can match nothing (an empty value list) or from >= to. */
  empty: boolean;
}

const MIN_QUERY_MS = Date.UTC(1677, 8, 22);
const MAX_QUERY_MS = Date.UTC(2262, 3, 11);

export function normalizeQuery(q: AggregateQuery): NormalizedQuery {
  if (q === null || typeof q !== "object") throw new InvalidInputError("a query must be an object");
  assertIdentifier(q.measurement, "measurement");
  assertIdentifier(q.field, "field");
  if (!AGGREGATE_FNS.includes(q.fn))
    throw new InvalidInputError(`fn must be one of ${AGGREGATE_FNS.join(", ")}`);
  const fromMs = q.from instanceof Date ? q.from.getTime() : Number.NaN;
  const toMs = q.to instanceof Date ? q.to.getTime() : Number.NaN;
  for (const [name, ms] of [
    ["from", fromMs],
    ["to", toMs],
  ] as const) {
    if (!Number.isFinite(ms) || ms < MIN_QUERY_MS || ms > MAX_QUERY_MS) {
      throw new InvalidInputError(`${name} must be a valid Date between 1677-09-22 and 2262-04-11`);
    }
  }
  if (q.interval !== undefined && !INTERVALS.includes(q.interval)) {
    throw new InvalidInputError(`interval must be one of ${INTERVALS.join(", ")}`);
  }
  if (q.timeZone !== undefined) assertTimeZone(q.timeZone);
  let empty = fromMs >= toMs;
  const where: [string, string[]][] = [];
  if (q.where !== undefined) {
    if (q.where === null || typeof q.where !== "object")
      throw new InvalidInputError("where must be an object");
    for (const key of Object.keys(q.where).sort()) {
      assertIdentifier(key, "where tag key");
      const raw = q.where[key];
      const values = typeof raw === "string" ? [raw] : Array.isArray(raw) ? [...raw] : undefined;
      if (values === undefined || values.some((v) => typeof v !== "string")) {
        throw new InvalidInputError(`where.${key} must be a string or a list of strings`);
      }
      if (values.length === 0) empty = true;
      where.push([key, [...new Set(values)]]);
    }
  }
  const groupBy: string[] = [];
  if (q.groupBy !== undefined) {
    if (!Array.isArray(q.groupBy)) throw new InvalidInputError("groupBy must be a list of tag keys");
    for (const key of q.groupBy) {
      assertIdentifier(key, "groupBy tag key");
      if (!groupBy.includes(key)) groupBy.push(key);
    }
  }
  return {
    measurement: q.measurement,
    field: q.field,
    fn: q.fn,
    fromMs,
    toMs,
    where,
    groupBy,
    interval: q.interval,
    timeZone: q.timeZone,
    empty,
  };
}

/** Sorts rows by bucket start, then by the group-by tag values in groupBy order. */
export function sortRows(rows: AggregateRow[], groupBy: readonly string[]): AggregateRow[] {
  return rows.sort((a, b) => {
    const dt = (a.time?.getTime() ?? 0) - (b.time?.getTime() ?? 0);
    if (dt !== 0) return dt;
    for (const key of groupBy) {
      const x = a.tags[key] ?? "";
      const y = b.tags[key] ?? "";
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// Calendar buckets in a time zone. Both stores use these: the embedded store to bucket, the InfluxDB
// store to roll day buckets up into Monday weeks (InfluxQL's `time(7d, 4d)` puts the week boundary an
// hour off after a DST change: measured on 1.6 with Europe/Copenhagen, 2026-03-30 and 2026-10-26).

const TZ_NAME = /^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/;

export function assertTimeZone(tz: unknown): asserts tz is string {
  if (typeof tz !== "string" || !TZ_NAME.test(tz)) {
    throw new InvalidInputError(`timeZone ${JSON.stringify(tz)} is not an IANA zone name`);
  }
  if (!isTimeZone(tz)) throw new InvalidInputError(`timeZone ${JSON.stringify(tz)} is not a known IANA zone`);
}

/** The start of the bucket holding instant `ms`; without a zone, UTC. */
export function bucketStart(ms: number, interval: Interval, tz: string | undefined): number {
  const zone = tz ?? "UTC";
  if (interval === "1h") return startOfLocalHour(ms, zone);
  if (interval === "1d") return startOfLocalDay(localDate(ms, zone), zone);
  return startOfLocalWeek(ms, zone);
}

/** The start of the bucket after the one starting at `start`. */
export function nextBucketStart(start: number, interval: Interval, tz: string | undefined): number {
  if (interval === "1h") {
    const next = start + HOUR;
    // A zone whose offset changes by a fraction of an hour moves the grid; re-align.
    return Math.max(bucketStart(next, "1h", tz), start + 1);
  }
  const zone = tz ?? "UTC";
  // Middle of the local day, well clear of any DST change, then step whole local days.
  const date = localDate(start + 12 * HOUR, zone);
  return startOfLocalDay(addDays(date, interval === "1d" ? 1 : 7), zone);
}

/** Bucket starts covering [fromMs, toMs): the first may lie before fromMs. */
export function bucketStarts(
  fromMs: number,
  toMs: number,
  interval: Interval,
  tz: string | undefined,
): number[] {
  const out: number[] = [];
  let start = bucketStart(fromMs, interval, tz);
  while (start < toMs) {
    out.push(start);
    start = nextBucketStart(start, interval, tz);
  }
  return out;
}
