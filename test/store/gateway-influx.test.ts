import { InfluxDB } from "influx";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";
import { type Influxd, startInfluxd } from "../helpers/influxd.js";

const ID = deviceIdFor("ata/native");

describe("the gateway with a real InfluxDB", () => {
  let influxd: Influxd;
  let t: TestGateway;
  let client: MqttClient;
  let q: InfluxDB;

  beforeAll(async () => {
    influxd = await startInfluxd();
    t = await startGateway({
      overrides: {
        influx: { url: influxd.url, database: "ata_test" },
        // 600 publishes from one device back to back: past the per-device rate a real device is held
        // to, which this test is not about.
        ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } },
      },
    });
    client = await connectDevice(t.mqttPort, ID, secretFor("ata/native"));
    q = new InfluxDB({ host: influxd.host, port: influxd.port, database: "ata_test" });
  }, 60_000);
  afterAll(async () => {
    client?.end(true);
    await t?.stop();
    await influxd?.stop();
  });

  const count = async (where: string) => {
    const rows = await q.query<{ count: number }>(
      `SELECT count("event_id") AS count FROM "event" WHERE ${where}`,
    );
    return rows[0]?.count ?? 0;
  };

  it("an InfluxDB outage under continuous ingest loses nothing and duplicates nothing; the backlog shows on /readyz", async () => {
    let n = 0;
    const publishBatch = async (k: number) => {
      for (let i = 0; i < k; i++) {
        const at = new Date(Date.UTC(2026, 10, 20, 8, 0, 0) + n * 1000).toISOString();
        await client.publishAsync(
          deviceTopic(ID, "events"),
          JSON.stringify({
            eventId: `out-${n}`,
            type: "device.heartbeat",
            occurredAt: at,
            data: { battery: 50 + (n % 50) },
          }),
          { qos: 1 },
        );
        n++;
      }
    };
    await publishBatch(200);
    await eventually(
      async () => (await count(`"device" = '${ID}' AND "type" = 'device.heartbeat'`)) === 200,
      10_000,
    );

    influxd.kill();
    await publishBatch(300); // ingest goes on while InfluxDB is down
    const ready = await eventually(async () => {
      const r = await api(t.httpUrl, "GET", "/readyz", undefined, null);
      const ts = r.body.checks.find((c: { name: string }) => c.name === "timeseries");
      return ts.detail.reachable === false && ts.detail.backlog >= 300 ? ts : null;
    }, 10_000);
    expect(ready.detail.store).toBe("influx");
    const metrics = await fetch(`${t.httpUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/ata_timeseries_backlog \d+/);

    await influxd.restart();
    await publishBatch(100);
    await eventually(
      async () => (await count(`"device" = '${ID}' AND "type" = 'device.heartbeat'`)) === 600,
      30_000,
      200,
    );

    // Exactly once, and in the right order of time: every eventId once, timestamps increasing with n.
    const rows = await q.query<{ time: Date; event_id: string }>(
      `SELECT "event_id" FROM "event" WHERE "device" = '${ID}' AND "type" = 'device.heartbeat' ORDER BY time ASC`,
    );
    expect(rows.map((r) => r.event_id)).toEqual(Array.from({ length: 600 }, (_, i) => `out-${i}`));
  }, 90_000);

  it("writes alert transitions as points of the alert measurement", async () => {
    await client.publishAsync(
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "influx-fall-1", type: "fall.detected", data: { confidence: 0.9 } }),
      { qos: 1 },
    );
    await eventually(async () => {
      const rows = await q.query<{ count: number }>(
        `SELECT count("alert_id") AS count FROM "alert" WHERE "type" = 'fall' AND "action" = 'raised'`,
      );
      return (rows[0]?.count ?? 0) >= 1;
    }, 10_000);
  });
});

describe("a gateway that starts while InfluxDB is down", () => {
  it("starts anyway, reports the store unreachable on /readyz, and delivers the backlog once InfluxDB is up", async () => {
    const influxd = await startInfluxd();
    influxd.kill(); // the port is known, nothing answers on it
    const t = await startGateway({ overrides: { influx: { url: influxd.url, database: "ata_late" } } });
    try {
      const ready = await api(t.httpUrl, "GET", "/readyz", undefined, null);
      expect(ready.body.checks.find((c: { name: string }) => c.name === "timeseries").detail.reachable).toBe(
        false,
      );
      const client = await connectDevice(t.mqttPort, ID, secretFor("ata/native"));
      for (let i = 0; i < 50; i++)
        await client.publishAsync(
          deviceTopic(ID, "events"),
          JSON.stringify({ eventId: `late-${i}`, type: "device.heartbeat", data: { battery: 70 } }),
          { qos: 1 },
        );
      client.end(true);
      await influxd.restart();
      const q = new InfluxDB({ host: influxd.host, port: influxd.port, database: "ata_late" });
      await eventually(
        async () => {
          const rows = await q
            .query<{ count: number }>(
              `SELECT count("event_id") AS count FROM "event" WHERE "type" = 'device.heartbeat'`,
            )
            .catch(() => []);
          return rows[0]?.count === 50;
        },
        30_000,
        200,
      );
    } finally {
      await t.stop();
      await influxd.stop();
    }
  }, 90_000);
});
