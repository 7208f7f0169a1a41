/**
 * No staff connected: an alert runs down its ladder at once to the fallback webhook, a real local
 * HTTP server that checks the signature and can fail on purpose.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
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

const DEVICE = deviceIdFor("ata/native");
/** `eventually` for a value that is there once the condition holds. */
const until = async <T>(fn: () => Promise<T | null>): Promise<T> => (await eventually(fn))!;
const SECRET = "fallback-secret-0123456789abcdef";

interface Received {
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Verify `x-ata-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` as a receiver would. */
function verify(header: string, body: string, secret: string): { ok: boolean; t: number } {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return { ok: false, t: 0 };
  const expected = createHmac("sha256", secret).update(`${m[1]}.${body}`).digest();
  return { ok: timingSafeEqual(expected, Buffer.from(m[2]!, "hex")), t: Number(m[1]) };
}

describe("the fallback webhook at the end of the ladder", () => {
  let t: TestGateway;
  let hook: Server;
  let device: MqttClient;
  const received: Received[] = [];
  /** Status per request by alert type (last one repeats); default 200. */
  const statuses = new Map<string, number[]>();

  beforeAll(async () => {
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        received.push({ at: Date.now(), headers: req.headers, body });
        const plan = statuses.get(JSON.parse(body).alert.type) ?? [200];
        res.writeHead(plan.length > 1 ? plan.shift()! : plan[0]!).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
    const port = (hook.address() as AddressInfo).port;
    t = await startGateway({
      overrides: {
        alarms: {
          fallbackWebhook: {
            url: `http://127.0.0.1:${port}/ata`,
            secret: SECRET,
            timeoutMs: 2000,
            maxAttempts: 4,
            backoffMs: 150,
            maxBackoffMs: 400,
          },
        },
      },
    });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
  });
  afterAll(async () => {
    device?.end(true);
    await t?.stop();
    await new Promise((r) => hook?.close(r));
  });

  const send = (type: string, eventId: string) =>
    publish(device, deviceTopic(DEVICE, "events"), JSON.stringify({ eventId, type, data: {} }));
  const alertOf = async (type: string) =>
    (await api(t.httpUrl, "GET", `/api/v1/alerts?type=${type}`)).body.alerts[0] as { id: string } | undefined;
  const requestsFor = (alertId: string) => received.filter((r) => JSON.parse(r.body).alert.id === alertId);
  const deliveries = (alertId: string) =>
    t.gateway.db
      .prepare("SELECT attempt, at, status, ok, error FROM webhook_deliveries WHERE alert_id = ? ORDER BY id")
      .all(alertId) as {
      attempt: number;
      at: number;
      status: number | null;
      ok: number;
      error: string | null;
    }[];
  const history = async (id: string) =>
    (await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`)).body.history as {
      action: string;
      reason: string | null;
      at: string;
    }[];

  it("with nobody connected a fall escalates at once through every level and the webhook gets a correctly signed POST", async () => {
    await send("fall.detected", "fb-1");
    const alert = (await alertOf("fall"))!;
    const [req] = (await eventually(() => (requestsFor(alert.id).length ? requestsFor(alert.id) : null)))!;
    const sig = verify(String(req!.headers["x-ata-signature"]), req!.body, SECRET);
    expect(sig.ok).toBe(true);
    expect(Math.abs(sig.t - req!.at / 1000)).toBeLessThan(5);
    // A wrong secret does not verify: the check above is a real one.
    expect(verify(String(req!.headers["x-ata-signature"]), req!.body, "another-secret-0123456789").ok).toBe(
      false,
    );
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["x-ata-attempt"]).toBe("1");
    expect(req!.headers["x-ata-delivery"]).toMatch(new RegExp(`^${alert.id}:\\d+$`));
    expect(JSON.parse(req!.body)).toMatchObject({
      kind: "ata.alert",
      alert: { id: alert.id, type: "fall", priority: "high", state: "raised", level: 3, site: "home-a" },
    });

    const h = await until(async () => {
      const x = await history(alert.id);
      return x.some((e) => e.action === "fallback_delivered") ? x : null;
    });
    expect(h.map((e) => [e.action, e.reason])).toEqual([
      ["raised", null],
      ["escalated", "no recipient reachable at level 0"],
      ["escalated", "no recipient reachable at level 1"],
      ["escalated", "no recipient reachable at level 2"],
      ["notified", "level 3: fallback webhook"],
      ["fallback_delivered", "attempt 1: HTTP 200"],
    ]);
    expect(deliveries(alert.id)).toMatchObject([{ attempt: 1, status: 200, ok: 1, error: null }]);
    expect((await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.alert.undelivered).toBe(false);
  });

  it("a failing webhook (HTTP 500) is retried with doubling backoff; every failure is in the audit and in webhook_deliveries", async () => {
    statuses.set("call", [500, 500, 200]);
    await send("call.manual", "fb-2");
    const alert = (await alertOf("call"))!;
    const h = await until(async () => {
      const x = await history(alert.id);
      return x.some((e) => e.action === "fallback_delivered") ? x : null;
    });
    expect(h.filter((e) => e.action.startsWith("fallback_")).map((e) => [e.action, e.reason])).toEqual([
      ["fallback_failed", "attempt 1: HTTP 500; will retry"],
      ["fallback_failed", "attempt 2: HTTP 500; will retry"],
      ["fallback_delivered", "attempt 3: HTTP 200"],
    ]);
    const d = deliveries(alert.id);
    expect(d.map((x) => [x.attempt, x.status, x.ok, x.error])).toEqual([
      [1, 500, 0, "HTTP 500"],
      [2, 500, 0, "HTTP 500"],
      [3, 200, 1, null],
    ]);
    // Backoff 150 ms, then 300 ms.
    expect(d[1]!.at - d[0]!.at).toBeGreaterThanOrEqual(150);
    expect(d[2]!.at - d[1]!.at).toBeGreaterThanOrEqual(300);
    const reqs = requestsFor(alert.id);
    expect(reqs.map((r) => r.headers["x-ata-attempt"])).toEqual(["1", "2", "3"]);
    // The same delivery, signed afresh each time.
    expect(new Set(reqs.map((r) => r.headers["x-ata-delivery"])).size).toBe(1);
    for (const r of reqs) expect(verify(String(r.headers["x-ata-signature"]), r.body, SECRET).ok).toBe(true);
  });

  it("after maxAttempts failures it gives up, says so in the audit, and the alert stays undelivered", async () => {
    statuses.set("tamper", [500]);
    await send("device.tamper", "fb-3");
    const alert = (await alertOf("tamper"))!;
    const h = await until(async () => {
      const x = await history(alert.id);
      return x.some((e) => e.reason?.includes("giving up")) ? x : null;
    });
    expect(h.filter((e) => e.action === "fallback_failed").map((e) => e.reason)).toEqual([
      "attempt 1: HTTP 500; will retry",
      "attempt 2: HTTP 500; will retry",
      "attempt 3: HTTP 500; will retry",
      "attempt 4: HTTP 500; giving up",
    ]);
    expect(deliveries(alert.id).map((x) => x.status)).toEqual([500, 500, 500, 500]);
    // Backoff is capped at maxBackoffMs (150, 300, 400).
    const d = deliveries(alert.id);
    expect(d[3]!.at - d[2]!.at).toBeGreaterThanOrEqual(400);
    expect(d[3]!.at - d[2]!.at).toBeLessThan(1500);
    expect((await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.alert).toMatchObject({
      state: "raised",
      undelivered: true,
    });
    expect(t.gateway.timers.list("webhook")).toEqual([]);
  });

  it("pending retries are dropped once a person accepts the alert", async () => {
    statuses.set("lift-fault", [500]);
    const lift = {
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
      helpers: 1,
      fault: "E42",
    };
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "fb-4", type: "lift.cycle", data: lift }),
    );
    const alert = (await alertOf("lift-fault"))!;
    await eventually(() => t.gateway.timers.list("webhook").length === 1);
    expect(await api(t.httpUrl, "POST", `/api/v1/alerts/${alert.id}/accept`)).toMatchObject({ status: 200 });
    expect(t.gateway.timers.list("webhook")).toEqual([]);
    expect(deliveries(alert.id)).toHaveLength(1);
  });
});
