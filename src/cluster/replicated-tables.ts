/**
 * The tables every cluster node shares although each keeps them in its own SQLite (the registry,
 * staff tokens and enrolment codes, push subscriptions): which columns travel, and the SQLite side
 * of carrying them (the capture into an outbox, and the apply of what comes back from PostgreSQL).
 * replication.ts runs it; pg/replication-log.ts is PostgreSQL's side; docs/cluster.md says why.
 *
 * Capture: triggers on each table append every change (the table, the row's key, insert, update or
 * delete, the replicated columns as JSON, the time) to `replication_outbox` in the same transaction
 * as the change, whoever makes it: the gateway, the HTTP API, or the `ata` CLI writing the same file
 * while the gateway runs. The repositories keep their synchronous SQL and know nothing of it.
 *
 * Echo: a node applies every change of the shared log to its SQLite, its own included. Those writes
 * must not be captured again, or changes would go round for ever: the apply transaction holds a row
 * in `replication_applying`, and every trigger's WHEN clause says `NOT EXISTS` of it. The row is
 * inserted and deleted inside that one transaction, so no other connection (the CLI) ever sees it.
 *
 * Cost: the triggers exist only on a cluster node's file (`installReplication` at each start of one,
 * dropped and made again so they always match this code); a single process drops them
 * (`uninstallReplication`), so it pays no outbox write per change. An update that changes no
 * replicated column (a token's last use, a subscription's counters, a seed written again with the
 * same values) is not captured at all.
 */
import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import type { Db } from "../store/db.js";

export interface ReplicatedTable {
  name: "residents" | "devices" | "staff_tokens" | "staff_enrolments" | "push_subscriptions";
  /** The primary key (one TEXT column in each of these tables). */
  key: string;
  /** The columns that travel, the key first. The others stay each node's own. */
  columns: readonly string[];
  /**
   * Other UNIQUE columns: a change that brings a value another key holds (the same endpoint
   * subscribed through two nodes at once) takes it over; the other row is deleted, on every node
   * alike, since each applies the changes in the same order.
   */
  unique: readonly string[];
  /** A foreign key: a row whose parent is absent is not written (it is dropped, not retried). */
  parent?: { column: string; table: string; key: string };
}

/**
 * In dependency order (a parent before the tables that name it): the order a full copy is applied in.
 * `push_keys` is not here: its rows are agreed once at start (pg/replication-log.ts `agreeKeys`).
 */
export const REPLICATED_TABLES: readonly ReplicatedTable[] = [
  // Every column: placement is what the registry is.
  { name: "residents", key: "ref", columns: ["ref", "site_id", "unit_id", "room_id", "flags"], unique: [] },
  // Every column: a disable (enabled) and a new secret (secret_hash) are what must reach every node.
  // device_state (presence, battery, last seen) is a separate table and is not replicated: each node
  // sees its own connections, and it changes with every heartbeat.
  {
    name: "devices",
    key: "id",
    columns: [
      "id",
      "profile",
      "site_id",
      "unit_id",
      "room_id",
      "resident_ref",
      "enabled",
      "secret_hash",
      "created_at",
      "updated_at",
    ],
    unique: [],
  },
  // Not last_used_at: written at most once a minute per token by whichever node the person uses,
  // for the dashboard's device list only; carrying it would be a cluster-wide write per sign-in.
  {
    name: "staff_tokens",
    key: "id",
    columns: [
      "id",
      "name",
      "role",
      "sites",
      "units",
      "token_hash",
      "created_at",
      "revoked_at",
      "person_id",
      "device_label",
    ],
    unique: ["token_hash"],
  },
  // Every column: used_at is what makes a code one-time on every node.
  {
    name: "staff_enrolments",
    key: "id",
    columns: [
      "id",
      "code_hash",
      "person_id",
      "name",
      "role",
      "sites",
      "units",
      "created_by",
      "created_at",
      "expires_at",
      "used_at",
      "token_id",
    ],
    unique: ["code_hash"],
  },
  // Not last_success_at, last_failure_at, failures: the sending node's own bookkeeping of its
  // deliveries (a push per alert would otherwise be a cluster-wide write). A subscription the push
  // service says is gone is deleted, and that delete travels.
  {
    name: "push_subscriptions",
    key: "id",
    columns: ["id", "staff_token_id", "endpoint", "p256dh", "auth", "label", "user_agent", "created_at"],
    unique: ["endpoint"],
    parent: { column: "staff_token_id", table: "staff_tokens", key: "id" },
  },
];

const BY_NAME = new Map(REPLICATED_TABLES.map((t) => [t.name, t]));

export function replicatedTable(name: string): ReplicatedTable {
  const t = BY_NAME.get(name as ReplicatedTable["name"]);
  if (!t) throw new Error(`"${name}" is not a replicated table`);
  return t;
}

/**
 * A change as the outbox holds it. `offer`: a row this database had when it joined the cluster,
 * written in PostgreSQL only where PostgreSQL has none (it never overrides the cluster's rows).
 */
export interface OutboxChange {
  id: number;
  tbl: string;
  key: string;
  op: "insert" | "update" | "delete" | "offer";
  row: string | null;
  at: number;
}

/** A change as the shared log holds it: what PostgreSQL did, which every node does after it. */
export interface AppliedChange {
  tbl: string;
  key: string;
  op: "upsert" | "delete";
  /** The replicated columns as a JSON object (upsert), null for a delete. */
  row: string | null;
}

const NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
const NOT_APPLYING = "NOT EXISTS (SELECT 1 FROM replication_applying)";

/** The replicated columns as a JSON object; `prefix` "NEW." in a trigger, "" over the table. */
function jsonRow(t: ReplicatedTable, prefix: "NEW." | ""): string {
  return `json_object(${t.columns.map((c) => `'${c}', ${prefix}${c}`).join(", ")})`;
}

function triggers(t: ReplicatedTable): string[] {
  const outbox = "INSERT INTO replication_outbox (tbl, key, op, row_json, at)";
  const changed = t.columns.map((c) => `NEW.${c} IS NOT OLD.${c}`).join(" OR ");
  return [
    `CREATE TRIGGER replicate_${t.name}_i AFTER INSERT ON ${t.name} WHEN ${NOT_APPLYING}
     BEGIN ${outbox} VALUES ('${t.name}', NEW.${t.key}, 'insert', ${jsonRow(t, "NEW.")}, ${NOW_MS}); END`,
    // UPDATE OF: an update that sets only columns that do not travel does not even run the trigger.
    `CREATE TRIGGER replicate_${t.name}_u AFTER UPDATE OF ${t.columns.join(", ")} ON ${t.name}
     WHEN ${NOT_APPLYING} AND (${changed})
     BEGIN
       ${outbox} SELECT '${t.name}', OLD.${t.key}, 'delete', NULL, ${NOW_MS} WHERE OLD.${t.key} IS NOT NEW.${t.key};
       ${outbox} VALUES ('${t.name}', NEW.${t.key}, 'update', ${jsonRow(t, "NEW.")}, ${NOW_MS});
     END`,
    `CREATE TRIGGER replicate_${t.name}_d AFTER DELETE ON ${t.name} WHEN ${NOT_APPLYING}
     BEGIN ${outbox} VALUES ('${t.name}', OLD.${t.key}, 'delete', NULL, ${NOW_MS}); END`,
  ];
}

const TRIGGER_NAMES = REPLICATED_TABLES.flatMap((t) =>
  ["i", "u", "d"].map((s) => `replicate_${t.name}_${s}`),
);

function hasOutbox(db: Db): boolean {
  return !!db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'replication_outbox'")
    .get();
}

/**
 * Makes this file a cluster node's: the outbox, the guard, this database's origin id and the
 * triggers (made again at every start). A database joining for the first time (no outbox yet)
 * offers every row it already has (`offer`), so that a node that ran alone contributes its devices
 * and tokens instead of having them deleted by the first full copy from PostgreSQL. Returns whether
 * it joined now.
 */
export function installReplication(db: Db): { joined: boolean; origin: string } {
  return db.transaction(() => {
    const joined = !hasOutbox(db);
    db.exec(`
      CREATE TABLE IF NOT EXISTS replication_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, -- local commit order; never reused, PostgreSQL skips ids it has
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        op TEXT NOT NULL,                     -- insert | update | delete | offer
        row_json TEXT,                        -- the replicated columns, NULL for a delete
        at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS replication_applying (applying INTEGER);
      CREATE TABLE IF NOT EXISTS replication_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    db.prepare("INSERT OR IGNORE INTO replication_meta (name, value) VALUES ('origin', ?)").run(
      `o_${randomBytes(8).toString("hex")}`,
    );
    // A crash cannot leave the guard's row behind (it lives inside one transaction), but a copy of
    // the file taken by hand mid-apply could: the triggers would then capture nothing.
    db.exec("DELETE FROM replication_applying");
    for (const name of TRIGGER_NAMES) db.exec(`DROP TRIGGER IF EXISTS ${name}`);
    for (const t of REPLICATED_TABLES) for (const sql of triggers(t)) db.exec(sql);
    if (joined)
      for (const t of REPLICATED_TABLES)
        db.exec(
          `INSERT INTO replication_outbox (tbl, key, op, row_json, at)
           SELECT '${t.name}', ${t.key}, 'offer', ${jsonRow(t, "")}, ${NOW_MS} FROM ${t.name}`,
        );
    const origin = (
      db.prepare("SELECT value FROM replication_meta WHERE name = 'origin'").get() as { value: string }
    ).value;
    return { joined, origin };
  })();
}

/**
 * A single process (no `cluster.postgres`): no capture, no outbox. What the outbox still held is
 * dropped with it; a later join offers every row again (installReplication).
 */
export function uninstallReplication(db: Db): void {
  if (!hasOutbox(db)) return;
  db.transaction(() => {
    for (const name of TRIGGER_NAMES) db.exec(`DROP TRIGGER IF EXISTS ${name}`);
    db.exec("DROP TABLE IF EXISTS replication_outbox");
    db.exec("DROP TABLE IF EXISTS replication_applying");
    db.exec("DROP TABLE IF EXISTS replication_meta");
  })();
}

/** The highest outbox id this file ever handed out (AUTOINCREMENT's record). */
export function outboxSequence(db: Db): number {
  const row = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'replication_outbox'").get() as
    | { seq: number }
    | undefined;
  return row?.seq ?? 0;
}

/**
 * A new origin id for this file: PostgreSQL knows the old one shipped further than this file has
 * ever counted (a backup restored), so its next outbox ids would be taken for ones already shipped.
 */
export function renewOrigin(db: Db): string {
  const origin = `o_${randomBytes(8).toString("hex")}`;
  db.prepare("UPDATE replication_meta SET value = ? WHERE name = 'origin'").run(origin);
  return origin;
}

export function readOutbox(db: Db, after: number, limit: number): OutboxChange[] {
  return (
    db
      .prepare(
        "SELECT id, tbl, key, op, row_json AS row, at FROM replication_outbox WHERE id > ? ORDER BY id LIMIT ?",
      )
      .all(after, limit) as OutboxChange[]
  ).map((r) => ({ ...r, id: Number(r.id), at: Number(r.at) }));
}

export function forgetOutbox(db: Db, through: number): void {
  db.prepare("DELETE FROM replication_outbox WHERE id <= ?").run(through);
}

export function outboxBacklog(db: Db): number {
  return (db.prepare("SELECT count(*) AS n FROM replication_outbox").get() as { n: number }).n;
}

/** Keys with a change waiting in the outbox: a full copy leaves them alone (they come back shipped). */
function pendingKeys(db: Db): Set<string> {
  const rows = db.prepare("SELECT DISTINCT tbl, key FROM replication_outbox").all() as {
    tbl: string;
    key: string;
  }[];
  return new Set(rows.map((r) => `${r.tbl}\u0000${r.key}`));
}

/** Statements of one table's apply, prepared once per connection. */
interface TableApply {
  giveWay: Database.Statement[];
  upsert: Database.Statement;
  remove: Database.Statement;
}

const prepared = new WeakMap<Db, Map<string, TableApply>>();

function tableApply(db: Db, t: ReplicatedTable): TableApply {
  let byTable = prepared.get(db);
  if (!byTable) {
    byTable = new Map();
    prepared.set(db, byTable);
  }
  const had = byTable.get(t.name);
  if (had) return had;
  const value = (c: string) => `json_extract(@row, '$.${c}')`;
  const parent = t.parent
    ? `EXISTS (SELECT 1 FROM ${t.parent.table} WHERE ${t.parent.key} = ${value(t.parent.column)})`
    : "true";
  const rest = t.columns.filter((c) => c !== t.key);
  const made: TableApply = {
    giveWay: t.unique.map((u) =>
      db.prepare(`DELETE FROM ${t.name} WHERE ${u} = ${value(u)} AND ${t.key} IS NOT @key`),
    ),
    // WHERE on the update: a row that already holds these values is not written (no trigger, no
    // registry reload).
    upsert: db.prepare(
      `INSERT INTO ${t.name} (${t.columns.join(", ")}) SELECT ${t.columns.map(value).join(", ")} WHERE ${parent}
       ON CONFLICT (${t.key}) DO UPDATE SET ${rest.map((c) => `${c} = excluded.${c}`).join(", ")}
       WHERE ${rest.map((c) => `${c} IS NOT excluded.${c}`).join(" OR ")}`,
    ),
    remove: db.prepare(`DELETE FROM ${t.name} WHERE ${t.key} = @key`),
  };
  byTable.set(t.name, made);
  return made;
}

function applyOne(db: Db, c: AppliedChange): void {
  const t = replicatedTable(c.tbl);
  const s = tableApply(db, t);
  if (c.op === "delete" || c.row === null) {
    s.remove.run({ key: c.key });
    return;
  }
  for (const g of s.giveWay) g.run({ row: c.row, key: c.key });
  s.upsert.run({ row: c.row });
}

/** Runs `fn` in one transaction in which the triggers capture nothing (header). */
function guarded<T>(db: Db, fn: () => T): T {
  return db.transaction(() => {
    db.exec("INSERT INTO replication_applying (applying) VALUES (1)");
    const out = fn();
    db.exec("DELETE FROM replication_applying");
    return out;
  })();
}

const CURSOR_SQL =
  "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";

/**
 * Applies changes of the shared log in their order and moves the cursor to `position`, in one
 * transaction: a crash keeps both or neither. Returns the tables written.
 */
export function applyChanges(
  db: Db,
  changes: readonly AppliedChange[],
  cursor: { name: string; position: number },
): Set<string> {
  return guarded(db, () => {
    const tables = new Set<string>();
    for (const c of changes) {
      applyOne(db, c);
      tables.add(c.tbl);
    }
    db.prepare(CURSOR_SQL).run(cursor.name, cursor.position, Date.now());
    return tables;
  });
}

/**
 * Makes the replicated tables what PostgreSQL's snapshot holds (rows as JSON objects by table), and
 * the cursor that snapshot's log head. Keys with a change still in the outbox are left as they are:
 * their change is on its way to PostgreSQL and comes back through the log.
 */
export function applySnapshot(
  db: Db,
  rows: ReadonlyMap<string, readonly string[]>,
  cursor: { name: string; position: number },
): void {
  guarded(db, () => {
    const pending = pendingKeys(db);
    const keep = (t: ReplicatedTable, key: string) => pending.has(`${t.name}\u0000${key}`);
    for (const t of REPLICATED_TABLES) {
      const theirs = new Set<string>();
      for (const row of rows.get(t.name) ?? []) {
        const key = String((JSON.parse(row) as Record<string, unknown>)[t.key]);
        theirs.add(key);
        if (!keep(t, key)) applyOne(db, { tbl: t.name, key, op: "upsert", row });
      }
      const mine = db.prepare(`SELECT ${t.key} AS key FROM ${t.name}`).pluck().all() as string[];
      for (const key of mine)
        if (!theirs.has(key) && !keep(t, key)) applyOne(db, { tbl: t.name, key, op: "delete", row: null });
    }
    db.prepare(CURSOR_SQL).run(cursor.name, cursor.position, Date.now());
  });
}
