/** The event reads contract on SQLite: what one gateway process computes its time saved from. */
import { afterEach } from "vitest";
import { SqliteEventReads } from "../../src/reports/event-reads.js";
import { tempDbs } from "../helpers/tempdb.js";
import { eventReadsContract } from "./event-reads.contract.js";

const dbs = tempDbs("ata-event-reads-");
afterEach(() => dbs.cleanup());

eventReadsContract("SQLite", async () => {
  const { db } = dbs.open();
  let e = 0;
  const device = db.prepare(
    `INSERT OR IGNORE INTO devices (id, profile, site_id, unit_id, secret_hash, created_at, updated_at)
     VALUES (?, 'p', ?, 'unit-1', 'x', 0, 0)`,
  );
  const insert = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, room_id,
       resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', ?, ?, ?, ?, ?, ?, 'p', ?)`,
  );
  return {
    reads: new SqliteEventReads(db),
    log: async (...events) => {
      for (const x of events) {
        device.run(x.deviceId, x.siteId);
        insert.run(
          `e-${++e}`,
          x.deviceId,
          x.type,
          x.at,
          x.at,
          x.siteId,
          x.unitId,
          x.roomId,
          x.residentRef,
          x.data,
        );
      }
    },
    cleanup: async () => {},
  };
});
