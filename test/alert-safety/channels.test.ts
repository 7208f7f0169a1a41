/**
 * No alert ends in a black hole, channel by channel: the gateway as a child process, a local
 * RFC 8030 push service holding the staff's phones, a paging-system simulator with their handsets,
 * and the fallback webhook receiver. Each test asserts the ladder's time bounds from its rule file
 * with a stated tolerance.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type EspaPager, startPager } from "../helpers/espa-pager.js";
import { api, eventually } from "../helpers/gateway.js";
import { spawnGateway } from "../helpers/process.js";
import { LocalPushService, type TestSubscription } from "../helpers/push-service.js";
import { STAFF, StaffClient } from "../staff/client.js";
import { type Site, site, WEBHOOK_SECRET, webhookReceiver } from "./harness.js";

/** Process scheduling, timer resolution and each receiver's round trip on a loaded machine. */
const TOLERANCE_MS = 1500;
const STEP_S = 3;

const fallRule = `
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

interface World {
  s: Site;
  push: LocalPushService;
  pager: EspaPager;
  hook: Awaited<ReturnType<typeof webhookReceiver>>;
  phones: Map<string, TestSubscription>;
}

let w: World | null = null;
afterEach(async () => {
  if (!w) return;
  await w.s.close();
  await w.push.stop();
  await w.pager.stop();
  await w.hook.close();
  w = null;
});

/** The home with every channel configured and the given ladder; Anna and Nina have registered phones. */
async function world(ladder: string): Promise<World> {
  const push = new LocalPushService();
  await push.start();
  const pager = await startPager();
  const hook = await webhookReceiver();
  const s = site({
    rules: `${ladder}\n${fallRule}`,
    config: {
      alarms: { fallbackWebhook: { url: hook.url, secret: WEBHOOK_SECRET, timeoutMs: 2000 } },
      channels: {
        push: { timeoutMs: 2000 },
        paging: {
          transport: { kind: "tcp", host: "127.0.0.1", port: pager.port },
          responseTimeoutMs: 300,
          pollIntervalMs: 200,
          reconnectMinMs: 50,
          reconnectMaxMs: 200,
          addresses: [
            { call: "2301", name: "Anna's handset", staff: "anna", site: "home-a" },
            { call: "2401", name: "Night nurse handset", role: "nurse", site: "home-a" },
          ],
        },
      },
    },
  });
  const ca = join(s.dir, "push-ca.pem");
  writeFileSync(ca, push.certificate());
  s.start = async () => {
    s.gw = await spawnGateway(s.configPath, { NODE_EXTRA_CA_CERTS: ca });
    return s.gw;
  };
  await s.start();
  const { publicKey } = (await api(s.url(), "GET", "/api/v1/push/key")).body as { publicKey: string };
  const phones = new Map<string, TestSubscription>();
  for (const person of [STAFF.anna, STAFF.nina]) {
    const phone = push.subscribe(publicKey);
    const res = await api(
      s.url(),
      "POST",
      "/api/v1/push/subscriptions",
      {
        subscription: { endpoint: phone.endpoint, expirationTime: null, keys: phone.keys },
        label: `${person.name}'s phone`,
      },
      person.token,
    );
    expect(res.status).toBe(201);
    phones.set(person.id, phone);
  }
  w = { s, push, pager, hook, phones };
  return w;
}

/** The paging channel's health as /readyz reports it. */
const pagingOk = (body: { checks?: { name: string; detail?: { paging?: { ok: boolean } } }[] }) =>
  body.checks?.find((c) => c.name === "channels")?.detail?.paging?.ok;

const pushesFor = (x: World, staffId: string) =>
  x.push.for(x.phones.get(staffId)!).filter((p) => p.json?.kind === "alert");

describe("alert safety across channels", () => {
  it("nobody at the console but a phone with push: the phone gets it at once and the level holds for its step", async () => {
    const x = await world(`
escalation:
  high:
    - { to: [unit], via: [console, push], after: ${STEP_S}s }
    - { to: [site, fallback], after: 60s }
`);
    const acked = await x.s.fall("f-1");
    const first = await x.push.waitFor(() => pushesFor(x, "anna")[0], 5000);
    expect(first.at - acked).toBeLessThan(TOLERANCE_MS);
    expect(first.urgency).toBe("high");
    // Only Anna is asked at level 0 (unit staff); Nina is a nurse of the site, not of the unit.
    expect(pushesFor(x, "nina")).toHaveLength(0);
    const [alert] = await x.s.alerts();
    expect(alert).toMatchObject({ state: "raised", level: 0 });
    // The level is not passed at once (the phone is a way to reach Anna), but after its step.
    const raisedAt = Date.parse(alert!.raisedAt);
    const hit = await eventually(() => x.hook.hits[0] ?? null, STEP_S * 1000 + 10_000);
    expect(hit!.at - raisedAt).toBeGreaterThanOrEqual(STEP_S * 1000 - 50);
    expect(hit!.at - raisedAt).toBeLessThan(STEP_S * 1000 + TOLERANCE_MS);
  });

  it("the push service failing: the DECT page and then the fallback webhook fire within their steps", async () => {
    const x = await world(`
escalation:
  high:
    - { to: [unit], via: [push], after: ${STEP_S}s }
    - { to: [unit, nurse], via: [paging], after: ${STEP_S}s }
    - { to: [site, fallback], after: 60s }
`);
    x.push.plan("*", { status: 500 });
    await eventually(async () => {
      const r = await api(x.s.url(), "GET", "/readyz");
      return pagingOk(r.body) === true ? true : null;
    }, 10_000);
    await x.s.fall("f-2");
    const [alert] = await x.s.alerts();
    const raisedAt = Date.parse(alert!.raisedAt);
    await x.push.waitFor(() => pushesFor(x, "anna")[0], 5000);

    const call = (await eventually(() => x.pager.calls[0] ?? null, STEP_S * 1000 + 10_000))!;
    expect(call.at - raisedAt).toBeGreaterThanOrEqual(STEP_S * 1000 - 50);
    expect(call.at - raisedAt).toBeLessThan(STEP_S * 1000 + TOLERANCE_MS);
    // Anna's handset and the nurse's, one page after the other on the one link.
    await eventually(() => (new Set(x.pager.calls.map((c) => c.address)).size === 2 ? true : null), 5000);
    expect(new Set(x.pager.calls.map((c) => c.address))).toEqual(new Set(["2301", "2401"]));

    const hit = (await eventually(() => x.hook.hits[0] ?? null, STEP_S * 1000 + 10_000))!;
    expect(hit.at - raisedAt).toBeGreaterThanOrEqual(2 * STEP_S * 1000 - 50);
    expect(hit.at - raisedAt).toBeLessThan(2 * STEP_S * 1000 + TOLERANCE_MS);

    const history = await x.s.history(alert!.id);
    expect(history.find((h) => h.action === "delivery_failed")).toMatchObject({
      actor: { id: "channel:push" },
    });
    expect(history.filter((h) => h.action === "notified").map((h) => h.actor.id)).toEqual(
      expect.arrayContaining(["channel:push", "channel:paging", "channel:webhook"]),
    );
  });

  it("the paging link down: a level only paging reaches is skipped at once, not after its step", async () => {
    const x = await world(`
escalation:
  high:
    - { to: [unit, nurse], via: [paging], after: 30s }
    - { to: [site, fallback], after: 60s }
`);
    await x.pager.stop();
    await eventually(async () => {
      const r = await api(x.s.url(), "GET", "/readyz");
      return pagingOk(r.body) === false ? true : null;
    }, 10_000);
    const acked = await x.s.fall("f-3");
    const hit = (await eventually(() => x.hook.hits[0] ?? null, 10_000))!;
    expect(hit.at - acked).toBeLessThan(TOLERANCE_MS);
    const [alert] = await x.s.alerts();
    expect(alert).toMatchObject({ level: 1 });
    expect(x.pager.calls).toHaveLength(0);
  });

  it("an alert accepted from one phone's notification shows as taken on the other phone and on screens", async () => {
    const x = await world(`
escalation:
  high:
    - { to: [unit, nurse], via: [console, push], after: 60s }
`);
    const nina = await StaffClient.connect(x.s.url(), STAFF.nina.token);
    await x.s.fall("f-4");
    const annaPush = await x.push.waitFor(() => pushesFor(x, "anna")[0], 5000);
    await x.push.waitFor(() => pushesFor(x, "nina")[0], 5000);
    const taken = nina.change(annaPush.json.alertId, "accepted");

    // "Tag den" on Anna's locked phone: the service worker posts the notification's capability.
    const res = await api(x.s.url(), "POST", "/api/v1/push/actions/accept", { cap: annaPush.json.cap });
    expect(res).toMatchObject({
      status: 200,
      body: { alert: { state: "accepted", acceptedBy: { name: "Anna" } } },
    });
    expect((await taken).alert).toMatchObject({ acceptedBy: { name: "Anna" } });
    const update = await x.push.waitFor(
      () => x.push.for(x.phones.get("nina")!).find((p) => p.json?.kind === "settled"),
      5000,
    );
    expect(update.json).toMatchObject({ tag: annaPush.json.tag, state: "accepted" });
    expect(`${update.json.title} ${update.json.body}`).toContain("Anna");
    await nina.close();
  });
});
