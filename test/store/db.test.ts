import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventLogPath, MIGRATIONS, NOT_HEARTBEAT, openDb } from "../../src/store/db.js";

describe("the operational database and its event-log file", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ata-db-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps the event log and the dead letters in their own file, reached by unqualified names", () => {
    const path = join(dir, "ata.db");
    const db = openDb({ path });
    db.prepare(
      `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data)
       VALUES ('e1', 'd1', 'fall.detected', 'start', 1, 2, 's', 'u', 'ata/native', '{}')`,
    ).run();
    db.close();

    expect(eventLogPath(path)).toBe(join(dir, "ata-events.db"));
    const main = new Database(path, { readonly: true });
    const log = new Database(eventLogPath(path), { readonly: true });
    try {
      const tables = (d: Database.Database) =>
        (d.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
          (r) => r.name,
        );
      expect(tables(main)).not.toContain("events");
      expect(tables(main)).not.toContain("dead_letters");
      expect(tables(main)).toContain("alerts");
      expect(tables(log)).toEqual(expect.arrayContaining(["events", "dead_letters"]));
      expect(log.prepare("SELECT event_id FROM events").all()).toEqual([{ event_id: "e1" }]);
      expect(log.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      main.close();
      log.close();
    }
  });

  it("moves the event log and dead letters of a database from before the split, keeping seq and ids", () => {
    const path = join(dir, "ata.db");
    const old = openDb({ path, migrations: MIGRATIONS.filter((m) => m.version <= 3) });
    const insert = old.prepare(
      `INSERT INTO main.events (seq, event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data, raw)
       VALUES (?, ?, 'd1', 'device.heartbeat', 'instant', ?, ?, 's', 'u', 'ata/native', '{}', ?)`,
    );
    for (let i = 1; i <= 50; i++) insert.run(i * 2, `e${i}`, i, i, Buffer.from([i]));
    old
      .prepare(
        `INSERT INTO main.dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload)
         VALUES (7, 'd1', 'ata/v1/d1/events', 'decode_failed', 'not JSON', 3, 'abc', ?)`,
      )
      .run(Buffer.from("x{}"));
    old.close();

    const db = openDb({ path });
    try {
      expect(db.prepare("SELECT count(*) AS n, max(seq) AS top FROM events").get()).toEqual({
        n: 50,
        top: 100,
      });
      expect(db.prepare("SELECT raw FROM events WHERE event_id = 'e7'").get()).toEqual({
        raw: Buffer.from([7]),
      });
      expect(db.prepare("SELECT id, code, payload FROM dead_letters").all()).toEqual([
        { id: 1, code: "decode_failed", payload: Buffer.from("x{}") },
      ]);
      expect(
        db
          .prepare("SELECT count(*) AS n FROM main.sqlite_master WHERE name IN ('events', 'dead_letters')")
          .get(),
      ).toEqual({ n: 0 });
      // The next event continues the sequence; the next dead letter continues the ids.
      db.prepare(
        `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data)
         VALUES ('e51', 'd1', 'device.heartbeat', 'instant', 51, 51, 's', 'u', 'ata/native', '{}')`,
      ).run();
      expect(db.prepare("SELECT seq FROM events WHERE event_id = 'e51'").get()).toEqual({ seq: 101 });
      // The dedupe index came along.
      expect(() =>
        db
          .prepare(
            `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data)
             VALUES ('e1', 'd1', 'device.heartbeat', 'instant', 1, 1, 's', 'u', 'ata/native', '{}')`,
          )
          .run(),
      ).toThrow(/UNIQUE/);
    } finally {
      db.close();
    }
    expect(existsSync(join(dir, "ata-events.db"))).toBe(true);
  });

  it("leaves heartbeats out of the per-device and per-resident indexes, which queries for other types use", () => {
    const db = openDb({ path: ":memory:" });
    try {
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[])
          .map((r) => r.detail)
          .join(" | ");
      expect(
        plan(
          `SELECT occurred_at FROM events WHERE device_id = 'd' AND type = 'device.online' AND ${NOT_HEARTBEAT} AND occurred_at < 5`,
        ),
      ).toContain("INDEX events_device_type_time");
      expect(
        plan(
          `SELECT count(*) FROM events ev WHERE ev.resident_ref = 'R-1' AND ev.type IN ('fall.detected') AND ev.${NOT_HEARTBEAT} AND ev.occurred_at >= 1`,
        ),
      ).toContain("INDEX events_resident_type_time");
      const insert = db.prepare(
        `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, resident_ref, profile, data)
         VALUES (?, 'd1', ?, 'point', 1, 1, 's', 'u', 'R-1', 'ata/native', '{}')`,
      );
      insert.run("h1", "device.heartbeat");
      insert.run("f1", "fall.detected");
      // Heartbeats are still logged and deduplicated; they are just not in those two indexes.
      expect(db.prepare("SELECT count(*) AS n FROM events").get()).toEqual({ n: 2 });
      expect(
        db
          .prepare(
            "SELECT count(*) AS n FROM events INDEXED BY events_device_type_time WHERE type <> 'device.heartbeat'",
          )
          .get(),
      ).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it("keeps an in-memory database in memory, event log included", () => {
    const db = openDb({ path: ":memory:" });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM events").get()).toEqual({ n: 0 });
      expect(db.prepare("SELECT file FROM pragma_database_list WHERE name = 'log'").get()).toEqual({
        file: "",
      });
    } finally {
      db.close();
    }
  });
});
