import { statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { Checkpointer } from "../../src/store/checkpointer.js";
import { eventLogPath, openDb, WAL_SIZE_LIMIT } from "../../src/store/db.js";
import { tempDbs } from "../helpers/tempdb.js";

describe("WAL checkpoints on their own thread", () => {
  const temp = tempDbs("ata-checkpointer-");
  afterEach(() => temp.cleanup());

  it("the gateway's connection never checkpoints in a commit; the thread does, past the threshold", async () => {
    const { db, path, dir } = temp.open({ synchronous: "NORMAL", autoCheckpoint: false });
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    const other = temp.track(openDb({ path: join(dir, "other.db") }));
    expect(other.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);

    // ~2 MiB through the WAL with nobody checkpointing: it only grows.
    const insert = db.prepare("INSERT INTO cursors (name, position, updated_at) VALUES (?, 1, 1)");
    const rows = () => db.prepare("SELECT count(*) FROM cursors").pluck().get() as number;
    const before = rows();
    const pad = "x".repeat(2000);
    db.transaction(() => {
      for (let i = 0; i < 1000; i++) insert.run(`${pad}-${i}`);
    })();
    const grown = statSync(`${path}-wal`).size;
    expect(grown).toBeGreaterThan(1 << 20);

    const metrics = new Metrics({ defaultMetrics: false });
    const c = new Checkpointer(
      { paths: [path, eventLogPath(path)], intervalMs: 50, minWalBytes: 1 << 20 },
      silentLogger(),
      metrics,
    );
    const deadline = Date.now() + 5000;
    while (c.stats.checkpoints === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(c.stats.checkpoints).toBeGreaterThanOrEqual(1);
    // The pages are in the database file now: the next writer starts the WAL from its beginning.
    insert.run("after");
    expect(statSync(`${path}-wal`).size).toBe(grown);
    expect(rows()).toBe(before + 1001);
    await c.close();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/ata_wal_checkpoint_seconds_count [1-9]/);
    // Its own thread, named for per-thread CPU accounting (Linux only).
    if (process.platform === "linux")
      expect(text).toMatch(/ata_thread_info\{thread="checkpointer",tid="\d+"\} 1/);
  });
});

describe("a WAL past its ceiling", () => {
  const temp = tempDbs("ata-checkpointer-ceiling-");
  afterEach(() => temp.cleanup());

  /** 150 commits of 64 KiB: about 10 MiB of WAL, with nobody checkpointing; `before` runs first. */
  function grow(before?: (path: string) => void): { path: string; insert: Database.Statement } {
    const { db, path } = temp.open({ autoCheckpoint: false });
    before?.(path);
    const insert = db.prepare("INSERT OR REPLACE INTO cursors (name, position, updated_at) VALUES (?, 1, 1)");
    const blob = "y".repeat(64 * 1024);
    db.transaction(() => {
      for (let i = 0; i < 150; i++) insert.run(`${blob}${i}`);
    })();
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(8 << 20);
    return { path, insert };
  }

  async function firstCheckpoint(c: Checkpointer): Promise<void> {
    const deadline = Date.now() + 5000;
    while (c.stats.checkpoints === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(c.stats.checkpoints).toBeGreaterThanOrEqual(1);
  }

  it("copied whole by PASSIVE passes, starts over at the next commit: nobody is held by a RESTART", async () => {
    const { path, insert } = grow();
    const c = new Checkpointer(
      { paths: [path], intervalMs: 500, minWalBytes: 1 << 20, maxWalBytes: 4 << 20 },
      silentLogger(),
    );
    await firstCheckpoint(c);
    const grown = statSync(`${path}-wal`).size;
    insert.run("after"); // starts the WAL over, cut back to journal_size_limit, instead of appending
    expect(c.stats.restarts).toBe(0);
    expect(statSync(`${path}-wal`).size).toBeLessThan(grown);
    expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(WAL_SIZE_LIMIT);
    await c.close();
  }, 30_000);

  it("that PASSIVE cannot copy whole (a reader on an old snapshot) is checkpointed with RESTART, which waits for the reader", async () => {
    // A writer committing without pause never lets PASSIVE back-fill the whole WAL, so it never
    // starts over (2.6 GB in 60 s under the flood benchmark); a reader on an old snapshot does the same.
    let reader!: Database.Database;
    const { path } = grow((p) => {
      reader = temp.track(new Database(p));
      reader.exec("BEGIN");
      reader.prepare("SELECT count(*) FROM cursors").get();
    });
    const c = new Checkpointer(
      { paths: [path], intervalMs: 20, minWalBytes: 1 << 20, maxWalBytes: 4 << 20 },
      silentLogger(),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(c.stats.restarts).toBe(0); // waiting for the reader
    reader.exec("COMMIT");
    await firstCheckpoint(c);
    await c.close();
    expect(c.stats.restarts).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("copied whole and idle (no commit to start it over) is left alone, pass after pass", async () => {
    const { path } = grow();
    const c = new Checkpointer(
      { paths: [path], intervalMs: 20, minWalBytes: 1 << 20, maxWalBytes: 4 << 20 },
      silentLogger(),
    );
    const deadline = Date.now() + 5000;
    while (c.stats.checkpoints < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(c.stats.checkpoints).toBeGreaterThanOrEqual(4);
    await c.close();
    expect(c.stats.restarts).toBe(0);
  }, 30_000);

  it("copied whole, then grown by a commit that a reader kept from starting it over, gets RESTART at the next pass", async () => {
    // The reader takes its snapshot with frames in the WAL, so it holds a read mark on it: the first
    // pass still copies everything (nothing was committed after the snapshot), but the commit after
    // it must append instead of starting the WAL over. The reader has ended by the next pass, which
    // copies the WAL whole again: only the WAL's growth since says it did not start over.
    const { path, insert } = grow();
    const reader = temp.track(new Database(path));
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM cursors").get();
    const c = new Checkpointer(
      { paths: [path], intervalMs: 300, minWalBytes: 1 << 20, maxWalBytes: 4 << 20 },
      silentLogger(),
    );
    await firstCheckpoint(c);
    expect(c.stats.restarts).toBe(0);
    const before = statSync(`${path}-wal`).size;
    insert.run("pinned");
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(before); // appended: not started over
    reader.exec("COMMIT");
    const deadline = Date.now() + 5000;
    while (c.stats.checkpoints < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await c.close();
    expect(c.stats.restarts).toBe(1);
  }, 30_000);

  it("below the ceiling is left to PASSIVE", async () => {
    const { path } = grow();
    const c = new Checkpointer(
      { paths: [path], intervalMs: 20, minWalBytes: 1 << 20, maxWalBytes: 64 << 20 },
      silentLogger(),
    );
    await firstCheckpoint(c);
    await c.close();
    expect(c.stats.restarts).toBe(0);
  }, 30_000);
});
