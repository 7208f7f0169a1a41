/**
 * Web Push in a real Chromium: the console registers its service worker, the gateway pushes an
 * alert (encrypted, through the local push service, which decrypts it with the test's key), and the
 * decrypted message is handed to the service worker with the DevTools protocol's
 * `ServiceWorker.deliverPushMessage`, as the browser's push service would. Chromium here cannot reach
 * a real push service, so `pushManager.subscribe` is not available: the subscription is registered
 * over the API with keys the test owns.
 */
import type { MqttClient } from "mqtt";
import type { BrowserContext, CDPSession, Page, Worker } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { launchBrowser, type PageProblems, type TestBrowser } from "../helpers/browser.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { phoneFor, pushAttempts, pushGatewayOptions, registerPhone } from "../helpers/push-gateway.js";
import { LocalPushService } from "../helpers/push-service.js";

const ANNA = {
  id: "anna",
  name: "Anna",
  role: "staff",
  sites: ["home-a"],
  units: ["unit-1"],
  token: "test-staff-anna-0123456789",
};
const DEVICE = deviceIdFor("ata/native");

interface ShownNotification {
  title: string;
  body: string;
  tag: string;
  requireInteraction: boolean;
  renotify: boolean;
  vibrate: number[];
  actions: { action: string; title: string }[];
  data: { alertId: string; url: string; cap?: string };
}

/** The notifications the console's service worker is showing, read in the page. */
function shown(page: Page): Promise<ShownNotification[]> {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    const list = await reg.getNotifications();
    return list.map((n) => {
      const x = n as Notification & { actions?: unknown; renotify?: boolean; vibrate?: number[] };
      return {
        title: n.title,
        body: n.body,
        tag: n.tag,
        requireInteraction: n.requireInteraction,
        renotify: Boolean(x.renotify),
        vibrate: [...(x.vibrate ?? [])],
        actions: JSON.parse(JSON.stringify(x.actions ?? [])),
        data: n.data,
      };
    });
  });
}

describe("web push to the console's service worker in Chromium", () => {
  const svc = new LocalPushService();
  let t: TestGateway;
  let browser: TestBrowser;
  let context: BrowserContext;
  let page: Page;
  let problems: PageProblems;
  let cdp: CDPSession;
  let device: MqttClient;
  const registrations = new Map<string, string>();

  beforeAll(async () => {
    await svc.start();
    [t, browser] = await Promise.all([
      startGateway({ overrides: { staff: [ANNA] }, gatewayOptions: pushGatewayOptions(svc) }),
      launchBrowser(),
    ]);
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    ({ context, page, problems } = await browser.newPage());
    await context.grantPermissions(["notifications"], { origin: t.httpUrl });
    cdp = await context.newCDPSession(page);
    cdp.on("ServiceWorker.workerRegistrationUpdated", (ev) => {
      for (const r of ev.registrations) if (!r.isDeleted) registrations.set(r.scopeURL, r.registrationId);
    });
    await cdp.send("ServiceWorker.enable");
  });
  afterAll(async () => {
    device?.end(true);
    await browser?.close();
    if (t) {
      t.gateway.staff.stop();
      await t.stop();
    }
    await svc.stop();
  });

  it("after sign-in registers the service worker at root scope and offers to allow notifications", async () => {
    await page.goto(`${t.httpUrl}/`);
    await page.fill("#token", ANNA.token);
    await page.click("#signin-submit");
    await page.waitForSelector("#conn[data-state='live']");
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    expect(scope).toBe(`${t.httpUrl}/`);
    await page.waitForSelector("#push[data-state='off']");
    expect(await page.isVisible("#push-enable")).toBe(true);
    expect(await page.textContent("#push-enable")).toBe("Tillad notifikationer på denne telefon");

    const sw = await fetch(`${t.httpUrl}/sw.js`);
    expect(sw.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    const manifest = await (await fetch(`${t.httpUrl}/manifest.webmanifest`)).json();
    expect(manifest).toMatchObject({ display: "standalone", start_url: "/" });
    for (const icon of manifest.icons as { src: string; type: string }[]) {
      const res = await fetch(`${t.httpUrl}${icon.src}`);
      expect(res.status, icon.src).toBe(200);
      expect(res.headers.get("content-type")).toBe(icon.type);
    }
  });

  it("shows a pushed fall as a notification with Danish text and actions, confirms receipt, and Tag den accepts it as Anna", async () => {
    const phone = phoneFor(t, svc);
    const subscriptionId = await registerPhone(t, phone, ANNA.token, "Annas telefon");
    // The console's list of phones shows it.
    await page.reload();
    await page.waitForSelector(`#push-phones li[data-id='${subscriptionId}']`);
    expect(await page.textContent(`#push-phones li[data-id='${subscriptionId}']`)).toContain("Annas telefon");

    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "web-push-1", type: "fall.detected", data: { confidence: 0.9 } }),
    );
    // The ladder's first level sends it to Anna's phone through the local push service.
    const alert = t.gateway.alerts.open().find((a) => a.type === "fall")!;
    const received = await svc.waitFor(() =>
      svc.for(phone).find((r) => r.json.alertId === alert.id && r.json.kind === "alert"),
    );
    const attemptId: number = received.json.attemptId;
    expect(received.urgency).toBe("high");

    const registrationId = (await eventually(() => registrations.get(`${t.httpUrl}/`)))!;
    await cdp.send("ServiceWorker.deliverPushMessage", {
      origin: t.httpUrl,
      registrationId,
      data: received.plaintext.toString("utf8"),
    });

    const [note] = (await eventually(async () => {
      const list = await shown(page);
      return list.length ? list : null;
    }))!;
    expect(note).toMatchObject({
      title: "Fald – Unit 1",
      body: "Stue r1 · beboer R-0001\nFald i r1 (R-0001)",
      tag: alert.id,
      requireInteraction: true,
      vibrate: [600, 200, 600, 200, 600, 200, 600],
      actions: [
        { action: "accept", title: "Tag den" },
        { action: "reject", title: "Afvis" },
      ],
      data: { alertId: alert.id, url: `/?alert=${alert.id}` },
    });

    // The service worker confirmed it: the attempt is delivered, to Anna's phone, in the audit.
    await eventually(() => pushAttempts(t, alert.id).find((a) => a.id === attemptId)?.status === "delivered");
    expect(pushAttempts(t, alert.id).find((a) => a.id === attemptId)?.recipient_id).toBe(subscriptionId);
    const audit = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body;
    expect(audit.history).toContainEqual(
      expect.objectContaining({ action: "delivered", reason: "shown on Annas telefon" }),
    );

    // "Tag den": the notificationclick the browser would fire when the action button is pressed.
    const worker: Worker = context.serviceWorkers()[0] ?? (await context.waitForEvent("serviceworker"));
    await worker.evaluate(`(async () => {
      const [n] = await self.registration.getNotifications({ tag: ${JSON.stringify(alert.id)} });
      self.dispatchEvent(new NotificationEvent("notificationclick", { notification: n, action: "accept" }));
    })()`);
    const accepted = await eventually(async () => {
      const h = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.history as {
        action: string;
        actor: { id: string };
      }[];
      return h.find((x) => x.action === "accepted");
    });
    expect(accepted?.actor.id).toBe("staff:anna");
    // The phone says so at once, replacing the alarm (same tag, no actions).
    await eventually(async () => {
      const list = await shown(page);
      return (
        list.length === 1 && list[0]!.title === "Du har taget: Fald – Unit 1" && list[0]!.actions.length === 0
      );
      // The worker replaces the notification after the accept request returns; on a loaded CI
      // machine that round trip through Chromium has taken over 5 s.
    }, 15_000);

    // A tap on the notification brings the console to that alert.
    await worker.evaluate(`(async () => {
      const [n] = await self.registration.getNotifications({ tag: ${JSON.stringify(alert.id)} });
      self.dispatchEvent(new NotificationEvent("notificationclick", { notification: n, action: "" }));
    })()`);
    await page.waitForSelector(`li.alert[data-id='${alert.id}'][data-focused]`);
    expect(problems.errors).toEqual([]);
  });
});
