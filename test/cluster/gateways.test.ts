/**
 * Two gateway processes as one cluster on a real PostgreSQL 15, each with its own data directory
 * and embedded broker: a device connected to one node raises an alert on the node that owns its
 * site's partition; staff connected to either node see it; an accept sent through the other node
 * runs on the owner and both see who took it; and after kill -9 of the owner mid-escalation the
 * survivor takes the partition over and the escalation fires once, on time plus the takeover.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { partitionOf } from "../../src/cluster/partitions.js";
import { connectDevice, eventually, publish } from "../helpers/gateway.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { STAFF, StaffClient } from "../staff/client.js";

/** Every node's staff token key: tokens are replicated, and their hashes verify under one key. */
const TOKEN_KEY = randomBytes(32).toString("base64");
const pgdb = pgTestDatabases("cluster_gateways");
const dir = mkdtempSync(join(tmpdir(), "ata-cluster-gateways-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PARTITIONS = 2;
const LEASE_MS = 1_500;
/** The first level gives staff this long before the alert moves on. */
const LEVEL_MS = 5_000;
const RADARS = ["cg-radar-1", "cg-radar-2", "cg-radar-3"];
const SECRET = "cluster-gateways-secret-01";

const RULES = `
renotify: { high: 0s, medium: 0s, low: 0s, info: 0s }
escalation:
  high:
    - { to: [unit], after: ${LEVEL_MS}ms }
    - { to: [site], after: 60s }
  medium: [{ to: [unit], after: 60s }]
  low: [{ to: [unit], after: 60s }]
  info: [{ to: [unit], after: 60s }]
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

/** Reads the reports, which on a cluster node come from PostgreSQL's alerts, not the node's SQLite. */
const MANAGER = { id: "mia", name: "Mia", role: "manager", sites: ["home-a"], token: "mia-token-0123456789" };

const procs: GatewayProcess[] = [];
const clients: (StaffClient | MqttClient)[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) "ws" in c ? c.ws.close() : c.end(true);
  for (const p of procs.splice(0))
    if (p.child.exitCode === null && p.child.signalCode === null) await p.kill9();
});

async function gateway(url: string, nodeId: string): Promise<GatewayProcess> {
  const home = join(dir, nodeId);
  mkdirSync(home, { recursive: true });
  const rulesFile = join(home, "rules.yaml");
  writeFileSync(rulesFile, RULES);
  const configPath = writeConfig(home, {
    dataDir: join(home, "data"),
    rulesFile,
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
    http: { host: "127.0.0.1", port: 0 },
    sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1", rooms: ["r1", "r2"] }] }],
    residents: [{ ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1" }],
    devices: RADARS.map((id, i) => ({
      id,
      profile: "ata/native",
      secret: SECRET,
      site: "home-a",
      unit: "unit-1",
      room: `r${i + 1}`,
    })),
    staff: [STAFF.anna, STAFF.bo, STAFF.nina, MANAGER].map((s) => ({ ...s })),
    cluster: { postgres: { url, nodeId, partitions: PARTITIONS, leaseMs: LEASE_MS } },
  });
  const p = await spawnGateway(configPath, { ATA_TOKEN_KEY: TOKEN_KEY }, 30_000);
  procs.push(p);
  return p;
}

async function owner(check: pg.Pool): Promise<string | null> {
  const { rows } = await check.query<{ owner: string | null }>(
    "SELECT owner FROM partition_leases WHERE partition = $1 AND expires_at > now()",
    [partitionOf("home-a", PARTITIONS)],
  );
  return rows[0]?.owner ?? null;
}

async function heldBy(check: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await check.query<{ owner: string; n: number }>(
    "SELECT owner, count(*)::int AS n FROM partition_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner",
  );
  return new Map(rows.map((r) => [r.owner, r.n]));
}

async function audit(check: pg.Pool): Promise<{ action: string; device: string; actor: string }[]> {
  const { rows } = await check.query<{ action: string; device_id: string; actor_id: string }>(
    `SELECT a.action, al.device_id, a.actor_id FROM alert_audit a JOIN alerts al ON al.id = a.alert_id
      WHERE a.action IN ('raised', 'accepted', 'escalated', 'suppressed', 'comment') ORDER BY a.id`,
  );
  return rows.map((r) => ({ action: r.action, device: r.device_id, actor: r.actor_id }));
}

/** The HTTP API as a person's console calls it. */
async function api(
  p: GatewayProcess,
  path: string,
  token: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${p.http}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function fall(eventId: string): string {
  return JSON.stringify({ eventId, type: "fall.detected", data: { confidence: 0.96 } });
}

describe("two gateway nodes on one PostgreSQL", () => {
  it("an alert raised on the owner reaches staff on both nodes, an accept through the other node runs on the owner, and after kill -9 of the owner its escalation fires once on the survivor", async () => {
    const url = await pgdb.fresh();
    const check = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => check.end());
    const gw = { "gw-a": await gateway(url, "gw-a"), "gw-b": await gateway(url, "gw-b") };
    // One partition each.
    await eventually(async () => {
      const held = await heldBy(check);
      if (held.get("gw-a") !== 1 || held.get("gw-b") !== 1) throw new Error(JSON.stringify([...held]));
      return true;
    }, 15_000);
    // Each node says what it holds on /metrics: one partition, two live nodes, nothing waiting to
    // be forwarded.
    for (const p of Object.values(gw)) {
      // Held once its state is loaded, a moment after the lease.
      const metrics = await eventually(async () => {
        const text = await fetch(`http://127.0.0.1:${p.http}/metrics`).then((r) => r.text());
        return /^ata_cluster_partitions_held 1$/m.test(text) ? text : null;
      }, 10_000);
      expect(metrics).toMatch(/^ata_cluster_live_nodes 2$/m);
      expect(metrics).toMatch(/^ata_cluster_forward_backlog 0$/m);
      expect(metrics).toMatch(/^ata_cluster_forward_failing 0$/m);
    }
    const ownerId = (await owner(check)) as "gw-a" | "gw-b";
    const otherId = ownerId === "gw-a" ? "gw-b" : "gw-a";
    const [own, other] = [gw[ownerId], gw[otherId]];
    const httpOf = (p: GatewayProcess) => `http://127.0.0.1:${p.http}`;

    // Anna on the other node, nobody on the owner; the devices on the other node's broker.
    const anna = await StaffClient.connect(httpOf(other), STAFF.anna.token);
    clients.push(anna);
    const radar1 = await connectDevice(other.mqtt, RADARS[0]!, SECRET);
    const radar2 = await connectDevice(other.mqtt, RADARS[1]!, SECRET);
    clients.push(radar1, radar2);

    // The PUBACK comes once the event is in the shared log.
    await publish(radar1, deviceTopic(RADARS[0]!, "events"), fall("cg-fall-1"));
    const raisedForAnna = await anna.change(null, "raised", 10_000);
    expect(raisedForAnna.alert.deviceId).toBe(RADARS[0]);
    // The owner's console reaches Anna on the other node (the cluster's presence): the alert waits
    // for her at its first level instead of escalating at once for want of anyone connected.
    await new Promise((r) => setTimeout(r, 500));
    expect(anna.alertChanges().filter((m) => m.change === "escalated")).toEqual([]);
    expect(raisedForAnna.alert.level).toBe(0);
    // Bo on the owner sees it too.
    const bo = await StaffClient.connect(httpOf(own), STAFF.bo.token);
    clients.push(bo);
    expect(bo.messages.find((m) => m.type === "snapshot")?.alerts.map((a: { id: string }) => a.id)).toEqual([
      raisedForAnna.alert.id,
    ]);

    // Anna accepts through her node; the owner runs it; Bo sees who took it.
    const reply = await anna.request({ type: "accept", alertId: raisedForAnna.alert.id });
    expect(reply.ok).toBe(true);
    const taken = await bo.change(raisedForAnna.alert.id, "accepted", 10_000);
    expect(taken.alert.acceptedBy).toEqual({ id: "anna", name: "Anna" });
    expect(taken.actor).toBe("Anna");
    // The owner has taken every event of the site's partition: its lag is 0 with the log's head past
    // 0, and the other node reports no lag for a partition it does not hold.
    const partition = partitionOf("home-a", PARTITIONS);
    const lagLine = new RegExp(
      `^ata_cluster_partition_lag_events\\{partition="${partition}"\\} (\\d+)$`,
      "m",
    );
    const ownerLag = await eventually(async () => {
      const text = await fetch(`http://127.0.0.1:${own.http}/metrics`).then((r) => r.text());
      return lagLine.exec(text)?.[1] === "0" ? text : null;
    }, 10_000);
    expect(ownerLag).toMatch(lagLine);
    const head = await check.query<{ head: string }>(
      "SELECT head FROM event_log_heads WHERE partition = $1",
      [partition],
    );
    expect(Number(head.rows[0]?.head)).toBeGreaterThan(0);
    expect(await fetch(`http://127.0.0.1:${other.http}/metrics`).then((r) => r.text())).not.toMatch(lagLine);

    // The HTTP API on the other node: its list is PostgreSQL's, and a comment runs on the owner.
    const listed = (await api(other, "/api/v1/alerts?state=open", STAFF.anna.token)).alerts as {
      id: string;
    }[];
    expect(listed.map((a) => a.id)).toEqual([raisedForAnna.alert.id]);
    const commented = await api(other, `/api/v1/alerts/${raisedForAnna.alert.id}/comment`, STAFF.anna.token, {
      text: "på vej",
    });
    expect((commented.alert as { id: string }).id).toBe(raisedForAnna.alert.id);
    await bo.change(raisedForAnna.alert.id, "comment", 10_000);

    // The reports on the other node count the alert its owner raised and Anna accepted.
    const times = await api(other, "/api/v1/reports/response-times?site=home-a", MANAGER.token);
    expect((times.overall as { alerts: number; toAccept: { n: number } }).alerts).toBe(1);
    expect((times.overall as { toAccept: { n: number } }).toAccept.n).toBe(1);
    const volume = await api(other, "/api/v1/reports/alert-volume?site=home-a", MANAGER.token);
    expect(volume.total).toBe(1);

    // A maintenance window opened through the other node reaches the owner's copy: the next fall
    // of that device is recorded as suppressed, not raised.
    const radar3 = await connectDevice(other.mqtt, RADARS[2]!, SECRET);
    clients.push(radar3);
    await api(other, "/api/v1/maintenance", STAFF.nina.token, {
      site: "home-a",
      device: RADARS[2],
      minutes: 10,
      reason: "recalibration",
    });
    // The owner hears of it by notification and reads its windows again: milliseconds, given a second.
    await new Promise((r) => setTimeout(r, 1_000));
    await publish(radar3, deviceTopic(RADARS[2]!, "events"), fall("cg-fall-m"));
    await eventually(async () => (await audit(check)).some((e) => e.device === RADARS[2]), 10_000);

    // A second fall, left open; the owner is killed before its first level runs out.
    await publish(radar2, deviceTopic(RADARS[1]!, "events"), fall("cg-fall-2"));
    const second = await anna.change(null, "raised", 10_000);
    expect(second.alert.deviceId).toBe(RADARS[1]);
    const raisedAt = performance.now();
    await own.kill9();
    const escalated = await anna.change(second.alert.id, "escalated", LEVEL_MS + 3 * LEASE_MS + 10_000);
    const after = performance.now() - raisedAt;
    expect(escalated.alert.level).toBe(1);
    // Not before its time, and within the level's time plus the takeover bound (leaseMs + renewMs)
    // and a few seconds for loading and this machine.
    expect(after).toBeGreaterThanOrEqual(LEVEL_MS - 200);
    expect(after).toBeLessThan(LEVEL_MS + LEASE_MS + LEASE_MS / 3 + 5_000);
    await eventually(async () => {
      if ((await heldBy(check)).get(otherId) !== PARTITIONS) throw new Error("not yet all on the survivor");
      return true;
    }, 10_000);

    // Once each, across both owners.
    await new Promise((r) => setTimeout(r, 1_000));
    const entries = await audit(check);
    expect(entries.filter((e) => e.action === "raised").map((e) => e.device)).toEqual(RADARS.slice(0, 2));
    expect(entries.filter((e) => e.action === "suppressed").map((e) => e.device)).toEqual([RADARS[2]]);
    expect(entries.filter((e) => e.action === "comment").map((e) => e.actor)).toEqual(["staff:anna"]);
    expect(entries.filter((e) => e.action === "accepted").map((e) => e.device)).toEqual([RADARS[0]]);
    expect(entries.filter((e) => e.action === "escalated").map((e) => e.device)).toEqual([RADARS[1]]);

    // The alerts' points: one node at a time writes them from the change feed, the survivor going on
    // from the cursor, so the two nodes' embedded stores hold every transition between them.
    await eventually(async () => {
      const { rows } = await check.query<{ behind: number }>(
        `SELECT count(*)::int AS behind FROM change_feed_heads h
           LEFT JOIN alert_series_cursors c ON c.store = 'embedded' AND c.partition = h.partition
          WHERE coalesce(c.position, 0) < h.head`,
      );
      if (rows[0]!.behind > 0) throw new Error("the alerts' time series is behind the change feed");
      return true;
    }, 15_000);
    const points = new Set<string>();
    for (const id of [ownerId, otherId]) {
      const series = new Database(join(dir, id, "data", "series.db"));
      for (const r of series
        .prepare("SELECT time_ns, tags FROM series_points WHERE measurement = 'alert'")
        .all() as { time_ns: bigint; tags: string }[])
        points.add(`${r.time_ns} ${r.tags}`);
      series.close();
    }
    const { rows: transitions } = await check.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM alert_audit",
    );
    expect(points.size).toBe(transitions[0]!.n);
    const text = await fetch(`http://127.0.0.1:${other.http}/metrics`).then((r) => r.text());
    expect(text).toMatch(/^ata_cluster_alert_series_writer 1$/m);
    expect(text).toMatch(/^ata_cluster_alert_series_backlog 0$/m);
  }, 90_000);
});
