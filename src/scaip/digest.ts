/**
 * SIP digest authentication (RFC 3261 §22.4 with RFC 2617's MD5 digest, qop=auth) for SCAIP
 * controllers. Why digest and not client certificates: docs/scaip.md.
 *
 * Nonces are stateless: the issue time and an HMAC of it under a key made at start, so a challenge
 * costs no memory and a forged or foreign nonce is refused. A nonce older than `nonceTtlSec` is stale
 * (a fresh challenge with stale=true, RFC 2617 §3.2.1), not a failure: the unit retries with the
 * same credentials. After a gateway restart every nonce is stale for the same reason.
 *
 * The registry keeps only scrypt/sha256 hashes of device secrets (src/registry/secrets.ts), from which
 * no digest can be checked. Digest needs HA1 = MD5(username ":" realm ":" password) per controller:
 * it comes from the configuration (credentials.ts), is password-equivalent for this realm, and is
 * held in memory only.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

export function ha1(username: string, realm: string, password: string): string {
  return md5(`${username}:${realm}:${password}`);
}

/** The parameters of `Authorization: Digest ...` (quoted or token values). */
export function parseDigest(value: string): Record<string, string> | null {
  const m = /^\s*Digest\s+(.*)$/is.exec(value);
  if (!m) return null;
  const out: Record<string, string> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))\s*(?:,|$)/gy;
  const rest = m[1]!;
  let at = 0;
  re.lastIndex = 0;
  while (at < rest.length) {
    const p = re.exec(rest);
    if (p === null) break;
    out[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
    at = re.lastIndex;
  }
  return at >= rest.trimEnd().length ? out : null;
}

export type DigestOutcome =
  | { ok: true; username: string }
  | { ok: false; reason: "missing" | "stale" }
  | { ok: false; reason: "malformed" | "unknown_user" | "wrong_response" | "bad_nonce"; username?: string };

export class DigestAuth {
  private readonly key = randomBytes(32);

  constructor(
    private readonly opts: {
      realm: string;
      nonceTtlSec: number;
      /** HA1 for a username, or undefined when it has no SCAIP credentials. */
      ha1For: (username: string) => string | undefined;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private sign(ts: string): string {
    return createHmac("sha256", this.key).update(ts).digest("base64url").slice(0, 22);
  }

  /** The WWW-Authenticate value of a 401. */
  challenge(stale = false): string {
    const ts = Math.floor(this.now() / 1000).toString(36);
    const nonce = `${ts}.${this.sign(ts)}`;
    return `Digest realm="${this.opts.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ", stale=true" : ""}`;
  }

  private nonceState(nonce: string): "ok" | "stale" | "bad" {
    const [ts, sig] = nonce.split(".");
    if (!ts || !sig) return "bad";
    const want = Buffer.from(this.sign(ts));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return "bad";
    const age = Math.floor(this.now() / 1000) - Number.parseInt(ts, 36);
    if (!Number.isFinite(age) || age < -5) return "bad";
    return age > this.opts.nonceTtlSec ? "stale" : "ok";
  }

  /** Check the request's Authorization header (undefined when the request has none). */
  verify(method: string, authorization: string | undefined): DigestOutcome {
    if (authorization === undefined) return { ok: false, reason: "missing" };
    const p = parseDigest(authorization);
    if (!p?.username || !p.nonce || !p.uri || !p.response) return { ok: false, reason: "malformed" };
    const username = p.username;
    if (p.realm !== this.opts.realm) return { ok: false, reason: "malformed", username };
    if (p.algorithm && p.algorithm.toUpperCase() !== "MD5")
      return { ok: false, reason: "malformed", username };
    const state = this.nonceState(p.nonce);
    if (state === "bad") return { ok: false, reason: "bad_nonce", username };
    const secret = this.opts.ha1For(username);
    if (secret === undefined) return { ok: false, reason: "unknown_user", username };
    const ha2 = md5(`${method}:${p.uri}`);
    let expected: string;
    if (p.qop !== undefined) {
      if (p.qop !== "auth" || !p.nc || !p.cnonce) return { ok: false, reason: "malformed", username };
      expected = md5(`${secret}:${p.nonce}:${p.nc}:${p.cnonce}:auth:${ha2}`);
    } else expected = md5(`${secret}:${p.nonce}:${ha2}`);
    const a = Buffer.from(expected);
    const b = Buffer.from(p.response.toLowerCase());
    if (a.length !== b.length || !timingSafeEqual(a, b))
      return { ok: false, reason: "wrong_response", username };
    // Checked after the response: a stale nonce with the right password is a retry, not an attack.
    if (state === "stale") return { ok: false, reason: "stale" };
    return { ok: true, username };
  }
}
