/**
 * Cluster mode's first piece, end to end: a real RabbitMQ 3.10 node whose MQTT plugin asks a real
 * gateway (rabbitmq_auth_backend_http, POST) who may connect, publish and subscribe. Devices are
 * mqtt.js clients on RabbitMQ's MQTT port; the answers come from the gateway's registry and topic
 * rules, and refusals land in the gateway's security log.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { commandTopic, deviceTopic } from "../../src/broker/topics.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import type { SecurityLogRow } from "../../src/security/log.js";
import { connectDevice, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
/** Failed logins per device id before it is refused unchecked (mqtt.authFailures.max). */
const MAX_FAILURES = 4;

let t: TestGateway;
let rabbit: RabbitNode;
const clients: MqttClient[] = [];
const secrets = new Map<string, string>();

/** Devices of this test, registered with generated secrets. */
const OK = "cl-pendant-1";
const OTHER = "cl-pendant-2";
const DOTTED = "ward.7";
const PLAIN = "ward";
const DISABLED = "cl-disabled";
const LOCKED = "cl-locked";
const WRONG = "cl-wrong-secret";

function connack(attempt: Promise<MqttClient>): Promise<number | undefined> {
  return attempt.then(
    (c) => {
      clients.push(c);
      return 0;
    },
    (e: { code?: number }) => e.code,
  );
}

async function device(id: string): Promise<MqttClient> {
  const c = await connectDevice(rabbit.mqttPort, id, secrets.get(id)!);
  clients.push(c);
  return c;
}

/** A QoS 1 publish: "acked" with its PUBACK, "closed" when RabbitMQ closes the connection instead. */
function publishOutcome(c: MqttClient, topic: string): Promise<"acked" | "closed"> {
  return new Promise((resolve) => {
    c.once("close", () => resolve("closed"));
    c.publish(topic, JSON.stringify({ type: "device.heartbeat" }), { qos: 1 }, (err) =>
      resolve(err ? "closed" : "acked"),
    );
  });
}

/** A subscription: the granted QoS, or "closed" when RabbitMQ closes the connection instead. */
function subscribeOutcome(c: MqttClient, topic: string): Promise<number | "closed"> {
  return new Promise((resolve) => {
    c.once("close", () => resolve("closed"));
    c.subscribe(topic, { qos: 1 }, (err, granted) =>
      resolve(err || !granted?.[0] ? "closed" : granted[0].qos),
    );
  });
}

function rows(kind: SecurityLogRow["kind"], subject: string | null): SecurityLogRow[] {
  t.gateway.security.flush(true);
  return t.gateway.security
    .list({ kinds: [kind], limit: 200 })
    .filter((r) => r.subject === subject && r.detail.via === "rabbitmq");
}

function post(path: string, form: Record<string, string>, authorization?: string) {
  return fetch(`${t.httpUrl}${RABBIT_AUTH_BASE}/${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(authorization ? { authorization } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
}

const basic = (user: string, secret: string) =>
  `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`;

beforeAll(async () => {
  t = await startGateway({
    overrides: {
      mqtt: {
        tcp: { host: "127.0.0.1", port: 0 },
        ws: { enabled: false, port: 0 },
        authFailures: { max: MAX_FAILURES, windowSec: 60 },
      },
      cluster: { rabbitmq: { enabled: true, username: CALLER, secret: SECRET } },
    },
  });
  const profile = PROFILES[0]!.id;
  for (const id of [OK, OTHER, DOTTED, PLAIN, DISABLED, LOCKED, WRONG]) {
    const { secret } = t.gateway.registry.add({ id, profile, siteId: "home-a", unitId: "unit-1" });
    secrets.set(id, secret!);
  }
  t.gateway.registry.setEnabled(DISABLED, false);
  const port = new URL(t.httpUrl).port;
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${port}${RABBIT_AUTH_BASE}`,
  });
  // Measured for docs/cluster.md; the start-up varies with the machine's load.
  console.info(`RabbitMQ node ${rabbit.nodeName} accepted MQTT after ${rabbit.startupMs} ms`);
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await rabbit?.stop();
  await t?.stop();
}, 60_000);

describe("RabbitMQ's MQTT plugin with the gateway as its auth backend", () => {
  it("a registered device connects with its id and secret, and its QoS 1 publish on its own topic is acknowledged", async () => {
    const c = await device(OK);
    expect(await publishOutcome(c, deviceTopic(OK, "events"))).toBe("acked");
    expect(await subscribeOutcome(c, commandTopic(OK))).toBe(1);
    expect(c.connected).toBe(true);
  });

  it("a QoS 1 publish that no queue takes still gets its PUBACK (3.10 confirms unroutable messages): the ingest queue must exist before devices publish", async () => {
    // Nothing is bound for ata.v1.*.heartbeat on this node: no ingest queue is built yet, and the
    // device's own subscription queues are bound to its commands topic only.
    const c = await device(OTHER);
    expect(await publishOutcome(c, deviceTopic(OTHER, "heartbeat"))).toBe("acked");
  });

  it("a device id with a dot publishes on its own topic, though RabbitMQ writes '/' and '.' alike in routing keys", async () => {
    const c = await device(DOTTED);
    expect(await publishOutcome(c, deviceTopic(DOTTED, "events"))).toBe("acked");
  });

  it("a wrong secret is refused with CONNACK 4 and a security-log row", async () => {
    expect(await connack(connectDevice(rabbit.mqttPort, WRONG, "not-the-secret-0123456789"))).toBe(4);
    expect(rows("connect_refused", WRONG).map((r) => r.detail.reason)).toContain("bad_secret");
  });

  it("an unknown device is refused, and the log does not name the id it tried", async () => {
    expect(await connack(connectDevice(rabbit.mqttPort, "nobody-here", "whatever-secret-0123"))).toBe(4);
    expect(rows("connect_refused", null).map((r) => r.detail.reason)).toContain("unknown");
  });

  it("a disabled device is refused even with its right secret", async () => {
    expect(await connack(connectDevice(rabbit.mqttPort, DISABLED, secrets.get(DISABLED)!))).toBe(4);
    expect(rows("connect_refused", DISABLED).map((r) => r.detail.reason)).toContain("disabled");
  });

  it("a client id other than the device id is refused: it would take over that client id's session", async () => {
    const attempt = connectDevice(rabbit.mqttPort, OTHER, secrets.get(OTHER)!, { clientId: OK });
    expect(await connack(attempt)).toBe(4);
    expect(rows("connect_refused", OTHER).map((r) => r.detail.reason)).toContain("client_id_mismatch");
  });

  it("publishing on another device's topic closes the connection without a PUBACK (RabbitMQ 3.10)", async () => {
    const c = await device(OK);
    expect(await publishOutcome(c, deviceTopic(OTHER, "events"))).toBe("closed");
    const denied = rows("topic_denied", OK).map((r) => r.detail);
    expect(denied).toContainEqual({
      action: "publish",
      topic: deviceTopic(OTHER, "events"),
      via: "rabbitmq",
    });
  });

  it("publishing on the gateway's own channel of the device (commands) is refused like on the embedded broker", async () => {
    const c = await device(OK);
    expect(await publishOutcome(c, commandTopic(OK))).toBe("closed");
  });

  it("a device cannot pass as a dotted id's device: ata/v1/ward/7/events is ward.7's routing key", async () => {
    const c = await device(PLAIN);
    expect(await publishOutcome(c, "ata/v1/ward/7/events")).toBe("closed");
    expect(rows("topic_denied", PLAIN).map((r) => r.detail.topic)).toContain(deviceTopic(DOTTED, "events"));
  });

  it("subscribing to another device's commands closes the connection without a SUBACK (RabbitMQ 3.10)", async () => {
    const c = await device(OK);
    expect(await subscribeOutcome(c, commandTopic(OTHER))).toBe("closed");
    const denied = rows("topic_denied", OK).map((r) => r.detail);
    expect(denied).toContainEqual({ action: "subscribe", topic: commandTopic(OTHER), via: "rabbitmq" });
  });

  it("repeated failures for one device id are throttled as on the embedded broker: then even the right secret is refused", async () => {
    for (let i = 0; i < MAX_FAILURES; i++)
      expect(await connack(connectDevice(rabbit.mqttPort, LOCKED, `wrong-secret-${i}-0123456789`))).toBe(4);
    expect(await connack(connectDevice(rabbit.mqttPort, LOCKED, secrets.get(LOCKED)!))).toBe(4);
    expect(rows("connect_throttled", LOCKED).map((r) => r.detail.reason)).toContain("throttled");
    // Another device is not held back by it.
    expect(await connack(connectDevice(rabbit.mqttPort, OTHER, secrets.get(OTHER)!))).toBe(0);
  });

  it("the endpoints refuse requests without the shared secret (401), and answer allow with it", async () => {
    const form = { username: OK, password: secrets.get(OK)!, vhost: "/", client_id: OK };
    const none = await post("user", form);
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe("unauthenticated");
    expect((await post("user", form, basic(CALLER, "not-the-shared-secret-0123456789"))).status).toBe(401);
    expect((await post("user", form, basic("someone-else", SECRET))).status).toBe(401);
    const ok = await post("user", form, basic(CALLER, SECRET));
    expect([ok.status, await ok.text()]).toEqual([200, "allow"]);
    const viaGet = await fetch(
      `${t.httpUrl}${RABBIT_AUTH_BASE}/vhost?${new URLSearchParams({ username: OK, vhost: "/", ip: "10.0.0.7" })}`,
      { headers: { authorization: basic(CALLER, SECRET) } },
    );
    expect(await viaGet.text()).toBe("allow");
    t.gateway.security.flush(true);
    const failed = t.gateway.security.list({ kinds: ["backend_auth_failed"], limit: 10 });
    expect(new Set(failed.map((r) => r.detail.reason))).toEqual(new Set(["bad_secret", "no_credentials"]));
  });
});
