/**
 * Shared pieces of the benchmarks: the gateway and the baselines run as child processes (so the
 * load generator's CPU is not counted against them), real MQTT clients with TCP_NODELAY, and the
 * statistics the tables print.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import mqtt, { type MqttClient } from "mqtt";
import { PROFILES } from "../devices/index.js";
import { Registry } from "../src/registry/registry.js";
import { openDb } from "../src/store/db.js";

const ROOT = new URL("..", import.meta.url).pathname;

export interface Child {
  pid: number;
  ports: Record<string, number>;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The node flags `npm start` runs the gateway with (package.json's start script, between `node` and
 * `--import`), so the benchmarked gateway runs as it does in production.
 */
export const GATEWAY_NODE_FLAGS: string[] = (() => {
  const start = (
    JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } }
  ).scripts.start;
  const m = /^(?:exec )?node ((?:--[\w-]+(?:=\S+)? )*)--import tsx/.exec(start);
  return m?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
})();

/** Spawn a node/tsx script that prints one JSON line with `ready: true` and its ports. */
export function spawnReady(
  args: string[],
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<Child> {
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of each child, for finding where the time goes.
  const prof = process.env.BENCH_CPU_PROF
    ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  const child = spawn(process.execPath, [...nodeFlags, ...prof, "--import", "tsx", ...args], {
    cwd: ROOT,
    env: { ...process.env, ATA_READY_LINE: "1", ATA_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // BENCH_GATEWAY_STDOUT=<file>: the gateway's stdout (with BENCH_GATEWAY_FLAGS=--trace-gc-nvp, its GC trace).
  if (process.env.BENCH_GATEWAY_STDOUT && args[0]?.endsWith("main.ts"))
    child.stdout!.pipe(createWriteStream(process.env.BENCH_GATEWAY_STDOUT));
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`${args.join(" ")} exited with ${code} before ready`));
    child.once("exit", onExit);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.includes('"ready":true')) return;
      child.off("exit", onExit);
      const ports = JSON.parse(line) as Record<string, number>;
      resolve({
        pid: child.pid!,
        ports,
        child,
        stop: async () => {
          child.kill("SIGTERM");
          const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(t);
        },
      });
    });
  });
}

/**
 * A benchmark's load comes from one address (127.0.0.1) with hundreds of CONNECTs in flight and up
 * to 18,000 connections: past the per-address and total connection caps a real site needs. The
 * latency, ingest and connection benchmarks lift them (the flood benchmark keeps the defaults).
 */
export const ONE_ADDRESS_LOAD = { maxConnections: 19_500, maxPendingPerAddress: 5_000 };

export interface BenchDevice {
  id: string;
  secret: string;
}

/**
 * A gateway child process on free ports with `n` registered native devices (generated-grade
 * secrets, registered straight into its database before it starts).
 */
export async function startGatewayProcess(
  n: number,
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
): Promise<Child & { devices: BenchDevice[]; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "ata-bench-"));
  const devices = Array.from({ length: n }, (_, i) => ({
    id: `bench-${i}`,
    secret: `bench-secret-${i}-${i * 7919}`,
  }));
  const db = openDb({ path: join(dir, "data", "ata.db") });
  const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
  registry.addMany(
    devices.map((d, i) => ({
      id: d.id,
      profile: "ata/native",
      siteId: "bench",
      unitId: `unit-${i % 10}`,
      roomId: `room-${i}`,
      secret: d.secret,
    })),
    { generatedSecrets: true },
  );
  db.close();
  const { mqtt: mqttExtra, ...rest } = extra as { mqtt?: Record<string, unknown> };
  const config = {
    dataDir: join(dir, "data"),
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, ...mqttExtra },
    http: { host: "127.0.0.1", port: 0, adminToken: "bench-admin-token-0123456789" },
    sites: [
      {
        id: "bench",
        name: "Bench",
        units: Array.from({ length: 10 }, (_, i) => ({ id: `unit-${i}`, name: `Unit ${i}` })),
      },
    ],
    ...rest,
  };
  // BENCH_GATEWAY_CONFIG: JSON laid over the configuration, one level deep, to compare settings in
  // the same run conditions, e.g. '{"ingest":{"backgroundIntervalMs":0}}'.
  const overlay = JSON.parse(process.env.BENCH_GATEWAY_CONFIG ?? "{}") as Record<string, unknown>;
  for (const [key, value] of Object.entries(overlay)) {
    const base = (config as Record<string, unknown>)[key];
    (config as Record<string, unknown>)[key] =
      base && typeof base === "object" && value && typeof value === "object" ? { ...base, ...value } : value;
  }
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const child = await spawnReady(
    [join(ROOT, "src/main.ts"), "--config", join(dir, "config.json")],
    env,
    // BENCH_GATEWAY_FLAGS: further node flags for the gateway only (--trace-gc-nvp, --inspect=...).
    [...GATEWAY_NODE_FLAGS, ...(process.env.BENCH_GATEWAY_FLAGS ?? "").split(" ").filter(Boolean)],
  );
  return {
    ...child,
    devices,
    dir,
    stop: async () => {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * BENCH_PIN=<server cpus>/<client cpus> (taskset lists, e.g. "0/1"): the system under test (the
 * gateway, bare aedes) on the first CPUs and everything standing for the outside world (load
 * generators, the benchmark's own clients, the push service and paging system in this process) on
 * the others, so that a run shows what the server does with cores of its own, as it would beside
 * devices on other machines. Without it everything shares every core.
 */
export const PIN: { server: string; client: string } | null = (() => {
  const v = process.env.BENCH_PIN;
  if (!v) return null;
  const m = /^([\d,-]+)\/([\d,-]+)$/.exec(v);
  if (!m) throw new Error(`BENCH_PIN must be <server cpus>/<client cpus>, e.g. 0/1; got ${v}`);
  return { server: m[1]!, client: m[2]! };
})();

/** Pins every thread of a process (taskset -a) to the server's or the clients' CPUs; none without BENCH_PIN. */
export function pin(pid: number, side: "server" | "client"): void {
  if (!PIN) return;
  execFileSync("taskset", ["-a", "-cp", PIN[side], String(pid)], { stdio: "ignore" });
}

export function startBareAedes(): Promise<Child> {
  return spawnReady([join(ROOT, "bench/_bare-aedes.ts")]);
}

/** Resident set size of a process, KiB (Linux). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) : Number.NaN;
}

export function connect(
  port: number,
  id: string,
  secret: string,
  extra: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: "127.0.0.1",
      port,
      clientId: id,
      username: id,
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 300,
      ...extra,
    });
    const nodelay = () => (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
    nodelay();
    client.once("connect", () => {
      nodelay();
      resolve(client);
    });
    client.once("error", reject);
  });
}

/** Connect many clients with a bounded number of CONNECTs in flight. */
export async function connectMany(
  port: number,
  devices: BenchDevice[],
  parallel = 200,
): Promise<MqttClient[]> {
  const out: MqttClient[] = new Array(devices.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, devices.length) }, async () => {
      while (next < devices.length) {
        const i = next++;
        out[i] = await connect(port, devices[i]!.id, devices[i]!.secret);
      }
    }),
  );
  return out;
}

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? fmt(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  return cells.map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join("  ")).join("\n");
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(2);
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The gateway's /metrics as samples (Prometheus text format, labels parsed). */
export async function scrapeSamples(httpPort: number): Promise<Sample[]> {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text());
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sample has this name and at least these labels. */
function matches(s: Sample, name: string, labels: Record<string, string>): boolean {
  return s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

/** The value of one sample (0 when absent): name and the labels it must have. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.find((x) => matches(x, name, labels))?.value ?? 0;
}

/**
 * A histogram's change between two scrapes: count, sum, and the cumulative count per bucket bound,
 * with a p99 read as the smallest bound holding 99 % of the new observations.
 */
export function histogramDelta(
  before: Sample[],
  after: Sample[],
  name: string,
  labels: Record<string, string> = {},
): { count: number; sum: number; buckets: [number, number][]; p99UpperBound: number } {
  const d = (n: string, l: Record<string, string>) => sampleValue(after, n, l) - sampleValue(before, n, l);
  const count = d(`${name}_count`, labels);
  const bounds = after
    .filter((x) => matches(x, `${name}_bucket`, labels) && x.labels.le !== "+Inf")
    .map((x) => Number(x.labels.le))
    .sort((a, b) => a - b);
  const buckets = bounds.map((b): [number, number] => [b, d(`${name}_bucket`, { ...labels, le: String(b) })]);
  const p99 = buckets.find(([, c]) => count > 0 && c >= 0.99 * count)?.[0] ?? Number.POSITIVE_INFINITY;
  return { count, sum: d(`${name}_sum`, labels), buckets, p99UpperBound: count ? p99 : Number.NaN };
}

/** CPU seconds (user + system) per thread of a process, by Linux thread id. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  const tick = 100; // USER_HZ on Linux
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) / tick);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * Per thread of a process, from /proc/<pid>/task/<tid>/schedstat (Linux, CONFIG_SCHEDSTATS): the
 * seconds it has spent runnable but waiting for a CPU (the run queue), and how many times it was
 * put on a CPU. On a saturated machine the wait is the time the scheduler, not the code, kept a
 * thread from running; the wait per slice is what one wake-up costs.
 */
export function threadRunQueue(pid: number): {
  waitSeconds: Map<number, number>;
  slices: Map<number, number>;
} {
  const waitSeconds = new Map<number, number>();
  const slices = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [, wait, n] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(" ");
      waitSeconds.set(Number(tid), Number(wait) / 1e9);
      slices.set(Number(tid), Number(n));
    } catch {
      // the thread ended meanwhile
    }
  }
  return { waitSeconds, slices };
}

/** Jiffies busy and in all across the machine's CPUs (/proc/stat), for busyShare(). */
export function machineCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** Share of the machine's CPU time busy between two machineCpu() readings (0..1). */
export function busyShare(
  before: { busy: number; total: number },
  after: { busy: number; total: number },
): number {
  const total = after.total - before.total;
  return total > 0 ? Math.round(((after.busy - before.busy) / total) * 1000) / 1000 : Number.NaN;
}

/**
 * CPU seconds per named thread of the gateway between two readings: the threads the gateway names
 * in ata_thread_info (main, event-log-writer, ...), and "other" for the rest (libuv's pool, V8's
 * garbage-collection helpers).
 */
export function cpuByThread(
  samples: Sample[],
  before: Map<number, number>,
  after: Map<number, number>,
): Record<string, number> {
  const names = new Map<number, string>();
  for (const s of samples)
    if (s.name === "ata_thread_info") names.set(Number(s.labels.tid), s.labels.thread!);
  const out: Record<string, number> = {};
  for (const [tid, t] of after) {
    const name = names.get(tid) ?? "other";
    out[name] = (out[name] ?? 0) + t - (before.get(tid) ?? 0);
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 1000) / 1000;
  return out;
}

/** ~150 bytes, like a radar heartbeat with telemetry; a distinct eventId per device and index. */
export function heartbeatPayload(deviceId: string, i: number): string {
  return JSON.stringify({
    eventId: `${deviceId}-${i}`,
    type: "device.heartbeat",
    occurredAt: new Date(Date.UTC(2026, 10, 23, 12, 0, 0) + i).toISOString(),
    data: { battery: 87, rssi: -61, firmware: "2.4.1" },
  });
}

/**
 * Publish `events` heartbeats across the clients (ids[i] is client i's device), QoS 1, each client
 * keeping `window` publishes in flight. Resolves at the last PUBACK with events/s.
 */
export async function pumpHeartbeats(
  clients: MqttClient[],
  ids: string[],
  events: number,
  offset: number,
  window = 100,
): Promise<number> {
  const per = Math.ceil(events / clients.length);
  const t0 = performance.now();
  await Promise.all(
    clients.map(
      (c, ci) =>
        new Promise<void>((resolve, reject) => {
          const id = ids[ci]!;
          const topic = `ata/v1/${id}/events`;
          let sent = 0;
          let done = 0;
          const next = () => {
            while (sent < per && sent - done < window) {
              const i = offset + sent++;
              c.publish(topic, heartbeatPayload(id, i), { qos: 1 }, (err) => {
                if (err) return reject(err);
                if (++done === per) resolve();
                else next();
              });
            }
          };
          next();
        }),
    ),
  );
  return (per * clients.length) / ((performance.now() - t0) / 1000);
}
