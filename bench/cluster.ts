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
 * 4. Partition takeover after kill -9 of an owner: three nodes leasing 64 partitions in a real
 *    PostgreSQL (src/cluster/pg/leases.ts, the node as in the tests: test/cluster/pg/lease-node.ts);
 *    one is killed, the time until the survivors have acquired every partition it held is measured,
 *    the node is started again and the cluster let settle; `kills` times.
 *
 *   npm run bench -- cluster [events=30000] [idle=2000] [kills=10] [leaseMs=3000] [storm=1000]
 *
 * What it cannot measure yet: two gateway nodes sharing the ingest (one consumer per queue keeps a
 * device's order; the partitioned queues are not built) and gateway state in PostgreSQL (the
 * gateway keeps it in SQLite). docs/cluster.md turns the figures into a sizing table.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { migratePg } from "../src/cluster/pg/migrate.js";
import { RABBIT_AUTH_BASE } from "../src/cluster/rabbit-auth.js";
import { LEASE_LOG_TABLE } from "../test/cluster/pg/lease-writer.js";
import { freePort } from "../test/helpers/ports.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { startRabbitMQ } from "../test/helpers/rabbitmq.js";
import {
  type BenchDevice,
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

// ------------------------------------------------------------------ partition takeover

interface LeaseNode {
  id: string;
  child: ChildProcess;
  owned: Set<number>;
  /** Every line the node printed, with when it arrived (performance.now()). */
  events: { ev: string; p?: number; at: number }[];
}

const pgServer = await startPostgres({ database: "ata_bench" });
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
async function until(ok: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

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
const storm = (broker: StormBroker, f: (s: StormRound) => number) =>
  median(storms.filter((s) => s.broker === broker).map(f));
const sorted = [...takeovers].sort((a, b) => a - b);
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
      ["takeover bound: lease + renew (lease / 3)", Math.round(LEASE_MS + LEASE_MS / 3)],
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
      boundMs: Math.round(LEASE_MS + LEASE_MS / 3),
      runsMs: takeovers,
    },
  }),
);
