/**
 * Switching the time-series store keeps the reports' history: each store has its own cursor into
 * the event log, so a store configured anew is filled from the log from its start, and a store
 * switched back to catches up from where it stopped. Real embedded store, real influxd.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { getCursor, setCursor } from "../../src/store/db.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { EVENTS_CURSOR, sinkCursorName, TimeSeriesSink } from "../../src/store/sink.js";
import { deviceIdFor, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type Influxd, startInfluxd } from "../helpers/influxd.js";
import { addDevice, addEvent, tempDb } from "../reports/fixtures.js";

const DEVICE = deviceIdFor(PROFILES[0]!.id);
const T0 = Date.parse("2026-11-02T08:00:00Z");

/** `n` events of the test device, a minute apart from `from`, through the gateway's ingest path. */
async function ingest(g: TestGateway, tag: string, from: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await g.gateway.ingest.record(DEVICE, [
      {
        type: "device.online",
        phase: "point",
        eventId: `${tag}-${i}`,
        occurredAt: new Date(from + i * 60_000).toISOString(),
        data: {},
      },
    ]);
  }
}

/** The store's count of event points of the test device in [T0, T0 + 1 day). */
async function pointsIn(g: TestGateway): Promise<number> {
  const rows = await g.gateway.series.aggregate({
    measurement: "event",
    field: "count",
    fn: "count",
    from: new Date(T0),
    to: new Date(T0 + 86_400_000),
    where: { device: DEVICE },
  });
  return rows.reduce((s, r) => s + r.value, 0);
}

async function drained(g: TestGateway): Promise<void> {
  await eventually(() => g.gateway.sink.backlog() === 0, 30_000, 50);
}

describe("switching the time-series store", () => {
  let influxd: Influxd;
  const dir = mkdtempSync(join(tmpdir(), "ata-store-switch-"));
  const running: TestGateway[] = [];
  const start = async (overrides: Record<string, unknown> = {}) => {
    const g = await startGateway({ dir, keepDir: true, overrides });
    running.push(g);
    return g;
  };
  const stop = async (g: TestGateway) => {
    running.splice(running.indexOf(g), 1);
    await g.stop();
  };

  beforeAll(async () => {
    influxd = await startInfluxd();
  }, 60_000);

  afterAll(async () => {
    for (const g of running) await g.stop();
    await influxd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fills InfluxDB from the event log when it is configured after the embedded store, and back", async () => {
    const influx = { influx: { url: influxd.url, database: "ata_switch" } };

    const embedded = await start();
    expect(embedded.gateway.series.kind).toBe("embedded");
    await ingest(embedded, "before", T0, 40);
    await drained(embedded);
    expect(await pointsIn(embedded)).toBe(40);
    await stop(embedded);

    // Same data directory, InfluxDB now: the 40 earlier events are written to it from the log.
    const viaInflux = await start(influx);
    expect(viaInflux.gateway.series.kind).toBe("influx");
    await drained(viaInflux);
    expect(await pointsIn(viaInflux)).toBe(40);
    await ingest(viaInflux, "during", T0 + 60 * 60_000, 25);
    await drained(viaInflux);
    expect(await pointsIn(viaInflux)).toBe(65);
    await stop(viaInflux);

    // Back to the embedded store: it catches up the 25 it missed from its own position.
    const back = await start();
    await drained(back);
    expect(await pointsIn(back)).toBe(65);
    const cursors = back.gateway.db
      .prepare("SELECT name FROM cursors WHERE name LIKE 'sink:events%' ORDER BY name")
      .pluck()
      .all();
    expect(cursors).toEqual([
      sinkCursorName("events", "embedded"),
      sinkCursorName("events", `influx:${influxd.url}/ata_switch`),
    ]);
    await stop(back);
  }, 120_000);
});

describe("a cursor from before per-store cursors", () => {
  it("becomes the cursor of the store named first, and a second store starts from the log's start", async () => {
    const t = tempDb();
    const store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    try {
      addDevice(t.db, { id: "d1", profile: "acme/radar", site: "s", unit: "a" });
      for (let i = 0; i < 5; i++)
        addEvent(t.db, { device: "d1", type: "device.online", at: T0 + i, site: "s", unit: "a" });
      const top = t.db.prepare("SELECT MAX(seq) FROM events").pluck().get() as number;
      setCursor(t.db, EVENTS_CURSOR, top - 2); // an install that had written all but the last two
      const first = new TimeSeriesSink({ db: t.db, store, storeId: "embedded" });
      expect(getCursor(t.db, "sink:events@embedded")).toBe(top - 2);
      expect(t.db.prepare("SELECT COUNT(*) FROM cursors WHERE name = ?").pluck().get(EVENTS_CURSOR)).toBe(0);
      expect(first.backlog()).toBe(2);
      const second = new TimeSeriesSink({ db: t.db, store, storeId: "influx:http://127.0.0.1:8086/ata" });
      expect(second.backlog()).toBe(top);
    } finally {
      await store.stop();
      t.close();
    }
  });
});
