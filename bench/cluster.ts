/**
 * Cluster mode's cost and behaviour on one machine (a 2-core machine cannot show scaling):
 *
 * 1. Durable ingest through RabbitMQ: 50 devices publish QoS 1 into a real RabbitMQ node's MQTT
 *    plugin (the gateway answering its auth backend); the gateway consumes the quorum queue and
 *    commits. Against the single process in the same run: the same gateway process, the same
 *    publishers, through its embedded broker. Runs alternate between the two. Events/s are counted
 *    from the first publish to the last commit (RabbitMQ's PUBACK comes earlier: its figure is
 *    given too), with CPU-seconds per 1,000 events for each component (gateway, RabbitMQ's Erlang
 *    VM, the publishers).
 * 2. Memory per connected device: idle device connections to RabbitMQ's MQTT plugin and to the
 *    embedded broker, resident memory before and after; and how fast they log in, 100 at a time
 *    (through RabbitMQ each login is a call to the gateway's auth endpoint).
 * 3. A reconnect storm through the auth endpoint, with and without RabbitMQ's auth cache
 *    (rabbitmq_auth_backend_cache in front of the HTTP backend, a second RabbitMQ node started for
 *    it): `storm` devices log in, 100 CONNECTs in flight, disconnect, and log in again; logins per
 *    second of each wave and the gateway's auth requests per login (ata_rabbitmq_auth_requests_total).
 *    Rounds alternate between the two nodes, each round with devices the cache has not seen.
 * 4. Durable ingest through RabbitMQ + two gateway nodes + PostgreSQL (`cluster.postgres`): the same
 *    50 publishers into a RabbitMQ node of its own (the first node answers its auth backend), both
 *    nodes consuming, each forwarding what it commits to the shared event log before it acks
 *    (src/cluster/event-forwarder.ts). Against a single process with its embedded broker in the
 *    same run, runs alternating. Events/s from the first publish to the last event having its
 *    position in PostgreSQL's shared log (the sum of `event_log_heads`, checked by counting the
 *    run's `events` rows with a position); CPU-seconds per 1,000 events of each gateway node,
 *    RabbitMQ's Erlang VM, PostgreSQL's server processes (the postmaster with its children, those
 *    that ended included) and the publishers; each node's share of the events; and the run's
 *    events logged out of their device's publish order. Two ingest layouts, the nodes restarted
 *    between them: `partitions: 1` (two competing consumers on one quorum queue: the load is shared,
 *    a device's order is not kept) and `partitions: 4` (a single active consumer per queue, which
 *    keeps each device's order; on RabbitMQ 3.10 the node that started first is active for every
 *    queue, so it ingests alone: docs/cluster.md, "Partitions").
 * 5. Takeover after kill -9 of the gateway node owning a site's partition: three gateway processes
 *    on one PostgreSQL (`leaseMs` shortened), a fall raised on the site's owner and left unaccepted
 *    with its escalation due 1 s later (nobody is connected, so that is the alert's next step), the
 *    owner killed before it is due. Measured: the time until the survivors hold every partition it
 *    held (its leases in `partition_leases`, polled), and the escalation's audit entry in
 *    PostgreSQL against its due time (the timer's `due_at`) and against the kill; the killed node
 *    is started again and the leases let settle; `kills` times. Bound: leaseMs + leaseMs / 3.
 * 6. Partition takeover after kill -9 of an owner, the leases alone: three nodes leasing 64
 *    partitions in a real PostgreSQL (src/cluster/pg/leases.ts, the node as in the tests:
 *    test/cluster/pg/lease-node.ts); one is killed, the time until the survivors have acquired every
 *    partition it held is measured, the node is started again and the cluster let settle; `kills`
 *    times. The baseline for 5: what the gateway adds to the leases' own takeover.
 *
 *   npm run bench -- cluster [events=30000] [idle=2000] [kills=10] [leaseMs=3000] [storm=1000]
 *
 * RabbitMQ, PostgreSQL and every gateway run on the same two cores as the load: the figures are
 * costs and ratios, not a cluster's capacity. docs/cluster.md turns them into a sizing table.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import amqp from "amqplib";
import pg from "pg";
import { deviceTopic } from "../src/broker/topics.js";
import { partitionOf } from "../src/cluster/partitions.js";
import { migratePg } from "../src/cluster/pg/migrate.js";
import { RABBIT_AUTH_BASE } from "../src/cluster/rabbit-auth.js";
import { LEASE_LOG_TABLE } from "../test/cluster/pg/lease-writer.js";
import { freePort } from "../test/helpers/ports.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../test/helpers/process.js";
import { startRabbitMQ } from "../test/helpers/rabbitmq.js";
import {
  type BenchDevice,
  type Child,
  connect,
  connectMany,
  median,
  ONE_ADDRESS_LOAD,
  pumpHeartbeats,
  rssKiB,
  scrapeSamples,
  startGatewayProcess,
  table,
  threadCpuSeconds,
} from "./lib.js";

const EVENTS = Number(process.argv[2] ?? 30_000);
const IDLE = Number(process.argv[3] ?? 2000);
const KILLS = Number(process.argv[4] ?? 10);
const LEASE_MS = Number(process.argv[5] ?? 3000);
const STORM = Number(process.argv[6] ?? 1000);
/** The auth cache's TTL recommended in docs/cluster.md ("Configuring RabbitMQ"). */
const CACHE_TTL_MS = 60_000;
const RUNS = 3;
const PUBLISHERS = 50;
const PARTITIONS = 64;
const SECRET = "bench-cluster-secret-0123456789abcdef";
const ADMIN_TOKEN = "bench-admin-token-0123456789";
const ROOT = new URL("..", import.meta.url).pathname;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** The Erlang VM's PID of a RabbitMQ node, found by the node name in its environment. */
function beamPid(nodeName: string): number {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "utf8").includes("beam")) continue;
      const env = readFileSync(`/proc/${d}/environ`, "utf8").split("\0");
      if (env.includes(`RABBITMQ_NODENAME=${nodeName}`)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no Erlang VM found for ${nodeName}`);
}

/** CPU seconds (user + system) of a whole process. */
function processCpu(pid: number): number {
  let s = 0;
  for (const t of threadCpuSeconds(pid).values()) s += t;
  return s;
}

/** Fields of /proc/<pid>/stat after the command name: [0] is field 3 (state), [n - 3] is field n. */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** The postmaster of the PostgreSQL listening on this port, found by its command line. */
function postmasterPid(port: number): number {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const args = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      const p = args.indexOf("-p");
      if (args[0]?.endsWith("/postgres") && p > 0 && args[p + 1] === String(port)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no postmaster found on port ${port}`);
}

/**
 * CPU seconds of a PostgreSQL server: the postmaster's own, those of its children that ended and
 * were reaped (cutime, cstime: connection backends come and go), and its living children's.
 */
function postgresCpu(postmaster: number): number {
  const tick = 100; // USER_HZ on Linux
  const pm = statFields(postmaster);
  if (!pm) return Number.NaN;
  let s = (Number(pm[11]) + Number(pm[12]) + Number(pm[13]) + Number(pm[14])) / tick;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(d);
    if (f && Number(f[1]) === postmaster) s += (Number(f[11]) + Number(f[12])) / tick;
  }
  return s;
}

async function until(
  ok: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  stepMs = 5,
): Promise<void> {
  const end = performance.now() + ms;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(stepMs);
  }
}

// ------------------------------------------------------------------ RabbitMQ and the gateway

const httpPort = await freePort();
const rabbit = await startRabbitMQ({
  authBaseUrl: `http://rabbitmq:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
  extraConfig: ["auth_backends.2 = internal"],
});
let beam = 0;
const gw = await startGatewayProcess(PUBLISHERS * 2 + Math.max(IDLE * 2, STORM * RUNS), {
  mqtt: ONE_ADDRESS_LOAD,
  http: { host: "127.0.0.1", port: httpPort, adminToken: ADMIN_TOKEN },
  // 50 publishers each far past a real device's rate: this measures the pipeline, not the limit.
  ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } },
  cluster: {
    rabbitmq: {
      enabled: true,
      username: "rabbitmq",
      secret: SECRET,
      ingest: { url: `amqp://guest:guest@127.0.0.1:${rabbit.amqpPort}`, prefetch: 500 },
    },
  },
}).catch(async (err) => {
  await rabbit.stop();
  throw err;
});

async function committed(): Promise<number> {
  const m = await scrapeSamples(httpPort);
  return m.filter((x) => x.name === "ata_events_accepted_total").reduce((a, x) => a + x.value, 0);
}

interface IngestRun {
  path: "embedded" | "rabbitmq";
  eventsPerSec: number;
  pubackPerSec: number;
  cpuPer1k: { gateway: number; rabbitmq: number; publishers: number };
}

async function ingestRun(path: IngestRun["path"], run: number): Promise<IngestRun> {
  const devices: BenchDevice[] = gw.devices.slice(
    path === "embedded" ? 0 : PUBLISHERS,
    (path === "embedded" ? 0 : PUBLISHERS) + PUBLISHERS,
  );
  const port = path === "embedded" ? gw.ports.mqtt! : rabbit.mqttPort;
  const clients = await connectMany(port, devices, PUBLISHERS);
  const target = (await committed()) + PUBLISHERS * Math.ceil(EVENTS / PUBLISHERS);
  const cpu0 = { gateway: processCpu(gw.pid), rabbitmq: processCpu(beam), me: process.cpuUsage() };
  const t0 = performance.now();
  await pumpHeartbeats(
    clients,
    devices.map((d) => d.id),
    EVENTS,
    run * 1_000_000,
  );
  const acked = performance.now();
  // Through RabbitMQ a PUBACK means the quorum queue has it; the gateway commits after.
  while ((await committed()) < target) await sleep(10);
  const done = performance.now();
  const me = process.cpuUsage(cpu0.me);
  const n = PUBLISHERS * Math.ceil(EVENTS / PUBLISHERS);
  const per1k = (s: number) => round((s / n) * 1000, 3);
  await Promise.all(clients.map((c) => c.endAsync()));
  return {
    path,
    eventsPerSec: Math.round(n / ((done - t0) / 1000)),
    pubackPerSec: Math.round(n / ((acked - t0) / 1000)),
    cpuPer1k: {
      gateway: per1k(processCpu(gw.pid) - cpu0.gateway),
      rabbitmq: path === "rabbitmq" ? per1k(processCpu(beam) - cpu0.rabbitmq) : 0,
      publishers: per1k((me.user + me.system) / 1e6),
    },
  };
}

/** Requests the gateway's auth endpoints have answered so far. */
async function authRequests(): Promise<number> {
  const m = await scrapeSamples(httpPort);
  return m.filter((x) => x.name === "ata_rabbitmq_auth_requests_total").reduce((a, x) => a + x.value, 0);
}

type StormBroker = "rabbitmq" | "rabbitmq+cache";
interface StormRound {
  broker: StormBroker;
  /** Logins per second: the devices' first login, then the same devices again. */
  firstPerSec: number;
  againPerSec: number;
  /** Requests to the gateway's auth endpoints per login, each wave. */
  firstRequestsPerLogin: number;
  againRequestsPerLogin: number;
  /** CPU-milliseconds per login of the second wave: the gateway, and the RabbitMQ node's VM. */
  againCpuMsPerLogin: { gateway: number; rabbitmq: number };
}

/** One round of a reconnect storm: every device logs in, disconnects, and logs in again. */
async function stormRound(
  broker: StormBroker,
  port: number,
  vm: number,
  devices: BenchDevice[],
): Promise<StormRound> {
  const wave = async () => {
    const requests = await authRequests();
    const cpu0 = { gateway: processCpu(gw.pid), rabbitmq: processCpu(vm) };
    const t0 = performance.now();
    const clients = await connectMany(port, devices, 100);
    const perSec = Math.round(devices.length / ((performance.now() - t0) / 1000));
    const cpuMs = (s: number) => round((s * 1000) / devices.length, 2);
    const cpu = {
      gateway: cpuMs(processCpu(gw.pid) - cpu0.gateway),
      rabbitmq: cpuMs(processCpu(vm) - cpu0.rabbitmq),
    };
    const perLogin = round(((await authRequests()) - requests) / devices.length, 2);
    await Promise.all(clients.map((c) => c.endAsync()));
    return { perSec, perLogin, cpu };
  };
  const first = await wave();
  await sleep(500);
  const again = await wave();
  return {
    broker,
    firstPerSec: first.perSec,
    againPerSec: again.perSec,
    firstRequestsPerLogin: first.perLogin,
    againRequestsPerLogin: again.perLogin,
    againCpuMsPerLogin: again.cpu,
  };
}

const runs: IngestRun[] = [];
const storms: StormRound[] = [];
const memory: Record<string, number> = {};
/** Device logins per second, 100 at a time: the beginning of a reconnect storm. */
const connects: Record<string, number> = {};
try {
  beam = beamPid(rabbit.nodeName);
  // Warm-up of both paths (JIT, SQLite's page cache, the queue), not counted.
  await ingestRun("embedded", 90);
  await ingestRun("rabbitmq", 91);
  for (let r = 0; r < RUNS; r++)
    for (const path of (r % 2 ? ["rabbitmq", "embedded"] : ["embedded", "rabbitmq"]) as IngestRun["path"][])
      runs.push(await ingestRun(path, r));

  // Memory per idle device connection, each broker in turn.
  const idle = gw.devices.slice(PUBLISHERS * 2);
  for (const [name, pid, port, devices] of [
    ["embedded", gw.pid, gw.ports.mqtt!, idle.slice(0, IDLE)],
    ["rabbitmq", beam, rabbit.mqttPort, idle.slice(IDLE, IDLE * 2)],
  ] as const) {
    await sleep(1000);
    const before = rssKiB(pid);
    const gwBefore = rssKiB(gw.pid);
    const c0 = performance.now();
    // 100 CONNECTs in flight: through RabbitMQ each is a login the gateway's auth endpoint answers.
    const clients = await connectMany(port, [...devices], 100);
    connects[`${name}PerSec`] = Math.round(IDLE / ((performance.now() - c0) / 1000));
    await sleep(3000);
    memory[`${name}KiBPerConnection`] = round((rssKiB(pid) - before) / IDLE, 1);
    if (name === "rabbitmq")
      memory.gatewayKiBPerRabbitConnection = round((rssKiB(gw.pid) - gwBefore) / IDLE, 1);
    await Promise.all(clients.map((c) => c.endAsync()));
  }

  // Reconnect storms: the node above (every login asks the gateway) against a second node with
  // the auth cache in front of the same gateway. Both run meanwhile; the storms alternate.
  const cached = await startRabbitMQ({
    authBaseUrl: `http://rabbitmq:${SECRET}@127.0.0.1:${httpPort}${RABBIT_AUTH_BASE}`,
    authCache: { ttlMs: CACHE_TTL_MS },
  });
  try {
    const cachedBeam = beamPid(cached.nodeName);
    const stormDevices = gw.devices.slice(PUBLISHERS * 2);
    for (let r = 0; r < RUNS; r++) {
      const devices = stormDevices.slice(r * STORM, (r + 1) * STORM);
      const order: [StormBroker, number, number][] = [
        ["rabbitmq", rabbit.mqttPort, beam],
        ["rabbitmq+cache", cached.mqttPort, cachedBeam],
      ];
      for (const [broker, port, vm] of r % 2 ? order.reverse() : order) {
        await sleep(1000);
        storms.push(await stormRound(broker, port, vm, devices));
      }
    }
  } finally {
    await cached.stop();
  }
} finally {
  await gw.stop();
  await rabbit.stop();
}

// ------------------------------------------------------------------ two gateway nodes on PostgreSQL

/** One PostgreSQL server for the parts below, a database each. */
const pgServer = await startPostgres({ database: "ata_bench" });
/** The same server, another database (created here). */
async function database(name: string): Promise<string> {
  const client = new pg.Client({ connectionString: pgServer.url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return pgServer.url.replace(/\/[^/]+$/, `/${name}`);
}

/** Queues of the second ingest layout: more than one, fewer than the publishers. */
const INGEST_PARTITIONS = 4;
/** heartbeatPayload's occurredAt is this plus the publish's index. */
const HEARTBEAT_EPOCH = Date.UTC(2026, 10, 23, 12, 0, 0);
/** A fall's escalation is due this long after it is raised (the rules file below). */
const ESCALATE_MS = 1000;
const SITE = "home-a";

type ClusterPath = "embedded" | `cluster, partitions ${number}`;
interface ClusterRun {
  path: ClusterPath;
  eventsPerSec: number;
  pubackPerSec: number;
  /** CPU-seconds per 1,000 events: gateway (the single process) or gatewayA, gatewayB; rabbitmq, postgres, publishers. */
  cpuPer1k: Record<string, number>;
  /** The run's events in the shared log with a position (cluster paths). */
  logged?: number;
  /** Of those, events logged after a later publish of the same device. */
  outOfOrder?: number;
  /** The events each node consumed and committed, as a share of the run's. */
  share?: number[];
}

const clusterRuns: ClusterRun[] = [];
let postmaster = 0;
/** Per kill: leases taken over, the escalation's lateness, the kill before it was due (ms). */
const gatewayTakeovers: {
  takeoverMs: number;
  killToEscalationMs: number;
  escalationLateMs: number;
  dueAfterKillMs: number;
}[] = [];

try {
  postmaster = postmasterPid(pgServer.port);
  const ingestDb = await database("ata_bench_ingest");
  const check = new pg.Pool({ connectionString: ingestDb, max: 2 });
  check.on("error", () => undefined);
  const authPort = await freePort();
  const rabbit2 = await startRabbitMQ({
    authBaseUrl: `http://rabbitmq:${SECRET}@127.0.0.1:${authPort}${RABBIT_AUTH_BASE}`,
    extraConfig: ["auth_backends.2 = internal"],
  });
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit2.amqpPort}`;
  const gateways: Child[] = [];
  const rate = { ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } } };
  try {
    const beam2 = beamPid(rabbit2.nodeName);
    const single = await startGatewayProcess(PUBLISHERS, { mqtt: ONE_ADDRESS_LOAD, ...rate });
    gateways.push(single);
    const accepted = async (port: number) =>
      (await scrapeSamples(port))
        .filter((x) => x.name === "ata_events_accepted_total")
        .reduce((a, x) => a + x.value, 0);
    const positioned = async () =>
      Number(
        (await check.query<{ n: string }>("SELECT coalesce(sum(head), 0) AS n FROM event_log_heads")).rows[0]!
          .n,
      );
    let offset = 200;

    const clusterRun = async (path: ClusterPath, nodes: Child[]): Promise<ClusterRun> => {
      const devices = single.devices.slice(0, PUBLISHERS);
      const clients = await connectMany(
        path === "embedded" ? single.ports.mqtt! : rabbit2.mqttPort,
        devices,
        PUBLISHERS,
      );
      const per = Math.ceil(EVENTS / PUBLISHERS);
      const n = per * PUBLISHERS;
      const first = offset++ * 1_000_000;
      const done = path === "embedded" ? () => accepted(single.ports.http!) : positioned;
      const target = (await done()) + n;
      const each0 = await Promise.all(nodes.map((g) => accepted(g.ports.http!)));
      const gw0 = (path === "embedded" ? [single] : nodes).map((g) => processCpu(g.pid));
      const cpu0 = { rabbitmq: processCpu(beam2), postgres: postgresCpu(postmaster), me: process.cpuUsage() };
      const t0 = performance.now();
      await pumpHeartbeats(
        clients,
        devices.map((d) => d.id),
        EVENTS,
        first,
      );
      const acked = performance.now();
      // Through RabbitMQ a PUBACK means the quorum queue has it; a node acks after the shared log has it.
      while ((await done()) < target) await sleep(10);
      const end = performance.now();
      const me = process.cpuUsage(cpu0.me);
      const gw1 = (path === "embedded" ? [single] : nodes).map((g) => processCpu(g.pid));
      const per1k = (s: number) => round((s / n) * 1000, 3);
      const cpuPer1k: Record<string, number> =
        path === "embedded"
          ? { gateway: per1k(gw1[0]! - gw0[0]!) }
          : {
              gatewayA: per1k(gw1[0]! - gw0[0]!),
              gatewayB: per1k(gw1[1]! - gw0[1]!),
              rabbitmq: per1k(processCpu(beam2) - cpu0.rabbitmq),
              postgres: per1k(postgresCpu(postmaster) - cpu0.postgres),
            };
      cpuPer1k.publishers = per1k((me.user + me.system) / 1e6);
      await Promise.all(clients.map((c) => c.endAsync()));
      const run: ClusterRun = {
        path,
        eventsPerSec: Math.round(n / ((end - t0) / 1000)),
        pubackPerSec: Math.round(n / ((acked - t0) / 1000)),
        cpuPer1k,
      };
      if (path !== "embedded") {
        // The run's events by their occurredAt (heartbeatPayload: the epoch plus the index).
        const range = [HEARTBEAT_EPOCH + first, HEARTBEAT_EPOCH + first + per];
        const { rows } = await check.query<{ logged: number; back: number }>(
          `SELECT count(*)::int AS logged, count(*) FILTER (WHERE back)::int AS back FROM (
             SELECT occurred_at < lag(occurred_at) OVER (PARTITION BY device_id ORDER BY partition, position) AS back
               FROM events WHERE site_id = 'bench' AND occurred_at >= $1 AND occurred_at < $2 AND position IS NOT NULL
           ) t`,
          range,
        );
        run.logged = rows[0]!.logged;
        run.outOfOrder = rows[0]!.back;
        const each1 = await Promise.all(nodes.map((g) => accepted(g.ports.http!)));
        run.share = each1.map((x, i) => round((x - each0[i]!) / n, 3));
      }
      return run;
    };

    for (const layout of [1, INGEST_PARTITIONS]) {
      const queue = `ata.bench.p${layout}`;
      const node = (nodeId: string, port: number) =>
        startGatewayProcess(PUBLISHERS, {
          mqtt: ONE_ADDRESS_LOAD,
          http: { host: "127.0.0.1", port, adminToken: ADMIN_TOKEN },
          ...rate,
          cluster: {
            rabbitmq: {
              enabled: true,
              username: "rabbitmq",
              secret: SECRET,
              ingest: { url: amqpUrl, queue, partitions: layout, prefetch: 500 },
            },
            postgres: { url: ingestDb, nodeId, poolSize: 6 },
          },
        });
      // Node A answers RabbitMQ's auth backend and starts first: with partitions it is every
      // queue's active consumer.
      const a = await node("bench-a", authPort);
      gateways.push(a);
      const b = await node("bench-b", 0);
      gateways.push(b);
      const path: ClusterPath = `cluster, partitions ${layout}`;
      // Warm-up of both paths, not counted.
      await clusterRun("embedded", [a, b]);
      await clusterRun(path, [a, b]);
      for (let r = 0; r < RUNS; r++)
        for (const p of r % 2 ? [path, "embedded" as const] : ["embedded" as const, path])
          clusterRuns.push(await clusterRun(p, [a, b]));
      for (const g of [b, a]) {
        await g.stop();
        gateways.splice(gateways.indexOf(g), 1);
      }
      // The layout's queues would otherwise stay bound and take every later publish too.
      const conn = await amqp.connect(amqpUrl);
      const ch = await conn.createChannel();
      if (layout === 1) await ch.deleteQueue(queue);
      else {
        await ch.deleteExchange(`${queue}.hash`);
        for (let i = 0; i < layout; i++) await ch.deleteQueue(`${queue}.${i}`);
      }
      await conn.close();
    }
  } finally {
    for (const g of gateways.reverse()) await g.stop();
    await rabbit2.stop();
    await check.end();
  }

  // -------------------------------------------------------------- gateway takeover after kill -9

  const takeoverDb = await database("ata_bench_takeover");
  const home = mkdtempSync(join(tmpdir(), "ata-bench-takeover-"));
  const radars = Array.from({ length: KILLS }, (_, k) => `tk-radar-${k}`);
  const rulesFile = join(home, "rules.yaml");
  // One level: with nobody connected the alert stays on it and escalates ("repeating last level")
  // when it is due, an audit entry at a known time.
  writeFileSync(
    rulesFile,
    `renotify: { high: 0s, medium: 0s, low: 0s, info: 0s }
escalation:
  high: [{ to: [unit], after: ${ESCALATE_MS}ms }]
  medium: [{ to: [unit], after: 60s }]
  low: [{ to: [unit], after: 60s }]
  info: [{ to: [unit], after: 60s }]
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`,
  );
  const configs = new Map<string, string>();
  for (const nodeId of ["gw-a", "gw-b", "gw-c"]) {
    const dir = join(home, nodeId);
    mkdirSync(dir, { recursive: true });
    configs.set(
      nodeId,
      writeConfig(dir, {
        dataDir: join(dir, "data"),
        rulesFile,
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
        http: { host: "127.0.0.1", port: 0 },
        sites: [
          {
            id: SITE,
            name: "Home A",
            units: [{ id: "unit-1", name: "Unit 1", rooms: radars.map((_, k) => `r${k}`) }],
          },
        ],
        devices: radars.map((id, k) => ({
          id,
          profile: "ata/native",
          secret: SECRET,
          site: SITE,
          unit: "unit-1",
          room: `r${k}`,
        })),
        cluster: {
          postgres: { url: takeoverDb, nodeId, partitions: PARTITIONS, leaseMs: LEASE_MS, poolSize: 5 },
        },
      }),
    );
  }
  const gws = new Map<string, GatewayProcess>();
  const q = new pg.Pool({ connectionString: takeoverDb, max: 2 });
  q.on("error", () => undefined);
  const heldBy = async () => {
    const { rows } = await q.query<{ owner: string; n: number }>(
      "SELECT owner, count(*)::int AS n FROM partition_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner",
    );
    return new Map(rows.map((r) => [r.owner, r.n]));
  };
  const settled = async () => {
    const held = await heldBy();
    const total = [...held.values()].reduce((a, n) => a + n, 0);
    return (
      total === PARTITIONS &&
      [...gws.keys()].every((id) => (held.get(id) ?? 0) >= Math.floor(PARTITIONS / gws.size))
    );
  };
  try {
    for (const [id, path] of configs) gws.set(id, await spawnGateway(path, {}, 60_000));
    await until(settled, LEASE_MS * 10, "three gateway nodes sharing the partitions", 50);
    const sitePartition = partitionOf(SITE, PARTITIONS);
    for (let k = 0; k < KILLS; k++) {
      const ownerId = (
        await q.query<{ owner: string }>(
          "SELECT owner FROM partition_leases WHERE partition = $1 AND expires_at > now()",
          [sitePartition],
        )
      ).rows[0]!.owner;
      const victim = gws.get(ownerId)!;
      const via = [...gws.entries()].find(([id]) => id !== ownerId)![1];
      // The fall through another node's broker: its PUBACK comes once it is in the shared log.
      const device = await connect(via.mqtt, radars[k]!, SECRET);
      await device.publishAsync(
        deviceTopic(radars[k]!, "events"),
        JSON.stringify({ eventId: `tk-fall-${k}`, type: "fall.detected", data: { confidence: 0.96 } }),
        { qos: 1 },
      );
      await device.endAsync();
      // Raised on the owner, its escalation pending in PostgreSQL.
      let alert: { id: string; due: number } | undefined;
      await until(
        async () => {
          const { rows } = await q.query<{ id: string; due: string }>(
            `SELECT a.id, t.due_at AS due FROM alerts a JOIN timers t ON t.id = 'alert:' || a.id || ':escalate'
              WHERE a.device_id = $1 AND a.open = 1`,
            [radars[k]],
          );
          alert = rows[0] ? { id: rows[0].id, due: Number(rows[0].due) } : undefined;
          return alert !== undefined;
        },
        10_000,
        `the fall of ${radars[k]} raised with its escalation due`,
        10,
      );
      const orphans = (
        await q.query<{ partition: number }>(
          "SELECT partition FROM partition_leases WHERE owner = $1 AND expires_at > now()",
          [ownerId],
        )
      ).rows.map((r) => r.partition);
      const killedAt = Date.now();
      const t0 = performance.now();
      await victim.kill9();
      gws.delete(ownerId);
      await until(
        async () =>
          (
            await q.query(
              "SELECT 1 FROM partition_leases WHERE partition = ANY($1) AND owner <> $2 AND expires_at > now()",
              [orphans, ownerId],
            )
          ).rowCount === orphans.length,
        LEASE_MS * 4 + 10_000,
        `survivors taking the ${orphans.length} partitions of ${ownerId}`,
        10,
      );
      const takeoverMs = round(performance.now() - t0, 0);
      let escalatedAt = 0;
      await until(
        async () => {
          const { rows } = await q.query<{ at: string }>(
            "SELECT at FROM alert_audit WHERE alert_id = $1 AND action = 'escalated' ORDER BY id LIMIT 1",
            [alert!.id],
          );
          escalatedAt = rows[0] ? Number(rows[0].at) : 0;
          return escalatedAt > 0;
        },
        LEASE_MS * 4 + 20_000,
        `the escalation of ${alert!.id} on a survivor`,
        10,
      );
      gatewayTakeovers.push({
        takeoverMs,
        killToEscalationMs: escalatedAt - killedAt,
        escalationLateMs: escalatedAt - alert!.due,
        dueAfterKillMs: alert!.due - killedAt,
      });
      gws.set(ownerId, await spawnGateway(configs.get(ownerId)!, {}, 60_000));
      await until(settled, LEASE_MS * 10, `${ownerId} back with its share`, 50);
    }
  } finally {
    for (const g of gws.values()) {
      await Promise.race([g.stop(), sleep(10_000)]);
      await g.kill9();
    }
    await q.end();
    rmSync(home, { recursive: true, force: true });
  }
} catch (err) {
  await pgServer.stop();
  throw err;
}

// ------------------------------------------------------------------ partition takeover, the leases alone

interface LeaseNode {
  id: string;
  child: ChildProcess;
  owned: Set<number>;
  /** Every line the node printed, with when it arrived (performance.now()). */
  events: { ev: string; p?: number; at: number }[];
}

const takeovers: number[] = [];
const nodes = new Map<string, LeaseNode>();
function startNode(id: string): Promise<LeaseNode> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "test/cluster/pg/lease-node.ts"),
      pgServer.url,
      id,
      String(LEASE_MS),
      String(PARTITIONS),
    ],
    { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] },
  );
  const node: LeaseNode = { id, child, owned: new Set(), events: [] };
  nodes.set(id, node);
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`lease node ${id} exited with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { ev: string; p?: number };
      node.events.push({ ...m, at: performance.now() });
      if (m.ev === "loaded") child.stdin!.write("start\n");
      else if (m.ev === "started") resolve(node);
      else if (m.ev === "acquired") node.owned.add(m.p!);
      else if (m.ev === "lost") node.owned.delete(m.p!);
    });
  });
}
const balanced = () => {
  const live = [...nodes.values()].filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  const total = live.reduce((a, n) => a + n.owned.size, 0);
  return total === PARTITIONS && live.every((n) => n.owned.size >= Math.floor(PARTITIONS / live.length));
};
try {
  const pool = new pg.Pool({ connectionString: pgServer.url, max: 2 });
  await migratePg(pool);
  await pool.query(LEASE_LOG_TABLE);
  await pool.end();
  for (const id of ["node-a", "node-b", "node-c"]) await startNode(id);
  await until(balanced, LEASE_MS * 5, "three nodes sharing the partitions");
  for (let k = 0; k < KILLS; k++) {
    const victim = [...nodes.values()][k % 3]!;
    const orphans = new Set(victim.owned);
    const survivors = [...nodes.values()].filter((n) => n !== victim);
    const killedAt = performance.now();
    const exited = new Promise((r) => victim.child.once("exit", r));
    victim.child.kill("SIGKILL");
    await exited;
    await until(
      () => [...orphans].every((p) => survivors.some((s) => s.owned.has(p))),
      LEASE_MS * 4,
      `survivors taking the ${orphans.size} partitions of ${victim.id}`,
    );
    const last = Math.max(
      ...survivors.flatMap((s) =>
        s.events.filter((e) => e.ev === "acquired" && orphans.has(e.p!) && e.at >= killedAt).map((e) => e.at),
      ),
    );
    takeovers.push(round(last - killedAt, 0));
    victim.child.removeAllListeners("exit");
    await startNode(victim.id);
    await until(balanced, LEASE_MS * 5, "the restarted node getting its share");
  }
} finally {
  for (const n of nodes.values()) {
    n.child.removeAllListeners("exit");
    if (n.child.exitCode === null && n.child.signalCode === null) {
      const gone = new Promise((r) => n.child.once("exit", r));
      n.child.kill("SIGTERM");
      await Promise.race([gone, sleep(3000)]);
      n.child.kill("SIGKILL");
    }
  }
  await pgServer.stop();
}

// ------------------------------------------------------------------ report

const of = (path: IngestRun["path"]) => runs.filter((r) => r.path === path);
const med = (path: IngestRun["path"], f: (r: IngestRun) => number) => median(of(path).map(f));
const embedded = med("embedded", (r) => r.eventsPerSec);
const viaRabbit = med("rabbitmq", (r) => r.eventsPerSec);
console.log(
  table(
    ["run", "path", "durable events/s", "PUBACKs/s", "CPU-s per 1k: gateway", "RabbitMQ", "publishers"],
    runs.map((r, i) => [
      `run ${Math.floor(i / 2) + 1}`,
      r.path,
      r.eventsPerSec,
      r.pubackPerSec,
      r.cpuPer1k.gateway,
      r.cpuPer1k.rabbitmq,
      r.cpuPer1k.publishers,
    ]),
  ),
);
console.log();
console.log(
  table(
    [
      "round",
      "broker",
      "first logins/s",
      "auth requests per login",
      "again logins/s",
      "auth requests per login",
      "CPU-ms per login again: gateway",
      "RabbitMQ",
    ],
    storms.map((s, i) => [
      `round ${Math.floor(i / 2) + 1}`,
      s.broker,
      s.firstPerSec,
      s.firstRequestsPerLogin,
      s.againPerSec,
      s.againRequestsPerLogin,
      s.againCpuMsPerLogin.gateway,
      s.againCpuMsPerLogin.rabbitmq,
    ]),
  ),
);
console.log();
console.log(
  table(
    [
      "run",
      "path",
      "events/s to PostgreSQL's log",
      "PUBACKs/s",
      "CPU-s per 1k: gateway (A / B)",
      "RabbitMQ",
      "PostgreSQL",
      "publishers",
      "share A / B",
      "out of order",
    ],
    clusterRuns.map((r, i) => [
      `run ${clusterRuns.slice(0, i + 1).filter((x) => x.path === r.path).length}`,
      r.path,
      r.eventsPerSec,
      r.pubackPerSec,
      r.path === "embedded" ? String(r.cpuPer1k.gateway) : `${r.cpuPer1k.gatewayA} / ${r.cpuPer1k.gatewayB}`,
      String(r.cpuPer1k.rabbitmq ?? "-"),
      String(r.cpuPer1k.postgres ?? "-"),
      String(r.cpuPer1k.publishers),
      r.share ? r.share.join(" / ") : "-",
      String(r.outOfOrder ?? "-"),
    ]),
  ),
);
console.log();
const storm = (broker: StormBroker, f: (s: StormRound) => number) =>
  median(storms.filter((s) => s.broker === broker).map(f));
const sorted = [...takeovers].sort((a, b) => a - b);
const clusterPaths = [...new Set(clusterRuns.map((r) => r.path))].filter((p) => p !== "embedded");
const ofPath = (path: ClusterPath) => clusterRuns.filter((r) => r.path === path);
const medPath = (path: ClusterPath, f: (r: ClusterRun) => number) => median(ofPath(path).map(f));
const singleB = medPath("embedded", (r) => r.eventsPerSec);
const clusterSummary = Object.fromEntries(
  clusterPaths.map((path) => {
    const cpuKeys = Object.keys(ofPath(path)[0]!.cpuPer1k);
    const cpu = Object.fromEntries(cpuKeys.map((k) => [k, medPath(path, (r) => r.cpuPer1k[k]!)]));
    const eventsPerSec = medPath(path, (r) => r.eventsPerSec);
    return [
      path,
      {
        eventsPerSec,
        ratio: round(eventsPerSec / singleB, 3),
        pubackPerSec: medPath(path, (r) => r.pubackPerSec),
        cpuSecondsPer1k: {
          ...cpu,
          total: round(
            Object.values(cpu).reduce((a, x) => a + x, 0),
            3,
          ),
        },
        shareMedian: [0, 1].map((i) => medPath(path, (r) => r.share![i]!)),
        outOfOrderTotal: ofPath(path).reduce((a, r) => a + r.outOfOrder!, 0),
        loggedAll: ofPath(path).every((r) => r.logged === PUBLISHERS * Math.ceil(EVENTS / PUBLISHERS)),
        perDeviceOrder: path.endsWith(" 1")
          ? "not kept: two consumers share one queue"
          : "kept: one active consumer per queue",
      },
    ];
  }),
);
const gwSorted = (f: (t: (typeof gatewayTakeovers)[number]) => number) =>
  gatewayTakeovers.map(f).sort((a, b) => a - b);
const gwStat = (f: (t: (typeof gatewayTakeovers)[number]) => number) => {
  const xs = gwSorted(f);
  return { median: median(xs), max: xs[xs.length - 1] ?? Number.NaN };
};
const bound = Math.round(LEASE_MS + LEASE_MS / 3);
console.log(
  table(
    ["figure", "value"],
    [
      ["single process (embedded broker) median events/s", embedded],
      ["through RabbitMQ + 1 gateway node median events/s", viaRabbit],
      ["ratio RabbitMQ / single process", round(viaRabbit / embedded, 2)],
      ["embedded broker KiB per idle device connection", memory.embeddedKiBPerConnection!],
      ["RabbitMQ KiB per idle device connection", memory.rabbitmqKiBPerConnection!],
      ["gateway KiB per device on RabbitMQ (auth only)", memory.gatewayKiBPerRabbitConnection!],
      ["device logins/s, 100 in flight: embedded broker", connects.embeddedPerSec!],
      ["device logins/s, 100 in flight: RabbitMQ asking the gateway", connects.rabbitmqPerSec!],
      [`storm of ${STORM}, logins/s: first login, no cache`, storm("rabbitmq", (s) => s.firstPerSec)],
      [`storm of ${STORM}, logins/s: login again, no cache`, storm("rabbitmq", (s) => s.againPerSec)],
      [
        `storm of ${STORM}, logins/s: first login, auth cache (TTL ${CACHE_TTL_MS / 1000} s)`,
        storm("rabbitmq+cache", (s) => s.firstPerSec),
      ],
      [`storm of ${STORM}, logins/s: login again, auth cache`, storm("rabbitmq+cache", (s) => s.againPerSec)],
      [`takeover after kill -9, ms (lease ${LEASE_MS} ms): median`, median(sorted)],
      ["takeover max ms", sorted[sorted.length - 1] ?? Number.NaN],
      ["takeover bound: lease + renew (lease / 3)", bound],
      ["single process (embedded broker) median events/s, beside the cluster runs", singleB],
      ...clusterPaths.flatMap((path): (string | number)[][] => {
        const c = clusterSummary[path]!;
        return [
          [`RabbitMQ + 2 gateway nodes + PostgreSQL, ${path.slice(9)}: median events/s`, c.eventsPerSec],
          [`  ratio to the single process`, c.ratio],
          [`  CPU-s per 1k, all components`, String(c.cpuSecondsPer1k.total)],
          [`  share of the events, node A / B`, c.shareMedian.join(" / ")],
          [
            `  events out of their device's order (all runs); per-device order`,
            `${c.outOfOrderTotal}; ${c.perDeviceOrder}`,
          ],
        ];
      }),
      [
        `gateway takeover after kill -9 of the site's owner, ms (lease ${LEASE_MS} ms): median`,
        gwStat((t) => t.takeoverMs).median,
      ],
      ["gateway takeover max ms", gwStat((t) => t.takeoverMs).max],
      ["kill -9 to the escalation's audit entry, ms: median", gwStat((t) => t.killToEscalationMs).median],
      ["kill -9 to the escalation's audit entry, ms: max", gwStat((t) => t.killToEscalationMs).max],
      [
        `escalation later than due (due ${ESCALATE_MS} ms after the raise), ms: median`,
        gwStat((t) => t.escalationLateMs).median,
      ],
      ["escalation later than due, ms: max", gwStat((t) => t.escalationLateMs).max],
      [
        "kills landing before the escalation was due",
        `${gatewayTakeovers.filter((t) => t.dueAfterKillMs > 0).length} of ${gatewayTakeovers.length}`,
      ],
      ["gateway takeover bound: lease + renew (lease / 3)", bound],
    ],
  ),
);
console.log(
  JSON.stringify({
    bench: "cluster",
    events: EVENTS,
    publishers: PUBLISHERS,
    idle: IDLE,
    ingest: {
      embeddedEventsPerSec: embedded,
      rabbitmqEventsPerSec: viaRabbit,
      ratio: round(viaRabbit / embedded, 3),
      rabbitmqPubackPerSec: med("rabbitmq", (r) => r.pubackPerSec),
      cpuSecondsPer1k: {
        embedded: {
          gateway: med("embedded", (r) => r.cpuPer1k.gateway),
          publishers: med("embedded", (r) => r.cpuPer1k.publishers),
        },
        rabbitmq: {
          gateway: med("rabbitmq", (r) => r.cpuPer1k.gateway),
          rabbitmq: med("rabbitmq", (r) => r.cpuPer1k.rabbitmq),
          publishers: med("rabbitmq", (r) => r.cpuPer1k.publishers),
        },
      },
      runs,
    },
    memory,
    connectsPerSec: connects,
    storm: {
      devices: STORM,
      inFlight: 100,
      cacheTtlMs: CACHE_TTL_MS,
      noCache: {
        firstPerSec: storm("rabbitmq", (s) => s.firstPerSec),
        againPerSec: storm("rabbitmq", (s) => s.againPerSec),
        firstRequestsPerLogin: storm("rabbitmq", (s) => s.firstRequestsPerLogin),
        againRequestsPerLogin: storm("rabbitmq", (s) => s.againRequestsPerLogin),
        againCpuMsPerLogin: {
          gateway: storm("rabbitmq", (s) => s.againCpuMsPerLogin.gateway),
          rabbitmq: storm("rabbitmq", (s) => s.againCpuMsPerLogin.rabbitmq),
        },
      },
      cache: {
        firstPerSec: storm("rabbitmq+cache", (s) => s.firstPerSec),
        againPerSec: storm("rabbitmq+cache", (s) => s.againPerSec),
        firstRequestsPerLogin: storm("rabbitmq+cache", (s) => s.firstRequestsPerLogin),
        againRequestsPerLogin: storm("rabbitmq+cache", (s) => s.againRequestsPerLogin),
        againCpuMsPerLogin: {
          gateway: storm("rabbitmq+cache", (s) => s.againCpuMsPerLogin.gateway),
          rabbitmq: storm("rabbitmq+cache", (s) => s.againCpuMsPerLogin.rabbitmq),
        },
      },
      rounds: storms,
    },
    takeover: {
      leaseMs: LEASE_MS,
      partitions: PARTITIONS,
      kills: takeovers.length,
      medianMs: median(sorted),
      maxMs: sorted[sorted.length - 1] ?? null,
      boundMs: bound,
      runsMs: takeovers,
    },
    clusterIngest: {
      publishers: PUBLISHERS,
      nodes: 2,
      singleProcessEventsPerSec: singleB,
      singleProcessCpuSecondsPer1k: {
        gateway: medPath("embedded", (r) => r.cpuPer1k.gateway!),
        publishers: medPath("embedded", (r) => r.cpuPer1k.publishers!),
      },
      layouts: clusterSummary,
      runs: clusterRuns,
    },
    gatewayTakeover: {
      nodes: 3,
      leaseMs: LEASE_MS,
      partitions: PARTITIONS,
      escalateAfterMs: ESCALATE_MS,
      kills: gatewayTakeovers.length,
      /** Kills that landed before the escalation was due: the others measure nothing of it. */
      killedBeforeDue: gatewayTakeovers.filter((t) => t.dueAfterKillMs > 0).length,
      takeoverMs: gwStat((t) => t.takeoverMs),
      killToEscalationMs: gwStat((t) => t.killToEscalationMs),
      escalationLateMs: gwStat((t) => t.escalationLateMs),
      boundMs: bound,
      runs: gatewayTakeovers,
    },
  }),
);
