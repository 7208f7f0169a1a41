import { SqliteMaintenanceSchedule } from "../../src/rules/maintenance.js";
import { SqlitePartitionState } from "../../src/rules/partition.js";
import { openDb } from "../../src/store/db.js";
import { tempDbs } from "../helpers/tempdb.js";
import { partitionStateContract } from "./partition.contract.js";

const dbs = tempDbs("ata-partition-");

// The gateway's database as it opens it: every migration applied, in a file, WAL; reopened as a
// restart does, from the same file.
partitionStateContract("SQLite", async () => {
  const { db, path } = dbs.open();
  return {
    state: new SqlitePartitionState(db),
    schedule: new SqliteMaintenanceSchedule(db),
    reopen: async () => {
      db.close();
      return new SqlitePartitionState(dbs.track(openDb({ path })));
    },
    cleanup: async () => dbs.cleanup(),
  };
});
