/**
 * `ata cluster export-to-postgres` on a real PostgreSQL 15 (harness) from a real gateway's SQLite:
 * a gateway on a temporary data directory takes a fall, a bad payload and a repeated event over
 * MQTT and sends its fallback webhook; the stores add tokens, an enrolment, a baseline; a few rows
 * with edge values (64-bit integers, every byte value, non-ASCII text) fill the tables the short run
 * leaves empty. Then the gateway is stopped and its state exported.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../../src/broker/topics.js";
import { ExportError, exportToPostgres } from "../../../src/cluster/pg/export.js";
import { migratePg } from "../../../src/cluster/pg/migrate.js";
import { MIRRORED_TABLES, NOT_MIRRORED } from "../../../src/cluster/pg/schema.js";
import { silentLogger } from "../../../src/log.js";
import { BaselineStore } from "../../../src/reports/baseline/store.js";
import { SecurityLog } from "../../../src/security/log.js";
import { EnrolmentStore } from "../../../src/staff/enrolment.js";
import { TokenStore } from "../../../src/staff/tokens.js";
import { EVENT_LOG_SCHEMA, MIGRATIONS, type Migration, openDb } from "../../../src/store/db.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
} from "../../helpers/gateway.js";
import { freePort } from "../../helpers/ports.js";
import { type PgServer, startPostgres } from "../../helpers/postgres.js";

const run = promisify(execFile);
const ROOT = new URL("../../..", import.meta.url).pathname;
const DEVICE = deviceIdFor("ata/native");
const TOPIC = deviceTopic(DEVICE, "events");

let server: PgServer;
let admin: pg.Client;
let hook: Server;
let n = 0;
const dir = mkdtempSync(join(tmpdir(), "ata-export-"));
const dataDir = join(dir, "data");
const sqlitePath = join(dataDir, "ata.db");
const configPath = join(dir, "config.json");

async function freshDatabase(): Promise<string> {
  const name = `export_${++n}`;
  await admin.query(`CREATE DATABASE ${name}`);
  return server.url.replace(/\/[^/]+$/, `/${name}`);
}

async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function ata(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", configPath, ...args], {
    cwd: ROOT,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

/** A value as both sides should hold it: integers as decimal text, blobs as hex, reals as numbers. */
function norm(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (Buffer.isBuffer(v)) return `hex:${v.toString("hex")}`;
  return v;
}

function sqliteColumns(db: Database.Database, schema: string, table: string): string[] {
  return (db.prepare(`PRAGMA ${schema}.table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
}

function sqliteRows(
  db: Database.Database,
  schema: string,
  table: string,
  key: readonly string[],
): unknown[][] {
  const cols = sqliteColumns(db, schema, table);
  return (
    db
      .prepare(`SELECT ${cols.join(", ")} FROM ${schema}.${table} ORDER BY ${key.join(", ")}`)
      .raw(true)
      .safeIntegers(true)
      .all() as unknown[][]
  ).map((r) => r.map(norm));
}

async function pgRows(
  c: pg.Client,
  table: string,
  cols: string[],
  key: readonly string[],
): Promise<unknown[][]> {
  const { rows } = await c.query<unknown[]>({
    text: `SELECT ${cols.join(", ")} FROM ${table} ORDER BY ${key.map((k) => `${k}`).join(", ")}`,
    rowMode: "array",
  });
  // BIGINT arrives as text, INTEGER as a number: both compare as decimal text.
  return rows.map((r) => r.map((v) => (typeof v === "number" && Number.isInteger(v) ? String(v) : norm(v))));
}

async function counts(url: string): Promise<Record<string, number>> {
  return withPg(url, async (c) => {
    const out: Record<string, number> = {};
    for (const t of MIRRORED_TABLES)
      out[t.name] = Number((await c.query(`SELECT count(*) AS n FROM ${t.name}`)).rows[0].n);
    return out;
  });
}

beforeAll(async () => {
  const started = startPostgres();
  hook = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200).end("ok"));
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/ata`;

  const t = await startGateway({
    dir: dataDir,
    keepDir: true,
    overrides: { alarms: { fallbackWebhook: { url: hookUrl, secret: "export-test-secret-0123456789" } } },
  });
  try {
    const device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    try {
      await publish(device, TOPIC, JSON.stringify({ eventId: "f-1", type: "fall.detected", data: {} }));
      await publish(device, TOPIC, JSON.stringify({ eventId: "f-1", type: "fall.detected", data: {} }));
      await publish(device, TOPIC, "{not json");
      for (let i = 0; i < 50; i++)
        await publish(
          device,
          TOPIC,
          JSON.stringify({ eventId: `hb-${i}`, type: "device.heartbeat", data: { battery: 80 } }),
        );
    } finally {
      device.end(true);
    }
    const db = new Database(sqlitePath, { readonly: true });
    try {
      await eventually(
        () => (db.prepare("SELECT count(*) AS n FROM webhook_deliveries").get() as { n: number }).n > 0,
        10_000,
      );
    } finally {
      db.close();
    }
  } finally {
    await t.stop();
  }

  const db = openDb({ path: sqlitePath });
  try {
    const tokens = new TokenStore(db);
    const { tokenId } = tokens.create({
      name: "Anna",
      role: "nurse",
      sites: ["home-a"],
      units: null,
      actor: "cli",
    });
    new EnrolmentStore(db, tokens).create({
      name: "Bo",
      role: "staff",
      sites: ["home-a"],
      units: null,
      createdBy: "cli",
    });
    new BaselineStore(db).save(
      {
        site: "home-a",
        period: { from: "2026-09-01", to: "2026-09-30" },
        recordedBy: "Mette",
        measurements: { minutesPerNightCheck: { value: 4.5, method: "stopwatch" } },
      } as Parameters<BaselineStore["save"]>[0],
      "cli",
    );
    db.prepare(
      `INSERT INTO push_subscriptions (id, staff_token_id, endpoint, p256dh, auth, label, created_at)
       VALUES ('ps-1', ?, 'https://push.example/abc', 'BPk', 'au', 'Android (Chrome) æøå', 1)`,
    ).run(tokenId);
    db.prepare("INSERT INTO push_keys (name, value, created_at) VALUES ('capability', ?, 1)").run(
      randomBytes(32).toString("base64url"),
    );
    db.prepare("INSERT INTO push_sent (alert_id, subscription_id, at) VALUES ('al-x', 'ps-1', 2)").run();
    db.prepare(
      "INSERT INTO maintenance (site_id, device_id, starts_at, ends_at, reason, created_by, created_at) VALUES ('home-a', NULL, 0, 9223372036854775807, 'ladder 🪜', 'cli', 1)",
    ).run();
    new SecurityLog(db, silentLogger()).record({
      kind: "admin_action",
      actor: "cli",
      subject: "Anna",
      detail: { action: "token_created" },
    });
    db.prepare(
      "INSERT INTO demo_credentials (kind, id, disabled_at) VALUES ('device', 'demo-1', NULL)",
    ).run();
    db.prepare(
      "INSERT OR REPLACE INTO device_state (device_id, online, battery, rssi, firmware) VALUES (?, 1, 0.30000000000000004, -71.5, '1.2')",
    ).run(DEVICE);
    db.prepare(
      "INSERT INTO dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload) VALUES (3, NULL, 'x', 'unknown_topic', 'r', 256, 'h', ?)",
    ).run(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
  } finally {
    db.close();
  }
  writeFileSync(
    configPath,
    JSON.stringify({
      dataDir,
      sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }],
    }),
  );
  server = await started;
  admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
}, 60_000);

afterAll(async () => {
  await admin?.end().catch(() => {});
  await server?.stop();
  await new Promise((r) => hook?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * What keeps the PostgreSQL schema from following SQLite's: tables neither mirrored nor excluded,
 * columns missing or of another type, keys, identities, unique indexes and guarding triggers.
 */
async function schemaProblems(db: Database.Database, url: string): Promise<string[]> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migratePg(pool);
  await pool.end();
  return withPg(url, async (c) => {
    const { rows: pgCols } = await c.query<{
      table_name: string;
      column_name: string;
      data_type: string;
      is_nullable: string;
      is_identity: string;
    }>(
      "SELECT table_name, column_name, data_type, is_nullable, is_identity FROM information_schema.columns WHERE table_schema = current_schema()",
    );
    const { rows: pgIndexes } = await c.query<{
      table: string;
      index: string;
      unique: boolean;
      columns: string[] | null;
    }>(
      `SELECT t.relname AS table, i.relname AS index, ix.indisunique AS unique,
         (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS columns
       FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
       JOIN pg_namespace ns ON ns.oid = t.relnamespace WHERE ns.nspname = current_schema()`,
    );
    const { rows: pgTriggers } = await c.query<{ table: string }>(
      "SELECT c.relname AS table FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE NOT g.tgisinternal",
    );
    const compatible: Record<string, string[]> = {
      INTEGER: ["bigint", "integer"],
      REAL: ["double precision"],
      TEXT: ["text"],
      BLOB: ["bytea"],
    };
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const schema of ["main", EVENT_LOG_SCHEMA]) {
      const tables = db
        .prepare(`SELECT name, sql FROM ${schema}.sqlite_master WHERE type = 'table'`)
        .all() as { name: string; sql: string }[];
      for (const { name, sql } of tables) {
        seen.add(name);
        if (name in NOT_MIRRORED) continue;
        const mirror = MIRRORED_TABLES.find((t) => t.name === name);
        if (!mirror) {
          problems.push(`${name}: neither mirrored in PostgreSQL nor in NOT_MIRRORED`);
          continue;
        }
        if (mirror.sqliteSchema !== schema) problems.push(`${name}: is in SQLite's ${schema}`);
        const cols = db.prepare(`PRAGMA ${schema}.table_info(${name})`).all() as {
          name: string;
          type: string;
          notnull: number;
          pk: number;
        }[];
        const pk = cols
          .filter((c) => c.pk > 0)
          .sort((a, b) => a.pk - b.pk)
          .map((c) => c.name);
        if (pk.join(",") !== mirror.key.join(","))
          problems.push(`${name}: key ${mirror.key} is not SQLite's ${pk}`);
        for (const col of cols) {
          const p = pgCols.find((r) => r.table_name === name && r.column_name === col.name);
          if (!p) problems.push(`${name}.${col.name}: missing in PostgreSQL`);
          else {
            if (!compatible[col.type]?.includes(p.data_type))
              problems.push(`${name}.${col.name}: SQLite ${col.type}, PostgreSQL ${p.data_type}`);
            if (col.notnull && p.is_nullable === "YES")
              problems.push(`${name}.${col.name}: NOT NULL in SQLite only`);
            if ((p.is_identity === "YES") !== (mirror.identity === col.name))
              problems.push(
                `${name}.${col.name}: identity in PostgreSQL ${p.is_identity}, in MIRRORED_TABLES ${mirror.identity}`,
              );
          }
        }
        if (/AUTOINCREMENT/i.test(sql) && !mirror.identity)
          problems.push(`${name}: AUTOINCREMENT without identity`);
        // Unique indexes: named ones by name, UNIQUE constraints by their columns.
        const indexes = db.prepare(`PRAGMA ${schema}.index_list(${name})`).all() as {
          name: string;
          unique: number;
          origin: string;
        }[];
        for (const ix of indexes) {
          if (ix.origin === "pk") continue;
          const cols = (
            db.prepare(`PRAGMA ${schema}.index_info(${ix.name})`).all() as { name: string }[]
          ).map((c) => c.name);
          const match =
            ix.origin === "c"
              ? pgIndexes.find((p) => p.table === name && p.index === ix.name)
              : pgIndexes.find(
                  (p) => p.table === name && p.unique && p.columns?.join(",") === cols.join(","),
                );
          if (!match) problems.push(`${name}: index ${ix.name} (${cols}) missing in PostgreSQL`);
          else if (match.unique !== (ix.unique === 1))
            problems.push(`${name}: index ${ix.name} uniqueness differs`);
        }
        // A trigger that refuses (RAISE) or writes a mirrored table needs its PostgreSQL twin;
        // the registry counter's (meta) goes with its table.
        const triggers = (
          db
            .prepare(`SELECT sql FROM ${schema}.sqlite_master WHERE type = 'trigger' AND tbl_name = ?`)
            .all(name) as { sql: string }[]
        ).filter(
          (t) =>
            /RAISE\(/i.test(t.sql) ||
            [
              ...t.sql
                .slice(t.sql.search(/\bBEGIN\b/i))
                .matchAll(/(?:UPDATE|INSERT INTO|DELETE FROM)\s+(\w+)/gi),
            ].some((m) => !(m[1]! in NOT_MIRRORED)),
        );
        if (triggers.length && !pgTriggers.some((t) => t.table === name))
          problems.push(`${name}: SQLite guards it by trigger, PostgreSQL does not`);
      }
    }
    for (const t of MIRRORED_TABLES)
      if (!seen.has(t.name)) problems.push(`${t.name}: mirrored but not in SQLite`);
    return problems;
  });
}

/** A temporary SQLite database at the latest migrations, plus `extra` ones. */
function sqliteAtLatest(extra: Migration[] = []): { db: Database.Database; close(): void } {
  const guardDir = mkdtempSync(join(tmpdir(), "ata-schema-"));
  const db = openDb({ path: join(guardDir, "ata.db"), migrations: [...MIGRATIONS, ...extra] });
  new TokenStore(db); // creates the token-hash index SQLite gets at open
  return {
    db,
    close: () => {
      db.close();
      rmSync(guardDir, { recursive: true, force: true });
    },
  };
}

describe("the PostgreSQL schema follows SQLite's", () => {
  it("every SQLite table is mirrored column for column with compatible types, keys, unique indexes and guarding triggers, or excluded with a reason", async () => {
    const { db, close } = sqliteAtLatest();
    try {
      expect(await schemaProblems(db, await freshDatabase())).toEqual([]);
    } finally {
      close();
    }
  });

  it("a SQLite migration that adds a table, a column or a unique index fails the check until PostgreSQL follows", async () => {
    const { db, close } = sqliteAtLatest([
      {
        version: 9_999,
        name: "later",
        sql: `ALTER TABLE alerts ADD COLUMN note TEXT;
              CREATE TABLE handovers (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL);
              CREATE UNIQUE INDEX timers_kind_due ON timers(kind, due_at);`,
      },
    ]);
    try {
      expect(await schemaProblems(db, await freshDatabase())).toEqual([
        "alerts.note: missing in PostgreSQL",
        "timers: index timers_kind_due (kind,due_at) missing in PostgreSQL",
        "handovers: neither mirrored in PostgreSQL nor in NOT_MIRRORED",
      ]);
    } finally {
      close();
    }
  });
});

describe("ata cluster export-to-postgres", () => {
  let url: string;

  it("copies every mirrored table row for row, verifies it, and prints no secret", async () => {
    url = await freshDatabase();
    const r = await ata("cluster", "export-to-postgres", "--url", url);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const t of MIRRORED_TABLES)
      expect(r.stdout).toMatch(
        new RegExp(`^${t.name}\\t\\d+ rows\\tcopied in \\d+ ms\\tverified in \\d+ ms$`, "m"),
      );
    expect(r.stdout).toMatch(
      /^exported \d+ rows in \d+ tables to postgres:\/\/postgres@127\.0\.0\.1:\d+\/export_\d+ in \d+ ms/m,
    );

    const db = new Database(sqlitePath, { readonly: true });
    db.prepare(`ATTACH DATABASE ? AS ${EVENT_LOG_SCHEMA}`).run(join(dataDir, "ata-events.db"));
    try {
      // The run produced what the comparison is about.
      for (const t of [
        "events",
        "alerts",
        "alert_audit",
        "timers",
        "dead_letters",
        "duplicates",
        "webhook_deliveries",
        "channel_attempts",
        "security_log",
        "staff_tokens",
        "staff_enrolments",
        "push_keys",
        "baselines",
        "devices",
        "residents",
      ])
        expect((db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n, t).toBeGreaterThan(0);
      const secrets = [
        ...(db.prepare("SELECT token_hash AS s FROM staff_tokens").all() as { s: string }[]),
        ...(db.prepare("SELECT secret_hash AS s FROM devices").all() as { s: string }[]),
        ...(db.prepare("SELECT value AS s FROM push_keys").all() as { s: string }[]),
      ].map((x) => x.s);
      expect(secrets.length).toBeGreaterThan(2);
      for (const s of secrets) expect(r.stdout).not.toContain(s);
      expect(r.stdout).not.toContain("not json");

      await withPg(url, async (c) => {
        for (const t of MIRRORED_TABLES) {
          const cols = sqliteColumns(db, t.sqliteSchema, t.name);
          expect(await pgRows(c, t.name, cols, t.key), t.name).toEqual(
            sqliteRows(db, t.sqliteSchema, t.name, t.key),
          );
        }
      });
    } finally {
      db.close();
    }
  }, 30_000);

  it("a second export into the same database is refused, names the tables, and changes nothing", async () => {
    const before = await counts(url);
    const lines: string[] = [];
    const err = await exportToPostgres({ sqlitePath, url, out: (l) => lines.push(l) }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExportError);
    expect((err as Error).message).toMatch(/already holds state \(not empty: residents, devices, .*events/);
    expect(lines).toEqual([]);
    expect(await counts(url)).toEqual(before);
    const r = await ata("cluster", "export-to-postgres", "--url", url);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not empty/);
  });

  it("ids PostgreSQL assigns after the import continue past the largest imported id", async () => {
    await withPg(url, async (c) => {
      for (const [table, col, insert] of [
        [
          "events",
          "seq",
          "(event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data) VALUES ('new', 'd', 't', 'p', 1, 1, 's', 'u', 'x', '{}')",
        ],
        ["security_log", "id", "(at, last_at, kind) VALUES (1, 1, 'k')"],
        [
          "alert_audit",
          "id",
          "(alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id) SELECT id, 1, 'a', 'x', 'x', 's', 's', 'u' FROM alerts LIMIT 1",
        ],
        [
          "dead_letters",
          "id",
          "(received_at, topic, code, reason, size, sha256, payload) VALUES (1, 't', 'c', 'r', 0, 'h', '')",
        ],
      ] as const) {
        const max = Number((await c.query(`SELECT max(${col}) AS m FROM ${table}`)).rows[0].m);
        const { rows } = await c.query(`INSERT INTO ${table} ${insert} RETURNING ${col} AS id`);
        expect(Number(rows[0].id), table).toBe(max + 1);
      }
    });
  });

  it("an export of a running gateway is one snapshot: every event an alert or a cursor names is in it, and what is written after it is not", async () => {
    const liveDir = join(dir, "live");
    const t = await startGateway({ dir: liveDir, keepDir: true });
    const device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    const target = await freshDatabase();
    let acked = 0;
    let ackedDuring = 0;
    let publishing = true;
    // Falls re-trigger one open alert, moving its last_event_seq along the log all the time.
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        const type = i % 10 === 0 ? "fall.detected" : "device.heartbeat";
        await publish(device, TOPIC, JSON.stringify({ eventId: `live-${i}`, type, data: {} }));
        acked++;
      }
    })();
    let result: Awaited<ReturnType<typeof exportToPostgres>>;
    try {
      await eventually(() => acked > 200, 10_000);
      const before = acked;
      result = await exportToPostgres({ sqlitePath: join(liveDir, "ata.db"), url: target });
      ackedDuring = acked - before;
      const after = acked;
      await eventually(() => acked > after + 20, 10_000);
    } finally {
      publishing = false;
      await publisher;
      device.end(true);
      await t.stop();
    }
    expect(ackedDuring).toBeGreaterThan(0);
    const exported = result.tables.find((x) => x.table === "events")!.rows;
    const db = openDb({ path: join(liveDir, "ata.db") });
    try {
      const logged = (db.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n;
      expect(exported).toBeLessThan(logged);
    } finally {
      db.close();
    }
    await withPg(target, async (c) => {
      const q = async (sql: string) => (await c.query(sql)).rows;
      expect(Number((await q("SELECT count(*) AS n FROM events"))[0].n)).toBe(exported);
      expect(Number((await q("SELECT count(*) AS n FROM alerts"))[0].n)).toBeGreaterThan(0);
      expect(
        await q(`SELECT id FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = a.last_event_seq)
                   OR NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = a.first_event_seq)`),
      ).toEqual([]);
      expect(
        await q("SELECT name FROM cursors WHERE position > (SELECT coalesce(max(seq), 0) FROM events)"),
      ).toEqual([]);
    });
  }, 40_000);

  it("a copy that fails mid-way leaves PostgreSQL empty, its import triggers enabled", async () => {
    const target = await freshDatabase();
    const pool = new pg.Pool({ connectionString: target, max: 1 });
    await migratePg(pool);
    // The target refuses the event log's last table: everything before it was already inserted.
    await pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'disk full (test)'; END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON dead_letter_quota FOR EACH ROW EXECUTE FUNCTION refuse();`);
    await pool.end();
    const lines: string[] = [];
    const err = await exportToPostgres({ sqlitePath, url: target, out: (l) => lines.push(l) }).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/copying dead_letter_quota: disk full \(test\)/);
    expect(lines.find((l) => l.startsWith("events\t"))).toMatch(/^events\t[1-9]\d* rows/);
    expect(Object.values(await counts(target)).every((v) => v === 0)).toBe(true);
    await withPg(target, async (c) => {
      const { rows } = await c.query(
        "SELECT tgenabled FROM pg_trigger WHERE tgname = 'dead_letters_count_i'",
      );
      expect(rows).toEqual([{ tgenabled: "O" }]);
    });
  });

  it("a table that PostgreSQL stores differently from what was read fails verification, names the table and rolls back", async () => {
    const target = await freshDatabase();
    const pool = new pg.Pool({ connectionString: target, max: 1 });
    await migratePg(pool);
    await pool.query(`CREATE FUNCTION alter_detail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.detail := NEW.detail || ' '; RETURN NEW; END $$;
      CREATE TRIGGER alter_detail BEFORE INSERT ON security_log FOR EACH ROW EXECUTE FUNCTION alter_detail();`);
    await pool.end();
    const err = await exportToPostgres({ sqlitePath, url: target }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /^verification failed for security_log: SQLite has (\d+) rows .*PostgreSQL \1 /,
    );
    expect(Object.values(await counts(target)).every((v) => v === 0)).toBe(true);
  });

  it("a URL that is not PostgreSQL's, or a server nobody answers on, is a clear error without the password", async () => {
    const bad = await ata("cluster", "export-to-postgres", "--url", "mysql://root:pw@127.0.0.1/x");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--url must be a postgres:\/\/ URL/);
    const port = await freePort();
    const down = await ata(
      "cluster",
      "export-to-postgres",
      "--url",
      `postgres://ata:hunter2-secret@127.0.0.1:${port}/ata`,
    );
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      new RegExp(`cannot reach PostgreSQL at postgres://ata@127\\.0\\.0\\.1:${port}/ata`),
    );
    expect(down.stdout + down.stderr).not.toContain("hunter2-secret");
  });
});

describe("the mirrored triggers in PostgreSQL", () => {
  it("refuse changing the audit and the security log and count dead letters as SQLite's do", async () => {
    const target = await freshDatabase();
    await withPg(target, async (c) => {
      const pool = new pg.Pool({ connectionString: target, max: 1 });
      await migratePg(pool);
      await pool.end();
      const now = Date.now();
      await c.query("INSERT INTO security_log (at, last_at, kind) VALUES ($1, $1, 'young'), (1, 1, 'old')", [
        now,
      ]);
      await expect(c.query("UPDATE security_log SET kind = 'x'")).rejects.toThrow(/append-only/);
      await expect(c.query("DELETE FROM security_log WHERE kind = 'young'")).rejects.toThrow(/400 days/);
      await expect(c.query("TRUNCATE security_log")).rejects.toThrow(/append-only/);
      expect((await c.query("DELETE FROM security_log WHERE kind = 'old'")).rowCount).toBe(1);
      await c.query(
        "INSERT INTO alerts (id, dedupe_key, open, type, priority, state, message_da, message_en, rule_id, site_id, unit_id, device_id, last_event_type, raised_at, updated_at, ladder) VALUES ('a', 'k', 1, 't', 'high', 'open', 'm', 'm', 'r', 's', 'u', 'd', 't', 1, 1, '[]')",
      );
      await c.query(
        "INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id) VALUES ('a', 1, 'raised', 'x', 'x', 'open', 's', 'u')",
      );
      await expect(c.query("DELETE FROM alert_audit")).rejects.toThrow(/append-only/);
      await expect(c.query("TRUNCATE alert_audit CASCADE")).rejects.toThrow(/append-only/);
      await c.query("INSERT INTO dead_letter_quota (id, letters, bytes) VALUES (1, 0, 0)");
      await c.query(
        "INSERT INTO dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload) VALUES (1, 'd', 'tø', 'c', 'ræson', 3, 'h', '\\x010203'), (2, NULL, 't', 'c', 'r', 1, 'h', '\\x00')",
      );
      expect(
        (
          await c.query(
            "SELECT device_id, letters::int, bytes::int FROM dead_letter_usage ORDER BY device_id",
          )
        ).rows,
      ).toEqual([
        { device_id: "", letters: 1, bytes: 3 },
        { device_id: "d", letters: 1, bytes: 3 + 6 + 3 },
      ]);
      await c.query("DELETE FROM dead_letters WHERE device_id IS NULL");
      expect((await c.query("SELECT letters::int, bytes::int FROM dead_letter_quota")).rows).toEqual([
        { letters: 1, bytes: 12 },
      ]);
      expect((await c.query("SELECT count(*)::int AS n FROM dead_letter_usage")).rows).toEqual([{ n: 1 }]);
    });
  });
});
