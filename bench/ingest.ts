/**
 * Durable ingest: 50 publishers, QoS 1, ~150-byte native events, through the whole pipeline (decode,
 * validate, place, dedupe, group commit with fsync, rules) against bare aedes in the same run
 * (PUBACK only). Both brokers run as child processes; the publishers share this process.
 * Target (DESIGN.md): >= 40k events/s and >= 0.7x bare aedes.
 * CPU per thread (from /proc) is reported per 10k events, so work moved between threads shows.
 * Then memory per connected device: 10k idle device connections to each.
 *
 *   npm run bench -- ingest [events=100000] [runs=3] [idle=10000]
 */
import {
  type BenchDevice,
  type Child,
  connectMany,
  cpuByThread,
  median,
  ONE_ADDRESS_LOAD,
  pumpHeartbeats,
  rssKiB,
  type Sample,
  scrapeSamples,
  startBareAedes,
  startGatewayProcess,
  table,
  threadCpuSeconds,
} from "./lib.js";

const EVENTS = Number(process.argv[2] ?? 100_000);
const RUNS = Number(process.argv[3] ?? 3);
const IDLE = Number(process.argv[4] ?? 10_000);
const PUBLISHERS = 50;

async function run(
  kind: "gateway" | "aedes",
  run: number,
  gw: Child & { devices: BenchDevice[] },
  aedes: Child,
) {
  const port = kind === "gateway" ? gw.ports.mqtt! : aedes.ports.mqtt!;
  const devices = gw.devices
    .slice(0, PUBLISHERS)
    .map((d) => (kind === "gateway" ? d : { id: `${d.id}-bare`, secret: d.secret }));
  const clients = await connectMany(port, devices, PUBLISHERS);
  const pid = kind === "gateway" ? gw.pid : aedes.pid;
  const cpuBefore = threadCpuSeconds(pid);
  const rate = await pumpHeartbeats(
    clients,
    devices.map((d) => d.id),
    EVENTS,
    run * 1_000_000,
  );
  // CPU per thread for these events: work moved between threads shows as such.
  const perThread = cpuByThread(
    kind === "gateway"
      ? await gatewayThreads()
      : [{ name: "ata_thread_info", labels: { thread: "main", tid: String(pid) }, value: 1 }],
    cpuBefore,
    threadCpuSeconds(pid),
  );
  const per10k = EVENTS / 10_000;
  if (run !== 99)
    for (const [t, sec] of Object.entries(perThread)) {
      const runs = cpu[kind][t] ?? [];
      runs.push(sec / per10k);
      cpu[kind][t] = runs;
    }
  await Promise.all(clients.map((c) => c.endAsync()));
  return rate;
}

/** CPU seconds per 10k events, per thread, per run. */
const cpu: Record<"gateway" | "aedes", Record<string, number[]>> = { gateway: {}, aedes: {} };
let threadNames: Sample[] | null = null;
async function gatewayThreads(): Promise<Sample[]> {
  threadNames ??= (await scrapeSamples(gw.ports.http!)).filter((x) => x.name === "ata_thread_info");
  return threadNames;
}

// Each of the 50 publishers sends hundreds of events a second, far past a real device's rate: the
// per-device limit (ingest.deviceRate) would refuse them, and this measures the pipeline, not it.
const gw = await startGatewayProcess(Math.max(PUBLISHERS, IDLE), {
  mqtt: ONE_ADDRESS_LOAD,
  ingest: {
    deviceRate: { perSec: 100_000, burst: 1_000_000 },
    ...(process.env.BENCH_WRITER ? { writer: process.env.BENCH_WRITER } : {}),
  },
});
const aedes = await startBareAedes();
const rows: (string | number)[][] = [];
const rates = { gateway: [] as number[], aedes: [] as number[] };
try {
  // Warm-up (JIT, SQLite page cache), not counted.
  await run("gateway", 99, gw, aedes);
  await run("aedes", 99, gw, aedes);
  for (let r = 0; r < RUNS; r++) {
    // Alternate the order so drift on a shared machine does not favour one side.
    for (const kind of (r % 2 ? ["aedes", "gateway"] : ["gateway", "aedes"]) as ("gateway" | "aedes")[]) {
      const rate = await run(kind, r, gw, aedes);
      rates[kind].push(rate);
      rows.push([`run ${r + 1}`, kind, rate]);
    }
  }
  const m = await scrapeSamples(gw.ports.http!);
  const sum = (name: string) => m.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0);
  const batches = sum("ata_commit_batch_size_count");
  const batchSum = sum("ata_commit_batch_size_sum");
  const commitSecSum = sum("ata_commit_seconds_sum");
  const accepted = sum("ata_events_accepted_total");
  const cpuMedian = (kind: "gateway" | "aedes") =>
    Object.fromEntries(Object.entries(cpu[kind]).map(([t, xs]) => [t, Math.round(median(xs) * 1000) / 1000]));
  const cpuPer10k = { gateway: cpuMedian("gateway"), aedes: cpuMedian("aedes") };
  const cpuTotal = (c: Record<string, number>) => Object.values(c).reduce((a, x) => a + x, 0);
  const rssIngest = rssKiB(gw.pid);

  // Memory per idle connection: RSS before and after IDLE device connections, both brokers.
  const idleDevices = gw.devices.slice(0, IDLE);
  const mem: Record<string, { before: number; after: number; perConnKiB: number }> = {};
  for (const [kind, child] of [
    ["gateway", gw],
    ["aedes", aedes],
  ] as const) {
    const before = rssKiB(child.pid);
    const clients = await connectMany(
      child.ports.mqtt!,
      kind === "gateway" ? idleDevices : idleDevices.map((d) => ({ id: `${d.id}-idle`, secret: d.secret })),
      200,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const after = rssKiB(child.pid);
    mem[kind] = { before, after, perConnKiB: (after - before) / IDLE };
    await Promise.all(clients.map((c) => c.endAsync()));
  }

  const g = median(rates.gateway);
  const a = median(rates.aedes);
  console.log(table(["run", "broker", "events/s"], rows));
  console.log();
  console.log(
    table(
      ["figure", "value"],
      [
        ["gateway median events/s", g],
        ["bare aedes median events/s", a],
        ["ratio gateway / aedes", g / a],
        ["events committed", accepted],
        ["group commits", batches],
        ["mean commit batch (publishes)", batchSum / Math.max(1, batches)],
        ["mean commit time ms", (commitSecSum / Math.max(1, batches)) * 1000],
        ...Object.entries(cpuPer10k.gateway).map(([t, x]) => [
          `gateway CPU-s per 10k events: ${t} thread`,
          x,
        ]),
        ["gateway CPU-s per 10k events: all threads", cpuTotal(cpuPer10k.gateway)],
        ...Object.entries(cpuPer10k.aedes).map(([t, x]) => [
          `bare aedes CPU-s per 10k events: ${t} thread`,
          x,
        ]),
        ["gateway RSS after ingest MiB", rssIngest / 1024],
        [`gateway KiB per idle connection (${IDLE})`, mem.gateway!.perConnKiB],
        [`aedes KiB per idle connection (${IDLE})`, mem.aedes!.perConnKiB],
      ],
    ),
  );
  console.log(
    JSON.stringify({
      bench: "ingest",
      events: EVENTS,
      publishers: PUBLISHERS,
      gatewayEventsPerSec: Math.round(g),
      bareAedesEventsPerSec: Math.round(a),
      ratio: Number((g / a).toFixed(3)),
      runs: rates,
      meanCommitBatch: Number((batchSum / Math.max(1, batches)).toFixed(1)),
      meanCommitMs: Number(((commitSecSum / Math.max(1, batches)) * 1000).toFixed(3)),
      cpuSecondsPer10kEventsByThread: cpuPer10k,
      gatewayRssMiB: Math.round(rssIngest / 1024),
      idleConnections: IDLE,
      gatewayKiBPerConnection: Number(mem.gateway!.perConnKiB.toFixed(2)),
      aedesKiBPerConnection: Number(mem.aedes!.perConnKiB.toFixed(2)),
    }),
  );
} finally {
  await gw.stop();
  await aedes.stop();
}
