/**
 * Staff on any node of a cluster, on a real PostgreSQL 15 (started by the harness for this file):
 * two staff servers in this process, "node A" and "node B", each on its own pool, `ChangeFeed` and
 * `ClusterStaffAlerts`, with real WebSocket clients (`ws`). The partitions' owner is simulated as
 * test/cluster/pg/partition-feed.test.ts does: the real `AlertManager` stepping a `PgPartitionState`
 * with the feed on, per partition. Commands reach the owner through the injected `send`, which
 * records what it was given and carries it out on the owner's manager.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertChannel, ChannelName } from "../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../src/alerts/channels/console.js";
import { type AlertChange, AlertManager, type RaiseSpec } from "../../src/alerts/manager.js";
import type { AlertView } from "../../src/alerts/model.js";
import { partitionOf } from "../../src/cluster/partitions.js";
import { appendChanges, ChangeFeed, pruneChanges, renotifyEntry } from "../../src/cluster/pg/change-feed.js";
import { PartitionLeases } from "../../src/cluster/pg/leases.js";
import { PgPartitionState } from "../../src/cluster/pg/partition-state.js";
import { ClusterStaffAlerts } from "../../src/cluster/staff-alerts.js";
import { WEB_ROOT } from "../../src/http/static.js";
import type { LoggedEvent } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { DurableTimers } from "../../src/rules/timers.js";
import type { StaffCommand, StaffIdentity } from "../../src/staff/protocol.js";
import { DEFAULT_STAFF_OPTIONS, StaffServer } from "../../src/staff/server.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { openDb } from "../../src/store/db.js";
import { launchBrowser, type TestBrowser } from "../helpers/browser.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { type Msg, StaffClient } from "../staff/client.js";

const pgdb = pgTestDatabases("staff_alerts");

const PARTITIONS = 4;
const SITE_A = "home-a";
const SITE_B = "home-b";
const HOUR = 60 * 60 * 1000;
const T0 = Date.parse("2026-11-02T21:14:05.250Z");

const PEOPLE = {
  anna: { role: "staff", sites: [SITE_A], units: ["unit-1"] },
  bo: { role: "staff", sites: [SITE_A], units: ["unit-1"] },
  carl: { role: "staff", sites: [SITE_A], units: ["unit-2"] },
  hans: { role: "staff", sites: [SITE_B], units: null },
  mia: { role: "manager", sites: [SITE_A, SITE_B], units: null },
} as const;
type Person = keyof typeof PEOPLE;

const FALL: RaiseSpec = {
  ruleId: "fall",
  alert: "fall",
  priority: "high",
  message: { da: "Fald i stue {room}", en: "Fall in room {room}" },
  // Unit first, then the whole site: a unit-2 colleague sees a unit-1 fall once it escalated.
  ladder: [
    { to: ["unit"], after: 120_000 },
    { to: ["site"], after: 120_000 },
  ],
  renotifyMs: 60_000,
};

function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: name });
  pool.on("error", () => undefined);
  return pool;
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

let logSeq = 0;
function fallEvent(site: string, unit: string, room: string): LoggedEvent {
  const n = ++logSeq;
  return {
    eventId: `ev-${n}`,
    schemaVersion: 1,
    deviceId: `vayyar-${n}`,
    occurredAt: new Date(T0).toISOString(),
    receivedAt: new Date(T0).toISOString(),
    phase: "point",
    type: "fall.detected",
    data: { confidence: 0.97 },
    placement: { siteId: site, unitId: unit, roomId: room, residentRef: `res-${room}` },
    logSeq: n,
    profile: "test",
  } as LoggedEvent;
}

/** A partition's owner: its state with the feed on, and the manager stepping it. */
interface PartitionOwner {
  partition: number;
  state: PgPartitionState;
  alerts: AlertManager;
  /** Every change the owner's manager announced, in order. */
  announced: AlertChange[];
  /** Run the timers due now: a raised alert's first level (AlertManager.raise()). */
  entered: () => void;
}

/** One node that holds every partition (it is alone) and acts for the two sites' partitions. */
async function owner(url: string, console: () => StaffIdentity[]) {
  const pool = newPool(url, "owner");
  const leases = new PartitionLeases({ pool, nodeId: "owner", partitions: PARTITIONS, leaseMs: 60_000 });
  leases.on("error", () => undefined);
  pgdb.cleanup(async () => {
    await leases.stop();
    await pool.end();
  });
  await leases.start();
  const of = async (site: string): Promise<PartitionOwner> => {
    const partition = partitionOf(site, PARTITIONS);
    const state = await PgPartitionState.load({
      pool,
      leases,
      partition,
      token: leases.tokenOf(partition)!,
      feed: true,
    });
    pgdb.cleanup(() => state.close());
    const log = silentLogger();
    const timers = new DurableTimers(state.timers, log, () => T0);
    const channels = new Map<ChannelName, AlertChannel>([
      ["console", new ConsoleChannel({ connected: console })],
    ]);
    const alerts = new AlertManager({ store: state.alerts, timers, log, channels, now: () => T0 });
    const announced: AlertChange[] = [];
    alerts.on("change", (c: AlertChange) => announced.push(c));
    // A raised alert's first level is a step of its own, due at once (AlertManager.raise()). These
    // hand-wired owners run no timers: a test enters what is due itself, where its gateway would.
    const entered = () => timers.fireDueUntil(T0);
    return { partition, state, alerts, announced, entered };
  };
  const parts = new Map([
    [SITE_A, await of(SITE_A)],
    [SITE_B, await of(SITE_B)],
  ]);
  return {
    pool,
    leases,
    site: (site: string) => parts.get(site)!,
    /** The owner's side of `send`: the command carried out by the partition's manager, then flushed. */
    async carryOut(partition: number, cmd: StaffCommand): Promise<AlertView> {
      const o = [...parts.values()].find((p) => p.partition === partition);
      if (!o) throw new Error(`this owner does not act for partition ${partition}`);
      const a = o.alerts;
      const alert =
        cmd.type === "accept"
          ? a.accept(cmd.alertId, cmd.staff)
          : cmd.type === "reject"
            ? a.reject(cmd.alertId, cmd.staff, cmd.reason)
            : cmd.type === "attend"
              ? a.attend(cmd.alertId, cmd.staff)
              : cmd.type === "resolve"
                ? a.resolve(cmd.alertId, cmd.staff, cmd.outcome, cmd.note)
                : cmd.type === "comment"
                  ? a.comment(cmd.alertId, cmd.staff, cmd.text)
                  : a.received(cmd.alertId, cmd.staff);
      await o.state.flushed();
      return alert;
    },
  };
}
type Owner = Awaited<ReturnType<typeof owner>>;

/** A pool whose next query can be held before it runs and after it answered (a read in flight). */
function gatedPool(pool: pg.Pool) {
  const real = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  const gate = {
    armed: false,
    waiting: false,
    sent: false,
    answered: false,
    releaseBefore: () => {},
    releaseAfter: () => {},
  };
  (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args) => {
    if (!gate.armed) return real(...args);
    gate.armed = false;
    gate.waiting = true;
    await new Promise<void>((r) => {
      gate.releaseBefore = r;
    });
    gate.sent = true;
    const answer = await real(...args);
    gate.answered = true;
    await new Promise<void>((r) => {
      gate.releaseAfter = r;
    });
    return answer;
  };
  return gate;
}

interface Node {
  url: string;
  feed: ChangeFeed;
  source: ClusterStaffAlerts;
  gate: ReturnType<typeof gatedPool>;
}

/** A gateway node's staff side: its pool, feed, feed-backed alerts and staff server on HTTP. */
async function node(
  dbUrl: string,
  name: string,
  tokens: TokenStore,
  sent: { node: string; partition: number; command: StaffCommand }[],
  o: Owner,
): Promise<Node> {
  const pool = newPool(dbUrl, name);
  const gate = gatedPool(pool);
  const feed = new ChangeFeed({ pool, pollMs: 60_000, pruneEveryMs: 0 });
  feed.on("error", () => undefined);
  const source = new ClusterStaffAlerts({
    pool,
    feed,
    partitions: PARTITIONS,
    log: silentLogger(),
    send: (partition, command) => {
      sent.push({ node: name, partition, command });
      return o.carryOut(partition, command);
    },
  });
  source.start();
  await feed.start();
  const staff = new StaffServer(source, tokens, silentLogger(), { ...DEFAULT_STAFF_OPTIONS });
  staff.start();
  const http: Server = createServer();
  http.on("upgrade", staff.handleUpgrade);
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  pgdb.cleanup(async () => {
    staff.stop();
    await new Promise((r) => http.close(r));
    await source.stop();
    await feed.stop();
    await pool.end();
  });
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, feed, source, gate };
}

async function cluster() {
  const url = await pgdb.fresh();
  const db = openDb({ path: ":memory:" });
  pgdb.cleanup(() => db.close());
  const tokens = new TokenStore(db, randomBytes(32));
  const people = new Map<Person, { token: string; identity: StaffIdentity }>();
  for (const [id, p] of Object.entries(PEOPLE)) {
    const made = tokens.create({
      id,
      name: id[0]!.toUpperCase() + id.slice(1),
      role: p.role,
      sites: [...p.sites],
      units: p.units ? [...p.units] : null,
    });
    people.set(id as Person, { token: made.token, identity: made.identity });
  }
  // The owner's console reaches Anna (who is connected there is the owner's own business).
  const o = await owner(url, () => [people.get("anna")!.identity]);
  const sent: { node: string; partition: number; command: StaffCommand }[] = [];
  const a = await node(url, "node-a", tokens, sent, o);
  const b = await node(url, "node-b", tokens, sent, o);
  const clients: StaffClient[] = [];
  pgdb.cleanup(() => {
    for (const c of clients) c.ws.terminate();
  });
  /** Opens a socket to the node and says hello; `opened` resolves once the snapshot or the replay is in. */
  const hello = async (n: Node, who: Person, resume: Record<string, unknown> = {}) => {
    const c = await StaffClient.open(n.url);
    clients.push(c);
    const opened = c.next((m) => m.type === "snapshot" || m.type === "resumed");
    // A hello that is refused never opens; the test that sends one does not wait for it.
    opened.catch(() => undefined);
    c.send({ type: "hello", id: "hello", token: people.get(who)!.token, ...resume });
    return { c, opened };
  };
  const connect = async (n: Node, who: Person, resume: Record<string, unknown> = {}) => {
    const { c, opened } = await hello(n, who, resume);
    await opened;
    return c;
  };
  return { url, o, a, b, sent, people, hello, connect, tokens };
}

/** The alert changes a client received (not taken by a wait), as "seq change alertId". */
const alertMsgs = (c: StaffClient): Msg[] => c.messages.filter((m) => m.type === "alert");
const lastCursor = (c: StaffClient): string => {
  const withCursor = c.messages.filter((m) => typeof m.cursor === "string");
  return withCursor[withCursor.length - 1].cursor;
};
const key = (m: { seq: number; change: string; alert: { id: string } }) =>
  `${m.seq} ${m.change} ${m.alert.id}`;

describe("staff on any node follow the alerts of every partition", () => {
  it("a person on node A sees the owner's alert; their accept reaches the owner of its partition; a colleague on node B sees it accepted by them", async () => {
    const { o, a, b, sent, people, connect } = await cluster();
    const anna = await connect(a, "anna");
    const bo = await connect(b, "bo");
    const first = anna.messages.find((m) => m.type === "snapshot");
    expect(first).toMatchObject({ reason: "initial", alerts: [], seq: 0 });
    expect(first.cursor).toBe(`${partitionOf(SITE_A, PARTITIONS)}:0`);

    const home = o.site(SITE_A);
    const fall = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    await home.state.flushed();
    const raisedOnA = await anna.change(fall.id, "raised");
    expect(raisedOnA.alert).toMatchObject({ id: fall.id, state: "raised", site: SITE_A, room: "12" });
    expect(raisedOnA.cursor).toMatch(/^3:\d+$/);
    await bo.change(fall.id, "raised");

    const reply = await anna.request({ type: "accept", alertId: fall.id });
    expect(reply).toMatchObject({ ok: true, result: { alert: { id: fall.id, state: "accepted" } } });
    expect(sent).toEqual([
      {
        node: "node-a",
        partition: partitionOf(SITE_A, PARTITIONS),
        command: {
          type: "accept",
          id: expect.any(String),
          alertId: fall.id,
          staff: people.get("anna")!.identity,
        },
      },
    ]);
    const onB = await bo.change(fall.id, "accepted");
    expect(onB.alert.acceptedBy).toEqual({ id: "anna", name: "Anna" });
    expect(onB.actor).toBe("Anna");

    // An alert outside the person's sites is not found, and the owner is not asked.
    const other = o.site(SITE_B).alerts.raise(FALL, fallEvent(SITE_B, "unit-1", "3"), null);
    await o.site(SITE_B).state.flushed();
    const refused = await bo.request({ type: "accept", alertId: other.id });
    expect(refused).toMatchObject({ ok: false, error: { code: "alert_not_found" } });
    expect((await anna.request({ type: "accept", alertId: "al_nothing" })).error.code).toBe(
      "alert_not_found",
    );
    // The owner's refusal comes back as it is: Bo cannot accept what Anna took.
    const late = await bo.request({ type: "accept", alertId: fall.id });
    expect(late).toMatchObject({ ok: false, error: { code: "already_taken" } });
    expect(sent.map((s) => s.command.type)).toEqual(["accept", "accept"]);

    // A fresh connection on either node gets the open alert from PostgreSQL, as accepted.
    const later = await connect(b, "anna");
    const snap = later.messages.find((m) => m.type === "snapshot");
    expect(snap.alerts.map((x: AlertView) => [x.id, x.state, x.acceptedBy?.name])).toEqual([
      [fall.id, "accepted", "Anna"],
    ]);
  });

  it("a client that leaves node A and resumes on node B with its cursor gets exactly the changes it missed, in order, none twice", async () => {
    const { o, a, b, connect, people } = await cluster();
    const home = o.site(SITE_A);
    const anna = await connect(a, "anna");
    const one = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    home.entered();
    await home.state.flushed();
    await anna.change(one.id, "notified");
    const cursor = lastCursor(anna);
    const seen = home.announced.length;
    anna.ws.close();
    await until(
      () => "A to let go of the closed stream",
      () => a.source.size === 0,
    );

    // Missed: several rounds, one of them with two transitions, and a second alert.
    const bo = people.get("bo")!.identity;
    home.alerts.accept(one.id, bo);
    await home.state.flushed();
    const two = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "14"), null);
    home.entered();
    home.alerts.batch(() => {
      home.alerts.attend(one.id, bo);
      home.alerts.resolve(one.id, bo, "false-alarm");
    });
    await home.state.flushed();
    const missed = home.announced.slice(seen);
    expect(missed.length).toBeGreaterThanOrEqual(5);

    const back = await connect(b, "anna", { resumeCursor: cursor });
    const resumed = back.messages.find((m) => m.type === "resumed");
    const replayed = alertMsgs(back);
    expect(replayed.map(key)).toEqual(missed.map(key));
    expect(resumed.replayed).toBe(missed.length);
    expect(resumed.cursor).toBe(replayed[replayed.length - 1].cursor);
    // Each replayed change is the message the live path sent: the alert as that change left it.
    expect(replayed.map((m) => m.alert)).toEqual(missed.map((c) => c.alert));

    // Then live, once each.
    home.alerts.accept(two.id, bo);
    await home.state.flushed();
    await back.change(two.id, "accepted");
    const all = alertMsgs(back).map(key);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(home.announced.slice(seen).map(key));

    // Resuming again from the newest cursor replays nothing.
    const again = await connect(a, "anna", { resumeCursor: lastCursor(back) });
    expect(again.messages.find((m) => m.type === "resumed")).toMatchObject({ replayed: 0 });
    expect(alertMsgs(again)).toEqual([]);
  });

  it("changes appended while a resume's read is in flight are neither lost nor duplicated", async () => {
    const { o, b, hello, people } = await cluster();
    const home = o.site(SITE_A);
    const p = partitionOf(SITE_A, PARTITIONS);
    const bo = people.get("bo")!.identity;
    const one = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    home.entered();
    await home.state.flushed();
    // The client saw everything up to here (one entry per change in this partition so far).
    const cursor = `${p}:${home.announced.length}`;
    const seen = home.announced.length;
    home.alerts.accept(one.id, bo);
    await home.state.flushed();

    // The resume's read is held before it runs ...
    b.gate.armed = true;
    const { c: anna, opened } = await hello(b, "anna", { resumeCursor: cursor });
    await until(
      () => "the resume's read to be waiting",
      () => b.gate.waiting && b.source.size === 1,
    );
    // ... while the owner commits more: node B's feed hands these over now, and the read will see
    // them too (covered by it, so held and then passed over).
    const two = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "14"), null);
    home.entered();
    await home.state.flushed();
    const headBefore = home.announced.length;
    await until(
      () => "node B's feed to deliver the raise",
      () => (b.feed.status().position.get(p) ?? 0) >= headBefore,
    );
    b.gate.releaseBefore();
    await until(
      () => "the read to answer",
      () => b.gate.answered,
    );
    // ... and more after the read answered and before its answer is handed on: held, then sent.
    home.alerts.batch(() => {
      home.alerts.attend(one.id, bo);
      home.alerts.accept(two.id, bo);
    });
    await home.state.flushed();
    const headAfter = home.announced.length;
    await until(
      () => "node B's feed to deliver the later changes",
      () => (b.feed.status().position.get(p) ?? 0) >= headAfter,
    );
    expect(anna.messages.filter((m) => m.type === "alert" || m.type === "resumed")).toEqual([]);
    b.gate.releaseAfter();
    await opened;
    await anna.change(two.id, "accepted");

    const expected = home.announced.slice(seen).map(key);
    expect(expected.length).toBeGreaterThanOrEqual(5);
    expect(alertMsgs(anna).map(key)).toEqual(expected);
    // The replay is what the read covered (up to the raise of the second fall); the rest came live.
    const resumedAt = anna.messages.findIndex((m) => m.type === "resumed");
    expect(anna.messages[resumedAt].replayed).toBe(headBefore - seen);
    expect(anna.messages.slice(resumedAt + 1).filter((m) => m.type === "alert").length).toBe(
      headAfter - headBefore,
    );
    expect(lastCursor(anna)).toBe(`${p}:${headAfter}`);
  });

  it("a resume from below the retention cut gets a resume_too_old snapshot; a cursor never issued, a seq or a malformed cursor do not resume", async () => {
    const { url, o, a, b, connect, hello, people } = await cluster();
    const home = o.site(SITE_A);
    const p = partitionOf(SITE_A, PARTITIONS);
    const bo = people.get("bo")!.identity;
    const one = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    await home.state.flushed();
    const anna = await connect(a, "anna");
    const cursor = anna.messages.find((m) => m.type === "snapshot").cursor;
    expect(cursor).toBe(`${p}:${home.announced.length}`);
    const two = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "14"), null);
    home.alerts.accept(one.id, bo);
    await home.state.flushed();
    await anna.change(one.id, "accepted");

    // A day passes for the rows the cursor still needs (PostgreSQL's clock), and they are pruned.
    const admin = newPool(url, "operator");
    pgdb.cleanup(() => admin.end());
    await admin.query("UPDATE change_feed SET appended_at = appended_at - interval '25 hours'");
    expect(await pruneChanges(admin, 24 * HOUR)).toBeGreaterThan(0);

    const back = await connect(b, "anna", { resumeCursor: cursor });
    const snap = back.messages.find((m) => m.type === "snapshot");
    expect(snap.reason).toBe("resume_too_old");
    expect(snap.alerts.map((x: AlertView) => [x.id, x.state]).sort()).toEqual(
      [
        [one.id, "accepted"],
        [two.id, "raised"],
      ].sort(),
    );
    expect(snap.cursor).toBe(`${p}:${home.announced.length}`);
    expect(alertMsgs(back)).toEqual([]);

    // Past the head: never issued here. A single process's seq: no place in the feed.
    const ahead = await connect(b, "anna", { resumeCursor: `${p}:${home.announced.length + 50}` });
    expect(ahead.messages.find((m) => m.type === "snapshot").reason).toBe("resume_unknown");
    const bySeq = await connect(a, "anna", { resumeFrom: 3 });
    expect(bySeq.messages.find((m) => m.type === "snapshot").reason).toBe("resume_unknown");

    // A malformed cursor is refused with the catalogue's code; the connection may say hello again.
    const { c: bad } = await hello(a, "anna", { resumeCursor: "3:x" });
    const refused = await bad.next((m) => m.type === "reply" && m.id === "hello");
    expect(refused).toMatchObject({ ok: false, error: { code: "invalid_body" } });
    bad.send({ type: "hello", id: "again", token: "", resumeCursor: cursor });
    expect((await bad.next((m) => m.type === "reply" && m.id === "again")).ok).toBe(false);
  });

  it("a person sees only alerts of their sites and units, and another unit's alert once it escalated to the whole site; a renotify sounds on every node but not for managers, and is not replayed", async () => {
    const { o, a, b, connect, people } = await cluster();
    const anna = await connect(a, "anna");
    const carl = await connect(b, "carl");
    const hans = await connect(a, "hans");
    const mia = await connect(b, "mia");
    const home = o.site(SITE_A);
    const away = o.site(SITE_B);

    const fall = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    const elsewhere = away.alerts.raise(FALL, fallEvent(SITE_B, "unit-9", "3"), null);
    await Promise.all([home.state.flushed(), away.state.flushed()]);
    await anna.change(fall.id, "raised");
    await hans.change(elsewhere.id, "raised");
    await mia.change(fall.id, "raised");
    await mia.change(elsewhere.id, "raised");

    // Everybody asked at the unit level (Anna, on the owner's console) rejects: the whole site next.
    home.alerts.reject(fall.id, people.get("anna")!.identity, "busy in room 9");
    await home.state.flushed();
    const escalated = await carl.change(fall.id, "escalated");
    expect(escalated.alert.level).toBe(1);
    // A renotify the owner appends reaches the staff who may see it, on both nodes.
    const now = home.alerts.get(fall.id)!;
    await o.leases.fenced(home.partition, o.leases.tokenOf(home.partition)!, (c) =>
      appendChanges(c, home.partition, [renotifyEntry(now, home.announced[home.announced.length - 1]!.seq)]),
    );
    const onA = await anna.next((m) => m.type === "renotify");
    expect(onA).toEqual({ type: "renotify", alertId: fall.id, priority: "high", level: 1 });
    await carl.next((m) => m.type === "renotify");
    // A marker change after it: whoever saw it has seen the renotify before, if any came.
    const marker = home.alerts.comment(fall.id, people.get("anna")!.identity, "on my way");
    await home.state.flushed();
    await mia.change(fall.id, "comment");
    await hans.next((m) => m.type === "alert" || m.type === "renotify", 300).catch(() => null);

    // Carl saw nothing of the fall before its escalation; Hans nothing of home-a; Mia no renotify.
    const carlSaw = alertMsgs(carl).map((m) => m.change);
    expect(carlSaw[0]).toBe("escalated");
    expect(carlSaw).not.toContain("raised");
    expect(new Set(alertMsgs(hans).map((m) => m.alert.id))).toEqual(new Set([elsewhere.id]));
    expect(hans.messages.filter((m) => m.type === "renotify")).toEqual([]);
    expect(mia.messages.filter((m) => m.type === "renotify")).toEqual([]);
    expect(alertMsgs(mia).map((m) => m.alert.id)).toEqual(expect.arrayContaining([fall.id, elsewhere.id]));
    expect(marker.id).toBe(fall.id);

    // Carl's fresh snapshot holds the escalated fall; Hans's does not; a resume skips the renotify.
    const carl2 = await connect(a, "carl");
    expect(carl2.messages.find((m) => m.type === "snapshot").alerts.map((x: AlertView) => x.id)).toEqual([
      fall.id,
    ]);
    const hans2 = await connect(b, "hans");
    expect(hans2.messages.find((m) => m.type === "snapshot").alerts.map((x: AlertView) => x.id)).toEqual([
      elsewhere.id,
    ]);
    const annaFirst = anna.messages.find((m) => m.type === "snapshot").cursor;
    const replay = await connect(b, "anna", { resumeCursor: annaFirst });
    expect(replay.messages.filter((m) => m.type === "renotify")).toEqual([]);
    expect(alertMsgs(replay).map(key)).toEqual(alertMsgs(anna).map(key));
  });

  it("when a node's feed reports rows it could not read (a gap), its streams in those partitions take a fresh snapshot and go on from it", async () => {
    const { o, a, connect, people } = await cluster();
    const home = o.site(SITE_A);
    const p = partitionOf(SITE_A, PARTITIONS);
    const anna = await connect(a, "anna");
    const hans = await connect(a, "hans");
    const fall = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    await home.state.flushed();
    await anna.change(fall.id, "raised");

    // What the feed emits when it was away past the retention (ChangeFeedEvents.gap).
    a.feed.emit("gap", [p], "pruned");
    const snap = await anna.next((m) => m.type === "snapshot" && m.reason === "resume_too_old");
    expect(snap.alerts.map((x: AlertView) => x.id)).toEqual([fall.id]);
    expect(snap.cursor).toBe(`${p}:${home.announced.length}`);
    expect(hans.messages.filter((m) => m.type === "snapshot")).toHaveLength(1);

    home.alerts.accept(fall.id, people.get("bo")!.identity);
    await home.state.flushed();
    await anna.change(fall.id, "accepted");
    expect(alertMsgs(anna).filter((m) => m.change === "accepted")).toHaveLength(1);
    // A feed past anything the database issued (restored or replaced): resume_unknown.
    a.feed.emit("gap", [p], "unknown");
    const again = await anna.next((m) => m.type === "snapshot" && m.reason === "resume_unknown");
    expect(again.alerts.map((x: AlertView) => [x.id, x.state])).toEqual([[fall.id, "accepted"]]);
  });
});

describe("the console's client in a browser resumes against a cluster node", () => {
  let browser: TestBrowser;
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });

  it("web/staff-client.js leaves node A and resumes on node B with the cursor A gave it: the changes it missed, once each, in order", async () => {
    const { o, a, b, people } = await cluster();
    const home = o.site(SITE_A);
    // The client module from web/, on a page of its own origin.
    const page = createServer((req, res) => {
      if (req.url === "/staff-client.js") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(readFileSync(`${WEB_ROOT}/staff-client.js`));
      } else {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(
          '<!doctype html><title>client</title><script type="module">import { StaffClient } from "/staff-client.js"; window.StaffClient = StaffClient;</script>',
        );
      }
    });
    await new Promise<void>((r) => page.listen(0, "127.0.0.1", r));
    pgdb.cleanup(() => new Promise((r) => page.close(r)));
    const { context, page: tab, problems } = await browser.newPage();
    pgdb.cleanup(() => context.close());
    await tab.goto(`http://127.0.0.1:${(page.address() as AddressInfo).port}/`);
    await tab.waitForFunction(() => "StaffClient" in window);
    const ws = (n: Node) => `${n.url.replace(/^http/, "ws")}/staff/ws`;
    await tab.evaluate(
      async ({ url, token }) => {
        const w = window as unknown as {
          StaffClient: new (o: { url: string; token: string }) => EventTarget & Record<string, unknown>;
          client: EventTarget & Record<string, unknown>;
          got: unknown[];
        };
        const Client = w.StaffClient;
        w.got = [];
        w.client = new Client({ url, token });
        for (const type of ["snapshot", "alert", "resumed"])
          w.client.addEventListener(type, (ev) => w.got.push((ev as CustomEvent).detail));
        (w.client.start as () => void).call(w.client);
      },
      { url: ws(a), token: people.get("anna")!.token },
    );
    const got = () => tab.evaluate(() => (window as unknown as { got: Msg[] }).got);
    const waitFor = async (what: string, ok: (m: Msg[]) => boolean) => {
      const started = performance.now();
      for (;;) {
        const messages = await got();
        if (ok(messages)) return messages;
        if (performance.now() - started > 10_000) throw new Error(`${what}: ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitFor("the snapshot from node A", (m) => m.some((x) => x.type === "snapshot"));
    const fall = home.alerts.raise(FALL, fallEvent(SITE_A, "unit-1", "12"), null);
    await home.state.flushed();
    await waitFor("the raise on node A", (m) => m.some((x) => x.type === "alert" && x.change === "raised"));
    await tab.evaluate(() => {
      const c = (window as unknown as { client: { stop(): void } }).client;
      c.stop();
    });
    const seen = home.announced.length;

    const bo = people.get("bo")!.identity;
    home.alerts.accept(fall.id, bo);
    await home.state.flushed();
    home.alerts.attend(fall.id, bo);
    await home.state.flushed();
    const missed = home.announced.slice(seen).map(key);

    await tab.evaluate((url) => {
      const c = (window as unknown as { client: { url: string; start(): void } }).client;
      c.url = url;
      c.start();
    }, ws(b));
    const all = await waitFor("the resume on node B", (m) => m.some((x) => x.type === "resumed"));
    const after = all.slice(all.findIndex((x) => x.type === "resumed") - missed.length);
    expect(after.filter((x) => x.type === "alert").map(key)).toEqual(missed);
    expect(all.filter((x) => x.type === "snapshot")).toHaveLength(1);
    expect(all.find((x) => x.type === "resumed").replayed).toBe(missed.length);
    const alertKeys = all.filter((x) => x.type === "alert").map(key);
    expect(new Set(alertKeys).size).toBe(alertKeys.length);
    expect(problems.errors).toEqual([]);
  });
});
