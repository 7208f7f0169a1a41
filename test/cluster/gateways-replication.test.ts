/**
 * Replicated staff tokens between two gateway processes on one PostgreSQL 15: a token made with
 * `ata tokens create` on one node's database signs in on the other node's staff WebSocket, and
 * after `ata tokens revoke` there its open session on the other node is closed and a new sign-in
 * refused. The CLI writes the node's SQLite file while its gateway runs; the triggers capture it.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import type { MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { connectDevice } from "../helpers/gateway.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { until } from "../helpers/until.js";
import { STAFF, StaffClient } from "../staff/client.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
const pgdb = pgTestDatabases("cluster_replication_gw");
const dir = mkdtempSync(join(tmpdir(), "ata-cluster-replication-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const RADAR = "rep-radar-1";
const SECRET = "replication-secret-01";
/** Every node's staff token key, and the CLI's. */
const TOKEN_KEY = randomBytes(32).toString("base64");

const procs: GatewayProcess[] = [];
const clients: (StaffClient | MqttClient)[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) "ws" in c ? c.ws.close() : c.end(true);
  for (const p of procs.splice(0))
    if (p.child.exitCode === null && p.child.signalCode === null) await p.stop();
});

async function gateway(url: string, nodeId: string): Promise<{ p: GatewayProcess; config: string }> {
  const home = join(dir, nodeId);
  mkdirSync(home, { recursive: true });
  const rulesFile = join(home, "rules.yaml");
  writeFileSync(
    rulesFile,
    `
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
`,
  );
  const config = writeConfig(home, {
    dataDir: join(home, "data"),
    rulesFile,
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
    http: { host: "127.0.0.1", port: 0 },
    sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1", rooms: ["r1"] }] }],
    staff: [{ ...STAFF.anna }],
    devices: [
      { id: RADAR, profile: "ata/native", secret: SECRET, site: "home-a", unit: "unit-1", room: "r1" },
    ],
    cluster: { postgres: { url, nodeId, partitions: 2, leaseMs: 1_500 } },
  });
  const p = await spawnGateway(config, { ATA_TOKEN_KEY: TOKEN_KEY }, 30_000);
  procs.push(p);
  return { p, config };
}

async function ata(config: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], {
    cwd: ROOT,
    env: { ...process.env, ATA_TOKEN_KEY: TOKEN_KEY },
  });
  return stdout;
}

/** The shared change log's position a node has applied, from its /readyz. */
async function position(p: GatewayProcess): Promise<number> {
  const body = (await fetch(`http://127.0.0.1:${p.http}/readyz`).then((r) => r.json())) as {
    checks: { name: string; detail?: { replication?: { position: number } } }[];
  };
  return body.checks.find((c) => c.name === "cluster")?.detail?.replication?.position ?? -1;
}

/** Once node `p` has applied everything in the shared log that mentions this key. */
async function caughtUp(check: pg.Pool, p: GatewayProcess, key: string, entries: number): Promise<void> {
  let at = 0;
  await until(`${entries} log entries for ${key}`, async () => {
    const { rows } = await check.query<{ position: string }>(
      "SELECT position FROM replication_log WHERE key = $1 ORDER BY position",
      [key],
    );
    at = Number(rows[rows.length - 1]?.position ?? 0);
    return rows.length >= entries;
  });
  await until("the other node applied it", async () => (await position(p)) >= at);
}

/** Signs in on the staff WebSocket: true with a snapshot, false when refused. */
async function signsIn(p: GatewayProcess, token: string): Promise<boolean> {
  const c = await StaffClient.open(`http://127.0.0.1:${p.http}`);
  clients.push(c);
  const answer = c.next((m) => m.type === "reply" || m.type === "snapshot");
  c.send({ type: "hello", id: "hello", token });
  const m = await answer;
  return m.type === "snapshot" || m.ok === true;
}

describe("replicated staff tokens between two gateway processes", () => {
  it("a token made with the CLI on one node signs in on the other, and revoked with the CLI there it is closed and refused on the other", async () => {
    const url = await pgdb.fresh();
    const check = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => check.end());
    const [a, b] = await Promise.all([gateway(url, "gw-a"), gateway(url, "gw-b")]);

    const made = await ata(
      a.config,
      "tokens",
      "create",
      "--name",
      "Eva",
      "--role",
      "staff",
      "--sites",
      "home-a",
    );
    const tokenId = /\b(st_[0-9a-f]+)\b/.exec(made)?.[1];
    const token = /\b(ata_[A-Za-z0-9_-]+)\b/.exec(made)?.[1];
    expect(tokenId, made).toBeDefined();
    expect(token, made).toBeDefined();
    await caughtUp(check, b.p, tokenId!, 1);
    const eva = await StaffClient.connect(`http://127.0.0.1:${b.p.http}`, token!);
    clients.push(eva);

    await ata(a.config, "tokens", "revoke", tokenId!);
    const t0 = performance.now();
    await caughtUp(check, b.p, tokenId!, 2);
    const applied = performance.now() - t0;
    // The open session on the other node closes at its next revocation check (every 2 s).
    await until("Eva's session on node B closed", () => eva.closed !== null, 5000);
    const closed = performance.now() - t0;
    console.log(
      `revocation by the CLI on node A: applied on node B after ${applied.toFixed(0)} ms, session closed after ${closed.toFixed(0)} ms`,
    );
    expect(eva.closed?.code).toBe(4003);
    expect(await signsIn(b.p, token!)).toBe(false);
    // The configuration's own staff, seeded on both nodes, still signs in on both.
    expect(await signsIn(a.p, STAFF.anna.token)).toBe(true);
    expect(await signsIn(b.p, STAFF.anna.token)).toBe(true);

    // A device on node B's broker, disabled with the CLI on node A, loses its session on node B.
    const radar = await connectDevice(b.p.mqtt, RADAR, SECRET);
    clients.push(radar);
    const entries = Number(
      (await check.query("SELECT count(*)::int AS n FROM replication_log WHERE key = $1", [RADAR])).rows[0].n,
    );
    await ata(a.config, "devices", "disable", RADAR);
    const t1 = performance.now();
    await caughtUp(check, b.p, RADAR, entries + 1);
    // At the apply, not at the registry's next poll of its file (every 2 s).
    await until(
      "the device disconnected from node B once it applied the disable",
      () => !radar.connected,
      300,
    );
    console.log(
      `device disabled by the CLI on node A: applied and disconnected on node B after ${(performance.now() - t1).toFixed(0)} ms`,
    );
    await expect(connectDevice(b.p.mqtt, RADAR, SECRET)).rejects.toThrow();
    // Nothing waits to be shipped on either node.
    for (const p of [a.p, b.p])
      expect(await fetch(`http://127.0.0.1:${p.http}/metrics`).then((r) => r.text())).toMatch(
        /^ata_cluster_replication_backlog 0$/m,
      );
  }, 60_000);
});
