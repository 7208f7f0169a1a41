/**
 * A staff socket keeps each alert's changes in order, but a fall raised while another alert's change
 * waits for its fsync is not held behind it; a client that loses its socket meanwhile still gets the
 * held change on resume.
 *
 * The fsync of the gateway's database runs on libuv's thread pool. The test holds that pool with key
 * derivations, so a person's action (an accept) stays waiting for its fsync for a known while, and
 * shows the hold was real: the accept's reply and change arrive only after the derivations end.
 */
import { pbkdf2 } from "node:crypto";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
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

/**
 * Occupy every thread of libuv's pool for about `ms`: resolves when they are free again. Twice as
 * many jobs as threads, so none is left over for an fsync queued meanwhile.
 */
function holdThreadPool(ms: number): { done: Promise<number> } {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  // Calibrated once per call: the iterations one thread does in ms / 2 (two rounds of jobs).
  const start = performance.now();
  const probe = 20_000;
  const jobs: Promise<void>[] = [];
  const done = new Promise<void>((resolve, reject) =>
    pbkdf2("p", "s", probe, 32, "sha256", (err) => (err ? reject(err) : resolve())),
  ).then(() => {
    const perMs = probe / Math.max(performance.now() - start, 0.1);
    const iterations = Math.max(1, Math.round((perMs * ms) / 2));
    for (let i = 0; i < threads * 2; i++)
      jobs.push(
        new Promise<void>((resolve, reject) =>
          pbkdf2("p", `s${i}`, iterations, 32, "sha256", (err) => (err ? reject(err) : resolve())),
        ),
      );
    return Promise.all(jobs).then(() => performance.now());
  });
  return { done };
}

describe("order per alert on a staff socket, not across alerts", () => {
  let t: TestGateway;
  let device: MqttClient;
  let n = 0;
  const send = (type: string) =>
    publish(device, deviceTopic(DEVICE, "events"), JSON.stringify({ eventId: `ord-${++n}`, type, data: {} }));

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
  });
  afterAll(async () => {
    device?.end(true);
    await t?.stop();
  });

  it("a call raised while an accept waits for its fsync reaches the socket first; the accept follows, and a resume after a drop replays it", {
    timeout: 180_000,
  }, async () => {
    const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    const bo = await StaffClient.connect(t.httpUrl, STAFF.bo.token);
    const raised = anna.next((m) => m.type === "alert" && m.alert.type === "fall" && m.change === "raised");
    await send("fall.detected");
    const fall = (await raised).alert.id as string;
    await eventually(() => anna.alertChanges().some((m) => m.seq === t.gateway.alerts.head()));

    // The pool is busy from here: Bo's accept is committed but its fsync cannot run.
    const hold = holdThreadPool(3000);
    await new Promise((r) => setTimeout(r, 50)); // the derivations have started
    // Waited for with a long timeout: on a loaded machine the hold can last well past its target.
    const acceptReply = bo.next((m) => m.type === "reply" && m.id === "accept-fall", 120_000);
    const acceptChange = bo.change(fall, "accepted", 120_000);
    bo.send({ type: "accept", id: "accept-fall", alertId: fall });
    await eventually(() => t.gateway.alerts.get(fall)?.state === "accepted");
    const acceptSeq = t.gateway.alerts.head();

    // A call from the same room: an event the rules replay after a crash, so it needs no fsync of
    // its own. It reaches Anna while the accept is still held.
    const callRaised = anna.next(
      (m) => m.type === "alert" && m.alert.type === "call" && m.change === "raised",
    );
    await send("call.manual");
    const call = await callRaised;
    const callAt = performance.now();
    expect(call.seq).toBeGreaterThan(acceptSeq);
    expect(anna.alertChanges().some((m) => m.seq === acceptSeq)).toBe(false);
    expect(bo.messages.some((m) => m.type === "reply" && m.id !== "hello")).toBe(false);

    // Anna's socket drops before the accept is sent to it, the highest seq she saw past it.
    const lastSeq = Math.max(...anna.alertChanges().map((m: Msg) => m.seq as number));
    expect(lastSeq).toBeGreaterThanOrEqual(call.seq);
    expect(anna.alertChanges().some((m) => m.seq === acceptSeq)).toBe(false);
    await anna.close();

    // The hold was real: Bo's reply came only once the pool was free, after the call was out.
    const freedAt = await hold.done;
    expect(await acceptReply).toMatchObject({ ok: true });
    expect(freedAt).toBeGreaterThan(callAt);
    expect(await acceptChange).toMatchObject({ seq: acceptSeq });

    // Bo's socket got both, each alert's changes in their order.
    const boSeqs = (id: string) =>
      bo
        .alertChanges()
        .filter((m) => m.alert.id === id)
        .map((m) => m.seq as number);
    for (const id of [fall, call.alert.id as string])
      expect(boSeqs(id)).toEqual([...boSeqs(id)].sort((a, b) => a - b));

    // Anna resumes from the highest seq she saw and still gets the accept she never received.
    const back = await StaffClient.connect(t.httpUrl, STAFF.anna.token, lastSeq);
    const replayed = back.alertChanges();
    expect(replayed.map((m) => m.seq)).toContain(acceptSeq);
    expect(replayed.find((m) => m.seq === acceptSeq)).toMatchObject({
      change: "accepted",
      alert: { id: fall },
    });
    expect(back.messages.find((m) => m.type === "resumed")).toBeDefined();
    // The floor is used once: the next resume from the same point replays nothing before it.
    await back.close();
    const again = await StaffClient.connect(t.httpUrl, STAFF.anna.token, lastSeq);
    expect(again.alertChanges().map((m) => m.seq)).not.toContain(acceptSeq);
    await again.close();

    await bo.close();
  });
});
