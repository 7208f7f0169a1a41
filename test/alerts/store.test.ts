import { SqliteAlertHistory, SqliteAlertStore } from "../../src/alerts/store.js";
import { tempDbs } from "../helpers/tempdb.js";
import { alertHistoryContract, alertStoreContract } from "./store.contract.js";

const dbs = tempDbs("ata-alert-store-");

// The gateway's database as it opens it: every migration applied, in a file, WAL.
alertStoreContract("SQLite", async () => {
  const { db } = dbs.open();
  return { store: new SqliteAlertStore(db), cleanup: async () => dbs.cleanup() };
});

alertHistoryContract("SQLite", async () => {
  const { db } = dbs.open();
  const store = new SqliteAlertStore(db);
  return {
    store,
    history: new SqliteAlertHistory(db, store),
    cleanup: async () => dbs.cleanup(),
  };
});
