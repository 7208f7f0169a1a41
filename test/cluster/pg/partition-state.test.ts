/**
 * A partition's state on a real PostgreSQL 15 (started by the harness for this file): the partition
 * and alert store contracts on `PgPartitionState`, each test on a fresh database migrated as a node
 * would migrate it, with a lease taken by a real `PartitionLeases`; `reopen()` waits for the flush,
 * drops the state and loads a new one from PostgreSQL, as the partition's next owner would. Then what
 * the contracts cannot say: the fence, savepoints and id blocks across a reload, partitions apart.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { AlertRow } from "../../../src/alerts/store.js";
import { partitionOf } from "../../../src/cluster/partitions.js";
import { PgAlertHistory } from "../../../src/cluster/pg/alert-history.js";
import { PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { PgMaintenanceSchedule } from "../../../src/cluster/pg/maintenance.js";
import { PartitionStateLostError, PgPartitionState } from "../../../src/cluster/pg/partition-state.js";
import { IdsExhaustedError } from "../../../src/cluster/pg/unit-of-work.js";
import {
  alertHistoryContract,
  alertRow,
  alertStoreContract,
  attempt,
  audit,
} from "../../alerts/store.contract.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";
import { partitionStateContract } from "../../rules/partition.contract.js";

const pgdb = pgTestDatabases("partition");

interface Node {
  pool: pg.Pool;
  leases: PartitionLeases;
  token(partition: number): number;
  stop(): Promise<void>;
}

/** A gateway node's pool and leases; alone in its database, it takes every partition at start. */
async function startNode(url: string, nodeId: string, partitions = 1): Promise<Node> {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: nodeId });
  pool.on("error", () => undefined);
  // Long leases: no renewal round falls inside a test unless the test makes one.
  const leases = new PartitionLeases({ pool, nodeId, partitions, leaseMs: 60_000 });
  leases.on("error", () => undefined);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await leases.stop();
    await pool.end();
  };
  pgdb.cleanup(stop);
  await leases.start();
  return {
    pool,
    leases,
    token: (p) => {
      const t = leases.tokenOf(p);
      if (t === undefined) throw new Error(`${nodeId} does not hold partition ${p}`);
      return t;
    },
    stop,
  };
}

function load(
  node: Node,
  partition = 0,
  o: { blockSize?: number; keepClosed?: number } = {},
): Promise<PgPartitionState> {
  return PgPartitionState.load({
    pool: node.pool,
    leases: node.leases,
    partition,
    token: node.token(partition),
    ...o,
  });
}

/** A contract subject: one node holding the only partition, and its state loaded. */
async function subject() {
  const node = await startNode(await pgdb.fresh(), "node-a");
  let state = await load(node);
  return {
    node,
    get state() {
      return state;
    },
    schedule: new PgMaintenanceSchedule(node.pool, () => state.refreshMaintenance()),
    reopen: async () => {
      await state.flushed();
      state.close();
      state = await load(node);
      return state;
    },
    cleanup: async () => {
      state.close();
      await node.stop();
    },
  };
}

partitionStateContract("PostgreSQL", async () => {
  const s = await subject();
  return { state: s.state, schedule: s.schedule, reopen: s.reopen, cleanup: s.cleanup };
});

alertStoreContract("PostgreSQL partition", async () => {
  const s = await subject();
  return { store: s.state.alerts, cleanup: s.cleanup };
});

alertHistoryContract("PostgreSQL", async () => {
  const s = await subject();
  return {
    store: s.state.alerts,
    history: new PgAlertHistory(s.node.pool, () => s.state.flushed()),
    cleanup: s.cleanup,
  };
});

const T0 = Date.parse("2026-11-02T21:14:05.250Z");

/** Every row a partition's state writes, as PostgreSQL has it. */
async function tables(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [t, key] of [
    ["alerts", "id"],
    ["alert_audit", "id"],
    ["channel_attempts", "id"],
    ["timers", "id"],
    ["partition_state", "partition"],
  ])
    out[t!] = (await pool.query(`SELECT * FROM ${t} ORDER BY ${key}`)).rows;
  return out;
}

describe("ata_partition_of", () => {
  it("gives in SQL the partition partitionOf gives, for every count", async () => {
    const sites = ["", "site-1", "site-2", "oslo/sagene", "bergen", "nursing-home-42", "Åsgård", "home-a"];
    const pool = new pg.Pool({ connectionString: await pgdb.fresh(), max: 1 });
    try {
      for (const count of [1, 2, 7, 64, 1000]) {
        const { rows } = await pool.query<{ p: number }>(
          "SELECT ata_partition_of(s, $2) AS p FROM unnest($1::text[]) WITH ORDINALITY u(s, n) ORDER BY n",
          [sites, count],
        );
        expect(rows.map((r) => r.p)).toEqual(sites.map((s) => partitionOf(s, count)));
      }
    } finally {
      await pool.end();
    }
  });
});

describe("PostgreSQL partition state beyond the contracts", () => {
  it("a flush after another node took the lease is refused by the fence: nothing of it lands, the state is lost, and the new owner loads only what committed", async () => {
    const url = await pgdb.fresh();
    const a = await startNode(url, "node-a");
    const state = await load(a);
    const lostEvents: PartitionStateLostError[] = [];
    state.on("lost", (err) => lostEvents.push(err));

    const kept = alertRow({ id: "al_kept", dedupe_key: "kept" });
    state.step(() => {
      state.alerts.insert(kept);
      state.alerts.appendAudit(audit(kept));
      state.timers.upsert("alert:al_kept:escalate", "escalate", T0 + 60_000, '{"alertId":"al_kept"}', T0);
      state.cursor.set(41, T0);
    });
    await state.flushed();

    // Another node takes the partition over, as after node-a's lease ran out while it was paused;
    // node-a has not noticed (no round of its leases since, its local deadline far): the step runs,
    // and its flush meets the fence.
    await a.pool.query(
      "UPDATE partition_leases SET owner = 'node-b', token = token + 1, expires_at = now() + interval '1 minute'",
    );
    expect(a.leases.holds(0, a.token(0))).toBe(true);
    const lost = alertRow({ id: "al_lost", dedupe_key: "lost" });
    state.step(() => {
      state.alerts.insert(lost);
      state.alerts.appendAudit(audit(lost));
      state.alerts.update("al_kept", { level: 1 }, T0 + 1);
      state.timers.remove("alert:al_kept:escalate");
      state.cursor.set(42, T0 + 1);
    });
    expect(state.alerts.alert("al_lost")?.id).toBe("al_lost");
    const err = await state.flushed().then(
      () => null,
      (e: unknown) => e,
    );
    // "superseded": the lease found taken in PostgreSQL, which only a renewal or the fence can find,
    // and no renewal round has run (none is due for 20 s, and nobody notified node-a).
    expect(err).toBeInstanceOf(PartitionStateLostError);
    expect((err as Error).message).toMatch(/lost \(superseded\)/);
    expect(a.leases.holds(0)).toBe(false);
    expect(lostEvents).toEqual([err]);
    expect(state.lost()).toBe(err);
    expect(state.alerts.available()).toBe(false);
    expect(() => state.step(() => state.cursor.set(43, T0 + 2))).toThrow(PartitionStateLostError);
    await expect(state.flushed()).rejects.toBe(err);

    const rows = await tables(a.pool);
    expect(rows.alerts!.map((r) => (r as AlertRow).id)).toEqual(["al_kept"]);
    expect(rows.alert_audit).toHaveLength(1);
    expect(rows.partition_state).toEqual([
      { partition: 0, rules_position: "41", rules_updated_at: String(T0), audit_head: expect.any(String) },
    ]);

    // The next owner, with a lease of its own (node-a gone, the lease expired), loads what committed.
    await a.leases.stop();
    await a.pool.query("UPDATE partition_leases SET expires_at = now() - interval '1 second'");
    const b = await startNode(url, "node-b");
    const next = await load(b);
    expect(next.alerts.openAlerts().map((r) => r.id)).toEqual(["al_kept"]);
    expect(next.alerts.alert("al_kept")?.level).toBe(0);
    expect(next.alerts.alert("al_lost")).toBeUndefined();
    expect(next.timers.load().map((t) => t.id)).toEqual(["alert:al_kept:escalate"]);
    expect(next.cursor.position()).toBe(41);
    expect(next.alerts.auditOf("al_kept").map((e) => e.action)).toEqual(["raised"]);
    next.close();
  });

  it("a step that throws leaves PostgreSQL untouched, and the next step is flushed", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    const state = await load(node);
    const first = alertRow({ id: "al_1", dedupe_key: "1" });
    state.step(() => {
      state.alerts.insert(first);
      state.alerts.recordAttempt(attempt("al_1"));
    });
    await state.flushed();
    const before = await tables(node.pool);

    const second = alertRow({ id: "al_2", dedupe_key: "2" });
    expect(() =>
      state.step(() => {
        state.alerts.insert(second);
        state.alerts.appendAudit(audit(second));
        state.alerts.update("al_1", { state: "accepted" }, T0 + 5);
        state.alerts.confirmScreenReceipt("al_1", "s1", T0 + 5);
        state.timers.upsert("t", "k", T0 + 1000, "{}", T0);
        state.cursor.set(99, T0 + 5);
        throw new Error("the rule failed");
      }),
    ).toThrow("the rule failed");
    await state.flushed();
    expect(await tables(node.pool)).toEqual(before);

    state.step(() => state.cursor.set(7, T0 + 6));
    await state.flushed();
    expect((await tables(node.pool)).partition_state).toEqual([
      { partition: 0, rules_position: "7", rules_updated_at: String(T0 + 6), audit_head: "0" },
    ]);
    state.close();
  });

  it("a staff command's answer is written by the round that commits its step, in the same transaction; a step that throws takes it back", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    const state = await load(node);
    const token = node.token(0);
    for (const [id, t] of [
      ["c1", token],
      ["c2", token],
      ["c3", token],
      ["c4", token + 1],
    ] as const)
      await node.pool.query(
        `INSERT INTO owner_commands (id, partition, command, state, deadline, token)
         VALUES ($1, 0, '{}', 'taken', now() + interval '1 hour', $2)`,
        [id, t],
      );
    const refused = (message: string) => ({
      ok: false as const,
      error: { code: "internal" as const, message },
    });
    const rowOf = async (id: string) =>
      (
        await node.pool.query<{ state: string; answer: unknown; xmin: string }>(
          "SELECT state, answer, xmin::text FROM owner_commands WHERE id = $1",
          [id],
        )
      ).rows[0]!;

    state.step(() => {
      state.alerts.insert(alertRow({ id: "al_1", dedupe_key: "1" }));
      state.answer("c1", refused("one"));
    });
    expect(() =>
      state.step(() => {
        state.answer("c2", refused("two"));
        throw new Error("the command failed");
      }),
    ).toThrow("the command failed");
    await state.flushed();
    const c1 = await rowOf("c1");
    expect(c1).toMatchObject({ state: "answered", answer: refused("one") });
    const { rows } = await node.pool.query<{ xmin: string }>(
      "SELECT xmin::text FROM alerts WHERE id = 'al_1'",
    );
    expect(c1.xmin).toBe(rows[0]!.xmin);
    expect(await rowOf("c2")).toMatchObject({ state: "taken", answer: null });

    // An answer alone is a step with a round of its own; a row taken under another token is left.
    state.step(() => {
      state.answer("c3", refused("three"));
      state.answer("c4", refused("four"));
    });
    await state.flushed();
    expect(await rowOf("c3")).toMatchObject({ state: "answered", answer: refused("three") });
    expect(await rowOf("c4")).toMatchObject({ state: "taken", answer: null });
    state.close();
  });

  it("a nested step that throws takes back its writes in every store and the outer step's survive a reload", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    let state = await load(node);
    const a = alertRow({ id: "al_a", dedupe_key: "a" });
    const b = alertRow({ id: "al_b", dedupe_key: "b" });
    const attempt = (alertId: string, recipientId: string) => ({
      alertId,
      channel: "push" as const,
      recipientId,
      recipientName: "Mette",
      staffId: "s1",
      level: 0,
      reason: "level" as const,
      status: "pending" as const,
      at: T0,
    });
    const ids = state.step(() => {
      state.alerts.insert(a);
      const raised = state.alerts.appendAudit(audit(a));
      state.timers.upsert("t1", "k", T0 + 1000, '{"n":1}', T0);
      state.cursor.set(5, T0);
      expect(() =>
        state.step(() => {
          state.alerts.insert(b);
          state.alerts.appendAudit(audit(b));
          state.alerts.update("al_a", { level: 1 }, T0 + 1);
          state.alerts.recordAttempt(attempt("al_b", "phone-9"));
          state.timers.upsert("t2", "k", T0 + 2000, "{}", T0);
          state.timers.remove("t1");
          state.cursor.set(9, T0 + 1);
          throw new Error("one channel failed");
        }),
      ).toThrow("one channel failed");
      const kept = state.step(() => {
        state.timers.upsert("t3", "k", T0 + 3000, "{}", T0);
        return [
          state.alerts.appendAudit(audit(a, { action: "escalated", at: T0 + 2 })),
          state.alerts.recordAttempt(attempt("al_a", "phone-1")),
        ];
      });
      return [raised, ...kept];
    });
    await state.flushed();
    state.close();
    state = await load(node);

    expect(state.alerts.alert("al_a")).toEqual(a);
    expect(state.alerts.alert("al_b")).toBeUndefined();
    expect(state.alerts.auditOf("al_a").map((e) => [e.id, e.action])).toEqual([
      [ids[0], "raised"],
      [ids[1], "escalated"],
    ]);
    expect(state.alerts.pendingAttempts().map((t) => [t.id, t.alert_id, t.recipient_id])).toEqual([
      [ids[2], "al_a", "phone-1"],
    ]);
    expect(
      state.timers
        .load()
        .map((t) => t.id)
        .sort(),
    ).toEqual(["t1", "t3"]);
    expect(state.cursor.position()).toBe(5);
    expect(state.alerts.head()).toBe(ids[1]);
    state.close();
  });

  it("audit ids keep growing across a block refill and a reload; a step that would run out is refused, not held", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    let state = await load(node, 0, { blockSize: 4 });
    const row = alertRow();
    const ids: number[] = [];
    state.step(() => state.alerts.insert(row));
    // The first block is 4 ids; taking the second leaves half, which starts a refill.
    for (let i = 0; i < 2; i++)
      ids.push(state.step(() => state.alerts.appendAudit(audit(row, { at: T0 + i }))));
    await state.idsReserved();
    for (let i = 2; i < 7; i++)
      ids.push(state.step(() => state.alerts.appendAudit(audit(row, { at: T0 + i }))));
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);

    // More in one step than is reserved: refused at once, and taken back whole.
    await state.idsReserved();
    const head = state.alerts.head();
    expect(() =>
      state.step(() => {
        for (let i = 0; i < 20; i++) state.alerts.appendAudit(audit(row, { action: "notified" }));
      }),
    ).toThrow(IdsExhaustedError);
    expect(state.alerts.head()).toBe(head);
    expect(state.alerts.auditOf(row.id)).toHaveLength(ids.length);

    await state.idsReserved();
    await state.flushed();
    state.close();
    state = await load(node, 0, { blockSize: 4 });
    expect(state.alerts.head()).toBe(ids[ids.length - 1]);
    const after = state.step(() => state.alerts.appendAudit(audit(row, { action: "accepted" })));
    expect(after).toBeGreaterThan(ids[ids.length - 1]!);
    await state.flushed();
    const { rows } = await node.pool.query<{ id: string }>("SELECT id FROM alert_audit ORDER BY id");
    expect(rows.map((r) => Number(r.id))).toEqual([...ids, after]);
    state.close();
  });

  it("two partitions' states in one database see only their own sites' alerts, timers, cursor and windows", async () => {
    const sites = ["home-a", "home-b", "home-c", "home-d", "home-e"];
    const site0 = sites.find((s) => partitionOf(s, 2) === 0)!;
    const site1 = sites.find((s) => partitionOf(s, 2) === 1)!;
    const node = await startNode(await pgdb.fresh(), "node-a", 2);
    let s0 = await load(node, 0);
    let s1 = await load(node, 1);
    const schedule = new PgMaintenanceSchedule(node.pool, async () => {
      await Promise.all([s0.refreshMaintenance(), s1.refreshMaintenance()]);
    });
    const w = {
      deviceId: "dev-1",
      roomId: null,
      startsAt: T0,
      endsAt: T0 + 60_000,
      reason: "radar recalibration",
      createdBy: "Mette",
      createdAt: T0,
    };
    const w0 = await schedule.open({ ...w, siteId: site0 });
    const w1 = await schedule.open({ ...w, siteId: site1 });

    const a0 = alertRow({ id: "al_0", dedupe_key: "0", site_id: site0 });
    const a1 = alertRow({ id: "al_1", dedupe_key: "1", site_id: site1 });
    s0.step(() => {
      s0.alerts.insert(a0);
      s0.alerts.appendAudit(audit(a0));
      s0.timers.upsert("alert:al_0:escalate", "escalate", T0 + 60_000, '{"alertId":"al_0"}', T0);
      s0.cursor.set(10, T0);
    });
    s1.step(() => {
      s1.alerts.insert(a1);
      s1.alerts.appendAudit(audit(a1));
      s1.timers.upsert("alert:al_1:escalate", "escalate", T0 + 60_000, '{"alertId":"al_1"}', T0);
      s1.cursor.set(20, T0);
    });
    expect(() => s0.step(() => s0.alerts.insert(alertRow({ id: "al_x", site_id: site1 })))).toThrow(
      `site ${site1} is in partition 1`,
    );
    await Promise.all([s0.flushed(), s1.flushed()]);
    s0.close();
    s1.close();
    s0 = await load(node, 0);
    s1 = await load(node, 1);

    for (const [s, mine, theirs, site, other, win, cursor] of [
      [s0, "al_0", "al_1", site0, site1, w0, 10],
      [s1, "al_1", "al_0", site1, site0, w1, 20],
    ] as const) {
      expect(s.alerts.openAlerts().map((r) => r.id)).toEqual([mine]);
      expect(s.alerts.alert(theirs)).toBeUndefined();
      expect(s.alerts.auditAfter(0, [site0, site1], 10).map((e) => e.alert_id)).toEqual([mine]);
      expect(s.timers.load().map((t) => t.id)).toEqual([`alert:${mine}:escalate`]);
      expect(s.cursor.position()).toBe(cursor);
      expect(s.maintenance.inForce(site, "dev-1", null, T0 + 1)?.id).toBe(win);
      expect(s.maintenance.inForce(other, "dev-1", null, T0 + 1)).toBeNull();
      expect(await s.loadAlert(theirs)).toBe(false);
      s.close();
    }
  });

  it("what a single process left (exported rows) is picked up: timers by their alert's or event's site, the cursor, the audit head", async () => {
    const url = await pgdb.fresh();
    const site0 = ["home-a", "home-b", "home-c"].find((s) => partitionOf(s, 2) === 0)!;
    const site1 = ["home-a", "home-b", "home-c"].find((s) => partitionOf(s, 2) === 1)!;
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const a1 = alertRow({ id: "al_1", dedupe_key: "1", site_id: site1 });
    await pool.query("INSERT INTO alerts SELECT * FROM json_populate_record(NULL::alerts, $1::json)", [
      JSON.stringify(a1),
    ]);
    await pool.query(
      `INSERT INTO alert_audit (id, alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id)
       OVERRIDING SYSTEM VALUE VALUES (17, 'al_1', 0, 'raised', 'r', 'r', 'raised', $1, 'nord')`,
      [site1],
    );
    await pool.query("SELECT setval(pg_get_serial_sequence('alert_audit', 'id'), 17)");
    await pool.query(
      `INSERT INTO events (seq, event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, profile, data,
                           partition, position)
       OVERRIDING SYSTEM VALUE VALUES (5, 'e5', 'dev-1', 'bed.exit', 'start', 0, 0, $1, 'nord', 'p', '{}', 0, 1)`,
      [site0],
    );
    await pool.query(
      `INSERT INTO timers (id, kind, due_at, payload, created_at) VALUES
         ('alert:al_1:escalate', 'escalate', 1000, '{"alertId":"al_1","level":1}', 0),
         ('absence:bed-exit:dev-1', 'absence', 2000, '{"ruleId":"bed-exit","eventSeq":5}', 0)`,
    );
    await pool.query("INSERT INTO cursors (name, position, updated_at) VALUES ('rules:events', 77, 1)");
    await pool.end();

    const node = await startNode(url, "node-a", 2);
    const s0 = await load(node, 0);
    const s1 = await load(node, 1);
    expect(s0.timers.load().map((t) => t.id)).toEqual(["absence:bed-exit:dev-1"]);
    expect(s1.timers.load().map((t) => t.id)).toEqual(["alert:al_1:escalate"]);
    // The single process's cursor (a seq of its log) as each partition's position: partition 0's
    // one event (seq 5, position 1) is behind it, partition 1 has none. The absence timer's event
    // likewise, by its position.
    expect([s0.cursor.position(), s1.cursor.position()]).toEqual([1, 0]);
    expect(JSON.parse(s0.timers.load()[0]!.payload)).toEqual({ ruleId: "bed-exit", eventSeq: 1 });
    expect([s0.alerts.head(), s1.alerts.head()]).toEqual([0, 17]);
    expect(s1.alerts.auditFloor()).toBe(17);
    const next = s1.step(() => s1.alerts.appendAudit(audit(a1, { action: "escalated" })));
    expect(next).toBeGreaterThan(17);
    await s1.flushed();
    s0.close();
    s1.close();
  });

  it("a closed alert is brought into the working set on purpose before a step that needs it", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    let state = await load(node);
    const row = alertRow();
    const attemptId = state.step(() => {
      state.alerts.insert(row);
      state.alerts.appendAudit(audit(row));
      const id = state.alerts.recordAttempt(
        attempt(row.id, { channel: "paging", recipientId: "dect-4", status: "sent" }),
      );
      state.alerts.update(row.id, { state: "resolved", open: 0, resolved_at: T0 + 1 }, T0 + 1);
      return id;
    });
    await state.flushed();
    state.close();
    state = await load(node);
    expect(state.alerts.alert(row.id)).toBeUndefined();
    expect(state.alerts.attempt(attemptId)).toBeUndefined();

    expect(await state.loadAttempt(attemptId)).toBe(true);
    expect(state.alerts.alert(row.id)?.state).toBe("resolved");
    expect(state.alerts.auditOf(row.id).map((e) => e.action)).toEqual(["raised"]);
    // The paging system's late receipt, now that its alert is held.
    state.step(() => state.alerts.setAttemptStatus(attemptId, "delivered", "receipt", T0 + 9));
    await state.flushed();
    const { rows } = await node.pool.query("SELECT status FROM channel_attempts WHERE id = $1", [attemptId]);
    expect(rows).toEqual([{ status: "delivered" }]);
    expect(await state.loadAlert("al_none")).toBe(false);
    state.close();
  });

  it("lets closed alerts go once flushed, least recently used first, never an open one; the audit floor rises past them", async () => {
    const node = await startNode(await pgdb.fresh(), "node-a");
    const state = await load(node, 0, { keepClosed: 2 });
    const open = alertRow({ id: "al_open", dedupe_key: "open" });
    state.step(() => state.alerts.insert(open));
    const last: Record<string, number> = {};
    for (const id of ["al_1", "al_2", "al_3", "al_4"]) {
      const row = alertRow({ id, dedupe_key: id });
      state.step(() => {
        state.alerts.insert(row);
        state.alerts.appendAudit(audit(row));
        state.alerts.update(id, { state: "resolved", open: 0 }, T0 + 1);
        last[id] = state.alerts.appendAudit(audit(row, { action: "resolved", stateAfter: "resolved" }));
      });
      await state.flushed();
    }
    // Beyond 2 closed (and a quarter of 2, none), the least recently written go, down to 2.
    expect(
      ["al_open", "al_1", "al_2", "al_3", "al_4"].map((id) => state.alerts.alert(id) !== undefined),
    ).toEqual([true, false, false, true, true]);
    expect(state.alerts.auditOf("al_2")).toEqual([]);
    expect(state.alerts.auditFloor()).toBe(last.al_2);
    expect(state.alerts.auditAfter(last.al_2!, ["home-a"], 10).map((e) => e.alert_id)).toEqual([
      "al_3",
      "al_3",
      "al_4",
      "al_4",
    ]);
    expect(await state.loadAlert("al_1")).toBe(true);
    expect(state.alerts.auditOf("al_1").map((e) => e.action)).toEqual(["raised", "resolved"]);
    state.close();
  });
});
