/**
 * PostgreSQL's side of the replicated tables (../replicated-tables.ts): PostgreSQL's copy of each
 * table is the order of record, and `replication_log` is every change to it, in commit order, which
 * every node applies to its own SQLite (migration 9).
 *
 * Shipping (`shipChanges`): a node's outbox rows, in its local order, in one transaction that first
 * locks the log's single head row. Each change is done to PostgreSQL's table (an upsert of the
 * replicated columns, a delete, or for an `offer` an insert where the key is absent), and what
 * PostgreSQL then holds for the key is appended to the log, at the next positions, with a NOTIFY.
 * Holding the head row from the first statement serialises shippers, so the order of positions is
 * the order in which PostgreSQL's copy changed (change-feed.ts's header: a position drawn under a
 * row lock held to the commit is never seen out of order, and a rollback gives it back). The
 * volume (registry and staff changes by people) makes one lock for the cluster cost nothing.
 *
 * Convergence: every node applies every entry, its own included, in position order, each entry
 * being PostgreSQL's row after the change, so every node ends with PostgreSQL's rows: for one key,
 * the change that committed last wins (a node's own write is visible locally at once, and again in
 * that order).
 *
 * Exactly once: `replication_origins` holds, per origin (a random id of the SQLite file, not the
 * node id, so a replaced file starts afresh), the last outbox id shipped, written in the same
 * transaction. A node that crashed after the commit and before deleting its outbox rows ships them
 * again, and they are skipped: an old value never overwrites a newer one from another node.
 *
 * Parents: a push subscription whose staff token is absent in PostgreSQL is not written; the log
 * then says what PostgreSQL holds (a delete when it has no row), so no node keeps it and no node's
 * follower waits on it.
 */
import type pg from "pg";
import { z } from "zod";
import {
  type AppliedChange,
  type OutboxChange,
  REPLICATED_TABLES,
  type ReplicatedTable,
  replicatedTable,
} from "../replicated-tables.js";
import type { PgMigration } from "./migrate.js";
import { NUMBERS } from "./partition-schema.js";
import type { PartitionedLog } from "./partitioned-log.js";

export const REPLICATION_MIGRATION: PgMigration = {
  version: 9,
  name: "replicated tables",
  sql: `
    -- One row: the log is one sequence (partition 0), in the shape partitioned-log.ts reads.
    CREATE TABLE replication_heads (
      partition INTEGER PRIMARY KEY CHECK (partition = 0),
      head BIGINT NOT NULL CHECK (head >= 0),
      pruned_through BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO replication_heads (partition, head) VALUES (0, 0);
    CREATE TABLE replication_log (
      partition INTEGER NOT NULL DEFAULT 0 CHECK (partition = 0),
      position BIGINT NOT NULL CHECK (position > 0),
      origin TEXT NOT NULL,                   -- the SQLite file the change came from
      node_id TEXT NOT NULL,
      tbl TEXT NOT NULL,
      key TEXT NOT NULL,
      op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
      row_json TEXT,                          -- PostgreSQL's row after the change (replicated columns)
      written_at BIGINT NOT NULL,             -- when the origin wrote it, its clock
      appended_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (partition, position)
    );
    CREATE INDEX replication_log_appended_at ON replication_log (appended_at);
    CREATE TABLE replication_origins (
      origin TEXT PRIMARY KEY,
      node_id TEXT NOT NULL,
      shipped_through BIGINT NOT NULL,        -- the origin's last outbox id in the log
      updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- Values every node must agree on, first come first kept (the staff token key's fingerprint).
    CREATE TABLE cluster_agreements (
      name TEXT PRIMARY KEY,
      value TEXT NOT NULL,
      node_id TEXT NOT NULL,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
  `,
};

export const REPLICATION_CHANNEL = "ata_replication";

/** One entry of the shared log. */
export interface ReplicatedChange extends AppliedChange {
  partition: number;
  position: number;
  origin: string;
  nodeId: string;
}

const LogRow = z.object({
  origin: z.string(),
  node_id: z.string(),
  tbl: z.string(),
  key: z.string(),
  op: z.enum(["upsert", "delete"]),
  row_json: z.string().nullable(),
});

export const REPLICATION_LOG: PartitionedLog<ReplicatedChange> = {
  table: "replication_log",
  heads: "replication_heads",
  channel: REPLICATION_CHANNEL,
  columns: ["origin", "node_id", "tbl", "key", "op", "row_json"],
  decode(raw, partition, position) {
    const r = LogRow.parse(raw);
    replicatedTable(r.tbl);
    return {
      partition,
      position,
      origin: r.origin,
      nodeId: r.node_id,
      tbl: r.tbl,
      key: r.key,
      op: r.op,
      row: r.row_json,
    };
  },
  olderThan: "appended_at < now() - $1::bigint * interval '1 millisecond'",
};

/** PostgreSQL's statements for one table. */
function sqlOf(t: ReplicatedTable) {
  const cols = t.columns.join(", ");
  const rest = t.columns.filter((c) => c !== t.key);
  const parent = t.parent
    ? `WHERE EXISTS (SELECT 1 FROM ${t.parent.table} AS p WHERE p.${t.parent.key} = r.${t.parent.column})`
    : "";
  const insert = `INSERT INTO ${t.name} (${cols}) SELECT ${cols} FROM jsonb_populate_record(NULL::${t.name}, $1::jsonb) AS r ${parent}`;
  return {
    upsert: `${insert} ON CONFLICT (${t.key}) DO UPDATE SET ${rest.map((c) => `${c} = EXCLUDED.${c}`).join(", ")}`,
    offer: `${insert} ON CONFLICT DO NOTHING`,
    // Another key holding a unique value this row brings gives way (replicated-tables.ts `unique`).
    giveWay: t.unique.map(
      (u) =>
        `DELETE FROM ${t.name} WHERE ${u} = (jsonb_populate_record(NULL::${t.name}, $1::jsonb)).${u} AND ${t.key} <> $2 RETURNING ${t.key} AS key`,
    ),
    remove: `DELETE FROM ${t.name} WHERE ${t.key} = $1`,
    read: `SELECT json_build_object(${t.columns.map((c) => `'${c}', ${c}`).join(", ")})::text AS row FROM ${t.name}`,
  };
}
const SQL = new Map(REPLICATED_TABLES.map((t) => [t.name, sqlOf(t)]));
const sql = (t: ReplicatedTable) => SQL.get(t.name)!;

export interface Shipped {
  /** The last outbox id now in PostgreSQL (shipped now or before). */
  through: number;
  /** Log entries appended. */
  appended: number;
  /** Outbox changes skipped: PostgreSQL had them already (a resend after a crash). */
  skipped: number;
  /** Changes PostgreSQL refused (a data or constraint error): dropped, not retried. */
  rejected: { change: OutboxChange; error: string }[];
  head: number;
}

interface Entry {
  tbl: string;
  key: string;
  op: "upsert" | "delete";
  row: string | null;
  at: number;
}

/** One outbox change done to PostgreSQL's table: the log entries it makes. */
async function shipOne(client: pg.PoolClient, c: OutboxChange): Promise<Entry[]> {
  const t = replicatedTable(c.tbl);
  const s = sql(t);
  if (c.op === "delete" || c.row === null) {
    await client.query(s.remove, [c.key]);
    return [{ tbl: t.name, key: c.key, op: "delete", row: null, at: c.at }];
  }
  const out: Entry[] = [];
  if (c.op !== "offer")
    for (const g of s.giveWay) {
      const { rows } = await client.query<{ key: string }>(g, [c.row, c.key]);
      for (const r of rows) out.push({ tbl: t.name, key: r.key, op: "delete", row: null, at: c.at });
    }
  await client.query(c.op === "offer" ? s.offer : s.upsert, [c.row]);
  const now = await client.query<{ row: string }>(`${s.read} WHERE ${t.key} = $1`, [c.key]);
  const row = now.rows[0]?.row ?? null;
  // What PostgreSQL holds now: for an offer of a key it had, or a subscription whose token it lacks,
  // that is not what was sent.
  out.push({ tbl: t.name, key: c.key, op: row === null ? "delete" : "upsert", row, at: c.at });
  return out;
}

/** Ships outbox changes of one origin, in their order, in one transaction (header). */
export async function shipChanges(
  pool: pg.Pool,
  o: { origin: string; nodeId: string; changes: readonly OutboxChange[] },
): Promise<Shipped> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    const head = Number(
      (
        await client.query<{ head: string }>(
          "SELECT head FROM replication_heads WHERE partition = 0 FOR UPDATE",
        )
      ).rows[0]?.head ?? Number.NaN,
    );
    if (!Number.isFinite(head)) throw new Error("replication_heads has no row: migration 9 missing");
    const had = Number(
      (
        await client.query<{ shipped_through: string }>(
          "SELECT shipped_through FROM replication_origins WHERE origin = $1",
          [o.origin],
        )
      ).rows[0]?.shipped_through ?? 0,
    );
    const entries: Entry[] = [];
    let through = had;
    let skipped = 0;
    const rejected: Shipped["rejected"] = [];
    for (const c of o.changes) {
      if (c.id <= had) {
        skipped++;
        continue;
      }
      through = Math.max(through, c.id);
      await client.query("SAVEPOINT change");
      try {
        entries.push(...(await shipOne(client, c)));
        await client.query("RELEASE SAVEPOINT change");
      } catch (err) {
        // A change PostgreSQL can never take (a value its column refuses) would stop this node's
        // replication for good if retried: it is dropped, said loudly. Anything else (the
        // connection, a timeout) fails the whole transaction, which is tried again.
        const code = (err as { code?: string }).code ?? "";
        if (!/^2[23]/.test(code)) throw err;
        await client.query("ROLLBACK TO SAVEPOINT change");
        rejected.push({ change: c, error: (err as Error).message });
      }
    }
    if (entries.length > 0) {
      await client.query(
        `INSERT INTO replication_log (position, origin, node_id, tbl, key, op, row_json, written_at)
         SELECT $1::bigint + e.ord, $2, $3, e.tbl, e.key, e.op, e.row_json, e.at
           FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
                WITH ORDINALITY AS e(tbl, key, op, row_json, at, ord)`,
        [
          head,
          o.origin,
          o.nodeId,
          entries.map((e) => e.tbl),
          entries.map((e) => e.key),
          entries.map((e) => e.op),
          entries.map((e) => e.row),
          entries.map((e) => e.at),
        ],
      );
      await client.query("UPDATE replication_heads SET head = $1 WHERE partition = 0", [
        head + entries.length,
      ]);
      await client.query("SELECT pg_notify($1, $2)", [REPLICATION_CHANNEL, `0:${head + entries.length}`]);
    }
    if (through > had)
      await client.query(
        `INSERT INTO replication_origins (origin, node_id, shipped_through) VALUES ($1, $2, $3)
         ON CONFLICT (origin) DO UPDATE SET node_id = EXCLUDED.node_id,
           shipped_through = EXCLUDED.shipped_through, updated_at = now()`,
        [o.origin, o.nodeId, through],
      );
    await client.query("COMMIT");
    return { through, appended: entries.length, skipped, rejected, head: head + entries.length };
  } catch (err) {
    broken = true;
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release(broken);
  }
}

/** The last outbox id of this origin PostgreSQL has (0: none). */
export async function shippedThrough(pool: pg.Pool, origin: string): Promise<number> {
  const { rows } = await pool.query<{ shipped_through: string }>(
    "SELECT shipped_through FROM replication_origins WHERE origin = $1",
    [origin],
  );
  return Number(rows[0]?.shipped_through ?? 0);
}

export interface Snapshot {
  /** The log's head in the same snapshot as the rows. */
  head: number;
  prunedThrough: number;
  /** Table -> its rows, each the replicated columns as a JSON object. */
  rows: Map<string, string[]>;
}

/** Every replicated table's rows and the log's head, in one snapshot. */
export async function readSnapshot(pool: pg.Pool): Promise<Snapshot> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const { rows: heads } = await client.query({
      text: "SELECT head, pruned_through FROM replication_heads WHERE partition = 0",
      types: NUMBERS,
    });
    const h = z.object({ head: z.number(), pruned_through: z.number() }).parse(heads[0]);
    const rows = new Map<string, string[]>();
    for (const t of REPLICATED_TABLES) {
      const { rows: r } = await client.query<{ row: string }>(sql(t).read);
      rows.set(
        t.name,
        r.map((x) => x.row),
      );
    }
    await client.query("COMMIT");
    return { head: h.head, prunedThrough: h.pruned_through, rows };
  } catch (err) {
    broken = true;
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Keys every node must share (push_keys: the VAPID pair the phones subscribed against, the secret
 * that signs notification capabilities): each name this node has, or can make, is inserted where
 * PostgreSQL has none, and PostgreSQL's are returned. Two nodes starting at once insert one each;
 * the second insert waits for the first's commit and does nothing, so both read the same winner.
 */
export async function agreeKeys(
  pool: pg.Pool,
  mine: ReadonlyMap<string, { value: string; createdAt: number }>,
  make: Readonly<Record<string, () => Promise<string>>>,
): Promise<Map<string, { value: string; createdAt: number }>> {
  const read = async () => {
    const { rows } = await pool.query({
      text: "SELECT name, value, created_at FROM push_keys",
      types: NUMBERS,
    });
    return new Map(
      rows.map((r) => {
        const k = z.object({ name: z.string(), value: z.string(), created_at: z.number() }).parse(r);
        return [k.name, { value: k.value, createdAt: k.created_at }] as const;
      }),
    );
  };
  const theirs = await read();
  const offers = new Map(mine);
  for (const [name, fn] of Object.entries(make))
    if (!theirs.has(name) && !offers.has(name))
      offers.set(name, { value: await fn(), createdAt: Date.now() });
  const missing = [...offers].filter(([name]) => !theirs.has(name));
  if (missing.length === 0) return theirs;
  for (const [name, k] of missing)
    await pool.query(
      "INSERT INTO push_keys (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
      [name, k.value, k.createdAt],
    );
  return read();
}

/**
 * A value every node must hold alike (the fingerprint of the staff token key): the first node's is
 * kept; returns the kept value and the node that put it there.
 */
export async function agree(
  pool: pg.Pool,
  name: string,
  value: string,
  nodeId: string,
): Promise<{ value: string; nodeId: string }> {
  await pool.query(
    "INSERT INTO cluster_agreements (name, value, node_id) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    [name, value, nodeId],
  );
  const { rows } = await pool.query<{ value: string; node_id: string }>(
    "SELECT value, node_id FROM cluster_agreements WHERE name = $1",
    [name],
  );
  const r = rows[0];
  if (!r) throw new Error(`cluster_agreements lost "${name}"`);
  return { value: r.value, nodeId: r.node_id };
}
