import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandTopic, deviceTopic, errorTopic } from "../../src/broker/topics.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const NATIVE = deviceIdFor("ata/native");
const NATIVE_SECRET = secretFor("ata/native");
const LIFT = deviceIdFor("generic/ceiling-lift");
const LIFT_SECRET = secretFor("generic/ceiling-lift");

function connackCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

/** The CONNACK a CONNECT ends with: 0 when accepted (the client is closed again), else its code. */
function connack(attempt: Promise<MqttClient>): Promise<number | undefined> {
  return attempt.then(
    (c) => {
      c.end(true);
      return 0;
    },
    (e) => connackCode(e),
  );
}

/** A gateway of its own with these CONNECT limits, for a test that locks its address. */
async function withOwnGateway(
  authFailures: Record<string, number>,
  test: (t2: TestGateway) => Promise<void>,
): Promise<void> {
  const t2 = await startGateway({
    overrides: {
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, authFailures },
    },
  });
  try {
    await test(t2);
  } finally {
    await t2.stop();
  }
}

describe("device authentication and authorisation", () => {
  let t: TestGateway;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        mqtt: {
          tcp: { host: "127.0.0.1", port: 0 },
          ws: { enabled: false, port: 0 },
          authFailures: { max: 5, windowSec: 60 },
        },
      },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t.stop();
  });

  it("accepts a registered device with its secret", async () => {
    const c = await connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET);
    clients.push(c);
    expect(c.connected).toBe(true);
  });

  it("refuses a wrong secret and an unknown device with CONNACK 4 (bad username or password)", async () => {
    await expect(connectDevice(t.mqttPort, NATIVE, "wrong-secret-xyz")).rejects.toSatisfy(
      (e) => connackCode(e) === 4,
    );
    await expect(connectDevice(t.mqttPort, "no-such-device", "whatever-secret")).rejects.toSatisfy(
      (e) => connackCode(e) === 4,
    );
  });

  it("refuses a client id that is not the device id with CONNACK 2", async () => {
    await expect(
      connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET, { clientId: "someone-else" }),
    ).rejects.toSatisfy((e) => connackCode(e) === 2);
  });

  it("refuses a disabled device with CONNACK 5 and drops its open session at once", async () => {
    const c = await connectDevice(t.mqttPort, LIFT, LIFT_SECRET);
    const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
    const res = await api(t.httpUrl, "POST", `/api/v1/devices/${LIFT}/disable`);
    expect(res.status).toBe(200);
    await closed;
    await expect(connectDevice(t.mqttPort, LIFT, LIFT_SECRET)).rejects.toSatisfy((e) => connackCode(e) === 5);
    await api(t.httpUrl, "POST", `/api/v1/devices/${LIFT}/enable`);
    const again = await connectDevice(t.mqttPort, LIFT, LIFT_SECRET);
    clients.push(again);
  });

  it("refuses a subscription to # or to another device's topics (SUBACK 128) and keeps the connection", async () => {
    const c = await connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET);
    clients.push(c);
    // mqtt.js reports a SUBACK containing 0x80 as an error that carries the granted list.
    const granted = await new Promise<number[]>((resolve) => {
      c.subscribe(
        ["#", errorTopic(LIFT), "$SYS/#", errorTopic(NATIVE), commandTopic(NATIVE)],
        { qos: 1 },
        (err, g) => {
          const packet = (err as { packet?: { granted?: number[] } } | null)?.packet;
          resolve(packet?.granted ?? (g ?? []).map((x) => x.qos));
        },
      );
    });
    expect(granted).toEqual([128, 128, 128, 1, 1]);
    expect(c.connected).toBe(true);
    t.gateway.security.flush(true);
    const denied = t.gateway.security
      .list({ kinds: ["topic_denied"], limit: 10 })
      .filter((r) => r.subject === NATIVE)
      .map((r) => r.detail.topic);
    expect(denied.sort()).toEqual(["#", "$SYS/#", errorTopic(LIFT)].sort());
  });

  it("disconnects a device that publishes as another device; the other device sees nothing and nothing is logged", async () => {
    const victim = await connectDevice(t.mqttPort, LIFT, LIFT_SECRET);
    clients.push(victim);
    const seen: string[] = [];
    victim.on("message", (topic) => seen.push(topic));
    await victim.subscribeAsync([errorTopic(LIFT), commandTopic(LIFT)], { qos: 1 });

    const attacker = await connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET);
    const closed = new Promise<void>((resolve) => attacker.once("close", () => resolve()));
    attacker.publish(deviceTopic(LIFT, "cycle"), JSON.stringify({ forged: true }), { qos: 1 });
    attacker.publish(commandTopic(LIFT), "reboot", { qos: 1 });
    await closed;
    attacker.end(true);

    // A round trip on the victim's own connection: anything forged would have arrived before it.
    await victim.subscribeAsync(commandTopic(LIFT), { qos: 1 });
    expect(seen).toEqual([]);
    const logged = t.gateway.db
      .prepare(
        "SELECT count(*) AS n FROM events WHERE device_id = ? AND type NOT IN ('device.online', 'device.offline')",
      )
      .get(LIFT) as { n: number };
    expect(logged.n).toBe(0);
    t.gateway.security.flush(true);
    expect(
      t.gateway.security
        .list({ kinds: ["topic_denied"], limit: 20 })
        .some(
          (r) =>
            r.subject === NATIVE &&
            r.detail.action === "publish" &&
            r.detail.topic === deviceTopic(LIFT, "cycle"),
        ),
    ).toBe(true);
  });

  it("refuses publishing on the gateway's own channels and on $SYS", async () => {
    for (const topic of [errorTopic(NATIVE), "$SYS/broker/x", "elsewhere/topic"]) {
      const c = await connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET);
      const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
      c.publish(topic, "x", { qos: 1 });
      await closed;
      c.end(true);
    }
  });

  it("throttles an address after repeated failures, even with the right secret afterwards", async () => {
    await withOwnGateway({ max: 3, windowSec: 60 }, async (t2) => {
      for (let i = 0; i < 3; i++) {
        await expect(connectDevice(t2.mqttPort, NATIVE, "bad-secret-123")).rejects.toSatisfy(
          (e) => connackCode(e) === 4,
        );
      }
      await expect(connectDevice(t2.mqttPort, NATIVE, NATIVE_SECRET)).rejects.toSatisfy(
        (e) => connackCode(e) === 3,
      );
      const metrics = await fetch(`${t2.httpUrl}/metrics`).then((r) => r.text());
      expect(metrics).toMatch(/ata_mqtt_connects_refused_total\{reason="throttled"\} 1/);
    });
  });

  it("counts a CONNECT as failed before its secret is checked: parallel attempts cannot pass the limit", async () => {
    await withOwnGateway({ max: 3, windowSec: 60 }, async (t2) => {
      const codes = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          connack(connectDevice(t2.mqttPort, `no-such-device-${i}`, "guessed-secret-123")),
        ),
      );
      // Only as many reach the secret check as the limit allows; the rest are turned away unchecked.
      expect(codes.filter((c) => c === 4).length).toBeLessThanOrEqual(3);
      expect(codes.filter((c) => c === 3).length).toBeGreaterThanOrEqual(9);
      expect(t2.gateway.registry.authStats.verifications).toBeLessThanOrEqual(3);
    });
  });

  it("a device that connected before keeps connecting from an address others' failures locked", async () => {
    await withOwnGateway({ max: 3, windowSec: 60 }, async (t2) => {
      (await connectDevice(t2.mqttPort, NATIVE, NATIVE_SECRET)).end(true);
      for (let i = 0; i < 3; i++)
        await expect(connectDevice(t2.mqttPort, LIFT, "bad-secret-123")).rejects.toSatisfy(
          (e) => connackCode(e) === 4,
        );
      // The address is locked for pairs it has not seen succeed, the lift's right secret included...
      await expect(connectDevice(t2.mqttPort, LIFT, LIFT_SECRET)).rejects.toSatisfy(
        (e) => connackCode(e) === 3,
      );
      // ...but the radar behind the same NAT goes on.
      const c = await connectDevice(t2.mqttPort, NATIVE, NATIVE_SECRET);
      expect(c.connected).toBe(true);
      c.end(true);
      // A wrong secret for the radar does not ride on its good name.
      await expect(connectDevice(t2.mqttPort, NATIVE, "bad-secret-123")).rejects.toSatisfy(
        (e) => connackCode(e) === 3,
      );
    });
  });

  it("a global ceiling on scrypt checks per second turns the excess away with CONNACK 3, counted as busy", async () => {
    await withOwnGateway({ max: 100, windowSec: 60, kdfPerSec: 2 }, async (t2) => {
      // Registered over the API: a generated secret, stored as a salted hash, not scrypt.
      const reg = await api(t2.httpUrl, "POST", "/api/v1/devices", {
        id: "generated-1",
        profile: "ata/native",
        site: "home-a",
        unit: "unit-1",
      });
      expect(reg.status).toBe(201);
      const codes: (number | undefined)[] = [];
      for (let i = 0; i < 6; i++)
        codes.push(await connack(connectDevice(t2.mqttPort, `sprayed-id-${i}`, "guessed-secret-123")));
      expect(codes.slice(0, 2)).toEqual([4, 4]);
      expect(codes.filter((c) => c === 3).length).toBeGreaterThanOrEqual(3);
      expect(t2.gateway.registry.authStats.verifications).toBeLessThanOrEqual(3);
      const metrics = await fetch(`${t2.httpUrl}/metrics`).then((r) => r.text());
      expect(metrics).toMatch(/ata_mqtt_connects_refused_total\{reason="busy"\} [3-9]/);
      // A device with a generated secret does not wait for that budget.
      const c = await connectDevice(t2.mqttPort, "generated-1", reg.body.secret);
      expect(c.connected).toBe(true);
      c.end(true);
    });
  });

  it("an unknown device id costs a secret verification, as a wrong secret does", async () => {
    const before = t.gateway.registry.authStats.verifications;
    await expect(connectDevice(t.mqttPort, "never-registered", "whatever-secret")).rejects.toSatisfy(
      (e) => connackCode(e) === 4 || connackCode(e) === 3,
    );
    expect(t.gateway.registry.authStats.verifications).toBe(before + 1);
  });

  it("keeps device presence: online on connect, offline on disconnect, both in the event log", async () => {
    const c = await connectDevice(t.mqttPort, NATIVE, NATIVE_SECRET);
    await eventually(() => t.gateway.presence.status(NATIVE).online);
    c.end(true);
    await eventually(() => !t.gateway.presence.status(NATIVE).connected);
    await eventually(() => {
      const rows = t.gateway.db
        .prepare("SELECT type FROM events WHERE device_id = ? AND type LIKE 'device.o%' ORDER BY seq")
        .all(NATIVE) as { type: string }[];
      return rows.at(-1)?.type === "device.offline" && rows.some((r) => r.type === "device.online");
    });
  });
});
