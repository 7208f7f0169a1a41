/**
 * A payload without an eventId is a new event each time, except for a redelivery: the same bytes
 * from the same device within the redelivery window. Dropped redeliveries leave a trace and are
 * counted. Simulated time for the window; real MQTT over TCP for a redelivery after a broken
 * connection.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import mqttPacket from "mqtt-packet";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  ADMIN_TOKEN,
  api,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { buildHarness, DEVICES, type Harness, UNIT_STAFF } from "../rules/harness.js";

const FALL = JSON.stringify({ type: "fall.detected", data: { confidence: 0.9 } });

describe("derived event ids and the redelivery window", () => {
  let h: Harness;
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date("2026-01-14T10:00:00Z") });
    h = buildHarness();
  });
  afterEach(() => {
    h.close();
    vi.useRealTimers();
  });
  const logged = () =>
    h.db.prepare("SELECT event_id FROM events WHERE device_id = ? ORDER BY seq").all(DEVICES.native.id) as {
      event_id: string;
    }[];
  const traces = () =>
    h.db
      .prepare("SELECT event_id, reason FROM duplicates WHERE device_id = ? ORDER BY id")
      .all(DEVICES.native.id) as {
      event_id: string;
      reason: string;
    }[];

  it("the same bytes twice within the window are one event; the second is traced as a redelivery", async () => {
    expect(await h.publish(DEVICES.native.id, "events", FALL)).toEqual({
      ok: true,
      events: 1,
      duplicates: 0,
    });
    vi.advanceTimersByTime(30_000);
    expect(await h.publish(DEVICES.native.id, "events", FALL)).toEqual({
      ok: true,
      events: 0,
      duplicates: 1,
    });
    expect(logged()).toHaveLength(1);
    expect(traces()).toEqual([
      {
        event_id: expect.stringMatching(/^d:[\w-]{22}:0:t[0-9a-z]+$/),
        reason: "redelivery (same bytes 30 s earlier)",
      },
    ]);
    expect(h.all()).toHaveLength(1);
  });

  it("the same bytes after the window are a new event: a fall after the first was resolved raises a second alert", async () => {
    await h.publish(DEVICES.native.id, "events", FALL);
    const [first] = h.all();
    h.alerts.accept(first!.id, UNIT_STAFF);
    h.alerts.resolve(first!.id, UNIT_STAFF, "fall-without-injury");
    vi.advanceTimersByTime(121_000);
    expect(await h.publish(DEVICES.native.id, "events", FALL)).toEqual({
      ok: true,
      events: 1,
      duplicates: 0,
    });
    expect(logged()).toHaveLength(2);
    expect(new Set(logged().map((r) => r.event_id)).size).toBe(2);
    expect(
      h
        .all()
        .filter((a) => a.type === "fall")
        .map((a) => a.state),
    ).toEqual(["resolved", "raised"]);
    expect(traces()).toEqual([]);
  });

  it("a device's own eventId keeps exact dedupe at any distance, and the dropped copy is traced", async () => {
    const withId = JSON.stringify({ eventId: "fall-77", type: "fall.detected", data: {} });
    await h.publish(DEVICES.native.id, "events", withId);
    vi.advanceTimersByTime(3 * 3_600_000);
    expect(await h.publish(DEVICES.native.id, "events", withId)).toEqual({
      ok: true,
      events: 0,
      duplicates: 1,
    });
    expect(logged()).toEqual([{ event_id: "fall-77" }]);
    expect(traces()).toEqual([{ event_id: "fall-77", reason: "event_id (already logged)" }]);
  });

  it("after a restart the window still holds: a redelivery of an event committed just before is recognised from the log", async () => {
    await h.publish(DEVICES.native.id, "events", FALL);
    h.timers.stop();
    vi.advanceTimersByTime(5_000);
    // A new pipeline on the same database, as after kill -9: its memory of recent payloads is rebuilt.
    const db = h.db;
    h = buildHarness({ db });
    expect(await h.publish(DEVICES.native.id, "events", FALL)).toEqual({
      ok: true,
      events: 0,
      duplicates: 1,
    });
    expect(logged()).toHaveLength(1);
  });

  it("different bytes within the window are different events", async () => {
    await h.publish(DEVICES.native.id, "events", FALL);
    await h.publish(DEVICES.native.id, "events", JSON.stringify({ type: "call.manual", data: {} }));
    expect(logged()).toHaveLength(2);
  });
});

describe("a QoS 1 redelivery after a broken connection", () => {
  let t: TestGateway;
  const DEVICE = deviceIdFor("ata/native");
  beforeAll(async () => {
    t = await startGateway();
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** A raw MQTT 3.1.1 client: CONNECT, then the given packets; resolves with the packets it got back. */
  function session(packets: object[]): Promise<{ socket: Socket; received: mqttPacket.Packet[] }> {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect(t.mqttPort, "127.0.0.1");
      socket.setNoDelay(true);
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const received: mqttPacket.Packet[] = [];
      parser.on("packet", (p) => {
        received.push(p);
        if (p.cmd === "connack") {
          for (const x of packets) socket.write(mqttPacket.generate(x as mqttPacket.Packet));
          resolve({ socket, received });
        }
      });
      socket.on("data", (d) => parser.parse(d));
      socket.on("error", reject);
      socket.write(
        mqttPacket.generate({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 4,
          clean: false,
          clientId: DEVICE,
          keepalive: 30,
          username: DEVICE,
          password: Buffer.from(secretFor("ata/native")),
        }),
      );
    });
  }

  it("the redelivered publish (DUP set, same bytes) is acknowledged and logged once", async () => {
    const publish = (dup: boolean) => ({
      cmd: "publish",
      topic: deviceTopic(DEVICE, "events"),
      payload: Buffer.from(JSON.stringify({ type: "call.manual", data: { pressDurationSec: 1 } })),
      qos: 1,
      messageId: 7,
      dup,
      retain: false,
    });
    const count = () =>
      (
        t.gateway.db
          .prepare("SELECT count(*) AS n FROM events WHERE device_id = ? AND type = 'call.manual'")
          .get(DEVICE) as {
          n: number;
        }
      ).n;
    const before = count();
    // The connection breaks before the device reads its PUBACK.
    const first = await session([publish(false)]);
    await eventually(() => (count() === before + 1 ? true : null));
    first.socket.destroy();
    const second = await session([publish(true)]);
    const ack = await eventually(() => second.received.find((p) => p.cmd === "puback") ?? null);
    expect(ack).toMatchObject({ cmd: "puback", messageId: 7 });
    second.socket.destroy();
    expect(count()).toBe(before + 1);
    const { body, status } = await api(t.httpUrl, "GET", `/api/v1/devices/${DEVICE}`, undefined, ADMIN_TOKEN);
    expect({ status, body }).toMatchObject({ status: 200 });
    expect(body.device.diagnostics.duplicates).toMatchObject({ total: 1, day: 1 });
    const dup = await api(t.httpUrl, "GET", `/api/v1/duplicates?device=${DEVICE}`, undefined, ADMIN_TOKEN);
    expect(dup.body.duplicates).toMatchObject([
      { device_id: DEVICE, reason: expect.stringMatching(/^redelivery/) },
    ]);
    const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/ata_events_duplicate_total\{reason="redelivery"\} 1/);
  });
});
