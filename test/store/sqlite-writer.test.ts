/**
 * The writer thread's after-commit durability (the event log's): a group is shown once SQLite has
 * written it and answered once an fsync covered it; it numbers the log itself, and a start after a
 * stop that was not clean continues past a gap, so that no position already shown comes back.
 */
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { SqliteWriterThread, type WriterOptions } from "../../src/store/sqlite-writer.js";

const log = silentLogger();

function file(): string {
  const dir = mkdtempSync(join(tmpdir(), "ata-writer-"));
  dirs.push(dir);
  const path = join(dir, "log.db");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.exec(`
    CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE);
    CREATE TABLE writer_state (id INTEGER PRIMARY KEY CHECK (id = 1), clean INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  `);
  db.close();
  return path;
}

const dirs: string[] = [];
const open: SqliteWriterThread[] = [];
afterEach(async () => {
  for (const w of open.splice(0)) await w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function writer(path: string, options: WriterOptions = {}): SqliteWriterThread {
  const w = new SqliteWriterThread(
    path,
    { event: "INSERT OR IGNORE INTO events (event_id, seq) VALUES (?, ?)" },
    log,
    {
      durability: "after-commit",
      sequence: { stmt: "event", column: 1, maxSql: "SELECT max(seq) FROM events" },
      ...options,
    },
  );
  open.push(w);
  return w;
}

const insert = (w: SqliteWriterThread, ids: string[], visible?: (r: (number[] | null)[]) => void) =>
  w.run([{ stmt: "event", rows: ids.map((id) => [id, null]), ids: true }], visible);

/** The thread ends as a killed process's would: no close, no last fsync, writer_state left at 0. */
async function crash(w: SqliteWriterThread): Promise<void> {
  await (w as unknown as { worker: Worker }).worker.terminate();
  open.splice(open.indexOf(w), 1);
}

function seqs(path: string): number[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare("SELECT seq FROM events ORDER BY seq").pluck().all() as number[];
  } finally {
    db.close();
  }
}

describe("writer thread, after-commit durability", () => {
  it("shows a group once it is written, and answers it only once the held fsync has run", async () => {
    const path = file();
    const hold = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(hold, 0, 1);
    const w = writer(path, { holdFsync: hold.buffer as SharedArrayBuffer });
    let shown: (number[] | null)[] | null = null;
    let answered = false;
    const done = insert(w, ["a", "b"], (r) => {
      shown = r;
    }).then((r) => {
      answered = true;
      return r;
    });
    await expect.poll(() => shown, { timeout: 5000 }).toEqual([[1, 2]]);
    // Written: another connection reads it, while the fsync is held and nobody has been answered.
    expect(seqs(path)).toEqual([1, 2]);
    await new Promise((r) => setTimeout(r, 150));
    expect(answered).toBe(false);
    Atomics.store(hold, 0, 0);
    expect(await done).toEqual([[1, 2]]);
  });

  it("never has more than maxUndurable rows shown and not on disk: past it, the fsync comes first", async () => {
    const path = file();
    const hold = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(hold, 0, 1);
    const w = writer(path, { holdFsync: hold.buffer as SharedArrayBuffer, maxUndurable: 3 });
    // Two rows: within the bound, the held background fsync keeps the answer back.
    let firstAnswered = false;
    const first = insert(w, ["a", "b"]).then(() => {
      firstAnswered = true;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(firstAnswered).toBe(false);
    // Two more make four: the writer fsyncs on its own thread before showing them, which covers both.
    expect(await insert(w, ["c", "d"])).toEqual([[3, 4]]);
    await first;
    expect(firstAnswered).toBe(true);
  });

  it("a failed fsync after a group was shown is fatal: its answer is refused and the owner is told", async () => {
    const path = file();
    const hold = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(hold, 0, 1);
    const fatal: Error[] = [];
    const w = writer(path, {
      holdFsync: hold.buffer as SharedArrayBuffer,
      onFatal: (err) => fatal.push(err),
    });
    let shown = false;
    const done = insert(w, ["a"], () => {
      shown = true;
    });
    await expect.poll(() => shown, { timeout: 5000 }).toBe(true);
    // The fsync thread opens the WAL at its first fsync: without the file, that fsync fails.
    unlinkSync(`${path}-wal`);
    Atomics.store(hold, 0, 0);
    await expect(done).rejects.toThrow(/fsync of the WAL failed/);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ code: "ENOENT" });
    // Nothing more is taken: the writer is done.
    await expect(insert(w, ["b"])).rejects.toThrow(/fsync of the WAL failed/);
  });

  it("numbers the log itself: an ignored row takes no number, a rolled-back group gives its numbers back", async () => {
    const path = file();
    const w = writer(path);
    expect(await insert(w, ["a", "b"])).toEqual([[1, 2]]);
    // "a" again is ignored (0) and takes no number; "c" gets the next one.
    expect(await insert(w, ["a", "c"])).toEqual([[0, 3]]);
    // A group that fails after its first row (here a statement the thread does not know) is rolled
    // back whole: "d" is not written, and the number it took is free again.
    await expect(
      w.run([
        { stmt: "event", rows: [["d", null]], ids: true },
        { stmt: "nope", rows: [[]] },
      ]),
    ).rejects.toThrow(/unknown statement/);
    expect(await insert(w, ["e"])).toEqual([[4]]);
    expect(seqs(path)).toEqual([1, 2, 3, 4]);
  });

  it("continues past a gap of maxUndurable after a stop that was not clean, and without one after a clean stop", async () => {
    const path = file();
    const first = writer(path, { maxUndurable: 1000 });
    expect(await insert(first, ["a", "b"])).toEqual([[1, 2]]);
    await crash(first);

    // The numbers 3 .. 1002 may have been shown before a power loss took them back: none is used.
    const second = writer(path, { maxUndurable: 1000 });
    expect(await insert(second, ["c"])).toEqual([[1003]]);
    await second.close();
    open.splice(open.indexOf(second), 1);

    const third = writer(path, { maxUndurable: 1000 });
    expect(await insert(third, ["d"])).toEqual([[1004]]);
    expect(seqs(path)).toEqual([1, 2, 1003, 1004]);
  });

  it("answers at once with commit durability, the default, and numbers nothing itself", async () => {
    const path = file();
    const w = new SqliteWriterThread(
      path,
      { event: "INSERT INTO events (event_id, seq) VALUES (?, ?)" },
      log,
    );
    open.push(w);
    let shown = false;
    expect(
      await w.run([{ stmt: "event", rows: [["a", 7]], ids: true }], () => {
        shown = true;
      }),
    ).toEqual([[7]]);
    expect(shown).toBe(false);
  });
});
