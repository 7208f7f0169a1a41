/**
 * The push channel against the local push service: who it reaches, what a phone receives
 * (decrypted here with keys the test owns), and what each push-service answer means.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import webpush from "web-push";
import type { Audience, Delivery, Recipient } from "../../../src/alerts/channels/channel.js";
import { PushChannel, PushOptions, type PushOptionsInput } from "../../../src/alerts/channels/push.js";
import type { AlertView } from "../../../src/alerts/model.js";
import { silentLogger } from "../../../src/log.js";
import { TokenStore } from "../../../src/staff/tokens.js";
import { type Db, openDb } from "../../../src/store/db.js";
import { RecordingReporter } from "../../helpers/channel-reporter.js";
import { LocalPushService, type TestSubscription } from "../../helpers/push-service.js";

const PEOPLE = [
  { id: "anna", name: "Anna", role: "staff" as const, sites: ["home-a"], units: ["unit-1"] },
  { id: "bo", name: "Bo", role: "staff" as const, sites: ["home-a"], units: ["unit-2"] },
  { id: "nina", name: "Nina", role: "nurse" as const, sites: ["home-a"], units: ["unit-2"] },
  { id: "mads", name: "Mads", role: "manager" as const, sites: ["home-a"], units: null },
  { id: "karl", name: "Karl", role: "staff" as const, sites: ["home-b"], units: null },
];

function alert(over: Partial<AlertView> = {}): AlertView {
  const now = new Date().toISOString();
  return {
    id: `al_test${Math.random().toString(36).slice(2, 8)}`,
    type: "fall",
    priority: "high",
    state: "raised",
    message: { da: "Fald i r1 (R-0001)", en: "Fall in r1 (R-0001)" },
    site: "home-a",
    unit: "unit-1",
    room: "r1",
    resident: "R-0001",
    deviceId: "t-ata-native",
    ruleId: "fall",
    raisedAt: now,
    updatedAt: now,
    count: 1,
    lastEventType: "fall.detected",
    acceptedBy: null,
    acceptedAt: null,
    attendingAt: null,
    resolvedAt: null,
    outcome: null,
    level: 0,
    undelivered: true,
    deliveredTo: [],
    rejectedBy: [],
    ...over,
  };
}

const audience = (targets: Audience["targets"], excluded: string[] = [], unitId = "unit-1"): Audience => ({
  siteId: "home-a",
  unitId,
  targets,
  excluded,
});

describe("the push channel", () => {
  const svc = new LocalPushService();
  let dir: string;
  let db: Db;
  let tokens: TokenStore;
  let channel: PushChannel;
  let reporter: RecordingReporter;
  let clock: number;
  let attempt = 0;

  const open = (options: PushOptionsInput = {}) => {
    const c = new PushChannel({
      db,
      staff: tokens,
      log: silentLogger(),
      options: PushOptions.parse({ timeoutMs: 1000, ...options }),
      now: () => clock,
      ca: svc.certificate(),
    });
    return c;
  };

  /** A phone of a person, subscribed with the channel's key the way the console does it. */
  const phone = (staffId: string, label = "Android (Chrome)"): { test: TestSubscription; id: string } => {
    const test = svc.subscribe(channel.publicKey());
    const { subscription } = channel.subscribe({
      staffTokenId: staffId,
      endpoint: test.endpoint,
      p256dh: test.keys.p256dh,
      auth: test.keys.auth,
      label,
      userAgent: null,
    });
    return { test, id: subscription.id };
  };

  const delivery = (a: AlertView, recipient: Recipient, over: Partial<Delivery> = {}): Delivery => ({
    attemptId: ++attempt,
    alert: a,
    reason: "level",
    level: 0,
    recipient,
    place: { site: "Home A", unit: "Afsnit 1" },
    ...over,
  });

  beforeAll(() => svc.start());
  afterAll(() => svc.stop());

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "ata-push-"));
    db = openDb({ path: join(dir, "gw.db") });
    tokens = new TokenStore(db);
    for (const p of PEOPLE) tokens.create({ ...p, token: `tok-${p.id}-0123456789` });
    clock = Date.now();
    reporter = new RecordingReporter();
    channel = open();
    await channel.start(reporter);
    svc.plan("*", {});
  });
  afterEach(async () => {
    await channel.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reaches every phone of the people in a level's audience, and nobody else's", () => {
    const anna1 = phone("anna", "Android (Chrome)");
    const anna2 = phone("anna", "iPhone (Safari)");
    const bo = phone("bo");
    const nina = phone("nina");
    phone("mads");
    const karl = phone("karl");
    const ids = (r: Recipient[]) => r.map((x) => x.id).sort();

    const unit = channel.reach(audience(["unit"]), alert());
    expect(ids(unit)).toEqual([anna1.id, anna2.id].sort());
    expect(unit.find((r) => r.id === anna2.id)).toEqual({
      id: anna2.id,
      name: "Anna (iPhone (Safari))",
      staffId: "anna",
    });
    expect(ids(channel.reach(audience(["unit", "nurse"]), alert()))).toEqual(
      [anna1.id, anna2.id, nina.id].sort(),
    );
    // Someone who rejected is not asked again; the manager never; another site's staff never.
    expect(ids(channel.reach(audience(["site"], ["anna"]), alert()))).toEqual([bo.id, nina.id].sort());
    expect(ids(channel.reach(audience(["site"]), alert()))).not.toContain(karl.id);
  });

  it("does not reach a revoked token's phones, and an attempt already made for one reports it gone", async () => {
    const anna = phone("anna");
    const [recipient] = channel.reach(audience(["unit"]), alert());
    expect(recipient?.id).toBe(anna.id);
    tokens.revoke("anna");
    expect(channel.reach(audience(["unit"]), alert())).toEqual([]);
    const d = delivery(alert(), recipient!);
    channel.deliver(d);
    expect(await reporter.next((r) => r.kind === "failed" && r.attemptId === d.attemptId)).toMatchObject({
      gone: true,
    });
    expect(svc.for(anna.test)).toEqual([]);
  });

  it("sends a high alert encrypted with Urgency high, the TTL, and Danish text a locked phone can show", async () => {
    const anna = phone("anna");
    const a = alert();
    const [recipient] = channel.reach(audience(["unit"]), a);
    const d = delivery(a, recipient!);
    channel.deliver(d);
    const sent = await reporter.next((r) => r.attemptId === d.attemptId);
    expect(sent).toMatchObject({ kind: "sent", detail: expect.stringContaining("201") });
    const [got] = svc.for(anna.test);
    expect(svc.rejected).toEqual([]);
    expect(got).toMatchObject({ ttl: 600, urgency: "high" });
    expect(got!.topic).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(got!.vapid).toMatchObject({
      aud: svc.origin,
      k: channel.publicKey(),
      sub: "mailto:drift@ata-gateway.invalid",
    });
    expect(got!.json).toEqual({
      v: 1,
      kind: "alert",
      alertId: a.id,
      attemptId: d.attemptId,
      cap: expect.stringMatching(/^v1\./),
      title: "Fald – Afsnit 1",
      body: "Stue r1 · beboer R-0001\nFald i r1 (R-0001)",
      priority: "high",
      tag: a.id,
      renotify: false,
      url: `/?alert=${a.id}`,
      raisedAt: a.raisedAt,
    });
    // Only the push service's host is in the audit detail, never the endpoint's secret path.
    expect(sent.kind === "sent" && sent.detail).not.toContain(anna.test.id);
  });

  it("sends a medium alert with Urgency normal and a configured TTL, and a re-notification with renotify", async () => {
    await channel.stop();
    channel = open({ ttlSeconds: 120 });
    await channel.start(reporter);
    const anna = phone("anna");
    const a = alert({
      priority: "medium",
      type: "bed-exit",
      message: { da: "R-0001 er ikke tilbage i sengen (r1)", en: "" },
    });
    const [recipient] = channel.reach(audience(["unit"]), a);
    channel.deliver(delivery(a, recipient!));
    channel.deliver(delivery(a, recipient!, { reason: "renotify" }));
    await svc.waitFor(() => svc.for(anna.test).length === 2);
    const [first, again] = svc.for(anna.test).sort((x, y) => x.json.attemptId - y.json.attemptId);
    expect(first).toMatchObject({
      ttl: 120,
      urgency: "normal",
      json: { renotify: false, title: "Ude af sengen – Afsnit 1" },
    });
    expect(again).toMatchObject({
      urgency: "normal",
      json: { renotify: true, title: "Stadig ikke taget: Ude af sengen – Afsnit 1" },
    });
    // RFC 8030 §5.4: both carry the alert's topic, so an offline phone gets only the newest.
    expect(again!.topic).toBe(first!.topic);
  });

  it("removes a subscription the push service says is gone (410 and 404) and reports the attempt gone", async () => {
    const anna = phone("anna");
    const bo = phone("bo");
    svc.plan(anna.test.id, { status: 410 });
    svc.plan(bo.test.id, { status: 404 });
    const a = alert();
    const d1 = delivery(a, { id: anna.id, name: "Anna", staffId: "anna" });
    const d2 = delivery(a, { id: bo.id, name: "Bo", staffId: "bo" });
    channel.deliver(d1);
    channel.deliver(d2);
    expect(await reporter.next((r) => r.attemptId === d1.attemptId)).toMatchObject({
      kind: "failed",
      gone: true,
    });
    expect(await reporter.next((r) => r.attemptId === d2.attemptId)).toMatchObject({
      kind: "failed",
      gone: true,
    });
    expect(channel.subscriptionsOf("anna")).toEqual([]);
    expect(channel.subscriptionsOf("bo")).toEqual([]);
    // A gone phone says nothing about the push service: the channel stays healthy.
    expect(channel.health().ok).toBe(true);
  });

  it("reports a 500 as failed, turns unhealthy after 3 consecutive failures, and recovers after the cool-down and a success", async () => {
    const anna = phone("anna");
    svc.plan(anna.test.id, { status: 500 });
    const a = alert();
    const r = { id: anna.id, name: "Anna", staffId: "anna" };
    for (let i = 1; i <= 3; i++) {
      const d = delivery(a, r);
      channel.deliver(d);
      expect(await reporter.next((x) => x.attemptId === d.attemptId)).toMatchObject({
        kind: "failed",
        gone: false,
        detail: expect.stringContaining("500"),
      });
      expect(channel.health().ok).toBe(i < 3);
    }
    expect(reporter.reports.filter((x) => x.kind === "healthChanged")).toHaveLength(1);
    expect(channel.subscriptionsOf("anna")[0]?.failures).toBe(3);

    // Cool-down over: one probe is allowed; if it fails, out again at once.
    clock += 30_000;
    expect(channel.health().ok).toBe(true);
    const probe = delivery(a, r);
    channel.deliver(probe);
    await reporter.next((x) => x.attemptId === probe.attemptId);
    expect(channel.health().ok).toBe(false);

    // The service answers again: one success makes it healthy without waiting.
    svc.plan(anna.test.id, {});
    clock += 30_000;
    const ok = delivery(a, r);
    channel.deliver(ok);
    expect(await reporter.next((x) => x.attemptId === ok.attemptId)).toMatchObject({ kind: "sent" });
    clock += 1;
    expect(channel.health().ok).toBe(true);
    expect(channel.subscriptionsOf("anna")[0]?.failures).toBe(0);
  });

  it("a success on another phone between failures keeps the channel healthy", async () => {
    const anna = phone("anna");
    const bo = phone("bo");
    svc.plan(anna.test.id, { status: 500 });
    const a = alert();
    for (const who of [anna, anna, bo, anna, anna]) {
      const d = delivery(a, { id: who.id, name: "x", staffId: "x" });
      channel.deliver(d);
      await reporter.next((x) => x.attemptId === d.attemptId);
    }
    expect(channel.health().ok).toBe(true);
  });

  it("fails an attempt when the push service does not answer within the timeout", async () => {
    await channel.stop();
    channel = open({ timeoutMs: 200 });
    await channel.start(reporter);
    const anna = phone("anna");
    svc.plan(anna.test.id, { delayMs: 3000 });
    const d = delivery(alert(), { id: anna.id, name: "Anna", staffId: "anna" });
    const t0 = performance.now();
    channel.deliver(d);
    expect(await reporter.next((x) => x.attemptId === d.attemptId)).toMatchObject({
      kind: "failed",
      gone: false,
      detail: expect.stringMatching(/timeout/i),
    });
    expect(performance.now() - t0).toBeLessThan(2500);
  });

  it("replaces the notification on exactly the phones that were sent the alert when it is taken", async () => {
    const anna = phone("anna");
    const bo = phone("bo");
    const nina = phone("nina");
    const a = alert();
    const sends = [anna, bo].map((p) => delivery(a, { id: p.id, name: "x", staffId: "x" }));
    for (const d of sends) channel.deliver(d);
    // "sent" comes after the push service's 201, when the channel has noted who got it.
    for (const d of sends) await reporter.next((x) => x.attemptId === d.attemptId && x.kind === "sent");
    channel.settled({ ...a, state: "accepted", acceptedBy: { id: "anna", name: "Anna" } });
    await svc.waitFor(() => svc.for(anna.test).length + svc.for(bo.test).length === 4);
    const last = (s: TestSubscription) => svc.for(s).at(-1)!;
    expect(last(bo.test)).toMatchObject({
      urgency: "normal",
      json: { kind: "settled", tag: a.id, title: "Taget af Anna: Fald – Afsnit 1", state: "accepted" },
    });
    expect(last(anna.test).json.title).toBe("Du har taget: Fald – Afsnit 1");
    // Same RFC 8030 topic: a phone that was offline gets "taken" instead of the alarm.
    expect(last(bo.test).topic).toBe(svc.for(bo.test)[0]!.topic);
    expect(svc.for(nina.test)).toEqual([]);
    // Settled once: resolving later sends nothing more.
    channel.settled({ ...a, state: "resolved" });
    await channel.stop();
    expect(svc.for(anna.test).length + svc.for(bo.test).length).toBe(4);
  });

  it("replaces the notification on a phone whose alarm reached it before the service answered", async () => {
    const bo = phone("bo");
    const a = alert();
    // The service hands the alarm on at once but answers 400 ms later: the alert is taken between.
    svc.plan(bo.test.id, { delayMs: 400 });
    const d = delivery(a, { id: bo.id, name: "Bo", staffId: "bo" });
    channel.deliver(d);
    await svc.waitFor(() => svc.for(bo.test).length === 1);
    channel.settled({ ...a, state: "accepted", acceptedBy: { id: "anna", name: "Anna" } });
    expect(await reporter.next((x) => x.attemptId === d.attemptId)).toMatchObject({ kind: "sent" });
    await svc.waitFor(() => svc.for(bo.test).length === 2);
    expect(svc.for(bo.test).map((p) => p.json.kind)).toEqual(["alert", "settled"]);
    expect(svc.for(bo.test)[1]).toMatchObject({
      topic: svc.for(bo.test)[0]!.topic,
      json: { tag: a.id, title: "Taget af Anna: Fald – Afsnit 1", state: "accepted" },
    });
    // Settled once: resolving later sends nothing more.
    channel.settled({ ...a, state: "resolved" });
    await channel.stop();
    expect(svc.for(bo.test)).toHaveLength(2);
  });

  it("stops only after the settled update an alarm push in flight still owes its phone", async () => {
    const bo = phone("bo");
    const a = alert();
    svc.plan(bo.test.id, { delayMs: 300 });
    channel.deliver(delivery(a, { id: bo.id, name: "Bo", staffId: "bo" }));
    await svc.waitFor(() => svc.for(bo.test).length === 1);
    channel.settled({ ...a, state: "cancelled" });
    // Stopping at once: the alarm's answer comes during the stop, and its update after that.
    await channel.stop();
    expect(svc.for(bo.test).map((p) => [p.json.kind, p.json.state])).toEqual([
      ["alert", undefined],
      ["settled", "cancelled"],
    ]);
  });

  it("confirms a receipt only with an authentic, unexpired capability of a phone that still exists", async () => {
    const anna = phone("anna");
    const a = alert();
    const d = delivery(a, { id: anna.id, name: "Anna", staffId: "anna" });
    channel.deliver(d);
    await reporter.next((x) => x.attemptId === d.attemptId);
    const cap: string = svc.for(anna.test)[0]!.json.cap;

    expect(channel.confirm(`${cap.slice(0, -2)}AA`)).toBeNull();
    expect(channel.confirm(cap)).toMatchObject({ at: d.attemptId, al: a.id, st: "anna", ps: anna.id });
    expect(reporter.about(d.attemptId).at(-1)).toMatchObject({
      kind: "delivered",
      toPerson: true,
      detail: "shown on Android (Chrome)",
    });

    clock += 7200_000;
    expect(channel.confirm(cap)).toBeNull();
    clock -= 7200_000;
    channel.unsubscribe(anna.id, "anna");
    expect(channel.confirm(cap)).toBeNull();
  });

  it("keeps a generated VAPID key across restarts and uses a configured one when given", async () => {
    const first = channel.publicKey();
    await channel.stop();
    db.close();
    db = openDb({ path: join(dir, "gw.db") });
    tokens = new TokenStore(db);
    channel = open();
    await channel.start(reporter);
    expect(channel.publicKey()).toBe(first);

    const configured = webpush.generateVAPIDKeys();
    await channel.stop();
    channel = open({ vapid: { subject: "mailto:it@kommune.example", ...configured } });
    await channel.start(reporter);
    expect(channel.publicKey()).toBe(configured.publicKey);
    const anna = phone("anna");
    channel.deliver(delivery(alert(), { id: anna.id, name: "Anna", staffId: "anna" }));
    const [got] = await svc.waitFor(() => (svc.for(anna.test).length ? svc.for(anna.test) : null));
    expect(got!.vapid).toMatchObject({ k: configured.publicKey, sub: "mailto:it@kommune.example" });
  });
});
