/**
 * Databases in temporary directories for one test file: `open()` makes one, `track()` adopts
 * another connection, and `cleanup()` (in afterEach) closes them all and removes the directories.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Db, type OpenOptions, openDb } from "../../src/store/db.js";

export function tempDbs(prefix: string) {
  const dirs: string[] = [];
  const dbs: Db[] = [];
  return {
    open(options: Omit<OpenOptions, "path"> = {}): { db: Db; path: string; dir: string } {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      const path = join(dir, "ata.db");
      const db = openDb({ ...options, path });
      dbs.push(db);
      return { db, path, dir };
    },
    track(db: Db): Db {
      dbs.push(db);
      return db;
    },
    cleanup(): void {
      for (const db of dbs.splice(0)) if (db.open) db.close();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}
