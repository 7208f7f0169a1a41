/**
 * The channel seam: ladders name channels, attempts are recorded before a channel is called, a
 * failing or unhealthy channel never stalls the ladder, and an attempt without an outcome is made
 * again after a restart. Simulated time; the channels here are stand-ins for push and paging that
 * record what they are asked (the real ones have their own suites against real receivers).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type AlertChannel,
  type Audience,
  type ChannelName,
  type ChannelReporter,
  type Delivery,
  inAudience,
} from "../../src/alerts/channels/channel.js";
import { parseRules } from "../../src/rules/engine.js";
import { ladderChannelProblems } from "../../src/rules/schema.js";
import { openDb } from "../../src/store/db.js";
import { buildHarness, DEVICES, type Harness, UNIT_STAFF } from "../rules/harness.js";

const WINTER_DAY = Date.parse("2026-01-14T10:00:00Z");

/** A channel that reaches the unit's staff member Anna on her "handset", and does what the test says. */
class StandIn implements AlertChannel {
  readonly deliveries: (Delivery & { statusAtCall: string | undefined })[] = [];
  ok = true;
  answer: "none" | "delivered" | "failed" | "throw" = "none";
  reporter: ChannelReporter | null = null;
  constructor(
    readonly name: ChannelName,
    private readonly h: () => Harness,
  ) {}
  start(r: ChannelReporter) {
    this.reporter = r;
  }
  reach(a: Audience) {
    return inAudience(UNIT_STAFF, a)
      ? [{ id: "anna-1", name: "Anna (handset)", staffId: UNIT_STAFF.id }]
      : [];
  }
  deliver(d: Delivery) {
    const row = this.h().db.prepare("SELECT status FROM channel_attempts WHERE id = ?").get(d.attemptId) as
      | { status: string }
      | undefined;
    this.deliveries.push({ ...d, statusAtCall: row?.status });
    if (this.answer === "throw") throw new Error("channel bug");
    if (this.answer === "delivered")
      this.reporter!.delivered(d.attemptId, "acknowledged", { toPerson: true });
    if (this.answer === "failed") this.reporter!.failed(d.attemptId, "HTTP 503");
  }
  health() {
    return { ok: this.ok };
  }
}

const LADDER = `
renotify: { high: 10s, medium: 60s, low: 0s, info: 0s }
escalation:
  high:
    - { to: [unit], via: [console, push], after: 60s }
    - { to: [unit, nurse], via: [console, paging], after: 60s }
    - { to: [site, fallback], after: 120s }
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

let h: Harness;
let push: StandIn;
let paging: StandIn;

describe("alert channels", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date(WINTER_DAY) });
    push = new StandIn("push", () => h);
    paging = new StandIn("paging", () => h);
    h = buildHarness({ rulesYaml: LADDER, fallback: true, channels: [push, paging] });
    // Nobody has the console open: only the phone and the handset can reach Anna.
    h.connected.length = 0;
  });
  afterEach(() => {
    h.close();
    vi.useRealTimers();
  });

  it("a level reaches people only through the channels it names, and each attempt is a committed row before the channel is called", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const [a] = h.all();
    expect(a).toMatchObject({ level: 0, state: "raised" });
    expect(push.deliveries).toMatchObject([{ reason: "level", level: 0, statusAtCall: "pending" }]);
    expect(paging.deliveries).toHaveLength(0);
    expect(h.fallbackSends).toHaveLength(0);
    const notified = h.alerts.history(a!.id).filter((x) => x.action === "notified");
    expect(notified).toMatchObject([{ actor: { id: "channel:push" }, reason: "level 0: Anna (handset)" }]);
  });

  it("nobody at the console but a phone that can be reached: the alert waits out its step instead of escalating at once", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(59_000);
    expect(h.all()[0]).toMatchObject({ level: 0 });
    vi.advanceTimersByTime(1_000);
    expect(h.all()[0]).toMatchObject({ level: 1 });
    expect(paging.deliveries[0]).toMatchObject({ reason: "level", level: 1 });
  });

  it("re-notifications go through channels that re-notify, not through those that do not", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(30_000);
    expect(push.deliveries.map((d) => d.reason)).toEqual(["level", "renotify", "renotify", "renotify"]);
  });

  it("a channel that fails or throws never stalls the ladder: the next level fires on time and the failure is audited", () => {
    push.answer = "failed";
    paging.answer = "throw";
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const id = h.all()[0]!.id;
    vi.advanceTimersByTime(60_000);
    expect(h.all()[0]).toMatchObject({ level: 1 });
    vi.advanceTimersByTime(60_000);
    expect(h.all()[0]).toMatchObject({ level: 2 });
    expect(h.fallbackSends).toHaveLength(1);
    const failed = h.alerts.history(id).filter((x) => x.action === "delivery_failed");
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]).toMatchObject({
      actor: { id: "channel:push" },
      reason: "HTTP 503",
      data: { channel: "push" },
    });
  });

  it("a channel that is down is skipped: a level only it reaches escalates at once, and a health change re-checks waiting alerts", () => {
    push.ok = false;
    h.emit("fall.detected", { device: DEVICES.radar.id });
    // Level 0 (console, push): nobody; level 1 (console, paging): Anna's handset.
    expect(h.all()[0]).toMatchObject({ level: 1 });
    expect(push.deliveries).toHaveLength(0);
    paging.ok = false;
    paging.reporter!.healthChanged();
    expect(h.all()[0]).toMatchObject({ level: 2 });
    expect(h.fallbackSends).toHaveLength(1);
  });

  it("a channel coming back re-checks nothing: only one going down can leave an alert unreachable", () => {
    h.emit("fall.detected", { device: DEVICES.radar.id });
    let asked = 0;
    const reach = push.reach.bind(push);
    push.reach = (a: Audience) => {
      asked++;
      return reach(a);
    };
    push.reporter!.healthChanged();
    expect(asked).toBe(0);
    expect(h.all()[0]).toMatchObject({ level: 0 });
    // Going down still re-checks at once: level 0 had only push to reach Anna, so level 1 (paging).
    push.ok = false;
    push.reporter!.healthChanged();
    expect(h.all()[0]).toMatchObject({ level: 1 });
  });

  it("a receipt from a person's device clears undelivered and names them; a repeated receipt is not a second name", () => {
    push.answer = "delivered";
    h.emit("fall.detected", { device: DEVICES.radar.id });
    vi.advanceTimersByTime(10_000);
    const a = h.all()[0]!;
    expect(a).toMatchObject({ undelivered: false, deliveredTo: ["Anna (handset)"] });
    expect(h.alerts.history(a.id).filter((x) => x.action === "delivered")).toHaveLength(2);
  });

  it("an attempt recorded but without an outcome when the gateway stopped is made again at the next start", () => {
    const db = openDb({ path: ":memory:" });
    h.close();
    h = buildHarness({ rulesYaml: LADDER, fallback: true, channels: [push, paging], db });
    h.connected.length = 0;
    h.emit("fall.detected", { device: DEVICES.radar.id });
    const [first] = push.deliveries;
    h.timers.stop();

    // The same database, a new manager and channels: as after kill -9.
    const again = new StandIn("push", () => h);
    again.answer = "delivered";
    h = buildHarness({ rulesYaml: LADDER, fallback: true, channels: [again, paging], db });
    h.connected.length = 0;
    expect(h.alerts.resumeAttempts()).toBe(1);
    expect(again.deliveries).toMatchObject([{ attemptId: first!.attemptId, reason: "retry" }]);
    expect(
      db.prepare("SELECT status, tries FROM channel_attempts WHERE id = ?").get(first!.attemptId),
    ).toEqual({
      status: "delivered",
      tries: 2,
    });
    // Nothing left to resume.
    expect(h.alerts.resumeAttempts()).toBe(0);
  });

  it("accepting settles the alert on every channel that can withdraw what it showed", () => {
    const settled: string[] = [];
    Object.assign(push, { settled: (a: { state: string }) => settled.push(a.state) });
    h.emit("fall.detected", { device: DEVICES.radar.id });
    h.connected.push(UNIT_STAFF);
    h.alerts.accept(h.all()[0]!.id, UNIT_STAFF);
    expect(settled).toEqual(["accepted"]);
  });
});

describe("ladders checked against the configured channels", () => {
  it("a level naming a channel that is not configured is an error with its path; omitted via is always fine", () => {
    const file = parseRules(
      `${LADDER}
  - id: call
    when: { event: call.manual }
    raise:
      alert: call
      priority: high
      message: { da: "Kald", en: "Call" }
      escalation:
        - { to: [unit], after: 30s }
        - { to: [nurse], via: [webhook], after: 30s }
`,
      "test",
    );
    expect(ladderChannelProblems(file, new Set(["console", "webhook"]), { push: "channels.push" })).toEqual([
      {
        path: ["escalation", "high", 0, "via", 1],
        message: 'channel "push" is not configured (channels.push)',
      },
      { path: ["escalation", "high", 1, "via", 1], message: 'channel "paging" is not configured' },
      {
        path: ["rules", 1, "raise", "escalation", 1, "via"],
        message: "level asks people (nurse) but names no channel that reaches a person",
      },
    ]);
    expect(
      ladderChannelProblems(file, new Set(["console", "push", "paging", "webhook"])).map((p) => p.path),
    ).toEqual([["rules", 1, "raise", "escalation", 1, "via"]]);
  });

  it("an unknown channel name is refused by the schema with its path", () => {
    expect(() =>
      parseRules(
        `rules: []
escalation:
  high: [{ to: [unit], via: [sms], after: 10s }]`,
        "test",
      ),
    ).toThrow(/escalation\.high\[0\]\.via\[0\]/);
  });
});
