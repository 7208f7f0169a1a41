/**
 * Partitioned ingest on a real RabbitMQ 3.10 node: devices publish numbered sequences QoS 1 through
 * the MQTT plugin (a gateway answering its auth backend), and two `RabbitIngest` consumers in this
 * process stand for two gateway nodes, each committing to one shared event log that drops what it
 * already holds (the event log's unique eventId). Each node commits in its delivery order after a
 * random wait, as a group commit of its own would; two nodes taking turns on one queue therefore
 * commit a device's publishes out of order, which is what partitions with single active consumers
 * prevent.
 *
 * Each node reaches RabbitMQ through a TCP proxy of its own, so that a test can cut a node's AMQP
 * connection as a network fault or a dying process would, without RabbitMQ being told anything.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import amqp, { type ConsumeMessage } from "amqplib";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { RabbitIngestConfig } from "../../src/cluster/config.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { RabbitIngest } from "../../src/cluster/rabbit-ingest.js";
import type { IngestResult } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { ADMIN_TOKEN, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.part";
const PARTITIONS = 4;
const DEVICES = 20;
/** Publishes per device, and how many a device keeps without a PUBACK. */
const PER_DEVICE = 150;
const WINDOW = 10;

let rabbit: RabbitNode;
let amqpUrl: string;
let t: TestGateway;

/** A TCP proxy in front of RabbitMQ's AMQP port whose connections can be cut. */
interface Proxy {
  port: number;
  cut(): void;
  close(): Promise<void>;
}

async function startProxy(target: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The event log both nodes commit to: what it already holds is dropped, as the eventId dedupe does. */
interface SharedLog {
  byDevice: Map<string, number[]>;
  ids: Set<string>;
  duplicates: number;
}

/** A gateway node: its consumer, its proxy, and what it committed. */
interface GatewayNode {
  name: string;
  ingest: RabbitIngest;
  proxy: Proxy;
  committed: number;
  tail: Promise<void>;
}

async function startNode(name: string, log: SharedLog, partitions: number): Promise<GatewayNode> {
  const proxy = await startProxy(rabbit.amqpPort);
  const config = RabbitIngestConfig.parse({
    url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    queue: QUEUE,
    partitions,
    prefetch: 50,
    reconnect: { minMs: 100, maxMs: 500 },
  });
  const node: GatewayNode = {
    name,
    proxy,
    committed: 0,
    tail: Promise.resolve(),
    ingest: null as unknown as RabbitIngest,
  };
  const commit = (deviceId: string, payload: Buffer): Promise<IngestResult> => {
    const { eventId, seq } = JSON.parse(payload.toString("utf8")) as { eventId: string; seq: number };
    // In delivery order, each after a wait of 0-2 ms: this node's commits, one after the other.
    const done = node.tail
      .then(() => new Promise((r) => setTimeout(r, Math.random() * 2)))
      .then((): IngestResult => {
        node.committed++;
        if (log.ids.has(eventId)) {
          log.duplicates++;
          return { ok: true, events: 0, duplicates: 1 };
        }
        log.ids.add(eventId);
        const list = log.byDevice.get(deviceId) ?? [];
        list.push(seq);
        log.byDevice.set(deviceId, list);
        return { ok: true, events: 1, duplicates: 0 };
      });
    node.tail = done.then(() => undefined);
    return done;
  };
  node.ingest = new RabbitIngest({
    config,
    exchange: "amq.topic",
    submit: (deviceId, _topic, _channel, payload) => commit(deviceId, payload),
    refuse: () => Promise.reject(new Error("nothing in this test is refused")),
    status: () => {},
    admits: () => "yes",
    log: silentLogger(),
  });
  await node.ingest.start();
  return node;
}

interface Device {
  id: string;
  client: MqttClient;
  acked: number;
  inflight: number;
}

function connectDevice(id: string): Promise<Device> {
  const client = mqtt.connect({
    host: "127.0.0.1",
    port: rabbit.mqttPort,
    clientId: id,
    username: id,
    password: `secret-${id}-0123`,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  client.on("error", () => {});
  return new Promise((resolve, reject) => {
    client.once("connect", () => {
      (client.stream as unknown as Socket).setNoDelay(true);
      resolve({ id, client, acked: 0, inflight: 0 });
    });
    setTimeout(() => reject(new Error(`${id} did not connect`)), 10_000);
  });
}

/** Publish 1..PER_DEVICE in order, at most WINDOW without a PUBACK; resolves once all are PUBACKed. */
function publishSequence(d: Device): Promise<void> {
  let next = 1;
  return new Promise((resolve, reject) => {
    const topUp = () => {
      while (d.inflight < WINDOW && next <= PER_DEVICE) {
        const seq = next++;
        d.inflight++;
        const body = JSON.stringify({ eventId: `${d.id}-${seq}`, seq });
        d.client.publish(deviceTopic(d.id, "events"), body, { qos: 1 }, (err) => {
          d.inflight--;
          if (err) return reject(err);
          d.acked++;
          if (d.acked === PER_DEVICE) resolve();
          else topUp();
        });
      }
    };
    topUp();
  });
}

beforeAll(async () => {
  const httpPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`;
  // The gateway answers RabbitMQ's auth backend only; the consumers are the test's own.
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      devices: Array.from({ length: DEVICES }, (_, i) => ({
        id: `po-${i}`,
        profile: "ata/native",
        secret: `secret-po-${i}-0123`,
        site: "home-a",
        unit: "unit-1",
        room: "r1",
      })),
      cluster: { rabbitmq: { enabled: true, username: CALLER, secret: SECRET } },
    },
  });
}, 90_000);

afterAll(async () => {
  await t?.stop();
  await rabbit?.stop();
}, 60_000);

describe("RabbitMQ 3.10's single active consumer, which partitioned ingest relies on", () => {
  it("the first consumer gets every delivery; when its connection goes, the next gets what it had not acked first, in order, then the rest", async () => {
    const queue = "sac.probe";
    const a = await amqp.connect(amqpUrl);
    const b = await amqp.connect(amqpUrl);
    try {
      const setup = await a.createConfirmChannel();
      await setup.assertQueue(queue, {
        durable: true,
        arguments: { "x-queue-type": "quorum", "x-single-active-consumer": true },
      });
      for (let i = 1; i <= 20; i++) setup.sendToQueue(queue, Buffer.from(String(i)), { persistent: true });
      await setup.waitForConfirms();
      const got = { a: [] as ConsumeMessage[], b: [] as ConsumeMessage[] };
      const chA = await a.createChannel();
      await chA.prefetch(5);
      await chA.consume(queue, (m) => m && got.a.push(m));
      const chB = await b.createChannel();
      await chB.prefetch(5);
      await chB.consume(queue, (m) => m && got.b.push(m));
      await eventually(() => got.a.length === 5);
      // The standby gets nothing while the active consumer has room for more (acks make room).
      chA.ack(got.a[0]!);
      chA.ack(got.a[1]!);
      await eventually(() => got.a.length === 7);
      expect(got.b).toHaveLength(0);
      // A's connection goes with 3..7 unacked: B is given them first, marked redelivered.
      await a.close();
      await eventually(() => got.b.length === 5);
      expect(got.b.map((m) => [m.content.toString(), m.fields.redelivered])).toEqual([
        ["3", true],
        ["4", true],
        ["5", true],
        ["6", true],
        ["7", true],
      ]);
      for (const m of got.b.splice(0)) chB.ack(m);
      const rest: string[] = [];
      await eventually(() => {
        for (const m of got.b.splice(0)) {
          rest.push(m.content.toString());
          chB.ack(m);
        }
        return rest.length >= 13;
      });
      expect(rest).toEqual(Array.from({ length: 13 }, (_, i) => String(i + 8)));
      await chB.deleteQueue(queue);
    } finally {
      await a.close().catch(() => undefined);
      await b.close().catch(() => undefined);
    }
  });
});

describe("partitioned ingest: per-device order with two gateway nodes", () => {
  it(`${DEVICES} devices x ${PER_DEVICE} publishes over ${PARTITIONS} partitions: every PUBACKed publish is committed once and in publish order, across a cut of the active node's connection and a stop of the other`, async () => {
    const log: SharedLog = { byDevice: new Map(), ids: new Set(), duplicates: 0 };
    const a = await startNode("a", log, PARTITIONS);
    const b = await startNode("b", log, PARTITIONS);
    const devices: Device[] = [];
    try {
      for (const n of [a, b]) {
        const s = n.ingest.status();
        expect(s.ready).toBe(true);
        expect(s.queues.map((q) => q.name)).toEqual(
          Array.from({ length: PARTITIONS }, (_, k) => `${QUEUE}.${k}`),
        );
        expect(s.queues.every((q) => q.declared && q.consuming)).toBe(true);
      }
      for (let i = 0; i < DEVICES; i++) devices.push(await connectDevice(`po-${i}`));
      const total = DEVICES * PER_DEVICE;
      const acked = () => devices.reduce((n, d) => n + d.acked, 0);
      const published = Promise.all(devices.map(publishSequence));

      // A registered first on every queue: it alone consumes until its connection goes.
      await eventually(() => log.ids.size > total / 3, 30_000, 5);
      const inFlightAtCut = a.ingest.status().inFlight;
      const loggedAtCut = log.ids.size;
      const bBefore = b.committed;
      a.proxy.cut();
      console.info(
        `cut a's connection with ${loggedAtCut}/${total} logged, ${acked()} PUBACKed, ${inFlightAtCut} deliveries in a's hands; b had committed ${bBefore}`,
      );
      // Mid-work: a held deliveries it had not acked, and most of the stream was still to come.
      expect(inFlightAtCut).toBeGreaterThan(0);
      expect(loggedAtCut).toBeLessThan(total / 2);
      expect(bBefore).toBe(0);

      // B takes over; A comes back as standby on every queue.
      await eventually(() => b.committed > 0, 10_000);
      await eventually(() => a.ingest.status().ready === true, 10_000);
      await eventually(() => log.ids.size > (2 * total) / 3, 30_000, 5);
      const aBeforeStop = a.committed;
      const inFlightAtStop = b.ingest.status().inFlight;
      const loggedAtStop = log.ids.size;
      const bStop = b.ingest.stop();
      console.info(
        `stopping b with ${loggedAtStop}/${total} logged, ${inFlightAtStop} deliveries in b's hands; a had committed ${aBeforeStop}`,
      );
      expect(inFlightAtStop).toBeGreaterThan(0);
      expect(loggedAtStop).toBeLessThan(total);
      await bStop;

      await published;
      await eventually(() => log.ids.size === total, 30_000);
      expect(a.committed).toBeGreaterThan(aBeforeStop);
      console.info(
        `committed: a ${a.committed}, b ${b.committed}, dropped as already logged ${log.duplicates}`,
      );
      const inOrder = Array.from({ length: PER_DEVICE }, (_, i) => i + 1);
      for (const d of devices) expect(log.byDevice.get(d.id), d.id).toEqual(inOrder);
    } finally {
      for (const d of devices) d.client.end(true);
      await a.ingest.stop();
      await b.ingest.stop();
      await a.proxy.close();
      await b.proxy.close();
    }
  }, 120_000);
});
