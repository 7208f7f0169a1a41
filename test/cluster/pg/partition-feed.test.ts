/**
 * A partition owner's flush and the alert change feed, on a real PostgreSQL 15 (started by the
 * harness for this file): the owner's `PgPartitionState` with `feed: true`, stepped by the real
 * `AlertManager`, and a second "node" (its own pool and `ChangeFeed`) that must receive exactly
 * the changes that committed, once each, in audit-id order, as the staff server would send them;
 * nothing of a step taken back, a round the fence refused or a round PostgreSQL failed at commit.
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { AlertChannel, ChannelName } from "../../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../../src/alerts/channels/console.js";
import { type AlertChange, AlertManager, type RaiseSpec } from "../../../src/alerts/manager.js";
import { ChangeFeed, type FeedChange, readSince } from "../../../src/cluster/pg/change-feed.js";
import { PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { PartitionStateLostError, PgPartitionState } from "../../../src/cluster/pg/partition-state.js";
import type { LoggedEvent } from "../../../src/ingest/pipeline.js";
import { silentLogger } from "../../../src/log.js";
import { DurableTimers } from "../../../src/rules/timers.js";
import type { StaffIdentity } from "../../../src/staff/protocol.js";
import { alertRow, audit } from "../../alerts/store.contract.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";

const pgdb = pgTestDatabases("partition_feed");

function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: name });
  pool.on("error", () => undefined);
  return pool;
}

interface Owner {
  pool: pg.Pool;
  leases: PartitionLeases;
  /** The partition's state with the feed on, loaded under this node's lease. */
  load(): Promise<PgPartitionState>;
}

/** A gateway node alone in its database (or after the others' leases ran out): it takes partition 0. */
async function owner(url: string, nodeId: string): Promise<Owner> {
  const pool = newPool(url, nodeId);
  // Long leases: no renewal round falls inside a test unless the test makes one.
  const leases = new PartitionLeases({ pool, nodeId, partitions: 1, leaseMs: 60_000 });
  leases.on("error", () => undefined);
  pgdb.cleanup(async () => {
    await leases.stop();
    await pool.end();
  });
  await leases.start();
  return {
    pool,
    leases,
    load: async () => {
      const token = leases.tokenOf(0);
      if (token === undefined) throw new Error(`${nodeId} does not hold partition 0`);
      const state = await PgPartitionState.load({ pool, leases, partition: 0, token, feed: true });
      pgdb.cleanup(async () => state.close());
      return state;
    },
  };
}

interface Subscriber {
  pool: pg.Pool;
  got: FeedChange[];
  errors: Error[];
}

/** Another node following the feed from its start, on its own pool. */
async function subscriber(url: string): Promise<Subscriber> {
  const pool = newPool(url, "node-z");
  const feed = new ChangeFeed({ pool, from: new Map(), pollMs: 60_000, pruneEveryMs: 0 });
  const s: Subscriber = { pool, got: [], errors: [] };
  feed.on("changes", (changes) => s.got.push(...changes));
  feed.on("error", (err) => s.errors.push(err));
  await feed.start();
  pgdb.cleanup(async () => {
    await feed.stop();
    await pool.end();
  });
  return s;
}

function until(what: () => string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (ok()) return resolve();
      if (performance.now() - started > timeoutMs)
        return reject(new Error(`not within ${timeoutMs} ms: ${what()}`));
      setTimeout(check, 5);
    };
    check();
  });
}

/** Every audit entry in PostgreSQL, as (seq, change, alert id). */
async function committedAudit(pool: pg.Pool): Promise<{ seq: number; change: string; alertId: string }[]> {
  const { rows } = await pool.query<{ id: string; action: string; alert_id: string }>(
    "SELECT id::text, action, alert_id FROM alert_audit ORDER BY alert_audit.id",
  );
  return rows.map((r) => ({ seq: Number(r.id), change: r.action, alertId: r.alert_id }));
}

const T0 = Date.parse("2026-11-02T21:14:05.250Z");
const SITE = "home-a";
const ANNA: StaffIdentity = { id: "anna", name: "Anna", role: "staff", sites: [SITE], units: ["unit-1"] };

const FALL: RaiseSpec = {
  ruleId: "fall",
  alert: "fall",
  priority: "high",
  message: { da: "Fald i stue {room}", en: "Fall in room {room}" },
  ladder: [{ to: ["unit"], after: 120_000 }],
  renotifyMs: 60_000,
};

function fallEvent(deviceId: string, room: string, logSeq: number): LoggedEvent {
  return {
    eventId: `ev-${deviceId}-${logSeq}`,
    schemaVersion: 1,
    deviceId,
    occurredAt: new Date(T0).toISOString(),
    receivedAt: new Date(T0).toISOString(),
    phase: "point",
    type: "fall.detected",
    data: { confidence: 0.97 },
    placement: { siteId: SITE, unitId: "unit-1", roomId: room, residentRef: `res-${room}` },
    logSeq,
    profile: "test",
  } as LoggedEvent;
}

/** The alert manager on the owner's state, as the gateway builds it; `announced` is what it told its own staff server. */
function manager(state: PgPartitionState): { alerts: AlertManager; announced: AlertChange[] } {
  const log = silentLogger();
  const timers = new DurableTimers(state.timers, log, () => T0);
  const channels = new Map<ChannelName, AlertChannel>([
    ["console", new ConsoleChannel({ connected: () => [ANNA] })],
  ]);
  const alerts = new AlertManager({ store: state.alerts, timers, log, channels, now: () => T0 });
  const announced: AlertChange[] = [];
  alerts.on("change", (c: AlertChange) => announced.push(c));
  return { alerts, announced };
}

/** Positions 1, 2, 3 ... in delivery order and seq (the audit id) rising along them. */
function expectFeedOrder(got: FeedChange[]): void {
  expect(got.map((c) => c.position)).toEqual(got.map((_, i) => i + 1));
  const seqs = got.map((c) => c.change.seq);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(new Set(seqs).size).toBe(seqs.length);
}

describe("the owner's flush appends its alert changes to the feed", () => {
  it("raise, accept and resolve on the owner reach another node once each, in seq order, as the staff server would send them", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url, "node-a");
    const state = await a.load();
    const node = await subscriber(url);
    const { alerts, announced } = manager(state);

    // Two alerts; the second's raise and the first's accept and resolve are stepped while the
    // first round is in flight, so a later round carries several steps.
    const first = alerts.raise(FALL, fallEvent("vayyar-1", "12", 41), null);
    const second = alerts.raise(FALL, fallEvent("vayyar-2", "14", 42), null);
    alerts.accept(first.id, ANNA);
    alerts.attend(first.id, ANNA);
    alerts.resolve(first.id, ANNA, "false-alarm", "stood up by herself");
    await state.flushed();
    // One step, two transitions: each change carries the alert as that transition left it.
    alerts.batch(() => {
      alerts.accept(second.id, ANNA);
      alerts.attend(second.id, ANNA);
    });
    await state.flushed();

    const audit = await committedAudit(a.pool);
    expect(audit.map((e) => e.change)).toEqual(
      expect.arrayContaining(["raised", "accepted", "attending", "resolved"]),
    );
    await until(
      () => `${node.got.length} of ${audit.length} changes`,
      () => node.got.length >= audit.length,
    );
    expect(node.errors).toEqual([]);
    // Exactly the audit that committed, once each, in audit-id order ...
    expect(node.got.map((c) => ({ seq: c.change.seq, change: c.change.change, alertId: c.alertId }))).toEqual(
      audit,
    );
    expectFeedOrder(node.got);
    // ... each the very message the owner's manager announced to its own staff server.
    expect(node.got.map((c) => c.change)).toEqual(announced);
    for (const c of node.got) {
      expect(c.site).toBe(SITE);
      expect(c.alertId).toBe(c.change.alert.id);
      expect(c.token).toBe(a.leases.tokenOf(0));
    }
    const resolved = node.got.find((c) => c.change.change === "resolved")!;
    expect(resolved.change.alert).toMatchObject({ id: first.id, state: "resolved", outcome: "false-alarm" });
    expect(resolved.change.actor).toBe("Anna");
    expect(
      node.got
        .filter((c) => c.alertId === second.id && c.change.change !== "notified")
        .map((c) => [c.change.change, c.change.alert.state]),
    ).toEqual([
      ["raised", "raised"],
      ["accepted", "accepted"],
      ["attending", "attending"],
    ]);
    const accepted = node.got.filter((c) => c.change.change === "accepted");
    expect(accepted.map((c) => c.change.alert.acceptedBy)).toEqual([
      { id: "anna", name: "Anna" },
      { id: "anna", name: "Anna" },
    ]);

    // One transaction carried several changes: the order within a round is tested, not only across.
    const { rows } = await a.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM change_feed GROUP BY xmin::text ORDER BY n DESC LIMIT 1",
    );
    expect(rows[0]!.n).toBeGreaterThan(1);
  });

  it("a step that throws, a round the fence refuses and a round PostgreSQL fails at commit append nothing; the new owner's changes follow what committed", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url, "node-a");
    const state = await a.load();
    const tokenA = a.leases.tokenOf(0)!;
    const node = await subscriber(url);

    const kept = alertRow({ id: "al_kept", dedupe_key: "kept" });
    state.step(() => {
      state.alerts.insert(kept);
      state.alerts.appendAudit(audit(kept));
    });
    await state.flushed();

    // Taken back in memory: no audit entry, so no change.
    const thrown = alertRow({ id: "al_thrown", dedupe_key: "thrown" });
    expect(() =>
      state.step(() => {
        state.alerts.insert(thrown);
        state.alerts.appendAudit(audit(thrown));
        throw new Error("the rule failed");
      }),
    ).toThrow("the rule failed");
    state.step(() => state.alerts.appendAudit(audit(kept, { action: "notified" })));
    await state.flushed();

    // Another node took the lease; node-a has not noticed, and its next round meets the fence.
    await a.pool.query(
      "UPDATE partition_leases SET owner = 'node-b', token = token + 1, expires_at = now() + interval '1 minute'",
    );
    const fenced = alertRow({ id: "al_fenced", dedupe_key: "fenced" });
    state.step(() => {
      state.alerts.insert(fenced);
      state.alerts.appendAudit(audit(fenced));
      state.alerts.update("al_kept", { level: 1 }, T0 + 1);
      state.alerts.appendAudit(audit(kept, { action: "escalated", at: T0 + 1 }));
    });
    await expect(state.flushed()).rejects.toBeInstanceOf(PartitionStateLostError);

    // The next owner loads what committed, and its first round fails at COMMIT (a deferred check
    // PostgreSQL runs only then), after every statement of the round, its append included, ran.
    await a.leases.stop();
    await a.pool.query("UPDATE partition_leases SET expires_at = now() - interval '1 second'");
    await a.pool.query(`
      CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'alert % refused at commit', NEW.alert_id; END $$;
      CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON alert_audit
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.alert_id = 'al_poison') EXECUTE FUNCTION refuse_poison();`);
    const b = await owner(url, "node-b");
    const doomed = await b.load();
    const poison = alertRow({ id: "al_poison", dedupe_key: "poison" });
    // A round in flight, so that the next two steps go together in the round that fails.
    doomed.step(() => doomed.cursor.set(50, T0 + 2));
    doomed.step(() => {
      doomed.alerts.update("al_kept", { state: "accepted" }, T0 + 2);
      doomed.alerts.appendAudit(audit(kept, { action: "accepted", at: T0 + 2 }));
    });
    doomed.step(() => {
      doomed.alerts.insert(poison);
      doomed.alerts.appendAudit(audit(poison));
    });
    const err = await doomed.flushed().then(
      () => null,
      (e: unknown) => e as PartitionStateLostError,
    );
    expect(err).toBeInstanceOf(PartitionStateLostError);
    expect(String((err!.cause as Error).message)).toMatch(/al_poison refused at commit/);
    await b.leases.stop();
    await b.pool.query("DROP TRIGGER refuse_poison ON alert_audit");
    await b.pool.query("UPDATE partition_leases SET expires_at = now() - interval '1 second'");

    // A third owner: what it does follows what committed.
    const c = await owner(url, "node-c");
    const next = await c.load();
    // node-b's first round (the cursor alone) committed; its second, the accept with the poison, did not.
    expect(next.cursor.position()).toBe(50);
    expect(next.alerts.alert("al_kept")?.state).toBe("raised");
    next.step(() => {
      next.alerts.update("al_kept", { state: "accepted" }, T0 + 3);
      next.alerts.appendAudit(audit(kept, { action: "accepted", at: T0 + 3 }));
    });
    await next.flushed();

    const committed = await committedAudit(c.pool);
    expect(committed.map((e) => `${e.alertId} ${e.change}`)).toEqual([
      "al_kept raised",
      "al_kept notified",
      "al_kept accepted",
    ]);
    await until(
      () => `${node.got.length} of 3 changes`,
      () => node.got.length >= 3,
    );
    expect(node.got.map((c) => ({ seq: c.change.seq, change: c.change.change, alertId: c.alertId }))).toEqual(
      committed,
    );
    expectFeedOrder(node.got);
    expect(node.got.map((c) => c.token)).toEqual([tokenA, tokenA, c.leases.tokenOf(0)]);
    expect(c.leases.tokenOf(0)).toBeGreaterThan(tokenA);
    expect(node.errors).toEqual([]);
    // Nothing else is in the feed, delivered or not.
    const { rows } = await c.pool.query(
      "SELECT position, alert_id, message->>'change' AS change FROM change_feed",
    );
    expect(rows.map((r) => `${r.alert_id} ${r.change}`).sort()).toEqual(
      ["al_kept accepted", "al_kept notified", "al_kept raised"].sort(),
    );
  });

  it("readSince from a position in the middle returns exactly the later changes, in seq order", async () => {
    const url = await pgdb.fresh();
    const a = await owner(url, "node-a");
    const state = await a.load();
    const { alerts, announced } = manager(state);

    const first = alerts.raise(FALL, fallEvent("vayyar-1", "12", 41), null);
    await state.flushed();
    const second = alerts.raise(FALL, fallEvent("vayyar-2", "14", 42), null);
    alerts.accept(first.id, ANNA);
    await state.flushed();
    alerts.accept(second.id, ANNA);
    alerts.attend(second.id, ANNA);
    alerts.resolve(second.id, ANNA, "assistance-given");
    await state.flushed();

    const reader = newPool(url, "node-z");
    pgdb.cleanup(() => reader.end());
    const all = await readSince(reader, new Map());
    expect(all.kind).toBe("changes");
    if (all.kind !== "changes") return;
    expect(all.changes.map((c) => c.change)).toEqual(announced);
    expect(all.changes.length).toBeGreaterThanOrEqual(5);

    for (const middle of [1, Math.floor(all.changes.length / 2), all.changes.length - 1]) {
      const later = await readSince(reader, new Map([[0, middle]]));
      expect(later.kind).toBe("changes");
      if (later.kind !== "changes") return;
      expect(later.changes).toEqual(all.changes.slice(middle));
      expect(later.changes.every((c) => c.change.seq > all.changes[middle - 1]!.change.seq)).toBe(true);
      expect(later.position.get(0)).toBe(all.changes.length);
    }
  });
});
