import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, api, connectDevice, startGateway, type TestGateway } from "../helpers/gateway.js";

describe("device administration over HTTP", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway();
  });
  afterAll(async () => {
    await t.stop();
  });

  it("registers a device, returns its generated secret once, and the device can connect with it", async () => {
    const res = await api(t.httpUrl, "POST", "/api/v1/devices", {
      id: "api-radar-1",
      profile: "vayyar/care",
      site: "home-a",
      unit: "unit-2",
      room: "r4",
    });
    expect(res.status).toBe(201);
    expect(res.body.device).toMatchObject({
      id: "api-radar-1",
      siteId: "home-a",
      unitId: "unit-2",
      enabled: true,
    });
    expect(res.body.device.secretHash).toBeUndefined();
    expect(typeof res.body.secret).toBe("string");
    const client = await connectDevice(t.mqttPort, "api-radar-1", res.body.secret);
    client.end(true);

    const one = await api(t.httpUrl, "GET", "/api/v1/devices/api-radar-1");
    expect(one.body.device).not.toHaveProperty("secret");
    expect(JSON.stringify(one.body)).not.toMatch(/scrypt|sha256\$/);
  });

  it("refuses without the admin token, with a code from the error catalogue", async () => {
    const res = await api(t.httpUrl, "GET", "/api/v1/devices", undefined, null);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthenticated");
    const wrong = await api(t.httpUrl, "GET", "/api/v1/devices", undefined, "not-the-admin-token-xxxxx");
    expect(wrong.status).toBe(401);
  });

  it("answers bad input with 4xx and the problem: duplicate, unknown profile, unknown placement, invalid body", async () => {
    const base = { profile: "ata/native", site: "home-a", unit: "unit-1" };
    expect(
      (await api(t.httpUrl, "POST", "/api/v1/devices", { id: "api-radar-1", ...base })).body.error.code,
    ).toBe("device_exists");
    const unknownProfile = await api(t.httpUrl, "POST", "/api/v1/devices", {
      ...base,
      id: "x1",
      profile: "acme/toaster",
    });
    expect([unknownProfile.status, unknownProfile.body.error.code]).toEqual([400, "unknown_profile"]);
    const unknownUnit = await api(t.httpUrl, "POST", "/api/v1/devices", { ...base, id: "x2", unit: "nope" });
    expect([unknownUnit.status, unknownUnit.body.error.code]).toEqual([400, "unknown_placement"]);
    const badId = await api(t.httpUrl, "POST", "/api/v1/devices", { ...base, id: "has spaces" });
    expect([badId.status, badId.body.error.code]).toEqual([400, "invalid_device"]);
    const invalid = await api(t.httpUrl, "POST", "/api/v1/devices", { id: 7 });
    expect([invalid.status, invalid.body.error.code]).toEqual([400, "invalid_body"]);
    expect(invalid.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(["id", "profile", "site", "unit"]),
    );
    const notJson = await api(t.httpUrl, "POST", "/api/v1/devices", "{not json");
    expect([notJson.status, notJson.body.error.code]).toEqual([400, "bad_request"]);
    const missing = await api(t.httpUrl, "POST", "/api/v1/devices/nope/disable");
    expect([missing.status, missing.body.error.code]).toEqual([404, "device_not_found"]);
    const method = await api(t.httpUrl, "DELETE", "/api/v1/devices");
    expect([method.status, method.body.error.code]).toEqual([405, "method_not_allowed"]);
  });

  it("a body over the limit gets 413 with the error envelope, not a reset, and the connection closes", async () => {
    const big = JSON.stringify({ id: "x".repeat(300 * 1024) });
    const res = await fetch(`${t.httpUrl}/api/v1/devices`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: big,
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("connection")).toBe("close");
    expect(await res.json()).toMatchObject({ error: { code: "body_too_large" } });
    // The gateway still answers.
    expect((await api(t.httpUrl, "GET", "/api/v1/devices")).status).toBe(200);
  });

  it("a token in the URL is not accepted, only in the Authorization header", async () => {
    const res = await fetch(`${t.httpUrl}/api/v1/devices?token=${ADMIN_TOKEN}`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
  });

  it("lists dead letters without their payload bodies", async () => {
    const res = await api(t.httpUrl, "GET", "/api/v1/dead-letters?limit=5");
    expect(res.status).toBe(200);
    expect(Array.isArray(res.body.deadLetters)).toBe(true);
    for (const d of res.body.deadLetters) expect(d).not.toHaveProperty("payload");
  });
});
