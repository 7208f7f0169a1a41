/**
 * Web Push over HTTP on a real gateway: a person's own phones, and the service worker's receipt and
 * actions with the capability a notification carries (decrypted from the local push service).
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  ADMIN_TOKEN,
  api,
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { type AttachedPush, attachPush } from "../helpers/push-gateway.js";
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
  let push: AttachedPush;
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

  /** The capability the phone of `sub` received for an alert. */
  const capFor = async (sub: ReturnType<LocalPushService["subscribe"]>, alertId: string): Promise<string> => {
    const got = await svc.waitFor(() =>
      svc.for(sub).find((r) => r.json?.alertId === alertId && r.json.kind === "alert"),
    );
    return got.json.cap;
  };

  beforeAll(async () => {
    await svc.start();
    t = await startGateway({ overrides: { staff: [ANNA, BO, MADS] } });
    push = attachPush(t, svc);
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
  });
  afterAll(async () => {
    device?.end(true);
    await push?.stop();
    await t?.stop();
    await svc.stop();
  });

  it("gives the VAPID public key without a token", async () => {
    const res = await api(t.httpUrl, "GET", "/api/v1/push/key", undefined, null);
    expect(res.status).toBe(200);
    expect(res.body.publicKey).toMatch(/^B[A-Za-z0-9_-]{86}$/);
    expect(res.body.publicKey).toBe(push.channel.publicKey());
  });

  it("lets a person store, list and remove only their own phones", async () => {
    const phone = svc.subscribe(push.channel.publicKey());
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
    expect(push.channel.subscriptionsOf("anna")).toEqual([]);
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

  it("a receipt from the phone records delivery, and Tag den accepts the alert as the phone's owner", async () => {
    const annaPhone = svc.subscribe(push.channel.publicKey());
    const boPhone = svc.subscribe(push.channel.publicKey());
    await push.register(annaPhone, ANNA.token, "Annas telefon");
    await push.register(boPhone, BO.token, "Bos telefon");
    const alert = await fall();
    const [toAnna] = push.deliverToUnit(alert).filter((d) => d.recipient.staffId === "anna");
    const annaCap = await capFor(annaPhone, alert.id);
    const boCap = await capFor(boPhone, alert.id);

    const receipt = await api(t.httpUrl, "POST", "/api/v1/push/receipt", { cap: annaCap }, null);
    expect(receipt).toMatchObject({ status: 200, body: { alertId: alert.id, attemptId: toAnna!.attemptId } });
    expect(push.reporter.about(toAnna!.attemptId).at(-1)).toMatchObject({
      kind: "delivered",
      toPerson: true,
      detail: "shown on Annas telefon",
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

    await api(
      t.httpUrl,
      "POST",
      `/api/v1/alerts/${alert.id}/resolve`,
      { outcome: "false-alarm" },
      ANNA.token,
    );
  });

  it("Afvis rejects the alert as the phone's owner", async () => {
    const annaPhone = svc.subscribe(push.channel.publicKey());
    await push.register(annaPhone, ANNA.token);
    const alert = await fall();
    push.deliverToUnit(alert);
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
    const boPhone = svc.subscribe(push.channel.publicKey());
    await push.register(boPhone, BO.token);
    const alert = await fall();
    push.deliverToUnit(alert);
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
    const reached = push.deliverToUnit(alert).map((d) => d.recipient.staffId);
    expect(reached).not.toContain("bo");
    expect(reached).toContain("anna");
  });
});
