import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { RULES_CURSOR } from "../../src/rules/engine.js";
import { openDb } from "../../src/store/db.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
} from "../helpers/gateway.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
const DEVICE = deviceIdFor("ata/native");
const TOPIC = `ata/v1/${DEVICE}/events`;

describe("ata backup", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-backup-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("copies a running gateway's databases while a device publishes: every event acknowledged before it is in the copy, the cursors stay inside the copied log, and a gateway starts on the copy", async () => {
    const dataDir = join(dir, "data");
    const backupDir = join(dir, "backup");
    const t = await startGateway({ dir: dataDir, keepDir: true });
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir,
        sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }],
      }),
    );
    const ata = (...args: string[]) =>
      run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], { cwd: ROOT });

    const device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    let stdout: string;
    let ackedDuring: number;
    const before: string[] = [];
    const live: string[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const eventId = `before-${i}`;
        await publish(device, TOPIC, JSON.stringify({ eventId, type: "call.manual", data: {} }));
        before.push(eventId);
      }
      // Both readers have written their cursors once (the sink persists its own on a timer, which a
      // loaded machine delays), so the copy has the two whose bounds are checked below.
      await eventually(
        () =>
          t.gateway.db
            .prepare("SELECT count(*) FROM cursors WHERE name = ? OR name LIKE 'sink:events@%'")
            .pluck()
            .get(RULES_CURSOR) === 2,
      );
      // A device keeps publishing (and the rules and the sink keep moving their cursors) for the
      // whole backup, so the copy is taken from databases being written.
      let publishing = true;
      const publisher = (async () => {
        for (let i = 0; publishing; i++) {
          const eventId = `live-${i}`;
          await publish(
            device,
            TOPIC,
            JSON.stringify({ eventId, type: "device.heartbeat", data: { battery: 80 } }),
          );
          live.push(eventId);
        }
      })();
      const ackedAtStart = live.length;
      try {
        ({ stdout } = await ata("backup", backupDir));
      } finally {
        ackedDuring = live.length - ackedAtStart;
        publishing = false;
        await publisher;
      }
    } finally {
      device.end(true);
      await t.stop();
    }

    expect(ackedDuring).toBeGreaterThan(0);
    expect(stdout).toMatch(/ata\.db\t\d+ B\tSQLite online backup\tschema version \d+/);
    expect(stdout).toMatch(/ata-events\.db\t\d+ B\tSQLite online backup\tschema version \d+/);
    expect(stdout).toMatch(/backed up \d+ files of .* to /);
    // No WAL or shared-memory file in the backup: each copy is a whole database on its own.
    expect(readdirSync(backupDir).filter((n) => /-(wal|shm)$/.test(n))).toEqual([]);
    // Every other file of the data directory (the staff-token key, when it is a file) is copied too.
    const others = readdirSync(dataDir).filter((n) => !/\.db(-wal|-shm)?$/.test(n));
    for (const name of others)
      expect(statSync(join(backupDir, name)).mode).toBe(statSync(join(dataDir, name)).mode);

    for (const name of ["ata.db", "ata-events.db"]) {
      const raw = new Database(join(backupDir, name), { readonly: true });
      try {
        expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
      } finally {
        raw.close();
      }
    }
    const copy = openDb({ path: join(backupDir, "ata.db") });
    try {
      const ids = new Set(
        (
          copy.prepare("SELECT event_id FROM events WHERE device_id = ?").all(DEVICE) as {
            event_id: string;
          }[]
        ).map((r) => r.event_id),
      );
      for (const id of before) expect(ids.has(id)).toBe(true);
      // Main first, then the log: what the main copy's cursors have read is all in the log copy.
      const top = (copy.prepare("SELECT coalesce(max(seq), 0) AS top FROM events").get() as { top: number })
        .top;
      const cursors = copy
        .prepare("SELECT name, position FROM cursors WHERE name = ? OR name LIKE 'sink:events@%'")
        .all(RULES_CURSOR) as { name: string; position: number }[];
      // The rules' cursor and the sink's (per store: sink:events@embedded).
      expect(cursors.length).toBe(2);
      for (const c of cursors) expect(c.position).toBeLessThanOrEqual(top);
    } finally {
      copy.close();
    }

    // A restore is the files put back where a gateway looks for them.
    const restored = await startGateway({ dir: backupDir, keepDir: true });
    try {
      const n = restored.gateway.db
        .prepare("SELECT count(*) AS n FROM events WHERE event_id LIKE 'before-%'")
        .get() as { n: number };
      expect(n.n).toBe(before.length);
    } finally {
      await restored.stop();
    }

    // A second backup into the same directory would mix two moments: refused, naming the files.
    const again = await ata("backup", backupDir).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(again?.code).toBe(2);
    expect(again?.stderr).toMatch(/already holds ata\.db, ata-events\.db.*new directory/);
  }, 60_000);
});
