/**
 * Cluster mode across the loss of a RabbitMQ node: three RabbitMQ 3.10 nodes clustered at boot, the
 * gateway (in this process) answering all three nodes' auth backends and consuming the ingest quorum
 * queue with one URL per node, mqtt.js devices spread over the nodes publishing QoS 1. Under load the
 * node that leads the queue, which is also the node the consumer is on, is killed with SIGKILL. The
 * devices that were on it reconnect to the others and send again what had no PUBACK; the consumer
 * moves to the next node; RabbitMQ delivers what the dead consumer had not acked again, and the
 * pipeline's dedupe drops what was committed.
 *
 * The gateway's AMQP user is RabbitMQ's guest, admitted by the internal backend after the gateway
 * declines it (auth_backends.2 = internal), as in rabbit-ingest.test.ts.
 *
 * The gateway is a cluster node on a real PostgreSQL 15 (cluster.postgres): it acknowledges a
 * delivery only once its events are in the shared event log there, and the falls' alerts are raised
 * by the owner of the site's partition (this node, the only one), so "exactly once" is checked where
 * the cluster keeps it: PostgreSQL's log and alerts.
 */
import type { Socket } from "node:net";
import amqp from "amqplib";
import mqtt, { type MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { ADMIN_TOKEN, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitCluster, type RabbitClusterNode, startRabbitCluster } from "../helpers/rabbitmq.js";

const pgdb = pgTestDatabases("rabbit_failover");
let pool: pg.Pool;

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.ingest";
const DEVICES = 30;
/** Publishes a device keeps without a PUBACK, and how often it tops them up. */
const WINDOW = 10;
const TICK_MS = 40;
/** Load before the kill (plus up to a second at random), and after it. */
const BEFORE_KILL_MS = 2500;
const AFTER_KILL_MS = 4000;

interface Device {
  id: string;
  client: MqttClient;
  sent: Set<string>;
  acked: Set<string>;
  inflight: number;
  /** The MQTT port of the node the device is connected to (0 while it is not). */
  port: number;
  connects: number[];
  pubacks: number[];
}

let cluster: RabbitCluster;
/** A port nothing listens on: the first URL of the consumer's list, a node that is down at start. */
let downPort: number;
let t: TestGateway;
const devices: Device[] = [];
/** Publishes that mqtt.js gave up on, by its error message. */
const publishErrors = new Map<string, number>();

const urlOf = (n: RabbitClusterNode) => `amqp://guest:guest@127.0.0.1:${n.amqpPort}`;
/** PostgreSQL's answer to one query, as rows. */
async function shared<T>(sql: string): Promise<T[]> {
  return (await pool.query(sql)).rows as T[];
}
const count = (sql: string, ...params: unknown[]) =>
  (t.gateway.db
    .prepare(sql)
    .pluck()
    .get(...params) as number) ?? 0;

/** A device whose servers list starts at its own node and goes on round the cluster. */
function connectDevice(id: string, first: number): Promise<Device> {
  const nodes = cluster.nodes;
  const servers = nodes.map((_, k) => ({
    host: "127.0.0.1",
    port: nodes[(first + k) % nodes.length]!.mqttPort,
    protocol: "mqtt" as const,
  }));
  const client = mqtt.connect({
    servers,
    clientId: id,
    username: id,
    password: `secret-${id}-0123`,
    protocolVersion: 4,
    // mqtt.js keeps QoS 1 publishes without a PUBACK in its outgoing store and sends them again
    // after a reconnect, clean session or not; the devices subscribe to nothing.
    clean: true,
    reconnectPeriod: 200,
    connectTimeout: 5000,
  });
  const d: Device = {
    id,
    client,
    sent: new Set(),
    acked: new Set(),
    inflight: 0,
    port: 0,
    connects: [],
    pubacks: [],
  };
  client.on("connect", () => {
    const socket = client.stream as unknown as Socket;
    socket.setNoDelay(true);
    d.port = socket.remotePort ?? 0;
    d.connects.push(performance.now());
  });
  client.on("close", () => {
    d.port = 0;
  });
  client.on("error", () => {});
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(d));
    setTimeout(() => reject(new Error(`${id} did not connect`)), 10_000);
  });
}

function send(d: Device, eventId: string, body: object): void {
  d.sent.add(eventId);
  d.inflight++;
  d.client.publish(deviceTopic(d.id, "events"), JSON.stringify({ eventId, ...body }), { qos: 1 }, (err) => {
    d.inflight--;
    if (err) {
      publishErrors.set(err.message, (publishErrors.get(err.message) ?? 0) + 1);
      return;
    }
    d.acked.add(eventId);
    d.pubacks.push(performance.now());
  });
}

beforeAll(async () => {
  const httpPort = await freePort();
  downPort = await freePort();
  cluster = await startRabbitCluster({
    nodes: 3,
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  console.info(
    `3 RabbitMQ nodes clustered in ${cluster.startupMs} ms (MQTT listeners open after ${cluster.nodes.map((n) => n.startupMs).join(", ")} ms)`,
  );
  const url = await pgdb.fresh();
  pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on("error", () => undefined);
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } },
      devices: Array.from({ length: DEVICES }, (_, i) => ({
        id: `fo-${i}`,
        profile: "ata/native",
        secret: `secret-fo-${i}-0123`,
        site: "home-a",
        unit: "unit-1",
        room: "r1",
      })),
      cluster: {
        postgres: { url, nodeId: "gw-1", partitions: 4, leaseMs: 3_000 },
        rabbitmq: {
          enabled: true,
          username: CALLER,
          secret: SECRET,
          ingest: {
            urls: [`amqp://guest:guest@127.0.0.1:${downPort}`, ...cluster.nodes.map(urlOf)],
            queue: QUEUE,
            reconnect: { minMs: 100, maxMs: 2000 },
          },
        },
      },
    },
  });
  const c0 = performance.now();
  // Each device's first node is its own (i mod 3); a device that finds its node unresponsive goes on to the next.
  for (let i = 0; i < DEVICES; i++) devices.push(await connectDevice(`fo-${i}`, i % cluster.nodes.length));
  console.info(`devices connected in ${Math.round(performance.now() - c0)} ms`);
}, 150_000);

afterAll(async () => {
  for (const d of devices) d.client.end(true);
  await t?.stop();
  await pool?.end();
  await cluster?.stop();
}, 60_000);

describe("kill -9 of a RabbitMQ node under QoS 1 load", () => {
  it("every event a device got a PUBACK for is in PostgreSQL's event log exactly once, and no fall raises two alerts", async () => {
    // The queue has a replica on every node, and the leader is where the consumer declared it
    // (RabbitMQ's client-local leader placement): killing it loses the leader and the consumer at once.
    const status = JSON.parse(
      await cluster.cli(cluster.nodes[1]!, "rabbitmq-queues", [
        "quorum_status",
        QUEUE,
        "--formatter",
        "json",
      ]),
    ) as { "Node Name": string; "Raft State": string }[];
    expect(status.map((s) => s["Node Name"]).sort()).toEqual(cluster.nodes.map((n) => n.nodeName).sort());
    const leaderName = status.find((s) => s["Raft State"] === "leader")?.["Node Name"];
    const victim = cluster.nodes.find((n) => n.nodeName === leaderName)!;
    expect(victim).toBeDefined();
    const ingest = t.gateway.rabbitIngest!;
    // At start the node that was down was passed over for the next one, before the gateway was ready.
    expect(ingest.status()).toMatchObject({
      ready: true,
      url: `amqp://guest@127.0.0.1:${victim.amqpPort}`,
      lastError: expect.stringContaining("ECONNREFUSED"),
    });
    const survivors = cluster.nodes.filter((n) => n !== victim);

    let seq = 0;
    let pumping = true;
    /** Resolved right after a tick has topped the windows up: a kill then finds heartbeats in flight. */
    let afterTick: (() => void) | null = null;
    const pump = setInterval(() => {
      if (!pumping) return;
      for (const d of devices)
        if (d.inflight < WINDOW)
          send(d, `${d.id}-${seq++}`, { type: "device.heartbeat", data: { battery: 50 + (seq % 50) } });
      afterTick?.();
      afterTick = null;
    }, TICK_MS);

    const have = async () =>
      new Set(
        (
          await shared<{ key: string }>(
            "SELECT device_id || '/' || event_id AS key FROM events WHERE device_id LIKE 'fo-%' AND event_id LIKE 'fo-%'",
          )
        ).map((r) => r.key),
      );
    let killAt = 0;
    let consumerBackAt = 0;
    const watch = setInterval(() => {
      const s = ingest.status();
      if (killAt && !consumerBackAt && s.ready && s.url !== `amqp://guest@127.0.0.1:${victim.amqpPort}`)
        consumerBackAt = performance.now();
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, BEFORE_KILL_MS + Math.random() * 1000));
      // The continuation runs before any socket is read again, so no PUBACK comes in between.
      await new Promise<void>((r) => {
        afterTick = r;
      });
      const onVictim = devices.filter((d) => d.port === victim.mqttPort);
      // Half the falls go out just before the kill, half just after (those on the dead node wait in
      // their clients' stores for the reconnect).
      const falls = new Map<string, string>();
      const fall = (d: Device) => {
        falls.set(d.id, `${d.id}-fall`);
        send(d, `${d.id}-fall`, { type: "fall.detected", data: { confidence: 0.9 } });
      };
      const heartbeatsInFlight = onVictim.reduce((n, d) => n + d.inflight, 0);
      for (const d of devices.slice(0, DEVICES / 2)) fall(d);
      const inflightAtKill = onVictim.reduce((n, d) => n + d.inflight, 0);
      const pubackedAtKill = devices.flatMap((d) => [...d.acked].map((e) => `${d.id}/${e}`));
      const loggedAtKill = await have();
      killAt = performance.now();
      await victim.kill9();
      for (const d of devices.slice(DEVICES / 2)) fall(d);
      // The kill landed mid-work: devices on the node had publishes without a PUBACK.
      expect(onVictim.length).toBeGreaterThan(0);
      expect(heartbeatsInFlight).toBeGreaterThan(0);

      await new Promise((r) => setTimeout(r, AFTER_KILL_MS));
      pumping = false;
      clearInterval(pump);
      // Every device back on a surviving node, and every publish answered.
      await eventually(() => devices.every((d) => d.inflight === 0), 20_000, 50);
      expect(devices.every((d) => survivors.some((n) => n.mqttPort === d.port))).toBe(true);

      const pubacked = devices.flatMap((d) => [...d.acked].map((e) => [d.id, e] as const));
      await eventually(
        async () => {
          const logged = await have();
          return pubacked.every(([d, e]) => logged.has(`${d}/${e}`));
        },
        30_000,
        50,
      );
      await eventually(() => ingest.status().inFlight === 0, 10_000);
      const conn = await amqp.connect(urlOf(survivors[0]!));
      try {
        const ch = await conn.createChannel();
        // The dead node's consumer is still counted: RabbitMQ 3.10's quorum queue keeps a consumer
        // whose node went down as "suspected down" (its messages returned to the queue) until the
        // node is back.
        const q = await ch.checkQueue(QUEUE);
        expect(q.messageCount).toBe(0);
        expect(q.consumerCount).toBeGreaterThanOrEqual(1);
      } finally {
        await conn.close();
      }

      // Exactly once per PUBACKed event; what had no PUBACK (none, once every publish is answered) at most once.
      // In the shared log, each with its partition's position; and in this node's own log too.
      const perEvent = await shared<{ device_id: string; event_id: string; n: number; placed: number }>(
        "SELECT device_id, event_id, count(*)::int AS n, count(position)::int AS placed FROM events WHERE device_id LIKE 'fo-%' AND event_id LIKE 'fo-%' GROUP BY device_id, event_id",
      );
      expect(perEvent.filter((r) => r.n !== 1 || r.placed !== 1)).toEqual([]);
      const locally = t.gateway.db
        .prepare(
          "SELECT count(*) FROM (SELECT 1 FROM events WHERE device_id LIKE 'fo-%' AND event_id LIKE 'fo-%' GROUP BY device_id, event_id HAVING count(*) <> 1)",
        )
        .pluck()
        .get() as number;
      expect(locally).toBe(0);
      const sent = devices.reduce((n, d) => n + d.sent.size, 0);
      const notPubacked = devices.flatMap((d) =>
        [...d.sent].filter((e) => !d.acked.has(e)).map((e) => `${d.id}/${e}`),
      );
      const logged = await have();
      expect(logged.size).toBeLessThanOrEqual(sent);

      // The consumer moved to another node, and /readyz says which (without the password).
      const ready = await fetch(`${t.httpUrl}/readyz`).then((r) => r.json());
      const check = ready.checks.find((c: { name: string }) => c.name === "rabbitmq-ingest");
      expect(check).toMatchObject({ ok: true, detail: { ready: true } });
      expect(survivors.map((n) => `amqp://guest@127.0.0.1:${n.amqpPort}`)).toContain(check.detail.url);
      expect(check.detail.urls).toEqual([
        `amqp://guest@127.0.0.1:${downPort}`,
        ...cluster.nodes.map((n) => `amqp://guest@127.0.0.1:${n.amqpPort}`),
      ]);
      expect(JSON.stringify(check.detail)).not.toContain("guest:guest");
      expect(check.detail.reconnects).toBeGreaterThanOrEqual(1);

      // One alert per device's fall, raised once: a redelivered fall would have counted twice.
      await eventually(
        async () =>
          (await shared("SELECT 1 FROM alerts WHERE type = 'fall' AND device_id LIKE 'fo-%'")).length >=
          DEVICES,
        10_000,
      );
      const alerts = await shared<{ device_id: string; count: number }>(
        "SELECT device_id, count::int AS count FROM alerts WHERE type = 'fall' AND device_id LIKE 'fo-%'",
      );
      const fallsPubacked = devices.filter((d) => d.acked.has(falls.get(d.id)!)).map((d) => d.id);
      expect(fallsPubacked.length).toBe(DEVICES);
      expect(alerts.map((a) => a.device_id).sort()).toEqual([...fallsPubacked].sort());
      expect(alerts.every((a) => a.count === 1)).toBe(true);

      const duplicates = count("SELECT count(*) FROM duplicates WHERE device_id LIKE 'fo-%'");
      const moved = onVictim.map((d) => {
        const back = d.connects.find((c) => c > killAt) ?? Number.NaN;
        return { reconnect: back - killAt, puback: (d.pubacks.find((p) => p > back) ?? Number.NaN) - killAt };
      });
      const firstPubackElsewhere =
        Math.min(
          ...devices
            .filter((d) => !onVictim.includes(d))
            .map((d) => d.pubacks.find((p) => p > killAt) ?? Infinity),
        ) - killAt;
      const ms = (v: number) => `${Math.round(v)} ms`;
      console.info(
        [
          `kill -9 of the queue's leader (also the consumer's node) with ${inflightAtKill} publishes of its ${onVictim.length} devices without a PUBACK (${heartbeatsInFlight} heartbeats, the rest falls; ${devices.reduce((n, d) => n + d.connects.length - 1, 0) - onVictim.length} reconnects elsewhere);`,
          `${pubackedAtKill.length} PUBACKed at the kill, ${pubackedAtKill.filter((e) => !loggedAtKill.has(e)).length} of them not yet logged; ${pubacked.length} PUBACKed of ${sent} sent in all, ${notPubacked.length} never PUBACKed (${notPubacked.filter((e) => logged.has(e)).length} of them logged);`,
          `publish errors: ${JSON.stringify(Object.fromEntries(publishErrors))};`,
          `${duplicates} redeliveries dropped as duplicates;`,
          `consumer consuming again on another node ${ms(consumerBackAt - killAt)} after the kill;`,
          `the dead node's devices reconnected after ${ms(Math.min(...moved.map((m) => m.reconnect)))}-${ms(Math.max(...moved.map((m) => m.reconnect)))} and had PUBACKs again after ${ms(Math.min(...moved.map((m) => m.puback)))}-${ms(Math.max(...moved.map((m) => m.puback)))};`,
          `the first PUBACK after the kill on a surviving node came ${ms(firstPubackElsewhere)} after it; ${alerts.length} fall alerts for ${DEVICES} falls`,
        ].join(" "),
      );
    } finally {
      pumping = false;
      clearInterval(pump);
      clearInterval(watch);
    }
  }, 80_000);
});
