/**
 * tlsOnly: the plain MQTT, plain MQTT-over-WebSocket and plain HTTP listeners are not opened even
 * when their ports are configured, while devices, the console, staff and Prometheus work over TLS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { deviceTopic } from "../../src/broker/topics.js";
import { ADMIN_TOKEN, deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";
import { httpsGet, makeCertificates, type TestCertificates } from "../helpers/tls.js";

const ID = deviceIdFor("ata/native");
const SECRET = secretFor("ata/native");
const METRICS_TOKEN = "metrics-token-0123456789";
const STAFF_TOKEN = "staff-token-anna-0123456789";

/** A port nothing listens on now (bound and released), to configure a plain listener on. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe("tlsOnly", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-tls-only-"));
  let certs: TestCertificates;
  let t: TestGateway;
  const plain = { tcp: 0, ws: 0 };

  beforeAll(async () => {
    certs = makeCertificates(dir);
    plain.tcp = await freePort();
    plain.ws = await freePort();
    const files = { certFile: certs.certFile, keyFile: certs.keyFile };
    t = await startGateway({
      overrides: {
        tlsOnly: true,
        mqtt: {
          // Enabled (the default) and on known ports: tlsOnly must win over both.
          tcp: { host: "127.0.0.1", port: plain.tcp },
          ws: { host: "127.0.0.1", port: plain.ws },
          tls: { enabled: true, host: "127.0.0.1", port: 0, ...files },
          wss: { enabled: true, host: "127.0.0.1", port: 0 },
        },
        http: {
          host: "127.0.0.1",
          port: 0,
          adminToken: ADMIN_TOKEN,
          metricsToken: METRICS_TOKEN,
          tls: files,
          metrics: { host: "127.0.0.1", port: 0, tls: true },
        },
        staff: [{ id: "anna", name: "Anna", role: "staff", sites: ["home-a"], token: STAFF_TOKEN }],
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const device: IClientOptions = {
    rejectUnauthorized: true,
    clientId: ID,
    username: ID,
    password: SECRET,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  };
  const logged = (eventId: string) =>
    t.gateway.db.prepare("SELECT 1 FROM events WHERE event_id = ?").get(eventId) !== undefined;
  const https = (port: number, path: string, headers: Record<string, string> = {}) =>
    httpsGet(`https://127.0.0.1:${port}${path}`, { ca: certs.ca, headers });

  it("lists only TLS listeners, and the configured plain MQTT and WebSocket ports refuse connections", async () => {
    const listeners = t.gateway.listeners();
    expect(listeners.map((l) => l.scheme).sort()).toEqual(["https", "https", "mqtts", "wss"]);
    expect(listeners.every((l) => l.tls)).toBe(true);
    expect(t.gateway.broker.addresses.map((a) => a.name).sort()).toEqual(["tls", "wss"]);
    expect(t.mqttPort).toBe(0);
    expect(() => t.gateway.mqttPort("tcp")).toThrow(/no tcp listener/);

    expect(await refused(plain.tcp)).toBe("ECONNREFUSED");
    expect(await refused(plain.ws)).toBe("ECONNREFUSED");
  });

  it("plain HTTP to the console's port gets no HTTP answer", async () => {
    await expect(fetch(`http://127.0.0.1:${t.gateway.http.port}/healthz`)).rejects.toThrow();
  });

  it("a device publishes over MQTT/TLS and over secure WebSocket, and both events are committed", async () => {
    const overTls = await mqtt.connectAsync({
      ...device,
      ca: certs.ca,
      protocol: "mqtts",
      host: "127.0.0.1",
      port: t.gateway.mqttPort("tls"),
    });
    await overTls.publishAsync(
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "tls-only-mqtts", type: "call.manual", data: {} }),
      { qos: 1 },
    );
    await overTls.endAsync();
    expect(logged("tls-only-mqtts")).toBe(true);

    const overWss = await mqtt.connectAsync(`wss://127.0.0.1:${t.gateway.mqttPort("wss")}/mqtt`, {
      ...device,
      ca: certs.ca,
    });
    await overWss.publishAsync(
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "tls-only-wss", type: "call.manual", data: {} }),
      { qos: 1 },
    );
    await overWss.endAsync();
    expect(logged("tls-only-wss")).toBe(true);
  });

  it("the console page loads over HTTPS and a staff member signs in on the WebSocket over TLS", async () => {
    const page = await https(t.gateway.http.port, "/");
    expect(page.status).toBe(200);
    expect(page.contentType).toMatch(/text\/html/);
    expect(page.body).toContain("<title>ATA");

    const ws = new WebSocket(`wss://127.0.0.1:${t.gateway.http.port}/staff/ws`, { ca: certs.ca });
    const welcome = await new Promise<{ type: string; staff: { id: string } }>((resolve, reject) => {
      ws.once("open", () => ws.send(JSON.stringify({ type: "hello", id: "h1", token: STAFF_TOKEN })));
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data));
        if (msg.type === "welcome") resolve(msg);
      });
      ws.once("error", reject);
    });
    ws.close();
    expect(welcome.staff.id).toBe("anna");
  });

  it("/metrics answers on the metrics listener over HTTPS with the token only, not on the main port; /healthz and /readyz stay open", async () => {
    const metricsPort = t.gateway.metricsHttp!.port;
    const ok = await https(metricsPort, "/metrics", { authorization: `Bearer ${METRICS_TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("ata_event_loop_delay_seconds");
    expect((await https(metricsPort, "/metrics")).status).toBe(401);

    const main = t.gateway.http.port;
    expect((await https(main, "/metrics", { authorization: `Bearer ${METRICS_TOKEN}` })).status).toBe(404);
    expect((await https(main, "/healthz")).status).toBe(200);
    expect((await https(main, "/readyz")).status).toBe(200);
  });
});
