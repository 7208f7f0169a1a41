import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";

const ID = deviceIdFor("ata/native");
const SECRET = secretFor("ata/native");

/** A self-signed certificate for 127.0.0.1, made with the openssl command line. */
function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

async function publishOnce(client: mqtt.MqttClient, eventId: string): Promise<void> {
  await client.publishAsync(
    deviceTopic(ID, "events"),
    JSON.stringify({ eventId, type: "call.manual", data: {} }),
    { qos: 1 },
  );
}

describe("MQTT over WebSocket and TLS, HTTPS for the console and API", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-tls-"));
  let t: TestGateway;
  let ca: Buffer;

  beforeAll(async () => {
    const { cert, key } = selfSigned(dir);
    ca = readFileSync(cert);
    t = await startGateway({
      overrides: {
        mqtt: {
          tcp: { host: "127.0.0.1", port: 0 },
          ws: { host: "127.0.0.1", port: 0 },
          tls: { enabled: true, host: "127.0.0.1", port: 0, certFile: cert, keyFile: key },
        },
        http: {
          host: "127.0.0.1",
          port: 0,
          adminToken: "test-admin-token-0123456789",
          tls: { certFile: cert, keyFile: key },
        },
      },
    });
  });
  afterAll(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const logged = (eventId: string) =>
    t.gateway.db.prepare("SELECT 1 FROM events WHERE event_id = ?").get(eventId) !== undefined;

  it("a device publishes over MQTT-over-WebSocket (ws://host:port/mqtt)", async () => {
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${t.gateway.mqttPort("ws")}/mqtt`, {
      clientId: ID,
      username: ID,
      password: SECRET,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await publishOnce(client, "over-ws");
    await client.endAsync();
    expect(logged("over-ws")).toBe(true);
  });

  it("a device publishes over MQTT with TLS, verifying the gateway's certificate", async () => {
    const client = await mqtt.connectAsync({
      protocol: "mqtts",
      host: "127.0.0.1",
      port: t.gateway.mqttPort("tls"),
      ca,
      clientId: ID,
      username: ID,
      password: SECRET,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await publishOnce(client, "over-tls");
    await client.endAsync();
    expect(logged("over-tls")).toBe(true);
  });

  it("a TLS client that does not trust the certificate is refused by the handshake", async () => {
    await expect(
      mqtt.connectAsync({
        protocol: "mqtts",
        host: "127.0.0.1",
        port: t.gateway.mqttPort("tls"),
        clientId: ID,
        username: ID,
        password: SECRET,
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
    ).rejects.toThrow(/self[- ]signed|certificate/i);
  });

  it("the HTTP API answers over HTTPS", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      request(`https://127.0.0.1:${t.gateway.http.port}/healthz`, { ca }, (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve(text));
      })
        .on("error", reject)
        .end();
    });
    expect(JSON.parse(body)).toEqual({ status: "ok" });
  });
});
