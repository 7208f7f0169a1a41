import { afterEach, describe, expect, it } from "vitest";
import {
  EVENT_LOG_MIGRATIONS,
  EVENT_LOG_SCHEMA,
  MIGRATIONS,
  openDb,
  SchemaTooNewError,
} from "../../src/store/db.js";
import { tempDbs } from "../helpers/tempdb.js";

const dbs = tempDbs("ata-upgrade-");
afterEach(() => dbs.cleanup());

const newest = (ms: { version: number }[]) => Math.max(...ms.map((m) => m.version));

/** What a newer gateway leaves behind: a migration this one has never heard of. */
function addFutureMigration(db: ReturnType<typeof openDb>, schema: string, version: number): void {
  db.prepare(
    `INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)`,
  ).run(version);
}

describe("a gateway meeting a database from another version", () => {
  it("an older gateway refuses a main database a newer one migrated, naming both versions", () => {
    const { db, path } = dbs.open();
    const future = newest(MIGRATIONS) + 1;
    addFutureMigration(db, "main", future);
    db.close();

    expect(() => openDb({ path })).toThrow(SchemaTooNewError);
    expect(() => openDb({ path })).toThrow(
      new RegExp(
        `ata\\.db has schema version ${future} \\(migrations ${future} unknown here\\); this ATA Gateway knows versions up to ${newest(MIGRATIONS)}`,
      ),
    );
  });

  it("an older gateway refuses an event log a newer one migrated, naming the log's file", () => {
    const { db, path } = dbs.open();
    const future = newest(EVENT_LOG_MIGRATIONS) + 3;
    addFutureMigration(db, EVENT_LOG_SCHEMA, future);
    db.close();

    expect(() => openDb({ path })).toThrow(
      new RegExp(`ata-events\\.db has schema version ${future} .* up to ${newest(EVENT_LOG_MIGRATIONS)}`),
    );
  });

  it("a newer gateway upgrades an older database in place, and reopening it changes nothing", () => {
    const { db, path } = dbs.open({ migrations: MIGRATIONS.filter((m) => m.version <= 3) });
    db.close();

    const upgraded = dbs.track(openDb({ path }));
    const versions = () =>
      (
        upgraded.prepare("SELECT version FROM schema_migrations ORDER BY version").all() as {
          version: number;
        }[]
      ).map((r) => r.version);
    expect(versions()).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
    upgraded.close();
    const again = dbs.track(openDb({ path }));
    expect(again.prepare("SELECT count(*) AS n FROM schema_migrations").get()).toEqual({
      n: MIGRATIONS.length,
    });
  });
});
