/**
 * Staff sign-in against a real gateway over HTTP and the staff WebSocket: failed tokens are
 * throttled per address without locking out a person who signed in from there before, a throttled
 * answer does not tell a good token from a bad one, and every refusal, token and admin action is in
 * the security log, which only the operator reads.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenStore } from "../../src/staff/tokens.js";
import { openDb } from "../../src/store/db.js";
import { ADMIN_TOKEN, startGateway, type TestGateway } from "../helpers/gateway.js";
import { STAFF, StaffClient } from "../staff/client.js";

const MAX = 3;

describe("staff sign-in throttling and the security log", () => {
  let t: TestGateway;
  const get = (path: string, token?: string) =>
    fetch(`${t.httpUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        staff: [STAFF.anna, STAFF.bo, STAFF.nina],
        staffAuth: { maxFailures: MAX, windowSec: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  it("stores only a keyed hash of each token, with its key outside the database", () => {
    const rows = t.gateway.db.prepare("SELECT token_hash FROM staff_tokens").all() as {
      token_hash: string;
    }[];
    expect(rows.length).toBe(3);
    const plain = createHash("sha256").update(STAFF.anna.token).digest("hex");
    for (const r of rows) {
      expect(r.token_hash.startsWith("h1:")).toBe(true);
      expect(r.token_hash).not.toContain(plain);
    }
    const key = statSync(join(t.dir, "ata-token.key"));
    expect(key.mode & 0o777).toBe(0o600);
    // Another key does not verify the same database's tokens: a copy of the database alone is not enough.
    const db = openDb({ path: join(t.dir, "ata.db") });
    try {
      expect(new TokenStore(db, Buffer.alloc(32, 7)).verify(STAFF.anna.token)).toBeNull();
      expect(new TokenStore(db).verify(STAFF.anna.token)?.id).toBe("anna");
    } finally {
      db.close();
    }
  });

  it("throttles an address after repeated bad tokens, without locking out a token known from there", async () => {
    // Anna signs in before the attack; Bo has never signed in from this address.
    expect((await get("/api/v1/me", STAFF.anna.token)).status).toBe(200);
    for (let i = 0; i < MAX; i++) {
      const r = await get("/api/v1/me", `wrong-token-${i}-0123456789`);
      expect(r.status).toBe(401);
      await r.arrayBuffer();
    }
    const throttled = await get("/api/v1/me", "wrong-token-x-0123456789");
    expect(throttled.status).toBe(429);
    expect(((await throttled.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // A good token not yet seen from here gets exactly the same answer: no oracle while throttled.
    const bo = await get("/api/v1/me", STAFF.bo.token);
    expect(bo.status).toBe(429);
    await bo.arrayBuffer();
    // Anna, behind the same address, keeps working, over HTTP and on the staff WebSocket.
    expect((await get("/api/v1/me", STAFF.anna.token)).status).toBe(200);
    const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    anna.ws.close();
    // A hello with a bad token from the throttled address: rate_limited, and the socket closes.
    const c = await StaffClient.open(t.httpUrl);
    const reply = c.next((m) => m.type === "reply" && m.id === "h");
    c.send({ type: "hello", id: "h", token: "wrong-token-ws-0123456789" });
    expect(await reply).toMatchObject({ ok: false, error: { code: "rate_limited" } });
    expect(await c.waitClosed()).toMatchObject({ code: 4003 });

    t.gateway.security.flush(true);
    const kinds = t.gateway.security.list({ limit: 100 }).map((r) => [r.kind, r.count] as const);
    const sum = (k: string) => kinds.filter(([x]) => x === k).reduce((n, [, c]) => n + c, 0);
    expect(sum("staff_auth_failed")).toBe(MAX);
    expect(sum("staff_auth_throttled")).toBe(3);
  });

  it("keeps token creation, revocation and admin actions; only the operator reads the log", async () => {
    const created = t.gateway.tokens.create({
      name: "Vikar",
      role: "staff",
      sites: ["home-a"],
      actor: "cli",
    });
    t.gateway.tokens.revoke(created.tokenId, "cli");
    const rows = t.gateway.security
      .list({ kinds: ["token_created", "token_revoked"], limit: 10 })
      .filter((r) => r.subject === created.tokenId);
    expect(rows.map((r) => [r.kind, r.subject, r.actor])).toEqual([
      ["token_revoked", created.tokenId, "cli"],
      ["token_created", created.tokenId, "cli"],
    ]);
    expect(JSON.stringify(rows)).not.toContain(created.token);
    // The log is append-only in the database itself.
    expect(() => t.gateway.db.prepare("UPDATE security_log SET kind = 'x'").run()).toThrow(/append-only/);
    expect(() => t.gateway.db.prepare("DELETE FROM security_log").run()).toThrow(/400 days/);
  });
});

describe("the security log API", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: [STAFF.anna] } });
  });
  afterAll(() => t.stop());
  const call = (method: string, path: string, token: string) =>
    fetch(`${t.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  it("lists admin actions and refused sign-ins newest first, filtered by kind, for the admin token only", async () => {
    const dev = t.gateway.registry.list()[0]!.id;
    expect((await call("POST", `/api/v1/devices/${dev}/disable`, ADMIN_TOKEN)).status).toBe(200);
    expect((await call("POST", `/api/v1/devices/${dev}/enable`, ADMIN_TOKEN)).status).toBe(200);
    await (await call("GET", "/api/v1/me", "not-a-token-at-all-000")).arrayBuffer();

    const staff = await call("GET", "/api/v1/security-log", STAFF.anna.token);
    expect(staff.status).toBe(403);
    await staff.arrayBuffer();
    const bad = await call("GET", "/api/v1/security-log?kind=nonsense", ADMIN_TOKEN);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_query");

    const r = await call("GET", "/api/v1/security-log?kind=admin_action,staff_auth_failed", ADMIN_TOKEN);
    expect(r.status).toBe(200);
    const { events } = (await r.json()) as {
      events: {
        kind: string;
        actor: string | null;
        subject: string | null;
        address: string;
        detail: { action?: string };
      }[];
    };
    expect(events.map((e) => [e.kind, e.detail.action ?? null])).toEqual([
      ["staff_auth_failed", null],
      ["admin_action", "device_enabled"],
      ["admin_action", "device_disabled"],
    ]);
    expect(events[1]).toMatchObject({
      actor: "admin",
      subject: dev,
      address: expect.stringMatching(/127\.0\.0\.1/),
    });
  });
});
