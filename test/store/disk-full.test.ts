/**
 * A full disk never crashes the gateway: its data directory is a small tmpfs, filled up while the
 * gateway runs (a child process, real MQTT and staff WebSocket clients) and freed again. Mounting
 * needs root (or CAP_SYS_ADMIN); where that is not permitted the test is skipped and says why.
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { api, connectDevice, eventually } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { STAFF, StaffClient } from "../staff/client.js";

/** Null when a tmpfs can be mounted here, otherwise why not. */
function mountProblem(): string | null {
  const probe = mkdtempSync(join(tmpdir(), "ata-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], { stdio: "pipe" });
    execFileSync("umount", [probe], { stdio: "pipe" });
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${e.stderr?.toString().trim() || e.message}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const PROBLEM = mountProblem();
if (PROBLEM) console.warn(`disk-full test skipped: ${PROBLEM}`);

const ADMIN = "disk-admin-token-0123456789";
const DEVICE = { id: "radar-1", secret: "radar-1-secret-0123456789" };
const RULES = `
escalation:
  high:
    - { to: [unit], after: 10m }
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

/** Publish one fall; resolves with whether it got its PUBACK (false: refused, connection closed). */
async function publishFall(gw: GatewayProcess, n: number, padding = 0): Promise<boolean> {
  let client: MqttClient;
  try {
    client = await connectDevice(gw.mqtt, DEVICE.id, DEVICE.secret);
  } catch {
    return false;
  }
  client.on("error", () => {});
  const acked = await new Promise<boolean>((resolve) => {
    client.once("close", () => resolve(false));
    client.publish(
      deviceTopic(DEVICE.id, "events"),
      JSON.stringify({
        eventId: `fall-${n}`,
        type: "fall.detected",
        data: { confidence: 0.9, ...(padding ? { note: "x".repeat(padding) } : {}) },
      }),
      { qos: 1 },
      (err) => resolve(!err),
    );
  });
  client.end(true);
  return acked;
}

function fill(path: string): void {
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 20, 1 << 12, 1 << 9]) {
      const chunk = Buffer.alloc(size);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe("a full disk never crashes the gateway", () => {
  const base = mkdtempSync(join(tmpdir(), "ata-disk-"));
  const dataDir = join(base, "data");
  let mounted = false;
  let gw: GatewayProcess | null = null;
  const clients: StaffClient[] = [];

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    if (gw && gw.child.exitCode === null) await gw.kill9();
    if (mounted) execFileSync("umount", [dataDir]);
    rmSync(base, { recursive: true, force: true });
  });

  it.skipIf(PROBLEM !== null)(
    "a filled data directory refuses publishes and says so on /readyz, staff keep their alerts, and it recovers when space returns",
    async () => {
      mkdirSync(dataDir);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", dataDir]);
      mounted = true;
      const rulesFile = join(base, "rules.yaml");
      writeFileSync(rulesFile, RULES);
      const configPath = writeConfig(base, {
        dataDir,
        rulesFile,
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, maxPayloadBytes: 8192 },
        http: { host: "127.0.0.1", port: 0, adminToken: ADMIN },
        sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }],
        residents: [{ ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1", flags: [] }],
        devices: [
          {
            ...DEVICE,
            profile: "ata/native",
            site: "home-a",
            unit: "unit-1",
            room: "r1",
            resident: "R-0001",
          },
        ],
        staff: [STAFF.anna, STAFF.bo],
      });
      gw = await spawnGateway(configPath);
      const url = `http://127.0.0.1:${gw.http}`;
      const anna = await StaffClient.connect(url, STAFF.anna.token);
      clients.push(anna);

      // Before: a fall raises an alert that Anna sees.
      expect(await publishFall(gw, 0)).toBe(true);
      const raised = await anna.change(null, "raised");
      const alertId = raised.alert.id as string;
      expect((await api(url, "GET", "/readyz", undefined, null)).status).toBe(200);

      // Full: nothing left on the data directory's filesystem.
      const filler = join(dataDir, "filler");
      fill(filler);
      const fullSince = Date.now();
      // SQLite may still reuse WAL pages it already has; the log grows with every fall's raw
      // payload until a commit needs a page the disk does not have.
      let n = 1;
      let refused = false;
      while (!refused && Date.now() - fullSince < 20_000) refused = !(await publishFall(gw, n++, 3000));
      expect(refused, "a publish was refused (no PUBACK) once the disk was full").toBe(true);

      const ready = await eventually(async () => {
        const r = await api(url, "GET", "/readyz", undefined, null);
        return r.status === 503 ? r : null;
      }, 5000);
      const disk = ready!.body.checks.find((c: { name: string }) => c.name === "disk");
      expect(disk.ok).toBe(false);
      expect(disk.detail.reason).toMatch(/storage refuses writes/);
      expect(disk.detail.code).toMatch(/^SQLITE_(FULL|IOERR)/);

      // Staff keep what needs no write: Anna's socket stays up and answers, and Bo, connecting now,
      // gets the alert from before in his snapshot. (Re-notifications are channel attempts, which
      // are recorded before they are made; whether one can be recorded while the disk is full
      // depends on the pages SQLite's WAL already has, so they are not asserted here.)
      expect(anna.closed).toBeNull();
      const pong = anna.next((m) => m.type === "pong" && m.id === "while-full");
      anna.send({ type: "ping", id: "while-full" });
      await pong;
      const bo = await StaffClient.connect(url, STAFF.bo.token);
      clients.push(bo);
      const snapshot = bo.messages.find((m) => m.type === "snapshot");
      expect(snapshot.alerts.map((a: { id: string }) => a.id)).toContain(alertId);

      // Still refused, and still alive after a presence supervision pass (every 5 s) wrote, or
      // failed to write, the device states the connects above changed.
      await eventually(() => Date.now() - fullSince > 6000, 10_000, 100);
      expect(await publishFall(gw, n++, 3000)).toBe(false);
      expect(gw.child.exitCode).toBeNull();
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(
        /ata_storage_write_failures_total\{component="ingest",code="SQLITE_FULL"\} [1-9]/,
      );

      // Freed: ready again without a restart, publishes acknowledged, new falls alerted.
      unlinkSync(filler);
      await eventually(
        async () => (await api(url, "GET", "/readyz", undefined, null)).status === 200,
        10_000,
      );
      const next = n++;
      expect(await publishFall(gw, next)).toBe(true);
      const updated = await anna.change(alertId, "updated", 5000);
      expect(updated.alert.count).toBeGreaterThan(1);
      expect(gw.child.exitCode).toBeNull();

      // Every fall that reached the log before, during or after the outage has exactly one effect.
      const db = new Database(join(dataDir, "ata.db"), { readonly: true });
      try {
        db.prepare("ATTACH DATABASE ? AS log").run(join(dataDir, "ata-events.db"));
        const rows = db
          .prepare(
            `SELECT e.event_id, (SELECT count(*) FROM alert_audit a WHERE a.data IS NOT NULL
                AND json_extract(a.data, '$.eventSeq') = e.seq) AS effects
             FROM log.events e WHERE e.type = 'fall.detected'`,
          )
          .all() as { event_id: string; effects: number }[];
        expect(rows.map((r) => r.event_id)).toContain(`fall-${next}`);
        expect(rows.filter((r) => r.effects !== 1)).toEqual([]);
      } finally {
        db.close();
      }
      console.log(
        `disk-full test: ${n - 1} publishes tried, storage failures: ${metrics
          .split("\n")
          .filter((l) => l.startsWith("ata_storage_write_failures_total{"))
          .join("; ")}`,
      );
      expect(await gw.stop()).toBe(0);
      gw = null;
    },
    60_000,
  );
});
