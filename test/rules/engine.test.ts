import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DST_DAYS } from "../time/dst-table.js";
import { buildHarness, DEVICES, type Harness, UNIT_STAFF } from "./harness.js";

const MIN = 60_000;
const HOUR = 60 * MIN;

/** A winter night in Copenhagen (CET, UTC+1): 23:00 local. */
const WINTER_NIGHT = "2026-01-15T22:00:00Z";
/** The same day at 14:00 local. */
const WINTER_DAY = "2026-01-15T13:00:00Z";

const NIGHT_RULES = `
rules:
  - id: night-door
    when: { event: door.open, time: { from: "22:00", to: "07:00" } }
    raise: { alert: night-door, priority: low, message: { da: "dør", en: "door" } }
  - id: two-to-three
    when: { event: room.exit, time: { from: "02:00", to: "03:00" } }
    raise: { alert: two-to-three, priority: low, message: { da: "ud", en: "out" } }
`;

let h: Harness;
afterEach(() => {
  h?.close();
  vi.useRealTimers();
});

/** Did the event logged at this instant raise or update an alert? */
function raisedBy(type: "door.open" | "room.exit", at: string): boolean {
  vi.setSystemTime(new Date(at));
  const e = h.emit(type);
  return Boolean(h.db.prepare("SELECT 1 FROM alerts WHERE last_event_seq = ?").get(e.logSeq));
}

describe("the time condition, in the site's time zone (Europe/Copenhagen)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_NIGHT) });
    h = buildHarness({ rulesYaml: NIGHT_RULES });
  });

  it("a 22:00-07:00 window spans midnight: from 22:00 inclusive to 07:00 exclusive, local time", () => {
    expect(raisedBy("door.open", "2026-01-15T20:59:00Z")).toBe(false); // 21:59
    expect(raisedBy("door.open", "2026-01-15T21:00:00Z")).toBe(true); // 22:00
    expect(raisedBy("door.open", "2026-01-15T22:59:00Z")).toBe(true); // 23:59
    expect(raisedBy("door.open", "2026-01-15T23:00:00Z")).toBe(true); // 00:00
    expect(raisedBy("door.open", "2026-01-16T05:59:00Z")).toBe(true); // 06:59
    expect(raisedBy("door.open", "2026-01-16T06:00:00Z")).toBe(false); // 07:00
    expect(raisedBy("door.open", "2026-01-16T12:00:00Z")).toBe(false); // 13:00
  });

  it("a window inside the skipped hour never holds in spring and holds for two real hours in autumn", () => {
    expect(raisedBy("room.exit", "2026-03-29T00:59:00Z")).toBe(false); // 01:59 CET
    expect(raisedBy("room.exit", "2026-03-29T01:00:00Z")).toBe(false); // 03:00 CEST
    expect(raisedBy("room.exit", "2026-10-25T00:00:00Z")).toBe(true); // 02:00 CEST
    expect(raisedBy("room.exit", "2026-10-25T01:00:00Z")).toBe(true); // 02:00 CET
    expect(raisedBy("room.exit", "2026-10-25T01:59:00Z")).toBe(true); // 02:59 CET
    expect(raisedBy("room.exit", "2026-10-25T02:00:00Z")).toBe(false); // 03:00 CET
  });
});

describe.each(DST_DAYS)("the 22:00-07:00 time condition across $name", (d) => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(Date.parse(d.night.start) - 2 * HOUR) });
    h = buildHarness({ rulesYaml: NIGHT_RULES, timeZone: d.zone });
  });

  it(`holds from ${d.night.start} to ${d.night.end} (${d.night.hours} real hours) and at each sample`, () => {
    const start = Date.parse(d.night.start);
    const end = Date.parse(d.night.end);
    const checks = [
      ...d.samples.map((s) => [Date.parse(s.at), s.inNight] as const),
      [start - MIN, false] as const,
      [start, true] as const,
      [end - MIN, true] as const,
      [end, false] as const,
    ].sort((x, y) => x[0] - y[0]);
    for (const [t, night] of checks) {
      const at = new Date(t).toISOString();
      expect(raisedBy("door.open", at), at).toBe(night);
    }
  });
});

describe("absence: a bed exit of a fall-risk resident at night", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_NIGHT) });
    h = buildHarness();
  });

  it("raises a medium bed-exit alert only if the resident is not back within 10 minutes", () => {
    const exit = h.emit("bed.exit");
    vi.advanceTimersByTime(10 * MIN - 1);
    expect(h.all()).toEqual([]);
    vi.advanceTimersByTime(1);
    const [a, ...rest] = h.all();
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      type: "bed-exit",
      priority: "medium",
      state: "raised",
      deviceId: DEVICES.mat.id,
      resident: "R-0001",
      lastEventType: "bed.exit",
      message: { en: "R-0001 not back in bed (r1)" },
    });
    expect(Date.parse(a!.raisedAt)).toBe(Date.parse(exit.receivedAt) + 10 * MIN);
  });

  it("does not raise when the resident is back in bed within 10 minutes", () => {
    h.emit("bed.exit");
    vi.advanceTimersByTime(9 * MIN);
    h.emit("bed.return");
    expect(h.timers.list("absence")).toEqual([]);
    vi.advanceTimersByTime(2 * HOUR);
    expect(h.all()).toEqual([]);
  });

  it("a second exit inside the window does not restart it", () => {
    h.emit("bed.exit");
    vi.advanceTimersByTime(5 * MIN);
    h.emit("bed.exit");
    vi.advanceTimersByTime(5 * MIN);
    expect(h.all().map((a) => a.type)).toEqual(["bed-exit"]);
  });

  it("a return after the alert was raised resolves it", () => {
    h.emit("bed.exit");
    vi.advanceTimersByTime(12 * MIN);
    h.emit("bed.return");
    expect(h.all()).toMatchObject([{ type: "bed-exit", state: "resolved", outcome: "no-action" }]);
    expect(h.timers.list().filter((t) => t.id.includes(h.all()[0]!.id))).toEqual([]);
  });

  it("in the daytime, or for a resident without the fall-risk flag, waits for nothing and raises nothing", () => {
    vi.setSystemTime(new Date(WINTER_DAY));
    h.emit("bed.exit");
    vi.setSystemTime(new Date(WINTER_NIGHT));
    h.emit("bed.exit", { device: DEVICES.matNoRisk.id });
    expect(h.timers.list("absence")).toEqual([]);
    vi.advanceTimersByTime(HOUR);
    expect(h.all()).toEqual([]);
  });
});

describe("counts: repeated falls of one resident", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    h = buildHarness();
  });

  /** A fall that staff take and close, so only the count is left to look at. */
  function fallAndClose(): void {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const fall = h.all().find((a) => a.type === "fall" && a.state === "raised")!;
    h.alerts.accept(fall.id, UNIT_STAFF);
    h.alerts.resolve(fall.id, UNIT_STAFF, "fall-without-injury");
  }

  it("two falls within 24 hours raise a repeated-falls alert for the nurse", () => {
    fallAndClose();
    vi.advanceTimersByTime(23 * HOUR);
    fallAndClose();
    const repeated = h.all().filter((a) => a.type === "repeated-falls");
    expect(repeated).toMatchObject([
      {
        priority: "medium",
        state: "raised",
        resident: "R-0001",
        message: { da: "R-0001 er faldet 2. gang på et døgn" },
      },
    ]);
  });

  it("two falls 25 hours apart do not", () => {
    fallAndClose();
    vi.advanceTimersByTime(25 * HOUR);
    fallAndClose();
    expect(h.all().filter((a) => a.type === "repeated-falls")).toEqual([]);
    expect(h.all().filter((a) => a.type === "fall")).toHaveLength(2);
  });
});

describe("silence: device.offline not followed by device.online within 2 minutes", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    h = buildHarness();
  });

  it("raises a low device-offline alert, and device.online resolves it", () => {
    h.emit("device.offline", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(2 * MIN - 1);
    expect(h.all()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(h.all()).toMatchObject([
      { type: "device-offline", priority: "low", state: "raised", deviceId: DEVICES.radar.id },
    ]);
    vi.advanceTimersByTime(10 * MIN);
    h.emit("device.online", { device: DEVICES.radar.id });
    const [a] = h.all();
    expect(a).toMatchObject({ state: "resolved", outcome: "no-action" });
    expect(h.alerts.history(a!.id).at(-1)).toMatchObject({
      action: "resolved",
      actor: { id: `device:${DEVICES.radar.id}` },
    });
  });

  it("a flap (back online within 2 minutes) raises nothing", () => {
    h.emit("device.offline", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(90_000);
    h.emit("device.online", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(HOUR);
    expect(h.all()).toEqual([]);
  });
});

describe("maintenance mode", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    h = buildHarness();
  });

  it("suppresses alerts of a device under maintenance; the audit names the maintenance window", () => {
    const now = Date.now();
    const id = Number(
      h.db
        .prepare(
          "INSERT INTO maintenance (site_id, device_id, room_id, starts_at, ends_at, reason, created_by, created_at) VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
        )
        .run("home-a", DEVICES.radar.id, now, now + HOUR, "radar recalibration", "Nurse Nina", now)
        .lastInsertRowid,
    );
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const [a] = h.all();
    expect(a).toMatchObject({ type: "fall", state: "suppressed", undelivered: false });
    expect(h.alerts.history(a!.id)).toMatchObject([
      { action: "suppressed", stateAfter: "suppressed", reason: `maintenance #${id}: radar recalibration` },
    ]);
    // Nothing is armed for a suppressed alert: no renotify, no escalation.
    expect(h.timers.list()).toEqual([]);
    expect(h.alerts.open()).toEqual([]);
    // After the window the same device raises normally.
    vi.advanceTimersByTime(HOUR);
    h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all().map((x) => x.state)).toEqual(["suppressed", "raised"]);
  });
});

describe("one open alert per (type, device, resident)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    h = buildHarness();
  });

  it("a re-trigger while open updates the open alert's count; after resolve a new event raises a new alert", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(5000);
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const falls = () => h.all().filter((a) => a.type === "fall");
    expect(falls()).toHaveLength(1);
    const first = falls()[0]!;
    expect(first.count).toBe(2);
    expect(h.alerts.history(first.id).map((x) => x.action)).toEqual(["raised", "notified", "updated"]);

    h.alerts.accept(first.id, UNIT_STAFF);
    h.alerts.resolve(first.id, UNIT_STAFF, "false-alarm");
    h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(falls()).toHaveLength(2);
    const second = falls()[1]!;
    expect(second.id).not.toBe(first.id);
    expect(second).toMatchObject({ state: "raised", count: 1 });
    expect(h.alerts.get(first.id)).toMatchObject({ state: "resolved", outcome: "false-alarm", count: 2 });
  });

  it("a suspected fall (medium) followed by a detected one upgrades the same alert to high", () => {
    h.emit("fall.suspected", { device: DEVICES.radar.id });
    const [suspected] = h.all();
    expect(suspected).toMatchObject({
      type: "fall",
      priority: "medium",
      message: { en: "Possible fall in r1 (R-0001)" },
    });
    vi.advanceTimersByTime(10_000);
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const all = h.all();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({
      id: suspected!.id,
      priority: "high",
      count: 2,
      lastEventType: "fall.detected",
      message: { en: "Fall in r1 (R-0001)", da: "Fald i r1 (R-0001)" },
    });
    expect(h.alerts.history(suspected!.id).at(-1)).toMatchObject({
      action: "updated",
      reason: "priority raised to high",
    });
  });

  it("an upgraded alert follows the high ladder and re-notifies at the high rate", () => {
    const renotified: number[] = [];
    h.alerts.on("renotify", () => renotified.push(Date.now()));
    h.emit("fall.suspected", { device: DEVICES.radar.id });
    const t0 = Date.now();
    vi.advanceTimersByTime(10_000);
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const id = h.all()[0]!.id;
    // The medium ladder would wait 3 minutes at the unit; the high one waits 60 s.
    vi.advanceTimersByTime(60_000);
    expect(h.alerts.get(id)!.level).toBe(1);
    const escalated = h.alerts.history(id).find((x) => x.action === "escalated")!;
    expect(Date.parse(escalated.at) - t0).toBe(70_000);
    // High re-notifies every 10 s from the upgrade: at 20 s, 30 s, ... 70 s after the suspicion.
    expect(renotified.map((t) => t - t0)).toEqual([20_000, 30_000, 40_000, 50_000, 60_000, 70_000]);
  });
});

describe("commits before announcements", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_NIGHT) });
    h = buildHarness({ fallback: true });
  });

  it("staff hear of a change only once it is committed, in audit order", () => {
    const seen: { seq: number; inTransaction: boolean }[] = [];
    h.alerts.on("change", (c: { seq: number }) =>
      seen.push({ seq: c.seq, inTransaction: h.db.inTransaction }),
    );
    h.connected.length = 0; // so the raise runs down the ladder inside the same step
    h.emit("fall.detected", { device: DEVICES.radar.id });
    h.emit("bed.exit");
    vi.advanceTimersByTime(10 * 60_000);
    const id = h.all()[0]!.id;
    h.alerts.accept(id, UNIT_STAFF);
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(seen.filter((x) => x.inTransaction)).toEqual([]);
    expect(seen.map((x) => x.seq)).toEqual([...seen.map((x) => x.seq)].sort((a, b) => a - b));
  });
});

describe("a raised alert's first level: a step of its own, after the raise is on the screens", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_NIGHT) });
    h = buildHarness();
  });

  it("is announced before anyone is notified, its level waits in a committed timer, and a receipt in between counts", () => {
    const seen: string[] = [];
    h.alerts.on("change", (c: { change: string }) => seen.push(c.change));
    h.emit("fall.detected", { device: DEVICES.radar.id, hold: true });
    const [a] = h.all();
    expect(a).toMatchObject({ state: "raised", level: 0, undelivered: true });
    expect(seen).toEqual(["raised"]);
    // The step is a row of the timers table, committed with the alert: a crash now loses nothing.
    expect(
      h.db.prepare("SELECT kind, payload FROM timers WHERE id = ?").get(`alert:${a!.id}:escalate`),
    ).toEqual({
      kind: "enter",
      payload: JSON.stringify({ alertId: a!.id, level: 0 }),
    });
    // Anna's screen confirms the alert before its level is entered ...
    h.alerts.received(a!.id, UNIT_STAFF);
    vi.advanceTimersByTime(0);
    expect(seen).toEqual(["raised", "delivered", "notified"]);
    // ... so her console attempt is recorded as delivered, not left waiting for a receipt that came.
    expect(
      h.db.prepare("SELECT channel, staff_id, status FROM channel_attempts WHERE alert_id = ?").all(a!.id),
    ).toEqual([{ channel: "console", staff_id: "anna", status: "delivered" }]);
    // The escalation timer took the step's place.
    expect(h.timers.get(`alert:${a!.id}:escalate`)).toMatchObject({ kind: "escalate" });
  });

  it("is entered as soon as the task that raised it ends, not a timer turn later (push and paging wait for it)", async () => {
    h.emit("fall.detected", { device: DEVICES.radar.id, hold: true });
    const [a] = h.all();
    expect(h.alerts.history(a!.id).map((x) => x.action)).toEqual(["raised"]);
    await Promise.resolve(); // the microtasks queued by the raising task; no timer has run
    expect(h.alerts.history(a!.id).map((x) => x.action)).toEqual(["raised", "notified"]);
  });

  it("is not entered for an alert accepted before its turn", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id, hold: true });
    const [a] = h.all();
    h.alerts.accept(a!.id, UNIT_STAFF);
    vi.advanceTimersByTime(0);
    expect(h.alerts.history(a!.id).map((x) => x.action)).toEqual(["raised", "accepted"]);
    expect(h.db.prepare("SELECT count(*) AS n FROM channel_attempts WHERE alert_id = ?").get(a!.id)).toEqual({
      n: 0,
    });
  });
});

describe("cancel and resolve", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
  });

  it("a rule that both cancels and resolves closes both alerts", () => {
    h = buildHarness({
      rulesYaml: `
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: f, en: f } }
  - id: call
    when: { event: call.manual }
    raise: { alert: call, priority: high, message: { da: c, en: c } }
  - id: all-clear
    when: { event: intervention.complete }
    cancel: { alert: fall, reason: all clear }
    resolve: { alert: call, outcome: assistance-given }
`,
    });
    h.emit("fall.detected", { device: DEVICES.native.id });
    h.emit("call.manual", { device: DEVICES.native.id });
    h.emit("intervention.complete", { device: DEVICES.native.id });
    expect(h.all().map((a) => [a.type, a.state, a.outcome])).toEqual([
      ["fall", "cancelled", null],
      ["call", "resolved", "assistance-given"],
    ]);
    expect(h.alerts.history(h.all()[0]!.id).at(-1)).toMatchObject({
      action: "cancelled",
      reason: "all clear",
    });
  });
});

describe("late events (staleAfter, 6 h by default)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_NIGHT) });
    h = buildHarness();
  });

  it("a fall that reaches the gateway 7 hours after it happened pages nobody, but is counted", () => {
    const late = new Date(Date.now() - 7 * HOUR).toISOString();
    h.emit("fall.detected", { device: DEVICES.radar.id, occurredAt: late });
    expect(h.all()).toEqual([]);
    expect(h.engine.stats.staleSkipped).toBe(1);
    // A fresh fall is the resident's second within 24 hours.
    h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all().map((a) => [a.type, a.count])).toEqual([
      ["fall", 1],
      ["repeated-falls", 1],
    ]);
  });

  it("a replaying device's events page nobody whatever time they carry; other devices page as always", () => {
    h.engine.replaying = new Set([DEVICES.radar.id]);
    h.emit("fall.detected", { device: DEVICES.radar.id });
    expect(h.all()).toEqual([]);
    expect(h.engine.stats.staleSkipped).toBe(1);
    h.emit("fall.detected", { device: DEVICES.native.id });
    // Paged, from the other device (and, the replayed fall being counted, as the resident's second).
    expect(h.all().map((a) => [a.type, a.deviceId])).toEqual([
      ["fall", DEVICES.native.id],
      ["repeated-falls", DEVICES.native.id],
    ]);
    // Once the replay is over, the same device pages again.
    h.engine.replaying = new Set();
    h.emit("fall.detected", {
      device: DEVICES.radar.id,
      occurredAt: new Date(Date.now() + 1000).toISOString(),
    });
    expect(h.all().some((a) => a.deviceId === DEVICES.radar.id)).toBe(true);
  });

  it("a late bed return still resolves the open bed-exit alert", () => {
    h.emit("bed.exit");
    vi.advanceTimersByTime(7 * HOUR);
    expect(h.all()).toMatchObject([{ type: "bed-exit", state: "raised" }]);
    h.emit("bed.return", { occurredAt: new Date(Date.now() - 6.5 * HOUR).toISOString() });
    expect(h.all()).toMatchObject([{ type: "bed-exit", state: "resolved" }]);
  });
});

describe("escalation with nobody connected", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    h = buildHarness({ fallback: true });
    h.connected.length = 0;
  });

  it("a fall goes through the whole ladder at once to the fallback", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const [a] = h.all();
    expect(a).toMatchObject({ level: 3, undelivered: true });
    expect(h.fallbackSends.map((s) => s.alert.id)).toEqual([a!.id]);
    expect(
      h.alerts
        .history(a!.id)
        .filter((x) => x.action === "escalated")
        .map((x) => x.reason),
    ).toEqual([
      "no recipient reachable at level 0",
      "no recipient reachable at level 1",
      "no recipient reachable at level 2",
    ]);
    // The last level repeats after its delay until someone accepts.
    vi.advanceTimersByTime(120_000);
    expect(h.fallbackSends).toHaveLength(2);
  });
});

describe("urgent types: what the ingest's urgent lane carries", () => {
  const rules = (enabled: boolean) => `
rules:
  - id: fall
    enabled: ${enabled}
    when: { event: [fall.detected, fall.confirmed] }
    raise: { alert: fall, priority: high, message: { da: "Fald", en: "Fall" } }
  - id: bed-exit
    when: { event: bed.exit }
    raise:
      alert: bed-exit
      priority: high
      message: { da: "Ude", en: "Out" }
      unless: { event: bed.return, within: 10m }
  - id: call
    when: { event: call.* }
    raise: { alert: call, priority: medium, message: { da: "Kald", en: "Call" } }
`;

  it("types an enabled rule raises a high-priority alert on at once; not a disabled rule's, a delayed one's or a medium one's", () => {
    const on = buildHarness({ rulesYaml: rules(true) });
    expect([...on.engine.urgentTypes].sort()).toEqual(["fall.confirmed", "fall.detected"]);
    on.close();
    const off = buildHarness({ rulesYaml: rules(false) });
    expect([...off.engine.urgentTypes]).toEqual([]);
    off.close();
  });
});
