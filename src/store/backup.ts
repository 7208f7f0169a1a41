/**
 * An online backup of the data directory (`ata backup DIR`), taken while the gateway runs.
 *
 * Each SQLite file is copied with SQLite's online backup API (better-sqlite3 `db.backup()`) in one
 * step: the step reads one snapshot (in WAL mode a reader never blocks the gateway's writers, nor
 * they it), so each copy is a consistent database including what is still in the WAL. Copying the
 * files with cp under a running gateway is not: the WAL and the database file would come from
 * different moments.
 *
 * The files are copied in dependency order: the main database first, then its event log, then the
 * rest (the embedded time series). The main database holds cursors into the log (the rules' and the
 * time-series sink's positions); a log copied after it holds every event those cursors name, so a
 * restore replays the events logged in between, as after a crash. The other order could leave a
 * cursor past the end of the restored log, and the rules would skip the next events.
 *
 * Other regular files in the data directory (the staff-token key beside the database, when it is
 * not given by the environment) are copied as they are; SQLite's -wal, -shm and -journal files are
 * not: their content is in the copies.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { eventLogPath } from "./db.js";

export interface BackedUpFile {
  /** The file's name, the same in the data directory and in the backup. */
  name: string;
  /** Where the copy is. */
  path: string;
  bytes: number;
  /** How it was copied: SQLite's online backup, or as a plain file. */
  kind: "sqlite" | "file";
  /** The highest migration applied (schema_migrations), for databases that have migrations. */
  schemaVersion: number | null;
}

export class BackupError extends Error {}

const SQLITE_HEADER = "SQLite format 3\0";
/** SQLite's companions of a database file: their content reaches the copy through the backup API. */
const SQLITE_COMPANION = /-(wal|shm|journal)$/;
const PARTIAL = ".partial";

function isSqlite(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(SQLITE_HEADER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.toString("latin1") === SQLITE_HEADER;
  } finally {
    closeSync(fd);
  }
}

/**
 * Connections here are read-write although they only read: a read-only connection cannot remove
 * the -wal and -shm files when it closes, and would leave them beside a stopped gateway's
 * databases and in the backup.
 */
function open(path: string): Database.Database {
  return new Database(path, { fileMustExist: true });
}

function schemaVersion(path: string): number | null {
  const db = open(path);
  try {
    const has = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
      .get();
    if (!has) return null;
    return (db.prepare("SELECT max(version) AS v FROM schema_migrations").get() as { v: number | null }).v;
  } finally {
    db.close();
  }
}

async function backupSqlite(source: string, destination: string): Promise<void> {
  const db = open(source);
  try {
    // better-sqlite3's first step copies nothing; the progress callback's answer is the size of
    // the next step: everything, so the copy is one read snapshot and a busy gateway writing
    // between small steps cannot keep restarting it.
    await db.backup(destination, { progress: () => 0x7fffffff });
  } finally {
    db.close();
  }
}

/**
 * Copies the databases and files of `dataDir` into `targetDir` (created if missing; it must not
 * already hold any of them). `mainDb` is the main database's file name in dataDir.
 */
export async function backupDataDir(opts: {
  dataDir: string;
  targetDir: string;
  mainDb?: string;
}): Promise<BackedUpFile[]> {
  const dataDir = resolve(opts.dataDir);
  const targetDir = resolve(opts.targetDir);
  const mainDb = opts.mainDb ?? "ata.db";
  const main = join(dataDir, mainDb);
  if (!statSync(main, { throwIfNoEntry: false })?.isFile())
    throw new BackupError(`nothing to back up: ${main} does not exist (is dataDir right?)`);
  if (targetDir === dataDir) throw new BackupError("the backup directory must not be the data directory");

  const names = readdirSync(dataDir, { withFileTypes: true })
    .filter((e) => e.isFile() && !SQLITE_COMPANION.test(e.name) && !e.name.endsWith(PARTIAL))
    .map((e) => e.name);
  const logName = eventLogPath(mainDb);
  const rank = (name: string) => (name === mainDb ? 0 : name === logName ? 1 : 2);
  const files = names
    .map((name) => ({ name, sqlite: isSqlite(join(dataDir, name)) }))
    .sort(
      (a, b) =>
        rank(a.name) - rank(b.name) || Number(b.sqlite) - Number(a.sqlite) || (a.name < b.name ? -1 : 1),
    );

  mkdirSync(targetDir, { recursive: true });
  const taken = files.filter((f) => statSync(join(targetDir, f.name), { throwIfNoEntry: false }));
  if (taken.length)
    throw new BackupError(
      `${targetDir} already holds ${taken.map((f) => f.name).join(", ")}; back up into a new directory`,
    );

  // Each copy is written under a .partial name and renamed when complete, so a backup directory
  // never holds a half-written database under its real name.
  const written: BackedUpFile[] = [];
  try {
    for (const f of files) {
      const source = join(dataDir, f.name);
      const path = join(targetDir, f.name);
      const partial = path + PARTIAL;
      if (f.sqlite) await backupSqlite(source, partial);
      else await copyFile(source, partial);
      renameSync(partial, path);
      written.push({
        name: f.name,
        path,
        bytes: statSync(path).size,
        kind: f.sqlite ? "sqlite" : "file",
        schemaVersion: f.sqlite ? schemaVersion(path) : null,
      });
    }
  } catch (err) {
    for (const f of files) rmSync(join(targetDir, f.name + PARTIAL), { force: true });
    throw err;
  }
  return written;
}
