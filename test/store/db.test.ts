import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  EVENT_LOG_MIGRATIONS,
  eventLogPath,
  MIGRATIONS,
  migrate,
  NOT_HEARTBEAT,
  openDb,
} from "../../src/store/db.js";
import { applyQuota, deadLetterUsage } from "../../src/store/dead-letter-quota.js";

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

  it("counts the dead letters of a log from before the quotas, and keeps counting whoever inserts or deletes", () => {
    const path = join(dir, "ata.db");
    const old = new Database(path);
    old.prepare("ATTACH DATABASE ? AS log").run(eventLogPath(path));
    migrate(
      old,
      EVENT_LOG_MIGRATIONS.filter((m) => m.version <= 3),
      "log",
    );
    const insert = (o: Database.Database, device: string | null, payload: string) =>
      o
        .prepare(
          `INSERT INTO log.dead_letters (received_at, device_id, topic, code, reason, size, sha256, payload)
           VALUES (1, ?, 't', 'bad_json', 'not JSON', 3, 'abc', ?)`,
        )
        .run(device, Buffer.from(payload));
    insert(old, "d1", "x{}");
    insert(old, "d1", "yy");
    insert(old, null, "z");
    old.close();

    const db = openDb({ path });
    try {
      const perDevice = () =>
        db.prepare("SELECT device_id, letters, bytes FROM dead_letter_usage ORDER BY 1").all();
      // bytes: payload, reason ('not JSON', 8) and topic ('t', 1).
      expect(deadLetterUsage(db)).toMatchObject({
        letters: 3,
        bytes: 12 + 11 + 10,
        dropped: { device: 0, total: 0 },
      });
      expect(perDevice()).toEqual([
        { device_id: "", letters: 1, bytes: 10 },
        { device_id: "d1", letters: 2, bytes: 23 },
      ]);
      // No quota until a gateway sets one: nothing is trimmed.
      expect(deadLetterUsage(db).quota).toEqual({ perDevice: null, total: null, totalBytes: null });
      insert(db, null, "w");
      insert(db, null, "v");
      db.prepare("DELETE FROM dead_letters WHERE payload = ?").run(Buffer.from("yy"));
      expect(perDevice()).toEqual([
        { device_id: "", letters: 3, bytes: 30 },
        { device_id: "d1", letters: 1, bytes: 12 },
      ]);

      // Dead letters without a device are one bucket under the per-device quota.
      expect(applyQuota(db, { perDevice: 2, total: 100, totalBytes: 1 << 20 }, 5)).toEqual({
        device: 1,
        total: 0,
      });
      expect(
        db.prepare("SELECT payload FROM dead_letters WHERE device_id IS NULL ORDER BY id").pluck().all(),
      ).toEqual([Buffer.from("w"), Buffer.from("v")]);
      expect(applyQuota(db, { perDevice: 2, total: 1, totalBytes: 1 << 20 }, 6)).toEqual({
        device: 0,
        total: 2,
      });
      db.prepare("DELETE FROM dead_letters").run();
      expect(perDevice()).toEqual([]);
      expect(deadLetterUsage(db)).toEqual({
        quota: { perDevice: 2, total: 1, totalBytes: 1 << 20 },
        letters: 0,
        bytes: 0,
        dropped: { device: 1, total: 2 },
      });
    } finally {
      db.close();
    }
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
