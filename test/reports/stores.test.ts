import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { siteModel } from "../../src/reports/model.js";
import { type ReportContext, timeSavedReport } from "../../src/reports/queries.js";
import { TIME_SAVED_MEASUREMENT, TimeSavedJob } from "../../src/reports/timesaved.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { InfluxStore } from "../../src/store/influx.js";
import type { TimeSeriesStore } from "../../src/store/timeseries.js";
import { type Influxd, startInfluxd } from "../helpers/influxd.js";
import { ms, PROFILES, shippedModel, tempDb } from "./fixtures.js";
import { AFTER_MONTH, BIG, buildMonth, MONTH, MONTH_FROM_MS, MONTH_TO_MS } from "./month-data.js";
import { buildScenario, OVERRIDES, SITE, WEEK, WEEK_TOTAL } from "./scenario.js";

describe("time saved computed into InfluxDB and into the embedded store gives the same numbers", () => {
  let influxd: Influxd;
  let t: ReturnType<typeof tempDb>;
  const stores: Record<"influx" | "embedded", TimeSeriesStore> = {} as never;
  const model = shippedModel(OVERRIDES);
  const sites = [SITE, BIG];
  const ctxOf = (store: TimeSeriesStore): ReportContext => ({
    db: t.db,
    store,
    model,
    sites,
    profiles: PROFILES,
    now: () => AFTER_MONTH,
  });

  beforeAll(async () => {
    influxd = await startInfluxd();
    t = tempDb();
    buildScenario(t.db);
    buildMonth(t.db, { heartbeatMinutes: 0 });
    stores.influx = new InfluxStore({ host: influxd.host, port: influxd.port, database: "reports_test" });
    stores.embedded = new EmbeddedSeriesStore({ path: ":memory:" });
    for (const store of Object.values(stores)) {
      await store.start();
      const job = new TimeSavedJob({ ...ctxOf(store), now: () => AFTER_MONTH });
      await job.recompute(SITE.id, WEEK.from, WEEK.to);
      await job.recompute(BIG.id, MONTH.from, MONTH.to);
      // Recomputing must overwrite in InfluxDB too (same series and timestamp).
      await job.recompute(SITE.id, WEEK.from, WEEK.to);
    }
  }, 120_000);
  afterAll(async () => {
    for (const store of Object.values(stores)) await store.stop();
    t?.close();
    await influxd?.stop();
  });

  const week = () => ({ from: ms("2026-10-19T00:00:00+02:00"), to: ms("2026-10-26T00:00:00+01:00") });
  const month = () => ({ from: MONTH_FROM_MS, to: MONTH_TO_MS });

  for (const interval of ["day", "week", "month"] as const) {
    it(`the hand-computed week, by ${interval}, is identical from both stores`, async () => {
      const scope = { sites: [SITE], units: null };
      const influx = await timeSavedReport(ctxOf(stores.influx), scope, week, interval);
      const embedded = await timeSavedReport(ctxOf(stores.embedded), scope, week, interval);
      expect(influx.body).toEqual(embedded.body);
      expect(influx.tables).toEqual(embedded.tables);
      expect(influx.body.totals.minutes).toBe(WEEK_TOTAL.net);
    });

    it(`the month of 200 devices, by ${interval}, is identical from both stores`, async () => {
      const scope = { sites: [BIG], units: null };
      const influx = await timeSavedReport(ctxOf(stores.influx), scope, month, interval);
      const embedded = await timeSavedReport(ctxOf(stores.embedded), scope, month, interval);
      expect(influx.body).toEqual(embedded.body);
      expect(influx.body.totals.minutes).toBe(40157.4);
    });
  }

  it("both stores hold the same points: 56 for the week, 1240 for the month, each tagged with the model version", async () => {
    for (const [name, store] of Object.entries(stores)) {
      const rows = await store.aggregate({
        measurement: TIME_SAVED_MEASUREMENT,
        field: "minutes",
        fn: "count",
        from: new Date(ms("2026-09-01T00:00:00Z")),
        to: new Date(ms("2026-12-01T00:00:00Z")),
        groupBy: ["site", "model_version"],
      });
      expect(
        rows.map((r) => [r.tags.site, r.tags.model_version, r.value]),
        name,
      ).toEqual([
        ["big", siteModel(model, "big").modelVersion, 1240],
        ["solbakken", siteModel(model, "solbakken").modelVersion, 56],
      ]);
    }
  });
});
