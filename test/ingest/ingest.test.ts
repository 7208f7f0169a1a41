import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureBytes } from "../../devices/conformance.js";
import { PROFILES } from "../../devices/index.js";
import { deviceTopic, errorTopic } from "../../src/broker/topics.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const run = promisify(execFile);

interface Row {
  seq: number;
  event_id: string;
  device_id: string;
  type: string;
  data: string;
  site_id: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  occurred_at: number;
}

describe("ingest over real MQTT", () => {
  let t: TestGateway;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await startGateway();
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t.stop();
  });

  const rows = (deviceId: string) =>
    t.gateway.db
      .prepare(
        "SELECT * FROM events WHERE device_id = ? AND type NOT IN ('device.online', 'device.offline') ORDER BY seq",
      )
      .all(deviceId) as Row[];

  for (const profile of PROFILES) {
    it(`logs every ${profile.id} fixture as its canonical events, placed from the registry`, async () => {
      const id = deviceIdFor(profile.id);
      const client = await connectDevice(t.mqttPort, id, secretFor(profile.id));
      clients.push(client);
      const errors: string[] = [];
      client.on("message", (_topic, payload) => errors.push(payload.toString()));
      await client.subscribeAsync(errorTopic(id), { qos: 1 });
      const expected: { type: string; data: unknown; eventId?: string }[] = [];
      for (const fixture of profile.fixtures) {
        // QoS 1 resolves on PUBACK, which the gateway sends only after the commit.
        await publish(client, deviceTopic(id, fixture.topic), fixtureBytes(fixture));
        if (!fixture.rejects) expected.push(...fixture.expected);
      }
      const logged = rows(id);
      expect(logged.map((r) => ({ type: r.type, data: JSON.parse(r.data) }))).toEqual(
        expected.map((e) => ({ type: e.type, data: e.data })),
      );
      for (const r of logged) {
        expect(r).toMatchObject({
          site_id: "home-a",
          unit_id: "unit-1",
          room_id: "r1",
          resident_ref: "R-0001",
        });
      }
      const rejecting = profile.fixtures.filter((f) => f.rejects);
      await eventually(() => errors.length === rejecting.length);
      expect(errors.map((e) => JSON.parse(e).code)).toEqual(rejecting.map((f) => f.rejects));
    });
  }

  it("logs an event published by mosquitto_pub (a non-Node client)", async () => {
    const id = deviceIdFor("ata/native");
    const body = JSON.stringify({ eventId: "mosq-1", type: "call.manual", data: { pressDurationSec: 2 } });
    await run("mosquitto_pub", [
      "-h",
      "127.0.0.1",
      "-p",
      String(t.mqttPort),
      "-i",
      id,
      "-u",
      id,
      "-P",
      secretFor("ata/native"),
      "-q",
      "1",
      "-t",
      deviceTopic(id, "events"),
      "-m",
      body,
    ]);
    const r = rows(id).find((x) => x.event_id === "mosq-1");
    expect(r).toMatchObject({ type: "call.manual", site_id: "home-a" });
  });

  it("logs a redelivered event once (dedupe by eventId)", async () => {
    const id = deviceIdFor("ata/native");
    const client = await connectDevice(t.mqttPort, id, secretFor("ata/native"));
    clients.push(client);
    const body = JSON.stringify({ eventId: "dup-1", type: "fall.detected", data: { confidence: 0.9 } });
    await publish(client, deviceTopic(id, "events"), body);
    await publish(client, deviceTopic(id, "events"), body);
    expect(rows(id).filter((r) => r.event_id === "dup-1")).toHaveLength(1);
  });

  describe("malformed input is dead-lettered with a reason, the device is told, and the gateway keeps serving", () => {
    const cases: [string, Buffer, string][] = [
      ["malformed JSON", Buffer.from('{"type": "fall.detected", '), "bad_json"],
      [
        "wrong schema",
        Buffer.from(JSON.stringify({ type: "fall.detected", data: { confidence: "very" } })),
        "bad_schema",
      ],
      [
        "unknown event type",
        Buffer.from(JSON.stringify({ type: "fall.imagined", data: {} })),
        "unknown_event",
      ],
      [
        "oversized payload",
        Buffer.from(JSON.stringify({ type: "call.manual", data: {}, pad: "x".repeat(5000) })),
        "payload_too_large",
      ],
      ["binary garbage", Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x13, 0x37, 0xc3, 0x28]), "bad_encoding"],
    ];
    for (const [name, payload, code] of cases) {
      it(`${name} -> ${code}`, async () => {
        const id = deviceIdFor("ata/native");
        const client = await connectDevice(t.mqttPort, id, secretFor("ata/native"));
        clients.push(client);
        const received: { code: string; message: string; topic: string }[] = [];
        client.on("message", (_t, p) => received.push(JSON.parse(p.toString())));
        await client.subscribeAsync(errorTopic(id), { qos: 1 });
        const before =
          (t.gateway.db.prepare("SELECT max(id) AS m FROM dead_letters").get() as { m: number | null }).m ??
          0;
        await publish(client, deviceTopic(id, "events"), payload);
        const dead = t.gateway.db.prepare("SELECT * FROM dead_letters WHERE id > ?").all(before) as {
          code: string;
          reason: string;
          payload: Buffer;
          size: number;
          device_id: string;
        }[];
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({ code, device_id: id, size: payload.length });
        expect(dead[0]!.reason.length).toBeGreaterThan(5);
        // Kept whole up to the largest payload the gateway accepts (4096 in the test config), no more.
        const kept = payload.subarray(0, t.gateway.config.mqtt.maxPayloadBytes);
        expect(Buffer.compare(dead[0]!.payload, kept)).toBe(0);
        await eventually(() => received.length === 1);
        expect(received[0]).toMatchObject({ code, topic: deviceTopic(id, "events") });

        // Still serving: another device's event goes through.
        const other = deviceIdFor(PROFILES[1]!.id);
        const c2 = await connectDevice(t.mqttPort, other, secretFor(PROFILES[1]!.id));
        clients.push(c2);
        expect(c2.connected).toBe(true);
      });
    }

    it("a frame beyond the transport limit closes only that connection", async () => {
      const id = deviceIdFor("ata/native");
      const client = await connectDevice(t.mqttPort, id, secretFor("ata/native"));
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      client.publish(deviceTopic(id, "events"), Buffer.alloc(300 * 1024, 0x41), { qos: 1 });
      await closed;
      client.end(true);
      const c2 = await connectDevice(t.mqttPort, id, secretFor("ata/native"));
      clients.push(c2);
      await publish(
        c2,
        deviceTopic(id, "events"),
        JSON.stringify({ eventId: "after-big", type: "call.manual", data: {} }),
      );
      expect(rows(id).some((r) => r.event_id === "after-big")).toBe(true);
    });

    it("a publish on a channel the profile does not use is dead-lettered as unknown_topic", async () => {
      const id = deviceIdFor("ata/native");
      const client = await connectDevice(t.mqttPort, id, secretFor("ata/native"));
      clients.push(client);
      await publish(client, deviceTopic(id, "nonsense"), "{}");
      const last = t.gateway.db.prepare("SELECT code FROM dead_letters ORDER BY id DESC LIMIT 1").get() as {
        code: string;
      };
      expect(last.code).toBe("unknown_topic");
    });
  });
});
