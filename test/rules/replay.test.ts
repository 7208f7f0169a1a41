/**
 * Replay after a crash, on simulated time: events committed to the log whose rule transaction never
 * happened (the process died in between) go through the rules at the next start, judged by their own
 * times, and exactly once. The crash window is made by taking the live rules off the stream while
 * the events are logged; the restart is a second set of components on the same database.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RULES_CURSOR } from "../../src/rules/engine.js";
import { getCursor } from "../../src/store/db.js";
import { buildHarness, DEVICES, type Harness } from "./harness.js";

const MIN = 60_000;
const T0 = "2026-03-02T10:00:00Z";

const RULES = `
staleAfter: 5m
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
  - id: repeated-falls
    when: { event: fall.detected, count: { atLeast: 2, within: 24h, per: resident } }
    raise: { alert: repeated-falls, priority: medium, message: { da: "{count}. fald", en: "fall no. {count}" } }
  - id: bed-exit
    when: { event: bed.exit, residentFlags: [fall-risk] }
    raise:
      alert: bed-exit
      priority: medium
      message: { da: "Ikke tilbage", en: "Not back" }
      unless: { event: bed.return, within: 10m }
`;

let h: Harness;
const harnesses: Harness[] = [];
beforeEach(() => {
  vi.useFakeTimers({ now: new Date(T0) });
  h = buildHarness({ rulesYaml: RULES });
  harnesses.push(h);
});
afterEach(() => {
  harnesses.at(-1)?.close();
  harnesses.length = 0;
  vi.useRealTimers();
});

/** The process dies after its log commits and before its rule transactions: rules see nothing more. */
function crashWindow(x: Harness): void {
  x.engine.onEvents = () => {};
}

/** kill -9 and start again on the same database, `downMs` later. */
function restart(downMs: number): Harness {
  h.timers.stop();
  vi.setSystemTime(Date.now() + downMs);
  h = buildHarness({ rulesYaml: RULES, db: h.db });
  harnesses.push(h);
  return h;
}

function effects(seq: number): number {
  return (
    h.db
      .prepare("SELECT count(*) AS n FROM alert_audit WHERE json_extract(data, '$.eventSeq') = ?")
      .get(seq) as { n: number }
  ).n;
}

describe("a power loss takes back the main database's last commits (they were shown before their fsync)", () => {
  it("the replay raises the same alert, with the same id, from the fall in the event log", () => {
    const before = getCursor(h.db, RULES_CURSOR);
    const fall = h.emit("fall.detected", { device: DEVICES.radar.id });
    const shown = h.all();
    expect(shown.map((a) => a.type).sort()).toEqual(["fall"]);
    // What a power loss before the WAL's fsync leaves: the event log (fsynced before the rules ran)
    // keeps the fall; the rule transaction (alert, audit, attempts, timers, cursor) is gone.
    // (The audit's append-only trigger guards the running gateway, not the disk: lifted to rewind.)
    h.db.exec(
      `DROP TRIGGER alert_audit_append_only_d;
       DELETE FROM channel_attempts; DELETE FROM alert_audit; DELETE FROM alerts; DELETE FROM timers;`,
    );
    h.db.prepare("UPDATE cursors SET position = ? WHERE name = ?").run(before, RULES_CURSOR);

    restart(MIN);
    const replayed = h.all();
    expect(replayed.map((a) => a.id)).toEqual(shown.map((a) => a.id));
    expect(replayed[0]).toMatchObject({ type: "fall", state: "raised", deviceId: DEVICES.radar.id });
    expect(effects(fall.logSeq)).toBe(1);
  });
});

describe("events logged before a crash reach the rules at the next start, exactly once", () => {
  it("a fall logged but not evaluated raises its alert at restart an hour later, not skipped as stale, and a second restart changes nothing", () => {
    crashWindow(h);
    const fall = h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all()).toEqual([]);

    restart(60 * MIN);
    const [alert] = h.all();
    expect(alert).toMatchObject({ type: "fall", state: "raised" });
    expect(effects(fall.logSeq)).toBe(1);
    expect(getCursor(h.db, RULES_CURSOR)).toBe(fall.logSeq);

    restart(MIN);
    expect(h.all()).toHaveLength(1);
    expect(effects(fall.logSeq)).toBe(1);
  });

  it("a replayed fall counts once toward repeated falls: the second fall of the day raises the repeat alert once, with count 2", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    crashWindow(h);
    vi.advanceTimersByTime(5 * MIN);
    const second = h.emit("fall.detected", { device: DEVICES.radar.id });

    restart(MIN);
    restart(MIN);
    const repeated = h.all().filter((a) => a.type === "repeated-falls");
    expect(repeated).toHaveLength(1);
    expect(repeated[0]!.message.en).toBe("fall no. 2");
    expect(effects(second.logSeq)).toBe(2); // the fall alert's update and the repeat alert's raise
  });

  it("a bed return logged inside the window still cancels it when the restart comes after the window ended", () => {
    // Without the timers fired in log order, the window would fire at start before the return.
    h.emit("bed.exit");
    expect(h.timers.list("absence")).toHaveLength(1);
    vi.advanceTimersByTime(2 * MIN);
    crashWindow(h);
    h.emit("bed.return");

    // Down past the window's end: the window must not fire before the return is replayed.
    restart(30 * MIN);
    expect(h.all().filter((a) => a.type === "bed-exit")).toEqual([]);
    expect(h.timers.list("absence")).toEqual([]);
  });

  it("an absence window opened by a replayed exit runs from when the exit was received, not from the restart", () => {
    crashWindow(h);
    h.emit("bed.exit");

    restart(4 * MIN);
    const [window] = h.timers.list("absence");
    expect(window!.dueAt).toBe(Date.parse(T0) + 10 * MIN);
    expect(h.all()).toEqual([]);
    vi.advanceTimersByTime(6 * MIN);
    expect(h.all().map((a) => a.type)).toEqual(["bed-exit"]);
  });
});

describe("an exit replayed after its window ended", () => {
  it("raises at start, from the exit", () => {
    crashWindow(h);
    const exit = h.emit("bed.exit");
    restart(20 * MIN);
    const raised = h.all().filter((a) => a.type === "bed-exit");
    expect(raised).toHaveLength(1);
    expect(effects(exit.logSeq)).toBe(1);
  });
});

describe("timers that fell due between replayed events fire between them", () => {
  it("a return logged after the window ended does not erase the alert the window owed", () => {
    h.emit("bed.exit");
    // The window's end passes while the rules are stuck (a full disk, then a crash): its timer has
    // not fired when the return is logged 15 minutes later.
    h.timers.stop();
    crashWindow(h);
    vi.setSystemTime(Date.now() + 15 * MIN);
    h.emit("bed.return");

    restart(MIN);
    expect(h.all().map((a) => a.type)).toEqual(["bed-exit"]);
  });
});

describe("a batch that rolls back (a full disk at COMMIT) leaves the armed timers as the database has them", () => {
  it("a timer set inside it is not armed, and one cancelled inside it still is", () => {
    h.emit("bed.exit");
    const [window] = h.timers.list("absence");
    const rowCount = () => (h.db.prepare("SELECT count(*) AS n FROM timers").get() as { n: number }).n;
    const before = rowCount();
    expect(() =>
      h.alerts.batch(() => {
        h.timers.set("absence:other", "absence", Date.now() + MIN, { ruleId: "bed-exit", eventSeq: 1 });
        h.timers.cancel(window!.id);
        throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
      }),
    ).toThrow(/disk is full/);
    expect(rowCount()).toBe(before);
    expect(h.timers.get("absence:other")).toBeUndefined();
    expect(h.timers.get(window!.id)).toEqual(window);
    // And it still fires when due.
    vi.advanceTimersByTime(10 * MIN);
    expect(h.all().map((a) => a.type)).toEqual(["bed-exit"]);
  });
});

describe("a rule batch the disk refuses is retried from the log, without a restart", () => {
  it("a fall whose rule transaction failed with SQLITE_FULL is alerted once the retry commits, and later events wait their turn", () => {
    const batch = h.alerts.batch.bind(h.alerts);
    let refuse = 1;
    h.alerts.batch = <T>(fn: () => T): T =>
      batch(() => {
        const result = fn();
        // The disk refuses the outermost COMMIT once: everything in it rolls back.
        if (refuse > 0 && refuse--)
          throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
        return result;
      });
    const first = h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all()).toEqual([]);
    expect(h.engine.position.behind).toBe(true);
    // Logged while behind: read from the log after the first, not evaluated out of order.
    const second = h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all()).toEqual([]);

    vi.advanceTimersByTime(1000);
    expect(h.engine.position).toEqual({ cursor: second.logSeq, behind: false });
    expect(effects(first.logSeq)).toBe(1);
    expect(effects(second.logSeq)).toBe(2); // the fall's update and the repeated-falls raise
    expect(h.all().map((a) => a.type)).toEqual(["fall", "repeated-falls"]);
  });
});

describe("a crash between a raised alert and its first level (AlertManager.raise())", () => {
  it("enters the level at the next start, once: the step's timer was committed with the alert", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id, hold: true });
    const fall = h.all().find((a) => a.type === "fall")!;
    const actions = () => h.alerts.history(fall.id).map((x) => x.action);
    const attempts = () =>
      h.db.prepare("SELECT count(*) AS n FROM channel_attempts WHERE alert_id = ?").get(fall.id) as {
        n: number;
      };
    expect(actions()).toEqual(["raised"]);
    expect(attempts().n).toBe(0);

    restart(5_000);
    // The step fired at start (before connections): the level is entered, its escalation armed.
    expect(actions()).toEqual(["raised", "notified"]);
    expect(attempts().n).toBeGreaterThan(0);
    const escalation = h.timers.get(`alert:${fall.id}:escalate`);
    expect(escalation).toMatchObject({ kind: "escalate" });

    // Nothing of it runs twice.
    const n = attempts().n;
    restart(1_000);
    expect(actions()).toEqual(["raised", "notified"]);
    expect(attempts().n).toBe(n);
    expect(h.timers.get(`alert:${fall.id}:escalate`)).toMatchObject({
      kind: "escalate",
      dueAt: escalation!.dueAt,
    });
  });
});
