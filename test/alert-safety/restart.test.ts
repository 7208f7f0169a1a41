/**
 * No black hole across a crash: the gateway is killed (-9) between two steps of a ladder, and the
 * next step still fires after the restart, late by no more than the time the gateway was down.
 */
import { afterAll, describe, expect, it } from "vitest";
import { eventually } from "../helpers/gateway.js";
import { STAFF, StaffClient } from "../staff/client.js";
import { type Site, site, WEBHOOK_SECRET, webhookReceiver } from "./harness.js";

const STEP_MS = 5000;
/** Timer resolution, process scheduling and the webhook's own round trip on a loaded machine. */
const TOLERANCE_MS = 1000;

const RULES = `
escalation:
  high:
    - { to: [unit], via: [console], after: ${STEP_MS / 1000}s }
    - { to: [site, fallback], after: 60s }
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

describe("alert safety: a crash between two ladder steps", () => {
  let s: Site;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;
  afterAll(async () => {
    await s?.close();
    await hook?.close();
  });

  it("the next step fires after a kill -9, late by no more than the restart took", async () => {
    hook = await webhookReceiver();
    s = site({
      rules: RULES,
      config: { alarms: { fallbackWebhook: { url: hook.url, secret: WEBHOOK_SECRET, timeoutMs: 2000 } } },
    });
    await s.start();
    // Anna has the console open: level 0 reaches her, so the alert waits out its step.
    const anna = await StaffClient.connect(s.url(), STAFF.anna.token);
    const acked = await s.fall("f-1");
    const [alert] = await s.alerts();
    const raisedAt = Date.parse(alert!.raisedAt);
    expect(alert).toMatchObject({ state: "raised", level: 0 });

    // Kill inside the step: nothing has gone to the webhook yet.
    await new Promise((r) => setTimeout(r, 1000));
    expect(hook.hits).toHaveLength(0);
    const killedAt = Date.now();
    expect(killedAt).toBeLessThan(raisedAt + STEP_MS);
    await s.gw!.kill9();
    await anna.close();
    await s.start();
    const restartedAt = Date.now();

    const hit = (await eventually(() => hook.hits.find((h) => h.alertId === alert!.id) ?? null, 20_000))!;
    const due = raisedAt + STEP_MS;
    // Not early: the step ran its full length across the crash.
    expect(hit.at).toBeGreaterThanOrEqual(due - 50);
    // Late by no more than the downtime (if the restart ended after the step was due) plus tolerance.
    expect(hit.at - due).toBeLessThanOrEqual(Math.max(0, restartedAt - due) + TOLERANCE_MS);
    expect(hit.level).toBe(1);
    expect(acked).toBeLessThanOrEqual(raisedAt + 1000);
    const history = await s.history(alert!.id);
    expect(history.map((h) => h.action)).toEqual(
      expect.arrayContaining(["raised", "notified", "escalated", "fallback_delivered"]),
    );
  });
});
