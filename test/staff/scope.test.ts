/**
 * A staff member sees only their own sites, and within a site their units until an alert has
 * escalated to the whole site; over the WebSocket and over HTTP alike.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { STAFF, StaffClient } from "./client.js";

const DEVICE = deviceIdFor("ata/native");

describe("staff scope: sites and units", () => {
  let t: TestGateway;
  let device: MqttClient;
  let anna: StaffClient;
  let carl: StaffClient;
  let hans: StaffClient;
  let n = 0;

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    carl = await StaffClient.connect(t.httpUrl, STAFF.carl.token);
    hans = await StaffClient.connect(t.httpUrl, STAFF.hans.token);
  });
  afterAll(async () => {
    for (const c of [anna, carl, hans]) await c?.close();
    device?.end(true);
    await t?.stop();
  });

  /** Everything the server sent before this point has arrived (one connection is one ordered stream). */
  const settled = async (c: StaffClient) => {
    const id = `sync-${++n}`;
    const pong = c.next((m) => m.type === "pong" && m.id === id);
    c.send({ type: "ping", id });
    await pong;
  };
  const sees = (c: StaffClient, alertId: string) => c.alertChanges().some((m) => m.alert.id === alertId);
  const list = async (token: string) =>
    ((await api(t.httpUrl, "GET", "/api/v1/alerts", undefined, token)).body.alerts as { id: string }[]).map(
      (a) => a.id,
    );

  it("welcomes each person with the names of the sites in their scope, their own units apart from the rest, and no other site", () => {
    const places = (c: StaffClient) => c.messages.find((m) => m.type === "welcome")?.places;
    const site = {
      timeZone: "Europe/Copenhagen",
      nightHours: { from: "22:00", to: "07:00" },
      residents: [],
    };
    expect(places(anna)).toEqual([
      {
        id: "home-a",
        name: "Home A",
        ...site,
        units: [{ id: "unit-1", name: "Unit 1" }],
        otherUnits: [{ id: "unit-2", name: "Unit 2" }],
      },
    ]);
    expect(places(carl)).toEqual([
      {
        id: "home-a",
        name: "Home A",
        ...site,
        units: [{ id: "unit-2", name: "Unit 2" }],
        otherUnits: [{ id: "unit-1", name: "Unit 1" }],
      },
    ]);
    expect(places(hans)).toEqual([
      { id: "home-b", name: "Home B", ...site, units: [{ id: "unit-9", name: "Unit 9" }], otherUnits: [] },
    ]);
  });

  it("a unit-2 staff member does not see a unit-1 fall until it escalates to the whole site; another site never does", async () => {
    const raised = anna.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "fall");
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "sc-1", type: "fall.detected", data: {} }),
    );
    const id = (await raised).alert.id as string;
    await settled(carl);
    await settled(hans);
    expect(sees(carl, id)).toBe(false);
    expect(sees(hans, id)).toBe(false);

    // Carl (unit-2) at level 0: not in his scope, over HTTP or the socket; not even its existence.
    expect(await list(STAFF.carl.token)).not.toContain(id);
    expect(await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.carl.token)).toMatchObject({
      status: 404,
      body: { error: { code: "alert_not_found" } },
    });
    expect(await carl.request({ type: "accept", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "alert_not_found" },
    });

    // Anna, the only unit-1 recipient, rejects: no nurse is connected, so it goes on to the whole site.
    const carlSees = carl.next((m) => m.type === "alert" && m.alert.id === id && m.alert.level === 2);
    expect(
      await anna.request({ type: "reject", alertId: id, reason: "with another resident" }),
    ).toMatchObject({
      ok: true,
      result: { alert: { level: 2 } },
    });
    expect(await carlSees).toMatchObject({ change: "escalated", alert: { id, level: 2, unit: "unit-1" } });
    expect(await list(STAFF.carl.token)).toContain(id);
    expect((await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.carl.token)).status).toBe(
      200,
    );

    // Home B's staff: not at level 2, nor ever; acting on it is "not found", never "forbidden".
    await settled(hans);
    expect(sees(hans, id)).toBe(false);
    expect(await list(STAFF.hans.token)).not.toContain(id);
    expect(await hans.request({ type: "accept", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "alert_not_found" },
    });
    for (const action of ["accept", "reject", "attend", "received"])
      expect(
        await api(t.httpUrl, "POST", `/api/v1/alerts/${id}/${action}`, {}, STAFF.hans.token),
      ).toMatchObject({
        status: 404,
        body: { error: { code: "alert_not_found" } },
      });
    expect(
      await api(t.httpUrl, "POST", `/api/v1/alerts/${id}/comment`, { text: "hello?" }, STAFF.hans.token),
    ).toMatchObject({ status: 404, body: { error: { code: "alert_not_found" } } });
    expect(await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.hans.token)).toMatchObject({
      status: 404,
      body: { error: { code: "alert_not_found" } },
    });
    expect(
      await api(t.httpUrl, "GET", "/api/v1/alerts?site=home-a", undefined, STAFF.hans.token),
    ).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden" } },
    });

    // Carl now takes it: Hans still hears nothing of it.
    expect(await carl.request({ type: "accept", alertId: id })).toMatchObject({
      ok: true,
      result: { alert: { acceptedBy: { id: "carl" } } },
    });
    await settled(hans);
    expect(sees(hans, id)).toBe(false);
    expect(hans.messages.filter((m) => m.type === "renotify")).toEqual([]);
  });

  it("a snapshot holds only alerts in the person's scope", async () => {
    const raised = anna.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "call");
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "sc-2", type: "call.manual", data: {} }),
    );
    const id = (await raised).alert.id as string;
    const snap = async (token: string) => {
      const c = await StaffClient.connect(t.httpUrl, token);
      const s = c.messages.find((m) => m.type === "snapshot");
      await c.close();
      return (s.alerts as { id: string }[]).map((a) => a.id);
    };
    expect(await snap(STAFF.bo.token)).toContain(id);
    expect(await snap(STAFF.carl.token)).not.toContain(id);
    expect(await snap(STAFF.hans.token)).toEqual([]);
    // A token without units covers every unit of its sites.
    expect(await snap(STAFF.nina.token)).toContain(id);
  });
});
