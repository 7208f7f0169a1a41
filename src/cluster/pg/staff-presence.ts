/**
 * Who is connected, across the cluster's nodes. Staff consoles connect to any gateway node, while a
 * site's alerts run on the one node holding its partition's lease (leases.ts); the alert ladder asks
 * the console channel whom it can reach (`ConsoleChannel.reach` from `connected()`), and a level where
 * nobody is reachable escalates at once (src/alerts/manager.ts). So on a partition's owner
 * `connected()` must be everyone connected to any node, and a person connecting on another node must
 * make the owner re-check its undelivered alerts (`changed`).
 *
 * Each node writes its own connected staff to `staff_presence` (one row per person, with the
 * `StaffIdentity` fields that `inAudience` and the console channel read, and the number of sockets)
 * and reads everyone else's into an in-memory copy, from which `connected()` answers synchronously.
 *
 * Writing. `publish()` sets the node's current set (one identity per signed-in socket); the set is
 * written at once when the node has been quiet, and then at most once per `coalesceMs` while
 * publishes keep coming, one write at a time, each the difference from what the last write left
 * (rows added, changed or gone), in one statement with its NOTIFY. A reconnect storm of 500 consoles
 * over a second is a handful of writes. A write that fails is retried after `retryMs` as a wholesale
 * replacement of the node's rows (whether it committed is unknown), and so is the first one at
 * `start()`: a restarted node with the same id replaces what its previous life left. `stop()` deletes
 * the node's rows.
 *
 * Reading. Notifications on `ata_staff_presence` carry the writing node's id only, and a node reads
 * that node's rows again. NOTIFY is transactional: "if a NOTIFY is executed inside a transaction, the
 * notify events are not delivered until and unless the transaction is committed" (PostgreSQL 15,
 * NOTIFY), so a reader hears of rows once they are visible and never of a rolled-back write. The node
 * LISTENs before its first read, so nothing committed between the two is missed; after a lost
 * listening connection it LISTENs again and reads everything. A slow poll (`pollMs`) reads every
 * node's rows again, for a notification lost to a connection that hung without failing. It also
 * listens on the leases' channel (`ata_partition_leases`, leases.ts), on which a node that joins or
 * leaves is announced, to re-read who is live.
 *
 * Live nodes. A node's rows count only while the node is live by the leases' own rule (leases.ts,
 * LIVE_NODES): `cluster_nodes.heartbeat_at` younger than leaseMs by PostgreSQL's `now()`, and not
 * `leaving`. The heartbeat is the leases' (written with every renewal); there is no second one, so
 * presence must be given the same `leaseMs` as the node's `PartitionLeases`. A node that dies leaves
 * its rows behind; they stop counting when its heartbeat is leaseMs old, the moment the leases
 * count it dead: each read learns how long every live node's heartbeat has left (PostgreSQL's time,
 * measured from when the read was sent, so never later than PostgreSQL's own expiry), and the next
 * read of the live set is timed for the earliest of those. A live node not in the copy yet (one that
 * joined, or heartbeats again after a pause past its lease) has its rows read with the live set, so
 * it counts from the next such read, the leases' notification of a join, or the poll. The node's own
 * sockets always count, from its own memory, whatever PostgreSQL says.
 *
 * One person on several nodes (or with several consoles) appears once: the identity is the one of
 * this node's sockets if the person has any here, otherwise the most recently written row.
 *
 * PostgreSQL unreachable. `connected()` keeps answering from the last copy, and failures are
 * reported as `error` events; publishes are kept and retried. For an alarm system that is the safer
 * side: staff believed connected get the alert on their consoles if they are still there, and if
 * nobody accepts, the ladder's timeout escalates anyway; dropping everyone instead would send every
 * alert straight to the fallback while the consoles may well be on screen. The price is that a node
 * that dies during the outage keeps counting until PostgreSQL answers again.
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type pg from "pg";
import type { StaffIdentity } from "../../staff/protocol.js";
import { PgListener } from "./listener.js";
import type { PgMigration } from "./migrate.js";
import { session } from "./session.js";

export const STAFF_PRESENCE_MIGRATION: PgMigration = {
  version: 8,
  name: "staff_presence",
  sql: `
    CREATE TABLE staff_presence (
      node_id TEXT NOT NULL,             -- the node holding the sockets (cluster_nodes.node_id)
      staff_id TEXT NOT NULL,            -- StaffIdentity.id: the person
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      sites TEXT[] NOT NULL,
      units TEXT[],                      -- NULL: every unit of their sites
      sockets INTEGER NOT NULL CHECK (sockets > 0),
      updated_at TIMESTAMPTZ NOT NULL,   -- PostgreSQL's time of the write
      PRIMARY KEY (node_id, staff_id)
    );
  `,
};

/** The NOTIFY channel; the payload is the writing node's id. */
export const STAFF_PRESENCE_CHANNEL = "ata_staff_presence";
/** leases.ts's channel: a node joined, left or released partitions (payload: its id). */
const LEASES_CHANNEL = "ata_partition_leases";

export interface StaffPresenceOptions {
  pool: pg.Pool;
  /** This node's id, as its `PartitionLeases` has it. */
  nodeId: string;
  /** The leases' leaseMs (`PartitionLeasesOptions.leaseMs`, 10 s by default): the same liveness rule. */
  leaseMs?: number;
  /** While publishes keep coming, at most one write per this many milliseconds. */
  coalesceMs?: number;
  /** Every node's rows are read again this often (default leaseMs). */
  pollMs?: number;
  /** A failed write, read or listening connection is tried again after this long. */
  retryMs?: number;
  /** A statement (with getting its connection) given up after this long. */
  timeoutMs?: number;
  /** Local monotonic milliseconds; only ever compared with itself. */
  monotonic?: () => number;
}

export interface StaffPresenceEvents {
  /** The union of connected staff changed (someone came, went, or their identity changed). */
  changed: [connected: StaffIdentity[]];
  /** A write, read or the listening connection failed; the copy and the node's set are kept. */
  error: [err: Error];
}

export interface StaffPresenceStatus {
  nodeId: string;
  running: boolean;
  listening: boolean;
  /** Other live nodes in the copy. */
  liveNodes: string[];
  connected: number;
  /** Writes sent since construction: one statement each, and one notification each that commits. */
  writes: number;
  reads: number;
  lastError: string | null;
}

interface Present {
  identity: StaffIdentity;
  sockets: number;
}

interface Remote {
  identity: StaffIdentity;
  updatedMs: number;
}

interface RemoteNode {
  /** Monotonic time at which the node's heartbeat is leaseMs old, unless renewed. */
  deadline: number;
  staff: Map<string, Remote>;
}

interface PresenceRow {
  node_id: string;
  valid_ms: number | null;
  staff_id: string | null;
  name: string;
  role: string;
  sites: string[];
  units: string[] | null;
  sockets: number;
  updated_ms: number;
}

const MS = "* interval '1 millisecond'";

/**
 * Every live node other than this one ($2), with how long its heartbeat has left, and the rows of the
 * nodes asked for: all ($3), named ($4), or not in the copy yet ($5, the nodes already there). The
 * liveness test is leases.ts's LIVE_NODES. A read of all ($3) brings this node's own rows too,
 * whether it is live or not, for the check of what its writes left (`verifyOwn`).
 */
const READ = `
  WITH live AS (
    SELECT node_id, (extract(epoch FROM heartbeat_at - now()) * 1000 + $1)::float8 AS valid_ms
      FROM cluster_nodes
     WHERE NOT leaving AND heartbeat_at > now() - $1::int ${MS} AND node_id <> $2
    UNION ALL SELECT $2, NULL)
  SELECT live.node_id, live.valid_ms, p.staff_id, p.name, p.role, p.sites, p.units, p.sockets,
         (extract(epoch FROM p.updated_at) * 1000)::float8 AS updated_ms
    FROM live LEFT JOIN staff_presence p
      ON p.node_id = live.node_id
     AND ($3 OR (live.node_id <> $2 AND (live.node_id = ANY($4::text[]) OR NOT (live.node_id = ANY($5::text[])))))`;

/**
 * One statement, so one implicit transaction: the rows named in $2 go, and with $3 (a wholesale
 * replacement) every row of the node not in $4 goes too; the rows in $5 are written; then the
 * notification, delivered only if all of it commits. The deleted and written ids never overlap.
 */
const WRITE = `
  WITH gone AS (
    DELETE FROM staff_presence
     WHERE node_id = $1 AND (staff_id = ANY($2::text[]) OR ($3 AND NOT (staff_id = ANY($4::text[]))))),
  put AS (
    INSERT INTO staff_presence (node_id, staff_id, name, role, sites, units, sockets, updated_at)
    SELECT $1, x.staff_id, x.name, x.role, x.sites, x.units, x.sockets, now()
      FROM jsonb_to_recordset($5::jsonb) AS x(staff_id text, name text, role text, sites text[], units text[], sockets int)
    ON CONFLICT (node_id, staff_id) DO UPDATE
      SET name = excluded.name, role = excluded.role, sites = excluded.sites, units = excluded.units,
          sockets = excluded.sockets, updated_at = excluded.updated_at)
  SELECT pg_notify('${STAFF_PRESENCE_CHANNEL}', $1)`;

const LEAVE = `
  WITH gone AS (DELETE FROM staff_presence WHERE node_id = $1)
  SELECT pg_notify('${STAFF_PRESENCE_CHANNEL}', $1)`;

function sameIdentity(a: StaffIdentity, b: StaffIdentity): boolean {
  const sameList = (x: readonly string[] | null, y: readonly string[] | null) =>
    x === null || y === null ? x === y : x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    a.id === b.id &&
    a.name === b.name &&
    a.role === b.role &&
    sameList(a.sites, b.sites) &&
    sameList(a.units, b.units)
  );
}

function copyIdentity(s: StaffIdentity): StaffIdentity {
  return {
    id: s.id,
    name: s.name,
    role: s.role,
    sites: [...s.sites],
    units: s.units === null ? null : [...s.units],
  };
}

/** Which nodes a read fetches rows of: every one, or those named (empty: only the live set). */
type ReadScope = "all" | Set<string>;

export class StaffPresence extends EventEmitter<StaffPresenceEvents> {
  readonly nodeId: string;
  readonly leaseMs: number;
  private readonly pool: pg.Pool;
  private readonly coalesceMs: number;
  private readonly pollMs: number;
  private readonly retryMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private running = false;

  /** This node's sockets, as last published. Replaced, never mutated, so a write can hold it. */
  private local = new Map<string, Present>();
  /** What the node's rows in PostgreSQL are after the last write; null: unknown, replace them all. */
  private written: Map<string, Present> | null = null;
  private writing: Promise<void> | null = null;
  private writeTimer: NodeJS.Timeout | null = null;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private writes = 0;

  private remote = new Map<string, RemoteNode>();
  private pending: ReadScope | null = null;
  private reading: Promise<void> | null = null;
  private readTimer: NodeJS.Timeout | null = null;
  private lastFullReadAt = Number.NEGATIVE_INFINITY;
  private reads = 0;

  private readonly listener: PgListener;

  private union: StaffIdentity[] = [];
  private unionKey = "[]";
  private lastError: string | null = null;

  constructor(o: StaffPresenceOptions) {
    super();
    this.pool = o.pool;
    this.nodeId = o.nodeId;
    this.leaseMs = o.leaseMs ?? 10_000;
    this.coalesceMs = o.coalesceMs ?? 250;
    this.pollMs = o.pollMs ?? this.leaseMs;
    this.retryMs = o.retryMs ?? 1000;
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.now = o.monotonic ?? (() => performance.now());
    if (
      !(this.leaseMs > 0 && this.coalesceMs >= 0 && this.pollMs > 0 && this.retryMs > 0 && this.timeoutMs > 0)
    )
      throw new RangeError(
        "leaseMs, pollMs, retryMs and timeoutMs must be positive, coalesceMs not negative",
      );
    this.listener = new PgListener({
      pool: this.pool,
      channels: [STAFF_PRESENCE_CHANNEL, LEASES_CHANNEL],
      reconnectMs: this.retryMs,
      timeoutMs: this.timeoutMs,
      onNotification: (msg) => {
        if (msg.channel === STAFF_PRESENCE_CHANNEL && msg.payload && msg.payload !== this.nodeId)
          void this.requestRead(new Set([msg.payload]));
        else if (msg.channel === LEASES_CHANNEL) void this.requestRead(new Set());
      },
      // Listening again: what was written while away is read now, what is written from here on is
      // announced. The first LISTEN's read is start()'s, after the node's own write.
      onListening: (reconnected) => {
        if (reconnected) void this.requestRead("all");
      },
      onError: (err) => this.fail(err),
      onDropped: (err) => this.fail(err ?? new Error("staff presence: the listening connection ended")),
    });
  }

  /**
   * Listens, replaces the node's rows with its current set, and reads every live node's rows before
   * resolving. Throws (and is stopped again) when PostgreSQL cannot be reached.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.listener.start();
      if (!this.listener.client) throw new Error("staff presence stopped while starting");
      this.written = null;
      await this.runWrite();
      if (this.written === null) throw new Error(this.lastError ?? "staff presence: the first write failed");
      const readsBefore = this.reads;
      await this.requestRead("all");
      if (this.reads === readsBefore)
        throw new Error(this.lastError ?? "staff presence: the first read failed");
    } catch (err) {
      this.halt();
      await this.settle();
      throw err;
    }
  }

  /** Deletes the node's rows (and tells the others); with PostgreSQL unreachable, they stop counting with its heartbeat. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.halt();
    await this.settle();
    try {
      await session(this.pool, this.timeoutMs, async (c) => {
        await c.query(LEAVE, [this.nodeId]);
      });
    } catch (err) {
      this.fail(err as Error);
    }
    this.written = null;
    this.remote.clear();
    this.recompute(false);
  }

  /**
   * This node's signed-in sockets, one identity each (a person with two consoles here is given
   * twice): call it whenever a socket signs in or closes. Written coalesced (header).
   */
  publish(sockets: readonly StaffIdentity[]): void {
    const next = new Map<string, Present>();
    for (const s of sockets) {
      const had = next.get(s.id);
      // The latest socket's identity, as the staff server's own `connected()` keeps it.
      next.set(s.id, { identity: copyIdentity(s), sockets: (had?.sockets ?? 0) + 1 });
    }
    this.local = next;
    this.recompute(true);
    this.scheduleWrite();
  }

  /** Everyone connected to this node or to any other live node, each person once. */
  connected(): StaffIdentity[] {
    return this.union.map(copyIdentity);
  }

  status(): StaffPresenceStatus {
    return {
      nodeId: this.nodeId,
      running: this.running,
      listening: this.listener.status().connected,
      liveNodes: [...this.remote.keys()].sort(),
      connected: this.union.length,
      writes: this.writes,
      reads: this.reads,
      lastError: this.lastError,
    };
  }

  private halt(): void {
    this.running = false;
    for (const t of [this.writeTimer, this.readTimer]) if (t) clearTimeout(t);
    this.writeTimer = this.readTimer = null;
    this.listener.stop();
  }

  private async settle(): Promise<void> {
    await this.writing?.catch(() => undefined);
    await this.reading?.catch(() => undefined);
  }

  // --- writing ---------------------------------------------------------------------------------

  /** Whether PostgreSQL may differ from the node's current set. */
  private unwritten(): boolean {
    const w = this.written;
    if (w === null) return true;
    if (w.size !== this.local.size) return true;
    for (const [id, p] of this.local) {
      const had = w.get(id);
      if (!had || had.sockets !== p.sockets || !sameIdentity(had.identity, p.identity)) return true;
    }
    return false;
  }

  /** Now if the node has been quiet for coalesceMs, else when it has; never two writes at once. */
  private scheduleWrite(delay?: number): void {
    if (!this.running || this.writeTimer || this.writing || !this.unwritten()) return;
    const wait = delay ?? Math.max(0, this.lastWriteAt + this.coalesceMs - this.now());
    this.writeTimer = setTimeout(() => {
      this.writeTimer = null;
      void this.runWrite();
    }, wait);
  }

  private runWrite(): Promise<void> {
    if (this.writing) return this.writing;
    let failed = false;
    this.writing = this.writeOnce()
      .catch((err: Error) => {
        failed = true;
        this.written = null;
        this.fail(err);
      })
      .finally(() => {
        this.writing = null;
        this.scheduleWrite(failed ? this.retryMs : undefined);
      });
    return this.writing;
  }

  private async writeOnce(): Promise<void> {
    if (!this.unwritten()) return;
    const target = this.local;
    const base = this.written;
    const gone: string[] = [];
    const put: Present[] = [];
    for (const [id, p] of target) {
      const had = base?.get(id);
      if (!had || had.sockets !== p.sockets || !sameIdentity(had.identity, p.identity)) put.push(p);
    }
    if (base) for (const id of base.keys()) if (!target.has(id)) gone.push(id);
    const rows = put.map((p) => ({
      staff_id: p.identity.id,
      name: p.identity.name,
      role: p.identity.role,
      sites: p.identity.sites,
      units: p.identity.units,
      sockets: p.sockets,
    }));
    this.lastWriteAt = this.now();
    this.writes++;
    await session(this.pool, this.timeoutMs, (c) =>
      c.query(WRITE, [this.nodeId, gone, base === null, [...target.keys()], JSON.stringify(rows)]),
    );
    this.written = target;
  }

  // --- reading ---------------------------------------------------------------------------------

  /** Reads are one at a time; what is asked for during one is read right after it, merged. */
  private requestRead(scope: ReadScope): Promise<void> {
    if (this.pending === "all" || scope === "all") this.pending = "all";
    else this.pending = new Set([...(this.pending ?? []), ...scope]);
    if (this.reading) return this.reading;
    if (this.readTimer) clearTimeout(this.readTimer);
    this.readTimer = null;
    let failed = false;
    this.reading = (async () => {
      while (this.running && this.pending !== null) {
        const scope = this.pending;
        this.pending = null;
        try {
          await this.readOnce(scope);
        } catch (err) {
          // Asked for again at the retry, together with whatever came meanwhile.
          this.pending =
            scope === "all" || this.pending === "all" ? "all" : new Set([...scope, ...(this.pending ?? [])]);
          failed = true;
          this.fail(err as Error);
          return;
        }
      }
    })().finally(() => {
      this.reading = null;
      this.scheduleRead(failed);
    });
    return this.reading;
  }

  /** The next read: the poll, or sooner when a live node's heartbeat runs out first. */
  private scheduleRead(failed: boolean): void {
    if (!this.running) return;
    if (this.readTimer) clearTimeout(this.readTimer);
    const now = this.now();
    let wait = failed ? this.retryMs : Math.max(0, this.lastFullReadAt + this.pollMs - now);
    if (!failed)
      for (const n of this.remote.values()) wait = Math.min(wait, Math.max(5, n.deadline - now + 1));
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      const full = failed || this.now() >= this.lastFullReadAt + this.pollMs;
      void this.requestRead(full ? "all" : new Set());
    }, wait);
  }

  private async readOnce(scope: ReadScope): Promise<void> {
    const all = scope === "all";
    const named = all ? [] : [...scope];
    const known = [...this.remote.keys()];
    const writesBefore = this.writes;
    const quietBefore = this.writing === null;
    const sent = this.now();
    const { rows } = await session(this.pool, this.timeoutMs, (c) =>
      c.query<PresenceRow>(READ, [this.leaseMs, this.nodeId, all, named, known]),
    );
    this.reads++;
    if (all) this.lastFullReadAt = sent;
    const fetched = (node: string) => all || (scope as Set<string>).has(node) || !this.remote.has(node);
    const next = new Map<string, RemoteNode>();
    const own: PresenceRow[] = [];
    for (const row of rows) {
      if (row.node_id === this.nodeId) {
        if (row.staff_id !== null) own.push(row);
        continue;
      }
      let node = next.get(row.node_id);
      if (!node) {
        const take = fetched(row.node_id);
        node = {
          deadline: sent + (row.valid_ms ?? 0),
          staff: take ? new Map() : (this.remote.get(row.node_id)?.staff ?? new Map()),
        };
        next.set(row.node_id, node);
      }
      if (row.staff_id !== null && fetched(row.node_id))
        node.staff.set(row.staff_id, {
          identity: { id: row.staff_id, name: row.name, role: row.role, sites: row.sites, units: row.units },
          updatedMs: row.updated_ms,
        });
    }
    this.remote = next;
    if (all && quietBefore && this.writing === null && this.writes === writesBefore) this.verifyOwn(own);
    this.recompute(true);
  }

  /**
   * The node's own rows as a full read found them, with no write of its own in between: if they are
   * not what its last write left (a timed-out write that committed late, rows deleted by hand), the
   * next write replaces them all.
   */
  private verifyOwn(rows: PresenceRow[]): void {
    const w = this.written;
    if (w === null) return;
    const ok =
      rows.length === w.size &&
      rows.every((r) => {
        const p = w.get(r.staff_id!);
        return (
          p !== undefined &&
          p.sockets === r.sockets &&
          sameIdentity(p.identity, {
            id: r.staff_id!,
            name: r.name,
            role: r.role,
            sites: r.sites,
            units: r.units,
          })
        );
      });
    if (ok) return;
    this.written = null;
    this.scheduleWrite();
  }

  // --- the copy --------------------------------------------------------------------------------

  private recompute(tell: boolean): void {
    const merged = new Map<string, Remote>();
    for (const node of this.remote.values())
      for (const [id, r] of node.staff) {
        const had = merged.get(id);
        if (!had || r.updatedMs > had.updatedMs) merged.set(id, r);
      }
    for (const [id, p] of this.local)
      merged.set(id, { identity: p.identity, updatedMs: Number.POSITIVE_INFINITY });
    const union = [...merged.values()]
      .map((r) => r.identity)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const key = JSON.stringify(union);
    this.union = union;
    if (key === this.unionKey) return;
    this.unionKey = key;
    if (!tell) return;
    try {
      this.emit("changed", this.connected());
    } catch (err) {
      // A listener that throws must not break the read or publish that found the change.
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    this.lastError = err.message;
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }
}
