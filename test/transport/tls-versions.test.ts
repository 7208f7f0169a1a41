/**
 * TLS 1.2 is the floor for MQTT over TLS, MQTT over secure WebSocket and HTTPS, and minVersion
 * TLSv1.3 raises it. Real gateways, real mqtt.js and node clients verifying a CA made with openssl.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type TLSSocket } from "node:tls";
import mqtt, { type IClientOptions } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { ADMIN_TOKEN, deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";
import {
  handshake,
  httpsGet,
  makeCertificates,
  type TestCertificates,
  TLS_1_1_ONLY,
  type TlsLimits,
} from "../helpers/tls.js";

const ID = deviceIdFor("ata/native");
const SECRET = secretFor("ata/native");
/**
 * What a peer sees when the gateway answers its ClientHello with alert 70, protocol_version (node
 * says ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION; mqtt.js hands on the socket's EPROTO with the same text).
 */
const REFUSED = /tlsv1 alert protocol version/;

function tlsGateway(certs: TestCertificates, minVersion?: "TLSv1.3"): Promise<TestGateway> {
  const tls = { certFile: certs.certFile, keyFile: certs.keyFile, ...(minVersion ? { minVersion } : {}) };
  return startGateway({
    overrides: {
      mqtt: {
        tcp: { enabled: false, port: 0 },
        ws: { enabled: false, port: 0 },
        tls: { enabled: true, host: "127.0.0.1", port: 0, ...tls },
        wss: { enabled: true, host: "127.0.0.1", port: 0 },
      },
      http: { host: "127.0.0.1", port: 0, adminToken: ADMIN_TOKEN, tls },
    },
  });
}

function device(certs: TestCertificates, extra: IClientOptions & TlsLimits = {}): IClientOptions {
  return {
    ca: certs.ca,
    rejectUnauthorized: true,
    clientId: ID,
    username: ID,
    password: SECRET,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  };
}

describe("TLS versions", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-tls-versions-"));
  let certs: TestCertificates;
  let floor12: TestGateway;
  let floor13: TestGateway;

  beforeAll(async () => {
    certs = makeCertificates(dir);
    [floor12, floor13] = await Promise.all([tlsGateway(certs), tlsGateway(certs, "TLSv1.3")]);
  });
  afterAll(async () => {
    await Promise.all([floor12?.stop(), floor13?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const logged = (t: TestGateway, eventId: string) =>
    t.gateway.db.prepare("SELECT 1 FROM events WHERE event_id = ?").get(eventId) !== undefined;

  it("by default a device limited to TLS 1.2 connects over MQTT/TLS and publishes; one without a limit gets TLS 1.3", async () => {
    const port = floor12.gateway.mqttPort("tls");
    const client = await mqtt.connectAsync(
      device(certs, { protocol: "mqtts", host: "127.0.0.1", port, maxVersion: "TLSv1.2" }),
    );
    expect((client.stream as unknown as TLSSocket).getProtocol()).toBe("TLSv1.2");
    await client.publishAsync(
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "tls12-call", type: "call.manual", data: {} }),
      { qos: 1 },
    );
    await client.endAsync();
    expect(logged(floor12, "tls12-call")).toBe(true);

    const modern = await mqtt.connectAsync(device(certs, { protocol: "mqtts", host: "127.0.0.1", port }));
    expect((modern.stream as unknown as TLSSocket).getProtocol()).toBe("TLSv1.3");
    await modern.endAsync();
  });

  it("a client that offers TLS 1.1 at most is refused on MQTT/TLS, MQTT/WSS and HTTPS, though it can speak TLS 1.1 here", async () => {
    // The control: a server that still allows TLS 1.0/1.1 completes a TLS 1.1 handshake with this
    // client, so the refusals below are the gateway's minVersion, not a client unable to try.
    const control = createServer({
      cert: readFileSync(certs.certFile),
      key: readFileSync(certs.keyFile),
      minVersion: "TLSv1",
      ciphers: "DEFAULT@SECLEVEL=0",
    });
    await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
    const controlPort = (control.address() as { port: number }).port;
    try {
      expect(await handshake(controlPort, { ...TLS_1_1_ONLY, ca: certs.ca })).toBe("TLSv1.1");
    } finally {
      control.close();
    }

    const g = floor12.gateway;
    const tls11 = { ...TLS_1_1_ONLY, ca: certs.ca };
    await expect(handshake(g.mqttPort("tls"), tls11)).rejects.toThrow(REFUSED);
    await expect(
      mqtt.connectAsync(
        device(certs, { protocol: "mqtts", host: "127.0.0.1", port: g.mqttPort("tls"), ...TLS_1_1_ONLY }),
      ),
    ).rejects.toThrow(REFUSED);
    await expect(handshake(g.mqttPort("wss"), tls11)).rejects.toThrow(REFUSED);
    await expect(httpsGet(`https://127.0.0.1:${g.http.port}/healthz`, tls11)).rejects.toThrow(REFUSED);
  });

  it("HTTPS and MQTT over secure WebSocket accept TLS 1.2 by default", async () => {
    const res = await httpsGet(`https://127.0.0.1:${floor12.gateway.http.port}/healthz`, {
      ca: certs.ca,
      maxVersion: "TLSv1.2",
    });
    expect(res).toMatchObject({ status: 200, protocol: "TLSv1.2" });

    const client = await mqtt.connectAsync(
      `wss://127.0.0.1:${floor12.gateway.mqttPort("wss")}/mqtt`,
      device(certs, { maxVersion: "TLSv1.2" }),
    );
    await client.publishAsync(
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "wss12-call", type: "call.manual", data: {} }),
      { qos: 1 },
    );
    await client.endAsync();
    expect(logged(floor12, "wss12-call")).toBe(true);
  });

  it("with minVersion TLSv1.3 a TLS 1.2-only client is refused on every TLS listener and a TLS 1.3 client connects", async () => {
    const g = floor13.gateway;
    const tls12 = { ca: certs.ca, maxVersion: "TLSv1.2" } as const;
    await expect(
      mqtt.connectAsync(
        device(certs, {
          protocol: "mqtts",
          host: "127.0.0.1",
          port: g.mqttPort("tls"),
          maxVersion: "TLSv1.2",
        }),
      ),
    ).rejects.toThrow(REFUSED);
    await expect(handshake(g.mqttPort("wss"), tls12)).rejects.toThrow(REFUSED);
    await expect(httpsGet(`https://127.0.0.1:${g.http.port}/healthz`, tls12)).rejects.toThrow(REFUSED);

    const client = await mqtt.connectAsync(
      device(certs, { protocol: "mqtts", host: "127.0.0.1", port: g.mqttPort("tls"), minVersion: "TLSv1.3" }),
    );
    expect((client.stream as unknown as TLSSocket).getProtocol()).toBe("TLSv1.3");
    await client.endAsync();
    const res = await httpsGet(`https://127.0.0.1:${g.http.port}/healthz`, { ca: certs.ca });
    expect(res).toMatchObject({ status: 200, protocol: "TLSv1.3" });
  });
});
