/**
 * A device's publish is ingested and acknowledged, and goes no further through the broker: nobody
 * can be subscribed to a device's topics, so aedes' fan-out after the PUBACK would reach nobody
 * (`skipFanOutOfIngested` in src/broker/broker.ts). Status publishes, and what the gateway itself
 * publishes (a refusal on the device's errors topic), still go through the broker.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic, errorTopic } from "../../src/broker/topics.js";
import { connectDevice, eventually, publish, startGateway, type TestGateway } from "../helpers/gateway.js";

const ID = "fan-out-1";
const SECRET = "fan-out-secret-0123456789";

describe("the broker's fan-out of ingested publishes", () => {
  let t: TestGateway;
  let client: MqttClient;
  const fannedOut: string[] = [];
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
        devices: [
          {
            id: ID,
            profile: "ata/native",
            secret: SECRET,
            site: "home-a",
            unit: "unit-1",
            room: "r1",
            resident: "R-0001",
          },
        ],
      },
    });
    // aedes emits "publish" at the end of its fan-out, for every packet that went through it.
    t.gateway.broker.aedes.on("publish", (packet) => fannedOut.push(packet.topic));
    client = await connectDevice(t.mqttPort, ID, SECRET);
  });
  afterAll(async () => {
    client?.end(true);
    await t.stop();
  });

  it("skips ingested events, QoS 0 and 1, refused or not, and keeps status and the gateway's own replies", async () => {
    const replies: string[] = [];
    client.on("message", (topic, payload) => {
      if (topic === errorTopic(ID)) replies.push(JSON.parse(payload.toString()).code);
    });
    await new Promise<void>((resolve, reject) =>
      client.subscribe(errorTopic(ID), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );
    const event = (n: number) =>
      JSON.stringify({ eventId: `fan-${n}`, type: "fall.detected", data: { confidence: 0.9 } });
    await publish(client, deviceTopic(ID, "events"), event(1), 1);
    await publish(client, deviceTopic(ID, "events"), event(2), 0);
    await publish(client, deviceTopic(ID, "events"), "{ not json", 1);
    await new Promise<void>((resolve, reject) =>
      client.publish(deviceTopic(ID, "status"), "online", { qos: 1, retain: true }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );

    await eventually(
      () =>
        (
          t.gateway.db
            .prepare("SELECT COUNT(*) AS n FROM events WHERE device_id = ? AND event_id LIKE 'fan-%'")
            .get(ID) as {
            n: number;
          }
        ).n === 2,
    );
    await eventually(() => replies.length === 1);
    await eventually(() => fannedOut.includes(deviceTopic(ID, "status")));
    expect(fannedOut.filter((topic) => topic === deviceTopic(ID, "events"))).toEqual([]);
    expect(fannedOut).toContain(errorTopic(ID));
  });
});
