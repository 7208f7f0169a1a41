import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import type { SimTime } from "../../src/sim/encoders.js";
import { type EventSource, NursingHomeModel, RateModel, type SimEvent } from "../../src/sim/model.js";
import { type RunnerStats, runSimulation, SimRunner } from "../../src/sim/runner.js";
import { deviceIdFor, eventually, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";

const TZ = "Europe/Copenhagen";
const START = Date.UTC(2025, 2, 3, 12);
const DAY_SEC = 86400;

describe("simulation runner against a real gateway", () => {
  let t: TestGateway;
  let url: string;
  const devices = PROFILES.map((p) => ({
    id: deviceIdFor(p.id),
    profile: p.id,
    secret: secretFor(p.id),
    timeZone: TZ,
  }));

  beforeAll(async () => {
    // The runner plays a simulated day per device in about a second, far past the per-device
    // publish rate a real device is held to: lifted here, as the demo lifts it.
    t = await startGateway({ overrides: { ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } } } });
    url = `mqtt://127.0.0.1:${t.mqttPort}`;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const rows = (from: number, to: number) =>
    t.gateway.db
      .prepare(
        "SELECT type, device_id, occurred_at FROM events WHERE occurred_at >= ? AND occurred_at < ? AND type NOT IN ('device.online', 'device.offline')",
      )
      .all(from, to) as { type: string; device_id: string; occurred_at: number }[];

  it("plays a simulated day at a day per second: every publish acknowledged, none rejected, all logged", async () => {
    const model = new NursingHomeModel({
      sites: [{ id: "home-a", timeZone: TZ }],
      residents: [{ ref: "R-0001", siteId: "home-a", unitId: "unit-1", roomId: "r1", flags: ["fall-risk"] }],
      devices: devices.map((d) => ({
        id: d.id,
        profile: d.profile,
        siteId: "home-a",
        unitId: "unit-1",
        roomId: "r1",
        residentRef: "R-0001",
      })),
      seed: "runner",
      start: START,
      durationSec: DAY_SEC,
      // A busy day for one resident, so that a single simulated day shows every kind of event.
      params: {
        fallsPerBedYear: 365 * 4,
        cancelledFallsPerSensorWeek: 14,
        bedExitsPerNight: 6,
        callsPerResidentDay: 12,
        liftTransfersPerResidentDay: 8,
      },
    });
    const progress: RunnerStats[] = [];
    const stats = await runSimulation({
      url,
      devices,
      source: model,
      speed: DAY_SEC, // one simulated day per real second
      progress: (s) => progress.push(s),
      progressIntervalMs: 200,
    });

    expect(stats.sent).toBeGreaterThan(6 * 1440);
    expect(stats.acknowledged).toBe(stats.sent);
    expect(stats.rejected).toBe(0);
    expect(stats.failed).toBe(0);
    expect(stats.done).toBe(true);
    expect(stats.simTime).toBeGreaterThanOrEqual(START + DAY_SEC * 1000 - 60_000);
    expect(progress.at(-1)?.done).toBe(true);
    expect(stats.latencyMs.p99).toBeGreaterThan(0);

    // Every acknowledged publish is one logged event (no battery is low yet), at its simulated time,
    // except the VS373's (local time without an offset) and the Vayyar state report (no time at
    // all): for those the gateway clock stands in.
    const milesight = deviceIdFor("milesight/vs373");
    const vayyar = deviceIdFor("vayyar/care");
    const gatewayClock = (r: { type: string; device_id: string }) =>
      r.device_id === milesight || (r.device_id === vayyar && r.type === "device.heartbeat");
    const all = t.gateway.db
      .prepare(
        "SELECT type, device_id, occurred_at FROM events WHERE type NOT IN ('device.online', 'device.offline')",
      )
      .all() as { type: string; device_id: string; occurred_at: number }[];
    expect(all.length).toBe(stats.sent);
    const logged = rows(START, START + DAY_SEC * 1000);
    expect(logged.filter((r) => !gatewayClock(r)).length).toBe(all.filter((r) => !gatewayClock(r)).length);
    const types = new Set(all.map((r) => `${r.device_id} ${r.type}`));
    for (const type of [
      "fall.detected",
      "fall.confirmed",
      "fall.ended",
      "fall.suspected",
      "fall.cancelled",
    ]) {
      expect(types).toContain(`${vayyar} ${type}`);
    }
    for (const id of devices.map((d) => d.id))
      if (id !== milesight) expect(types).toContain(`${id} device.heartbeat`);
    expect(types).toContain(`${vayyar} bed.exit`);
    expect(types).toContain(`${vayyar} bed.return`);
    expect(types).toContain(`${deviceIdFor("scaip/bed-mat")} bed.return`);
    expect(types).toContain(`${deviceIdFor("generic/ceiling-lift")} lift.cycle`);
    const fromMilesight = new Set(all.filter((r) => r.device_id === milesight).map((r) => r.type));
    expect(fromMilesight).toContain("device.heartbeat");
    expect(fromMilesight).toContain("fall.suspected");
    const calls = [...types].filter((x) => x.endsWith(" call.manual"));
    expect(calls.length).toBeGreaterThan(0);

    // stop() closed every client.
    await eventually(() => t.gateway.broker.aedes.connectedClients === 0);
  });

  it("generates load at a set rate over a mix of profiles", async () => {
    const source = new RateModel({
      devices,
      eventsPerSec: 1000,
      speed: 1,
      start: START + 10 * DAY_SEC * 1000,
      durationSec: 1,
      seed: "load",
    });
    const t0 = performance.now();
    const stats = await runSimulation({ url, devices, source, speed: 1, inFlight: 8 });
    const seconds = (performance.now() - t0) / 1000;
    expect(stats.sent).toBe(1000);
    expect(stats.acknowledged).toBe(1000);
    expect(stats.rejected).toBe(0);
    // Paced, not flooded: a thousand events at 1000/s take about a second.
    expect(seconds).toBeGreaterThan(0.8);
    expect(Object.keys(stats.sentByKind)).toEqual(
      expect.arrayContaining(["heartbeat", "call.manual", "lift.cycle"]),
    );
  });

  it("counts a publish the gateway refuses on the device's error topic", async () => {
    // The bed mat's credentials, but speaking as a pendant: its call is not a bed-mat message.
    const mat = deviceIdFor("scaip/bed-mat");
    const one: SimEvent = {
      at: START,
      deviceId: mat,
      profile: "scaip/pendant",
      happening: { kind: "call.manual", at: START, id: "wrong-1", n: 1 },
      incident: null,
    };
    let pending: SimEvent | undefined = one;
    const source: EventSource = {
      start: START,
      end: START + 1000,
      peek: () => pending,
      next: () => {
        const e = pending;
        pending = undefined;
        return e;
      },
    };
    const runner = new SimRunner({
      url,
      devices: [{ id: mat, profile: "scaip/pendant", secret: secretFor("scaip/bed-mat") }],
      source,
      speed: Number.POSITIVE_INFINITY,
    });
    await runner.start();
    await runner.done;
    await eventually(() => runner.stats().rejected === 1);
    const stats = await runner.stop();
    expect(stats).toMatchObject({
      sent: 1,
      acknowledged: 1,
      rejected: 1,
      rejectedByCode: { unsupported: 1 },
    });
  });

  it("refuses to start when a device's credentials are wrong, and leaves no client behind", async () => {
    const source: EventSource = { start: 0 as SimTime, end: 0, peek: () => undefined, next: () => undefined };
    const runner = new SimRunner({
      url,
      devices: [{ id: deviceIdFor("scaip/pendant"), profile: "scaip/pendant", secret: "not-the-secret" }],
      source,
    });
    await expect(runner.start()).rejects.toThrow(/could not connect/);
    await eventually(() => t.gateway.broker.aedes.connectedClients === 0);
  });
});
