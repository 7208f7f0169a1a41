/**
 * Baselines on a real PostgreSQL (Debian's postgresql 15, started by the harness for this file):
 * the repository contract, on a fresh database per test, migrated as a gateway node would.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgBaselineRepository } from "../../../src/cluster/pg/baselines.js";
import { migratePg, PG_MIGRATIONS } from "../../../src/cluster/pg/migrate.js";
import { type PgServer, startPostgres } from "../../helpers/postgres.js";
import { baselineRepositoryContract } from "../../reports/baseline-repository.contract.js";

let server: PgServer;
let admin: pg.Client;
let n = 0;

beforeAll(async () => {
  server = await startPostgres();
  console.log(`PostgreSQL started in ${server.startupMs} ms`);
  admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
}, 30_000);

afterAll(async () => {
  await admin?.end().catch(() => {});
  await server?.stop();
});

async function freshDatabase(): Promise<string> {
  const name = `baselines_${++n}`;
  await admin.query(`CREATE DATABASE ${name}`);
  return server.url.replace(/\/[^/]+$/, `/${name}`);
}

baselineRepositoryContract("PostgreSQL", async (now) => {
  const pool = new pg.Pool({ connectionString: await freshDatabase(), max: 8 });
  await migratePg(pool);
  return {
    repo: new PgBaselineRepository(pool, now),
    raw: async (sql) => {
      await pool.query(sql);
    },
    cleanup: () => pool.end(),
  };
});

describe("PostgreSQL baselines beyond the contract", () => {
  it("TRUNCATE, which skips row triggers, is refused as well", async () => {
    const pool = new pg.Pool({ connectionString: await freshDatabase(), max: 1 });
    try {
      await migratePg(pool);
      await expect(pool.query("TRUNCATE baselines")).rejects.toThrow(/append-only/);
    } finally {
      await pool.end();
    }
  });
});

describe("PostgreSQL schema migrations", () => {
  it("several gateway nodes migrating one database at once apply each migration once", async () => {
    const url = await freshDatabase();
    const nodes = [0, 1, 2].map(() => new pg.Pool({ connectionString: url, max: 1 }));
    try {
      await Promise.all(nodes.map((p) => migratePg(p)));
      const { rows } = await nodes[0]!.query("SELECT version, name FROM schema_migrations ORDER BY version");
      expect(rows).toEqual(PG_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    } finally {
      await Promise.all(nodes.map((p) => p.end()));
    }
  });

  it("a database with a schema version this gateway does not know is refused, not written to", async () => {
    const pool = new pg.Pool({ connectionString: await freshDatabase(), max: 1 });
    try {
      await migratePg(pool);
      await pool.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)");
      await expect(migratePg(pool)).rejects.toThrow(/schema versions 99 unknown/);
    } finally {
      await pool.end();
    }
  });
});
