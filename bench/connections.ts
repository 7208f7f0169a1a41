/**
 * Connected devices per process and restart time.
 *
 * 1. N devices (default 18,000: the fd limit here is 20,000 per process) connect to the gateway and
 *    send heartbeats every 60 s (spread evenly); memory per connection from the broker process's
 *    RSS. Baselines in the same run: bare aedes and mosquitto with the same clients.
 * 2. Restart: stop the gateway with 10k registered devices and 10k pending durable timers, start it
 *    again, and time spawn -> ready (accepting connections) and the reconnect of every device.
 *
 *   npm run bench -- connections [devices=18000] [heartbeatSec=60]
 */
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { openDb } from "../src/store/db.js";
import {
  type Child,
  connectMany,
  ONE_ADDRESS_LOAD,
  rssKiB,
  spawnReady,
  startBareAedes,
  startGatewayProcess,
  table,
} from "./lib.js";

const N = Number(process.argv[2] ?? 18_000);
const HEARTBEAT_SEC = Number(process.argv[3] ?? 60);
const ROOT = new URL("..", import.meta.url).pathname;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

async function startMosquitto(): Promise<Child | null> {
  const bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));
  if (!bin) return null;
  const port = await freePort();
  const conf = join(tmpdir(), `ata-bench-mosquitto-${process.pid}.conf`);
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_keepalive 65535\npersistence false\n`,
  );
  const child = spawn(bin, ["-c", conf], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  return {
    pid: child.pid!,
    ports: { mqtt: port },
    child,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Every client sends a heartbeat every HEARTBEAT_SEC, phases spread evenly. */
function heartbeats(clients: MqttClient[], ids: string[]): () => void {
  const timers: NodeJS.Timeout[] = [];
  clients.forEach((c, i) => {
    const send = () =>
      c.publish(
        `ata/v1/${ids[i]}/events`,
        JSON.stringify({ type: "device.heartbeat", data: { battery: 90 } }),
        { qos: 1 },
      );
    timers.push(
      setTimeout(
        () => {
          send();
          timers.push(setInterval(send, HEARTBEAT_SEC * 1000));
        },
        (i / clients.length) * HEARTBEAT_SEC * 1000,
      ),
    );
  });
  return () => {
    for (const t of timers) clearTimeout(t);
  };
}

async function measure(name: string, child: Child, devices: { id: string; secret: string }[]) {
  const before = rssKiB(child.pid);
  const t0 = performance.now();
  const clients = await connectMany(child.ports.mqtt!, devices, 300);
  const connectSec = (performance.now() - t0) / 1000;
  const stop = heartbeats(
    clients,
    devices.map((d) => d.id),
  );
  await new Promise((r) => setTimeout(r, 10_000));
  const after = rssKiB(child.pid);
  stop();
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return { name, before, after, perConnKiB: (after - before) / devices.length, connectSec };
}

const gw = await startGatewayProcess(N, { mqtt: ONE_ADDRESS_LOAD });
const rows: (string | number)[][] = [];
const results: Record<string, { perConnKiB: number; connectSec: number; afterMiB: number }> = {};
try {
  for (const [name, start] of [
    ["gateway", async () => gw],
    ["bare aedes", startBareAedes],
    ["mosquitto", startMosquitto],
  ] as const) {
    const child = await start();
    if (!child) {
      rows.push([name, "not installed", "", "", ""]);
      continue;
    }
    const devs =
      name === "gateway"
        ? gw.devices
        : gw.devices.map((d) => ({ id: `${d.id}-${name.replace(" ", "")}`, secret: d.secret }));
    const m = await measure(name, child, devs);
    results[name] = { perConnKiB: m.perConnKiB, connectSec: m.connectSec, afterMiB: m.after / 1024 };
    rows.push([name, N, m.connectSec, m.after / 1024, m.perConnKiB]);
    if (child !== gw) await child.stop();
  }
} catch (err) {
  await gw.stop();
  throw err;
}

// Restart with 10k devices and 10k pending timers.
const exited = new Promise((r) => gw.child.once("exit", r));
gw.child.kill("SIGTERM");
await exited;
const db = openDb({ path: join(gw.dir, "data", "ata.db") });
const insert = db.prepare(
  "INSERT INTO timers (id, kind, due_at, payload, created_at) VALUES (?, 'escalate', ?, ?, ?)",
);
db.transaction(() => {
  for (let i = 0; i < 10_000; i++)
    insert.run(
      `alert:bench-${i}:escalate`,
      Date.now() + 3_600_000 + i,
      JSON.stringify({ alertId: `bench-${i}`, level: 0 }),
      Date.now(),
    );
})();
db.close();
const t0 = performance.now();
const again = await spawnReady([join(ROOT, "src/main.ts"), "--config", join(gw.dir, "config.json")]);
const readySec = (performance.now() - t0) / 1000;
const reconnectDevices = gw.devices.slice(0, 10_000);
const t1 = performance.now();
const clients = await connectMany(again.ports.mqtt!, reconnectDevices, 300);
const reconnectSec = (performance.now() - t1) / 1000;
await Promise.all(clients.map((c) => c.endAsync(true)));
await again.stop();
await gw.stop();

console.log(table(["broker", "devices", "connect s", "RSS MiB", "KiB / connection"], rows));
console.log();
console.log(
  table(
    ["restart (10k devices, 10k pending timers)", "value"],
    [
      ["spawn -> accepting connections, s", readySec],
      ["10k devices reconnected, s", reconnectSec],
    ],
  ),
);
console.log(
  JSON.stringify({
    bench: "connections",
    devices: N,
    heartbeatSec: HEARTBEAT_SEC,
    results,
    ratioPerConnGatewayToAedes:
      results.gateway && results["bare aedes"]
        ? Number((results.gateway.perConnKiB / results["bare aedes"].perConnKiB).toFixed(2))
        : null,
    restartReadySec: Number(readySec.toFixed(3)),
    reconnect10kSec: Number(reconnectSec.toFixed(2)),
  }),
);
