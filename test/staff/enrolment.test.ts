import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnrolmentStore, normaliseCode } from "../../src/staff/enrolment.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { openDb } from "../../src/store/db.js";
import { ADMIN_TOKEN, api, startGateway, type TestGateway } from "../helpers/gateway.js";
import { StaffClient } from "./client.js";

const METTE = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: ["home-a"],
  units: ["unit-1"],
  token: "mette-token-0123456789",
};
const ANNA = {
  id: "anna",
  name: "Anna",
  role: "staff",
  sites: ["home-a"],
  units: ["unit-1"],
  token: "anna-token-0123456789",
};
const PHONE_UA =
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36";

async function exchange(t: TestGateway, code: string, device?: string, ua = PHONE_UA) {
  const res = await fetch(`${t.httpUrl}/api/v1/enrol`, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": ua },
    body: JSON.stringify(device ? { code, device } : { code }),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

describe("enrolling a phone with a one-time code", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: [METTE, ANNA] } });
  });
  afterAll(async () => {
    t.gateway.staff.stop();
    await t.stop();
  });

  const enrol = (body: Record<string, unknown>, token = METTE.token) =>
    api(t.httpUrl, "POST", "/api/v1/enrolments", body, token);

  it("a manager's enrolment yields a short code and a QR of the console URL; the phone's token works on HTTP and the WebSocket as that person", async () => {
    const created = await enrol({ name: "Dorte", role: "staff", sites: ["home-a"], units: ["unit-1"] });
    expect(created.status).toBe(201);
    const { enrolment, url, qrSvg } = created.body;
    expect(enrolment.code).toMatch(/^[A-HJKMNP-TW-Z2-9]{5}-[A-HJKMNP-TW-Z2-9]{5}$/);
    expect(url).toBe(`${t.httpUrl}/#enrol=${enrolment.code}`);
    expect(qrSvg).toMatch(/^<svg[^>]+viewBox="0 0 \d+ \d+"/);
    expect(Date.parse(enrolment.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(Date.parse(enrolment.expiresAt) - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    // Stored hashed: the code appears nowhere in the database.
    const rows = JSON.stringify(t.gateway.db.prepare("SELECT * FROM staff_enrolments").all());
    expect(rows).not.toContain(enrolment.code);
    expect(rows).not.toContain(normaliseCode(enrolment.code));

    // Typed as a person might: lower case, no dash.
    const ex = await exchange(t, enrolment.code.toLowerCase().replace("-", " "));
    expect(ex.status).toBe(200);
    expect(ex.body.deviceLabel).toBe("Android · Chrome");
    expect(ex.body.staff).toMatchObject({ id: enrolment.personId, name: "Dorte", role: "staff" });
    const me = await api(t.httpUrl, "GET", "/api/v1/me", undefined, ex.body.token);
    expect(me.status).toBe(200);
    expect(me.body.staff).toEqual({
      id: enrolment.personId,
      name: "Dorte",
      role: "staff",
      sites: ["home-a"],
      units: ["unit-1"],
    });
    const ws = await StaffClient.connect(t.httpUrl, ex.body.token);
    expect(ws.messages.find((m) => m.type === "welcome").staff.id).toBe(enrolment.personId);
    await ws.close();

    // Once only.
    const again = await exchange(t, enrolment.code);
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("enrolment_invalid");
  });

  it("a manager enrols only within their own units, staff not at all, and only an admin enrols an admin", async () => {
    const otherUnit = await enrol({ name: "X", role: "staff", sites: ["home-a"], units: ["unit-2"] });
    expect(otherUnit.status).toBe(403);
    const wholeSite = await enrol({ name: "X", role: "staff", sites: ["home-a"] });
    expect(wholeSite.status).toBe(403);
    const otherSite = await enrol({ name: "X", role: "staff", sites: ["home-b"], units: ["unit-9"] });
    expect(otherSite.status).toBe(403);
    const admin = await enrol({ name: "X", role: "admin", sites: ["home-a"], units: ["unit-1"] });
    expect(admin.status).toBe(403);
    const byStaff = await enrol(
      { name: "X", role: "staff", sites: ["home-a"], units: ["unit-1"] },
      ANNA.token,
    );
    expect(byStaff.status).toBe(403);
    const unknownUnit = await enrol(
      { name: "X", role: "staff", sites: ["home-a"], units: ["unit-9"] },
      ADMIN_TOKEN,
    );
    expect(unknownUnit.status).toBe(400);
    expect(unknownUnit.body.error.details[0].path).toBe("units.0");
    const byAdmin = await enrol({ name: "Ole", role: "admin", sites: ["home-a", "home-b"] }, ADMIN_TOKEN);
    expect(byAdmin.status).toBe(201);
  });

  it("lists each person's phones with last use; revoking one closes its open session within seconds and leaves the other phone signed in", async () => {
    const first = (await enrol({ name: "Emil", role: "staff", sites: ["home-a"], units: ["unit-1"] })).body;
    const phone = (await exchange(t, first.enrolment.code)).body;
    // A second phone for the same person (a person exists once they have one device).
    const second = (
      await enrol({
        name: "Emil",
        role: "staff",
        sites: ["home-a"],
        units: ["unit-1"],
        person: first.enrolment.personId,
      })
    ).body;
    expect(second.enrolment.personId).toBe(first.enrolment.personId);
    const tablet = (await exchange(t, second.enrolment.code, "Vagtstuens tablet")).body;
    const onPhone = await StaffClient.connect(t.httpUrl, phone.token);
    const onTablet = await StaffClient.connect(t.httpUrl, tablet.token);

    const list = await api(t.httpUrl, "GET", "/api/v1/staff-devices", undefined, METTE.token);
    expect(list.status).toBe(200);
    const emil = list.body.people.find((p: { person: string }) => p.person === first.enrolment.personId);
    expect(emil.name).toBe("Emil");
    expect(emil.devices.map((d: { deviceLabel: string }) => d.deviceLabel).sort()).toEqual([
      "Android · Chrome",
      "Vagtstuens tablet",
    ]);
    for (const d of emil.devices) {
      expect(d.revoked).toBe(false);
      expect(Date.now() - Date.parse(d.lastUsedAt)).toBeLessThan(60_000);
    }
    // Mette manages unit-1 only: people of a whole site or another site are not hers to see.
    expect(list.body.people.some((p: { name: string }) => p.name === "Ole")).toBe(false);
    // A staff token is not a manager's.
    expect((await api(t.httpUrl, "GET", "/api/v1/staff-devices", undefined, ANNA.token)).status).toBe(403);

    const phoneDevice = emil.devices.find(
      (d: { deviceLabel: string }) => d.deviceLabel === "Android · Chrome",
    );
    const t0 = Date.now();
    const revoked = await api(
      t.httpUrl,
      "DELETE",
      `/api/v1/staff-devices/${phoneDevice.tokenId}`,
      undefined,
      METTE.token,
    );
    expect(revoked.status).toBe(200);
    const closed = await onPhone.waitClosed(3000);
    expect(closed.code).toBe(4003);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await api(t.httpUrl, "GET", "/api/v1/me", undefined, phone.token)).status).toBe(401);
    // The other phone of the same person is untouched.
    expect(onTablet.closed).toBeNull();
    const pong = onTablet.next((m) => m.type === "pong" && m.id === "still-there");
    onTablet.send({ type: "ping", id: "still-there" });
    await pong;
    expect((await api(t.httpUrl, "GET", "/api/v1/me", undefined, tablet.token)).status).toBe(200);

    // Revoked in the database by another process (the ata CLI): the session still closes within seconds.
    const cli = openDb({ path: `${t.dir}/ata.db` });
    try {
      const tabletId = emil.devices.find(
        (d: { deviceLabel: string }) => d.deviceLabel !== "Android · Chrome",
      ).tokenId;
      expect(new TokenStore(cli).revoke(tabletId)).toBe(true);
    } finally {
      cli.close();
    }
    const closedByCli = await onTablet.waitClosed(5000);
    expect(closedByCli.code).toBe(4003);

    const after = await api(t.httpUrl, "GET", "/api/v1/staff-devices", undefined, METTE.token);
    const emilAfter = after.body.people.find(
      (p: { person: string }) => p.person === first.enrolment.personId,
    );
    expect(emilAfter.devices.every((d: { revoked: boolean }) => d.revoked)).toBe(true);
  });
});

describe("guessing enrolment codes", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: [METTE], enrolment: { maxFailures: 5 } } });
  });
  afterAll(async () => {
    await t.stop();
  });
  const enrol = (body: Record<string, unknown>) =>
    api(t.httpUrl, "POST", "/api/v1/enrolments", body, METTE.token);

  it("wrong codes from one address are limited: after five the address waits, even with the right code", async () => {
    const good = (await enrol({ name: "Frida", role: "staff", sites: ["home-a"], units: ["unit-1"] })).body;
    for (let i = 0; i < 5; i++) {
      const wrong = await exchange(t, "AAAAA-AAAAA");
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.code).toBe("enrolment_invalid");
    }
    const limited = await exchange(t, good.enrolment.code);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(500);
    // The limited attempt did not use the code up.
    const row = t.gateway.db
      .prepare("SELECT used_at FROM staff_enrolments WHERE id = ?")
      .get(good.enrolment.id) as { used_at: number | null };
    expect(row.used_at).toBeNull();
  });
});

describe("enrolment codes expire", () => {
  it("a code exchanged after its 15 minutes is refused; one exchanged in time works", () => {
    const db = openDb({ path: ":memory:" });
    try {
      let now = Date.parse("2026-12-02T20:00:00Z");
      const tokens = new TokenStore(db);
      const store = new EnrolmentStore(db, tokens, { now: () => now });
      const late = store.create({
        name: "G",
        role: "staff",
        sites: ["home-a"],
        units: null,
        createdBy: "cli",
      });
      const inTime = store.create({
        name: "H",
        role: "staff",
        sites: ["home-a"],
        units: null,
        createdBy: "cli",
      });
      now += 15 * 60_000 - 1;
      expect(store.exchange(inTime.code, "phone")?.identity.name).toBe("H");
      now += 1;
      expect(store.exchange(late.code, "phone")).toBeNull();
    } finally {
      db.close();
    }
  });
});
