/**
 * A test gateway with Web Push wired to the local push service, and the steps a phone's console
 * takes (registering its subscription over HTTP).
 */
import type { GatewayOptions } from "../../src/gateway.js";
import type { TestGateway } from "./gateway.js";
import { api } from "./gateway.js";
import type { LocalPushService, TestSubscription } from "./push-service.js";

/** Gateway options that turn the push channel on, trusting the local push service's certificate. */
export function pushGatewayOptions(
  svc: LocalPushService,
  push: GatewayOptions["push"] = {},
): Pick<GatewayOptions, "push" | "pushCa"> {
  return { push: { timeoutMs: 2000, ...push }, pushCa: svc.certificate() };
}

/** A fresh test-owned subscription made with the gateway's VAPID key, as a browser would make it. */
export function phoneFor(t: TestGateway, svc: LocalPushService): TestSubscription {
  return svc.subscribe(t.gateway.push!.publicKey());
}

/** Register a subscription for a person over HTTP, as the console does; its id. */
export async function registerPhone(
  t: TestGateway,
  sub: TestSubscription,
  token: string,
  label?: string,
): Promise<string> {
  const res = await api(
    t.httpUrl,
    "POST",
    "/api/v1/push/subscriptions",
    {
      subscription: { endpoint: sub.endpoint, expirationTime: null, keys: sub.keys },
      ...(label ? { label } : {}),
    },
    token,
  );
  if (res.status !== 201 && res.status !== 200)
    throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.subscription.id as string;
}

/** The push channel's attempts for an alert, as recorded by the alert manager. */
export function pushAttempts(
  t: TestGateway,
  alertId: string,
): { id: number; recipient_id: string; status: string; reason: string; detail: string | null }[] {
  return t.gateway.db
    .prepare("SELECT * FROM channel_attempts WHERE alert_id = ? AND channel = 'push' ORDER BY id")
    .all(alertId) as {
    id: number;
    recipient_id: string;
    status: string;
    reason: string;
    detail: string | null;
  }[];
}
