/**
 * Flood: no one device or socket can exhaust the gateway. A gateway with production limits (nothing
 * lifted) and one good device publishing a QoS 1 heartbeat every 50 ms, its PUBACK latency measured
 * throughout, in three phases of one run:
 *
 * 1. baseline: the good device alone (and one reconnect of a second good device);
 * 2. flood: at once, from an attacker child process (one core at most, so this process's timing of
 *    the good device is not delayed by the attack's own event loop):
 *    a. a registered device flooding bad JSON, and another 100 KB payloads (over maxPayloadBytes,
 *       under maxFrameBytes), QoS 1 with WINDOW publishes in flight each;
 *    b. a registered device flooding valid heartbeats as fast as it can (past ingest.deviceRate);
 *    c. CONNECT brute force: BRUTE_PARALLEL raw sockets guessing ids (registered and made up) and
 *       secrets, without pause;
 *    d. idle sockets that never send CONNECT, IDLE_SLOTS of them kept open (re-opened when closed);
 *    e. raw sockets whose first frame declares a 1 MiB CONNECT;
 *    while a second good device (connected before, so its pair is known) drops its session and
 *    reconnects every few seconds, and a device never seen before tries its first CONNECT.
 * 3. calm: the attack stopped; latency, memory and disk again.
 *
 * All load comes from 127.0.0.1, so the per-address limits (mqtt.maxPendingPerAddress,
 * mqtt.authFailures) apply to the attacker and the good devices together: the good devices sit
 * behind the attacker's NAT, the worst case for them.
 *
 * Sampled every second: the gateway's RSS and the data directory's files (all of them, and the event
 * log with its WAL). At the end: /metrics, dead-letter rows per device and security_log rows (read
 * only, while running and again after a graceful stop, which writes the folded repeats).
 *
 *   npm run bench -- flood [floodSec=60] [baselineSec=20] [calmSec=15]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import {
  type BenchDevice,
  median,
  percentile,
  rssKiB,
  type Sample,
  sampleValue,
  scrapeSamples,
  startGatewayProcess,
  table,
  threadCpuSeconds,
} from "./lib.js";

const FLOOD_SEC = Number(process.argv[2] ?? 60);
const BASELINE_SEC = Number(process.argv[3] ?? 20);
const CALM_SEC = Number(process.argv[4] ?? 15);
const DEVICES = 20;
const GOOD_INTERVAL_MS = 50;
/** QoS 1 publishes each flooding device keeps in flight. */
const WINDOW = 300;
const OVERSIZED_BYTES = 100_000;
const BRUTE_PARALLEL = 50;
/** Idle sockets the attacker tries to hold: more than mqtt.maxPendingPerAddress (100). */
const IDLE_SLOTS = 150;
const BIG_FRAME_PARALLEL = 5;
const BIG_FRAME_DECLARED = 1_048_576;
/** How long a probing device keeps retrying (once a second) before it gives up. */
const PROBE_GIVE_UP_MS = 20_000;

type Phase = "baseline" | "flood" | "calm";
const PHASES: Phase[] = ["baseline", "flood", "calm"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const round = (x: number, digits = 1) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);
const MiB = (bytes: number) => bytes / 1_048_576;

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1 by hand, for the raw-socket attackers (no client library's buffering in the way).

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    out.push(digit);
  } while (n > 0);
  return Buffer.from(out);
}

function mqttString(s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** CONNECT (section 3.1): protocol "MQTT" level 4, username + password + clean session, keepalive 30 s. */
function connectPacket(id: string, secret: string): Buffer {
  const header = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0xc2, 0, 30]);
  const body = Buffer.concat([header, mqttString(id), mqttString(id), mqttString(secret)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

/** A CONNECT fixed header declaring BIG_FRAME_DECLARED bytes, and the first bytes of its body. */
const BIG_FRAME = Buffer.concat([
  Buffer.from([0x10]),
  remainingLength(BIG_FRAME_DECLARED),
  Buffer.alloc(1024, 0x41),
]);

type RawOutcome = "connack-0" | "connack-2" | "connack-3" | "connack-4" | "connack-5" | string;

/**
 * Open a socket, send `first`, and wait for a CONNACK, the gateway closing it, or the timeout.
 * "closed" and "reset" are the gateway closing the socket (a reset when our bytes were unread).
 */
function rawExchange(
  port: number,
  first: Buffer,
  timeoutMs: number,
): Promise<{ outcome: RawOutcome; ms: number }> {
  return new Promise((resolve) => {
    const t0 = now();
    const s = netConnect({ host: "127.0.0.1", port });
    s.setNoDelay(true);
    let done = false;
    const finish = (outcome: RawOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ outcome, ms: now() - t0 });
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    s.once("connect", () => s.write(first));
    s.on("data", (d: Buffer) => {
      if (d[0] === 0x20 && d.length >= 4) finish(`connack-${d[3]}`);
    });
    s.once("close", () => finish("closed"));
    s.on("error", (e: NodeJS.ErrnoException) =>
      finish(e.code === "ECONNRESET" || e.code === "EPIPE" ? "reset" : `error-${e.code}`),
    );
  });
}

/**
 * One mqtt.js connection attempt: the client, or why not ("connack N", "closed" before a CONNACK,
 * "timeout"). TCP_NODELAY as in lib.ts's connect.
 */
function connectOnce(port: number, dev: BenchDevice, timeoutMs: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: "127.0.0.1",
      port,
      clientId: dev.id,
      username: dev.id,
      password: dev.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      keepalive: 300,
    });
    const nodelay = () => (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
    nodelay();
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail("timeout"), timeoutMs);
    // Errors after the outcome (a reset while closing) must not throw for want of a listener.
    client.on("error", (err: Error & { code?: unknown }) =>
      fail(typeof err.code === "number" ? `connack ${err.code}` : `error ${err.code ?? err.message}`),
    );
    client.once("close", () => fail("closed"));
    client.once("connect", () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      nodelay();
      resolve(client);
    });
  });
}

function count(table: Record<string, number>, key: string, n = 1): void {
  table[key] = (table[key] ?? 0) + n;
}

// ---------------------------------------------------------------------------------------------
// The attacker: a child process of its own, so the flood's event loop is not this one.

interface AttackPlan {
  port: number;
  seconds: number;
  badJson: BenchDevice;
  oversized: BenchDevice;
  valid: BenchDevice;
  /** Registered ids the brute force guesses secrets for (besides made-up ids). */
  guessIds: string[];
}

interface PublisherResult {
  sent: number;
  acked: number;
  failed: number;
  sentMiB: number;
  ackedPerSec: number;
  sessions: number;
  connectFailures: Record<string, number>;
}

interface AttackResult {
  seconds: number;
  /** The attacker process's own CPU over the flood (its start-up included). */
  cpuSeconds: number;
  badJson: PublisherResult;
  oversized: PublisherResult;
  valid: PublisherResult;
  brute: { attempts: number; perSec: number; outcomes: Record<string, number>; answerMsP50: number | null };
  idle: {
    opened: number;
    outcomes: Record<string, number>;
    heldMax: number;
    heldMedian: number;
    timedOutHeldMsP50: number | null;
  };
  bigFrame: {
    sent: number;
    outcomes: Record<string, number>;
    closeMsP50: number | null;
    closeMsMax: number | null;
  };
}

/** A device publishing as fast as the gateway acknowledges, WINDOW in flight; reconnects if dropped. */
async function floodPublisher(
  port: number,
  dev: BenchDevice,
  payload: (i: number) => Buffer,
  until: number,
): Promise<PublisherResult> {
  const r: PublisherResult = {
    sent: 0,
    acked: 0,
    failed: 0,
    sentMiB: 0,
    ackedPerSec: 0,
    sessions: 0,
    connectFailures: {},
  };
  let bytes = 0;
  const t0 = now();
  const topic = `ata/v1/${dev.id}/events`;
  while (now() < until) {
    let client: MqttClient;
    try {
      client = await connectOnce(port, dev, 5000);
      r.sessions++;
    } catch (err) {
      count(r.connectFailures, (err as Error).message);
      await sleep(200);
      continue;
    }
    await new Promise<void>((resolve) => {
      let inFlight = 0;
      let closed = false;
      const pump = () => {
        while (!closed && inFlight < WINDOW && now() < until) {
          const p = payload(r.sent++);
          bytes += p.length;
          inFlight++;
          client.publish(topic, p, { qos: 1 }, (err) => {
            inFlight--;
            if (err) r.failed++;
            else r.acked++;
            pump();
          });
        }
      };
      client.once("close", () => {
        closed = true;
        resolve();
      });
      const stop = setTimeout(() => client.end(true), Math.max(0, until - now()));
      stop.unref();
      pump();
    });
  }
  r.sentMiB = round(MiB(bytes)) ?? 0;
  r.ackedPerSec = Math.round(r.acked / ((now() - t0) / 1000));
  return r;
}

async function bruteForce(port: number, guessIds: string[], until: number): Promise<AttackResult["brute"]> {
  const outcomes: Record<string, number> = {};
  const answered: number[] = [];
  let attempts = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: BRUTE_PARALLEL }, async () => {
      while (now() < until) {
        attempts++;
        const id =
          Math.random() < 0.5
            ? guessIds[Math.floor(Math.random() * guessIds.length)]!
            : `guess-${Math.random().toString(36).slice(2, 10)}`;
        const secret = Math.random().toString(36).slice(2);
        const r = await rawExchange(port, connectPacket(id, secret), 10_000);
        count(outcomes, r.outcome);
        if (r.outcome.startsWith("connack")) answered.push(r.ms);
        // Out of local ports or file descriptors: the generator's limit, not the gateway's.
        if (r.outcome.startsWith("error")) await sleep(50);
      }
    }),
  );
  return {
    attempts,
    perSec: Math.round(attempts / ((now() - t0) / 1000)),
    outcomes,
    answerMsP50: round(median(answered), 2),
  };
}

/**
 * IDLE_SLOTS sockets that never send a byte, each re-opened when the gateway closes it (after a
 * pause when it was refused at once, so a refusal does not become a busy loop).
 */
async function idleSockets(port: number, until: number): Promise<AttackResult["idle"]> {
  const outcomes: Record<string, number> = {};
  const open = new Map<Socket, number>();
  const heldSamples: number[] = [];
  const timedOutMs: number[] = [];
  let opened = 0;
  const sampler = setInterval(() => {
    const t = now();
    let held = 0;
    for (const at of open.values()) if (t - at > 500) held++;
    heldSamples.push(held);
  }, 250);
  await Promise.all(
    Array.from({ length: IDLE_SLOTS }, async () => {
      while (now() < until) {
        opened++;
        const r = await new Promise<{ outcome: string; ms: number }>((resolve) => {
          const t0 = now();
          const s = netConnect({ host: "127.0.0.1", port });
          let done = false;
          const finish = (outcome: string) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            open.delete(s);
            s.destroy();
            resolve({ outcome, ms: now() - t0 });
          };
          const timer = setTimeout(() => finish("open_at_end"), Math.max(0, until - now()));
          s.once("connect", () => open.set(s, now()));
          s.once("close", () => {
            const ms = now() - t0;
            finish(ms < 1000 ? "refused" : "timed_out");
          });
          s.on("error", (e: NodeJS.ErrnoException) =>
            finish(
              e.code === "ECONNRESET" ? (now() - t0 < 1000 ? "refused" : "timed_out") : `error-${e.code}`,
            ),
          );
        });
        count(outcomes, r.outcome);
        if (r.outcome === "timed_out") timedOutMs.push(r.ms);
        else if (r.outcome !== "open_at_end") await sleep(250);
      }
    }),
  );
  clearInterval(sampler);
  return {
    opened,
    outcomes,
    heldMax: Math.max(0, ...heldSamples),
    heldMedian: median(heldSamples),
    timedOutHeldMsP50: round(median(timedOutMs), 0),
  };
}

async function bigFrames(port: number, until: number): Promise<AttackResult["bigFrame"]> {
  const outcomes: Record<string, number> = {};
  const closeMs: number[] = [];
  let sent = 0;
  await Promise.all(
    Array.from({ length: BIG_FRAME_PARALLEL }, async () => {
      while (now() < until) {
        sent++;
        const r = await rawExchange(port, BIG_FRAME, 10_000);
        count(outcomes, r.outcome);
        if (r.outcome === "closed" || r.outcome === "reset") closeMs.push(r.ms);
        await sleep(50);
      }
    }),
  );
  return {
    sent,
    outcomes,
    closeMsP50: round(median(closeMs), 2),
    closeMsMax: closeMs.length ? round(Math.max(...closeMs), 0) : null,
  };
}

async function attack(plan: AttackPlan): Promise<AttackResult> {
  const until = now() + plan.seconds * 1000;
  const oversized = Buffer.alloc(OVERSIZED_BYTES, 0x7b);
  const [badJson, big, valid, brute, idle, bigFrame] = await Promise.all([
    floodPublisher(
      plan.port,
      plan.badJson,
      (i) => Buffer.from(`{"type":"device.heartbeat","data":{"n":${i}`),
      until,
    ),
    floodPublisher(plan.port, plan.oversized, () => oversized, until),
    floodPublisher(
      plan.port,
      plan.valid,
      (i) => Buffer.from(JSON.stringify({ eventId: `flood-${i}`, type: "device.heartbeat", data: {} })),
      until,
    ),
    bruteForce(plan.port, plan.guessIds, until),
    idleSockets(plan.port, until),
    bigFrames(plan.port, until),
  ]);
  const cpu = process.cpuUsage();
  return {
    seconds: plan.seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    badJson,
    oversized: big,
    valid,
    brute,
    idle,
    bigFrame,
  };
}

/** Spawn this file as the attacker; resolves with its result line. */
function startAttacker(plan: AttackPlan): { child: ChildProcess; result: Promise<AttackResult> } {
  const child = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname], {
    env: { ...process.env, FLOOD_ATTACK: JSON.stringify(plan) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const result = new Promise<AttackResult>((resolve, reject) => {
    let got: AttackResult | null = null;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith('{"attack"')) got = (JSON.parse(line) as { attack: AttackResult }).attack;
    });
    child.once("exit", (code) => (got ? resolve(got) : reject(new Error(`attacker exited with ${code}`))));
  });
  return { child, result };
}

// ---------------------------------------------------------------------------------------------
// The measuring side.

interface DiskSample {
  total: number;
  eventsDb: number;
  eventsWal: number;
  mainDb: number;
  mainWal: number;
}

/** Every file under the data directory, summed, and the two databases with their WALs. */
function diskSample(dataDir: string): DiskSample {
  const size = (p: string) => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  const walk = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => {
      const p = join(dir, e.name);
      return sum + (e.isDirectory() ? walk(p) : e.isFile() ? size(p) : 0);
    }, 0);
  return {
    total: walk(dataDir),
    eventsDb: size(join(dataDir, "ata-events.db")),
    eventsWal: size(join(dataDir, "ata-events.db-wal")),
    mainDb: size(join(dataDir, "ata.db")),
    mainWal: size(join(dataDir, "ata.db-wal")),
  };
}

interface Publish {
  phase: Phase;
  sentAt: number;
  ms: number | null;
  err?: string;
}

interface Probe {
  phase: Phase;
  ok: boolean;
  attempts: number;
  /** From the first attempt to CONNACK 0. */
  connectMs: number | null;
  /** The first publish on the new session: publish -> PUBACK. */
  pubackMs: number | null;
  failures: Record<string, number>;
  /** Gave up early because the phase ended, not after PROBE_GIVE_UP_MS: not counted as a failure. */
  cutShort: boolean;
}

/**
 * A device (re)connecting as a real one would: an attempt a second until CONNACK 0 or it gives up,
 * then one QoS 1 event on the new session, then it disconnects.
 */
async function probe(port: number, dev: BenchDevice, phase: () => Phase, giveUpMs: number): Promise<Probe> {
  const p: Probe = {
    phase: phase(),
    ok: false,
    attempts: 0,
    connectMs: null,
    pubackMs: null,
    failures: {},
    cutShort: giveUpMs < PROBE_GIVE_UP_MS,
  };
  const t0 = now();
  while (now() - t0 < giveUpMs) {
    p.attempts++;
    const ta = now();
    try {
      const c = await connectOnce(port, dev, Math.min(5000, Math.max(500, giveUpMs - (ta - t0))));
      p.connectMs = now() - t0;
      const tp = now();
      await c.publishAsync(
        `ata/v1/${dev.id}/events`,
        JSON.stringify({ eventId: `probe-${Date.now()}`, type: "device.heartbeat", data: {} }),
        { qos: 1 },
      );
      p.pubackMs = now() - tp;
      p.ok = true;
      p.cutShort = false;
      await c.endAsync();
      return p;
    } catch (err) {
      count(p.failures, (err as Error).message);
      await sleep(Math.max(0, 1000 - (now() - ta)));
    }
  }
  return p;
}

function latencyRow(xs: Publish[]) {
  const ms = xs.filter((x) => x.ms !== null).map((x) => x.ms!);
  return {
    sent: xs.length,
    acked: ms.length,
    failed: xs.filter((x) => x.err).length,
    neverAcked: xs.filter((x) => x.ms === null && !x.err).length,
    p50: round(percentile(ms, 50), 2),
    p99: round(percentile(ms, 99), 2),
    max: round(ms.length ? Math.max(...ms) : Number.NaN, 1),
  };
}

async function main(): Promise<void> {
  const gw = await startGatewayProcess(DEVICES, {});
  const dataDir = join(gw.dir, "data");
  const [good, second, badJson, oversized, valid, fresh] = gw.devices;
  // Not the devices measured or flooding, nor the never-seen device (whose id alone should be clean).
  const guessIds = gw.devices.slice(6).map((d) => d.id);
  let attacker: ChildProcess | null = null;
  const timers: NodeJS.Timeout[] = [];
  const clients: MqttClient[] = [];
  /** Set at the end (or on a failure): the good device stops reconnecting. */
  let stopping = false;
  try {
    const port = gw.ports.mqtt!;
    const http = gw.ports.http!;
    let phase: Phase = "baseline";
    const phaseNow = () => phase;

    // Per phase: samples every second, CPU and event-loop delay here, metrics at the boundaries.
    const samples: { phase: Phase; t: number; rss: number; disk: DiskSample }[] = [];
    const t00 = now();
    const sampleNow = () =>
      samples.push({ phase, t: (now() - t00) / 1000, rss: rssKiB(gw.pid), disk: diskSample(dataDir) });
    sampleNow();
    const sampler = setInterval(sampleNow, 1000);
    timers.push(sampler);
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const boundary: {
      metrics: Sample[];
      gwCpu: number;
      benchCpu: number;
      t: number;
    }[] = [];
    const benchLoop: Record<string, { p99: number; max: number }> = {};
    const mark = async () => {
      const gwCpu = [...threadCpuSeconds(gw.pid).values()].reduce((a, x) => a + x, 0);
      const cpu = process.cpuUsage();
      boundary.push({
        metrics: await scrapeSamples(http),
        gwCpu,
        benchCpu: (cpu.user + cpu.system) / 1e6,
        t: now(),
      });
      if (boundary.length > 1) {
        benchLoop[PHASES[boundary.length - 2]!] = {
          p99: loop.percentile(99) / 1e6,
          max: loop.max / 1e6,
        };
      }
      loop.reset();
    };

    // The good device: connected before anything else, an event every 50 ms whatever the PUBACKs
    // do (open loop, so a slow PUBACK does not hide the ones queued behind it).
    const publishes: Publish[] = [];
    const goodDrops: { phase: Phase; reconnectMs: number | null }[] = [];
    let goodClient: MqttClient | null = await connectOnce(port, good!, 10_000);
    clients.push(goodClient);
    // A dropped good device reconnects as a real one would: an attempt a second.
    const probeConnect = async (port: number, dev: BenchDevice) => {
      const t0 = now();
      while (!stopping) {
        try {
          return { client: await connectOnce(port, dev, 5000), ms: now() - t0 };
        } catch {
          await sleep(1000);
        }
      }
      return null;
    };
    const watchGood = (c: MqttClient) =>
      c.once("close", async () => {
        // Our own disconnect at the end is not a drop.
        if (goodClient !== c || stopping) return;
        goodClient = null;
        const drop: (typeof goodDrops)[number] = { phase, reconnectMs: null };
        goodDrops.push(drop);
        const p = await probeConnect(port, good!);
        if (p) {
          drop.reconnectMs = p.ms;
          goodClient = p.client;
          clients.push(p.client);
          watchGood(p.client);
        }
      });
    watchGood(goodClient);
    let seq = 0;
    let skipped = 0;
    const publisher = setInterval(() => {
      const c = goodClient;
      if (!c) {
        skipped++;
        return;
      }
      const p: Publish = { phase, sentAt: now(), ms: null };
      publishes.push(p);
      c.publish(
        `ata/v1/${good!.id}/events`,
        JSON.stringify({ eventId: `good-${seq++}`, type: "device.heartbeat", data: {} }),
        { qos: 1 },
        (err) => {
          if (err) p.err = err.message;
          else p.ms = now() - p.sentAt;
        },
      );
    }, GOOD_INTERVAL_MS);
    timers.push(publisher);

    // Baseline: the good device alone; the second device connects once (now its pair is known).
    await mark();
    const probes: Probe[] = [];
    const freshProbes: Probe[] = [];
    const baselineEnd = now() + BASELINE_SEC * 1000;
    probes.push(await probe(port, second!, phaseNow, PROBE_GIVE_UP_MS));
    await sleep(Math.max(0, baselineEnd - now()));

    // Flood.
    phase = "flood";
    const started = startAttacker({
      port,
      seconds: FLOOD_SEC,
      badJson: badJson!,
      oversized: oversized!,
      valid: valid!,
      guessIds,
    });
    attacker = started.child;
    await mark();
    const floodEnd = now() + FLOOD_SEC * 1000;
    const secondLoop = (async () => {
      await sleep(2000);
      while (now() < floodEnd - 3000) {
        probes.push(await probe(port, second!, phaseNow, Math.min(PROBE_GIVE_UP_MS, floodEnd - now())));
        await sleep(3000);
      }
    })();
    const freshLoop = (async () => {
      await sleep(2000);
      freshProbes.push(await probe(port, fresh!, phaseNow, floodEnd - now()));
    })();
    const attackResult = await started.result;
    await Promise.all([secondLoop, freshLoop]);
    attacker = null;

    // Calm.
    phase = "calm";
    await mark();
    const calmEnd = now() + CALM_SEC * 1000;
    await sleep(1000);
    probes.push(await probe(port, second!, phaseNow, PROBE_GIVE_UP_MS));
    if (!freshProbes.some((p) => p.ok))
      freshProbes.push(await probe(port, fresh!, phaseNow, Math.max(1000, calmEnd - now())));
    await sleep(Math.max(0, calmEnd - now()));
    clearInterval(publisher);
    // PUBACKs still owed get a grace period before they count as never received.
    const grace = now() + 10_000;
    while (publishes.some((p) => p.ms === null && !p.err) && now() < grace) await sleep(100);
    await mark();
    stopping = true;
    // The last sample of the calm; none once the gateway is stopping (its RSS is gone, its WAL
    // checkpointed away).
    clearInterval(sampler);
    sampleNow();

    // What the stores hold, read while the gateway runs, then after a graceful stop.
    const dl = new Database(join(dataDir, "ata-events.db"), { readonly: true });
    const deadLetterRows = Object.fromEntries(
      (
        dl.prepare("SELECT device_id, count(*) AS n FROM dead_letters GROUP BY device_id").all() as {
          device_id: string;
          n: number;
        }[]
      ).map((r) => [r.device_id, r.n]),
    );
    const deadLetterCodes = Object.fromEntries(
      (
        dl.prepare("SELECT code, count(*) AS n FROM dead_letters GROUP BY code").all() as {
          code: string;
          n: number;
        }[]
      ).map((r) => [r.code, r.n]),
    );
    dl.close();
    const securityRows = (): { rows: number; byKind: Record<string, number> } => {
      const db = new Database(join(dataDir, "ata.db"), { readonly: true });
      try {
        const byKind = Object.fromEntries(
          (
            db.prepare("SELECT kind, count(*) AS n FROM security_log GROUP BY kind").all() as {
              kind: string;
              n: number;
            }[]
          ).map((r) => [r.kind, r.n]),
        );
        return { rows: Object.values(byKind).reduce((a, x) => a + x, 0), byKind };
      } finally {
        db.close();
      }
    };
    const securityLive = securityRows();
    for (const c of clients) c.end(true);
    const exited = new Promise((r) => gw.child.once("exit", r));
    gw.child.kill("SIGTERM");
    await exited;
    const securityFinal = securityRows();
    const diskAfterStop = diskSample(dataDir);

    // ----- figures
    const byPhase = Object.fromEntries(
      PHASES.map((ph) => {
        const s = samples.filter((x) => x.phase === ph);
        const i = PHASES.indexOf(ph);
        const [b0, b1] = [boundary[i]!, boundary[i + 1]!];
        const sec = (b1.t - b0.t) / 1000;
        const delta = (name: string, labels: Record<string, string> = {}) =>
          sampleValue(b1.metrics, name, labels) - sampleValue(b0.metrics, name, labels);
        const maxOf = (f: (d: DiskSample) => number) => Math.max(...s.map((x) => f(x.disk)));
        return [
          ph,
          {
            seconds: round(sec, 1),
            good: latencyRow(publishes.filter((p) => p.phase === ph)),
            rssMiB: {
              start: round(s[0]!.rss / 1024),
              peak: round(Math.max(...s.map((x) => x.rss)) / 1024),
              end: round(s.at(-1)!.rss / 1024),
            },
            diskMiB: {
              start: round(MiB(s[0]!.disk.total)),
              peak: round(MiB(maxOf((d) => d.total))),
              end: round(MiB(s.at(-1)!.disk.total)),
              eventsDbEnd: round(MiB(s.at(-1)!.disk.eventsDb)),
              eventsWalPeak: round(MiB(maxOf((d) => d.eventsWal))),
              eventsWalEnd: round(MiB(s.at(-1)!.disk.eventsWal)),
              mainWalPeak: round(MiB(maxOf((d) => d.mainWal))),
            },
            cpuCores: {
              gateway: round((b1.gwCpu - b0.gwCpu) / sec, 2),
              attacker: ph === "flood" ? round(attackResult.cpuSeconds / sec, 2) : 0,
              bench: round((b1.benchCpu - b0.benchCpu) / sec, 2),
            },
            benchLoopDelayMs: benchLoop[ph] ?? null,
            accepted: delta("ata_events_accepted_total", { type: "device.heartbeat" }),
            rejected: Object.fromEntries(
              ["bad_json", "payload_too_large", "rate_limited", "bad_schema"].map((r) => [
                r,
                delta("ata_events_rejected_total", { reason: r }),
              ]),
            ),
            connectsRefused: Object.fromEntries(
              [
                ...new Set(
                  b1.metrics
                    .filter((m) => m.name === "ata_mqtt_connects_refused_total")
                    .map((m) => m.labels.reason!),
                ),
              ].map((r) => [r, delta("ata_mqtt_connects_refused_total", { reason: r })]),
            ),
            connectionsRefused: Object.fromEntries(
              ["pending_cap", "connection_cap"].map((r) => [
                r,
                delta("ata_mqtt_connections_refused_total", { reason: r }),
              ]),
            ),
          },
        ];
      }),
    ) as Record<Phase, PhaseFigures>;
    const end = boundary.at(-1)!.metrics;
    const store = {
      deadLettersStored: sampleValue(end, "ata_dead_letters_stored"),
      deadLettersStoredMiB: round(MiB(sampleValue(end, "ata_dead_letters_stored_bytes"))),
      deadLettersDropped: {
        device_quota: sampleValue(end, "ata_dead_letters_dropped_total", { reason: "device_quota" }),
        total_quota: sampleValue(end, "ata_dead_letters_dropped_total", { reason: "total_quota" }),
      },
      deadLetterRowsByDevice: deadLetterRows,
      deadLetterRowsByCode: deadLetterCodes,
      securityLogRowsLive: securityLive.rows,
      securityLogRowsAfterStop: securityFinal.rows,
      securityLogByKind: securityFinal.byKind,
      diskAfterStopMiB: round(MiB(diskAfterStop.total)),
    };

    const f = byPhase;
    const ratio = (a: number | null, b: number | null) => (a && b ? round(a / b, 2) : null);
    console.log(
      table(
        ["good device (publish every 50 ms)", "baseline", "flood", "calm"],
        [
          ["publishes", ...PHASES.map((p) => f[p].good.sent)],
          ["PUBACK p50 ms", ...PHASES.map((p) => f[p].good.p50 ?? "-")],
          ["PUBACK p99 ms", ...PHASES.map((p) => f[p].good.p99 ?? "-")],
          ["PUBACK max ms", ...PHASES.map((p) => f[p].good.max ?? "-")],
          [
            "PUBACK never came / failed",
            ...PHASES.map((p) => `${f[p].good.neverAcked} / ${f[p].good.failed}`),
          ],
          ["session dropped (reconnect ms)", ...PHASES.map((p) => dropsText(goodDrops, p))],
          ["gateway RSS start / peak / end MiB", ...PHASES.map((p) => triple(f[p].rssMiB))],
          ["data dir start / peak / end MiB", ...PHASES.map((p) => triple(f[p].diskMiB))],
          ["event-log db end MiB", ...PHASES.map((p) => f[p].diskMiB.eventsDbEnd ?? "-")],
          [
            "event-log WAL peak / end MiB",
            ...PHASES.map((p) => `${f[p].diskMiB.eventsWalPeak} / ${f[p].diskMiB.eventsWalEnd}`),
          ],
          ["main db WAL peak MiB", ...PHASES.map((p) => f[p].diskMiB.mainWalPeak ?? "-")],
          [
            "CPU cores: gateway / attacker / bench",
            ...PHASES.map(
              (p) => `${f[p].cpuCores.gateway} / ${f[p].cpuCores.attacker} / ${f[p].cpuCores.bench}`,
            ),
          ],
          ["bench event-loop delay p99 / max ms", ...PHASES.map((p) => loopText(f[p].benchLoopDelayMs))],
          ["heartbeats accepted (all devices)", ...PHASES.map((p) => f[p].accepted)],
          ...(["bad_json", "payload_too_large", "rate_limited"] as const).map((r) => [
            `dead-lettered: ${r}`,
            ...PHASES.map((p) => f[p].rejected[r] ?? 0),
          ]),
          ["CONNECTs refused (by reason)", ...PHASES.map((p) => kv(f[p].connectsRefused))],
          ["connections closed on arrival", ...PHASES.map((p) => kv(f[p].connectionsRefused))],
        ],
      ),
    );
    console.log();
    const a = attackResult;
    const pub = (r: PublisherResult) =>
      `${r.sent} sent, ${r.acked} PUBACKed (${r.ackedPerSec}/s), ${r.failed} unacked at the end, ${r.sentMiB} MiB, ${r.sessions} session(s)${
        Object.keys(r.connectFailures).length ? `, connect failures ${kv(r.connectFailures)}` : ""
      }`;
    console.log(
      table(
        [`attacker (${FLOOD_SEC} s)`, "achieved"],
        [
          ["a. bad JSON, QoS 1, 300 in flight", pub(a.badJson)],
          [`a. ${OVERSIZED_BYTES / 1000} KB payloads, QoS 1, 300 in flight`, pub(a.oversized)],
          ["b. valid heartbeats, QoS 1, 300 in flight", pub(a.valid)],
          [
            `c. CONNECT brute force, ${BRUTE_PARALLEL} parallel`,
            `${a.brute.attempts} attempts (${a.brute.perSec}/s): ${kv(a.brute.outcomes)}; CONNACK p50 ${a.brute.answerMsP50} ms`,
          ],
          [
            `d. idle sockets, ${IDLE_SLOTS} slots`,
            `${a.idle.opened} opened: ${kv(a.idle.outcomes)}; held open max ${a.idle.heldMax}, median ${a.idle.heldMedian}; closed after ${a.idle.timedOutHeldMsP50} ms (p50)`,
          ],
          [
            `e. 1 MiB CONNECT header, ${BIG_FRAME_PARALLEL} parallel`,
            `${a.bigFrame.sent} sent: ${kv(a.bigFrame.outcomes)}; closed after p50 ${a.bigFrame.closeMsP50} ms, max ${a.bigFrame.closeMsMax} ms`,
          ],
        ],
      ),
    );
    console.log();
    console.log(
      table(
        [
          "reconnects behind the attacker's address",
          "phase",
          "ok",
          "attempts",
          "connect ms",
          "first PUBACK ms",
          "failures",
        ],
        [
          ...probes.map((p) => [
            "second good device (pair known)",
            p.phase,
            p.ok ? "yes" : p.cutShort ? "cut short" : "no",
            p.attempts,
            p.connectMs ?? "-",
            p.pubackMs ?? "-",
            kv(p.failures),
          ]),
          ...freshProbes.map((p) => [
            "device never connected before",
            p.phase,
            p.ok ? "yes" : p.cutShort ? "cut short" : "no",
            p.attempts,
            p.connectMs ?? "-",
            p.pubackMs ?? "-",
            kv(p.failures),
          ]),
        ],
      ),
    );
    console.log();
    console.log(
      table(
        ["stores at the end", "value"],
        [
          ["dead letters stored (metric)", store.deadLettersStored],
          ["dead-letter bytes stored MiB (metric)", store.deadLettersStoredMiB ?? "-"],
          [
            "dead letters dropped by quota (device / total)",
            `${store.deadLettersDropped.device_quota} / ${store.deadLettersDropped.total_quota}`,
          ],
          ["dead-letter rows by device", kv(store.deadLetterRowsByDevice)],
          ["dead-letter rows by code", kv(store.deadLetterRowsByCode)],
          [
            "security_log rows (running / after stop)",
            `${store.securityLogRowsLive} / ${store.securityLogRowsAfterStop}`,
          ],
          ["security_log rows by kind (after stop)", kv(store.securityLogByKind)],
          ["data dir after stop MiB", store.diskAfterStopMiB ?? "-"],
          ["good-device publishes skipped while disconnected", skipped],
        ],
      ),
    );
    const secondFlood = probes.filter((p) => p.phase === "flood");
    console.log(
      JSON.stringify({
        bench: "flood",
        floodSec: FLOOD_SEC,
        baselineSec: BASELINE_SEC,
        calmSec: CALM_SEC,
        limits: "production defaults",
        phases: byPhase,
        pubackP50Ratio: ratio(f.flood.good.p50, f.baseline.good.p50),
        pubackP99Ratio: ratio(f.flood.good.p99, f.baseline.good.p99),
        floodDiskGrowthMiBPerSec: round(
          ((f.flood.diskMiB.peak ?? 0) - (f.flood.diskMiB.start ?? 0)) / FLOOD_SEC,
          1,
        ),
        goodDrops,
        goodSkipped: skipped,
        secondDevice: {
          probes,
          floodOk: secondFlood.filter((p) => p.ok).length,
          floodTried: secondFlood.filter((p) => !p.cutShort).length,
          floodConnectMsP50: round(median(secondFlood.filter((p) => p.ok).map((p) => p.connectMs!)), 0),
        },
        freshDevice: freshProbes,
        attacker: attackResult,
        store,
        // Every 5 s: seconds since the start, phase, RSS, data dir and event-log WAL (MiB).
        series: samples
          .filter((_, i) => i % 5 === 0)
          .map((x) => [
            round(x.t, 0),
            x.phase,
            round(x.rss / 1024, 0),
            round(MiB(x.disk.total), 0),
            round(MiB(x.disk.eventsWal), 0),
          ]),
      }),
    );
  } finally {
    stopping = true;
    for (const t of timers) clearInterval(t);
    for (const c of clients) c.end(true);
    if (attacker?.pid && attacker.exitCode === null) attacker.kill("SIGKILL");
    await gw.stop();
  }
}

interface PhaseFigures {
  seconds: number | null;
  good: ReturnType<typeof latencyRow>;
  rssMiB: { start: number | null; peak: number | null; end: number | null };
  diskMiB: {
    start: number | null;
    peak: number | null;
    end: number | null;
    eventsDbEnd: number | null;
    eventsWalPeak: number | null;
    eventsWalEnd: number | null;
    mainWalPeak: number | null;
  };
  cpuCores: { gateway: number | null; attacker: number | null; bench: number | null };
  benchLoopDelayMs: { p99: number; max: number } | null;
  accepted: number;
  rejected: Record<string, number>;
  connectsRefused: Record<string, number>;
  connectionsRefused: Record<string, number>;
}

function triple(x: { start: number | null; peak: number | null; end: number | null }): string {
  return `${x.start} / ${x.peak} / ${x.end}`;
}

function kv(o: Record<string, number>): string {
  const e = Object.entries(o).filter(([, v]) => v);
  return e.length ? e.map(([k, v]) => `${k} ${v}`).join(", ") : "-";
}

function loopText(x: { p99: number; max: number } | null): string {
  return x ? `${x.p99.toFixed(1)} / ${x.max.toFixed(1)}` : "-";
}

function dropsText(drops: { phase: Phase; reconnectMs: number | null }[], phase: Phase): string {
  const d = drops.filter((x) => x.phase === phase);
  if (!d.length) return "0";
  return `${d.length} (${d.map((x) => (x.reconnectMs === null ? "never" : Math.round(x.reconnectMs))).join(", ")})`;
}

// The attacker child runs this file with FLOOD_ATTACK set to its plan.
if (process.env.FLOOD_ATTACK) {
  const result = await attack(JSON.parse(process.env.FLOOD_ATTACK) as AttackPlan);
  process.stdout.write(`${JSON.stringify({ attack: result })}\n`, () => process.exit(0));
} else {
  await main();
}
