/**
 * A local push service (RFC 8030) on a free 127.0.0.1 port, standing in for the browser vendors'
 * services that this machine cannot reach. It checks what a real one checks and tells the test what
 * a phone would see:
 *
 * - the VAPID JWT (RFC 8292 §2, §3): `Authorization: vapid t=<JWT>, k=<public key>`, ES256
 *   signature verified against `k`, `aud` equal to the endpoint's origin, `exp` in the future and at
 *   most 24 h ahead, `sub` present; a subscription made with an application server key accepts only
 *   that key (§4.2, 403 otherwise);
 * - the payload (RFC 8291, aes128gcm of RFC 8188), decrypted here with the subscription's private
 *   key and auth secret, which the test owns (implemented with node:crypto, not web-push);
 * - TTL, Urgency and Topic headers (RFC 8030 §5.2-5.4), recorded.
 *
 * It can be told to answer 404, 410, 500, or slowly, per subscription. HTTPS with a certificate
 * made for the run by openssl, because web-push only speaks HTTPS; the gateway is given `certificate()` to trust.
 */
import { execFileSync } from "node:child_process";
import {
  createDecipheriv,
  createECDH,
  createHmac,
  createPublicKey,
  type ECDH,
  randomBytes,
  verify as verifySignature,
} from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestSubscription {
  id: string;
  endpoint: string;
  /** As `PushSubscription.toJSON().keys`: base64url. */
  keys: { p256dh: string; auth: string };
  ecdh: ECDH;
  authSecret: Buffer;
  /** The VAPID key the subscription was made with, if any (RFC 8292 §4.2). */
  applicationServerKey?: string;
}

export interface ReceivedPush {
  subscriptionId: string;
  at: number;
  ttl: number | null;
  urgency: string | null;
  topic: string | null;
  vapid: { aud: string; exp: number; sub: string; k: string };
  /** The decrypted payload. */
  plaintext: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: tests read the payload by path; its type is PushPayload
  json: any;
}

export interface Plan {
  /** Status to answer (201 default). */
  status?: number;
  /** Hold the response this long (a slow push service). */
  delayMs?: number;
}

const b64 = (s: string) => Buffer.from(s, "base64url");

// ------------------------------------------------------------------ RFC 8291 decryption

function hmac(key: Buffer, data: Buffer): Buffer {
  return createHmac("sha256", key).update(data).digest();
}
/** HKDF (RFC 5869) for outputs of at most one hash length, which is all RFC 8291 needs. */
function hkdfExpand(prk: Buffer, info: Buffer, length: number): Buffer {
  return hmac(prk, Buffer.concat([info, Buffer.from([1])])).subarray(0, length);
}

export interface DerivedKeys {
  prkKey: Buffer;
  ikm: Buffer;
  prk: Buffer;
  cek: Buffer;
  nonce: Buffer;
}

/** RFC 8291 §3.3-3.4 and RFC 8188 §2.2-2.3: from the ECDH secret to the content key and nonce. */
export function deriveKeys(p: {
  ecdhSecret: Buffer;
  authSecret: Buffer;
  uaPublic: Buffer;
  asPublic: Buffer;
  salt: Buffer;
}): DerivedKeys {
  const prkKey = hmac(p.authSecret, p.ecdhSecret);
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), p.uaPublic, p.asPublic]);
  const ikm = hkdfExpand(prkKey, keyInfo, 32);
  const prk = hmac(p.salt, ikm);
  const cek = hkdfExpand(prk, Buffer.from("Content-Encoding: aes128gcm\0"), 16);
  const nonce = hkdfExpand(prk, Buffer.from("Content-Encoding: nonce\0"), 12);
  return { prkKey, ikm, prk, cek, nonce };
}

/**
 * Decrypt an aes128gcm body (RFC 8188 §2: salt(16) | rs(4) | idlen(1) | keyid | records) for a user
 * agent key. RFC 8291 §4: keyid is the application server's ephemeral public key.
 */
export function decryptAes128gcm(body: Buffer, uaPrivate: Buffer, authSecret: Buffer): Buffer {
  if (body.length < 21) throw new Error("body shorter than the aes128gcm header");
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20]!;
  const asPublic = body.subarray(21, 21 + idlen);
  if (idlen !== 65 || asPublic[0] !== 4)
    throw new Error("keyid is not an uncompressed P-256 point (RFC 8291 §4)");
  if (rs < 18) throw new Error("record size below 18 (RFC 8188 §2)");
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(uaPrivate);
  const k = deriveKeys({
    ecdhSecret: ecdh.computeSecret(asPublic),
    authSecret,
    uaPublic: ecdh.getPublicKey(),
    asPublic,
    salt,
  });
  const records = body.subarray(21 + idlen);
  const out: Buffer[] = [];
  for (let seq = 0, off = 0; off < records.length; seq++, off += rs) {
    const record = records.subarray(off, off + rs);
    const last = off + rs >= records.length;
    // RFC 8188 §2.3: the nonce is the derived nonce XOR the record sequence number.
    const nonce = Buffer.from(k.nonce);
    // (Sequence numbers here stay below 2^32, so the low four bytes are all that change.)
    nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
    const decipher = createDecipheriv("aes-128-gcm", k.cek, nonce);
    decipher.setAuthTag(record.subarray(record.length - 16));
    const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
    // RFC 8188 §2: data, then a delimiter (2 in the last record, 1 before), then zeros.
    let end = padded.length - 1;
    while (end >= 0 && padded[end] === 0) end--;
    if (end < 0 || padded[end] !== (last ? 2 : 1)) throw new Error("bad padding delimiter (RFC 8188 §2)");
    out.push(padded.subarray(0, end));
  }
  return Buffer.concat(out);
}

// ------------------------------------------------------------------ RFC 8292 verification

/** Check `Authorization: vapid t=..., k=...` for an endpoint; the claims, or a reason. */
export function verifyVapid(
  authorization: string | undefined,
  endpoint: string,
  nowMs: number,
): { ok: true; claims: ReceivedPush["vapid"] } | { ok: false; reason: string } {
  const m = /^vapid\s+(.+)$/i.exec(authorization ?? "");
  if (!m) return { ok: false, reason: "no vapid Authorization (RFC 8292 §3)" };
  const params = new Map<string, string>();
  for (const part of m[1]!.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const jwt = params.get("t");
  const k = params.get("k");
  if (!jwt || !k) return { ok: false, reason: "t or k missing (RFC 8292 §3.1, §3.2)" };
  const [h, p, s] = jwt.split(".");
  if (!h || !p || !s) return { ok: false, reason: "malformed JWT" };
  let header: { alg?: string };
  let claims: { aud?: unknown; exp?: unknown; sub?: unknown };
  try {
    header = JSON.parse(b64(h).toString("utf8"));
    claims = JSON.parse(b64(p).toString("utf8"));
  } catch {
    return { ok: false, reason: "JWT parts are not JSON" };
  }
  if (header.alg !== "ES256") return { ok: false, reason: "alg is not ES256 (RFC 8292 §2)" };
  const raw = b64(k);
  if (raw.length !== 65 || raw[0] !== 4) return { ok: false, reason: "k is not an uncompressed P-256 point" };
  const key = createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: raw.subarray(1, 33).toString("base64url"),
      y: raw.subarray(33).toString("base64url"),
    },
    format: "jwk",
  });
  const signed = verifySignature(
    "sha256",
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: "ieee-p1363" },
    b64(s),
  );
  if (!signed) return { ok: false, reason: "ES256 signature does not verify against k" };
  const origin = new URL(endpoint).origin;
  if (claims.aud !== origin) return { ok: false, reason: `aud ${String(claims.aud)} is not ${origin}` };
  const now = Math.floor(nowMs / 1000);
  if (typeof claims.exp !== "number" || claims.exp <= now || claims.exp > now + 24 * 3600)
    return { ok: false, reason: "exp not within the next 24 hours (RFC 8292 §2)" };
  if (typeof claims.sub !== "string" || !/^(mailto:|https:)/.test(claims.sub))
    return { ok: false, reason: "sub missing or not mailto:/https:" };
  return { ok: true, claims: { aud: claims.aud, exp: claims.exp, sub: claims.sub, k } };
}

// ------------------------------------------------------------------ the service

export class LocalPushService {
  readonly received: ReceivedPush[] = [];
  /** Requests refused for a protocol error (bad JWT, undecryptable body): a test expects none. */
  readonly rejected: { subscriptionId: string; reason: string }[] = [];
  private server: Server | null = null;
  private cert = "";
  private port = 0;
  private readonly subs = new Map<string, TestSubscription>();
  private readonly plans = new Map<string, Plan>();
  private readonly waiters = new Set<() => void>();
  /** Told of every push as it is received and decrypted (benchmarks time arrivals with it). */
  onPush: ((push: ReceivedPush) => void) | null = null;

  async start(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "ata-push-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      this.cert = readFileSync(join(dir, "cert.pem"), "utf8");
      const key = readFileSync(join(dir, "key.pem"), "utf8");
      this.server = createServer({ cert: this.cert, key }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => void this.handle(req, res, Buffer.concat(chunks)));
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  get origin(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The service's self-signed certificate (PEM), e.g. for NODE_EXTRA_CA_CERTS of a child gateway. */
  certificate(): string {
    return this.cert;
  }

  /** A subscription as a browser would make one, with keys the test owns. */
  subscribe(applicationServerKey?: string): TestSubscription {
    const id = randomBytes(9).toString("base64url");
    const ecdh = createECDH("prime256v1");
    ecdh.generateKeys();
    const authSecret = randomBytes(16);
    const sub: TestSubscription = {
      id,
      endpoint: `${this.origin}/push/${id}`,
      keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: authSecret.toString("base64url") },
      ecdh,
      authSecret,
      ...(applicationServerKey ? { applicationServerKey } : {}),
    };
    this.subs.set(id, sub);
    return sub;
  }

  /** How to answer pushes for one subscription (or every one, with "*"). */
  plan(subscriptionId: string | "*", plan: Plan): void {
    this.plans.set(subscriptionId, plan);
  }

  /** Pushes received for a subscription. */
  for(sub: TestSubscription): ReceivedPush[] {
    return this.received.filter((r) => r.subscriptionId === sub.id);
  }

  /** Resolves when `pred` holds over what was received (checked on every request), or rejects. */
  waitFor<T>(pred: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = pred();
        if (v) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `push service: condition not met within ${timeoutMs} ms (received ${this.received.length}, rejected ${JSON.stringify(this.rejected)})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(
    req: import("node:http").IncomingMessage,
    res: import("node:http").ServerResponse,
    body: Buffer,
  ): Promise<void> {
    const id = /^\/push\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "")?.[1];
    const sub = id ? this.subs.get(id) : undefined;
    const plan = (id && this.plans.get(id)) || this.plans.get("*") || {};
    const reject = (status: number, reason: string) => {
      this.rejected.push({ subscriptionId: id ?? "?", reason });
      res.writeHead(status, { "content-type": "text/plain" }).end(reason);
      this.notify();
    };
    if (req.method !== "POST" || !sub) return reject(404, "no such subscription");
    const vapid = verifyVapid(req.headers.authorization, sub.endpoint, Date.now());
    if (!vapid.ok) return reject(401, vapid.reason);
    if (sub.applicationServerKey && vapid.claims.k !== sub.applicationServerKey)
      return reject(403, "k is not the key the subscription was made with (RFC 8292 §4.2)");
    if (req.headers["content-encoding"] !== "aes128gcm")
      return reject(415, "content-encoding is not aes128gcm");
    let plaintext: Buffer;
    try {
      plaintext = decryptAes128gcm(body, sub.ecdh.getPrivateKey(), sub.authSecret);
    } catch (err) {
      return reject(400, `cannot decrypt: ${(err as Error).message}`);
    }
    let json: unknown = null;
    try {
      json = JSON.parse(plaintext.toString("utf8"));
    } catch {}
    const header = (n: string) => {
      const v = req.headers[n];
      return typeof v === "string" ? v : null;
    };
    const push: ReceivedPush = {
      subscriptionId: sub.id,
      at: Date.now(),
      ttl: header("ttl") === null ? null : Number(header("ttl")),
      urgency: header("urgency"),
      topic: header("topic"),
      vapid: vapid.claims,
      plaintext,
      json,
    };
    this.received.push(push);
    this.onPush?.(push);
    if (plan.delayMs) await new Promise((r) => setTimeout(r, plan.delayMs));
    if (!res.destroyed) {
      const status = plan.status ?? 201;
      // RFC 8030 §5: 201 Created with the message's URI in Location.
      res.writeHead(
        status,
        status === 201 ? { location: `${this.origin}/m/${randomBytes(6).toString("hex")}` } : {},
      );
      res.end();
    }
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
