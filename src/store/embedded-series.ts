/**
 * The embedded time-series store: points in SQLite, for a site that runs without InfluxDB. It keeps
 * InfluxDB's semantics (see timeseries.ts): identity measurement + tags + time with upsert and field
 * merge, field types fixed per measurement, empty tags dropped, empty buckets omitted.
 *
 * Layout: one row per point, keyed (measurement, time_ns, tags) where `tags` is the canonical JSON of
 * the tag set (keys sorted), so it is the series key and the stored tags at once. Time comes before the
 * tag set in the key because every query is a time range: a range scan of the table itself, no
 * secondary index. Buckets are computed in JS (calendar-correct in the zone) and handed to SQL as a
 * JSON list; SQL aggregates each bucket over a key range.
 */
import Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { SqliteWriterThread } from "./sqlite-writer.js";
import {
  type AggregateQuery,
  type AggregateRow,
  assertPoints,
  bucketStarts,
  type FieldType,
  fieldType,
  normalizeQuery,
  PartialWriteError,
  type Point,
  sortRows,
  storedTags,
  type TimeSeriesStore,
} from "./timeseries.js";

export interface EmbeddedSeriesOptions {
  /** An open database to use (not closed by stop()), or a file path / ":memory:" to open and own. */
  db?: Database.Database;
  path?: string;
  /**
   * Write through a writer thread (src/store/sqlite-writer.ts) with its own connection, so that
   * inserting and fsyncing a batch does not hold the event loop. Needs a file `path`; queries stay
   * on this thread. The logger names the thread in its errors.
   */
  writerThread?: { log: Logger };
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS series_points (
    measurement TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    tags TEXT NOT NULL,     -- canonical JSON, keys sorted: the series key
    fields TEXT NOT NULL,   -- JSON object
    PRIMARY KEY (measurement, time_ns, tags)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS series_fields (
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,     -- float | integer | boolean | string
    PRIMARY KEY (measurement, field)
  ) WITHOUT ROWID;
`;

const AGG_SQL: Record<AggregateQuery["fn"], string> = {
  count: "COUNT(v)",
  sum: "SUM(v)",
  mean: "AVG(v)",
  min: "MIN(v)",
  max: "MAX(v)",
};

/** Points prepared between two yields when the inserts run on the writer thread. */
const WRITE_SLICE = 500;

/** Canonical tag JSON of frozen tag objects, which producers share between the points of a series. */
const frozenCanonical = new WeakMap<object, string>();

function canonicalTags(tags: Record<string, string>): string {
  let out = frozenCanonical.get(tags);
  if (out === undefined) {
    out = buildCanonicalTags(storedTags(tags));
    if (Object.isFrozen(tags)) frozenCanonical.set(tags, out);
  }
  return out;
}

function buildCanonicalTags(tags: Record<string, string>): string {
  const keys = Object.keys(tags).sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    out += `${i === 0 ? "" : ","}${JSON.stringify(key)}:${JSON.stringify(tags[key])}`;
  }
  return `${out}}`;
}

const UPSERT = `INSERT INTO series_points (measurement, time_ns, tags, fields) VALUES (?, ?, ?, ?)
  ON CONFLICT (measurement, time_ns, tags) DO UPDATE SET fields = json_patch(fields, excluded.fields)`;
const INSERT_FIELD = "INSERT OR IGNORE INTO series_fields (measurement, field, type) VALUES (?, ?, ?)";

export class EmbeddedSeriesStore implements TimeSeriesStore {
  readonly kind = "embedded" as const;
  private readonly options: EmbeddedSeriesOptions;
  private db: Database.Database | undefined;
  private owned = false;
  private upsert: Database.Statement | undefined;
  private insertField: Database.Statement | undefined;
  /** `${measurement}\0${field}` -> type, mirroring series_fields. */
  private readonly fieldTypes = new Map<string, FieldType>();
  private thread: SqliteWriterThread | undefined;

  constructor(options: EmbeddedSeriesOptions) {
    if (options.db === undefined && options.path === undefined) {
      throw new Error("EmbeddedSeriesStore needs a db or a path");
    }
    this.options = options;
  }

  async start(): Promise<void> {
    if (this.db !== undefined) return;
    let db = this.options.db;
    if (db === undefined) {
      db = new Database(this.options.path!);
      this.owned = true;
      db.pragma("journal_mode = WAL");
      // The sink advances its cursor after a write returns; a point lost on power failure after that
      // would never be replayed, hence FULL, as for the event log.
      db.pragma("synchronous = FULL");
      // The sink thread writes events' points and the main thread's writer the time-saved job's,
      // each on its own connection: one waits for the other's commit rather than failing.
      db.pragma("busy_timeout = 5000");
    }
    db.exec(SCHEMA);
    this.db = db;
    this.upsert = db.prepare(UPSERT);
    this.insertField = db.prepare(INSERT_FIELD);
    if (this.options.writerThread && this.options.path && this.options.path !== ":memory:") {
      this.thread = new SqliteWriterThread(
        this.options.path,
        { upsert: UPSERT, field: INSERT_FIELD },
        this.options.writerThread.log,
      );
    }
    this.fieldTypes.clear();
    for (const row of db.prepare("SELECT measurement, field, type FROM series_fields").all() as {
      measurement: string;
      field: string;
      type: FieldType;
    }[]) {
      this.fieldTypes.set(`${row.measurement}\u0000${row.field}`, row.type);
    }
  }

  async stop(): Promise<void> {
    await this.thread?.close();
    this.thread = undefined;
    if (this.db !== undefined && this.owned && this.db.open) this.db.close();
    this.db = undefined;
    this.upsert = undefined;
    this.insertField = undefined;
  }

  private open(): Database.Database {
    if (this.db === undefined || !this.db.open) throw new Error("EmbeddedSeriesStore is not started");
    return this.db;
  }

  async write(points: Point[]): Promise<void> {
    assertPoints(points);
    const db = this.open();
    const added = new Map<string, FieldType>();
    const conflicts: string[] = [];
    const rows: unknown[][] = [];
    for (let i = 0; i < points.length; i++) {
      // Hand the event loop back now and then: a fall arriving meanwhile waits at most one slice.
      if (this.thread && i > 0 && i % WRITE_SLICE === 0) await new Promise<void>((r) => setImmediate(r));
      const p = points[i]!;
      const conflict = this.checkFields(p, added);
      if (conflict !== undefined) conflicts.push(conflict);
      else rows.push([p.measurement, p.timeNs, canonicalTags(p.tags), JSON.stringify(p.fields)]);
    }
    const fields = [...added].map(([id, type]) => [...id.split("\u0000"), type]);
    if (this.thread) {
      // Checks and rows here; the inserts and the fsync on the writer thread.
      await this.thread.run([
        { stmt: "field", rows: fields },
        { stmt: "upsert", rows },
      ]);
    } else {
      const upsert = this.upsert!;
      const insertField = this.insertField!;
      db.transaction(() => {
        for (const f of fields) insertField.run(f);
        for (const r of rows) upsert.run(r);
      })();
    }
    for (const [id, type] of added) this.fieldTypes.set(id, type);
    if (conflicts.length > 0) {
      throw new PartialWriteError(
        `partial write: ${conflicts[0]} dropped=${conflicts.length}`,
        conflicts.length,
      );
    }
  }

  /** The first field whose type differs from what the measurement has; records new fields in `added`. */
  private checkFields(p: Point, added: Map<string, FieldType>): string | undefined {
    for (const key in p.fields) {
      const type = fieldType(p, key, p.fields[key]!);
      const id = `${p.measurement}\u0000${key}`;
      const known = this.fieldTypes.get(id) ?? added.get(id);
      if (known === undefined) added.set(id, type);
      else if (known !== type)
        return `field ${key} on ${p.measurement} is ${type}, already exists as ${known}`;
    }
    return undefined;
  }

  async ping(): Promise<boolean> {
    return this.db?.open === true;
  }

  async aggregate(query: AggregateQuery): Promise<AggregateRow[]> {
    const q = normalizeQuery(query);
    const db = this.open();
    if (q.empty) return [];
    // [reported start ms, lower ns (inclusive), upper ns (exclusive)] per bucket, clipped to the query.
    const fromNs = BigInt(q.fromMs) * 1_000_000n;
    const toNs = BigInt(q.toMs) * 1_000_000n;
    let buckets: string;
    if (q.interval === undefined) {
      buckets = `[[0,${fromNs},${toNs}]]`;
    } else {
      const starts = bucketStarts(q.fromMs, q.toMs, q.interval, q.timeZone);
      const parts = new Array<string>(starts.length);
      for (let i = 0; i < starts.length; i++) {
        const lo = BigInt(Math.max(starts[i]!, q.fromMs)) * 1_000_000n;
        const hi = BigInt(Math.min(starts[i + 1] ?? q.toMs, q.toMs)) * 1_000_000n;
        parts[i] = `[${starts[i]},${lo},${hi}]`;
      }
      buckets = `[${parts.join(",")}]`;
    }
    // Parameters in the order their placeholders appear in the text.
    const params: unknown[] = [`$.${q.field}`];
    const groupCols = q.groupBy
      .map((key, i) => {
        params.push(`$.${key}`);
        return `, COALESCE(json_extract(p.tags, ?), '') AS g${i}`;
      })
      .join("");
    params.push(buckets, q.measurement);
    let where = "";
    for (const [key, values] of q.where) {
      params.push(`$.${key}`, ...values);
      where += ` AND COALESCE(json_extract(p.tags, ?), '') IN (${values.map(() => "?").join(", ")})`;
    }
    const groupNames = q.groupBy.map((_, i) => `, g${i}`).join("");
    // CROSS JOIN keeps the bucket list as the outer loop, so each bucket is one range seek on the key.
    const sql = `
      SELECT bucket, ${AGG_SQL[q.fn]} AS value${groupNames}
      FROM (
        SELECT json_extract(b.value, '$[0]') AS bucket, json_extract(p.fields, ?) AS v${groupCols}
        FROM json_each(?) AS b CROSS JOIN series_points AS p
        WHERE p.measurement = ?
          AND p.time_ns >= json_extract(b.value, '$[1]') AND p.time_ns < json_extract(b.value, '$[2]')
          ${where}
      )
      WHERE v IS NOT NULL
      GROUP BY bucket${groupNames}`;
    const rows = db
      .prepare(sql)
      .raw()
      .all(...params) as unknown[][];
    const out: AggregateRow[] = [];
    for (const r of rows) {
      const value = r[1];
      if (typeof value !== "number" && typeof value !== "bigint") continue;
      const tags: Record<string, string> = {};
      for (let i = 0; i < q.groupBy.length; i++) tags[q.groupBy[i]!] = String(r[2 + i]);
      const row: AggregateRow = { tags, value: Number(value) };
      if (q.interval !== undefined) row.time = new Date(Number(r[0]));
      out.push(row);
    }
    return sortRows(out, q.groupBy);
  }
}
