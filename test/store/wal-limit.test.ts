/**
 * A burst must not leave its WAL on disk for good: after a checkpoint, the next commit starts the
 * WAL over and cuts the file back to WAL_SIZE_LIMIT, on the main connection and the event log.
 */
import { statSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { EVENT_LOG_SCHEMA, eventLogPath, WAL_SIZE_LIMIT } from "../../src/store/db.js";
import { tempDbs } from "../helpers/tempdb.js";

const dbs = tempDbs("ata-wal-");
afterEach(() => dbs.cleanup());

it("cuts a WAL grown by a burst back to the limit once it has been checkpointed", () => {
  const { db, path } = dbs.open({ autoCheckpoint: false });
  const blob = Buffer.alloc(64 * 1024, 7);
  const burst = (table: string) =>
    db.transaction(() => {
      for (let i = 0; i < 480; i++)
        db.prepare(
          `INSERT INTO ${table} (received_at, topic, code, reason, size, sha256, payload) VALUES (0, 't', 'bad_json', 'r', ?, 'x', ?)`,
        ).run(blob.length, blob);
    })();
  burst(`${EVENT_LOG_SCHEMA}.dead_letters`);
  const walOf = (p: string) => statSync(`${p}-wal`).size;
  const log = eventLogPath(path);
  expect(walOf(log)).toBeGreaterThan(WAL_SIZE_LIMIT * 1.5);
  db.pragma(`${EVENT_LOG_SCHEMA}.wal_checkpoint(PASSIVE)`);
  db.prepare(`DELETE FROM ${EVENT_LOG_SCHEMA}.dead_letters WHERE id = 1`).run();
  expect(walOf(log)).toBeLessThanOrEqual(WAL_SIZE_LIMIT);
});
