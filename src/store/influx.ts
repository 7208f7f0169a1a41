/**
 * The InfluxDB time-series store. It speaks only the InfluxDB 1.x HTTP API (`/write` with line
 * protocol, `/query` with InfluxQL, `/ping`) through the npm `influx` client, which InfluxDB 1.6 and
 * 1.8 serve natively and 2.x and 3.x serve as their v1 compatibility API.
 *
 * Writes build line protocol here and POST it with the client's connection pool: the client's own
 * writePoints neither escapes measurement names nor writes integers without a declared schema, and
 * building the text directly is what keeps the sink's catch-up above 100k points/s.
 */
import { InfluxDB } from "influx";
import type { IBackoffStrategy } from "influx/lib/src/backoff/backoff.js";
import { Pool, RequestError } from "influx/lib/src/pool.js";
import {
  type AggregateQuery,
  type AggregateRow,
  assertPoints,
  bucketStart,
  InvalidInputError,
  type NormalizedQuery,
  normalizeQuery,
  PartialWriteError,
  type Point,
  sortRows,
  type TimeSeriesStore,
} from "./timeseries.js";

export interface InfluxStoreOptions {
  host: string;
  port?: number;
  protocol?: "http" | "https";
  database: string;
  username?: string;
  password?: string;
  /** Retention policy made the database's default on start(); default "ata_default". */
  retentionPolicy?: string;
  /** InfluxQL duration: "0s" or "INF" keeps data forever (the default), otherwise at least 1h. */
  retentionDuration?: string;
  /**
   * Create the database and retention policy when missing (InfluxDB 1.x). Set to false on 2.x / 3.x,
   * whose v1 API cannot create databases: create the bucket and its DBRP mapping there instead.
   */
  manageDatabase?: boolean;
  /** Per HTTP request; default 30 s. */
  requestTimeoutMs?: number;
}

/** One attempt per request: the caller (the sink) owns retries and backoff. */
const noBackoff: IBackoffStrategy = {
  getDelay: () => 0,
  next: () => noBackoff,
  reset: () => noBackoff,
};

const DURATION = /^(?:INF|(?:\d+(?:ns|u|µ|ms|s|m|h|d|w))+)$/i;
const DURATION_PART = /(\d+)(ns|u|µ|ms|s|m|h|d|w)/gi;
const UNIT_NS: Record<string, number> = {
  ns: 1e-9,
  u: 1e-6,
  µ: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
};

/** An InfluxQL or Go duration ("0s", "INF", "30d", "720h0m0s") in seconds; 0 is forever. */
export function durationSeconds(d: string): number {
  if (/^INF$/i.test(d)) return 0;
  let total = 0;
  for (const m of d.matchAll(DURATION_PART)) total += Number(m[1]) * UNIT_NS[m[2]!.toLowerCase()]!;
  return total;
}

/** A double-quoted InfluxQL identifier. Names are validated identifiers already; quoting is belt and braces. */
function ident(name: string): string {
  return `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** A single-quoted InfluxQL string literal. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n")}'`;
}

const TAG_ESCAPE = /[ ,=]/;
const TAG_ESCAPE_GLOBAL = /[ ,=]/g;
const STRING_ESCAPE = /["\\]/;
const STRING_ESCAPE_GLOBAL = /["\\]/g;

/** The `,key=value...` part of a line: tags sorted by key as InfluxDB prefers, empty values left out. */
function tagSet(tags: Record<string, string>): string {
  const keys = Object.keys(tags);
  for (let k = 1; k < keys.length; k++) {
    if (keys[k - 1]! > keys[k]!) {
      keys.sort();
      break;
    }
  }
  let out = "";
  for (const key of keys) {
    const value = tags[key]!;
    if (value === "") continue;
    out += `,${key}=${TAG_ESCAPE.test(value) ? value.replace(TAG_ESCAPE_GLOBAL, "\\$&") : value}`;
  }
  return out;
}

/** Tag sets of frozen tag objects, which producers share between the points of a series. */
const frozenTagSets = new WeakMap<object, string>();

/** Line protocol for a validated batch (names are identifiers, so only values need escaping). */
export function toLineProtocol(points: readonly Point[]): string {
  let body = "";
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const tags = p.tags;
    let tagText = frozenTagSets.get(tags);
    if (tagText === undefined) {
      tagText = tagSet(tags);
      if (Object.isFrozen(tags)) frozenTagSets.set(tags, tagText);
    }
    let line = i === 0 ? p.measurement + tagText : `\n${p.measurement}${tagText}`;
    let sep = " ";
    const fields = p.fields;
    const ints = p.ints;
    for (const key in fields) {
      const value = fields[key]!;
      if (typeof value === "number") {
        line += `${sep}${key}=${ints?.includes(key) ? `${value}i` : value}`;
      } else if (typeof value === "string") {
        line += `${sep}${key}="${STRING_ESCAPE.test(value) ? value.replace(STRING_ESCAPE_GLOBAL, "\\$&") : value}"`;
      } else {
        line += `${sep}${key}=${value}`;
      }
      sep = ",";
    }
    body += `${line} ${p.timeNs}`;
  }
  return body;
}

interface InfluxSeries {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values: (number | string | null)[][];
}
interface InfluxResponse {
  results?: { statement_id?: number; error?: string; series?: InfluxSeries[] }[];
  error?: string;
}

export class InfluxStore implements TimeSeriesStore {
  readonly kind = "influx" as const;
  readonly database: string;
  readonly retentionPolicy: string;
  readonly retentionDuration: string;
  private readonly client: InfluxDB;
  private readonly pool: Pool;
  private readonly auth: string | undefined;
  private readonly manageDatabase: boolean;
  private ensured: Promise<void> | undefined;
  private ready = false;

  constructor(options: InfluxStoreOptions) {
    this.database = options.database;
    this.retentionPolicy = options.retentionPolicy ?? "ata_default";
    this.retentionDuration = options.retentionDuration ?? "0s";
    this.manageDatabase = options.manageDatabase ?? true;
    if (typeof this.database !== "string" || this.database.length === 0 || this.database.length > 128) {
      throw new InvalidInputError("database must be a non-empty name of at most 128 characters");
    }
    if (!DURATION.test(this.retentionDuration)) {
      throw new InvalidInputError(
        `retentionDuration ${JSON.stringify(this.retentionDuration)} is not an InfluxQL duration`,
      );
    }
    const seconds = durationSeconds(this.retentionDuration);
    if (seconds !== 0 && seconds < 3600) {
      throw new InvalidInputError("retentionDuration must be 0s / INF (forever) or at least 1h");
    }
    const protocol = options.protocol ?? "http";
    const port = options.port ?? 8086;
    const poolOptions = {
      maxRetries: 0,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      backoff: noBackoff,
    };
    this.client = new InfluxDB({
      host: options.host,
      port,
      protocol,
      database: this.database,
      pool: poolOptions,
      ...(options.username !== undefined
        ? { username: options.username, password: options.password ?? "" }
        : {}),
    });
    this.pool = new Pool(poolOptions);
    this.pool.addHost(`${protocol}://${options.host}:${port}`);
    this.auth = options.username !== undefined ? `${options.username}:${options.password ?? ""}` : undefined;
  }

  async start(): Promise<void> {
    await this.ensureDatabase();
  }

  async stop(): Promise<void> {
    // Nothing to release: requests are one-shot over Node's keep-alive agent.
  }

  /** Idempotent; retried by the next write when it failed (e.g. InfluxDB was down at boot). */
  private ensureDatabase(): Promise<void> {
    if (this.ensured === undefined) {
      this.ensured = this.createDatabaseIfMissing().then(
        () => {
          this.ready = true;
        },
        (err: unknown) => {
          this.ensured = undefined;
          throw err;
        },
      );
    }
    return this.ensured;
  }

  private async createDatabaseIfMissing(): Promise<void> {
    if (!this.manageDatabase) return;
    const names = await this.client.getDatabaseNames();
    if (!names.includes(this.database)) await this.client.createDatabase(this.database);
    const policies = await this.client.showRetentionPolicies(this.database);
    const existing = policies.find((p) => p.name === this.retentionPolicy);
    const options = {
      database: this.database,
      duration: this.retentionDuration,
      replication: 1,
      isDefault: true,
    };
    if (existing === undefined) {
      await this.client.createRetentionPolicy(this.retentionPolicy, options);
    } else if (
      !existing.default ||
      durationSeconds(existing.duration) !== durationSeconds(this.retentionDuration)
    ) {
      await this.client.alterRetentionPolicy(this.retentionPolicy, options);
    }
  }

  async write(points: Point[]): Promise<void> {
    assertPoints(points);
    if (points.length === 0) return;
    const body = toLineProtocol(points);
    if (!this.ready) await this.ensureDatabase();
    try {
      await this.pool.discard({
        method: "POST",
        path: "/write",
        query: { db: this.database, precision: "n" },
        body,
        ...(this.auth !== undefined ? { auth: this.auth } : {}),
      });
    } catch (err) {
      // 400 is InfluxDB refusing points (a field type conflict, a malformed line): it wrote the rest,
      // and sending the same batch again cannot help.
      if (err instanceof RequestError && err.res.statusCode === 400) {
        const dropped = /dropped=(\d+)/.exec(err.message);
        throw new PartialWriteError(err.message, dropped ? Number(dropped[1]) : undefined);
      }
      throw err;
    }
  }

  async ping(): Promise<boolean> {
    try {
      const hosts = await this.client.ping(5_000);
      return hosts.some((h) => h.online);
    } catch {
      return false;
    }
  }

  async aggregate(query: AggregateQuery): Promise<AggregateRow[]> {
    const q = normalizeQuery(query);
    if (q.empty) return [];
    // Weeks are rolled up from days (see timeseries.ts); mean needs sum and count to roll up exactly.
    const weekly = q.interval === "7d";
    const selects = weekly && q.fn === "mean" ? ["sum", "count"] : [q.fn];
    const text = buildInfluxQL(q, selects, weekly ? "1d" : q.interval);
    const response = (await this.client.queryRaw(text, {
      database: this.database,
      precision: "ms",
    })) as InfluxResponse;
    const result = response.results?.[0];
    const error = response.error ?? result?.error;
    if (error !== undefined) throw new Error(`InfluxDB query failed: ${error}`);
    const rows: AggregateRow[] = [];
    for (const series of result?.series ?? []) {
      const tags: Record<string, string> = {};
      for (const key of q.groupBy) tags[key] = series.tags?.[key] ?? "";
      for (const values of series.values) {
        const a = values[1];
        const b = values[2];
        if (typeof a !== "number") continue;
        const row: AggregateRow & { count?: number } = { tags, value: a };
        if (selects.length === 2) {
          if (typeof b !== "number" || b === 0) continue;
          row.count = b;
        } else if (q.fn === "count" && a === 0) {
          continue;
        }
        if (q.interval !== undefined && typeof values[0] === "number") row.time = new Date(values[0]);
        rows.push(row);
      }
    }
    return sortRows(weekly ? rollUpWeeks(rows, q) : rows, q.groupBy);
  }
}

export function buildInfluxQL(
  q: NormalizedQuery,
  fns: readonly string[],
  interval: string | undefined,
): string {
  const select = fns.map((fn) => `${fn}(${ident(q.field)})`).join(", ");
  let text = `SELECT ${select} FROM ${ident(q.measurement)} WHERE time >= '${new Date(q.fromMs).toISOString()}' AND time < '${new Date(q.toMs).toISOString()}'`;
  for (const [key, values] of q.where) {
    // ::tag: where filters tags; a field of the same name would otherwise win.
    text += ` AND (${values.map((v) => `${ident(key)}::tag = ${stringLiteral(v)}`).join(" OR ")})`;
  }
  const groupBy = q.groupBy.map(ident);
  if (interval !== undefined) groupBy.unshift(`time(${interval})`);
  if (groupBy.length > 0) text += ` GROUP BY ${groupBy.join(", ")}`;
  if (interval !== undefined) text += " fill(none)";
  if (q.timeZone !== undefined) text += ` tz(${stringLiteral(q.timeZone)})`;
  return text;
}

/** Day rows (with a `count` beside a `sum` value for mean) -> Monday-week rows. */
function rollUpWeeks(days: (AggregateRow & { count?: number })[], q: NormalizedQuery): AggregateRow[] {
  const weeks = new Map<
    string,
    { time: number; tags: Record<string, string>; value: number; count: number }
  >();
  for (const day of days) {
    if (day.time === undefined) continue;
    const start = bucketStart(day.time.getTime(), "7d", q.timeZone);
    const key = `${start}\u0000${q.groupBy.map((k) => day.tags[k]).join("\u0000")}`;
    const week = weeks.get(key);
    if (week === undefined) {
      weeks.set(key, { time: start, tags: day.tags, value: day.value, count: day.count ?? 0 });
      continue;
    }
    week.count += day.count ?? 0;
    if (q.fn === "min") week.value = Math.min(week.value, day.value);
    else if (q.fn === "max") week.value = Math.max(week.value, day.value);
    else week.value += day.value;
  }
  return [...weeks.values()].map((w) => ({
    time: new Date(w.time),
    tags: w.tags,
    value: q.fn === "mean" ? w.value / w.count : w.value,
  }));
}
