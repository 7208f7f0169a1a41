/**
 * Resolve outcomes follow the alert type (src/alerts/outcomes.ts), enforced on the staff WebSocket
 * and over HTTP alike, and counted per type in the outcomes report.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OUTCOMES_BY_TYPE } from "../../src/alerts/outcomes.js";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  ADMIN_TOKEN,
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

describe("resolve outcomes per alert type", () => {
  let t: TestGateway;
  let device: MqttClient;
  let anna: StaffClient;
  let n = 0;

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

  /** Publish an event and return the id of the alert it raised, accepted by Anna. */
  const raiseAndAccept = async (type: string, alertType: string): Promise<string> => {
    const raised = anna.next(
      (m) => m.type === "alert" && m.change === "raised" && m.alert.type === alertType,
    );
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: `oc-${++n}`, type, data: {} }),
    );
    const id = (await raised).alert.id as string;
    const accepted = await anna.request({ type: "accept", alertId: id });
    expect(accepted.ok).toBe(true);
    return id;
  };

  it("welcome tells the console each type's outcomes in order: a fall offers the fall outcomes first, a call none", () => {
    const welcome = anna.messages.find((m) => m.type === "welcome");
    expect(welcome.outcomes.byType.fall.slice(0, 2)).toEqual(["fall-without-injury", "fall-with-injury"]);
    expect(welcome.outcomes.byType.call).toEqual(["assistance-given", "false-alarm", "no-action"]);
    expect(welcome.outcomes.default).toHaveLength(5);
  });

  it("a pendant call cannot be resolved as a fall, on the WebSocket or over HTTP; an allowed outcome resolves it", async () => {
    const id = await raiseAndAccept("call.manual", "call");
    const ws = await anna.request({ type: "resolve", alertId: id, outcome: "fall-without-injury" });
    expect(ws.ok).toBe(false);
    expect(ws.error.code).toBe("outcome_not_allowed");
    expect(ws.error.details).toEqual({
      type: "call",
      outcome: "fall-without-injury",
      allowed: OUTCOMES_BY_TYPE.call,
    });
    const http = await api(
      t.httpUrl,
      "POST",
      `/api/v1/alerts/${id}/resolve`,
      { outcome: "fall-with-injury" },
      STAFF.anna.token,
    );
    expect(http.status).toBe(422);
    expect(http.body.error.code).toBe("outcome_not_allowed");
    // Still open and still Anna's: a refused resolve changes nothing.
    const still = await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`, undefined, STAFF.anna.token);
    expect(still.body.alert.state).toBe("accepted");
    expect(still.body.history.some((h: { action: string }) => h.action === "resolved")).toBe(false);

    const ok = await anna.request({ type: "resolve", alertId: id, outcome: "assistance-given" });
    expect(ok.ok).toBe(true);
    expect(ok.result.alert.outcome).toBe("assistance-given");
  });

  it("a fall resolves with a fall outcome over HTTP, and a second call as a false alarm", async () => {
    const fall = await raiseAndAccept("fall.detected", "fall");
    const r = await api(
      t.httpUrl,
      "POST",
      `/api/v1/alerts/${fall}/resolve`,
      { outcome: "fall-with-injury" },
      STAFF.anna.token,
    );
    expect(r.status).toBe(200);
    expect(r.body.alert.outcome).toBe("fall-with-injury");
    const call = await raiseAndAccept("call.manual", "call");
    const c = await anna.request({ type: "resolve", alertId: call, outcome: "false-alarm" });
    expect(c.ok).toBe(true);
  });

  it("the outcomes report counts outcomes per alert type, as JSON and CSV", async () => {
    const r = await api(t.httpUrl, "GET", "/api/v1/reports/outcomes?site=home-a", undefined, ADMIN_TOKEN);
    expect(r.status).toBe(200);
    const byType = Object.fromEntries(r.body.byType.map((x: { type: string }) => [x.type, x])) as Record<
      string,
      { alerts: number; resolved: number; open: number; outcomes: Record<string, number>; allowed: string[] }
    >;
    expect(byType.call).toMatchObject({ alerts: 2, resolved: 2, open: 0, allowed: OUTCOMES_BY_TYPE.call });
    expect(byType.call!.outcomes).toEqual({
      "fall-with-injury": 0,
      "fall-without-injury": 0,
      "false-alarm": 1,
      "assistance-given": 1,
      "no-action": 0,
    });
    expect(byType.fall!.outcomes["fall-with-injury"]).toBe(1);
    expect(byType.fall!.resolved).toBe(1);
    expect(r.body.total.resolved).toBe(3);

    const csv = await fetch(`${t.httpUrl}/api/v1/reports/outcomes?site=home-a&format=csv`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    }).then((x) => x.text());
    const lines = csv.trim().split(/\r?\n/);
    expect(lines[0]).toBe(
      "type,alerts,open,resolved,cancelled,fall_with_injury,fall_without_injury,false_alarm,assistance_given,no_action",
    );
    expect(lines).toContain("call,2,0,2,0,0,0,1,1,0");
    // Reports are for managers: a staff token is refused.
    expect(
      (await api(t.httpUrl, "GET", "/api/v1/reports/outcomes", undefined, STAFF.anna.token)).status,
    ).toBe(403);
  });
});
