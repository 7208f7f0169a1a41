/**
 * Timers survive restarts: the gateway runs as a child process, is killed (or stopped) in the
 * middle of an escalation delay and of an absence window, and comes back on the same data
 * directory. Short durations from a custom rule file keep the real waits to seconds; the effects
 * are observed over the HTTP API.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { api, connectDevice, eventually, publish } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { STAFF, StaffClient } from "../staff/client.js";

// Long enough that a kill and restart land inside the windows while the rest of the suite runs
// beside this file (a restart has taken over 6 s then).
const DELAY_MS = 9000;
const DEVICE = { id: "radar-1", secret: "radar-1-secret-0123456789" };
const TOLERANCE_MS = 750;

const RULES = `
escalation:
  high:
    - { to: [unit], after: 9s }
    - { to: [unit, nurse], after: 9s }
    - { to: [site, fallback], after: 60s }
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
  - id: bed-exit
    when: { event: bed.exit, residentFlags: [fall-risk] }
    raise:
      alert: bed-exit
      priority: medium
      message: { da: "Ikke tilbage i sengen", en: "Not back in bed" }
      unless: { event: bed.return, within: 9s }
  - id: bed-return
    when: { event: bed.return }
    resolve: { alert: bed-exit }
`;

interface Audit {
  action: string;
  at: string;
  reason: string | null;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "ata-restart-"));
  const rulesFile = join(dir, "rules.yaml");
  writeFileSync(rulesFile, RULES);
  const configPath = writeConfig(dir, {
    dataDir: join(dir, "data"),
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
    http: { host: "127.0.0.1", port: 0, adminToken: "restart-admin-token-0123456789" },
    rulesFile,
    sites: [
      {
        id: "home-a",
        name: "Home A",
        timeZone: "Europe/Copenhagen",
        units: [{ id: "unit-1", name: "Unit 1" }],
      },
    ],
    residents: [{ ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1", flags: ["fall-risk"] }],
    devices: [
      { ...DEVICE, profile: "ata/native", site: "home-a", unit: "unit-1", room: "r1", resident: "R-0001" },
    ],
    staff: [STAFF.anna],
  });
  return { dir, configPath };
}

const ADMIN = "restart-admin-token-0123456789";
const url = (gw: GatewayProcess) => `http://127.0.0.1:${gw.http}`;
const alerts = async (gw: GatewayProcess) =>
  (await api(url(gw), "GET", "/api/v1/alerts", undefined, ADMIN)).body.alerts as {
    id: string;
    type: string;
    state: string;
    level: number;
    raisedAt: string;
    count: number;
  }[];
const history = async (gw: GatewayProcess, id: string) =>
  (await api(url(gw), "GET", `/api/v1/alerts/${id}`, undefined, ADMIN)).body.history as Audit[];

/** Publish one native event and return the window in which the gateway received it. */
async function emit(gw: GatewayProcess, type: string, eventId: string) {
  const device = await connectDevice(gw.mqtt, DEVICE.id, DEVICE.secret);
  const before = Date.now();
  await publish(device, deviceTopic(DEVICE.id, "events"), JSON.stringify({ eventId, type, data: {} }));
  const after = Date.now();
  device.end(true);
  return { before, after };
}

describe("durable timers across a restart", () => {
  const dirs: string[] = [];
  const running: GatewayProcess[] = [];
  afterAll(async () => {
    for (const gw of running) if (gw.child.exitCode === null) await gw.kill9();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const spawn = async (configPath: string) => {
    const gw = await spawnGateway(configPath);
    running.push(gw);
    return gw;
  };

  it("an escalation delay and an absence window armed before kill -9 fire on time after the restart; open alerts are intact", async () => {
    const { dir, configPath } = setup();
    dirs.push(dir);
    let gw = await spawn(configPath);
    let anna = await StaffClient.connect(url(gw), STAFF.anna.token);
    const fall = await emit(gw, "fall.detected", "f-1");
    const exit = await emit(gw, "bed.exit", "b-1");
    const [before] = await alerts(gw);
    expect(before).toMatchObject({ type: "fall", state: "raised", level: 0 });
    const raisedAt = Date.parse(before!.raisedAt);
    expect(raisedAt).toBeGreaterThanOrEqual(fall.before);

    await gw.kill9();
    await anna.close();
    gw = await spawn(configPath);
    // The restart must land inside both windows for this test to mean anything.
    expect(Date.now()).toBeLessThan(Math.min(raisedAt, exit.before) + DELAY_MS);
    anna = await StaffClient.connect(url(gw), STAFF.anna.token);
    const snapshot = anna.messages.find((m) => m.type === "snapshot");
    expect(snapshot.alerts).toEqual([before]);

    // The escalation step fires DELAY_MS after the raise, not after the restart.
    const escalated = (await eventually(
      async () => (await history(gw, before!.id)).find((h) => h.action === "escalated"),
      DELAY_MS + 5000,
      50,
    ))!;
    expect(escalated.reason).toBe("not accepted in time");
    expect(Date.parse(escalated.at) - raisedAt).toBeGreaterThanOrEqual(DELAY_MS);
    expect(Date.parse(escalated.at) - raisedAt).toBeLessThan(DELAY_MS + TOLERANCE_MS);

    // The absence window: raised DELAY_MS after the exit was received.
    const bedExit = (await eventually(
      async () => (await alerts(gw)).find((a) => a.type === "bed-exit"),
      DELAY_MS + 5000,
      50,
    ))!;
    expect(Date.parse(bedExit.raisedAt)).toBeGreaterThanOrEqual(exit.before + DELAY_MS);
    expect(Date.parse(bedExit.raisedAt)).toBeLessThan(exit.after + DELAY_MS + TOLERANCE_MS);

    // The fall is the same alert, now one level up, and still Anna's to take.
    const after = (await alerts(gw)).find((a) => a.id === before!.id);
    expect(after).toMatchObject({ ...before, level: 1, updatedAt: expect.any(String) });
    expect(await anna.request({ type: "accept", alertId: before!.id })).toMatchObject({ ok: true });
    await anna.close();
    expect(await gw.stop()).toBe(0);
  }, 60_000);

  it("timers that fell due while the gateway was down fire at start, before it accepts connections", async () => {
    const { dir, configPath } = setup();
    dirs.push(dir);
    const gw = await spawn(configPath);
    const anna = await StaffClient.connect(url(gw), STAFF.anna.token);
    await emit(gw, "fall.detected", "f-1");
    const exit = await emit(gw, "bed.exit", "b-1");
    const [fall] = await alerts(gw);
    expect(fall).toMatchObject({ level: 0 });
    // Killed with Anna still connected: had she left first, the alert would have escalated at once
    // for want of a recipient, which is right but not what this test is about.
    await gw.kill9();
    await anna.close();

    // Stay down past both deadlines: this wait is the scenario, not a synchronisation.
    const due = Math.max(Date.parse(fall!.raisedAt), exit.after) + DELAY_MS;
    await new Promise((r) => setTimeout(r, due - Date.now() + 500));
    const started = Date.now();
    const again = await spawn(configPath);
    const ready = Date.now();

    const fallHistory = await history(again, fall!.id);
    const firstEscalation = fallHistory.find((h) => h.action === "escalated")!;
    expect(firstEscalation.reason).toBe("not accepted in time");
    expect(Date.parse(firstEscalation.at)).toBeGreaterThanOrEqual(started);
    expect(Date.parse(firstEscalation.at)).toBeLessThanOrEqual(ready);
    const bedExit = (await alerts(again)).find((a) => a.type === "bed-exit")!;
    expect(bedExit).toMatchObject({ state: "raised" });
    expect(Date.parse(bedExit.raisedAt)).toBeGreaterThanOrEqual(started);
    expect(Date.parse(bedExit.raisedAt)).toBeLessThanOrEqual(ready);
    expect(await again.stop()).toBe(0);
  }, 60_000);

  it("a bed return after the restart cancels the absence window armed before it", async () => {
    const { dir, configPath } = setup();
    dirs.push(dir);
    let gw = await spawn(configPath);
    const exit = await emit(gw, "bed.exit", "b-1");
    await gw.kill9();
    gw = await spawn(configPath);
    await emit(gw, "bed.return", "r-1");
    expect(Date.now()).toBeLessThan(exit.before + DELAY_MS);
    expect(await gw.stop()).toBe(0);
    // The window is gone from the database, so no later start can fire it.
    const db = new Database(join(dir, "data", "ata.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT id FROM timers WHERE kind = 'absence'").all()).toEqual([]);
      expect(db.prepare("SELECT id FROM alerts").all()).toEqual([]);
    } finally {
      db.close();
    }
  }, 60_000);
});
