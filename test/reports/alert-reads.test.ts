/** The alert reads contract on SQLite: what one gateway process reads its reports from. */
import { afterEach } from "vitest";
import { SqliteAlertStore } from "../../src/alerts/store.js";
import { SqliteAlertReads } from "../../src/reports/alert-reads.js";
import { tempDbs } from "../helpers/tempdb.js";
import { alertReadsContract } from "./alert-reads.contract.js";

const dbs = tempDbs("ata-alert-reads-");
afterEach(() => dbs.cleanup());

alertReadsContract("SQLite", async () => {
  const { db } = dbs.open();
  const store = new SqliteAlertStore(db);
  let e = 0;
  return {
    reads: new SqliteAlertReads(db),
    alert: async (row) => store.insert(row),
    audit: async (entry) => {
      store.appendAudit(entry);
    },
    device: async (id, profile, siteId) => {
      db.prepare(
        "INSERT INTO devices (id, profile, site_id, unit_id, secret_hash, created_at, updated_at) VALUES (?, ?, ?, 'unit-1', 'x', 0, 0)",
      ).run(id, profile, siteId);
    },
    event: async (siteId, at) => {
      const info = db
        .prepare(
          `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data)
           VALUES (?, 'radar-1', 'fall.detected', 'start', ?, ?, ?, 'unit-1', 'p', '{}')`,
        )
        .run(`e-${++e}`, at, at, siteId);
      return Number(info.lastInsertRowid);
    },
    cleanup: async () => {},
  };
});
