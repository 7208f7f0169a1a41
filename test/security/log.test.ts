/**
 * The security log's own rules, on a real database with a simulated clock: repeats fold into one
 * row with a count, a flood stays a handful of rows, and old rows (only those) may be pruned.
 * And the keyed token hashes: a database from before the key still signs its people in.
 */
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { SecurityLog } from "../../src/security/log.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { tempDbs } from "../helpers/tempdb.js";

const dbs = tempDbs("ata-security-");
afterEach(() => dbs.cleanup());

describe("security log", () => {
  it("folds repeats of one kind, address and subject into a row with a count and the last time", () => {
    const { db } = dbs.open();
    let now = Date.parse("2026-12-03T10:00:00Z");
    const log = new SecurityLog(db, silentLogger(), () => now);
    for (let i = 0; i < 100; i++) {
      log.record({
        kind: "connect_refused",
        address: "10.0.0.9",
        subject: "radar-1",
        detail: { reason: "bad_secret" },
      });
      now += 10;
    }
    log.record({
      kind: "connect_refused",
      address: "10.0.0.8",
      subject: "radar-1",
      detail: { reason: "bad_secret" },
    });
    expect(log.list({ limit: 10 }).length).toBe(2);
    now += 20_000;
    log.flush(false);
    const rows = log.list({ limit: 10, kinds: ["connect_refused"] });
    expect(rows.map((r) => [r.address, r.count])).toEqual([
      ["10.0.0.9", 99],
      ["10.0.0.8", 1],
      ["10.0.0.9", 1],
    ]);
    expect(rows[0]!.detail).toEqual({ reason: "bad_secret", repeated: true });
    expect(Date.parse(rows[0]!.lastAt) - Date.parse(rows[0]!.at)).toBe(98 * 10);
  });

  it("keeps a spray from thousands of addresses to the row budget, the rest counted per kind", () => {
    const { db } = dbs.open();
    const now = Date.parse("2026-12-03T10:00:00Z");
    const log = new SecurityLog(db, silentLogger(), () => now);
    for (let i = 0; i < 5000; i++)
      log.record({ kind: "connect_throttled", address: `10.1.${i >> 8}.${i & 255}` });
    log.flush(true);
    const rows = log.list({ limit: 1000 });
    expect(rows.length).toBe(51);
    expect(rows.reduce((n, r) => n + r.count, 0)).toBe(5000);
    expect(rows[0]).toMatchObject({ subject: "*", count: 4950, detail: { folded: "overflow" } });
  });

  it("lets only rows past the retention go", () => {
    const { db } = dbs.open();
    const day = 86_400_000;
    let now = Date.now() - 500 * day;
    const log = new SecurityLog(db, silentLogger(), () => now);
    log.record({ kind: "token_created", subject: "st_old" });
    now = Date.now();
    log.record({ kind: "token_created", subject: "st_new" });
    log.start();
    log.stop();
    expect(log.list({ limit: 10 }).map((r) => r.subject)).toEqual(["st_new"]);
    expect(() => db.prepare("DELETE FROM security_log").run()).toThrow(/400 days/);
  });
});

describe("keyed token hashes", () => {
  it("verifies a token stored with the plain SHA-256 of older databases, and re-hashes it with the key", () => {
    const { db } = dbs.open();
    const token = "legacy-token-0123456789";
    db.prepare(
      "INSERT INTO staff_tokens (id, name, role, sites, units, token_hash, created_at) VALUES ('st_legacy', 'Ole', 'staff', '[\"s\"]', NULL, ?, 0)",
    ).run(createHash("sha256").update(token).digest("hex"));
    const store = new TokenStore(db, Buffer.alloc(32, 1));
    expect(store.verify("legacy-token-0123456780")).toBeNull();
    expect(store.verify(token)?.name).toBe("Ole");
    const hash = (db.prepare("SELECT token_hash FROM staff_tokens").get() as { token_hash: string })
      .token_hash;
    expect(hash.startsWith("h1:")).toBe(true);
    expect(new TokenStore(db, Buffer.alloc(32, 1)).verify(token)?.name).toBe("Ole");
  });
});
