import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InfluxStore } from "../../src/store/influx.js";
import { type Influxd, startInfluxd } from "../helpers/influxd.js";
import { timeSeriesContract } from "./timeseries.contract.js";

let influxd: Influxd;
let n = 0;

beforeAll(async () => {
  influxd = await startInfluxd();
});
afterAll(async () => {
  await influxd?.stop();
});

timeSeriesContract("InfluxDB 1.x", async () => {
  const store = new InfluxStore({ host: influxd.host, port: influxd.port, database: `contract_${++n}` });
  await store.start();
  return {
    store,
    async cleanup() {
      await fetch(`${influxd.url}/query?q=${encodeURIComponent(`DROP DATABASE "${store.database}"`)}`, {
        method: "POST",
      });
      await store.stop();
    },
  };
});

describe("InfluxStore", () => {
  it("creates the database with the retention policy as its default, and is idempotent", async () => {
    const store = new InfluxStore({
      host: influxd.host,
      port: influxd.port,
      database: "rp_test",
      retentionDuration: "30d",
    });
    await store.start();
    await store.start();
    const res = await fetch(
      `${influxd.url}/query?q=${encodeURIComponent('SHOW RETENTION POLICIES ON "rp_test"')}`,
    );
    const body = (await res.json()) as { results: { series: { values: unknown[][] }[] }[] };
    const rp = body.results[0]!.series[0]!.values.find((v) => v[0] === "ata_default");
    expect(rp).toEqual(["ata_default", "720h0m0s", expect.any(String), 1, true]);
  });

  it("makes an existing retention policy the default with the configured duration", async () => {
    await new InfluxStore({
      host: influxd.host,
      port: influxd.port,
      database: "rp_alter",
      retentionDuration: "30d",
    }).start();
    await fetch(
      `${influxd.url}/query?q=${encodeURIComponent('ALTER RETENTION POLICY "autogen" ON "rp_alter" DEFAULT')}`,
      {
        method: "POST",
      },
    );
    await new InfluxStore({
      host: influxd.host,
      port: influxd.port,
      database: "rp_alter",
      retentionDuration: "INF",
    }).start();
    const res = await fetch(
      `${influxd.url}/query?q=${encodeURIComponent('SHOW RETENTION POLICIES ON "rp_alter"')}`,
    );
    const body = (await res.json()) as { results: { series: { values: unknown[][] }[] }[] };
    const rp = body.results[0]!.series[0]!.values.find((v) => v[0] === "ata_default");
    expect(rp).toEqual(["ata_default", "0s", expect.any(String), 1, true]);
  });

  it("reports ping false when nothing listens", async () => {
    const store = new InfluxStore({ host: "127.0.0.1", port: 1, database: "x", requestTimeoutMs: 1000 });
    expect(await store.ping()).toBe(false);
  });

  it("refuses a retention duration that is not an InfluxQL duration", () => {
    expect(
      () => new InfluxStore({ host: "h", database: "x", retentionDuration: "1d DEFAULT; DROP" }),
    ).toThrow();
    expect(() => new InfluxStore({ host: "h", database: "x", retentionDuration: "10m" })).toThrow();
  });
});
