import { BaselineStore, SqliteBaselineRepository } from "../../src/reports/baseline/store.js";
import { baselineRepositoryContract } from "./baseline-repository.contract.js";
import { tempDb } from "./fixtures.js";

baselineRepositoryContract("SQLite", async (now) => {
  const t = tempDb();
  return {
    repo: new SqliteBaselineRepository(new BaselineStore(t.db, now)),
    raw: async (sql) => {
      t.db.prepare(sql).run();
    },
    cleanup: async () => t.close(),
  };
});
