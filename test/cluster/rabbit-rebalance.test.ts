/**
 * The ingest load spread on a real RabbitMQ 3.10 node (src/cluster/rabbit-ingest.ts, "Load spread"):
 * two `RabbitIngest` consumers in this process stand for two gateway nodes, with the live nodes
 * injected as PostgreSQL would give them, committing to one shared event log that drops what it
 * already holds (the event log's unique eventId), as test/cluster/rabbit-partitions.test.ts does.
 * Each node commits in its delivery order after a random wait, as a group commit of its own would.
 * Devices publish numbered sequences QoS 1 through the MQTT plugin at a steady rate while the
 * queues move from the first node to the second.
 */
import type { Socket } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { RabbitIngestConfig } from "../../src/cluster/config.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { preferredNode } from "../../src/cluster/rabbit-balance.js";
import { RabbitIngest } from "../../src/cluster/rabbit-ingest.js";
import type { IngestResult } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { ADMIN_TOKEN, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.balance";
const PARTITIONS = 4;
const DEVICES = 16;
/** Each device publishes one event every PACE_MS, with at most WINDOW without a PUBACK. */
const PACE_MS = 40;
const WINDOW = 10;
/** The load spread's waits in this test: membership stable 1 s, checked every 200 ms. */
const BALANCE = { enabled: true, stableMs: 1_000, checkMs: 200, activeMs: 1_000 };
/** Named so that rendezvous hashing splits the 4 queues 2 and 2 (asserted below). */
const N1 = "node-1";
const N2 = "node-2";

let rabbit: RabbitNode;
let t: TestGateway;

/** The event log both nodes commit to: what it already holds is dropped, as the eventId dedupe does. */
interface SharedLog {
  byDevice: Map<string, number[]>;
  ids: Set<string>;
  duplicates: number;
}

interface GatewayNode {
  name: string;
  ingest: RabbitIngest;
  committed: number;
  tail: Promise<void>;
  /** Commits take 10 ms each: deliveries pile up unacked (still arriving, as acks make room). */
  slow: boolean;
}

async function startNode(name: string, log: SharedLog, live: () => string[]): Promise<GatewayNode> {
  const config = RabbitIngestConfig.parse({
    url: `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`,
    queue: QUEUE,
    partitions: PARTITIONS,
    prefetch: 50,
    reconnect: { minMs: 100, maxMs: 500 },
    balance: BALANCE,
  });
  const node: GatewayNode = {
    name,
    committed: 0,
    tail: Promise.resolve(),
    slow: false,
    ingest: null as unknown as RabbitIngest,
  };
  const commit = (deviceId: string, payload: Buffer): Promise<IngestResult> => {
    const { eventId, seq } = JSON.parse(payload.toString("utf8")) as { eventId: string; seq: number };
    // In delivery order, each after a wait of 0-4 ms: this node's commits, one after the other.
    const done = node.tail
      .then(() => new Promise((r) => setTimeout(r, node.slow ? 10 : Math.random() * 4)))
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
    balance: { nodeId: name, liveNodes: async () => live() },
    log: silentLogger(),
  });
  await node.ingest.start();
  return node;
}

interface Device {
  id: string;
  client: MqttClient;
  sent: number;
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
      resolve({ id, client, sent: 0, acked: 0, inflight: 0 });
    });
    setTimeout(() => reject(new Error(`${id} did not connect`)), 10_000);
  });
}

/**
 * Publish 1, 2, 3... one every PACE_MS (fewer while WINDOW are without a PUBACK) until `running()`
 * says stop; resolves once every publish is PUBACKed.
 */
function publishSteadily(d: Device, running: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (!running()) {
        clearInterval(timer);
        if (d.inflight === 0) resolve();
        return;
      }
      if (d.inflight >= WINDOW) return;
      const seq = ++d.sent;
      d.inflight++;
      const body = JSON.stringify({ eventId: `${d.id}-${seq}`, seq });
      d.client.publish(deviceTopic(d.id, "events"), body, { qos: 1 }, (err) => {
        d.inflight--;
        if (err) return reject(err);
        d.acked++;
        if (!running() && d.inflight === 0) resolve();
      });
    }, PACE_MS);
  });
}

beforeAll(async () => {
  const httpPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  // The gateway answers RabbitMQ's auth backend only; the consumers are the test's own.
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      devices: Array.from({ length: DEVICES }, (_, i) => ({
        id: `rb-${i}`,
        profile: "ata/native",
        secret: `secret-rb-${i}-0123`,
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

describe("partitioned ingest: load spread over two gateway nodes", () => {
  it(`a second node joining takes the queues rendezvous hashing gives it, while ${DEVICES} devices publish steadily: every PUBACKed publish logged once and in publish order`, async () => {
    const queues = Array.from({ length: PARTITIONS }, (_, k) => `${QUEUE}.${k}`);
    const forN1 = queues.filter((q) => preferredNode(q, [N1, N2]) === N1);
    const forN2 = queues.filter((q) => preferredNode(q, [N1, N2]) === N2);
    expect([forN1.length, forN2.length]).toEqual([2, 2]);

    let live = [N1];
    const log: SharedLog = { byDevice: new Map(), ids: new Set(), duplicates: 0 };
    const a = await startNode(N1, log, () => live);
    let b: GatewayNode | null = null;
    const devices: Device[] = [];
    let running = true;
    try {
      for (let i = 0; i < DEVICES; i++) devices.push(await connectDevice(`rb-${i}`));
      const published = Promise.all(devices.map((d) => publishSteadily(d, () => running)));

      // Alone, the first node is active on every queue, and gives none up.
      await eventually(() => a.ingest.activeQueues().length === PARTITIONS, 20_000, 20);
      expect(a.ingest.status().givenUp).toBe(0);

      // The second node registers on every queue (standby behind the first), then counts as live.
      b = await startNode(N2, log, () => live);
      const bNode = b;
      await new Promise((r) => setTimeout(r, 2 * BALANCE.checkMs));
      expect(bNode.committed).toBe(0);
      const joined = performance.now();
      const loggedAtJoin = log.ids.size;
      // The first node falls behind, so that it gives the queues up with deliveries in hand.
      a.slow = true;
      live = [N1, N2];

      const split = () =>
        JSON.stringify(a.ingest.activeQueues()) === JSON.stringify(forN1) &&
        JSON.stringify(bNode.ingest.activeQueues()) === JSON.stringify(forN2);
      await eventually(split, 20_000, 20);
      const took = performance.now() - joined;
      a.slow = false;
      const aStatus = a.ingest.status();
      console.info(
        `split ${forN1.join(",")} / ${forN2.join(",")} ${Math.round(took)} ms after the join (stableMs ${BALANCE.stableMs}, checkMs ${BALANCE.checkMs}, activeMs ${BALANCE.activeMs}); ${loggedAtJoin} logged at the join; ${aStatus.givenUpUnacked} deliveries unacked in ${N1}'s hands at its give-ups`,
      );
      expect(took).toBeLessThan(BALANCE.stableMs + 3 * BALANCE.checkMs + 2 * BALANCE.activeMs + 2_000);
      // One step: the first node gave up exactly the second's queues, and the second gave up none.
      expect(aStatus.givenUp).toBe(2);
      expect(aStatus.queues.filter((q) => q.givenUp > 0).map((q) => q.name)).toEqual(forN2);
      expect(bNode.ingest.status().givenUp).toBe(0);
      // Mid-work: the first node held deliveries it had not acked when it gave the queues up.
      expect(aStatus.givenUpUnacked).toBeGreaterThan(0);

      // It stays so.
      await new Promise((r) => setTimeout(r, 3 * BALANCE.stableMs));
      expect(split()).toBe(true);
      expect(a.ingest.status().givenUp).toBe(2);
      expect(bNode.ingest.status().givenUp).toBe(0);
      expect(a.ingest.status().balance?.liveNodes).toEqual([N1, N2]);

      running = false;
      await published;
      const total = devices.reduce((n, d) => n + d.acked, 0);
      await eventually(() => log.ids.size === total, 30_000);
      console.info(
        `${total} publishes; committed: ${N1} ${a.committed}, ${N2} ${bNode.committed}, dropped as already logged ${log.duplicates}`,
      );
      expect(bNode.committed).toBeGreaterThan(0);
      for (const d of devices) {
        expect(d.acked, d.id).toBe(d.sent);
        expect(log.byDevice.get(d.id), d.id).toEqual(Array.from({ length: d.sent }, (_, i) => i + 1));
      }
    } finally {
      running = false;
      for (const d of devices) d.client.end(true);
      await a.ingest.stop();
      await b?.ingest.stop();
    }
  }, 120_000);
});
