/**
 * A partition at work on its owner (src/cluster/partition-host.ts), on a real PostgreSQL 15: the
 * rules, durable timers and alert lifecycle over `PgPartitionState` and an event window, and the
 * partition moving to another node: what the first owner evaluated is not evaluated again, what it
 * had not is evaluated once, an escalation due after the move fires once on the new owner, and a
 * count condition sees the events the first owner logged.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import type {
  AlertChannel,
  ChannelName,
  ChannelReporter,
  Delivery,
} from "../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../src/alerts/channels/console.js";
import { ChannelRoutes, FlushedCalls, PartitionHost } from "../../src/cluster/partition-host.js";
import { PartitionLeases } from "../../src/cluster/pg/leases.js";
import { PgPartitionState } from "../../src/cluster/pg/partition-state.js";
import type { LoggedEvent } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { Registry } from "../../src/registry/registry.js";
import { parseRules } from "../../src/rules/engine.js";
import type { StaffIdentity } from "../../src/staff/protocol.js";
import { openDb } from "../../src/store/db.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { until } from "../helpers/until.js";

const pgdb = pgTestDatabases("partition_host");

const SITE = "home-a";
const ANNA: StaffIdentity = { id: "anna", name: "Anna", role: "staff", sites: [SITE], units: ["unit-1"] };

const RULES = parseRules(
  `
renotify: { high: 0s, medium: 0s, low: 0s, info: 0s }
escalation:
  high:
    - { to: [unit], after: 400ms }
    - { to: [site], after: 60s }
  medium:
    - { to: [unit], after: 60s }
  low:
    - { to: [unit], after: 60s }
  info:
    - { to: [unit], after: 60s }
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
  - id: repeated-exits
    when: { event: bed.exit, count: { atLeast: 3, within: 1h, per: device } }
    raise: { alert: restless, priority: medium, message: { da: "Uro {count}", en: "Restless {count}" } }
`,
  "partition host test",
);

function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: name });
  pool.on("error", () => undefined);
  return pool;
}

/** A channel that records what it is asked to deliver and reports each as delivered to a person. */
class RecordingChannel implements AlertChannel {
  readonly name: ChannelName = "push";
  readonly delivered: Delivery[] = [];
  private reporter: ChannelReporter | null = null;
  reach() {
    return [{ id: "sub-anna", name: "Anna's phone", staffId: "anna" }];
  }
  deliver(d: Delivery): void {
    this.delivered.push(d);
    queueMicrotask(() => this.reporter?.delivered(d.attemptId, "201", { toPerson: true }));
  }
  health() {
    return { ok: true };
  }
  start(r: ChannelReporter): void {
    this.reporter = r;
  }
}

interface Node {
  id: string;
  pool: pg.Pool;
  leases: PartitionLeases;
  push: RecordingChannel;
  /** Loads partition 0 and starts a host on it with the given history. */
  host(history: LoggedEvent[]): Promise<PartitionHost>;
}

async function node(url: string, id: string, leaseMs = 60_000): Promise<Node> {
  const pool = newPool(url, id);
  const leases = new PartitionLeases({ pool, nodeId: id, partitions: 1, leaseMs });
  leases.on("error", () => undefined);
  const db = openDb({ path: ":memory:" });
  const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
  const push = new RecordingChannel();
  const channels = new Map<ChannelName, AlertChannel>([
    ["console", new ConsoleChannel({ connected: () => [ANNA] })],
    ["push", push],
  ]);
  const routes = new ChannelRoutes(channels);
  for (const c of channels.values()) await c.start?.(routes.reporter(c.name));
  const hosts: PartitionHost[] = [];
  pgdb.cleanup(async () => {
    for (const h of hosts) h.stop();
    await leases.stop();
    await pool.end();
    db.close();
  });
  await leases.start();
  return {
    id,
    pool,
    leases,
    push,
    host: async (history) => {
      const token = leases.tokenOf(0);
      if (token === undefined) throw new Error(`${id} does not hold partition 0`);
      const state = await PgPartitionState.load({ pool, leases, partition: 0, token, feed: true });
      const host = new PartitionHost({
        partition: 0,
        state,
        rules: RULES,
        routes,
        registry,
        profiles: new Map(PROFILES.map((p) => [p.id, p])),
        timeZones: new Map([[SITE, "Europe/Copenhagen"]]),
        log: silentLogger(),
      });
      hosts.push(host);
      host.start(history);
      return host;
    },
  };
}

let nextEvent = 0;
function event(type: string, position: number, over: { device?: string; agoMs?: number } = {}): LoggedEvent {
  const at = Date.now() - (over.agoMs ?? 0);
  return {
    eventId: `ev-${++nextEvent}`,
    schemaVersion: 1,
    deviceId: over.device ?? "radar-1",
    occurredAt: new Date(at).toISOString(),
    receivedAt: new Date(at).toISOString(),
    phase: "point",
    type,
    data: type === "fall.detected" ? { confidence: 0.97 } : {},
    placement: { siteId: SITE, unitId: "unit-1", roomId: "r1", residentRef: "R-0001" },
    logSeq: position,
    profile: "generic-json",
  } as LoggedEvent;
}

async function audit(pool: pg.Pool): Promise<{ action: string; alert: string }[]> {
  const { rows } = await pool.query<{ action: string; type: string }>(
    "SELECT a.action, al.type FROM alert_audit a JOIN alerts al ON al.id = a.alert_id ORDER BY a.id",
  );
  return rows.map((r) => ({ action: r.action, alert: r.type }));
}

async function cursorOf(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ position: string }>(
    "SELECT rules_position::text AS position FROM partition_state WHERE partition = 0",
  );
  return Number(rows[0]?.position ?? 0);
}

describe("a partition at work on its owner", () => {
  it("raises from its events, flushes before the channels are called, and moves its cursor with the effects", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const host = await a.host([]);
    const fall = event("fall.detected", 1);
    const heartbeat = event("device.heartbeat", 2);
    await host.deliver([fall, heartbeat]);
    // Resolved: the raise and its attempts are in PostgreSQL, with the cursor past the fall.
    const entries = await audit(a.pool);
    // Raised once, and reachable at its first level (Anna on the console and her phone).
    expect(entries.filter((e) => e.action === "raised" || e.action === "escalated")).toEqual([
      { action: "raised", alert: "fall" },
    ]);
    expect(await cursorOf(a.pool)).toBeGreaterThanOrEqual(1);
    await until(
      () => `push deliveries: ${a.push.delivered.length}`,
      () => a.push.delivered.length === 1,
    );
    expect(a.push.delivered[0]!.alert.type).toBe("fall");
    // The channel's report reached the partition's manager through the node's routes.
    await until(
      () => "the push attempt's outcome",
      async () => {
        const { rows } = await a.pool.query<{ status: string }>(
          "SELECT status FROM channel_attempts WHERE channel = 'push'",
        );
        return rows[0]?.status === "delivered";
      },
    );
    // Positions at or below what the host holds are not taken twice.
    await host.deliver([fall]);
    expect((await audit(a.pool)).filter((e) => e.action === "raised")).toHaveLength(1);
  });

  it("on the next owner: what was evaluated is not again, what was not is evaluated once, and a due escalation fires once", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a", 1_500);
    const first = await a.host([]);
    const fall = event("fall.detected", 1);
    await first.deliver([fall]);
    const raisedAt = performance.now();
    // The owner goes (its leases given up, as a stop does; a kill is the leases' own test): the
    // fall's escalation, due 400 ms after the raise, has not fired.
    await a.leases.stop();
    expect(first.alerts.open()).toHaveLength(1);

    const b = await node(url, "node-b", 1_500);
    await until(
      () => "node-b holding partition 0",
      () => b.leases.tokenOf(0) !== undefined,
    );
    // The shared log holds the fall (evaluated by node-a) and a second fall node-a never saw.
    const unseen = event("fall.detected", 2, { device: "radar-2" });
    const second = await b.host([fall, unseen]);
    await second.flushed();
    await until(
      () => JSON.stringify(second.alerts.open().map((x) => [x.deviceId, x.level])),
      () => second.alerts.open().every((x) => x.level === 1) && second.alerts.open().length === 2,
    );
    expect(performance.now() - raisedAt).toBeGreaterThanOrEqual(400);
    await second.flushed();
    const entries = await audit(b.pool);
    // One raise per fall, and one escalation to level 1 each: none twice across the two owners.
    expect(entries.filter((e) => e.action === "raised")).toHaveLength(2);
    expect(entries.filter((e) => e.action === "escalated")).toHaveLength(2);
    expect(await cursorOf(b.pool)).toBe(2);
    // node-a's host stopped with its lease and did nothing more.
    expect(a.push.delivered.filter((d) => d.reason !== "level" || d.level !== 0)).toEqual([]);
  });

  it("a count condition on the next owner counts the events the first owner logged", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a", 1_500);
    const first = await a.host([]);
    const exits = [
      event("bed.exit", 1, { agoMs: 20 * 60_000 }),
      event("bed.exit", 2, { agoMs: 10 * 60_000 }),
    ];
    await first.deliver(exits);
    expect(first.alerts.open()).toEqual([]);
    await a.leases.stop();

    const b = await node(url, "node-b", 1_500);
    await until(
      () => "node-b holding partition 0",
      () => b.leases.tokenOf(0) !== undefined,
    );
    const second = await b.host(exits);
    // Nothing replayed: node-a's cursor is past both.
    expect(second.alerts.open()).toEqual([]);
    await second.deliver([event("bed.exit", 3)]);
    const open = second.alerts.open();
    expect(open.map((x) => [x.type, x.message.en])).toEqual([["restless", "Restless 3"]]);
  });

  it("stops when its state is lost, and its channel calls waiting for the lost flush never run", async () => {
    const calls: string[] = [];
    let reject!: (err: Error) => void;
    const pending = new Promise<void>((_, r) => {
      reject = r;
    });
    const flushes = [Promise.resolve(), pending];
    let i = 0;
    const f = new FlushedCalls({ flushed: () => flushes[Math.min(i++, 1)]! }, silentLogger());
    f.after(() => calls.push("durable"), { lane: "channels" });
    f.after(() => calls.push("waits for the lost flush"), { lane: "channels" });
    f.after(() => calls.push("replayable, behind it"), { lane: "channels", sync: false });
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toEqual(["durable"]);
    reject(new Error("lost"));
    await new Promise((r) => setTimeout(r, 10));
    f.after(() => calls.push("after the loss"), { lane: "other" });
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toEqual(["durable"]);
  });
});
