/**
 * Web Push end to end on a real gateway: a fall published over MQTT goes up the ladder to the push
 * channel and arrives, encrypted, at the local push service; the phone's receipt and actions come
 * back with the capability the notification carries. Also a person's own phones over HTTP.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  ADMIN_TOKEN,
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

const person = (id: string, name: string, role = "staff") => ({
  id,
  name,
  role,
  sites: ["home-a"],
  units: ["unit-1"],
  token: `test-staff-${id}-0123456789`,
});
const ANNA = person("anna", "Anna");
const BO = person("bo", "Bo");
const MADS = person("mads", "Mads", "manager");
const DEVICE = deviceIdFor("ata/native");

describe("web push over HTTP", () => {
  const svc = new LocalPushService();
  let t: TestGateway;
  let device: MqttClient;
  let n = 0;

  /** A fall on MQTT; the open fall alert it raised (QoS 1: the alert exists at PUBACK). */
  const fall = async () => {
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: `push-http-${++n}`, type: "fall.detected", data: { confidence: 0.9 } }),
    );
    const open = t.gateway.alerts.open().filter((a) => a.type === "fall");
    expect(open).toHaveLength(1);
    return open[0]!;
  };

  /** The first alert push the phone of `sub` received for an alert. */
  const pushFor = (sub: ReturnType<LocalPushService["subscribe"]>, alertId: string) =>
    svc.waitFor(() => svc.for(sub).find((r) => r.json?.alertId === alertId && r.json.kind === "alert"));
  const capFor = async (sub: ReturnType<LocalPushService["subscribe"]>, alertId: string): Promise<string> =>
    (await pushFor(sub, alertId)).json.cap;

  beforeAll(async () => {
    await svc.start();
    t = await startGateway({
      overrides: { staff: [ANNA, BO, MADS] },
      gatewayOptions: pushGatewayOptions(svc),
    });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
  });
  afterAll(async () => {
    device?.end(true);
    await t?.stop();
    await svc.stop();
  });

  it("gives the VAPID public key without a token", async () => {
    const res = await api(t.httpUrl, "GET", "/api/v1/push/key", undefined, null);
    expect(res.status).toBe(200);
    expect(res.body.publicKey).toMatch(/^B[A-Za-z0-9_-]{86}$/);
    expect(res.body.publicKey).toBe(t.gateway.push!.publicKey());
  });

  it("lets a person store, list and remove only their own phones", async () => {
    const phone = svc.subscribe(t.gateway.push!.publicKey());
    const body = { subscription: { endpoint: phone.endpoint, expirationTime: null, keys: phone.keys } };
    const created = await api(t.httpUrl, "POST", "/api/v1/push/subscriptions", body, ANNA.token);
    expect(created.status).toBe(201);
    expect(created.body.subscription).toMatchObject({ label: "telefon", failures: 0 });
    const id: string = created.body.subscription.id;
    // The same phone again (a reload) is the same subscription, not a second one.
    const again = await api(
      t.httpUrl,
      "POST",
      "/api/v1/push/subscriptions",
      { ...body, label: "Annas Pixel" },
      ANNA.token,
    );
    expect(again.status).toBe(200);
    expect(again.body.subscription).toMatchObject({ id, label: "Annas Pixel" });

    expect((await api(t.httpUrl, "GET", "/api/v1/push/subscriptions", undefined, ANNA.token)).body).toEqual({
      subscriptions: [
        { id, label: "Annas Pixel", createdAt: expect.any(String), lastSuccessAt: null, failures: 0 },
      ],
    });
    expect((await api(t.httpUrl, "GET", "/api/v1/push/subscriptions", undefined, BO.token)).body).toEqual({
      subscriptions: [],
    });
    const stolen = await api(t.httpUrl, "DELETE", `/api/v1/push/subscriptions/${id}`, undefined, BO.token);
    expect(stolen).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    const removed = await api(t.httpUrl, "DELETE", `/api/v1/push/subscriptions/${id}`, undefined, ANNA.token);
    expect(removed).toMatchObject({ status: 200, body: { removed: true } });
    expect(t.gateway.push!.subscriptionsOf("anna")).toEqual([]);
  });

  it("refuses a subscription that is not https, has wrong-sized keys, or comes without a personal token", async () => {
    const phone = svc.subscribe();
    const post = (body: unknown, token: string | null) =>
      api(t.httpUrl, "POST", "/api/v1/push/subscriptions", body, token);
    const good = { subscription: { endpoint: phone.endpoint, keys: phone.keys } };
    expect(
      (
        await post(
          { subscription: { ...good.subscription, endpoint: "http://127.0.0.1/push/x" } },
          ANNA.token,
        )
      ).body.error.code,
    ).toBe("invalid_body");
    expect(
      (
        await post(
          { subscription: { ...good.subscription, keys: { ...phone.keys, auth: "AAAA" } } },
          ANNA.token,
        )
      ).body.error.code,
    ).toBe("invalid_body");
    expect((await post(good, null)).status).toBe(401);
    expect((await post(good, ADMIN_TOKEN)).body.error.code).toBe("forbidden");
    expect((await post(good, MADS.token)).body.error.code).toBe("forbidden");
  });

  it("a fall published over MQTT reaches the phones through the push service, the receipt records delivery, Tag den accepts as the owner, and the other phone is told who took it", async () => {
    const annaPhone = phoneFor(t, svc);
    const boPhone = phoneFor(t, svc);
    const annaId = await registerPhone(t, annaPhone, ANNA.token, "Annas telefon");
    await registerPhone(t, boPhone, BO.token, "Bos telefon");
    const alert = await fall();
    const toAnna = await pushFor(annaPhone, alert.id);
    expect(toAnna).toMatchObject({
      urgency: "high",
      ttl: 600,
      json: {
        title: "Fald – Unit 1",
        priority: "high",
        tag: alert.id,
        body: expect.stringContaining("R-0001"),
      },
    });
    const annaCap: string = toAnna.json.cap;
    const boCap: string = (await pushFor(boPhone, alert.id)).json.cap;
    // The ladder recorded the attempt before sending; the push service's 201 makes it "sent".
    await eventually(() =>
      pushAttempts(t, alert.id).some((a) => a.id === toAnna.json.attemptId && a.status === "sent"),
    );
    expect(pushAttempts(t, alert.id).find((a) => a.id === toAnna.json.attemptId)?.recipient_id).toBe(annaId);

    const receipt = await api(t.httpUrl, "POST", "/api/v1/push/receipt", { cap: annaCap }, null);
    expect(receipt).toMatchObject({
      status: 200,
      body: { alertId: alert.id, attemptId: toAnna.json.attemptId },
    });
    expect(pushAttempts(t, alert.id).find((a) => a.id === toAnna.json.attemptId)?.status).toBe("delivered");
    const audit = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body;
    expect(audit.alert.deliveredTo).toContain("Anna (Annas telefon)");
    expect(audit.history.find((h: { action: string }) => h.action === "delivered")).toMatchObject({
      actor: { id: "channel:push", name: "Anna (Annas telefon)" },
      reason: "shown on Annas telefon",
      data: { channel: "push", attemptId: toAnna.json.attemptId },
    });

    const accepted = await api(t.httpUrl, "POST", "/api/v1/push/actions/accept", { cap: annaCap }, null);
    expect(accepted).toMatchObject({
      status: 200,
      body: { alert: { state: "accepted", acceptedBy: { id: "anna" } } },
    });
    const history = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.history;
    expect(history.find((h: { action: string }) => h.action === "accepted")).toMatchObject({
      actor: { id: "staff:anna", name: "Anna" },
    });
    // The same notification tapped twice is harmless; Bo's phone is told it is taken.
    expect((await api(t.httpUrl, "POST", "/api/v1/push/actions/accept", { cap: annaCap }, null)).status).toBe(
      200,
    );
    expect(await api(t.httpUrl, "POST", "/api/v1/push/actions/accept", { cap: boCap }, null)).toMatchObject({
      status: 409,
      body: { error: { code: "already_taken" } },
    });
    // Bo's notification is replaced: same tag, "taken by Anna", no actions (settled).
    const settled = await svc.waitFor(() =>
      svc.for(boPhone).find((r) => r.json.kind === "settled" && r.json.alertId === alert.id),
    );
    expect(settled.json).toMatchObject({
      tag: alert.id,
      title: "Taget af Anna: Fald – Unit 1",
      state: "accepted",
    });

    await api(
      t.httpUrl,
      "POST",
      `/api/v1/alerts/${alert.id}/resolve`,
      { outcome: "false-alarm" },
      ANNA.token,
    );
  });

  it("Afvis rejects the alert as the phone's owner", async () => {
    const annaPhone = phoneFor(t, svc);
    await registerPhone(t, annaPhone, ANNA.token);
    const alert = await fall();
    const cap = await capFor(annaPhone, alert.id);
    const rejected = await api(t.httpUrl, "POST", "/api/v1/push/actions/reject", { cap }, null);
    expect(rejected).toMatchObject({
      status: 200,
      body: { alert: { rejectedBy: expect.arrayContaining(["anna"]) } },
    });
    const history = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.history;
    expect(history.find((h: { action: string }) => h.action === "rejected")).toMatchObject({
      actor: { id: "staff:anna" },
      reason: "afvist fra telefonens notifikation",
    });
    await api(t.httpUrl, "POST", `/api/v1/alerts/${alert.id}/accept`, undefined, BO.token);
    await api(t.httpUrl, "POST", `/api/v1/alerts/${alert.id}/resolve`, { outcome: "false-alarm" }, BO.token);
  });

  it("a forged capability, or one whose token was revoked, does nothing, and the revoked person's phones are not reached", async () => {
    const boPhone = phoneFor(t, svc);
    await registerPhone(t, boPhone, BO.token);
    const alert = await fall();
    const cap = await capFor(boPhone, alert.id);
    const forged = `${cap.slice(0, cap.lastIndexOf(".") + 1)}${"A".repeat(43)}`;
    expect(await api(t.httpUrl, "POST", "/api/v1/push/actions/accept", { cap: forged }, null)).toMatchObject({
      status: 401,
      body: { error: { code: "invalid_capability" } },
    });

    expect(t.gateway.tokens.revoke("bo")).toBe(true);
    expect((await api(t.httpUrl, "POST", "/api/v1/push/receipt", { cap }, null)).status).toBe(401);
    expect((await api(t.httpUrl, "POST", "/api/v1/push/actions/accept", { cap }, null)).status).toBe(401);
    expect(t.gateway.alerts.get(alert.id)?.state).toBe("raised");
    const audience = { siteId: alert.site, unitId: alert.unit, targets: ["unit" as const], excluded: [] };
    const reached = t.gateway.push!.reach(audience, alert).map((r) => r.staffId);
    expect(reached).not.toContain("bo");
    expect(reached).toContain("anna");
  });
});
