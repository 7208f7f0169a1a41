/**
 * Cluster mode's ingest, end to end: mqtt.js devices publish QoS 1 to a real RabbitMQ 3.10 node's MQTT
 * plugin (the gateway answering its auth backend), the gateway consumes the ingest quorum queue and
 * acks each message after its commit. Then the same with the gateway as a child process that is
 * killed with SIGKILL while a device keeps publishing, and started again on its data directory.
 *
 * The gateway's own AMQP user is RabbitMQ's guest, admitted by the internal backend after the
 * gateway declines it (auth_backends.2 = internal); so is this test's AMQP connection, which reads
 * the queue and publishes redeliveries as RabbitMQ would.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic, errorTopic } from "../../src/broker/topics.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import {
  ADMIN_TOKEN,
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";
import { STAFF, StaffClient } from "../staff/client.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.ingest";
const RADAR = deviceIdFor("ata/native");
/** No per-device rate here: the throughput and kill tests publish thousands from one device. */
const UNLIMITED = { deviceRate: { perSec: 100_000, burst: 1_000_000 } };

let rabbit: RabbitNode;
let httpPort: number;
let amqpUrl: string;
let t: TestGateway | null = null;
let conn: ChannelModel;
let ch: ConfirmChannel;
let device: MqttClient;
let anna: StaffClient;

const clusterConfig = () => ({
  rabbitmq: {
    enabled: true,
    username: CALLER,
    secret: SECRET,
    ingest: { url: amqpUrl, queue: QUEUE, reconnect: { minMs: 200, maxMs: 2000 } },
  },
});

/** Publish on amq.topic as the MQTT plugin does, waiting for RabbitMQ's confirm. */
function publishAmqp(routingKey: string, body: string, options: amqp.Options.Publish = {}): Promise<void> {
  return new Promise((resolve, reject) =>
    ch.publish("amq.topic", routingKey, Buffer.from(body), { persistent: true, ...options }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

const gw = () => t!.gateway;
const count = (sql: string, ...params: unknown[]) =>
  (gw()
    .db.prepare(sql)
    .pluck()
    .get(...params) as number) ?? 0;

beforeAll(async () => {
  // RabbitMQ first, told where the gateway will answer; the gateway then finds RabbitMQ at start
  // (its consumer logs in before the gateway's HTTP listener is open: RabbitMQ 3.10 takes an
  // unreachable HTTP backend as a refusal and asks the internal one).
  httpPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`;
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      staff: Object.values(STAFF),
      ingest: UNLIMITED,
      cluster: clusterConfig(),
    },
  });
  conn = await amqp.connect(amqpUrl);
  ch = await conn.createConfirmChannel();
  device = await connectDevice(rabbit.mqttPort, RADAR, secretFor("ata/native"));
  anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
}, 90_000);

afterAll(async () => {
  device?.end(true);
  await anna?.close();
  await conn?.close().catch(() => undefined);
  await t?.stop();
  await rabbit?.stop();
}, 60_000);

describe("device publishes through RabbitMQ reach the gateway's ingest", () => {
  it("the ingest queue is a durable quorum queue bound for device topics, declared before the gateway reported ready", async () => {
    // startGateway resolved: the queue exists now, without anyone having published.
    const q = await ch.checkQueue(QUEUE);
    expect(q.consumerCount).toBe(1);
    // RabbitMQ refuses to declare it again as another type: it is a quorum queue.
    const probe = await conn.createChannel();
    probe.on("error", () => {});
    await expect(
      probe.assertQueue(QUEUE, { durable: true, arguments: { "x-queue-type": "classic" } }),
    ).rejects.toThrow(/PRECONDITION_FAILED.*x-queue-type/);
    const ready = await fetch(`${t!.httpUrl}/readyz`).then((r) => r.json());
    const check = ready.checks.find((c: { name: string }) => c.name === "rabbitmq-ingest");
    expect(check).toMatchObject({
      ok: true,
      detail: {
        ready: true,
        declared: true,
        queue: QUEUE,
        queues: [{ name: QUEUE, declared: true, consuming: true }],
        // This node has no rabbitmq_event_exchange: presence as before, and ingest unaffected.
        connectionEvents: false,
      },
    });
    expect(check.detail.url).not.toContain("guest:guest");
  });

  it("a fall published QoS 1 to RabbitMQ is logged and raises a high alert on a staff WebSocket", async () => {
    const raised = anna.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "fall");
    const t0 = performance.now();
    // The PUBACK is RabbitMQ's: the quorum queue has the message; the gateway commits it after.
    await publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "rq-fall-1", type: "fall.detected", data: { confidence: 0.93 } }),
    );
    const alert = await raised;
    console.info(`fall via RabbitMQ -> alert on the staff socket: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(alert.alert).toMatchObject({ deviceId: RADAR, priority: "high", site: "home-a", room: "r1" });
    expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-fall-1' AND device_id = ?", RADAR)).toBe(
      1,
    );
  });

  it("a heartbeat arrives in the event log", async () => {
    await publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "rq-hb-1", type: "device.heartbeat", data: { battery: 81 } }),
    );
    await eventually(
      () =>
        count("SELECT count(*) FROM events WHERE event_id = 'rq-hb-1' AND type = 'device.heartbeat'") === 1,
    );
  });

  it("a payload the profile refuses is dead-lettered with its reason and acknowledged: the queue drains, and the device is told on its errors topic", async () => {
    const before = gw().rabbitIngest!.status().acked;
    const told: { code: string; message: string; topic: string; receivedAt: string }[] = [];
    device.on("message", (topic, body) => {
      if (topic === errorTopic(RADAR)) told.push(JSON.parse(String(body)));
    });
    await device.subscribeAsync(errorTopic(RADAR), { qos: 1 });
    await publish(device, deviceTopic(RADAR, "events"), "{not json");
    const row = await eventually(
      () =>
        gw()
          .db.prepare("SELECT code, reason FROM dead_letters WHERE device_id = ? AND code = 'bad_json'")
          .get(RADAR) as { code: string; reason: string } | undefined,
    );
    expect(row?.reason).toMatch(/JSON/i);
    await eventually(
      () => gw().rabbitIngest!.status().acked > before && gw().rabbitIngest!.status().inFlight === 0,
    );
    expect((await ch.checkQueue(QUEUE)).messageCount).toBe(0);
    // The embedded broker's reply, through RabbitMQ: the code from the catalogue, never the payload.
    await eventually(() => told.length === 1);
    expect(told[0]).toMatchObject({ code: "bad_json", topic: deviceTopic(RADAR, "events") });
    expect(told[0]!.message).toMatch(/JSON/i);
    expect(JSON.stringify(told[0])).not.toContain("{not json");
    await device.unsubscribeAsync(errorTopic(RADAR));
  });

  it("a routing key that names no device topic, and a message another user published for a device, are dead-lettered and acknowledged", async () => {
    await publishAmqp("ata.v1.nochannel", "{}");
    // RabbitMQ checks a user id against the publishing connection: this one is guest's, not the radar's.
    await publishAmqp(
      `ata.v1.${RADAR}.events`,
      JSON.stringify({ eventId: "rq-forged", type: "fall.detected" }),
      {
        userId: "guest",
      },
    );
    await eventually(
      () =>
        count("SELECT count(*) FROM dead_letters WHERE code = 'unknown_topic' AND device_id IS NULL") === 1,
    );
    await eventually(
      () =>
        count("SELECT count(*) FROM dead_letters WHERE code = 'forbidden' AND device_id = ?", RADAR) === 1,
    );
    expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-forged'")).toBe(0);
  });

  it("a device disabled while its session stays open: what it still publishes is dead-lettered, not logged, until it is enabled again; a device no longer registered likewise", async () => {
    gw().registry.setEnabled(RADAR, false);
    try {
      // RabbitMQ keeps the session (3.10 gives the gateway no way to end it) and PUBACKs from its
      // quorum queue; the consumer refuses the message.
      await publish(
        device,
        deviceTopic(RADAR, "events"),
        JSON.stringify({ eventId: "rq-disabled", type: "fall.detected", data: { confidence: 0.9 } }),
      );
      await eventually(
        () =>
          count(
            "SELECT count(*) FROM dead_letters WHERE code = 'forbidden' AND device_id = ? AND reason LIKE '%disabled%'",
            RADAR,
          ) === 1,
      );
      expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-disabled'")).toBe(0);
    } finally {
      gw().registry.setEnabled(RADAR, true);
    }
    await publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "rq-enabled-again", type: "device.heartbeat", data: {} }),
    );
    await eventually(() => count("SELECT count(*) FROM events WHERE event_id = 'rq-enabled-again'") === 1);

    await publishAmqp(
      "ata.v1.t-ghost.events",
      JSON.stringify({ eventId: "rq-ghost", type: "fall.detected" }),
    );
    await eventually(
      () =>
        count("SELECT count(*) FROM dead_letters WHERE code = 'unknown_device' AND device_id = 't-ghost'") ===
        1,
    );
    expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-ghost'")).toBe(0);
    expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-disabled'")).toBe(0);
  });

  it("a message delivered again after its commit (the gateway died before its ack) is not logged twice", async () => {
    // The same bytes twice, as RabbitMQ redelivers an unacked message: once with the device's own
    // eventId (the log's unique key), once without (the payload key within the redelivery window).
    const own = JSON.stringify({ eventId: "rq-again-1", type: "device.heartbeat", data: { battery: 70 } });
    const derived = JSON.stringify({ type: "device.heartbeat", data: { battery: 71 } });
    for (const body of [own, own, derived, derived]) await publishAmqp(`ata.v1.${RADAR}.events`, body);
    await eventually(() => count("SELECT count(*) FROM duplicates WHERE device_id = ?", RADAR) === 2);
    expect(count("SELECT count(*) FROM events WHERE event_id = 'rq-again-1'")).toBe(1);
    expect(
      count(
        "SELECT count(*) FROM events WHERE device_id = ? AND json_extract(data, '$.battery') = 71",
        RADAR,
      ),
    ).toBe(1);
  });

  it("throughput: 10,000 messages through the quorum queue into one gateway, each committed then acked", async () => {
    const n = 10_000;
    const start = gw().rabbitIngest!.status().acked;
    const t0 = performance.now();
    for (let i = 0; i < n; i++)
      ch.publish(
        "amq.topic",
        `ata.v1.${RADAR}.events`,
        Buffer.from(
          JSON.stringify({ eventId: `rq-tp-${i}`, type: "device.heartbeat", data: { battery: 90 } }),
        ),
        { persistent: true },
      );
    await ch.waitForConfirms();
    const confirmed = performance.now() - t0;
    await eventually(() => gw().rabbitIngest!.status().acked - start >= n, 60_000, 10);
    const ms = performance.now() - t0;
    console.info(
      `RabbitMQ -> gateway: ${n} messages confirmed in ${confirmed.toFixed(0)} ms, all committed and acked in ${ms.toFixed(0)} ms: ${Math.round((n / ms) * 1000)} events/s`,
    );
    expect(count("SELECT count(*) FROM events WHERE event_id LIKE 'rq-tp-%'")).toBe(n);
  }, 70_000);

  it("a deleted ingest queue is declared again by the consumer's reconnect, and /readyz shows what happened", async () => {
    const reconnects = gw().rabbitIngest!.status().reconnects;
    await ch.deleteQueue(QUEUE);
    await eventually(
      () => gw().rabbitIngest!.status().reconnects > reconnects && gw().rabbitIngest!.status().ready,
      10_000,
    );
    const ready = await fetch(`${t!.httpUrl}/readyz`).then((r) => r.json());
    const check = ready.checks.find((c: { name: string }) => c.name === "rabbitmq-ingest");
    expect(check).toMatchObject({
      ok: true,
      detail: { ready: true, lastError: expect.stringMatching(/cancelled/) },
    });
    expect((await ch.checkQueue(QUEUE)).consumerCount).toBe(1);
    await publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "rq-after-delete", type: "device.heartbeat", data: { battery: 80 } }),
    );
    await eventually(() => count("SELECT count(*) FROM events WHERE event_id = 'rq-after-delete'") === 1);
  });

  it("a gateway that stops acks what it committed: the queue is empty once its consumer is gone", async () => {
    await t!.stop();
    t = null;
    const q = await ch.checkQueue(QUEUE);
    expect(q).toMatchObject({ consumerCount: 0, messageCount: 0 });
  });
});

describe("kill -9 of the gateway while a device keeps publishing through RabbitMQ", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-rabbit-kill-"));
  const ID = "rk-radar";
  const DEVICE_SECRET = "rabbit-kill-secret-0123";
  let gwp: GatewayProcess | null = null;
  afterAll(async () => {
    if (gwp && gwp.child.exitCode === null) await gwp.kill9();
    rmSync(dir, { recursive: true, force: true });
  });

  it("every event RabbitMQ PUBACKed is in the log exactly once after a new gateway starts on the same data directory", async () => {
    const configPath = writeConfig(dir, {
      dataDir: join(dir, "data"),
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      http: { host: "127.0.0.1", port: httpPort },
      sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
      devices: [{ id: ID, profile: "ata/native", secret: DEVICE_SECRET, site: "s1", unit: "u1" }],
      ingest: UNLIMITED,
      cluster: clusterConfig(),
    });
    gwp = await spawnGateway(configPath);
    const radar = await connectDevice(rabbit.mqttPort, ID, DEVICE_SECRET);
    const acked = new Set<string>();
    let next = 0;
    let inflight = 0;
    let pumping = true;
    let drained: () => void = () => {};
    const allPubacked = new Promise<void>((resolve) => {
      drained = resolve;
    });
    radar.on("error", () => {});
    const pump = () => {
      while (pumping && inflight < 50) {
        const eventId = `rk-${next++}`;
        inflight++;
        radar.publish(
          deviceTopic(ID, "events"),
          JSON.stringify({ eventId, type: "device.heartbeat", data: { battery: 60 } }),
          { qos: 1 },
          (err) => {
            inflight--;
            if (!err) acked.add(eventId);
            if (pumping) pump();
            else if (inflight === 0) drained();
          },
        );
      }
    };
    pump();

    const log = new Database(join(dir, "data", "ata-events.db"), { readonly: true });
    const logged = () =>
      (log
        .prepare("SELECT count(*) FROM events WHERE device_id = ? AND event_id LIKE 'rk-%'")
        .pluck()
        .get(ID) as number) ?? 0;
    try {
      // Kill while the gateway is consuming: some events committed, more on their way.
      await eventually(() => logged() > 300, 20_000);
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      await gwp.kill9();
      const ackedAtKill = acked.size;
      const pubackedBeforeKill = [...acked];
      // RabbitMQ goes on PUBACKing with no gateway running: the quorum queue has the messages (and
      // the device's topic permission is cached on its connection, so no one needs asking).
      await eventually(() => acked.size > ackedAtKill + 500, 15_000);
      pumping = false;
      if (inflight > 0) await allPubacked;
      const loggedAtDeath = logged();
      // The kill landed mid-work: events RabbitMQ had PUBACKed before it were not yet in the log.
      const inLogAtDeath = new Set(
        log
          .prepare("SELECT event_id FROM events WHERE device_id = ? AND event_id LIKE 'rk-%'")
          .pluck()
          .all(ID) as string[],
      );
      expect(pubackedBeforeKill.filter((id) => !inLogAtDeath.has(id)).length).toBeGreaterThan(0);
      // A backlog for the next gateway to drain, confirmed by RabbitMQ as the MQTT plugin's are.
      const BACKLOG = 20_000;
      for (let i = 0; i < BACKLOG; i++) {
        const eventId = `rk-b${i}`;
        ch.publish(
          "amq.topic",
          `ata.v1.${ID}.events`,
          Buffer.from(JSON.stringify({ eventId, type: "device.heartbeat", data: { battery: 61 } })),
          { persistent: true },
        );
        acked.add(eventId);
      }
      await ch.waitForConfirms();

      const t0 = performance.now();
      gwp = await spawnGateway(configPath);
      const readyAt = performance.now();
      const ids = () =>
        new Set(
          log
            .prepare("SELECT event_id FROM events WHERE device_id = ? AND event_id LIKE 'rk-%'")
            .pluck()
            .all(ID) as string[],
        );
      await eventually(
        () => {
          const have = ids();
          return [...acked].every((id) => have.has(id));
        },
        30_000,
        50,
      );
      const drainedAt = performance.now();
      const backlog = acked.size - loggedAtDeath;
      await gwp.stop();
      gwp = null;

      // The device's own events; the gateway's presence adds device.online rows (gw:...) of its own.
      const counts = log
        .prepare(
          "SELECT event_id, count(*) AS n FROM events WHERE device_id = ? AND event_id LIKE 'rk-%' GROUP BY event_id",
        )
        .all(ID) as { event_id: string; n: number }[];
      expect(counts.filter((c) => c.n !== 1)).toEqual([]);
      const inLog = new Set(counts.map((c) => c.event_id));
      expect([...acked].filter((id) => !inLog.has(id))).toEqual([]);
      // Nothing the device did not send; what it sent without a PUBACK (in flight at the end) at most once.
      expect(inLog.size).toBeLessThanOrEqual(next + BACKLOG);
      const redelivered = log
        .prepare("SELECT count(*) FROM duplicates WHERE device_id = ?")
        .pluck()
        .get(ID) as number;
      console.info(
        `kill -9: ${ackedAtKill} PUBACKed at the kill, ${loggedAtDeath} logged by the dead gateway, ${acked.size} PUBACKed in all; the new gateway logged the other ${backlog} in ${(drainedAt - t0).toFixed(0)} ms from spawn, ${(drainedAt - readyAt).toFixed(0)} ms from its ready line (${Math.round((backlog / (drainedAt - t0)) * 1000)}-${Math.round((backlog / (drainedAt - readyAt)) * 1000)} events/s); ${redelivered} redelivered after their commit and dropped as duplicates`,
      );
      expect((await ch.checkQueue(QUEUE)).messageCount).toBe(0);
    } finally {
      radar.end(true);
      log.close();
    }
  }, 80_000);
});
