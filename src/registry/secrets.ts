/**
 * Hashes for device secrets and staff tokens. Only the hash is stored; verification is constant-time.
 *
 * Two schemes, chosen by where the secret comes from:
 * - `scrypt$N$r$p$salt$hash` for secrets a person chose (config seeds, `--secret`): slow on purpose.
 * - `sha256$salt$hash` for secrets the gateway generated itself (192 random bits): no brute force
 *   reaches that space, so a slow KDF would only make a reconnect storm of thousands of devices after
 *   a restart take minutes of CPU instead of milliseconds (the same reasoning as API tokens).
 */
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";

const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

export function hashSecret(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, KEYLEN, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** For secrets from newSecret(): fast, salted, still never reversible. */
export function hashGeneratedSecret(secret: string): string {
  const salt = randomBytes(16);
  const hash = createHash("sha256").update(salt).update(secret).digest();
  return `sha256$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

function verifySha(secret: string, stored: string): boolean | null {
  const [alg, salt, hash] = stored.split("$");
  if (alg !== "sha256" || !salt || !hash) return null;
  const want = Buffer.from(hash, "base64url");
  const got = createHash("sha256").update(Buffer.from(salt, "base64url")).update(secret).digest();
  return got.length === want.length && timingSafeEqual(got, want);
}

function parse(stored: string) {
  const [alg, n, r, p, salt, hash] = stored.split("$");
  if (alg !== "scrypt" || !n || !r || !p || !salt || !hash) return null;
  return {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    salt: Buffer.from(salt, "base64url"),
    hash: Buffer.from(hash, "base64url"),
  };
}

/** Asynchronous so that a burst of CONNECTs does not block the event loop (scrypt runs in the pool). */
export function verifySecret(secret: string, stored: string): Promise<boolean> {
  const fast = verifySha(secret, stored);
  if (fast !== null) return Promise.resolve(fast);
  const parsed = parse(stored);
  if (!parsed) return Promise.resolve(false);
  return new Promise((resolve) => {
    scrypt(secret, parsed.salt, parsed.hash.length, { N: parsed.N, r: parsed.r, p: parsed.p }, (err, key) => {
      resolve(!err && timingSafeEqual(key, parsed.hash));
    });
  });
}

/**
 * What an unknown device id is verified against: the KDF of a person-chosen secret, with random
 * salt and hash no secret matches, so that an unknown id costs what a wrong secret costs.
 */
export const UNKNOWN_DEVICE_HASH = `scrypt$${N}$${R}$${P}$KPRwPbuFx05vGsRzic6E5A$7BNbFTq-UV8g9bUYz_G2fJmdVdm-arLiyDiu63edK8c`;

/** A new random secret or token for the CLI to print once. */
export function newSecret(bytes = 24): string {
  return randomBytes(bytes).toString("base64url");
}
