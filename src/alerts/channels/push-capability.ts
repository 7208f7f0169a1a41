/**
 * The capability a push notification carries so that a phone's service worker can confirm receipt
 * and act ("Tag den" / "Afvis") on a locked phone, with no page open and no bearer token stored.
 *
 * Why not the staff bearer token in the service worker (IndexedDB)? It is a long-lived credential
 * for everything the person may do; a worker holding it would keep it after sign-out, and a
 * notification action would be as strong as a full sign-in. The capability instead names one
 * attempt, one alert, one person and one subscription, and expires. It travels only inside the
 * RFC 8291 encrypted payload, so the push service cannot read or replay it, and the gateway keeps
 * no per-notification state: it recomputes the HMAC (RFC 2104, SHA-256) with its own secret. Use
 * is still checked against the present: the person's token must not be revoked and the
 * subscription must still exist, so revocation and "remove this phone" take effect at once.
 *
 * Replaying a capability repeats something idempotent (a receipt, or accepting what the same
 * person already accepted); a second person cannot use it, since it names its person.
 *
 * Format: `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1." + claims))>`.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";

const Claims = z.strictObject({
  /** The attempt (channel_attempts row) the notification belongs to. */
  at: z.number().int().nonnegative(),
  al: z.string().min(1).max(64),
  /** The staff token id acting. */
  st: z.string().min(1).max(64),
  /** The subscription (phone) it was sent to. */
  ps: z.string().min(1).max(64),
  /** Expiry, Unix seconds. */
  exp: z.number().int(),
});
export type CapabilityClaims = z.infer<typeof Claims>;

const VERSION = "v1";

export function signCapability(secret: Buffer, claims: CapabilityClaims): string {
  const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const mac = createHmac("sha256", secret).update(`${VERSION}.${body}`).digest("base64url");
  return `${VERSION}.${body}.${mac}`;
}

/** The claims if the capability is authentic and unexpired; null otherwise (never throws). */
export function verifyCapability(secret: Buffer, token: string, nowMs: number): CapabilityClaims | null {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION) return null;
  const expected = createHmac("sha256", secret).update(`${VERSION}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2]!, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  const parsed = Claims.safeParse(json);
  if (!parsed.success || parsed.data.exp * 1000 <= nowMs) return null;
  return parsed.data;
}
