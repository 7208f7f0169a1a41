/**
 * One PostgreSQL for a test file, and a fresh database per test, migrated as a gateway node would
 * migrate it. Registers the file's hooks: the server starts before the first test and stops after
 * the last; what a test hands to `cleanup` is undone after it, newest first, each given at most
 * five seconds (a stuck pool must not hold the next test).
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll } from "vitest";
import { migratePg } from "../../src/cluster/pg/migrate.js";
import { type PgServer, startPostgres } from "./postgres.js";

export interface PgTestDatabases {
  /** A new database, every migration applied: its URL. */
  fresh(): Promise<string>;
  /** Undo this after the current test. */
  cleanup(fn: () => Promise<unknown> | unknown): void;
  /** A connection to the server's own database, for what a test does as the operator. */
  readonly admin: pg.Client;
  readonly server: PgServer;
}

export function pgTestDatabases(prefix: string): PgTestDatabases {
  let server: PgServer | null = null;
  let admin: pg.Client | null = null;
  let n = 0;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  }, 30_000);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse())
      await Promise.race([
        Promise.resolve()
          .then(c)
          .catch(() => undefined),
        new Promise((r) => setTimeout(r, 5000)),
      ]);
  });

  afterAll(async () => {
    await admin?.end().catch(() => {});
    await server?.stop();
  });

  const started = <T>(v: T | null): T => {
    if (v === null) throw new Error("PostgreSQL is not started yet (use it inside a test or hook)");
    return v;
  };

  return {
    async fresh() {
      const name = `${prefix}_${++n}`;
      await started(admin).query(`CREATE DATABASE ${name}`);
      const url = started(server).url.replace(/\/[^/]+$/, `/${name}`);
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        await migratePg(pool);
      } finally {
        await pool.end();
      }
      return url;
    },
    cleanup(fn) {
      cleanups.push(fn);
    },
    get admin() {
      return started(admin);
    },
    get server() {
      return started(server);
    },
  };
}
