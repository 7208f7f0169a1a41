/**
 * No one device or socket exhausts the gateway: a small frame limit before CONNECT, a short connect
 * timeout, a cap on connections and on idle ones per address, a per-device publish rate that never
 * holds back a fall, and session takeovers that show a shared secret. Real gateway, real sockets.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { deviceTopic, errorTopic } from "../../src/broker/topics.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const NATIVE = deviceIdFor("ata/native");
const NATIVE_SECRET = secretFor("ata/native");

let t: TestGateway | null = null;
const clients: MqttClient[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  for (const s of sockets.splice(0)) s.destroy();
  await t?.stop();
  t = null;
});

async function gateway(mqtt: Record<string, unknown>, rest: Record<string, unknown> = {}) {
  t = await startGateway({
    overrides: {
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, ...mqtt },
      ...rest,
    },
  });
  return t;
}

/** A raw TCP socket to the MQTT port, and a promise of its close (ms after opening). */
async function raw(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = tcpConnect({ host: "127.0.0.1", port });
  sockets.push(socket);
  const opened = Date.now();
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - opened)));
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, closed };
}

const rows = (g: TestGateway, kind: string) =>
  g.gateway.security.list({ kinds: [kind], limit: 100 }).reduce((n, r) => n + r.count, 0);

describe("connection limits", () => {
  it("closes a connection whose first frame is larger than the CONNECT limit, before buffering it", async () => {
    const g = await gateway({ maxConnectFrameBytes: 1024 });
    const { socket, closed } = await raw(g.mqttPort);
    // CONNECT (0x10) declaring 100,000 bytes (variable-length encoding), then nothing more.
    socket.write(Buffer.from([0x10, 0xa0, 0x8d, 0x06]));
    expect(await closed).toBeLessThan(2000);
    g.gateway.security.flush(true);
    expect(g.gateway.security.list({ kinds: ["connection_limited"], limit: 10 })[0]?.detail).toMatchObject({
      reason: "connect_frame_too_large",
      limit: 1024,
    });
    // After CONNECT the larger limit applies: a 20 KB publish (over the 16 KiB payload limit, under
    // the 256 KiB frame limit) is read whole and dead-lettered.
    const client = await connectDevice(g.mqttPort, NATIVE, NATIVE_SECRET);
    clients.push(client);
    await publish(client, deviceTopic(NATIVE, "events"), Buffer.alloc(20_000, 0x20));
    const dead = g.gateway.db.prepare("SELECT code FROM dead_letters WHERE device_id = ?").all(NATIVE);
    expect(dead).toEqual([{ code: "payload_too_large" }]);
    expect(client.connected).toBe(true);
  });

  it("closes a socket that sends no CONNECT within the connect timeout", async () => {
    const g = await gateway({ connectTimeoutMs: 300 });
    const { closed } = await raw(g.mqttPort);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
  });

  it("closes the oldest idle connection past the per-address cap, caps connections in all, and frees the slots", async () => {
    const g = await gateway({ maxPendingPerAddress: 3, maxConnections: 5 });
    const idle: Awaited<ReturnType<typeof raw>>[] = [];
    for (let i = 0; i < 3; i++) idle.push(await raw(g.mqttPort));
    // A fourth idle socket from the same address: the oldest waiting one is closed to make room.
    const fourth = await raw(g.mqttPort);
    expect(await idle[0]!.closed).toBeLessThan(1000);
    // A device behind the same address still gets in while the idle sockets keep coming.
    const fifth = await raw(g.mqttPort);
    expect(await idle[1]!.closed).toBeLessThan(1000);
    const device = await connectDevice(g.mqttPort, NATIVE, NATIVE_SECRET);
    device.end(true);
    for (const s of [idle[2]!, fourth, fifth]) s.socket.destroy();
    await Promise.all([idle[2]!, fourth, fifth].map((s) => s.closed));
    // Devices past CONNECT do not count as idle: five connect, the sixth connection is refused.
    for (const p of ["ata/native", "vayyar/care", "milesight/vs373", "scaip/bed-mat", "scaip/pendant"])
      clients.push(await connectDevice(g.mqttPort, deviceIdFor(p), secretFor(p)));
    const sixth = await raw(g.mqttPort);
    expect(await sixth.closed).toBeLessThan(1000);
    clients.pop()!.end(true);
    await eventually(async () => {
      const again = await raw(g.mqttPort);
      const open = await Promise.race([
        again.closed.then(() => false),
        new Promise((r) => setTimeout(() => r(true), 200)),
      ]);
      again.socket.destroy();
      return open;
    });
    const refused = await (await fetch(`${g.httpUrl}/metrics`)).text();
    expect(refused).toMatch(/ata_mqtt_connections_refused_total\{reason="pending_cap"\} [2-9]/);
    expect(refused).toMatch(/ata_mqtt_connections_refused_total\{reason="connection_cap"\} [1-9]/);
  });
});

describe("per-device publish rate", () => {
  it("refuses publishes past the burst without writing them, tells the device once a second, and never holds back a fall", async () => {
    const g = await gateway({}, { ingest: { deviceRate: { perSec: 0.5, burst: 5 } } });
    const client = await connectDevice(g.mqttPort, NATIVE, NATIVE_SECRET);
    clients.push(client);
    const told: { code: string }[] = [];
    client.on("message", (_t, p) => told.push(JSON.parse(p.toString())));
    await client.subscribeAsync(errorTopic(NATIVE), { qos: 1 });
    const topic = deviceTopic(NATIVE, "events");
    for (let i = 0; i < 8; i++)
      await publish(
        client,
        topic,
        JSON.stringify({ eventId: `hb-${i}`, type: "device.heartbeat", data: {} }),
      );
    await publish(
      client,
      topic,
      JSON.stringify({ eventId: "fall-1", type: "fall.detected", data: { confidence: 0.9 } }),
    );
    const logged = g.gateway.db
      .prepare("SELECT event_id FROM events WHERE device_id = ? AND event_id NOT LIKE 'gw:%' ORDER BY seq")
      .all(NATIVE)
      .map((r) => (r as { event_id: string }).event_id);
    expect(logged).toEqual(["hb-0", "hb-1", "hb-2", "hb-3", "hb-4", "fall-1"]);
    // Past the rate nothing is written: no dead letter (a flood must not become a flood of writes).
    const dead = g.gateway.db.prepare("SELECT code FROM dead_letters WHERE device_id = ?").all(NATIVE);
    expect(dead).toEqual([]);
    // Told once a second, not once a publish.
    await eventually(() => told.length === 1);
    expect(told[0]).toMatchObject({ code: "rate_limited" });
    g.gateway.security.flush(true);
    expect(rows(g, "device_rate_limited")).toBe(3);
    const metrics = await (await fetch(`${g.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/ata_events_rejected_total\{reason="rate_limited"\} 3/);
    // Garbage counts against the rate too, and past it is not stored either.
    await publish(client, topic, "{not json");
    expect(
      g.gateway.db.prepare("SELECT count(*) AS n FROM dead_letters WHERE device_id = ?").get(NATIVE),
    ).toEqual({ n: 0 });
  });
});

describe("session takeovers", () => {
  it("logs each takeover and raises a tamper alert when one device's session keeps changing hands", async () => {
    const g = await gateway({ takeovers: { alertAfter: 3, windowSec: 600 } });
    for (let i = 0; i < 4; i++) {
      const c = await connectDevice(g.mqttPort, NATIVE, NATIVE_SECRET);
      clients.push(c);
    }
    g.gateway.security.flush(true);
    expect(rows(g, "session_takeover")).toBe(3);
    expect(rows(g, "takeover_alert")).toBe(1);
    const alert = await eventually(
      () =>
        g.gateway.db.prepare("SELECT type, device_id FROM alerts WHERE device_id = ?").get(NATIVE) as
          | { type: string; device_id: string }
          | undefined,
    );
    expect(alert).toMatchObject({ type: "tamper" });
    const metrics = await (await fetch(`${g.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/ata_mqtt_session_takeovers_total 3/);
  });
});
