/**
 * Web Push over HTTP: the VAPID public key, a person's own phones (subscriptions), and the three
 * calls a service worker makes from a notification on a locked phone (receipt, "Tag den", "Afvis").
 *
 * The phone-list routes take the person's staff bearer token. The service-worker routes take the
 * notification's capability instead (src/alerts/channels/push-capability.ts says why), so a worker
 * never holds the bearer token.
 */
import { z } from "zod";
import type { PushChannel } from "../alerts/channels/push.js";
import type { PushSubscriptionRow } from "../alerts/channels/push-store.js";
import { ApiError } from "../errors.js";
import type { TokenStore } from "../staff/tokens.js";
import type { AlertActions } from "./alerts.js";
import type { RequestContext, Router } from "./router.js";

export interface PushRoutesContext {
  /** Null when the gateway has no push channel configured. */
  push: PushChannel | null;
  alerts: AlertActions;
  tokens: TokenStore;
}

/** A person's phones are few; a cap keeps a looping client from filling the table. */
export const MAX_PHONES_PER_PERSON = 10;

/** base64url (padding tolerated) that decodes to exactly `bytes` bytes. */
const b64url = (bytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]+={0,2}$/, "base64url")
    .refine((s) => Buffer.from(s.replace(/=+$/, ""), "base64url").length === bytes, `${bytes} bytes`)
    .transform((s) => s.replace(/=+$/, ""));

/** What `PushSubscription.toJSON()` gives (W3C Push API), plus a label for people. */
const SubscribeBody = z.strictObject({
  subscription: z.object({
    // RFC 8030 §8: push services are reached over HTTPS only.
    endpoint: z
      .url()
      .max(1024)
      .refine((u) => u.startsWith("https://"), "an https: URL"),
    expirationTime: z.number().nullable().optional(),
    // RFC 8291 §2: a P-256 public key (uncompressed point, 65 bytes) and a 16-byte auth secret.
    keys: z.object({ p256dh: b64url(65), auth: b64url(16) }),
  }),
  label: z.string().min(1).max(80).optional(),
});

const CapabilityBody = z.strictObject({ cap: z.string().min(10).max(1024) });
const RejectBody = z.strictObject({
  cap: z.string().min(10).max(1024),
  reason: z.string().max(500).optional(),
});

const phone = (s: PushSubscriptionRow) => ({
  id: s.id,
  label: s.label,
  createdAt: new Date(s.createdAt).toISOString(),
  lastSuccessAt: s.lastSuccessAt === null ? null : new Date(s.lastSuccessAt).toISOString(),
  failures: s.failures,
});

/** "Android (Chrome)" from a User-Agent, when the phone did not name itself. */
export function labelFromUserAgent(ua: string | undefined): string {
  if (!ua) return "telefon";
  const os = /iPhone|iPad/.test(ua)
    ? "iPhone"
    : /Android/.test(ua)
      ? "Android"
      : /Windows/.test(ua)
        ? "Windows"
        : /Mac OS X/.test(ua)
          ? "Mac"
          : /Linux/.test(ua)
            ? "Linux"
            : "telefon";
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrome\/|Chromium\//.test(ua)
        ? "Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : null;
  return browser ? `${os} (${browser})` : os;
}

export function pushRoutes(router: Router, ctx: PushRoutesContext): void {
  const channel = (): PushChannel => {
    if (!ctx.push) throw new ApiError("unavailable", "Web Push is not configured on this gateway");
    return ctx.push;
  };
  /** A person with their own token: the operator's admin token has no phone, managers get no alerts. */
  const person = (r: RequestContext) => {
    const staff = r.staff();
    if (!ctx.tokens.identity(staff.id))
      throw new ApiError("forbidden", "push notifications need a personal staff token");
    if (staff.role === "manager") throw new ApiError("forbidden", "managers are not alerted on their phones");
    return staff;
  };

  router.add("GET", "/api/v1/push/key", () => ({ publicKey: ctx.push?.publicKey() ?? null }));

  router.add("GET", "/api/v1/push/subscriptions", (r) => {
    const staff = person(r);
    return { subscriptions: channel().subscriptionsOf(staff.id).map(phone) };
  });

  router.add("POST", "/api/v1/push/subscriptions", async (r) => {
    const staff = person(r);
    const b = await r.body(SubscribeBody);
    const mine = channel().subscriptionsOf(staff.id);
    if (mine.length >= MAX_PHONES_PER_PERSON && !mine.some((s) => s.endpoint === b.subscription.endpoint))
      throw new ApiError("conflict", `at most ${MAX_PHONES_PER_PERSON} phones per person; remove one first`);
    const ua = r.req.headers["user-agent"];
    const { subscription, created } = channel().subscribe({
      staffTokenId: staff.id,
      endpoint: b.subscription.endpoint,
      p256dh: b.subscription.keys.p256dh,
      auth: b.subscription.keys.auth,
      label: b.label ?? labelFromUserAgent(ua),
      userAgent: ua?.slice(0, 300) ?? null,
    });
    // `created` makes the router answer 201; a re-subscribe of a known phone answers 200.
    return created
      ? { created: true, subscription: phone(subscription) }
      : { subscription: phone(subscription) };
  });

  router.add("DELETE", "/api/v1/push/subscriptions/:id", (r) => {
    const staff = person(r);
    // Someone else's phone is "not found", not "forbidden": ids of others' phones are not confirmed.
    if (!channel().unsubscribe(r.params.id!, staff.id))
      throw new ApiError("not_found", "no phone with that id among yours");
    return { removed: true };
  });

  router.add("POST", "/api/v1/push/receipt", async (r) => {
    const { cap } = await r.body(CapabilityBody);
    const claims = channel().confirm(cap);
    if (!claims) throw new ApiError("invalid_capability");
    return { alertId: claims.al, attemptId: claims.at };
  });

  router.add("POST", "/api/v1/push/actions/accept", async (r) => {
    const { cap } = await r.body(CapabilityBody);
    const ok = channel().authorize(cap);
    if (!ok) throw new ApiError("invalid_capability");
    return { alert: await ctx.alerts.accept(ok.claims.al, ok.staff) };
  });

  router.add("POST", "/api/v1/push/actions/reject", async (r) => {
    const { cap, reason } = await r.body(RejectBody);
    const ok = channel().authorize(cap);
    if (!ok) throw new ApiError("invalid_capability");
    return {
      alert: await ctx.alerts.reject(ok.claims.al, ok.staff, reason ?? "afvist fra telefonens notifikation"),
    };
  });
}
