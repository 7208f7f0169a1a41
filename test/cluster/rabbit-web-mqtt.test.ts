/**
 * Devices on MQTT over WebSocket through RabbitMQ 3.10's Web MQTT plugin (rabbitmq_web_mqtt), with
 * the gateway as RabbitMQ's auth backend and its ingest consumer on the quorum queue: the same
 * devices, the same answers and the same event path as RabbitMQ's plain MQTT listener.
 *
 * Between RabbitMQ and the gateway sits a small forwarding HTTP server of the test's own that keeps
 * every question RabbitMQ asks (endpoint and form fields, the password left out), so the test can
 * compare what RabbitMQ sends for a WebSocket device with what it sends for a TCP one.
 */
import { createServer, request, type Server } from "node:http";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { commandTopic, deviceTopic } from "../../src/broker/topics.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { connectDevice, eventually, publish, startGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";
import { STAFF, StaffClient } from "../staff/client.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const WS_RADAR = "ws-radar";
const TCP_RADAR = "tcp-radar";
const WS_OTHER = "ws-pendant";

let rabbit: RabbitNode;
let t: TestGateway;
let relay: Server;
let anna: StaffClient;
const clients: MqttClient[] = [];
const secrets = new Map<string, string>();

/** A question RabbitMQ asked the gateway: the endpoint and its fields, without the password. */
interface Asked {
  endpoint: string;
  fields: Record<string, string>;
}
const asked: Asked[] = [];

/** Forwards RabbitMQ's requests to the gateway unchanged and keeps what was asked. */
function startRelay(gatewayPort: number, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const fields = Object.fromEntries(new URLSearchParams(body.toString()));
      delete fields.password;
      asked.push({ endpoint: (req.url ?? "").slice(RABBIT_AUTH_BASE.length + 1), fields });
      const out = request(
        { host: "127.0.0.1", port: gatewayPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on("error", () => res.writeHead(502).end());
      out.end(body);
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

/** An mqtt.js device on RabbitMQ's Web MQTT listener: `ws://127.0.0.1:<port>/ws`, subprotocol mqtt. */
function connectWs(id: string, secret: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`ws://127.0.0.1:${rabbit.webMqttPort}/ws`, {
      clientId: id,
      username: id,
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...extra,
    });
    client.once("connect", () => {
      clients.push(client);
      resolve(client);
    });
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
}

/** An MQTT 3.1.1 string or binary field: two length bytes, then the bytes. */
function field(v: string | Buffer): Buffer {
  const b = Buffer.isBuffer(v) ? v : Buffer.from(v);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** One MQTT packet: the fixed header's first byte, the remaining length (one byte here), the rest. */
function packet(first: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  if (body.length > 127) throw new Error("a short packet only");
  return Buffer.concat([Buffer.from([first, body.length]), body]);
}

/** CONNECT (MQTT 3.1.1, clean session, user name and password, keep-alive 60 s). */
function connectPacket(id: string, secret: string): Buffer {
  return packet(0x10, field("MQTT"), Buffer.from([4, 0xc2, 0, 60]), field(id), field(id), field(secret));
}

/** PUBLISH at QoS 1 with packet id 1. */
function publishPacket(topic: string, payload: string): Buffer {
  return packet(0x32, field(topic), Buffer.from([0, 1]), Buffer.from(payload));
}

/**
 * A device on Web MQTT with a plain WebSocket client, to see what RabbitMQ sends and how it closes:
 * CONNECT, and once the first packet back has arrived, `then`. Resolves when the socket closes.
 */
function rawWebMqtt(
  connect: Buffer,
  then: Buffer[] = [],
): Promise<{ received: number[]; code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${rabbit.webMqttPort}/ws`, "mqtt");
    const received: number[] = [];
    ws.on("open", () => ws.send(connect));
    ws.on("message", (data: Buffer) => {
      received.push(data[0]!);
      if (received.length === 1) for (const p of then) ws.send(p);
    });
    ws.on("close", (code, reason) => resolve({ received, code, reason: reason.toString() }));
    ws.on("error", reject);
  });
}

/** A CONNACK's first byte (a PUBACK's would be 0x40). */
const CONNACK = 0x20;

/** A QoS 1 publish: "acked" with its PUBACK, "closed" when RabbitMQ closes the connection instead. */
function publishOutcome(c: MqttClient, topic: string, payload: string): Promise<"acked" | "closed"> {
  return new Promise((resolve) => {
    c.once("close", () => resolve("closed"));
    c.publish(topic, payload, { qos: 1 }, (err) => resolve(err ? "closed" : "acked"));
  });
}

const count = (sql: string, ...params: unknown[]) =>
  (t.gateway.db
    .prepare(sql)
    .pluck()
    .get(...params) as number) ?? 0;

/** What RabbitMQ asked about one device, in order, with the fields that differ per connection left out. */
function askedAbout(id: string): Asked[] {
  return asked
    .filter((a) => a.fields.username === id)
    .map(({ endpoint, fields }) => {
      const { ip: _ip, ...rest } = fields;
      return { endpoint, fields: rest };
    });
}

beforeAll(async () => {
  const httpPort = await freePort();
  let relayPort = await freePort();
  while (relayPort === httpPort) relayPort = await freePort();
  relay = await startRelay(httpPort, relayPort);
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${relayPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
    webMqtt: true,
  });
  console.info(`RabbitMQ with Web MQTT accepted connections after ${rabbit.startupMs} ms`);
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      staff: Object.values(STAFF),
      cluster: {
        rabbitmq: {
          enabled: true,
          username: CALLER,
          secret: SECRET,
          ingest: { url: `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}` },
        },
      },
    },
  });
  for (const [id, roomId] of [
    [WS_RADAR, "r2"],
    [TCP_RADAR, "r2"],
    [WS_OTHER, "r2"],
  ] as const) {
    // Enrolled as an operator does: the gateway generates the secret and shows it once.
    const { secret } = t.gateway.registry.add({
      id,
      profile: "ata/native",
      siteId: "home-a",
      unitId: "unit-1",
      roomId,
    });
    secrets.set(id, secret!);
  }
  anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await anna?.close();
  await t?.stop();
  await rabbit?.stop();
  await new Promise((r) => relay?.close(r));
}, 60_000);

describe("devices on MQTT over WebSocket through RabbitMQ's Web MQTT plugin", () => {
  it("an enrolled device logs in with its secret, a QoS 1 fall gets its PUBACK, is logged and raises the same alert as over TCP", async () => {
    const ws = await connectWs(WS_RADAR, secrets.get(WS_RADAR)!);
    const tcp = await connectDevice(rabbit.mqttPort, TCP_RADAR, secrets.get(TCP_RADAR)!);
    clients.push(tcp);
    const fall = (eventId: string) =>
      JSON.stringify({ eventId, type: "fall.detected", data: { confidence: 0.91 } });

    const raisedWs = anna.next(
      (m) => m.type === "alert" && m.change === "raised" && m.alert.deviceId === WS_RADAR,
    );
    expect(await publishOutcome(ws, deviceTopic(WS_RADAR, "events"), fall("ws-fall-1"))).toBe("acked");
    const viaWs = (await raisedWs).alert;

    const raisedTcp = anna.next(
      (m) => m.type === "alert" && m.change === "raised" && m.alert.deviceId === TCP_RADAR,
    );
    await publish(tcp, deviceTopic(TCP_RADAR, "events"), fall("tcp-fall-1"));
    const viaTcp = (await raisedTcp).alert;

    expect(viaWs).toMatchObject({ type: "fall", priority: "high", site: "home-a", room: "r2" });
    // Everything but the alert's own identity, its device, room and times is the same.
    const comparable = (a: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(a).filter(
          ([k, v]) => !/id$|Id$|At$|^room$|^seq$/.test(k) && !(typeof v === "number" && k.endsWith("Ms")),
        ),
      );
    expect(comparable(viaWs)).toEqual(comparable(viaTcp));

    const row = (id: string) =>
      t.gateway.db
        .prepare("SELECT type, phase, priority, site_id, unit_id, data, topic FROM events WHERE event_id = ?")
        .get(id) as Record<string, string>;
    const logged = row("ws-fall-1");
    expect(logged).toMatchObject({ type: "fall.detected", site_id: "home-a", topic: "events" });
    expect(logged).toEqual(row("tcp-fall-1"));
  });

  it("RabbitMQ asks the gateway the same questions for a WebSocket device as for a TCP one", async () => {
    // The two connections above: login, vhost, the exchange and the topic of one publish each.
    const ws = askedAbout(WS_RADAR);
    const tcp = askedAbout(TCP_RADAR);
    expect(ws.map((a) => a.endpoint)).toEqual(expect.arrayContaining(["user", "vhost", "resource", "topic"]));
    const rename = (list: Asked[], from: string, to: string) =>
      list.map((a) => JSON.parse(JSON.stringify(a).replaceAll(from, to)) as Asked);
    expect(rename(ws, WS_RADAR, "<device>")).toEqual(rename(tcp, TCP_RADAR, "<device>"));
    // The device's address comes with the vhost check on both listeners (the WebSocket's peer).
    for (const id of [WS_RADAR, TCP_RADAR])
      expect(asked.find((a) => a.endpoint === "vhost" && a.fields.username === id)?.fields.ip).toBe(
        "127.0.0.1",
      );
    // The client id comes with every question; no field names the transport.
    for (const a of ws) expect(a.fields.client_id ?? a.fields["variable_map.client_id"]).toBe(WS_RADAR);
    expect(ws.flatMap((a) => Object.keys(a.fields)).filter((k) => /protocol|transport/i.test(k))).toEqual([]);
    console.info(`RabbitMQ 3.10 asks for a Web MQTT device: ${JSON.stringify(ws)}`);
  });

  it("a wrong secret is refused at CONNECT: RabbitMQ 3.10 closes the WebSocket (1002, unauthenticated) before the CONNACK 4 it queued goes out", async () => {
    // rabbit_web_mqtt_handler answers the processor's error with a close frame at once; the CONNACK
    // the processor sent itself as a message is never written. A device sees no return code.
    const raw = await rawWebMqtt(connectPacket(WS_OTHER, "not-the-secret-0123456789"));
    expect(raw).toEqual({ received: [], code: 1002, reason: "unauthenticated" });
    const viaMqttJs = await connectWs(WS_OTHER, "not-the-secret-0123456789").then(
      () => "connected",
      (e: Error & { code?: number }) => e.code ?? e.message,
    );
    expect(viaMqttJs).toBe("connection closed before CONNACK");
    t.gateway.security.flush(true);
    const refused = t.gateway.security
      .list({ kinds: ["connect_refused"], limit: 50 })
      .filter((r) => r.subject === WS_OTHER && r.detail.via === "rabbitmq");
    expect(refused.map((r) => r.detail.reason)).toEqual(["bad_secret", "bad_secret"]);
  });

  it("publishing on another device's topic closes the WebSocket (1002, unauthorized) without a PUBACK, and nothing is logged", async () => {
    const c = await connectWs(WS_OTHER, secrets.get(WS_OTHER)!);
    const forged = JSON.stringify({ eventId: "ws-forged-1", type: "fall.detected" });
    expect(await publishOutcome(c, deviceTopic(WS_RADAR, "events"), forged)).toBe("closed");
    const raw = await rawWebMqtt(connectPacket(WS_OTHER, secrets.get(WS_OTHER)!), [
      publishPacket(
        deviceTopic(WS_RADAR, "events"),
        JSON.stringify({ eventId: "ws-forged-2", type: "fall.detected" }),
      ),
    ]);
    expect(raw).toEqual({ received: [CONNACK], code: 1002, reason: "unauthorized" });
    t.gateway.security.flush(true);
    const denied = t.gateway.security
      .list({ kinds: ["topic_denied"], limit: 50 })
      .filter((r) => r.subject === WS_OTHER)
      .map((r) => r.detail);
    expect(denied).toContainEqual({
      action: "publish",
      topic: deviceTopic(WS_RADAR, "events"),
      via: "rabbitmq",
    });
    // The device's own publish afterwards (on a new connection) is consumed: had the forged one
    // been routed, it would have been committed before it.
    const again = await connectWs(WS_OTHER, secrets.get(WS_OTHER)!);
    await publish(
      again,
      deviceTopic(WS_OTHER, "events"),
      JSON.stringify({ eventId: "ws-own-1", type: "device.heartbeat", data: { battery: 77 } }),
    );
    await eventually(() => count("SELECT count(*) FROM events WHERE event_id = 'ws-own-1'") === 1);
    expect(count("SELECT count(*) FROM events WHERE event_id LIKE 'ws-forged-%'")).toBe(0);
    expect(count("SELECT count(*) FROM dead_letters WHERE device_id = ?", WS_RADAR)).toBe(0);
  });

  it("a device subscribes to its own commands over WebSocket; subscribing to another device's closes the connection, as over TCP", async () => {
    const c = await connectWs(WS_OTHER, secrets.get(WS_OTHER)!);
    const subscribe = (topic: string) =>
      new Promise<number | "closed">((resolve) => {
        c.once("close", () => resolve("closed"));
        c.subscribe(topic, { qos: 1 }, (err, granted) =>
          resolve(err || !granted?.[0] ? "closed" : granted[0].qos),
        );
      });
    expect(await subscribe(commandTopic(WS_OTHER))).toBe(1);
    expect(await subscribe(commandTopic(WS_RADAR))).toBe("closed");
    t.gateway.security.flush(true);
    const denied = t.gateway.security
      .list({ kinds: ["topic_denied"], limit: 50 })
      .filter((r) => r.subject === WS_OTHER)
      .map((r) => r.detail);
    expect(denied).toContainEqual({ action: "subscribe", topic: commandTopic(WS_RADAR), via: "rabbitmq" });
  });
});
