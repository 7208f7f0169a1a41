/**
 * The replicated tables (src/cluster/replication.ts) between two nodes, each with its own SQLite
 * file, on a real PostgreSQL 15: what one node writes (the registry, staff tokens, push
 * subscriptions) reaches the other; a disable and a revocation take effect there within a second;
 * conflicting writes converge to one row; an outage loses and doubles nothing; what a node applies
 * from PostgreSQL is never captured again; and nodes agree on one set of push keys.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { PushStore } from "../../src/alerts/channels/push-store.js";
import { pruneLog } from "../../src/cluster/pg/partitioned-log.js";
import { REPLICATION_LOG, shipChanges } from "../../src/cluster/pg/replication-log.js";
import { outboxBacklog, readOutbox, uninstallReplication } from "../../src/cluster/replicated-tables.js";
import { TableReplication, TokenKeyMismatchError } from "../../src/cluster/replication.js";
import { silentLogger } from "../../src/log.js";
import { type Device, Registry } from "../../src/registry/registry.js";
import { TokenStore, tokenKeyFingerprint } from "../../src/staff/tokens.js";
import type { Db } from "../../src/store/db.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { tempDbs } from "../helpers/tempdb.js";
import { until } from "../helpers/until.js";

const pgdb = pgTestDatabases("replicated_tables");
const dbs = tempDbs("ata-replicated-");
const running: TableReplication[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop().catch(() => undefined);
  dbs.cleanup();
});

/** Every node's staff token key: hashes verify across nodes only under one key. */
const KEY = randomBytes(32);

interface Node {
  db: Db;
  registry: Registry;
  tokens: TokenStore;
  push: PushStore;
  replication: TableReplication;
  changed: Device[];
}

function replicationOf(
  db: Db,
  url: string,
  nodeId: string,
  extra: Partial<ConstructorParameters<typeof TableReplication>[0]> = {},
) {
  const r = new TableReplication({
    db,
    url,
    nodeId,
    log: silentLogger(),
    tokenKeyFingerprint: tokenKeyFingerprint(KEY),
    outboxPollMs: 20,
    followerPollMs: 1000,
    minRetryMs: 20,
    maxRetryMs: 100,
    pruneEveryMs: 0,
    ...extra,
  });
  running.push(r);
  return r;
}

async function node(url: string, nodeId: string): Promise<Node> {
  const { db } = dbs.open();
  const replication = replicationOf(db, url, nodeId);
  await replication.start();
  const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
  const changed: Device[] = [];
  registry.on("device.changed", (d: Device) => changed.push(d));
  // As src/gateway.ts wires it.
  replication.on("applied", (tables) => {
    if (tables.has("devices") || tables.has("residents")) registry.refreshIfChanged();
  });
  return { db, registry, tokens: new TokenStore(db, KEY), push: new PushStore(db), replication, changed };
}

const device = (id: string, room: string) => ({
  id,
  profile: "ata/native",
  siteId: "home-a",
  unitId: "unit-1",
  roomId: room,
  secret: "device-secret-01",
});

async function logEntries(
  pool: pg.Pool,
): Promise<{ origin: string; tbl: string; key: string; op: string }[]> {
  return (await pool.query("SELECT origin, tbl, key, op FROM replication_log ORDER BY position")).rows;
}

function originOf(db: Db): string {
  return (db.prepare("SELECT value FROM replication_meta WHERE name = 'origin'").get() as { value: string })
    .value;
}

describe("replicated tables between two nodes", () => {
  it("a device added on one node is on the other, and disabled there it is refused at authentication within a second; applying writes nothing to the outbox", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => pool.end());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");

    a.registry.add(device("mat-1", "r1"));
    await until("mat-1 on node B", () => b.registry.get("mat-1") !== undefined, 5000);
    expect(b.registry.get("mat-1")).toMatchObject({ roomId: "r1", enabled: true });
    expect(await b.registry.authenticate("mat-1", "device-secret-01")).toBe("ok");

    const t0 = performance.now();
    a.registry.setEnabled("mat-1", false);
    await until(
      "mat-1 refused on node B",
      async () => (await b.registry.authenticate("mat-1", "device-secret-01")) === "disabled",
      5000,
    );
    const ms = performance.now() - t0;
    console.log(`device disable reached the other node in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(1000);
    // What disconnects a device connected to node B's broker (src/gateway.ts "device.changed").
    expect(b.changed.some((d) => d.id === "mat-1" && !d.enabled)).toBe(true);

    // The guard: node B applied both changes and captured neither, so the log holds node A's only.
    expect(outboxBacklog(b.db)).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    const entries = await logEntries(pool);
    expect(entries.map((e) => [e.origin, e.key, e.op])).toEqual([
      [originOf(a.db), "mat-1", "upsert"],
      [originOf(a.db), "mat-1", "upsert"],
    ]);
  });

  it("a token made on one node verifies on the other, and revoked there it is refused within a second", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const { token, tokenId } = a.tokens.create({ name: "Eva", role: "staff", sites: ["home-a"] });
    await until("the token verifies on node B", () => b.tokens.verify(token) !== null, 5000);
    expect(b.tokens.verify(token)).toMatchObject({ name: "Eva", sites: ["home-a"] });
    // Its last use, written by node B's verify, stays node B's: nothing to ship.
    expect(outboxBacklog(b.db)).toBe(0);

    const t0 = performance.now();
    expect(a.tokens.revoke(tokenId, "test")).toBe(true);
    await until("the token refused on node B", () => b.tokens.verify(token) === null, 5000);
    const ms = performance.now() - t0;
    console.log(`token revocation reached the other node in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(1000);
    expect(b.tokens.revokedAmong([tokenId])).toEqual([tokenId]);
  });

  it("a push subscription saved on one node is among the other's live ones, its delivery counters stay put, and its removal travels", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const { tokenId } = a.tokens.create({ name: "Eva", role: "staff", sites: ["home-a"] });
    const { subscription } = a.push.save({
      staffTokenId: tokenId,
      endpoint: "https://push.example/ep-1",
      p256dh: "p256dh-key",
      auth: "auth-secret",
      label: "Android (Chrome)",
      userAgent: null,
    });
    await until(
      "the subscription live on node B",
      () => b.push.live().some((s) => s.id === subscription.id),
      5000,
    );
    expect(b.push.live()).toMatchObject([{ endpoint: "https://push.example/ep-1", staffTokenId: tokenId }]);
    // A push's outcome is the sending node's own.
    b.push.succeeded(subscription.id);
    b.push.failedOnce(subscription.id);
    expect(outboxBacklog(b.db)).toBe(0);

    a.push.remove(subscription.id);
    await until("the subscription gone on node B", () => b.push.live().length === 0, 5000);
  });

  it("the same device added on both nodes at once ends as one identical row on both and in PostgreSQL", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => pool.end());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    a.registry.add(device("dup-1", "r1"));
    b.registry.add(device("dup-1", "r2"));
    const row = (db: Db) => db.prepare("SELECT * FROM devices WHERE id = 'dup-1'").get();
    const pgRow = async () =>
      (await pool.query("SELECT id, room_id, secret_hash, created_at::int8 FROM devices WHERE id = 'dup-1'"))
        .rows[0];
    await until(
      () => `rows differ: ${JSON.stringify([row(a.db), row(b.db)])}`,
      async () =>
        outboxBacklog(a.db) === 0 &&
        outboxBacklog(b.db) === 0 &&
        (await logEntries(pool)).length === 2 &&
        a.replication.status().position === 2 &&
        b.replication.status().position === 2,
      5000,
    );
    expect(row(a.db)).toEqual(row(b.db));
    const final = row(a.db) as { room_id: string; secret_hash: string };
    expect((await pgRow())?.room_id).toBe(final.room_id);
    expect((await pgRow())?.secret_hash).toBe(final.secret_hash);
    // The registries follow their files.
    expect(a.registry.get("dup-1")?.roomId).toBe(final.room_id);
    expect(b.registry.get("dup-1")?.roomId).toBe(final.room_id);
  });

  it("changes made while PostgreSQL refuses them are shipped once it takes them again, nothing lost and nothing twice", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => pool.end());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    await pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'shared change log unavailable'; END $$`);
    await pool.query(
      "CREATE TRIGGER refuse BEFORE INSERT ON replication_log FOR EACH STATEMENT EXECUTE FUNCTION refuse()",
    );

    for (const id of ["out-1", "out-2", "out-3"]) a.registry.add(device(id, "r1"));
    a.registry.setEnabled("out-2", false);
    await until("a failed shipment", () => a.replication.status().lastError !== null, 5000);
    await new Promise((r) => setTimeout(r, 200));
    // Held, not lost: in node A's outbox, not on node B, not in PostgreSQL.
    const held = readOutbox(a.db, 0, 100);
    expect(held.map((c) => [c.key, c.op])).toEqual([
      ["out-1", "insert"],
      ["out-2", "insert"],
      ["out-3", "insert"],
      ["out-2", "update"],
    ]);
    expect(b.registry.size).toBe(0);
    expect((await pool.query("SELECT count(*)::int AS n FROM devices")).rows[0].n).toBe(0);

    await pool.query("DROP TRIGGER refuse ON replication_log");
    await until(
      "every device on node B",
      () => b.registry.size === 3 && b.registry.get("out-2")?.enabled === false,
      5000,
    );
    expect(outboxBacklog(a.db)).toBe(0);
    expect((await logEntries(pool)).map((e) => e.key)).toEqual(["out-1", "out-2", "out-3", "out-2"]);

    // A node that crashed after its commit and before forgetting its outbox ships the same rows
    // again: PostgreSQL skips them, so an old value never overwrites a newer one.
    const again = await shipChanges(pool, { origin: originOf(a.db), nodeId: "node-a", changes: held });
    expect(again).toMatchObject({ appended: 0, skipped: 4 });
    expect((await logEntries(pool)).length).toBe(4);
  });

  it("a subscription whose token PostgreSQL does not have is dropped everywhere, and replication goes on", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => pool.end());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    // As if node A's token had been deleted elsewhere first: its subscription's parent is gone.
    a.db
      .prepare(
        `INSERT INTO replication_outbox (tbl, key, op, row_json, at) VALUES ('push_subscriptions', 'ps_orphan', 'insert',
         json_object('id', 'ps_orphan', 'staff_token_id', 'st_gone', 'endpoint', 'https://push.example/orphan',
           'p256dh', 'k', 'auth', 'a', 'label', 'phone', 'user_agent', NULL, 'created_at', 1), 1)`,
      )
      .run();
    a.registry.add(device("after-1", "r1"));
    await until("the next change on node B", () => b.registry.get("after-1") !== undefined, 5000);
    expect((await logEntries(pool)).map((e) => [e.key, e.op])).toEqual([
      ["ps_orphan", "delete"],
      ["after-1", "upsert"],
    ]);
    expect(b.db.prepare("SELECT count(*) AS n FROM push_subscriptions").get()).toEqual({ n: 0 });
  });

  it("a node whose next changes were pruned while it was cut off copies every table again and goes on following", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pgdb.cleanup(() => pool.end());
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    a.registry.add(device("gap-1", "r1"));
    await until("gap-1 on node B", () => b.registry.get("gap-1") !== undefined, 5000);
    // Node B's connections cut (its follower listens again after a second); meanwhile node A
    // writes, and the shared log is pruned past node B's cursor.
    await pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ata node-b replication'",
    );
    a.registry.setEnabled("gap-1", false);
    a.registry.add(device("gap-2", "r2"));
    await until("node A shipped", () => outboxBacklog(a.db) === 0, 5000);
    await pruneLog(pool, REPLICATION_LOG, 0);
    expect(b.replication.status().position).toBe(1);

    await until(
      "node B copied every table again",
      () => b.registry.get("gap-2") !== undefined && b.registry.get("gap-1")?.enabled === false,
      5000,
    );
    expect(b.replication.status().fullCopies).toBe(2);
    // And follows the log from the copy on.
    a.registry.setEnabled("gap-2", false);
    await until("gap-2 disabled on node B", () => b.registry.get("gap-2")?.enabled === false, 5000);
  });

  it("a database that ran alone joins with its rows, PostgreSQL's kept where both have the key; a single process captures nothing", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    a.registry.add(device("both-1", "r1"));
    await until("node A shipped", () => outboxBacklog(a.db) === 0, 5000);

    // A file that ran as a single process: no triggers, so its writes leave no outbox behind.
    const { db } = dbs.open();
    uninstallReplication(db);
    const alone = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
    alone.add(device("both-1", "r2"));
    alone.add(device("own-1", "r3"));
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'replicat%'").get()).toEqual({
      n: 0,
    });
    await replicationOf(db, url, "node-b").start();
    const room = (d: Db, id: string) =>
      (d.prepare("SELECT room_id FROM devices WHERE id = ?").get(id) as { room_id: string } | undefined)
        ?.room_id;
    // The cluster's row wins over the joiner's; the joiner's own device reaches the cluster.
    expect(room(db, "both-1")).toBe("r1");
    expect(room(db, "own-1")).toBe("r3");
    await until("own-1 on node A", () => a.registry.get("own-1") !== undefined, 5000);
    expect(a.registry.get("both-1")?.roomId).toBe("r1");
  });

  it("two fresh nodes starting at once end with the same push keys, and a node with another token key is refused", async () => {
    const url = await pgdb.fresh();
    const start = (nodeId: string) => {
      const { db } = dbs.open();
      const r = replicationOf(db, url, nodeId, {
        keyMakers: {
          vapid: async () => `vapid-of-${nodeId}`,
          "capability-secret": async () => `secret-of-${nodeId}`,
        },
      });
      return r.start().then(() => db);
    };
    const [a, b] = await Promise.all([start("node-a"), start("node-b")]);
    const keys = (db: Db) => db.prepare("SELECT name, value FROM push_keys ORDER BY name").all();
    expect(keys(a)).toHaveLength(2);
    expect(keys(a)).toEqual(keys(b));

    const { db: c } = dbs.open();
    const other = replicationOf(c, url, "node-c", {
      tokenKeyFingerprint: tokenKeyFingerprint(randomBytes(32)),
    });
    await expect(other.start()).rejects.toBeInstanceOf(TokenKeyMismatchError);
  });
});
