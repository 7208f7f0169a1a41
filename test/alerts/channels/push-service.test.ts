/**
 * The local push service's own checks: RFC 8291 decryption against the RFC's worked example
 * (section 5 and the intermediate values of Appendix A), and VAPID verification that refuses what a
 * real push service refuses. The channel tests rely on both.
 */
import { createECDH } from "node:crypto";
import { Agent } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush from "web-push";
import { decryptAes128gcm, deriveKeys, LocalPushService, verifyVapid } from "../../helpers/push-service.js";

const b64 = (s: string) => Buffer.from(s, "base64url");

/** RFC 8291 §5 and Appendix A. */
const RFC = {
  plaintext: "When I grow up, I want to be a watermelon",
  asPublic: "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8",
  asPrivate: "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
  uaPublic: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
  uaPrivate: "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
  authSecret: "BTBZMqHH6r4Tts7J_aSIgg",
  salt: "DGv6ra1nlYgDCS1FRnbzlw",
  ecdhSecret: "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs",
  prkKey: "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k",
  ikm: "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg",
  prk: "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc",
  cek: "oIhVW04MRdy2XN9CiKLxTg",
  nonce: "4h_95klXJ5E_qnoN",
  body: "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
};

describe("RFC 8291 decryption in the test push service", () => {
  it("derives the RFC's intermediate values from its keys (Appendix A)", () => {
    const ua = createECDH("prime256v1");
    ua.setPrivateKey(b64(RFC.uaPrivate));
    expect(ua.getPublicKey().toString("base64url")).toBe(RFC.uaPublic);
    const ecdhSecret = ua.computeSecret(b64(RFC.asPublic));
    expect(ecdhSecret.toString("base64url")).toBe(RFC.ecdhSecret);
    const k = deriveKeys({
      ecdhSecret,
      authSecret: b64(RFC.authSecret),
      uaPublic: b64(RFC.uaPublic),
      asPublic: b64(RFC.asPublic),
      salt: b64(RFC.salt),
    });
    expect(k.prkKey.toString("base64url")).toBe(RFC.prkKey);
    expect(k.ikm.toString("base64url")).toBe(RFC.ikm);
    expect(k.prk.toString("base64url")).toBe(RFC.prk);
    expect(k.cek.toString("base64url")).toBe(RFC.cek);
    expect(k.nonce.toString("base64url")).toBe(RFC.nonce);
  });

  it("decrypts the RFC's example message to its plaintext (section 5)", () => {
    const plain = decryptAes128gcm(b64(RFC.body), b64(RFC.uaPrivate), b64(RFC.authSecret));
    expect(plain.toString("utf8")).toBe(RFC.plaintext);
  });

  it("refuses the example with one flipped ciphertext bit or the wrong auth secret", () => {
    const body = b64(RFC.body);
    body[body.length - 20]! ^= 1;
    expect(() => decryptAes128gcm(body, b64(RFC.uaPrivate), b64(RFC.authSecret))).toThrow();
    const wrongAuth = Buffer.alloc(16, 7);
    expect(() => decryptAes128gcm(b64(RFC.body), b64(RFC.uaPrivate), wrongAuth)).toThrow();
  });
});

describe("VAPID verification in the test push service (RFC 8292)", () => {
  const keys = webpush.generateVAPIDKeys();
  const endpoint = "https://127.0.0.1:4443/push/abc";
  const header = (aud: string, exp?: number, pub = keys.publicKey, sub = "mailto:drift@example.org") =>
    webpush.getVapidHeaders(
      aud,
      sub,
      pub === keys.publicKey ? keys.publicKey : pub,
      keys.privateKey,
      "aes128gcm",
      exp,
    ).Authorization;
  const now = Date.now();

  it("accepts a JWT signed for the endpoint's origin", () => {
    const r = verifyVapid(header("https://127.0.0.1:4443"), endpoint, now);
    expect(r).toMatchObject({
      ok: true,
      claims: { aud: "https://127.0.0.1:4443", sub: "mailto:drift@example.org" },
    });
  });

  it("refuses another audience, an expired JWT, a key that did not sign it, and no header", () => {
    expect(verifyVapid(header("https://push.example.org"), endpoint, now)).toMatchObject({ ok: false });
    const past = Math.floor(now / 1000) - 10;
    expect(verifyVapid(header("https://127.0.0.1:4443", past), endpoint, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining("exp"),
    });
    const other = webpush.generateVAPIDKeys();
    const forged = header("https://127.0.0.1:4443").replace(/k=[^,]+$/, `k=${other.publicKey}`);
    expect(verifyVapid(forged, endpoint, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining("signature"),
    });
    expect(verifyVapid(undefined, endpoint, now)).toMatchObject({ ok: false });
  });

  it("refuses a JWT that expires more than 24 hours ahead", () => {
    // web-push refuses to make one, so this checks the verifier against a clock 2 days behind.
    const r = verifyVapid(header("https://127.0.0.1:4443"), endpoint, now - 2 * 86_400_000);
    expect(r).toMatchObject({ ok: false, reason: expect.stringContaining("24 hours") });
  });
});

describe("the test push service over HTTPS", () => {
  const svc = new LocalPushService();
  beforeAll(() => svc.start());
  afterAll(() => svc.stop());

  it("decrypts what web-push sends to a subscription the test owns and records TTL and Urgency", async () => {
    const keys = webpush.generateVAPIDKeys();
    const sub = svc.subscribe(keys.publicKey);
    const res = await webpush.sendNotification(sub, JSON.stringify({ hello: "verden" }), {
      vapidDetails: { subject: "mailto:drift@example.org", ...keys },
      TTL: 42,
      urgency: "high",
      agent: new Agent({ ca: svc.certificate() }),
    });
    expect(res.statusCode).toBe(201);
    expect(svc.for(sub)).toHaveLength(1);
    expect(svc.for(sub)[0]).toMatchObject({ ttl: 42, urgency: "high", json: { hello: "verden" } });
    expect(svc.rejected).toEqual([]);
  });

  it("answers 403 when the VAPID key is not the one the subscription was made with", async () => {
    const sub = svc.subscribe(webpush.generateVAPIDKeys().publicKey);
    const other = webpush.generateVAPIDKeys();
    await expect(
      webpush.sendNotification(sub, "x", {
        vapidDetails: { subject: "mailto:drift@example.org", ...other },
        agent: new Agent({ ca: svc.certificate() }),
      }),
    ).rejects.toMatchObject({ statusCode: 403 });
  });
});
