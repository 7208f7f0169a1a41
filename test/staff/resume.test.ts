/**
 * A staff client that reconnects with the last `seq` it saw gets every change it missed, in order,
 * none twice, then live changes; one that is too far behind (or ahead) gets a fresh snapshot.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import type { StaffIdentity } from "../../src/staff/protocol.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { type Msg, STAFF, StaffClient } from "./client.js";

const DEVICE = deviceIdFor("ata/native");

describe("reconnecting with the last sequence number", () => {
  let t: TestGateway;
  let device: MqttClient;
  let bo: StaffClient;
  let n = 0;
  const boIdentity = (): StaffIdentity => t.gateway.tokens.verify(STAFF.bo.token)!;

  const send = (type: string) =>
    publish(device, deviceTopic(DEVICE, "events"), JSON.stringify({ eventId: `rs-${++n}`, type, data: {} }));
  /** Audit ids after `seq` in home-a: what anna (unit-1, every device is there) must receive. */
  const auditIdsAfter = (seq: number) =>
    (
      t.gateway.db
        .prepare("SELECT id FROM alert_audit WHERE id > ? AND site_id = 'home-a' ORDER BY id")
        .all(seq) as {
        id: number;
      }[]
    ).map((r) => r.id);
  /** The messages after the hello reply, up to and including `resumed` or `snapshot`. */
  const afterHello = (c: StaffClient) => {
    const i = c.messages.findIndex((m) => m.type === "welcome");
    const end = c.messages.findIndex((m) => m.type === "resumed" || m.type === "snapshot");
    return c.messages.slice(i + 1, end + 1) as Msg[];
  };

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
    bo = await StaffClient.connect(t.httpUrl, STAFF.bo.token);
  });
  afterAll(async () => {
    await bo?.close();
    device?.end(true);
    await t?.stop();
  });

  it("gets exactly the missed seqs in order, then resumed, then live changes, with nothing missed or duplicated", async () => {
    const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    expect(anna.messages.find((m) => m.type === "snapshot")).toMatchObject({ reason: "initial", alerts: [] });
    const raised = anna.next((m) => m.type === "alert" && m.alert.type === "fall" && m.change === "raised");
    await send("fall.detected");
    const fall = (await raised).alert.id as string;
    // Wait until anna has seen everything so far, then note the last seq, as a client would.
    const head = t.gateway.alerts.head();
    await eventually(() => anna.alertChanges().some((m) => m.seq === head));
    const lastSeq = Math.max(...anna.alertChanges().map((m) => m.seq));
    expect(lastSeq).toBe(head);
    await anna.close();

    // While she is away: Bo takes the fall, comments over HTTP, a pendant call comes and Bo
    // rejects it (so it escalates), the fall is resolved.
    expect(await bo.request({ type: "accept", alertId: fall })).toMatchObject({ ok: true });
    await api(t.httpUrl, "POST", `/api/v1/alerts/${fall}/comment`, { text: "on my way" }, STAFF.bo.token);
    const callRaised = bo.next((m) => m.type === "alert" && m.alert.type === "call" && m.change === "raised");
    await send("call.manual");
    const call = (await callRaised).alert.id as string;
    expect(await bo.request({ type: "reject", alertId: call, reason: "busy" })).toMatchObject({ ok: true });
    expect(await bo.request({ type: "attend", alertId: fall })).toMatchObject({ ok: true });
    expect(await bo.request({ type: "resolve", alertId: fall, outcome: "no-action" })).toMatchObject({
      ok: true,
    });
    const missed = auditIdsAfter(lastSeq);
    expect(missed.length).toBeGreaterThanOrEqual(7);

    const back = await StaffClient.connect(t.httpUrl, STAFF.anna.token, lastSeq);
    const replay = afterHello(back);
    expect(replay.at(-1)).toEqual({ type: "resumed", from: lastSeq, replayed: missed.length });
    expect(replay.slice(0, -1).map((m) => m.seq)).toEqual(missed);
    expect(replay.slice(0, -1).every((m) => m.type === "alert")).toBe(true);
    expect(replay.slice(0, -1).map((m) => m.change)).toEqual(
      expect.arrayContaining([
        "accepted",
        "comment",
        "raised",
        "rejected",
        "escalated",
        "attending",
        "resolved",
      ]),
    );
    expect(back.messages.some((m) => m.type === "snapshot")).toBe(false);

    // Live changes continue from there: the next seq, once.
    const live = back.next((m) => m.type === "alert" && m.alert.id === call && m.change === "accepted");
    expect(await bo.request({ type: "accept", alertId: call })).toMatchObject({ ok: true });
    expect((await live).seq).toBe(t.gateway.alerts.head());
    const seqs = back.alertChanges().map((m) => m.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(seqs).toEqual(auditIdsAfter(lastSeq));
    await bo.request({ type: "resolve", alertId: call, outcome: "no-action" });
    await back.close();
  });

  it("a long absence is replayed in full, not cut off as a slow client", async () => {
    const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    const lastSeq = (anna.messages.find((m) => m.type === "snapshot") as Msg).seq as number;
    await anna.close();
    const raised = bo.next((m) => m.type === "alert" && m.alert.type === "fall" && m.change === "raised");
    await send("fall.detected");
    const fall = (await raised).alert.id as string;
    // A busy night: 4,000 comments while the wall screen was unplugged.
    t.gateway.db.transaction(() => {
      for (let i = 0; i < 4000; i++) t.gateway.alerts.comment(fall, boIdentity(), `note ${i}`);
    })();
    const missed = auditIdsAfter(lastSeq);
    const back = await StaffClient.connect(t.httpUrl, STAFF.anna.token, lastSeq);
    expect(afterHello(back).at(-1)).toEqual({ type: "resumed", from: lastSeq, replayed: missed.length });
    expect(back.alertChanges().map((m) => m.seq)).toEqual(missed);
    // Still connected and live.
    const pong = back.next((m) => m.type === "pong");
    back.send({ type: "ping", id: "p1" });
    expect(await pong).toMatchObject({ id: "p1" });
    expect(back.closed).toBeNull();
    await back.close();
    await bo.request({ type: "accept", alertId: fall });
    await bo.request({ type: "resolve", alertId: fall, outcome: "no-action" });
  });

  it("a resumeFrom too old (more than 5,000 changes behind) gets a fresh snapshot instead", async () => {
    const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    const lastSeq = (anna.messages.find((m) => m.type === "snapshot") as Msg).seq as number;
    await anna.close();
    const raised = bo.next((m) => m.type === "alert" && m.alert.type === "fall" && m.change === "raised");
    await send("fall.detected");
    const fall = (await raised).alert.id as string;
    t.gateway.db.transaction(() => {
      for (let i = 0; i < 5001; i++) t.gateway.alerts.comment(fall, boIdentity(), `note ${i}`);
    })();
    const back = await StaffClient.connect(t.httpUrl, STAFF.anna.token, lastSeq);
    const snapshot = afterHello(back).at(-1);
    expect(snapshot).toMatchObject({
      type: "snapshot",
      reason: "resume_too_old",
      seq: t.gateway.alerts.head(),
    });
    expect(snapshot.alerts.map((a: { id: string }) => a.id)).toContain(fall);
    expect(back.alertChanges()).toEqual([]);
    await back.close();
    await bo.request({ type: "accept", alertId: fall });
    await bo.request({ type: "resolve", alertId: fall, outcome: "no-action" });
  });

  it("a resumeFrom this gateway never issued (a restored database) gets a snapshot, not an empty replay", async () => {
    const back = await StaffClient.connect(t.httpUrl, STAFF.anna.token, t.gateway.alerts.head() + 1000);
    expect(afterHello(back).at(-1)).toMatchObject({ type: "snapshot", reason: "resume_unknown" });
    await back.close();
  });
});
