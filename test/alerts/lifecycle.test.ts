/**
 * An alert's whole life over real sockets: MQTT publish -> rule -> staff WebSocket -> accept ->
 * "taken by" on a colleague's screen -> attend -> resolve, and the audit log over HTTP.
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

const RADAR = deviceIdFor("ata/native");

/** Falls also raise repeated-falls for the resident: wait for the fall alert itself. */
const raisedFall = (c: StaffClient) =>
  c.next((m) => m.type === "alert" && m.change === "raised" && m.alert.type === "fall");

describe("an alert's lifecycle from a fall on MQTT to a resolved alert with its audit", () => {
  let t: TestGateway;
  let device: MqttClient;
  let anna: StaffClient;
  let bo: StaffClient;
  let n = 0;

  const fall = (type = "fall.detected") =>
    publish(
      device,
      deviceTopic(RADAR, "events"),
      JSON.stringify({ eventId: `lc-${++n}`, type, data: { confidence: 0.93 } }),
    );

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, RADAR, secretFor("ata/native"));
    anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    bo = await StaffClient.connect(t.httpUrl, STAFF.bo.token);
  });
  afterAll(async () => {
    await anna?.close();
    await bo?.close();
    device?.end(true);
    await t?.stop();
  });

  it("a fall reaches staff, one accepts, the other sees who took it, and attend and resolve are audited with times", async () => {
    const raisedSeen = raisedFall(anna);
    const boRaised = raisedFall(bo);
    // QoS 1: the PUBACK comes after the commit and the rules, so the alert exists by now.
    await fall();
    const raised = await raisedSeen;
    const id: string = raised.alert.id;
    expect(raised).toMatchObject({
      type: "alert",
      change: "raised",
      alert: {
        type: "fall",
        priority: "high",
        state: "raised",
        site: "home-a",
        unit: "unit-1",
        room: "r1",
        resident: "R-0001",
        deviceId: RADAR,
        undelivered: true,
        acceptedBy: null,
      },
    });
    expect(typeof raised.seq).toBe("number");
    expect((await boRaised).alert.id).toBe(id);

    expect(await anna.request({ type: "received", alertId: id })).toMatchObject({
      ok: true,
      result: { alert: { undelivered: false, deliveredTo: ["Anna"] } },
    });

    const boSeesAccepted = bo.change(id, "accepted");
    expect(await anna.request({ type: "accept", alertId: id })).toMatchObject({
      type: "reply",
      ok: true,
      result: { alert: { id, state: "accepted", acceptedBy: { id: "anna", name: "Anna" } } },
    });
    const taken = await boSeesAccepted;
    expect(taken.alert).toMatchObject({ state: "accepted", acceptedBy: { id: "anna", name: "Anna" } });
    expect(taken.actor).toBe("Anna");

    // Bo can neither take it nor attend it: it is Anna's.
    expect(await bo.request({ type: "accept", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "already_taken", message: "already taken by Anna" },
    });
    expect(await bo.request({ type: "attend", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "already_taken" },
    });

    const boSeesAttending = bo.change(id, "attending");
    expect(await anna.request({ type: "attend", alertId: id })).toMatchObject({
      ok: true,
      result: { alert: { state: "attending" } },
    });
    await boSeesAttending;
    const boSeesResolved = bo.change(id, "resolved");
    expect(
      await anna.request({ type: "resolve", alertId: id, outcome: "fall-without-injury", note: "helped up" }),
    ).toMatchObject({ ok: true, result: { alert: { state: "resolved", outcome: "fall-without-injury" } } });
    expect((await boSeesResolved).alert).toMatchObject({ state: "resolved", outcome: "fall-without-injury" });

    const { status, body } = await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.bo.token);
    expect(status).toBe(200);
    const history = body.history as { id: number; at: string; action: string; actor: { id: string } }[];
    expect(history.map((h) => [h.action, h.actor.id])).toEqual([
      ["raised", "rule:fall"],
      ["notified", "channel:console"],
      ["delivered", "staff:anna"],
      ["accepted", "staff:anna"],
      ["attending", "staff:anna"],
      ["resolved", "staff:anna"],
    ]);
    expect(history.at(-1)).toMatchObject({ reason: "helped up", stateAfter: "resolved" });
    // Every step has a time, in order; response times are differences of them.
    const at = (action: string) => Date.parse(history.find((h) => h.action === action)!.at);
    for (let i = 1; i < history.length; i++)
      expect(Date.parse(history[i]!.at)).toBeGreaterThanOrEqual(Date.parse(history[i - 1]!.at));
    expect(body.responseTimes).toEqual({
      toAcceptSec: (at("accepted") - at("raised")) / 1000,
      toAttendSec: (at("attending") - at("raised")) / 1000,
      toResolveSec: (at("resolved") - at("raised")) / 1000,
    });
    // The WebSocket seq of each change is the audit id of its entry.
    const seqs = anna
      .alertChanges()
      .filter((m) => m.alert.id === id)
      .map((m) => m.seq);
    expect(seqs).toEqual(history.map((h) => h.id));
    expect(body.alert).toMatchObject({
      state: "resolved",
      acceptedBy: { id: "anna" },
      outcome: "fall-without-injury",
    });
  });

  it("illegal transitions get their code from the catalogue, over the WebSocket and over HTTP", async () => {
    const seen = raisedFall(anna);
    await fall();
    const id: string = (await seen).alert.id;

    // Resolving or attending an alert nobody has accepted.
    expect(await anna.request({ type: "resolve", alertId: id, outcome: "no-action" })).toMatchObject({
      ok: false,
      error: { code: "illegal_transition", details: { state: "raised", allowed: ["accepted", "attending"] } },
    });
    const http = await api(
      t.httpUrl,
      "POST",
      `/api/v1/alerts/${id}/resolve`,
      { outcome: "no-action" },
      STAFF.bo.token,
    );
    expect(http).toMatchObject({ status: 409, body: { error: { code: "illegal_transition" } } });
    expect(await anna.request({ type: "attend", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "illegal_transition" },
    });

    // Attending someone else's.
    expect(await bo.request({ type: "accept", alertId: id })).toMatchObject({ ok: true });
    expect(await anna.request({ type: "attend", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "already_taken", message: "taken by Bo" },
    });
    expect(
      await api(t.httpUrl, "POST", `/api/v1/alerts/${id}/attend`, undefined, STAFF.anna.token),
    ).toMatchObject({
      status: 409,
      body: { error: { code: "already_taken" } },
    });
    expect(
      await api(t.httpUrl, "POST", `/api/v1/alerts/${id}/accept`, undefined, STAFF.anna.token),
    ).toMatchObject({
      status: 409,
      body: { error: { code: "already_taken" } },
    });

    // A closed alert takes no more actions; an unknown one is not found.
    expect(
      await api(
        t.httpUrl,
        "POST",
        `/api/v1/alerts/${id}/resolve`,
        { outcome: "false-alarm" },
        STAFF.bo.token,
      ),
    ).toMatchObject({ status: 200, body: { alert: { state: "resolved" } } });
    expect(await anna.request({ type: "accept", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "illegal_transition", details: { state: "resolved" } },
    });
    expect(await anna.request({ type: "reject", alertId: id })).toMatchObject({
      ok: false,
      error: { code: "illegal_transition" },
    });
    expect(await anna.request({ type: "accept", alertId: "al_nope" })).toMatchObject({
      ok: false,
      error: { code: "alert_not_found" },
    });
    expect(
      await api(t.httpUrl, "POST", "/api/v1/alerts/al_nope/accept", undefined, STAFF.anna.token),
    ).toMatchObject({
      status: 404,
      body: { error: { code: "alert_not_found" } },
    });
    // The failed attempts left no trace in the audit.
    const { body } = await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`);
    expect(body.history.map((h: { action: string }) => h.action)).toEqual([
      "raised",
      "notified",
      "accepted",
      "resolved",
    ]);
  });

  it("a re-trigger while open is one alert with a count; a fall after it was resolved is a new alert", async () => {
    const raised = raisedFall(anna);
    await fall();
    const first = (await raised).alert.id as string;
    const updated = anna.change(first, "updated");
    await fall("fall.confirmed");
    expect((await updated).alert).toMatchObject({ id: first, count: 2, lastEventType: "fall.confirmed" });
    await anna.request({ type: "accept", alertId: first });
    await anna.request({ type: "resolve", alertId: first, outcome: "false-alarm" });
    const again = raisedFall(anna);
    await fall();
    const second = (await again).alert;
    expect(second.id).not.toBe(first);
    expect(second).toMatchObject({ count: 1, state: "raised" });
    await anna.request({ type: "accept", alertId: second.id });
    await anna.request({ type: "resolve", alertId: second.id, outcome: "false-alarm" });
  });
});
