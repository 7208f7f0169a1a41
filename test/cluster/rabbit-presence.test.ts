/**
 * Device presence from RabbitMQ's connections (src/cluster/rabbit-connections.ts, the ingest
 * consumer's `<queue>.connections`): a real RabbitMQ 3.10 node with rabbitmq_event_exchange, the
 * gateway answering its auth backend and consuming, mqtt.js devices on RabbitMQ's MQTT listener. A
 * device is online from its connect, before it publishes anything, and a device whose TCP
 * connection is cut without DISCONNECT (no last will set) is offline within a bound measured here,
 * long before heartbeat supervision (ata/native: 3 x 60 s) could notice.
 */
import { performance } from "node:perf_hooks";
import amqp, { type ChannelModel } from "amqplib";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import {
  ADMIN_TOKEN,
  connectDevice,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.ingest";
const RADAR = deviceIdFor("ata/native");
const ROUNDS = 5;

let rabbit: RabbitNode;
let t: TestGateway | null = null;
let conn: ChannelModel;
const devices: MqttClient[] = [];

const gw = () => t!.gateway;
const offlineEvents = () =>
  gw()
    .db.prepare("SELECT data FROM events WHERE device_id = ? AND type = 'device.offline' ORDER BY seq")
    .pluck()
    .all(RADAR) as string[];

beforeAll(async () => {
  const httpPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
    eventExchange: true,
  });
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`;
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      cluster: {
        rabbitmq: {
          enabled: true,
          username: CALLER,
          secret: SECRET,
          ingest: { url: amqpUrl, queue: QUEUE, reconnect: { minMs: 200, maxMs: 2000 } },
        },
      },
    },
  });
  conn = await amqp.connect(amqpUrl);
}, 90_000);

afterAll(async () => {
  for (const d of devices) d.end(true);
  await conn?.close().catch(() => undefined);
  await t?.stop();
  await rabbit?.stop();
}, 60_000);

describe("device presence from RabbitMQ's connection events", () => {
  it("the gateway consumes connection.created and connection.closed from amq.rabbitmq.event on one quorum queue with a single active consumer", async () => {
    const ch = await conn.createChannel();
    const q = await ch.checkQueue(`${QUEUE}.connections`);
    expect(q.consumerCount).toBe(1);
    await ch.close();
    expect(gw().rabbitIngest!.status().connectionEvents).toBe(true);
  });

  it(`a device is online from its connect, and after its TCP connection is cut without DISCONNECT it is offline within a second, ${ROUNDS} times`, async () => {
    const took: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const before = offlineEvents().length;
      // No publish at all: only the connection can make it online.
      const device = await connectDevice(rabbit.mqttPort, RADAR, secretFor("ata/native"), {
        reconnectPeriod: 0,
      });
      devices.push(device);
      await eventually(() => gw().presence.status(RADAR).connected, 5000);
      expect(gw().presence.status(RADAR).online).toBe(true);

      const t0 = performance.now();
      // The socket closed under the client: no DISCONNECT packet, no last will set.
      (device as unknown as { stream: { destroy(): void } }).stream.destroy();
      await eventually(() => !gw().presence.status(RADAR).online, 5000, 5);
      took.push(performance.now() - t0);
      expect(gw().presence.status(RADAR).connected).toBe(false);
      await eventually(() => offlineEvents().length === before + 1, 5000);
      expect(JSON.parse(offlineEvents().at(-1)!)).toMatchObject({ reason: "connection closed (RabbitMQ)" });
    }
    console.info(
      `TCP cut -> offline: ${took.map((ms) => ms.toFixed(1)).join(", ")} ms (max ${Math.max(...took).toFixed(1)})`,
    );
    expect(Math.max(...took)).toBeLessThan(1000);
  }, 60_000);

  it("a device that reconnects while its old session is still open stays online: no offline between them", async () => {
    const before = offlineEvents().length;
    const first = await connectDevice(rabbit.mqttPort, RADAR, secretFor("ata/native"), {
      reconnectPeriod: 0,
    });
    devices.push(first);
    await eventually(() => gw().presence.status(RADAR).online, 5000);
    // The same client id again: RabbitMQ closes the first session for the second.
    const second = await connectDevice(rabbit.mqttPort, RADAR, secretFor("ata/native"), {
      reconnectPeriod: 0,
    });
    devices.push(second);
    await eventually(() => first.disconnected || !first.connected, 5000);
    // Both events handled: a close and a create for the device went through the queue.
    await eventually(
      async () =>
        await conn.createChannel().then(async (c) => {
          const q = await c.checkQueue(`${QUEUE}.connections`);
          await c.close();
          return q.messageCount === 0;
        }),
      5000,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(gw().presence.status(RADAR)).toMatchObject({ online: true, connected: true });
    expect(offlineEvents().length).toBe(before);
    second.end(true);
  }, 30_000);
});
