import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { statusTopic } from "../../src/broker/topics.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { connectFrame } from "../helpers/mqtt-frames.js";

const LIFT = deviceIdFor("generic/ceiling-lift");
const RADAR = deviceIdFor("vayyar/care");

describe("device presence", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway();
  });
  afterAll(async () => {
    await t.stop();
  });

  const presenceEvents = (id: string) =>
    t.gateway.db
      .prepare(
        "SELECT type, data FROM events WHERE device_id = ? AND type IN ('device.online', 'device.offline') ORDER BY seq",
      )
      .all(id) as { type: string; data: string }[];

  it("a connected device that goes silent past its profile's supervision window is offline, and back online when heard", async () => {
    const client = await connectDevice(t.mqttPort, RADAR, secretFor("vayyar/care"));
    await eventually(() => t.gateway.presence.status(RADAR).online);
    const profile = PROFILES.find((p) => p.id === "vayyar/care")!;
    const windowMs = profile.supervision.heartbeatSec * profile.supervision.missedHeartbeats * 1000;
    // Supervision with the clock moved past the window: the open TCP session does not count as life.
    const realNow = Date.now;
    const presence = t.gateway.presence as unknown as { now: () => number };
    const saved = presence.now;
    presence.now = () => realNow() + windowMs + 1000;
    try {
      t.gateway.presence.supervise();
    } finally {
      presence.now = saved;
    }
    expect(t.gateway.presence.status(RADAR)).toMatchObject({ online: false, connected: true });
    await eventually(() => presenceEvents(RADAR).at(-1)?.type === "device.offline");
    expect(JSON.parse(presenceEvents(RADAR).at(-1)!.data).reason).toMatch(/^silent for \d+ s$/);

    // The radar's 2-minute state report (devices/vayyar-care.ts) is its heartbeat.
    await client.publishAsync(
      `ata/v1/${RADAR}/state`,
      JSON.stringify({ status: "monitoring", uptime: 86_400, wifi: { rssi: -60 } }),
      { qos: 1 },
    );
    await eventually(() => t.gateway.presence.status(RADAR).online);
    client.end(true);
  });

  it("a device that stops sending keepalives is disconnected and reported offline", async () => {
    const socket = connect(t.mqttPort, "127.0.0.1");
    socket.on("error", () => {});
    socket.resume(); // read (and drop) the CONNACK, or 'close' waits for the unread data
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(connectFrame(LIFT, secretFor("generic/ceiling-lift"), { keepalive: 1 }));
    await eventually(() => t.gateway.presence.status(LIFT).online);
    // No PINGREQ from here on: aedes closes after 1.5 x keepalive.
    await closed;
    await eventually(() => !t.gateway.presence.status(LIFT).online);
    await eventually(() => presenceEvents(LIFT).at(-1)?.type === "device.offline");
  });

  it("the last will (status offline) marks the device offline at once", async () => {
    const native = deviceIdFor("ata/native");
    const client = await connectDevice(t.mqttPort, native, secretFor("ata/native"), {
      will: { topic: statusTopic(native), payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    await eventually(() => t.gateway.presence.status(native).online);
    await client.publishAsync(statusTopic(native), "offline", { qos: 1, retain: true });
    await eventually(() => !t.gateway.presence.status(native).online);
    client.end(true);
  });
});
