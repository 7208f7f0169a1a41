/**
 * The move from one process to cluster mode: copy the gateway's SQLite state into an empty
 * PostgreSQL database (`ata cluster export-to-postgres`, docs/cluster.md "Upgrading from a single
 * process").
 *
 * - One snapshot. SQLite is read on a read-only connection in one read transaction, so what is
 *   copied is the state at one moment even while a gateway writes. The main file's snapshot is taken
 *   before the event log's (as `ata backup` copies them), so every event an alert or a cursor names
 *   is in the copy. What a running gateway writes after the snapshot is not carried: stop it first.
 * - Never a merge. The target is migrated (migratePg), then refused if any mirrored table holds a
 *   row, with the tables named: two histories would collide on ids and dedupe keys. The tables are
 *   locked against other writers from that check to the commit.
 * - All or nothing. Every table is copied in one PostgreSQL transaction, in dependency order, in
 *   multi-row INSERTs of at most `batchRows` rows read with `.iterate()`, so a large event log never
 *   sits in memory. Ids are kept; each identity sequence is set past the largest id.
 * - Verified before COMMIT. Each table's rows are read back from PostgreSQL inside the transaction
 *   and compared with what was read from SQLite: the row count and a checksum (the sum modulo 2^256
 *   of each row's SHA-256 over its canonical form, so it does not depend on the order rows come
 *   back in). A difference rolls everything back and names the table.
 *
 * - Events in their partitions. Each copied event gets its site's partition (with `partitions`, the
 *   count the cluster's nodes will use) and the next position there, in SQLite's seq order, and
 *   `event_log_heads` is set past them (event-log.ts); a database whose leases use another count is
 *   refused.
 *
 * Progress names tables, counts and times only: token hashes, device secrets, push keys and
 * payloads are copied (they are state) but never printed, and the URL is shown without password.
 */
import { createHash } from "node:crypto";
import Database from "better-sqlite3";
import pg from "pg";
import { EVENT_LOG_MIGRATIONS, EVENT_LOG_SCHEMA, eventLogPath, MIGRATIONS } from "../../store/db.js";
import { DEFAULT_PARTITION_COUNT } from "../partitions.js";
import { ExportedPositions } from "./event-log.js";
import { migratePg } from "./migrate.js";
import { MIRRORED_TABLES, type MirroredTable } from "./schema.js";

/** A refusal or a failure the operator acts on; the message says which and why, without secrets. */
export class ExportError extends Error {}

export interface ExportOptions {
  /** The gateway's main database file (`<dataDir>/ata.db`); its event log is found beside it. */
  sqlitePath: string;
  /** postgres://user[:password]@host[:port]/database */
  url: string;
  out?: (line: string) => void;
  /** Rows per INSERT and per read-back (fewer for wide tables: PostgreSQL takes 65,535 parameters). */
  batchRows?: number;
  /** The cluster's partition count, which the events' partitions are computed with (event-log.ts). */
  partitions?: number;
}

export interface TableResult {
  table: string;
  rows: number;
  ms: number;
}

export interface ExportResult {
  tables: TableResult[];
  rows: number;
  ms: number;
}

/** How a value is compared: by the PostgreSQL column's type, which each side's value is read as. */
type Kind = "integer" | "real" | "text" | "blob";

const MAX_PARAMETERS = 65_535;

/** The URL as it may be printed: no password, no query (which can carry one too). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ""}${u.host}${u.pathname}`;
  } catch {
    return "(unparseable URL)";
  }
}

function checkUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ExportError("--url is not a URL; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:")
    throw new ExportError(`--url must be a postgres:// URL, not ${u.protocol}//`);
  if (!u.hostname || u.pathname.length <= 1)
    throw new ExportError(
      "--url needs a host and a database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
    );
}

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ECONNRESET",
]);

/** A failure talking to PostgreSQL, said without the URL's password. */
function pgFailure(err: unknown, url: string, doing: string): ExportError {
  const e = err as Error & { code?: string; errors?: { code?: string }[] };
  const code = e.code ?? e.errors?.[0]?.code;
  if ((code && UNREACHABLE.has(code)) || /timeout|terminated/i.test(e.message ?? ""))
    return new ExportError(`cannot reach PostgreSQL at ${describeUrl(url)}: ${e.message || code}`);
  return new ExportError(
    `PostgreSQL at ${describeUrl(url)} failed while ${doing}, nothing was imported: ${e.message || code}`,
  );
}

function kindOf(pgType: string): Kind {
  if (pgType === "bigint" || pgType === "integer" || pgType === "smallint") return "integer";
  if (pgType === "double precision" || pgType === "real") return "real";
  if (pgType === "bytea") return "blob";
  return "text";
}

/**
 * One value as the checksum sees it. Both sides reach the same string for the same stored value:
 * SQLite gives integers as bigint (safeIntegers), node-postgres BIGINT as a decimal string; REAL and
 * DOUBLE PRECISION are JavaScript numbers on both sides; blobs are Buffers on both.
 */
function canonical(kind: Kind, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case "integer":
      return typeof v === "bigint" ? v.toString() : String(v);
    case "real":
      return `${Number(v)}`;
    case "blob":
      return Buffer.isBuffer(v) ? `\\x${v.toString("hex")}` : `\\x${Buffer.from(String(v)).toString("hex")}`;
    default:
      return Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }
}

/**
 * An order-independent checksum: the sum of the rows' SHA-256 digests modulo 2^256, kept as eight
 * 32-bit words (least significant first) so that adding a row costs no big-integer arithmetic.
 */
class Checksum {
  rows = 0;
  private readonly words = new Float64Array(8);
  constructor(private readonly kinds: readonly Kind[]) {}
  add(row: readonly unknown[]): void {
    const canon = JSON.stringify(row.map((v, i) => canonical(this.kinds[i]!, v)));
    const d = createHash("sha256").update(canon).digest();
    let carry = 0;
    for (let w = 0; w < 8; w++) {
      const sum = this.words[w]! + d.readUInt32BE(28 - w * 4) + carry;
      carry = sum >= 0x1_0000_0000 ? 1 : 0;
      this.words[w] = sum - carry * 0x1_0000_0000;
    }
    this.rows++;
  }
  get hex(): string {
    let out = "";
    for (let w = 7; w >= 0; w--) out += this.words[w]!.toString(16).padStart(8, "0");
    return out;
  }
}

interface SqliteVersions {
  main: Set<number>;
  log: Set<number>;
}

/** The SQLite database must be at exactly this gateway's schema: the mirror is of that version. */
function checkSqliteVersions(db: Database.Database, path: string): void {
  const read = (schema: string) =>
    new Set(
      (db.prepare(`SELECT version FROM ${schema}.schema_migrations`).all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
  let have: SqliteVersions;
  try {
    have = { main: read("main"), log: read(EVENT_LOG_SCHEMA) };
  } catch {
    throw new ExportError(`${path} is not an ATA Gateway database (no schema_migrations)`);
  }
  for (const [schema, known] of [
    ["main", MIGRATIONS],
    [EVENT_LOG_SCHEMA, EVENT_LOG_MIGRATIONS],
  ] as const) {
    const applied = have[schema];
    const missing = known.map((m) => m.version).filter((v) => !applied.has(v));
    const unknown = [...applied].filter((v) => !known.some((m) => m.version === v));
    if (unknown.length)
      throw new ExportError(
        `${path} (${schema}) has schema versions ${unknown.join(", ")} unknown to this ATA Gateway: export with the gateway version that wrote it`,
      );
    if (missing.length)
      throw new ExportError(
        `${path} (${schema}) lacks migrations ${missing.join(", ")}: start this version of the gateway on it once (or run any ata command, which migrates it), then export`,
      );
  }
}

function insertSql(table: MirroredTable, columns: readonly string[], rows: number): string {
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    const base = r * columns.length;
    values.push(`(${columns.map((_, c) => `$${base + c + 1}`).join(", ")})`);
  }
  return `INSERT INTO ${table.name} (${columns.join(", ")})${table.identity ? " OVERRIDING SYSTEM VALUE" : ""} VALUES ${values.join(", ")}`;
}

export async function exportToPostgres(opts: ExportOptions): Promise<ExportResult> {
  const out = opts.out ?? (() => {});
  const batchRows = opts.batchRows ?? 1000;
  const partitions = opts.partitions ?? DEFAULT_PARTITION_COUNT;
  checkUrl(opts.url);
  const started = Date.now();

  let db: Database.Database;
  try {
    db = new Database(opts.sqlitePath, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new ExportError(`cannot open ${opts.sqlitePath}: ${(err as Error).message}`);
  }
  const pool = new pg.Pool({ connectionString: opts.url, max: 1, connectionTimeoutMillis: 10_000 });
  // An idle client's error (the server going away) is reported by the query that needed it.
  pool.on("error", () => {});
  let client: pg.PoolClient | undefined;
  let sqliteOpen = false;
  try {
    db.prepare(`ATTACH DATABASE ? AS ${EVENT_LOG_SCHEMA}`).run(eventLogPath(opts.sqlitePath));
    checkSqliteVersions(db, opts.sqlitePath);

    try {
      await migratePg(pool);
    } catch (err) {
      throw pgFailure(err, opts.url, "migrating");
    }
    client = await pool.connect();
    await client.query("BEGIN");
    // Held to the end: a second import waits here and then finds the tables full, and a gateway
    // node started meanwhile waits to write instead of mixing its rows into the check and the copy.
    await client.query(
      `LOCK TABLE ${MIRRORED_TABLES.map((t) => t.name).join(", ")} IN SHARE ROW EXCLUSIVE MODE`,
    );
    const nonEmpty: string[] = [];
    for (const t of MIRRORED_TABLES) {
      const { rows } = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${t.name}) AS any`);
      if (rows[0]?.any) nonEmpty.push(t.name);
    }
    if (nonEmpty.length)
      throw new ExportError(
        `PostgreSQL at ${describeUrl(opts.url)} already holds state (not empty: ${nonEmpty.join(", ")}); an import never merges two histories: use an empty database`,
      );
    const { rows: leased } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM partition_leases",
    );
    if (leased[0]!.n !== 0 && leased[0]!.n !== partitions)
      throw new ExportError(
        `PostgreSQL at ${describeUrl(opts.url)} has leases for ${leased[0]!.n} partitions, not ${partitions}: export with the cluster's partition count`,
      );

    const types = new Map<string, Map<string, string>>();
    const { rows: pgColumns } = await client.query<{
      table_name: string;
      column_name: string;
      data_type: string;
    }>(
      "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()",
    );
    for (const c of pgColumns) {
      if (!types.has(c.table_name)) types.set(c.table_name, new Map());
      types.get(c.table_name)!.set(c.column_name, c.data_type);
    }

    // The snapshot: main first, then the log (see the header), both held until the end.
    db.exec("BEGIN");
    sqliteOpen = true;
    db.prepare("SELECT count(*) FROM main.sqlite_master").get();
    db.prepare(`SELECT count(*) FROM ${EVENT_LOG_SCHEMA}.sqlite_master`).get();

    const results: TableResult[] = [];
    for (const table of MIRRORED_TABLES) {
      const t0 = Date.now();
      const columns = (
        db.prepare(`PRAGMA ${table.sqliteSchema}.table_info(${table.name})`).all() as { name: string }[]
      ).map((c) => c.name);
      const pgTypes = types.get(table.name);
      const missing = columns.filter((c) => !pgTypes?.has(c));
      if (missing.length)
        throw new ExportError(
          `PostgreSQL's ${table.name} lacks columns ${missing.join(", ")} that SQLite has: this gateway's PostgreSQL schema is behind its SQLite schema`,
        );
      const kinds = columns.map((c) => kindOf(pgTypes!.get(c)!));
      // Events are also placed in their partitions (the header); the checksum is of SQLite's columns.
      const placing = table.name === "events" ? new ExportedPositions(partitions) : null;
      const siteColumn = columns.indexOf("site_id");
      const written = placing ? [...columns, "partition", "position"] : columns;
      const perBatch = Math.max(1, Math.min(batchRows, Math.floor(MAX_PARAMETERS / written.length)));
      const fullInsert = insertSql(table, written, perBatch);
      const source = new Checksum(kinds);

      for (const trigger of table.importTriggers ?? [])
        await client.query(`ALTER TABLE ${table.name} DISABLE TRIGGER ${trigger}`);
      const select = db
        .prepare(
          `SELECT ${columns.join(", ")} FROM ${table.sqliteSchema}.${table.name} ORDER BY ${table.key.join(", ")}`,
        )
        .raw(true)
        .safeIntegers(true);
      let batch: unknown[] = [];
      let inBatch = 0;
      const flush = async () => {
        if (inBatch === 0) return;
        // The full batch is a named statement: parsed and planned once per table, not per batch.
        const query =
          inBatch === perBatch
            ? { name: `export_${table.name}`, text: fullInsert, values: batch }
            : { text: insertSql(table, written, inBatch), values: batch };
        try {
          await client!.query(query);
        } catch (err) {
          throw new ExportError(`copying ${table.name}: ${(err as Error).message}`);
        }
        batch = [];
        inBatch = 0;
      };
      for (const row of select.iterate() as IterableIterator<unknown[]>) {
        source.add(row);
        for (const v of row) batch.push(v);
        if (placing) batch.push(...placing.place(String(row[siteColumn])));
        if (++inBatch === perBatch) await flush();
      }
      await flush();
      if (placing) {
        const heads = placing.heads();
        await client.query(
          "INSERT INTO event_log_heads (partition, head) SELECT * FROM unnest($1::int[], $2::bigint[])",
          [[...heads.keys()], [...heads.values()]],
        );
      }
      for (const trigger of table.importTriggers ?? [])
        await client.query(`ALTER TABLE ${table.name} ENABLE TRIGGER ${trigger}`);
      if (table.identity && source.rows > 0)
        await client.query(
          `SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max(${table.identity}) FROM ${table.name}))`,
          [table.name, table.identity],
        );

      const copied = Date.now();
      const target = new Checksum(kinds);
      const cursor = `export_${table.name}`;
      await client.query(
        `DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${columns.join(", ")} FROM ${table.name} ORDER BY ${table.key.join(", ")}`,
      );
      for (;;) {
        const { rows } = await client.query<unknown[]>({
          text: `FETCH ${perBatch} FROM ${cursor}`,
          rowMode: "array",
        });
        for (const row of rows) target.add(row);
        if (rows.length < perBatch) break;
      }
      await client.query(`CLOSE ${cursor}`);
      if (target.rows !== source.rows || target.hex !== source.hex)
        throw new ExportError(
          `verification failed for ${table.name}: SQLite has ${source.rows} rows (checksum ${source.hex.slice(0, 16)}), PostgreSQL ${target.rows} (checksum ${target.hex.slice(0, 16)}); nothing was imported`,
        );
      const ms = Date.now() - t0;
      results.push({ table: table.name, rows: source.rows, ms });
      out(
        `${table.name}\t${source.rows} rows\tcopied in ${copied - t0} ms\tverified in ${Date.now() - copied} ms`,
      );
    }
    await client.query("COMMIT");
    const rows = results.reduce((n, r) => n + r.rows, 0);
    const ms = Date.now() - started;
    out(
      `exported ${rows} rows in ${results.length} tables to ${describeUrl(opts.url)} in ${ms} ms (${Math.round((rows * 1000) / Math.max(ms, 1))} rows/s), each table verified by count and checksum`,
    );
    return { tables: results, rows, ms };
  } catch (err) {
    await client?.query("ROLLBACK").catch(() => {});
    if (err instanceof ExportError) throw err;
    throw pgFailure(err, opts.url, "exporting");
  } finally {
    if (sqliteOpen) db.exec("ROLLBACK");
    db.close();
    client?.release();
    await pool.end();
  }
}
