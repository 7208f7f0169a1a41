/**
 * Two gateway processes as one cluster behind RabbitMQ: a device connected through RabbitMQ's MQTT
 * plugin (the gateways answering its auth backend and both consuming the ingest queue) raises an
 * alert on the gateway node that owns its site's partition, whichever node consumed the publish; a
 * person on the other node sees it and accepts it there, and a person on the owner sees who took it.
 * Real RabbitMQ 3.10 and PostgreSQL 15, started and stopped by the test's harness.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { partitionOf } from "../../src/cluster/partitions.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { connectDevice, eventually, publish } from "../helpers/gateway.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { freePort } from "../helpers/ports.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";
import { STAFF, StaffClient } from "../staff/client.js";

/** Every node's staff token key: tokens are replicated, and their hashes verify under one key. */
const TOKEN_KEY = randomBytes(32).toString("base64");
const pgdb = pgTestDatabases("cluster_gateways_rabbitmq");
const dir = mkdtempSync(join(tmpdir(), "ata-cluster-rabbitmq-"));
const SECRET = "cluster-rabbit-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const RADAR = "cr-radar-1";
const DEVICE_SECRET = "cluster-rabbit-device-01";
const PARTITIONS = 2;

let rabbit: RabbitNode;
/** The gateway RabbitMQ asks about logins (the first one), on a port known before it starts. */
let authPort: number;
const procs: GatewayProcess[] = [];
const clients: (StaffClient | MqttClient)[] = [];

beforeAll(async () => {
  authPort = await freePort();
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${authPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
}, 90_000);

afterAll(async () => {
  for (const c of clients) "ws" in c ? c.ws.close() : c.end(true);
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) await p.kill9();
  await rabbit?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function gateway(url: string, nodeId: string, httpPort: number): Promise<GatewayProcess> {
  const home = join(dir, nodeId);
  mkdirSync(home, { recursive: true });
  const rulesFile = join(home, "rules.yaml");
  writeFileSync(
    rulesFile,
    `
renotify: { high: 0s, medium: 0s, low: 0s, info: 0s }
escalation:
  high: [{ to: [unit], after: 60s }]
  medium: [{ to: [unit], after: 60s }]
  low: [{ to: [unit], after: 60s }]
  info: [{ to: [unit], after: 60s }]
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
`,
  );
  const p = await spawnGateway(
    writeConfig(home, {
      dataDir: join(home, "data"),
      rulesFile,
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      http: { host: "127.0.0.1", port: httpPort },
      sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1", rooms: ["r1"] }] }],
      devices: [
        {
          id: RADAR,
          profile: "ata/native",
          secret: DEVICE_SECRET,
          site: "home-a",
          unit: "unit-1",
          room: "r1",
        },
      ],
      staff: [STAFF.anna, STAFF.bo].map((s) => ({ ...s })),
      cluster: {
        postgres: { url, nodeId, partitions: PARTITIONS, leaseMs: 2_000 },
        rabbitmq: {
          enabled: true,
          username: CALLER,
          secret: SECRET,
          ingest: {
            url: `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`,
            queue: "ata.ingest",
            reconnect: { minMs: 200, maxMs: 2000 },
          },
        },
      },
    }),
    { ATA_TOKEN_KEY: TOKEN_KEY },
    30_000,
  );
  procs.push(p);
  return p;
}

describe("two gateway nodes behind RabbitMQ, sharing PostgreSQL", () => {
  it("a fall published through RabbitMQ is raised on its partition's owner, seen and accepted on the other node, and shown as taken on the owner", async () => {
    const url = await pgdb.fresh();
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());
    const a = await gateway(url, "gw-a", authPort);
    const b = await gateway(url, "gw-b", await freePort());
    const owners = async () =>
      (
        await check.query<{ owner: string; n: number }>(
          "SELECT owner, count(*)::int AS n FROM partition_leases WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner",
        )
      ).rows;
    await eventually(
      async () => JSON.stringify(await owners()) === '[{"owner":"gw-a","n":1},{"owner":"gw-b","n":1}]',
      15_000,
    );
    const { rows } = await check.query<{ owner: string }>(
      "SELECT owner FROM partition_leases WHERE partition = $1",
      [partitionOf("home-a", PARTITIONS)],
    );
    const [own, other] = rows[0]!.owner === "gw-a" ? [a, b] : [b, a];
    const http = (p: GatewayProcess) => `http://127.0.0.1:${p.http}`;
    const anna = await StaffClient.connect(http(other), STAFF.anna.token);
    const bo = await StaffClient.connect(http(own), STAFF.bo.token);
    clients.push(anna, bo);

    // The device logs in through RabbitMQ (which asks gw-a) and publishes there; a gateway consumes it.
    const radar = await connectDevice(rabbit.mqttPort, RADAR, DEVICE_SECRET);
    clients.push(radar);
    await publish(
      radar,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: "cr-fall-1", type: "fall.detected", data: {} }),
    );
    const raised = await anna.change(null, "raised", 15_000);
    expect(raised.alert.deviceId).toBe(RADAR);
    await bo.change(raised.alert.id, "raised", 10_000);

    const reply = await anna.request({ type: "accept", alertId: raised.alert.id });
    expect(reply.ok).toBe(true);
    const taken = await bo.change(raised.alert.id, "accepted", 10_000);
    expect(taken.alert.acceptedBy).toEqual({ id: "anna", name: "Anna" });

    // Once in PostgreSQL: one event, one raise, one accept, written by the owner.
    const { rows: audit } = await check.query<{ action: string }>(
      "SELECT action FROM alert_audit WHERE action IN ('raised', 'accepted') ORDER BY id",
    );
    expect(audit.map((r) => r.action)).toEqual(["raised", "accepted"]);
    const { rows: events } = await check.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM events WHERE device_id = $1 AND event_id = 'cr-fall-1' AND position IS NOT NULL",
      [RADAR],
    );
    expect(events[0]!.n).toBe(1);
  }, 90_000);
});
