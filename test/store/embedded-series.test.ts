import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { DST_DAYS } from "../time/dst-table.js";
import { timeSeriesContract } from "./timeseries.contract.js";

timeSeriesContract("embedded (SQLite)", async () => {
  const db = new Database(":memory:");
  const store = new EmbeddedSeriesStore({ db });
  await store.start();
  return {
    store,
    async cleanup() {
      await store.stop();
      db.close();
    },
  };
});

timeSeriesContract("embedded (SQLite, writes on a writer thread)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-series-"));
  const store = new EmbeddedSeriesStore({
    path: join(dir, "series.db"),
    writerThread: { log: silentLogger() },
  });
  await store.start();
  return {
    store,
    async cleanup() {
      await store.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe("EmbeddedSeriesStore", () => {
  it("keeps field types across a restart on the same database", async () => {
    const db = new Database(":memory:");
    const first = new EmbeddedSeriesStore({ db });
    await first.start();
    await first.write([{ measurement: "m", tags: {}, fields: { v: 1 }, timeNs: 1n }]);
    await first.stop();
    const second = new EmbeddedSeriesStore({ db });
    await second.start();
    await expect(
      second.write([{ measurement: "m", tags: {}, fields: { v: "x" }, timeNs: 2n }]),
    ).rejects.toThrow(/already exists as float/);
    await second.stop();
    db.close();
  });

  it("aggregates each bucket over a range of the primary key, not a full scan", async () => {
    const db = new Database(":memory:");
    const store = new EmbeddedSeriesStore({ db });
    await store.start();
    const plan = db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT json_extract(p.fields, '$.v') FROM json_each('[[0,1,2]]') AS b CROSS JOIN series_points AS p
         WHERE p.measurement = 'm' AND p.time_ns >= json_extract(b.value, '$[1]') AND p.time_ns < json_extract(b.value, '$[2]')`,
      )
      .all() as { detail: string }[];
    expect(plan.map((r) => r.detail).join("\n")).toMatch(
      /SEARCH p USING PRIMARY KEY \(measurement=\? AND time_ns>\? AND time_ns<\?\)/,
    );
    await store.stop();
    db.close();
  });
});

describe.each(DST_DAYS)("EmbeddedSeriesStore buckets $name", (d) => {
  const QUARTER = 15 * 60_000;
  const start = Date.parse(d.start);
  const end = Date.parse(d.end);

  it(`as one ${d.hours}-hour day and ${d.hours} local hours`, async () => {
    const db = new Database(":memory:");
    const store = new EmbeddedSeriesStore({ db });
    await store.start();
    const points = [];
    for (let t = start - 3_600_000; t < end + 2 * 3_600_000; t += QUARTER) {
      points.push({ measurement: "m", tags: {}, fields: { v: 1 }, timeNs: BigInt(t) * 1_000_000n });
    }
    await store.write(points);
    const query = { measurement: "m", field: "v", fn: "count" as const, timeZone: d.zone };
    const days = await store.aggregate({
      ...query,
      interval: "1d",
      from: new Date(start),
      to: new Date(end + 3_600_000),
    });
    expect(days.map((r) => [r.time?.toISOString(), r.value])).toEqual([
      [d.start, d.hours * 4],
      [d.end, 4],
    ]);
    const hours = await store.aggregate({
      ...query,
      interval: "1h",
      from: new Date(start),
      to: new Date(end),
    });
    expect(hours).toHaveLength(d.hours);
    expect(hours.every((r) => r.value === 4)).toBe(true);
    expect(hours[0]?.time?.toISOString()).toBe(d.start);
    await store.stop();
    db.close();
  });
});
