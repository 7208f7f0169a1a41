import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startGateway, type TestGateway } from "../helpers/gateway.js";
import { STAFF } from "../staff/client.js";

// Tokens in the shape of test/staff/client.ts STAFF: site-wide and unit-limited managers.
const METTE = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: ["home-a"],
  token: "mette-manager-token-0123456789",
};
const LEADER = {
  id: "lone",
  name: "Lone",
  role: "manager",
  sites: ["home-a"],
  units: ["unit-2"],
  token: "lone-leader-token-0123456789",
};
const OTHER_MANAGER = {
  id: "ole",
  name: "Ole",
  role: "manager",
  sites: ["home-b"],
  token: "ole-manager-token-0123456789",
};

const BASELINE = {
  site: "home-a",
  period: { from: "2026-09-01", to: "2026-09-30" },
  measurements: {
    nightChecksPerResident: {
      value: 2,
      method: "care plans counted 2026-09-15",
      perResident: [{ resident: "R-0002", value: 0 }],
    },
    minutesPerNightCheck: { value: 4, method: "stopwatch, 40 checks" },
  },
};

describe("baselines API on a real gateway", () => {
  let t: TestGateway;
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${t.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string; details?: unknown } },
    };
  };

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: [METTE, LEADER, OTHER_MANAGER, STAFF.nina, STAFF.anna] } });
  });
  afterAll(() => t?.stop());

  it("a manager of the site saves versions (recorded by the caller unless named); newest come first", async () => {
    const first = await call("POST", "/api/v1/baselines", METTE.token, BASELINE);
    expect(first.status).toBe(201);
    const b1 = first.body.baseline as Record<string, unknown>;
    expect(b1).toMatchObject({ site: "home-a", version: 1, recordedBy: "mette", savedBy: "mette" });
    const second = await call("POST", "/api/v1/baselines", ADMIN_TOKEN, { ...BASELINE, recordedBy: "Mette" });
    const b2 = second.body.baseline as Record<string, unknown>;
    expect(second.status).toBe(201);
    expect(b2).toMatchObject({ version: 2, recordedBy: "Mette", savedBy: "admin" });
    expect(b2.fingerprint).not.toBe(b1.fingerprint);
    const third = await call("POST", "/api/v1/baselines", METTE.token, BASELINE);
    expect((third.body.baseline as Record<string, unknown>).fingerprint).toBe(b1.fingerprint);

    const list = await call("GET", "/api/v1/baselines?site=home-a", METTE.token);
    expect(list.status).toBe(200);
    expect((list.body.versions as { version: number }[]).map((v) => v.version)).toEqual([3, 2, 1]);
    const one = await call("GET", `/api/v1/baselines/${b1.id}`, ADMIN_TOKEN);
    expect(one.body).toEqual(b1);
  });

  it("a manager of another site, a nurse and a carer get 403, and another site's version is 404", async () => {
    const saved = await call("POST", "/api/v1/baselines", METTE.token, BASELINE);
    const id = (saved.body.baseline as { id: number }).id;
    const post = await call("POST", "/api/v1/baselines", OTHER_MANAGER.token, BASELINE);
    expect([post.status, post.body.error?.code]).toEqual([403, "forbidden"]);
    expect((await call("GET", "/api/v1/baselines?site=home-a", OTHER_MANAGER.token)).status).toBe(403);
    const other = await call("GET", `/api/v1/baselines/${id}`, OTHER_MANAGER.token);
    expect([other.status, other.body.error?.code]).toEqual([404, "not_found"]);
    expect((await call("GET", `/api/v1/baselines/${id}`, METTE.token)).status).toBe(200);
    expect((await call("POST", "/api/v1/baselines", STAFF.nina.token, BASELINE)).status).toBe(403);
    expect((await call("GET", "/api/v1/baselines?site=home-a", STAFF.anna.token)).status).toBe(403);
    // Its own site is fine for the other manager, and empty.
    const own = await call("GET", "/api/v1/baselines?site=home-b", OTHER_MANAGER.token);
    expect([own.status, own.body.versions]).toEqual([200, []]);
  });

  it("a manager limited to a unit saves that unit's baseline only, and sees no other unit's", async () => {
    const unit1 = await call("POST", "/api/v1/baselines", METTE.token, {
      ...BASELINE,
      unit: "unit-1",
      measurements: { minutesPerAlarm: { value: 6, method: "tally" } },
    });
    expect(unit1.status).toBe(201);
    expect((await call("POST", "/api/v1/baselines", LEADER.token, BASELINE)).status).toBe(403);
    const own = await call("POST", "/api/v1/baselines", LEADER.token, {
      ...BASELINE,
      unit: "unit-2",
      measurements: { alarmsPerNight: { value: 3, method: "call system export" } },
    });
    expect([own.status, (own.body.baseline as { version: number }).version]).toEqual([201, 1]);
    const seen = await call("GET", "/api/v1/baselines?site=home-a", LEADER.token);
    const units = (seen.body.versions as { unit?: string }[]).map((v) => v.unit ?? "*");
    expect(units).toContain("unit-2");
    expect(units).toContain("*");
    expect(units).not.toContain("unit-1");
    const id = (unit1.body.baseline as { id: number }).id;
    expect((await call("GET", `/api/v1/baselines/${id}`, LEADER.token)).status).toBe(404);
    expect((await call("GET", "/api/v1/baselines?site=home-a&unit=unit-1", LEADER.token)).status).toBe(403);
  });

  it("400 invalid_body lists every problem with its path, the schema's and the site's", async () => {
    const bad = await call("POST", "/api/v1/baselines", METTE.token, {
      ...BASELINE,
      period: { from: "2026-09-30", to: "2026-09-01" },
      measurements: {
        minutesPerNightCheck: { value: 0, method: "" },
        twoHelperTransferShare: { value: 2, method: "log" },
      },
    });
    expect([bad.status, bad.body.error?.code]).toEqual([400, "invalid_body"]);
    expect((bad.body.error!.details as { path: string }[]).map((p) => p.path).sort()).toEqual([
      "measurements.minutesPerNightCheck.method",
      "measurements.minutesPerNightCheck.value",
      "measurements.twoHelperTransferShare.value",
      "period.to",
    ]);
    const scope = await call("POST", "/api/v1/baselines", METTE.token, {
      ...BASELINE,
      unit: "unit-2",
      measurements: {
        nightChecksPerResident: {
          value: 2,
          method: "care plans",
          perResident: [
            { resident: "R-0009", value: 0 },
            { room: "r1", value: 1 },
          ],
        },
      },
    });
    expect(scope.status).toBe(400);
    expect(scope.body.error?.details).toEqual([
      {
        path: "measurements.nightChecksPerResident.perResident.0.resident",
        message: 'no resident "R-0009" in unit "unit-2"',
      },
      {
        path: "measurements.nightChecksPerResident.perResident.1.room",
        message: 'no room "r1" in unit "unit-2"',
      },
    ]);
  });
});
