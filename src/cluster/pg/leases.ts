/**
 * Partition ownership in PostgreSQL: each partition of sites (src/cluster/partitions.ts) is leased to
 * one gateway node at a time, and every change of owner increments the partition's fencing token.
 *
 * Clocks. Lease expiry is PostgreSQL's time (`now()`, the start of the writing transaction); no two
 * nodes' clocks are ever compared. Locally a node measures only durations, on its own monotonic clock.
 *
 * Safety (a node stops acting on a partition before anyone else can take it). A node counts a lease
 * as its own until
 *
 *     deadline = s + leaseMs - marginMs
 *
 * where s is its monotonic time when it sent the last renewal (or claim) that succeeded. The server
 * set that lease's expiry to t + leaseMs, with t the start of the renewing transaction, which is later
 * in real time than s; another node can only take the lease once the server's now() is past it. So
 * the owner gives up at least marginMs before any takeover, as long as the two clocks' rates differ by
 * less than marginMs / leaseMs (20 % by default; real clocks drift by parts per million). When no
 * renewal has succeeded by the deadline (PostgreSQL down, network partition, a renewal that hangs) a
 * timer reports `lost`; `holds()` and `fenced()` also check the deadline synchronously, so a process
 * that was paused past it (GC, SIGSTOP) reports `lost` before it does anything else for the partition.
 *
 * Fencing, for what the deadline cannot cover (a pause between the check and the write): `fenced()`
 * runs the owner's writes in a transaction whose first statement checks, under a row lock, that the
 * lease is still this node's, with this token, and not expired. See FENCE for the lock.
 *
 * Takeover bound after an owner dies (kill -9): its leases expire at most leaseMs after its last
 * renewal, and so does its heartbeat (both are written by one transaction with one now()); each
 * survivor looks again every renewMs. So
 *
 *     takeover <= leaseMs + renewMs + one tick's queries
 *
 * If the owner was inside a fenced transaction, the takeover also waits for that transaction to end:
 * at once when a killed process's kernel closes its socket; when the owner is paused or its machine
 * is gone, PostgreSQL ends it after `idle_in_transaction_session_timeout = leaseMs`, adding at most
 * leaseMs.
 * After a graceful stop the leases are released at once and the others are woken (NOTIFY): takeover
 * takes a few round trips, and at most renewMs + one tick's queries if the notification is lost.
 *
 * Handover. A voluntary release (a balancing round's surplus, `stop()`) first awaits the owner's
 * `beforeRelease(partitions)`, in which it finishes what it has in flight for them, and only then
 * reports them `lost` and releases them: the next owner cannot start before the last flush committed.
 * The wait is bounded by `drainMs`, and by the released leases' earliest local deadline less marginMs
 * (time left for the RELEASE itself); past that the partitions are reported lost and released as
 * before (an owner's work still in a fenced transaction then makes the claim wait, as always). The
 * partitions stay held meanwhile, under their deadlines: a drain never lets a node act past one, and a
 * dead node has no drain, so nothing here lengthens a takeover after a crash. The round waits for the
 * drain, so a drain longer than renewMs delays the next renewal of the leases the node keeps by the
 * excess: drainMs is renewMs by default. Losses that are not voluntary (a deadline, a superseded
 * token) are reported at once, as before.
 *
 * Balance, and why it converges without thrash. The live nodes (heartbeat younger than leaseMs, not
 * leaving) are ordered by (started_at, node_id); with n of them and count partitions, the first
 * count % n get ceil(count / n) and the rest floor(count / n), so the targets add up to count exactly.
 * A node above its target releases the surplus (highest partition numbers first); a node below it
 * claims free or expired partitions; a node at its target does neither. No node ever both releases
 * and claims in one view of the live set, so once the nodes agree on who is alive each node's count
 * moves only towards its target: every partition moves at most once per change of membership. The
 * oldest nodes keep the extra partition, so a node joining does not shuffle the others.
 *
 * Node ids must be unique among running processes (a restarted node may reuse its id: its previous
 * leases are taken like anyone's once they expire).
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type pg from "pg";
import { DEFAULT_PARTITION_COUNT } from "../partitions.js";
import { PgListener } from "./listener.js";
import type { PgMigration } from "./migrate.js";
import { ignoreDropped, session } from "./session.js";

export const LEASES_MIGRATION: PgMigration = {
  version: 3,
  name: "partition_leases",
  sql: `
    CREATE TABLE cluster_nodes (
      node_id TEXT PRIMARY KEY,
      started_at TIMESTAMPTZ NOT NULL,   -- PostgreSQL's time; orders the nodes for balancing
      heartbeat_at TIMESTAMPTZ NOT NULL, -- renewed with the node's leases, in the same transaction
      leaving BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE partition_leases (
      partition INTEGER PRIMARY KEY CHECK (partition >= 0),
      owner TEXT,                        -- NULL: free
      token BIGINT NOT NULL DEFAULT 0,   -- the fencing token: +1 on every change of owner, never reused
      expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
    );
  `,
};

export type LostReason =
  /** No renewal succeeded by the local deadline. */
  | "expired"
  /** A renewal or a fenced transaction found the lease no longer this node's (taken after it expired). */
  | "superseded"
  /** Given back so that another node gets its share. */
  | "released"
  /** The component stopped. */
  | "stopped";

export interface PartitionLeaseEvents {
  /** The node owns the partition from now on, with this token; act on it only through `fenced` or after `holds`. */
  acquired: [partition: number, token: number];
  /** Stop acting on the partition now: reported before anyone else can take it (see the safety rule). */
  lost: [partition: number, reason: LostReason];
  /** A renewal or balancing round failed (PostgreSQL unreachable...); the leases' deadlines still hold. */
  error: [err: Error];
}

export interface PartitionLeasesOptions {
  pool: pg.Pool;
  /** Unique among the running gateway nodes. */
  nodeId: string;
  /** The same on every node, for the life of the cluster (src/cluster/partitions.ts). */
  partitions?: number;
  /** How long a lease lasts without renewal; the takeover bound grows with it. */
  leaseMs?: number;
  /** Renewal and balancing period: leaseMs / 3 by default, so two renewals may fail before a loss. */
  renewMs?: number;
  /** How long before the server's expiry the node gives a lease up: leaseMs / 5 by default. */
  marginMs?: number;
  /** Local monotonic milliseconds; only ever compared with itself. */
  monotonic?: () => number;
  /**
   * Awaited before a voluntary release (balancing, `stop()`) of these partitions, which are still held
   * while it runs: the owner finishes its work in flight for them (header, "Handover"). Given how long
   * it may take; not awaited past that. A rejection counts as done.
   */
  beforeRelease?: (partitions: readonly number[], timeoutMs: number) => Promise<void>;
  /** The longest `beforeRelease` is waited for (renewMs by default; see the header). */
  drainMs?: number;
}

export interface OwnedPartition {
  partition: number;
  token: number;
  /** The lease's expiry, PostgreSQL's time, as of the last renewal. */
  expiresAt: string;
  /** Milliseconds left until this node gives the lease up unless renewed. */
  validForMs: number;
}

export interface PartitionLeasesStatus {
  nodeId: string;
  running: boolean;
  partitions: OwnedPartition[];
  /** This node's share as of the last balancing round: count / live nodes, rounded by age. */
  target: number | null;
  liveNodes: number | null;
  lastError: string | null;
}

/** A fenced write refused: this node no longer holds the partition's lease with that token. */
export class LeaseLostError extends Error {
  readonly code = "lease_lost";
  constructor(
    readonly partition: number,
    readonly token: number,
    /** "local": refused before touching PostgreSQL (the local deadline passed, or lost); "database": the fence. */
    readonly where: "local" | "database",
  ) {
    super(`partition ${partition}: the lease with token ${token} is no longer this node's (${where})`);
    this.name = "LeaseLostError";
  }
}

interface Held {
  token: number;
  /** Monotonic time at which the node gives the lease up unless a renewal has succeeded. */
  deadline: number;
  expiresAt: Date;
}

interface LeaseRow {
  partition: number;
  token: string; // BIGINT comes back as text from node-postgres
  expires_at: Date;
}

const MS = "* interval '1 millisecond'";

const REGISTER_LOCK = 0x415441; // "ATA", as the migrations' lock; second key 1
const REGISTER_NODE = `
  INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at, leaving) VALUES ($1, now(), now(), false)
  ON CONFLICT (node_id) DO UPDATE SET started_at = now(), heartbeat_at = now(), leaving = false`;
const HEARTBEAT = `
  INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at, leaving) VALUES ($1, now(), now(), false)
  ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), leaving = false`;
/** Extends only leases that are still this node's, with the token it knows, and not yet expired. */
const RENEW = `
  UPDATE partition_leases AS l SET expires_at = now() + $2::int ${MS}
    FROM unnest($3::int[], $4::bigint[]) AS mine(partition, token)
   WHERE l.partition = mine.partition AND l.token = mine.token AND l.owner = $1 AND l.expires_at > now()
  RETURNING l.partition, l.token, l.expires_at`;
const LIVE_NODES = `
  SELECT node_id FROM cluster_nodes
   WHERE NOT leaving AND heartbeat_at > now() - $1::int ${MS}
   ORDER BY started_at, node_id`;
/**
 * Takes up to $4 free or expired partitions in one statement. The rows are locked FOR UPDATE with
 * SKIP LOCKED: a row that another node is claiming, or on which a fenced transaction is still open
 * (FOR KEY SHARE conflicts with FOR UPDATE), is left for a later round instead of waited for, so a
 * claim never blocks this node's renewals behind someone else's transaction.
 */
const CLAIM = `
  WITH free AS MATERIALIZED (
    SELECT partition FROM partition_leases
     WHERE partition < $3 AND (owner IS NULL OR expires_at <= now()) AND NOT (partition = ANY($5::int[]))
     ORDER BY partition LIMIT $4
       FOR UPDATE SKIP LOCKED)
  UPDATE partition_leases AS l SET owner = $1, token = l.token + 1, expires_at = now() + $2::int ${MS}
    FROM free WHERE l.partition = free.partition
  RETURNING l.partition, l.token, l.expires_at`;
/**
 * Nodes wake each other when partitions become free (a release, a node leaving) or when a node joins
 * (the others should give it its share), so a handover takes one round trip instead of waiting for
 * the others' next round. The rounds remain the fallback: a lost notification costs at most renewMs.
 */
const CHANNEL = "ata_partition_leases";
const NOTIFY = "SELECT pg_notify($1, $2)";
const RELEASE = `
  UPDATE partition_leases AS l SET owner = NULL, expires_at = now()
    FROM unnest($2::int[], $3::bigint[]) AS mine(partition, token)
   WHERE l.partition = mine.partition AND l.token = mine.token AND l.owner = $1`;
/**
 * The fence. FOR KEY SHARE rather than FOR SHARE: both make a takeover wait, since the claim locks the
 * row FOR UPDATE, which conflicts with either, so no other node can take the partition (and no
 * transaction with the next token can begin) until this transaction has committed or rolled back;
 * and a claim that finds the row locked skips it for now. But FOR SHARE would also conflict with this
 * node's own renewal (a plain UPDATE of non-key columns, FOR NO KEY UPDATE), so a long fenced
 * transaction would hold the renewal up and could cost the lease; FOR KEY SHARE does not. PostgreSQL
 * carries a KEY SHARE lock over to the new row version of a non-key UPDATE (the renewal, a release),
 * so the lock still stands against a claim after the row was renewed or released under it.
 *
 * The expiry check means no fenced transaction can begin on an expired lease, so once a lease
 * expires the fenced transactions in flight can only finish, and a claim cannot be skipped forever.
 */
const FENCE = `
  SELECT 1 FROM partition_leases
   WHERE partition = $1 AND token = $2 AND owner = $3 AND expires_at > clock_timestamp()
     FOR KEY SHARE`;

export class PartitionLeases extends EventEmitter<PartitionLeaseEvents> {
  readonly nodeId: string;
  readonly partitions: number;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly marginMs: number;
  readonly drainMs: number;
  private readonly pool: pg.Pool;
  private readonly beforeRelease: PartitionLeasesOptions["beforeRelease"];
  private readonly now: () => number;
  private readonly held = new Map<number, Held>();
  private running = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  /** A notification came during a round: start the next one at once. */
  private nudged = false;
  /**
   * Notifications only shorten the wait for the next round: when the connection drops, the rounds
   * carry on alone and it is opened again after renewMs, with nothing to read on its return.
   */
  private readonly listener: PgListener;
  private target: number | null = null;
  private liveNodes: number | null = null;
  private lastError: string | null = null;

  constructor(o: PartitionLeasesOptions) {
    super();
    this.pool = o.pool;
    this.nodeId = o.nodeId;
    this.partitions = o.partitions ?? DEFAULT_PARTITION_COUNT;
    this.leaseMs = o.leaseMs ?? 10_000;
    this.renewMs = o.renewMs ?? Math.floor(this.leaseMs / 3);
    this.marginMs = o.marginMs ?? Math.floor(this.leaseMs / 5);
    this.now = o.monotonic ?? (() => performance.now());
    this.drainMs = o.drainMs ?? this.renewMs;
    this.beforeRelease = o.beforeRelease;
    if (!Number.isSafeInteger(this.partitions) || this.partitions < 1)
      throw new RangeError(`partitions must be a positive integer, not ${this.partitions}`);
    if (!(this.marginMs > 0 && this.renewMs > 0 && this.renewMs < this.leaseMs - this.marginMs))
      throw new RangeError("need 0 < renewMs < leaseMs - marginMs and marginMs > 0");
    if (!(this.drainMs >= 0)) throw new RangeError(`drainMs must be 0 or more, not ${this.drainMs}`);
    this.listener = new PgListener({
      pool: this.pool,
      channels: [CHANNEL],
      reconnectMs: this.renewMs,
      timeoutMs: this.renewMs,
      retryStart: true,
      onNotification: (msg) => {
        if (msg.payload !== this.nodeId) this.nudge();
      },
      onError: (err) => this.fail(err),
    });
  }

  /**
   * Announces the node and takes its first share before resolving. Refuses a lease table made for
   * another partition count: the nodes would disagree about which partition a site is in.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      // Listening before announcing, so the others' answer to the announcement is heard.
      await this.listener.start();
      await session(this.pool, this.leaseMs, async (c) => {
        await c.query("BEGIN");
        await c.query("SELECT pg_advisory_xact_lock($1, 1)", [REGISTER_LOCK]);
        const { rows } = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM partition_leases");
        const existing = rows[0]!.n;
        if (existing !== 0 && existing !== this.partitions)
          throw new Error(
            `the lease table has ${existing} partitions and this node is configured for ${this.partitions}: every node must use the same count`,
          );
        await c.query(
          "INSERT INTO partition_leases (partition) SELECT generate_series(0, $1::int - 1) ON CONFLICT DO NOTHING",
          [this.partitions],
        );
        await c.query(REGISTER_NODE, [this.nodeId]);
        await c.query(NOTIFY, [CHANNEL, this.nodeId]);
        await c.query("COMMIT");
      });
    } catch (err) {
      this.running = false;
      this.listener.stop();
      throw err;
    }
    await this.runTick();
  }

  /**
   * Lets the owner finish its work in flight (`beforeRelease`), reports every partition lost, then
   * releases the leases and marks the node leaving in one transaction, so the others take over at
   * their next round instead of waiting for expiry. With PostgreSQL unreachable the leases simply
   * expire.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    this.listener.stop();
    await this.ticking?.catch(() => undefined);
    const mine = [...this.held].map(([p, h]) => [p, h.token] as const);
    await this.handOver(mine.map((m) => m[0]));
    // One whose deadline passed during the drain was reported lost then; released anyway (by token:
    // nothing if someone took it since).
    for (const [p, token] of mine) if (this.held.get(p)?.token === token) this.lose(p, "stopped");
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    await session(this.pool, this.renewMs, async (c) => {
      await c.query("BEGIN");
      await c.query(RELEASE, [this.nodeId, mine.map((m) => m[0]), mine.map((m) => m[1])]);
      await c.query("UPDATE cluster_nodes SET leaving = true WHERE node_id = $1", [this.nodeId]);
      await c.query(NOTIFY, [CHANNEL, this.nodeId]);
      await c.query("COMMIT");
    }).catch((err: Error) => this.fail(err));
  }

  /** Whether this node may act on the partition now (with this token, if given). */
  holds(partition: number, token?: number): boolean {
    const h = this.held.get(partition);
    if (!h || (token !== undefined && h.token !== token)) return false;
    if (h.deadline <= this.now()) {
      this.lose(partition, "expired");
      return false;
    }
    return true;
  }

  /** The token of a partition this node holds, if it still may act on it. */
  tokenOf(partition: number): number | undefined {
    return this.holds(partition) ? this.held.get(partition)?.token : undefined;
  }

  /**
   * Runs fn in a transaction that first passes the fence (FENCE): the lease is still this node's,
   * with this token, and not expired; rejects with LeaseLostError otherwise. fn's statements commit
   * together with that check, and no other node can take the partition until they have. The
   * transaction may be idle for at most leaseMs (a paused process is cut off by PostgreSQL, so it
   * cannot hold a takeover up for longer).
   */
  async fenced<T>(partition: number, token: number, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (!this.holds(partition, token)) throw new LeaseLostError(partition, token, "local");
    const client = await this.pool.connect();
    client.on("error", ignoreDropped);
    let broken = false;
    try {
      await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(this.leaseMs)}`);
      const fence = await client.query(FENCE, [partition, token, this.nodeId]);
      if (fence.rowCount !== 1) {
        if (this.held.get(partition)?.token === token) this.lose(partition, "superseded");
        throw new LeaseLostError(partition, token, "database");
      }
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.off("error", ignoreDropped);
      client.release(broken);
    }
  }

  status(): PartitionLeasesStatus {
    const now = this.now();
    return {
      nodeId: this.nodeId,
      running: this.running,
      partitions: [...this.held]
        .filter(([, h]) => h.deadline > now)
        .sort((a, b) => a[0] - b[0])
        .map(([partition, h]) => ({
          partition,
          token: h.token,
          expiresAt: h.expiresAt.toISOString(),
          validForMs: Math.round(h.deadline - now),
        })),
      target: this.target,
      liveNodes: this.liveNodes,
      lastError: this.lastError,
    };
  }

  /** Rounds never overlap: asked for during one, the next starts as soon as it ends. */
  private runTick(): Promise<void> {
    if (this.ticking) {
      this.nudged = true;
      return this.ticking;
    }
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    const started = this.now();
    this.ticking = this.tick()
      .catch((err: Error) => this.fail(err))
      .finally(() => {
        this.ticking = null;
        if (!this.running) return;
        const wait = this.nudged ? 0 : Math.max(0, this.renewMs - (this.now() - started));
        this.nudged = false;
        this.tickTimer = setTimeout(() => void this.runTick(), wait);
      });
    return this.ticking;
  }

  /** One round: heartbeat and renew (one transaction, one now()), then release or claim towards the target. */
  private async tick(): Promise<void> {
    this.expireOverdue();
    const mine = [...this.held].map(([p, h]) => [p, h.token] as const);
    const sent = this.now();
    const { renewed, live } = await session(this.pool, this.renewMs, async (c) => {
      await c.query("BEGIN");
      await c.query(HEARTBEAT, [this.nodeId]);
      const r = await c.query<LeaseRow>(RENEW, [
        this.nodeId,
        this.leaseMs,
        mine.map((m) => m[0]),
        mine.map((m) => m[1]),
      ]);
      const l = await c.query<{ node_id: string }>(LIVE_NODES, [this.leaseMs]);
      await c.query("COMMIT");
      return { renewed: r.rows, live: l.rows.map((row) => row.node_id) };
    });
    this.lastError = null;

    const ok = new Map(renewed.map((r) => [r.partition, r]));
    const strays: (readonly [number, number])[] = [];
    for (const [p, token] of mine) {
      const row = ok.get(p);
      const h = this.held.get(p);
      if (row && Number(row.token) === token) {
        // Renewed in PostgreSQL; if the node gave it up meanwhile (deadline passed while the
        // renewal was on its way) it is not taken back silently but released for whoever claims it.
        if (h?.token === token) {
          h.deadline = sent + this.leaseMs - this.marginMs;
          h.expiresAt = row.expires_at;
        } else strays.push([p, token]);
      } else if (h?.token === token) this.lose(p, "superseded");
    }
    this.armDeadline();

    let n = live.length;
    let rank = live.indexOf(this.nodeId);
    if (rank < 0) rank = n++;
    const target = Math.floor(this.partitions / n) + (rank < this.partitions % n ? 1 : 0);
    this.target = target;
    this.liveNodes = n;

    const surplus = this.held.size - target;
    if (surplus > 0) {
      const give = [...this.held]
        .sort((a, b) => b[0] - a[0])
        .slice(0, surplus)
        .map(([p, h]) => [p, h.token] as const);
      await this.handOver(give.map((g) => g[0]));
      for (const [p, token] of give) {
        strays.push([p, token]);
        // Unless its deadline passed during the drain (reported then); released by token either way.
        if (this.held.get(p)?.token === token) this.lose(p, "released");
      }
    }
    if (strays.length > 0)
      await session(this.pool, this.renewMs, async (c) => {
        await c.query(RELEASE, [this.nodeId, strays.map((s) => s[0]), strays.map((s) => s[1])]);
        await c.query(NOTIFY, [CHANNEL, this.nodeId]);
      });
    if (surplus < 0 && this.running) {
      const claimSent = this.now();
      const claimed = await session(this.pool, this.renewMs, (c) =>
        c.query<LeaseRow>(CLAIM, [
          this.nodeId,
          this.leaseMs,
          this.partitions,
          -surplus,
          [...this.held.keys()],
        ]),
      );
      for (const row of claimed.rows) {
        const token = Number(row.token);
        this.held.set(row.partition, {
          token,
          deadline: claimSent + this.leaseMs - this.marginMs,
          expiresAt: row.expires_at,
        });
        this.armDeadline();
        this.tell("acquired", row.partition, token);
      }
    }
  }

  /** Another node released partitions, left or joined: balance now rather than at the next round. */
  private nudge(): void {
    if (this.running) void this.runTick();
  }

  /**
   * The owner's drain before a voluntary release, bounded by drainMs and by the partitions' earliest
   * local deadline less marginMs, so that the RELEASE still runs while the leases are this node's.
   */
  private async handOver(partitions: number[]): Promise<void> {
    if (!this.beforeRelease || partitions.length === 0) return;
    let deadline = Number.POSITIVE_INFINITY;
    for (const p of partitions) deadline = Math.min(deadline, this.held.get(p)?.deadline ?? deadline);
    const timeoutMs = Math.floor(Math.min(this.drainMs, deadline - this.now() - this.marginMs));
    if (!(timeoutMs > 0)) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.beforeRelease(partitions, timeoutMs).catch((err: Error) => this.fail(err)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private expireOverdue(): void {
    const now = this.now();
    for (const [p, h] of this.held) if (h.deadline <= now) this.lose(p, "expired");
    this.armDeadline();
  }

  /** One timer, at the earliest deadline: a loss is reported even while a renewal hangs. */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (this.held.size === 0) return;
    let next = Number.POSITIVE_INFINITY;
    for (const h of this.held.values()) next = Math.min(next, h.deadline);
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = null;
        this.expireOverdue();
      },
      Math.max(0, Math.ceil(next - this.now())),
    );
  }

  private lose(partition: number, reason: LostReason): void {
    if (!this.held.delete(partition)) return;
    this.tell("lost", partition, reason);
  }

  /** A listener that throws is reported as an error; it does not break the round that emitted. */
  private tell<K extends "acquired" | "lost">(event: K, ...args: PartitionLeaseEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: PartitionLeaseEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    this.lastError = err.message;
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }
}
