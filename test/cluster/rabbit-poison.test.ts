/**
 * Commits that fail, through a real RabbitMQ 3.10 node's quorum queue (src/cluster/rabbit-ingest.ts,
 * "Poison messages"): one payload whose rows the event log refuses, among good publishes of other
 * devices; the event log refusing every write, then taking them again; and a full disk while the
 * dead-letter store still takes writes.
 *
 * The event log is made to refuse with SQLite triggers in its file (the `log` schema; the writer
 * thread's connection sees them at its next statement): RAISE(ABORT) fails the whole transaction,
 * as a constraint would (SQLITE_CONSTRAINT_TRIGGER). That is rows refused, not a storage error
 * (store/health.ts), so the consumer takes it as the payload's doing once the message is alone, and
 * tries the dead letter: in the second test that fails too, the path that must never become an ack.
 * The third raises with SQLite's own full-disk message, which store/health.ts reads as SQLITE_FULL.
 */
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { EVENT_LOG_SCHEMA } from "../../src/store/db.js";
import { ADMIN_TOKEN, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const QUEUE = "ata.poison";
/** The delivery from which a message is committed alone (the default). */
const MAX_DELIVERIES = 5;
const DEVICES = ["rp-0", "rp-1", "rp-2"];

let rabbit: RabbitNode;
let t: TestGateway;
let conn: ChannelModel;
let ch: ConfirmChannel;

const gw = () => t.gateway;
const count = (sql: string, ...params: unknown[]) =>
  (gw()
    .db.prepare(sql)
    .pluck()
    .get(...params) as number) ?? 0;
const ingest = () => gw().rabbitIngest!.status();

/** Publish on amq.topic as the MQTT plugin does (persistent), confirmed by RabbitMQ. */
async function publishAll(messages: { device: string; eventId: string }[]): Promise<void> {
  for (const m of messages)
    ch.publish(
      "amq.topic",
      `ata.v1.${m.device}.events`,
      Buffer.from(JSON.stringify({ eventId: m.eventId, type: "device.heartbeat", data: { battery: 77 } })),
      { persistent: true, headers: { "x-mqtt-publish-qos": 1 } },
    );
  await ch.waitForConfirms();
}

async function isolated(outcome: string): Promise<number> {
  const metric = await gw().metrics.registry.getSingleMetric("ata_rabbitmq_ingest_isolated_total")?.get();
  return metric?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

beforeAll(async () => {
  const httpPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`;
  t = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      devices: DEVICES.map((id) => ({
        id,
        profile: "ata/native",
        secret: `${id}-secret-0123456789`,
        site: "home-a",
        unit: "unit-1",
      })),
      // Deliveries arriving within 20 ms share a group commit: a bad one fails the good ones with it.
      ingest: { commitMaxDelayMs: 20 },
      cluster: {
        rabbitmq: {
          enabled: true,
          username: CALLER,
          secret: SECRET,
          ingest: { url: amqpUrl, queue: QUEUE, reconnect: { minMs: 50, maxMs: 400 } },
        },
      },
    },
  });
  expect(gw().config.cluster.rabbitmq.ingest?.maxDeliveries).toBe(MAX_DELIVERIES);
  conn = await amqp.connect(amqpUrl);
  ch = await conn.createConfirmChannel();
}, 90_000);

afterAll(async () => {
  await conn?.close().catch(() => undefined);
  await t?.stop();
  await rabbit?.stop();
}, 60_000);

describe("a commit that fails, through RabbitMQ", () => {
  it("a payload the event log refuses among other devices' good ones: the good ones are logged once each, the bad one is dead-lettered commit_failed on its fifth delivery and its device told, and the queue drains", async () => {
    gw().db.exec(`CREATE TRIGGER ${EVENT_LOG_SCHEMA}.rp_poison BEFORE INSERT ON events WHEN NEW.event_id = 'rp-poison'
      BEGIN SELECT RAISE(ABORT, 'the test refuses this row'); END`);
    // The poison's device hears why on its errors topic, as a device subscribed through MQTT would.
    const told: { code: string; message: string; topic: string }[] = [];
    const listen = await conn.createChannel();
    const { queue: errors } = await listen.assertQueue("", { exclusive: true });
    await listen.bindQueue(errors, "amq.topic", "ata.v1.rp-0.errors");
    await listen.consume(errors, (m) => m && told.push(JSON.parse(m.content.toString())), { noAck: true });
    const acked = ingest().acked;
    const requeued = ingest().requeued;
    try {
      const good: { device: string; eventId: string }[] = [];
      for (let i = 0; i < 40; i++)
        for (const device of DEVICES) good.push({ device, eventId: `rp-good-${device}-${i}` });
      await publishAll([...good.slice(0, 60), { device: "rp-0", eventId: "rp-poison" }, ...good.slice(60)]);

      const done = () =>
        count("SELECT count(DISTINCT event_id) FROM events WHERE event_id LIKE 'rp-good-%'") ===
          good.length &&
        count("SELECT count(*) FROM dead_letters WHERE code = 'commit_failed'") === 1 &&
        ingest().inFlight === 0;
      await eventually(done, 30_000, 50).catch((err) => {
        console.info(
          ingest(),
          count("SELECT count(DISTINCT event_id) FROM events WHERE event_id LIKE 'rp-good-%'"),
        );
        throw err;
      });
      // Each message acked once at least (an ack lost with a closed channel is delivered and acked again).
      expect(ingest().acked - acked).toBeGreaterThanOrEqual(good.length + 1);
      const letter = gw()
        .db.prepare("SELECT device_id, topic, code, reason FROM dead_letters WHERE code = 'commit_failed'")
        .all() as { device_id: string; topic: string; code: string; reason: string }[];
      expect(letter).toEqual([
        {
          device_id: "rp-0",
          topic: "ata/v1/rp-0/events",
          code: "commit_failed",
          reason: expect.stringMatching(/delivered 5 times.*the test refuses this row/),
        },
      ]);
      // Good ones shared the poison's failing groups: requeued with it (one nack, the rest returned
      // by the channel's close, which 3.10 counts in x-delivery-count too) up to their own limit,
      // then committed alone (how many depends on how the deliveries fell into groups).
      expect(ingest().requeued - requeued).toBeGreaterThanOrEqual(MAX_DELIVERIES - 1);
      expect(await isolated("committed")).toBeGreaterThan(0);
      const logged = gw()
        .db.prepare(
          "SELECT event_id, count(*) AS n FROM events WHERE event_id LIKE 'rp-good-%' GROUP BY event_id",
        )
        .all() as { event_id: string; n: number }[];
      expect(logged.length).toBe(good.length);
      expect(logged.filter((r) => r.n !== 1)).toEqual([]);
      expect(count("SELECT count(*) FROM events WHERE event_id = 'rp-poison'")).toBe(0);
      expect(ingest()).toMatchObject({ inFlight: 0, poisoned: 1 });
      expect((await ch.checkQueue(QUEUE)).messageCount).toBe(0);
      expect(await isolated("dead_lettered")).toBe(1);
      await eventually(() => told.some((m) => m.code === "commit_failed"));
      expect(told.find((m) => m.code === "commit_failed")).toMatchObject({ topic: "ata/v1/rp-0/events" });
    } finally {
      gw().db.exec(`DROP TRIGGER IF EXISTS ${EVENT_LOG_SCHEMA}.rp_poison`);
      await listen.close();
    }
  }, 60_000);

  it("an event log refusing every write, dead letters included: nothing is acked while it refuses, every message is tried alone and requeued; once it takes writes again each event is logged once and the queue drains", async () => {
    const refuse = (table: string) =>
      `CREATE TRIGGER ${EVENT_LOG_SCHEMA}.rp_refuse_${table} BEFORE INSERT ON ${table}
        BEGIN SELECT RAISE(ABORT, 'the test refuses every write'); END`;
    for (const table of ["events", "dead_letters", "duplicates"]) gw().db.exec(refuse(table));
    const acked = ingest().acked;
    const requeuedAlone = await isolated("requeued");
    const letters = count("SELECT count(*) FROM dead_letters");
    const messages: { device: string; eventId: string }[] = [];
    for (let i = 0; i < 20; i++)
      for (const device of DEVICES) messages.push({ device, eventId: `rp-outage-${device}-${i}` });
    try {
      await publishAll(messages);
      // Every message reached its fifth delivery, was committed alone, failed, and its dead letter
      // failed too: all of them requeued, none acked.
      await eventually(
        async () => (await isolated("requeued")) - requeuedAlone >= messages.length,
        30_000,
        50,
      );
      expect(ingest().acked).toBe(acked);
      expect(count("SELECT count(*) FROM events WHERE event_id LIKE 'rp-outage-%'")).toBe(0);
      expect(count("SELECT count(*) FROM dead_letters")).toBe(letters);
      expect(ingest().lastError).toMatch(/not committed, requeued: the test refuses every write/);
      // Lifted while the consumer waits out its back-off, nothing in flight: a message whose commit
      // failed alone just before would otherwise find the dead-letter store writable again.
      await eventually(() => !ingest().ready && ingest().inFlight === 0, 10_000, 5);
    } finally {
      for (const table of ["events", "dead_letters", "duplicates"])
        gw().db.exec(`DROP TRIGGER IF EXISTS ${EVENT_LOG_SCHEMA}.rp_refuse_${table}`);
    }
    // The back-off has grown to maxMs (400 ms) meanwhile; the next round commits.
    await eventually(
      () =>
        count("SELECT count(DISTINCT event_id) FROM events WHERE event_id LIKE 'rp-outage-%'") ===
          messages.length && ingest().inFlight === 0,
      30_000,
      50,
    );
    expect(ingest().acked - acked).toBeGreaterThanOrEqual(messages.length);
    const logged = gw()
      .db.prepare(
        "SELECT event_id, count(*) AS n FROM events WHERE event_id LIKE 'rp-outage-%' GROUP BY event_id",
      )
      .all() as { event_id: string; n: number }[];
    expect(logged.length).toBe(messages.length);
    expect(logged.filter((r) => r.n !== 1)).toEqual([]);
    expect(count("SELECT count(*) FROM dead_letters")).toBe(letters);
    expect(ingest().inFlight).toBe(0);
    expect((await ch.checkQueue(QUEUE)).messageCount).toBe(0);
  }, 90_000);
  it("a full disk, the dead-letter store still taking writes: past the limit nothing is dead-lettered or acked, since no payload makes a disk full; after it, each event is logged once", async () => {
    // SQLite's own message for SQLITE_FULL, which store/health.ts takes as the storage refusing.
    gw().db.exec(`CREATE TRIGGER ${EVENT_LOG_SCHEMA}.rp_full BEFORE INSERT ON events
      BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    const acked = ingest().acked;
    const requeuedAlone = await isolated("requeued");
    const letters = count("SELECT count(*) FROM dead_letters");
    const messages = DEVICES.map((device) => ({ device, eventId: `rp-full-${device}` }));
    try {
      await publishAll(messages);
      await eventually(
        async () => (await isolated("requeued")) - requeuedAlone >= messages.length,
        30_000,
        50,
      );
      expect(ingest().acked).toBe(acked);
      expect(count("SELECT count(*) FROM dead_letters")).toBe(letters);
      await eventually(() => !ingest().ready && ingest().inFlight === 0, 10_000, 5);
    } finally {
      gw().db.exec(`DROP TRIGGER IF EXISTS ${EVENT_LOG_SCHEMA}.rp_full`);
    }
    await eventually(
      () =>
        count("SELECT count(DISTINCT event_id) FROM events WHERE event_id LIKE 'rp-full-%'") ===
          messages.length && ingest().inFlight === 0,
      30_000,
      50,
    );
    expect(count("SELECT count(*) FROM events WHERE event_id LIKE 'rp-full-%'")).toBe(messages.length);
    expect(count("SELECT count(*) FROM dead_letters")).toBe(letters);
  }, 90_000);
});
