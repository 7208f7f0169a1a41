/**
 * Maintenance windows over HTTP: alerts from a device under maintenance are kept, suppressed, and
 * shown by the alert API with the window that suppressed them.
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
import { STAFF, StaffClient } from "../staff/client.js";

const DEVICE = deviceIdFor("ata/native");

describe("maintenance mode over the API", () => {
  let t: TestGateway;
  let device: MqttClient;
  let anna: StaffClient;

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
  });
  afterAll(async () => {
    await anna?.close();
    device?.end(true);
    await t?.stop();
  });

  it("a fall from a device under maintenance is suppressed, named after its window, and listed by the API", async () => {
    // Plain staff may not start maintenance; a nurse may.
    const body = { site: "home-a", device: DEVICE, minutes: 30, reason: "radar firmware update" };
    expect(await api(t.httpUrl, "POST", "/api/v1/maintenance", body, STAFF.anna.token)).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden" } },
    });
    const created = await api(t.httpUrl, "POST", "/api/v1/maintenance", body, STAFF.nina.token);
    expect(created).toMatchObject({ status: 201, body: { created: true } });
    const mid = created.body.id as number;

    const seen = anna.next((m) => m.type === "alert" && m.change === "suppressed");
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "m-1", type: "fall.detected", data: {} }),
    );
    const change = await seen;
    const reason = `maintenance #${mid}: radar firmware update`;
    expect(change).toMatchObject({
      alert: { type: "fall", state: "suppressed", undelivered: false },
      reason,
    });
    const id = change.alert.id as string;

    const listed = await api(
      t.httpUrl,
      "GET",
      "/api/v1/alerts?state=suppressed",
      undefined,
      STAFF.anna.token,
    );
    expect(listed.body.alerts.map((a: { id: string }) => a.id)).toEqual([id]);
    expect(
      (await api(t.httpUrl, "GET", "/api/v1/alerts?state=open", undefined, STAFF.anna.token)).body.alerts,
    ).toEqual([]);
    const one = await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.anna.token);
    expect(one.body.history).toMatchObject([
      {
        action: "suppressed",
        stateAfter: "suppressed",
        reason,
        data: { maintenanceId: mid, eventType: "fall.detected" },
      },
    ]);
    // Not something to act on.
    expect(await anna.request({ type: "accept", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "illegal_transition", details: { state: "suppressed" } },
    });

    // Ending the window early brings alerts back at once.
    expect(
      await api(t.httpUrl, "DELETE", `/api/v1/maintenance/${mid}`, undefined, STAFF.nina.token),
    ).toMatchObject({
      status: 200,
    });
    const raised = anna.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "fall");
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "m-2", type: "fall.detected", data: {} }),
    );
    expect((await raised).alert).toMatchObject({ state: "raised", priority: "high" });
    // The suppressed fall does not make this the resident's second fall of the day.
    const all = await api(t.httpUrl, "GET", "/api/v1/alerts", undefined, STAFF.anna.token);
    expect(all.body.alerts.map((a: { type: string }) => a.type).sort()).toEqual(["fall", "fall"]);
  });
});
