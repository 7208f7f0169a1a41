import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ObserveEnrolments } from "../../src/observe/enrolment.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
  testConfig,
} from "../helpers/gateway.js";

/** A detected fall in the gateway's own format: what the registered ata/native test device turns into an alert. */
const FALL = JSON.stringify({ eventId: "f-obs-1", type: "fall.detected", data: { confidence: 0.93 } });
const NATIVE = deviceIdFor("ata/native");

const refusalCode = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("connected");
    },
    (e: { code?: number }) => e.code,
  );

function countRows(t: TestGateway, sql: string, ...params: unknown[]): number {
  return t.gateway.db
    .prepare(sql)
    .pluck()
    .get(...params) as number;
}

describe("observe mode off (the default)", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway();
  });
  afterAll(() => t.stop());

  it("refuses an unknown device as before, even with an enrolment secret left in the database", async () => {
    // An enrolment from a time observe mode was on: with it off, the secret opens nothing.
    const { secret } = new ObserveEnrolments(t.gateway.db).create({
      siteId: "home-a",
      unitId: "unit-1",
      ttlMs: 3_600_000,
      createdBy: "test",
    });
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-off-1", secret))).toBe(4);
    t.gateway.security.stop(); // flush folded rows
    const rows = t.gateway.security.list({ kinds: ["connect_refused"], limit: 100 });
    // Refused as an unknown id (the security log does not name unregistered ids).
    expect(rows.map((r) => r.detail.reason)).toEqual(["unknown"]);
    expect(countRows(t, "SELECT count(*) FROM observe_devices")).toBe(0);
    t.gateway.security.start();
  });

  it("refuses a device registered with the observe profile while observe mode is off", async () => {
    const added = await api(t.httpUrl, "POST", "/api/v1/devices", {
      id: "vendor-off-2",
      profile: "observe",
      site: "home-a",
      unit: "unit-1",
    });
    expect(added.status).toBe(201);
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-off-2", added.body.secret))).toBe(5);
  });

  it("says nothing about observe mode in /readyz, and refuses to create enrolments", async () => {
    const ready = await api(t.httpUrl, "GET", "/readyz", undefined, null);
    expect(ready.body.warnings).toEqual([]);
    const r = await api(t.httpUrl, "POST", "/api/v1/observe/enrolments", { site: "home-a", unit: "unit-1" });
    expect(r.status).toBe(409);
    expect(r.body.error.message).toMatch(/observe mode is off/);
  });
});

describe("observe mode on", () => {
  let t: TestGateway;
  const clients: MqttClient[] = [];
  const enrol = async (body: Record<string, unknown> = { site: "home-a", unit: "unit-1" }) => {
    const r = await api(t.httpUrl, "POST", "/api/v1/observe/enrolments", body);
    expect(r.status).toBe(201);
    return r.body as { enrolment: { id: string }; secret: string };
  };
  const connect = async (id: string, secret: string) => {
    const c = await connectDevice(t.mqttPort, id, secret);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await startGateway({
      overrides: { observe: { enabled: true, sites: ["home-a"], perDevice: 5, total: 8, ratePerSec: 1000 } },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t.stop();
  });

  it("says so in /readyz and in the security log", async () => {
    const ready = await api(t.httpUrl, "GET", "/readyz", undefined, null);
    expect(ready.status).toBe(200);
    expect(ready.body.warnings).toEqual([expect.stringMatching(/^observe mode is on for sites home-a/)]);
    expect(t.gateway.security.list({ kinds: ["observe_mode_on"], limit: 100 })).toHaveLength(1);
  });

  it("admits an unknown device with an enrolment secret; a fall it sends is kept, never logged, never an alert", async () => {
    const { secret, enrolment } = await enrol();
    expect(secret).toMatch(/^obs_/);
    // The database holds the hash only.
    expect(countRows(t, "SELECT count(*) FROM observe_enrolments WHERE secret_hash = ?", secret)).toBe(0);
    const c = await connect("vendor-x-1", secret);
    await publish(c, "ata/v1/vendor-x-1/events", FALL);
    await publish(c, "ata/v1/vendor-x-1/heartbeat", JSON.stringify({ timestamp: Date.now(), rssi: -61 }));
    await publish(c, "ata/v1/vendor-x-1/raw", Buffer.from([0x01, 0x75, 0x64, 0x00, 0xff]));

    const shown = await api(t.httpUrl, "GET", "/api/v1/observe/vendor-x-1");
    expect(shown.body.device).toMatchObject({
      siteId: "home-a",
      unitId: "unit-1",
      via: "enrolment",
      stored: 3,
    });
    expect(shown.body.channels.map((ch: { channel: string }) => ch.channel)).toEqual([
      "events",
      "heartbeat",
      "raw",
    ]);
    expect(shown.body.samples[0]).toMatchObject({ channel: "raw", size: 5, hex: "01756400ff" });

    // The same bytes from a registered native device are a fall alert: the payload is a real fall.
    const native = await connect(NATIVE, secretFor("ata/native"));
    await publish(native, `ata/v1/${NATIVE}/events`, FALL);
    await eventually(() => countRows(t, "SELECT count(*) FROM alerts WHERE device_id = ?", NATIVE) > 0);
    expect(countRows(t, "SELECT count(*) FROM alerts WHERE device_id = 'vendor-x-1'")).toBe(0);
    expect(countRows(t, "SELECT count(*) FROM events WHERE device_id = 'vendor-x-1'")).toBe(0);
    expect(countRows(t, "SELECT count(*) FROM dead_letters WHERE device_id = 'vendor-x-1'")).toBe(0);

    const admitted = t.gateway.security.list({ kinds: ["observe_admitted"], limit: 100 });
    expect(admitted[0]).toMatchObject({ subject: "vendor-x-1", detail: { enrolment: enrolment.id } });
  });

  it("binds the secret to the first device id: another id cannot use it, the first one reconnects", async () => {
    const { secret } = await enrol();
    const first = await connect("vendor-y-1", secret);
    first.end(true);
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-y-2", secret))).toBe(4);
    t.gateway.security.stop();
    expect(
      t.gateway.security
        .list({ kinds: ["connect_refused"], limit: 100 })
        .some((r) => r.detail.reason === "enrolment_bound"),
    ).toBe(true);
    t.gateway.security.start();
    await connect("vendor-y-1", secret);
    // Publishing outside its own topics is refused like any device's: the connection closes.
    const c = await connect("vendor-y-1", secret);
    const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
    c.publish("ata/v1/vendor-x-1/events", "{}", { qos: 1 });
    await closed;
  });

  it("refuses an expired enrolment and an unknown id without any secret it knows", async () => {
    const { secret } = new ObserveEnrolments(t.gateway.db).create({
      siteId: "home-a",
      unitId: "unit-1",
      ttlMs: -1,
      createdBy: "test",
    });
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-z-1", secret))).toBe(4);
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-z-2", "obs_not-a-real-secret"))).toBe(4);
    // Enrolments are for the sites observe mode is on for.
    const r = await api(t.httpUrl, "POST", "/api/v1/observe/enrolments", { site: "home-b", unit: "unit-9" });
    expect(r.status).toBe(409);
  });

  it("keeps at most perDevice samples per device and total in all, dropping the oldest and counting them", async () => {
    const a = await connect("vendor-q-1", (await enrol()).secret);
    const b = await connect("vendor-q-2", (await enrol()).secret);
    // Start from a clean store: the earlier tests' devices are forgotten.
    for (const id of ["vendor-x-1", "vendor-y-1"])
      expect((await api(t.httpUrl, "POST", `/api/v1/observe/${id}/forget`)).status).toBe(200);
    for (let i = 0; i < 7; i++) await publish(a, "ata/v1/vendor-q-1/events", JSON.stringify({ n: i }));
    let qa = t.gateway.observe.store.get("vendor-q-1")!;
    expect(qa).toMatchObject({ received: 7, stored: 5, dropped: { quota: 2, rate: 0 } });
    const kept = t.gateway.observe.store.samples("vendor-q-1").map((s) => JSON.parse(s.payload.toString()).n);
    expect(kept).toEqual([6, 5, 4, 3, 2]);

    for (let i = 0; i < 5; i++) await publish(b, "ata/v1/vendor-q-2/events", JSON.stringify({ m: i }));
    // 5 + 5 > 8: the two oldest of the store (vendor-q-1's 2 and 3) went.
    qa = t.gateway.observe.store.get("vendor-q-1")!;
    expect(qa).toMatchObject({ stored: 3, dropped: { quota: 4 } });
    expect(
      t.gateway.observe.store.samples("vendor-q-1").map((s) => JSON.parse(s.payload.toString()).n),
    ).toEqual([6, 5, 4]);
    const usage = (await api(t.httpUrl, "GET", "/api/v1/observe")).body.usage;
    expect(usage).toMatchObject({ stored: 8, dropped: { device: 2, total: 2 } });
    expect(countRows(t, "SELECT count(*) FROM observe_samples")).toBe(8);
  });

  it("drafts a profile with the channels seen and the fields inferred", async () => {
    const c = await connect("vendor-d-1", (await enrol()).secret);
    const statuses = ["fall_detected", "fall_confirmed", "finished"];
    for (const [i, s] of statuses.entries())
      await publish(
        c,
        "ata/v1/vendor-d-1/events",
        JSON.stringify({
          fallId: `f-${i}`,
          fallStatus: s,
          timestamp: 1736907185000 + i,
          ...(i ? {} : { confidence: 0.9 }),
        }),
      );
    await publish(c, "ata/v1/vendor-d-1/heartbeat", JSON.stringify({ rssi: -70, firmware: "1.2.3" }));
    const d = await api(t.httpUrl, "GET", "/api/v1/observe/vendor-d-1/draft");
    expect(d.status).toBe(200);
    expect(d.body.channels.map((ch: { channel: string }) => ch.channel)).toEqual(["events", "heartbeat"]);
    expect(d.body.module).toContain('topics: ["events", "heartbeat"]');
    expect(d.body.module).toContain('fallStatus: z.enum(["fall_detected", "fall_confirmed", "finished"])');
    expect(d.body.module).toContain("timestamp: ClockTime,");
    expect(d.body.module).toMatch(/confidence: z\.number\(\)\.optional\(\), \/\/ 0\.9 seen; in 1 of 3/);
    const events = d.body.channels[0].fields as { path: string; type: string; optional: boolean }[];
    expect(events.find((f) => f.path === "fallId")).toMatchObject({ type: "string", optional: false });
    expect(
      d.body.fixtures.filter((f: { topic: string; rejects?: string }) => f.topic === "events" && !f.rejects),
    ).toHaveLength(3);
    expect(d.body.samplesJsonl.split("\n")).toHaveLength(4);
  });

  it("observes a device registered with the observe profile, and lets a promoted device go", async () => {
    const added = await api(t.httpUrl, "POST", "/api/v1/devices", {
      id: "vendor-r-1",
      profile: "observe",
      site: "home-a",
      unit: "unit-2",
    });
    expect(added.status).toBe(201);
    const c = await connect("vendor-r-1", added.body.secret);
    await publish(c, "ata/v1/vendor-r-1/up", JSON.stringify({ fallStatus: "fall_confirmed" }));
    expect(t.gateway.observe.store.get("vendor-r-1")).toMatchObject({
      via: "registered",
      unitId: "unit-2",
      stored: 1,
    });
    expect(countRows(t, "SELECT count(*) FROM events WHERE device_id = 'vendor-r-1'")).toBe(0);

    // Promoted to its real profile: the observed session ends, the same secret now connects a
    // device whose falls are alerts.
    const dropped = new Promise<void>((resolve) => c.once("close", () => resolve()));
    const promotedR = await api(t.httpUrl, "POST", "/api/v1/observe/vendor-r-1/promote", {
      profile: "ata/native",
    });
    expect(promotedR.status).toBe(200);
    expect(promotedR.body).toMatchObject({ device: { profile: "ata/native", unitId: "unit-2" } });
    expect(promotedR.body.secret).toBeUndefined();
    await dropped;
    const r1 = await connect("vendor-r-1", added.body.secret);
    await publish(r1, "ata/v1/vendor-r-1/events", FALL);
    await eventually(() => countRows(t, "SELECT count(*) FROM alerts WHERE device_id = 'vendor-r-1'") > 0);
    expect(t.gateway.observe.store.get("vendor-r-1")?.stored).toBe(1); // the samples stay

    // An enrolled device promoted: registered where it was enrolled, with a secret of its own.
    const enrolled = await enrol({ site: "home-a", unit: "unit-2" });
    const e = await connect("vendor-e-1", enrolled.secret);
    const gone = new Promise<void>((resolve) => e.once("close", () => resolve()));
    const promotedE = await api(t.httpUrl, "POST", "/api/v1/observe/vendor-e-1/promote", {
      profile: "ata/native",
      room: "r4",
    });
    expect(promotedE.body).toMatchObject({ device: { siteId: "home-a", unitId: "unit-2", roomId: "r4" } });
    await gone;
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-e-1", enrolled.secret))).toBe(4);
    await connect("vendor-e-1", promotedE.body.secret);

    // Registering an enrolled device with `ata devices add` (the API here) works as usual too.
    const { secret } = await enrol();
    const p = await connect("vendor-p-1", secret);
    const closed = new Promise<void>((resolve) => p.once("close", () => resolve()));
    const promoted = await api(t.httpUrl, "POST", "/api/v1/devices", {
      id: "vendor-p-1",
      profile: "ata/native",
      site: "home-a",
      unit: "unit-1",
    });
    expect(promoted.status).toBe(201);
    await closed;
    // The enrolment secret no longer opens it: it is a registered device with its own secret now.
    expect(await refusalCode(connectDevice(t.mqttPort, "vendor-p-1", secret))).toBe(4);
    const real = await connect("vendor-p-1", promoted.body.secret);
    await publish(real, "ata/v1/vendor-p-1/events", FALL);
    await eventually(() => countRows(t, "SELECT count(*) FROM alerts WHERE device_id = 'vendor-p-1'") > 0);
  });
});

describe("observe mode's bounds and configuration", () => {
  it("keeps at most ratePerSec samples a second from a device, and counts the rest", async () => {
    const t = await startGateway({ overrides: { observe: { enabled: true, ratePerSec: 1 } } });
    try {
      const r = await api(t.httpUrl, "POST", "/api/v1/observe/enrolments", {
        site: "home-a",
        unit: "unit-1",
      });
      const c = await connectDevice(t.mqttPort, "vendor-fast-1", r.body.secret);
      // Five acknowledged publishes well within a second: one token, so one kept.
      await Promise.all([0, 1, 2, 3, 4].map((i) => publish(c, "ata/v1/vendor-fast-1/events", `{"n":${i}}`)));
      c.end(true);
      const d = t.gateway.observe.store.get("vendor-fast-1")!;
      expect(d.received).toBe(5);
      expect(d.stored + d.dropped.rate).toBe(5);
      expect(d.stored).toBeLessThanOrEqual(2);
    } finally {
      await t.stop();
    }
  });

  it("names an unknown site in observe.sites as a configuration problem with its path", () => {
    expect(() =>
      testConfig("/nonexistent", { observe: { enabled: true, sites: ["home-a", "nowhere"] } }),
    ).toThrow(/observe\.sites\[1\]: unknown site "nowhere"/);
  });
});
