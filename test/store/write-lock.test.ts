/**
 * The main database's write lock held by another connection, as the checkpointer thread holds it
 * while a RESTART checkpoint copies the WAL (15-30 ms under load here): the gateway's transactions
 * wait for it and go on, whether they read before they write or not. Before, a transaction that had
 * read first failed at once with SQLITE_BUSY, and a fall's rule step fell behind for a second.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { eventLogPath } from "../../src/store/db.js";
import { isStorageError, storageCode } from "../../src/store/health.js";
import {
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { tempDbs } from "../helpers/tempdb.js";
import { holdWriteLock } from "../helpers/write-lock.js";
import { STAFF, StaffClient } from "../staff/client.js";

const HOLD_MS = 300;
const now = () => performance.timeOrigin + performance.now();

describe("a connection's transactions and a write lock held elsewhere", () => {
  const temp = tempDbs("ata-write-lock-");
  afterEach(() => temp.cleanup());

  const readThenWrite = (db: Database.Database, name: string) =>
    db.transaction(() => {
      db.prepare("SELECT count(*) FROM cursors").pluck().get();
      db.prepare("INSERT INTO cursors (name, position, updated_at) VALUES (?, 1, 1)").run(name);
    })();

  it("a transaction that reads before it writes waits for the main database's lock, then commits", async () => {
    const { db, path } = temp.open({ autoCheckpoint: false });
    const held = await holdWriteLock(path, HOLD_MS);
    readThenWrite(db, "after-the-lock");
    const done = now();
    expect(done).toBeGreaterThanOrEqual(await held.released);
    expect(db.prepare("SELECT name FROM cursors WHERE name = 'after-the-lock'").pluck().get()).toBe(
      "after-the-lock",
    );
    // Nested transactions are savepoints inside the lock already taken.
    db.transaction(() => readThenWrite(db, "nested"))();
    expect(db.prepare("SELECT count(*) FROM cursors WHERE name = 'nested'").pluck().get()).toBe(1);
  });

  it("a plain connection meeting the same lock fails at once: what the gateway's connections no longer do", async () => {
    const { path } = temp.open();
    const plain = temp.track(new Database(path));
    plain.pragma("busy_timeout = 5000");
    const held = await holdWriteLock(path, HOLD_MS);
    const t0 = now();
    let error: unknown;
    try {
      readThenWrite(plain, "refused");
    } catch (err) {
      error = err;
    }
    expect((error as { code?: string }).code).toBe("SQLITE_BUSY");
    expect(now() - t0).toBeLessThan(HOLD_MS / 2); // busy_timeout never applied
    await held.released;
    // Past busy_timeout, a lock is a storage failure: retried like a full disk, never skipped.
    expect(isStorageError(error)).toBe(true);
    expect(storageCode(error)).toBe("SQLITE_BUSY");
  });

  it("takes only the main database's lock: a transaction on it does not wait for the event log's writer", async () => {
    const { db, path } = temp.open({ autoCheckpoint: false });
    const held = await holdWriteLock(eventLogPath(path), HOLD_MS);
    readThenWrite(db, "beside-the-log-writer");
    expect(now()).toBeLessThan(await held.released);
  });
});

describe("the gateway while the checkpointer holds its main database", () => {
  const RADAR = deviceIdFor("ata/native");
  let t: TestGateway;
  let device: MqttClient;
  let anna: StaffClient;

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, RADAR, secretFor("ata/native"));
    anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
  });
  afterAll(async () => {
    await anna?.close();
    device?.end(true);
    await t?.stop();
  });

  it("raises a fall and takes a carer's accept once the lock is let go: no rule batch falls behind, no command fails", async () => {
    const mainDb = join(t.dir, "ata.db");
    const raised = anna.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "fall");

    const held = await holdWriteLock(mainDb, HOLD_MS);
    await publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "locked-fall-1", type: "fall.detected", data: { confidence: 0.9 } }),
    );
    const alert = (await raised).alert;
    const raisedAt = now();
    const releasedAt = await held.released;
    // It waited for the lock (the raise is a write on the main database) and not for a retry: the
    // rules' catch-up after a failed batch comes a second later.
    expect(raisedAt).toBeGreaterThanOrEqual(releasedAt);
    expect(raisedAt - releasedAt).toBeLessThan(500);
    expect(t.gateway.rules.position.behind).toBe(false);

    const heldAgain = await holdWriteLock(mainDb, HOLD_MS);
    const reply = await anna.request({ type: "accept", alertId: alert.id });
    expect(now()).toBeGreaterThanOrEqual(await heldAgain.released);
    expect(reply).toMatchObject({ ok: true, result: { alert: { state: "accepted" } } });

    const metrics = await fetch(`${t.httpUrl}/metrics`).then((r) => r.text());
    expect(metrics).not.toMatch(/ata_storage_write_failures_total\{/);
    expect(metrics).toMatch(/ata_rules_replayed_events_total 0\b/);
  });
});
