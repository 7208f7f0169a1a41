/**
 * A gateway node's part in a cluster on PostgreSQL: what turns the separately built pieces into a
 * node that shares its sites with others.
 *
 * - Its ingest goes to the shared event log: the node's own SQLite log is forwarded in order
 *   (`EventForwarder`), and a publish is acknowledged only once its events are there (`drained()`).
 * - It holds a share of the partitions (`PartitionLeases`). For each partition it acquires it loads
 *   the partition's state (`PgPartitionState`, with the alert change feed on), reads the partition's
 *   recent events from the shared log (as far back as the rules look, and everything after the
 *   rules' cursor), starts a `PartitionHost` on them (rules, durable timers and alerts: what the
 *   previous owner left, its due timers and its unevaluated events, taken up here), follows the
 *   partition's newer events into it (`EventLogFollower`, one batch at a time, the next only after
 *   the last one's effects are flushed), and serves staff commands for it (`OwnerCommands`).
 * - A partition lost (its lease, or its state on a failed flush) stops all of that at once: the
 *   follower drops it, the host stops acting, the commands are no longer taken, and the lease is
 *   given up for another node to take.
 * - A partition given up voluntarily (balancing hands it to a node that joined, or this node stops)
 *   is handed over (`handOver`, the leases' `beforeRelease`): no new events or commands are taken
 *   for it, the commands already taken are executed and answered, the host's last flush commits, the
 *   host stops, and only then is the lease released, so the next owner starts from everything this
 *   node did and the staff commands in flight are answered here, not left for the next owner to
 *   carry out (pg/owner-commands.ts). Bounded (pg/leases.ts,
 *   "Handover"): past the bound the partition is given up at once, as a lost one.
 * - Who is connected is the cluster's (`StaffPresence`): this node publishes its own signed-in
 *   sockets, and the console channel of every partition it holds reaches staff on any node; someone
 *   coming or going anywhere makes its partitions re-check alerts nobody could receive.
 * - Staff commands from this node's sockets for alerts of any partition are sent to its owner
 *   (`send`), this node included.
 * - A maintenance window opened or ended on any node reaches the owner of its site's partition:
 *   the opening node calls `maintenanceChanged`, the others hear `ata_maintenance` (the site id,
 *   notified in the window's own transaction, pg/maintenance.ts) on a connection held for it; after
 *   that connection was lost, every held partition reads its windows again, since a notification
 *   may have been missed meanwhile.
 *
 * Connections: one pool for the partitions' work (`poolSize`); the leases get a pool of their own,
 * so that a burst of flushes never makes a renewal wait (pg/leases.ts, "Running it"); the follower
 * and the command path each hold one listening connection from the work pool.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import type { AlertView } from "../alerts/model.js";
import type { Logger } from "../log.js";
import { lookBack } from "../rules/event-log.js";
import type { RuleFile } from "../rules/schema.js";
import type { Db } from "../store/db.js";
import type { PostgresConfig } from "./config.js";
import { EventForwarder } from "./event-forwarder.js";
import { type ChannelRoutes, PartitionHost, type PartitionHostOptions } from "./partition-host.js";
import { partitionOf } from "./partitions.js";
import { appendChanges, renotifyEntry } from "./pg/change-feed.js";
import { EventLogFollower, type PartitionEvent, pruneEvents, readPartitionWindow } from "./pg/event-log.js";
import { PartitionLeases } from "./pg/leases.js";
import { PgListener } from "./pg/listener.js";
import { MAINTENANCE_CHANNEL } from "./pg/maintenance.js";
import { migratePg } from "./pg/migrate.js";
import { applyCommand, type OwnerCommand, OwnerCommands, type ServedPartition } from "./pg/owner-commands.js";
import { PgPartitionState } from "./pg/partition-state.js";
import { StaffPresence } from "./pg/staff-presence.js";

export interface ClusterNodeOptions
  extends Pick<
    PartitionHostOptions,
    "registry" | "profiles" | "timeZones" | "placeNames" | "log" | "metrics" | "lookBackMarginMs"
  > {
  config: PostgresConfig;
  /** The node's SQLite database: its event log is forwarded from here. */
  db: Db;
  /** The rule file in force (read at each acquisition: a reload reaches partitions taken later). */
  rules: () => RuleFile;
  /** The node's channels, started with `routes.reporter(name)`. */
  routes: ChannelRoutes;
  /** Follower and command polls (tests shorten them). */
  pollMs?: number;
  /** The longest a voluntary release waits for its partitions' work in flight (pg/leases.ts `drainMs`). */
  drainMs?: number;
}

export interface ClusterNodeStatus {
  nodeId: string;
  partitions: { partition: number; token: number; position: number }[];
  forwarder: ReturnType<EventForwarder["status"]>;
  liveNodes: number | null;
}

const RETAKE_MS = 1000;
const PRUNE_EVERY_MS = 10 * 60 * 1000;
/**
 * Nodes without a heartbeat for a day (machines gone, ids not reused), with the staff presence they
 * left: neither counts as live anyway (pg/leases.ts, pg/staff-presence.ts), but their rows would
 * pile up with every replaced machine. A node that comes back registers itself again.
 */
const FORGET_DEAD_NODES = `
  WITH gone AS (
    DELETE FROM cluster_nodes AS n
     WHERE n.heartbeat_at < now() - interval '1 day'
       AND NOT EXISTS (SELECT 1 FROM partition_leases AS l WHERE l.owner = n.node_id AND l.expires_at > now())
    RETURNING n.node_id)
  DELETE FROM staff_presence AS p USING gone WHERE p.node_id = gone.node_id`;

interface Held {
  token: number;
  host: PartitionHost;
  served: ServedPartition;
}

export class ClusterNode {
  readonly pool: pg.Pool;
  /**
   * For reads that are not a partition's work: reports, the time-saved job, the HTTP API's lists and
   * history. A manager's month-long report may hold its connections for seconds; on the work pool it
   * would make a fall's flush, an owner command or the forwarder wait for one.
   */
  readonly readPool: pg.Pool;
  private readonly leasePool: pg.Pool;
  /** One connection, held by `maintenance` for LISTEN. */
  private readonly maintenancePool: pg.Pool;
  private readonly maintenance: PgListener;
  readonly leases: PartitionLeases;
  readonly follower: EventLogFollower;
  readonly commands: OwnerCommands;
  readonly forwarder: EventForwarder;
  /** Who is connected to any node: what the owner's console channel reaches. */
  readonly presence: StaffPresence;
  private readonly held = new Map<number, Held>();
  /** Partitions being handed over: they take no new work and are not taken up again. */
  private readonly leaving = new Map<number, Held>();
  /** Per partition, the token of the acquisition being loaded: a later one, or a loss, supersedes it. */
  private readonly loading = new Map<number, number>();
  private readonly log: Logger;
  private running = false;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: ClusterNodeOptions) {
    const c = o.config;
    this.log = o.log.child({ component: "cluster", nodeId: c.nodeId });
    this.pool = newPool(c.url, c.poolSize, `ata ${c.nodeId}`);
    this.leasePool = newPool(c.url, 3, `ata ${c.nodeId} leases`);
    this.readPool = newPool(c.url, c.readPoolSize, `ata ${c.nodeId} reads`);
    this.maintenancePool = newPool(c.url, 1, `ata ${c.nodeId} maintenance`);
    this.maintenance = new PgListener({
      pool: this.maintenancePool,
      channels: [MAINTENANCE_CHANNEL],
      reconnectMs: RETAKE_MS,
      retryStart: true,
      unref: true,
      onNotification: (n) => {
        if (n.payload) void this.maintenanceChanged(n.payload);
      },
      // What changed while nobody listened.
      onListening: () => {
        if (!this.running) return;
        for (const h of this.held.values()) void h.host.refreshMaintenance().catch(() => undefined);
      },
      onError: (err) =>
        this.log.warn({ err: err.message }, "could not listen for maintenance windows; trying again"),
    });
    this.leases = new PartitionLeases({
      pool: this.leasePool,
      nodeId: c.nodeId,
      partitions: c.partitions,
      leaseMs: c.leaseMs,
      beforeRelease: (partitions, timeoutMs) => this.handOver(partitions, timeoutMs),
      ...(o.drainMs === undefined ? {} : { drainMs: o.drainMs }),
    });
    this.follower = new EventLogFollower({
      pool: this.pool,
      deliver: (partition, events) => this.deliver(partition, events),
      ...(o.pollMs ? { pollMs: o.pollMs } : {}),
    });
    this.commands = new OwnerCommands({
      pool: this.pool,
      leases: this.leases,
      ...(o.pollMs ? { pollMs: o.pollMs } : {}),
    });
    this.forwarder = new EventForwarder({
      db: o.db,
      pool: this.pool,
      partitions: c.partitions,
      log: this.log.child({ component: "forwarder" }),
    });
    // Each held partition's state listens for its lease's loss: as many listeners as partitions.
    this.leases.setMaxListeners(c.partitions + 10);
    this.presence = new StaffPresence({ pool: this.pool, nodeId: c.nodeId, leaseMs: c.leaseMs });
    this.presence.on("error", (err) => this.log.warn({ err: err.message }, "staff presence"));
    // Someone came or went on any node: alerts nobody could receive are tried again.
    this.presence.on("changed", () => {
      for (const h of this.held.values())
        try {
          h.host.alerts.recheckUndelivered();
        } catch (err) {
          this.log.error(
            { partition: h.host.partition, err: (err as Error).message },
            "could not re-check undelivered alerts",
          );
        }
    });
    this.leases.on("acquired", (p, token) => void this.acquire(p, token));
    this.leases.on("lost", (p, reason) => this.release(p, reason));
    this.leases.on("error", (err) => this.log.warn({ err: err.message }, "lease round failed"));
    this.follower.on("error", (err) => this.log.error({ err: err.message }, "event log follower"));
    this.follower.on("gap", (p, reason, at) => {
      // Events after the rules' cursor are gone from the shared log: nothing here can evaluate
      // them any more. Said loudly; the partition goes on from what the log still has.
      this.log.error(
        { partition: p, reason, at },
        "the shared event log no longer has this partition's next events",
      );
    });
    this.commands.on("error", (err) => this.log.error({ err: err.message }, "owner commands"));
  }

  async start(): Promise<void> {
    await migratePg(this.pool);
    this.running = true;
    this.forwarder.start();
    await this.follower.start();
    await this.commands.start();
    await this.maintenance.start();
    await this.presence.start();
    await this.leases.start();
    // Every node prunes (each prune is a no-op once another has cut the same prefix).
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  /**
   * Deletes shared-log events past the retention. The retention must exceed the rules' look-back
   * (a new owner reads that far back), which the configuration's 30 days do for any rule file that
   * looks back less.
   */
  async prune(): Promise<number> {
    try {
      await this.pool.query(FORGET_DEAD_NODES);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not forget nodes dead for a day");
    }
    try {
      return await pruneEvents(this.pool, this.o.config.eventRetentionDays * 86_400_000);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not prune the shared event log");
      return 0;
    }
  }

  /** A window of this site was opened or ended: the partition's owner, if here, reads its windows. */
  maintenanceChanged(siteId: string): Promise<void> {
    const host = this.held.get(partitionOf(siteId, this.o.config.partitions))?.host;
    return (host?.refreshMaintenance() ?? Promise.resolve()).catch((err: Error) =>
      this.log.warn({ siteId, err: err.message }, "could not read maintenance windows again"),
    );
  }

  /** Gives every partition up (each stops acting first), then closes the connections. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.leases.stop();
    for (const p of [...this.held.keys()]) this.release(p, "stopped");
    this.maintenance.stop();
    await this.presence.stop();
    await this.follower.stop();
    await this.commands.stop();
    await this.forwarder.stop();
    await Promise.all([
      this.pool.end(),
      this.leasePool.end(),
      this.readPool.end(),
      this.maintenancePool.end(),
    ]);
  }

  /** Events up to this local seq were committed by this node's ingest. */
  logged(seq: number): void {
    this.forwarder.notify(seq);
  }

  /** Resolves once everything this node logged so far is in the shared log (before acknowledging). */
  drained(): Promise<void> {
    return this.forwarder.drained();
  }

  /** Runs a staff command on the owner of the alert's site's partition, wherever it is. */
  send(siteId: string, command: OwnerCommand): Promise<AlertView> {
    return this.commands.send(partitionOf(siteId, this.o.config.partitions), command, {
      timeoutMs: this.o.config.commandTimeoutMs,
    });
  }

  /** The partition's host, if this node holds it (tests, status). */
  host(partition: number): PartitionHost | undefined {
    return this.held.get(partition)?.host;
  }

  /**
   * For each partition held, how many events of the shared log its rules have not taken yet: the
   * log's head (`event_log_heads`) less the host's position. A partition whose head is not read
   * (no event ever) counts 0. One query; rejects when PostgreSQL does not answer.
   */
  async partitionLag(): Promise<{ partition: number; lag: number }[]> {
    const held = [...this.held].map(([partition, h]) => ({ partition, position: h.host.head() }));
    if (held.length === 0) return [];
    const { rows } = await this.pool.query<{ partition: number; head: string }>(
      "SELECT partition, head FROM event_log_heads WHERE partition = ANY($1::int[])",
      [held.map((h) => h.partition)],
    );
    const heads = new Map(rows.map((r) => [r.partition, Number(r.head)]));
    return held.map((h) => ({
      partition: h.partition,
      lag: Math.max(0, (heads.get(h.partition) ?? 0) - h.position),
    }));
  }

  status(): ClusterNodeStatus {
    return {
      nodeId: this.o.config.nodeId,
      partitions: [...this.held].map(([partition, h]) => ({
        partition,
        token: h.token,
        position: h.host.head(),
      })),
      forwarder: this.forwarder.status(),
      liveNodes: this.leases.status().liveNodes,
    };
  }

  private async acquire(partition: number, token: number): Promise<void> {
    this.loading.set(partition, token);
    const current = () =>
      this.running && this.loading.get(partition) === token && this.leases.holds(partition, token);
    let state: PgPartitionState | null = null;
    try {
      state = await PgPartitionState.load({
        pool: this.pool,
        leases: this.leases,
        partition,
        token,
        feed: true,
      });
      const rules = this.o.rules();
      const since = Date.now() - lookBack(rules.rules) - (this.o.lookBackMarginMs ?? 3_600_000);
      const history = await readPartitionWindow(this.pool, partition, {
        sinceMs: since,
        through: Number.MAX_SAFE_INTEGER,
      });
      if (!current() || state.lost()) {
        state.close();
        return;
      }
      const {
        config: _config,
        db: _db,
        rules: _rules,
        pollMs: _pollMs,
        drainMs: _drainMs,
        ...shared
      } = this.o;
      const host = new PartitionHost({
        ...shared,
        partition,
        state,
        rules,
        log: this.log,
        // After the flush of the step that made it, under the lease: a repeated signal is worth
        // nothing late, so a failure is logged, not retried.
        renotify: (alert, seq) =>
          void state
            ?.flushed()
            .then(() =>
              this.leases.fenced(partition, token, (client) =>
                appendChanges(client, partition, [renotifyEntry(alert, seq)]),
              ),
            )
            .catch((err: Error) =>
              this.log.warn(
                { partition, alertId: alert.id, err: err.message },
                "renotify not carried to other nodes",
              ),
            ),
      });
      const { replayed } = host.start(history);
      const served = this.commands.serve(partition, {
        token,
        handler: (command) => applyCommand(host.alerts, command),
        step: (fn) => host.alerts.batch(fn),
        state,
      });
      this.held.set(partition, { token, host, served });
      this.loading.delete(partition);
      // A failed flush (PostgreSQL gone, the fence refusing) ends the partition's host; while the
      // lease is still this node's, the partition is taken up again from what committed.
      state.once("lost", () => {
        this.release(partition, "state lost");
        this.retake(partition, token);
      });
      this.follower.add(partition, host.head());
      this.log.info(
        { partition, token, history: history.length, replayed, position: host.head() },
        "partition taken up",
      );
    } catch (err) {
      state?.close();
      if (this.loading.get(partition) === token) this.loading.delete(partition);
      this.log.error({ partition, token, err: (err as Error).message }, "could not take up a partition");
      this.retake(partition, token);
    }
  }

  /** Tries again, after a second, to take up a partition whose lease this node still holds. */
  private retake(partition: number, token: number): void {
    const timer = setTimeout(() => {
      if (
        this.running &&
        !this.held.has(partition) &&
        !this.loading.has(partition) &&
        !this.leaving.has(partition) &&
        this.leases.holds(partition, token)
      )
        void this.acquire(partition, token);
    }, RETAKE_MS);
    timer.unref();
  }

  private release(partition: number, reason: string): void {
    this.loading.delete(partition);
    const h = this.held.get(partition);
    if (!h) return;
    this.held.delete(partition);
    this.follower.remove(partition);
    void h.served.stop();
    h.host.stop();
    this.log.info({ partition, reason }, "partition given up");
  }

  /**
   * Before the leases release these partitions voluntarily (they are still this node's): each stops
   * taking events and commands, lets the commands it took be executed and answered, waits for its
   * host's last flush, and stops. What is not done within timeoutMs is left to `release` (the leases
   * report it lost once this returns), which stops it at once, as before there was a drain.
   */
  private async handOver(partitions: readonly number[], timeoutMs: number): Promise<void> {
    const started = performance.now();
    const pending = new Set<number>();
    const drains = partitions.map(async (partition) => {
      const h = this.held.get(partition);
      if (!h || this.leaving.has(partition)) return;
      this.leaving.set(partition, h);
      pending.add(partition);
      try {
        this.follower.remove(partition);
        await h.served.drain();
        await h.host.flushed();
        h.host.stop();
        // A step made while the commands drained (a timer) was queued before the host stopped.
        await h.host.flushed();
        if (this.held.get(partition) !== h) return; // lost meanwhile, and given up then
        this.held.delete(partition);
        this.log.info(
          { partition, token: h.token, drainMs: Math.round(performance.now() - started) },
          "partition handed over",
        );
      } catch (err) {
        // The state was lost (a failed flush): `release` has given it up already.
        this.log.warn({ partition, err: (err as Error).message }, "partition lost while handing it over");
      } finally {
        pending.delete(partition);
        if (this.leaving.get(partition) === h) this.leaving.delete(partition);
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all(drains).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && pending.size > 0)
      this.log.warn(
        { partitions: [...pending].sort((a, b) => a - b), timeoutMs },
        "handover not finished in time; giving the partitions up at once",
      );
  }

  private async deliver(partition: number, events: PartitionEvent[]): Promise<void> {
    const h = this.held.get(partition);
    if (!h) throw new Error(`partition ${partition} is not held here`);
    // Handing over: the next owner evaluates these, from the rules' cursor.
    if (this.leaving.get(partition) === h) throw new Error(`partition ${partition} is being handed over`);
    await h.host.deliver(events.map((e) => e.event));
  }
}

function newPool(url: string, max: number, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name });
  // A dropped idle connection is replaced on next use; the components report their own failures.
  pool.on("error", () => undefined);
  return pool;
}
