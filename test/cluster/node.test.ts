/**
 * Two gateway nodes sharing one PostgreSQL 15 (src/cluster/node.ts), each with its own SQLite
 * database as its ingest writes it: an event logged on one node raises its alert on the node that
 * owns the site's partition, once, even when both nodes logged it (a redelivery to the other node);
 * a staff command sent from either node runs on the owner; and when a node leaves, the other takes
 * its partitions over and the open alerts' escalations fire there, once.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import type { AlertChannel, ChannelName } from "../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../src/alerts/channels/console.js";
import type { PostgresConfig } from "../../src/cluster/config.js";
import { ClusterNode } from "../../src/cluster/node.js";
import { ChannelRoutes } from "../../src/cluster/partition-host.js";
import { partitionOf } from "../../src/cluster/partitions.js";
import { silentLogger } from "../../src/log.js";
import { Registry } from "../../src/registry/registry.js";
import { parseRules } from "../../src/rules/engine.js";
import type { StaffIdentity } from "../../src/staff/protocol.js";
import type { Db } from "../../src/store/db.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { tempDbs } from "../helpers/tempdb.js";
import { until } from "../helpers/until.js";

const pgdb = pgTestDatabases("cluster_node");
const dbs = tempDbs("ata-cluster-node-");
afterEach(() => dbs.cleanup());

const PARTITIONS = 4;
/** Two sites in different partitions, found once (the hash never changes). */
const SITES = (() => {
  const found = new Map<number, string>();
  for (let i = 0; found.size < 2; i++) {
    const site = `home-${i}`;
    const p = partitionOf(site, PARTITIONS);
    if (!found.has(p)) found.set(p, site);
  }
  return [...found.values()];
})();

const staffOf = (site: string): StaffIdentity => ({
  id: `anna-${site}`,
  name: "Anna",
  role: "staff",
  sites: [site],
  units: ["unit-1"],
});

const RULES = parseRules(
  `
renotify: { high: 0s, medium: 0s, low: 0s, info: 0s }
escalation:
  high:
    - { to: [unit], after: 1500ms }
    - { to: [site], after: 60s }
  medium: [{ to: [unit], after: 60s }]
  low: [{ to: [unit], after: 60s }]
  info: [{ to: [unit], after: 60s }]
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
`,
  "cluster node test",
);

interface TestNode {
  node: ClusterNode;
  db: Db;
  /** Logs the events in this node's SQLite log, as its ingest would, and tells the node. */
  ingest(events: { eventId: string; site: string; device?: string }[]): Promise<void>;
}

const running: ClusterNode[] = [];
afterEach(async () => {
  for (const n of running.splice(0)) await n.stop().catch(() => undefined);
});

async function startNode(url: string, nodeId: string, rules = RULES): Promise<TestNode> {
  const { db } = dbs.open();
  const config: PostgresConfig = {
    url,
    nodeId,
    partitions: PARTITIONS,
    leaseMs: 1_500,
    poolSize: 6,
    readPoolSize: 2,
    eventRetentionDays: 30,
    changeFeedRetentionHours: 24,
    commandTimeoutMs: 5_000,
  };
  const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
  // Everyone connected everywhere: this test is about where alerts live, not about who is online.
  const channels = new Map<ChannelName, AlertChannel>([
    ["console", new ConsoleChannel({ connected: () => SITES.map(staffOf) })],
  ]);
  const routes = new ChannelRoutes(channels);
  const node = new ClusterNode({
    config,
    db,
    rules: () => rules,
    routes,
    registry,
    profiles: new Map(PROFILES.map((p) => [p.id, p])),
    timeZones: new Map(SITES.map((s) => [s, "Europe/Copenhagen"])),
    log: silentLogger(),
    pollMs: 500,
  });
  running.push(node);
  await node.start();
  const insert =
    db.prepare(`INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at,
    device_seq, site_id, unit_id, room_id, resident_ref, profile, data, raw, topic)
    VALUES (?, ?, 'fall.detected', 'point', NULL, ?, ?, NULL, ?, 'unit-1', 'r1', 'R-1', 'generic-json', '{"confidence":0.97}', NULL, ?)`);
  return {
    node,
    db,
    ingest: async (events) => {
      let last = 0;
      const now = Date.now();
      for (const e of events) {
        const device = e.device ?? `radar-${e.site}`;
        last = Number(
          insert.run(e.eventId, device, now, now, e.site, `ata/v1/${device}/events`).lastInsertRowid,
        );
      }
      node.logged(last);
      await node.drained();
    },
  };
}

async function auditOf(pool: pg.Pool): Promise<{ site: string; action: string; actor: string }[]> {
  const { rows } = await pool.query<{ site_id: string; action: string; actor_id: string }>(
    "SELECT site_id, action, actor_id FROM alert_audit WHERE action IN ('raised', 'escalated', 'accepted') ORDER BY id",
  );
  return rows.map((r) => ({ site: r.site_id, action: r.action, actor: r.actor_id }));
}

function owned(n: ClusterNode): number[] {
  return n.status().partitions.map((p) => p.partition);
}

describe("gateway nodes sharing PostgreSQL", () => {
  it("an event logged on any node raises its alert once, on the owner of its site's partition, and a command from any node runs there", async () => {
    const url = await pgdb.fresh();
    const a = await startNode(url, "node-a");
    const b = await startNode(url, "node-b");
    await until(
      () => `a ${owned(a.node)} b ${owned(b.node)}`,
      () => owned(a.node).length === 2 && owned(b.node).length === 2,
    );
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());

    // Each site's fall logged on both nodes (the device's publish redelivered to the other node).
    const falls = SITES.map((site, i) => ({ eventId: `fall-${i}`, site }));
    await a.ingest(falls);
    await b.ingest(falls);
    await until(
      async () => JSON.stringify(await auditOf(check)),
      async () => (await auditOf(check)).filter((e) => e.action === "raised").length === 2,
    );
    // Each raised by its partition's owner, which holds it open.
    for (const site of SITES) {
      const p = partitionOf(site, PARTITIONS);
      const owner = owned(a.node).includes(p) ? a.node : b.node;
      expect(
        owner
          .host(p)
          ?.alerts.open()
          .map((x) => x.site),
      ).toEqual([site]);
    }
    expect(a.node.status().forwarder.duplicates + b.node.status().forwarder.duplicates).toBe(2);

    // Accept each from node a: one runs here, the other on node b.
    for (const site of SITES) {
      const p = partitionOf(site, PARTITIONS);
      const owner = owned(a.node).includes(p) ? a.node : b.node;
      const alert = owner.host(p)!.alerts.open()[0]!;
      const accepted = await a.node.send(site, {
        id: `accept-${site}`,
        staff: staffOf(site),
        command: { type: "accept", alertId: alert.id },
      });
      expect(accepted.state).toBe("accepted");
      expect(accepted.acceptedBy).toEqual({ id: `anna-${site}`, name: "Anna" });
    }
    const accepts = (await auditOf(check)).filter((e) => e.action === "accepted");
    expect(accepts.map((e) => e.site).sort()).toEqual([...SITES].sort());
    // Nobody escalated an accepted alert.
    await new Promise((r) => setTimeout(r, 1_700));
    expect((await auditOf(check)).filter((e) => e.action === "escalated")).toEqual([]);
  });

  it("a node leaving: the other takes its partitions over, and their open alerts escalate there once", async () => {
    const url = await pgdb.fresh();
    const a = await startNode(url, "node-a");
    const b = await startNode(url, "node-b");
    await until(
      () => `a ${owned(a.node)} b ${owned(b.node)}`,
      () => owned(a.node).length === 2 && owned(b.node).length === 2,
    );
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());
    await a.ingest(SITES.map((site, i) => ({ eventId: `fall-${i}`, site })));
    await until(
      async () => JSON.stringify(await auditOf(check)),
      async () => (await auditOf(check)).filter((e) => e.action === "raised").length === 2,
    );
    // Node b leaves before the first escalation is due (1.5 s after the raise).
    await b.node.stop();
    running.splice(running.indexOf(b.node), 1);
    await until(
      () => `a holds ${owned(a.node)}`,
      () => owned(a.node).length === PARTITIONS,
    );
    // Both alerts escalate to level 1, each once, both now on node a.
    await until(
      async () => JSON.stringify(await auditOf(check)),
      async () => (await auditOf(check)).filter((e) => e.action === "escalated").length === 2,
    );
    // Not before its time: each escalation at least the level's 1.5 s after its raise (the audit's
    // own times, not when this test saw them).
    const { rows: times } = await check.query<{ raised: string; escalated: string }>(
      `SELECT r.at::text AS raised, e.at::text AS escalated FROM alert_audit r
         JOIN alert_audit e ON e.alert_id = r.alert_id AND e.action = 'escalated' WHERE r.action = 'raised'`,
    );
    expect(times).toHaveLength(2);
    for (const t of times) expect(Number(t.escalated) - Number(t.raised)).toBeGreaterThanOrEqual(1_500);
    await new Promise((r) => setTimeout(r, 500));
    const escalations = (await auditOf(check)).filter((e) => e.action === "escalated");
    expect(escalations.map((e) => e.site).sort()).toEqual([...SITES].sort());
    for (const site of SITES)
      expect(
        a.node
          .host(partitionOf(site, PARTITIONS))
          ?.alerts.open()
          .map((x) => x.level),
      ).toEqual([1]);
  });

  it("an unaccepted alert's renotify goes into the change feed for staff on every node", async () => {
    const url = await pgdb.fresh();
    const renotifying = parseRules(
      `
renotify: { high: 400ms, medium: 0s, low: 0s, info: 0s }
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
      "renotify test",
    );
    const a = await startNode(url, "node-a", renotifying);
    await until(
      () => `a holds ${owned(a.node)}`,
      () => owned(a.node).length === PARTITIONS,
    );
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());
    await a.ingest([{ eventId: "fall-r", site: SITES[0]! }]);
    const renotifies = async () =>
      (
        await check.query<{ seq: number; alert: string }>(
          `SELECT (message->>'seq')::int AS seq, message->'alert'->>'id' AS alert FROM change_feed
            WHERE message->>'kind' = 'renotify' ORDER BY partition, position`,
        )
      ).rows;
    await until(
      async () => JSON.stringify(await renotifies()),
      async () => (await renotifies()).length >= 2,
    );
    const [first] = await renotifies();
    const alert = a.node.host(partitionOf(SITES[0]!, PARTITIONS))!.alerts.open()[0]!;
    expect(first!.alert).toBe(alert.id);
    // The alert's latest audit id when it was sent: a resume point staff already hold.
    const { rows } = await check.query<{ id: number }>(
      "SELECT max(id)::int AS id FROM alert_audit WHERE alert_id = $1",
      [alert.id],
    );
    expect(first!.seq).toBeLessThanOrEqual(rows[0]!.id);
    expect(first!.seq).toBeGreaterThan(0);
  });

  it("reports holding every read connection do not hold up a raise", async () => {
    const url = await pgdb.fresh();
    const a = await startNode(url, "node-a");
    await until(
      () => `a ${owned(a.node)}`,
      () => owned(a.node).length === PARTITIONS,
    );
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());
    // A month-long report on every connection reports may have, and more waiting for one.
    const reports = Array.from({ length: 8 }, () =>
      a.node.readPool.query("SELECT pg_sleep(4)").catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await a.ingest([{ eventId: "fall-during-report", site: SITES[0]! }]);
    await until(
      async () => JSON.stringify(await auditOf(check)),
      async () => (await auditOf(check)).some((e) => e.action === "raised"),
    );
    // The reports are still running: the raise took none of their connections, nor waited for one.
    expect(Date.now() - t0).toBeLessThan(2_000);
    await Promise.all(reports);
  });

  it("forgets nodes dead for a day and the staff presence they left, and keeps the live", async () => {
    const url = await pgdb.fresh();
    const a = await startNode(url, "node-a");
    await until(
      () => `a holds ${owned(a.node)}`,
      () => owned(a.node).length === PARTITIONS,
    );
    const check = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => check.end());
    await check.query(
      `INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at) VALUES
         ('gone', now() - interval '3 days', now() - interval '2 days'),
         ('recent', now() - interval '3 days', now() - interval '1 hour')`,
    );
    await check.query(
      `INSERT INTO staff_presence (node_id, staff_id, name, role, sites, units, sockets, updated_at) VALUES
         ('gone', 'anna', 'Anna', 'staff', '{home-0}', NULL, 1, now() - interval '2 days')`,
    );
    await a.node.prune();
    const { rows } = await check.query<{ node_id: string }>(
      "SELECT node_id FROM cluster_nodes ORDER BY node_id",
    );
    expect(rows.map((r) => r.node_id)).toEqual(["node-a", "recent"]);
    const { rows: presence } = await check.query("SELECT 1 FROM staff_presence WHERE node_id = 'gone'");
    expect(presence).toEqual([]);
  });
});
