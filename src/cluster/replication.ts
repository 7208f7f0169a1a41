/**
 * `TableReplication`: a cluster node's registry, staff tokens, enrolment codes and push
 * subscriptions kept alike on every node. PostgreSQL's copy of each table is the order of record;
 * each node's SQLite is a replica that also takes local writes (the HTTP API, the `ata` CLI).
 *
 * - Capture: triggers put every local change in the SQLite outbox (replicated-tables.ts).
 * - Ship: the outbox, in local order, to PostgreSQL's tables and the shared log, one transaction
 *   per batch, retried with a doubling wait (pg/replication-log.ts `shipChanges`); the outbox is
 *   read every `pollMs` (writers in other processes cannot tell this one), and its rows deleted
 *   once committed.
 * - Follow: the shared log from this node's cursor (`cursors`, name `pg-replication`), LISTEN plus a
 *   poll (partitioned-log.ts `LogFollower`), every entry applied in log order, its own included, in
 *   one SQLite transaction with the cursor; then `applied` names the tables written, so that the
 *   caches above follow (the registry reloads and disconnects a disabled device; token checks and
 *   push subscriptions are read per query).
 * - Start, before the node serves: the triggers made, the staff token key checked against the
 *   cluster's, the outbox shipped, the push keys agreed (pg/replication-log.ts `agreeKeys`), and
 *   every replicated table copied from one PostgreSQL snapshot with the cursor at that snapshot's
 *   head. The same full copy is taken whenever the cursor is behind the log's pruned front (a node
 *   away longer than the retention) or past its head (a replaced database).
 * - A failed apply (the file busy beyond its timeout, a full disk) restarts the follower from the
 *   SQLite cursor, which moved only with what committed.
 */
import { EventEmitter } from "node:events";
import pg from "pg";
import type { Logger } from "../log.js";
import { type Db, getCursor } from "../store/db.js";
import { migratePg } from "./pg/migrate.js";
import { LogFollower, pruneLog } from "./pg/partitioned-log.js";
import {
  agree,
  agreeKeys,
  REPLICATION_LOG,
  type ReplicatedChange,
  readSnapshot,
  shipChanges,
  shippedThrough,
} from "./pg/replication-log.js";
import {
  applyChanges,
  applySnapshot,
  forgetOutbox,
  installReplication,
  outboxBacklog,
  outboxSequence,
  readOutbox,
  renewOrigin,
} from "./replicated-tables.js";

export const REPLICATION_CURSOR = "pg-replication";
/**
 * Log entries older than this are pruned. A node's cursor is not consulted: a node further behind
 * (stopped, or cut off from PostgreSQL, for longer) takes the full copy again when it comes back.
 */
export const REPLICATION_RETENTION_MS = 24 * 3_600_000;

export interface TableReplicationOptions {
  db: Db;
  /** PostgreSQL's URL (cluster.postgres.url): the replication keeps a small pool of its own. */
  url: string;
  nodeId: string;
  log: Logger;
  /** push_keys this node would make when the cluster has none yet (push configured, no VAPID given). */
  keyMakers?: Readonly<Record<string, () => Promise<string>>>;
  /** tokens.ts `tokenKeyFingerprint` of this node's staff token key; checked against the cluster's. */
  tokenKeyFingerprint?: string;
  /** How often the outbox is read, and the log polled without a notification (default 200 ms, 5 s). */
  outboxPollMs?: number;
  followerPollMs?: number;
  minRetryMs?: number;
  maxRetryMs?: number;
  pruneEveryMs?: number;
}

export interface TableReplicationEvents {
  /** Changes from the shared log (or a full copy) were written to SQLite: these tables. */
  applied: [tables: ReadonlySet<string>];
}

export interface TableReplicationStatus {
  /** Local changes not yet in PostgreSQL. */
  outbox: number;
  /** The shared log's position this node has applied. */
  position: number;
  shipped: number;
  applied: number;
  fullCopies: number;
  lastError: string | null;
  following: boolean;
}

/** Thrown at start when this node's staff token key is not the cluster's. */
export class TokenKeyMismatchError extends Error {}

export class TableReplication extends EventEmitter<TableReplicationEvents> {
  readonly pool: pg.Pool;
  private readonly log: Logger;
  private follower: LogFollower<ReplicatedChange>;
  private origin = "";
  private running = false;
  private ended = false;
  private shipping: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retryMs: number;
  private outboxTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  /** False while the follower is being restarted: what it delivers meanwhile is read again after. */
  private accepting = false;
  private recovering: Promise<void> | null = null;
  private readonly stats = { shipped: 0, applied: 0, fullCopies: 0, lastError: null as string | null };

  constructor(private readonly o: TableReplicationOptions) {
    super();
    this.log = o.log.child({ component: "replication" });
    this.pool = new pg.Pool({
      connectionString: o.url,
      max: 3,
      application_name: `ata ${o.nodeId} replication`,
    });
    this.pool.on("error", () => undefined);
    this.retryMs = o.minRetryMs ?? 200;
    this.follower = this.newFollower();
  }

  private newFollower(): LogFollower<ReplicatedChange> {
    return new LogFollower(
      REPLICATION_LOG,
      {
        pool: this.pool,
        partitions: "all",
        onGap: "skip",
        ...(this.o.followerPollMs ? { pollMs: this.o.followerPollMs } : {}),
      },
      {
        rows: (rows) => this.apply(rows),
        gap: (_p, reason) => {
          this.log.warn(
            { reason },
            "the shared change log no longer has this node's next changes; copying every table again",
          );
          void this.recover();
        },
        error: (err) => {
          this.stats.lastError = err.message;
          this.log.warn({ err: err.message }, "replication follower");
        },
      },
    );
  }

  /**
   * Everything above, in that order; resolves once this node's SQLite holds the cluster's rows.
   * Throws when PostgreSQL cannot be reached, or the staff token key is not the cluster's.
   */
  async start(): Promise<void> {
    try {
      await this.begin();
    } catch (err) {
      this.running = false;
      throw err;
    }
  }

  private async begin(): Promise<void> {
    await migratePg(this.pool);
    if (this.o.tokenKeyFingerprint) {
      const kept = await agree(this.pool, "staff-token-key", this.o.tokenKeyFingerprint, this.o.nodeId);
      if (kept.value !== this.o.tokenKeyFingerprint)
        throw new TokenKeyMismatchError(
          `this node's staff token key is not the one node "${kept.nodeId}" uses: staff tokens made on ` +
            "other nodes would not verify here, nor this node's there. Give every node the same ATA_TOKEN_KEY.",
        );
    }
    const { joined, origin } = installReplication(this.o.db);
    this.origin = origin;
    if ((await shippedThrough(this.pool, origin)) > outboxSequence(this.o.db)) {
      this.origin = renewOrigin(this.o.db);
      this.log.warn(
        "this database counts fewer changes than it once shipped (restored from a backup?): it ships under a new origin id",
      );
    }
    if (joined) this.log.info("this database joins the cluster's replicated tables: its rows are offered");
    this.running = true;
    // What this node (or the CLI) wrote while it was stopped goes first, so that the copy below
    // already has it.
    await this.shipAll();
    await this.agreePushKeys();
    await this.fullCopy();
    this.accepting = true;
    await this.follower.start(async () =>
      this.follower.setPosition(0, getCursor(this.o.db, REPLICATION_CURSOR)),
    );
    this.outboxTimer = setInterval(() => void this.pump(), this.o.outboxPollMs ?? 200);
    this.outboxTimer.unref();
    const pruneEvery = this.o.pruneEveryMs ?? 10 * 60_000;
    if (pruneEvery > 0) {
      this.pruneTimer = setInterval(() => void this.prune(), pruneEvery);
      this.pruneTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.accepting = false;
    if (this.outboxTimer) clearInterval(this.outboxTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.retry) clearTimeout(this.retry);
    this.outboxTimer = this.pruneTimer = this.retry = null;
    await this.shipping?.catch(() => undefined);
    await this.recovering?.catch(() => undefined);
    await this.follower.stop();
    if (!this.ended) {
      this.ended = true;
      await this.pool.end();
    }
  }

  status(): TableReplicationStatus {
    let outbox = -1;
    try {
      outbox = outboxBacklog(this.o.db);
    } catch {
      // The database closed under a scrape.
    }
    return {
      outbox,
      position: this.o.db.open ? getCursor(this.o.db, REPLICATION_CURSOR) : -1,
      shipped: this.stats.shipped,
      applied: this.stats.applied,
      fullCopies: this.stats.fullCopies,
      lastError: this.stats.lastError,
      following: this.follower.status().connected,
    };
  }

  /** Ships what the outbox holds now (tests, and after a local write to save the poll's wait). */
  pump(): Promise<void> {
    if (!this.running || this.retry) return this.shipping ?? Promise.resolve();
    if (this.shipping) return this.shipping;
    this.shipping = this.shipAll()
      .then(() => {
        this.retryMs = this.o.minRetryMs ?? 200;
        this.stats.lastError = null;
      })
      .catch((err: Error) => {
        this.stats.lastError = err.message;
        this.log.warn({ err: err.message }, "could not ship changes to PostgreSQL; trying again");
        this.scheduleRetry();
      })
      .finally(() => {
        this.shipping = null;
      });
    return this.shipping;
  }

  /** Deletes log entries past the retention. */
  async prune(): Promise<number> {
    try {
      return await pruneLog(this.pool, REPLICATION_LOG, REPLICATION_RETENTION_MS);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not prune the shared change log");
      return 0;
    }
  }

  private scheduleRetry(): void {
    if (!this.running || this.retry) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.o.maxRetryMs ?? 10_000);
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.pump();
    }, wait);
    this.retry.unref();
  }

  private async shipAll(): Promise<void> {
    for (;;) {
      if (!this.running) return;
      const changes = readOutbox(this.o.db, 0, 200);
      if (changes.length === 0) return;
      const done = await shipChanges(this.pool, { origin: this.origin, nodeId: this.o.nodeId, changes });
      // Committed: what PostgreSQL has is no longer this node's to keep.
      if (this.o.db.open) forgetOutbox(this.o.db, done.through);
      this.stats.shipped += changes.length - done.skipped - done.rejected.length;
      for (const r of done.rejected)
        this.log.error(
          { table: r.change.tbl, key: r.change.key, op: r.change.op, err: r.error },
          "PostgreSQL refused a replicated change; it is dropped",
        );
    }
  }

  /** The push keys every node uses: this node's offered, the cluster's kept (pg/replication-log.ts). */
  private async agreePushKeys(): Promise<void> {
    const db = this.o.db;
    const mine = new Map(
      (
        db.prepare("SELECT name, value, created_at FROM push_keys").all() as {
          name: string;
          value: string;
          created_at: number;
        }[]
      ).map((r) => [r.name, { value: r.value, createdAt: r.created_at }]),
    );
    const kept = await agreeKeys(this.pool, mine, this.o.keyMakers ?? {});
    const put = db.prepare(
      "INSERT INTO push_keys (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
    );
    db.transaction(() => {
      for (const [name, k] of kept) {
        const had = mine.get(name);
        if (had?.value === k.value) continue;
        if (had)
          this.log.warn({ name }, "this node's push key differs from the cluster's; the cluster's is used");
        put.run(name, k.value, k.createdAt);
      }
    })();
  }

  /** Every replicated table from one PostgreSQL snapshot, the cursor at its head. */
  private async fullCopy(): Promise<void> {
    const snap = await readSnapshot(this.pool);
    applySnapshot(this.o.db, snap.rows, { name: REPLICATION_CURSOR, position: snap.head });
    this.stats.fullCopies++;
    this.emit("applied", new Set(snap.rows.keys()));
  }

  private apply(rows: ReplicatedChange[]): void {
    if (!this.accepting || !this.o.db.open || rows.length === 0) return;
    const last = rows[rows.length - 1]!.position;
    let tables: Set<string>;
    try {
      tables = applyChanges(this.o.db, rows, { name: REPLICATION_CURSOR, position: last });
    } catch (err) {
      this.stats.lastError = (err as Error).message;
      this.log.error(
        { err: (err as Error).message },
        "could not apply replicated changes; reading them again",
      );
      void this.recover();
      return;
    }
    this.stats.applied += rows.length;
    this.emit("applied", tables);
  }

  /**
   * The follower stopped and started again from the SQLite cursor, after a full copy when the log
   * cannot serve it. One at a time; retried after a second while it fails.
   */
  private recover(): Promise<void> {
    if (this.recovering) return this.recovering;
    this.accepting = false;
    this.recovering = (async () => {
      await this.follower.stop();
      while (this.running) {
        try {
          const { rows } = await this.pool.query<{ head: string; pruned_through: string }>(
            "SELECT head, pruned_through FROM replication_heads WHERE partition = 0",
          );
          const head = Number(rows[0]?.head ?? 0);
          const cut = Number(rows[0]?.pruned_through ?? 0);
          const at = getCursor(this.o.db, REPLICATION_CURSOR);
          if (at < cut || at > head) await this.fullCopy();
          this.follower = this.newFollower();
          this.accepting = true;
          await this.follower.start(async () =>
            this.follower.setPosition(0, getCursor(this.o.db, REPLICATION_CURSOR)),
          );
          return;
        } catch (err) {
          this.accepting = false;
          this.stats.lastError = (err as Error).message;
          this.log.warn({ err: (err as Error).message }, "could not restart following the shared change log");
          await new Promise((r) => setTimeout(r, 1000).unref());
        }
      }
    })().finally(() => {
      this.recovering = null;
    });
    return this.recovering;
  }
}
