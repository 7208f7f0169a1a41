/**
 * The server secret that keys staff token hashes (src/staff/tokens.ts). It lives outside the
 * database: in ATA_TOKEN_KEY (base64 or hex, at least 32 bytes, e.g. from a secret store), or in a
 * file beside the database file (`<name>-token.key`, mode 0600), generated on first use. Backups
 * must include it (`ata backup` does): without it no staff token in a restored database verifies.
 */
import { randomBytes } from "node:crypto";
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const MIN_BYTES = 32;
/** An in-memory database (tests) gets a key for the life of the process. */
const memoryKey = randomBytes(MIN_BYTES);

export class TokenKeyError extends Error {}

/** The key file for a database file: data/ata.db -> data/ata-token.key. */
export function tokenKeyPath(dbPath: string): string {
  return `${dbPath.endsWith(".db") ? dbPath.slice(0, -3) : dbPath}-token.key`;
}

export function tokenKeyFor(dbPath: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const given = env.ATA_TOKEN_KEY;
  if (given) {
    const key = /^[0-9a-f]+$/i.test(given) ? Buffer.from(given, "hex") : Buffer.from(given, "base64");
    if (key.length < MIN_BYTES)
      throw new TokenKeyError(`ATA_TOKEN_KEY must hold at least ${MIN_BYTES} bytes (base64 or hex)`);
    return key;
  }
  if (dbPath === ":memory:" || dbPath === "") return memoryKey;
  const path = tokenKeyPath(dbPath);
  // Written whole under a temporary name, then linked into place (which fails if a key is there):
  // two processes starting at once (the gateway and the CLI) agree on one key, never read half a one.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, `${randomBytes(MIN_BYTES).toString("base64")}\n`, { flag: "wx", mode: 0o600 });
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
  if (key.length < MIN_BYTES) throw new TokenKeyError(`${path} must hold at least ${MIN_BYTES} base64 bytes`);
  return key;
}
