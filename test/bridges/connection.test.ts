/**
 * A bridge connection against a real mosquitto: a QoS 1 message whose handling fails (the event log
 * refused it) is not acknowledged, and the broker delivers it again after the bridge reconnects.
 */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BridgeConnection } from "../../src/bridges/connection.js";
import { BridgeMetrics } from "../../src/bridges/metrics.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { eventually, publish } from "../helpers/gateway.js";
import { type Mosquitto, startMosquitto } from "../helpers/mosquitto.js";

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.close();
});

describe("bridge connection", () => {
  it("does not acknowledge a message it could not handle; the broker sends it again after the reconnect", async () => {
    const seen: string[] = [];
    let failures = 1;
    const connection = new BridgeConnection(
      {
        name: "t",
        url: broker.url,
        clientId: "ata-gateway-connection-test",
        reconnect: { minMs: 100, maxMs: 200 },
        topics: ["ns/+/up"],
      },
      async (topic, payload) => {
        seen.push(`${topic} ${payload.toString()}`);
        if (failures-- > 0) throw new Error("storage refused the commit");
      },
      silentLogger(),
      new BridgeMetrics(new Metrics({ defaultMetrics: false })),
    );
    connection.start();
    const ns = mqtt.connect(broker.url, { clientId: "ns", protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await eventually(() => connection.status().connected);
      await eventually(() => ns.connected);
      await publish(ns, "ns/dev-1/up", "uplink-1");
      await eventually(() => seen.length === 2);
      expect(seen).toEqual(["ns/dev-1/up uplink-1", "ns/dev-1/up uplink-1"]);
      const status = connection.status();
      expect(status.reconnects).toBeGreaterThanOrEqual(1);
      expect(status.lastError).toMatch(/storage refused the commit/);
      // Handled the second time: acknowledged, so it does not come a third time.
      await publish(ns, "ns/dev-1/up", "uplink-2");
      await eventually(() => seen.length === 3);
      expect(seen[2]).toBe("ns/dev-1/up uplink-2");
    } finally {
      ns.end(true);
      await connection.stop();
    }
  });
});
