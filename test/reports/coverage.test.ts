/**
 * Coverage is a share of the time each device was registered in the window, and says how long that
 * was: a device registered three minutes before "now" is observed 3 minutes of a 4-week window, not
 * "100 %" of it, and a window that ends before any device existed has no share at all.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coverageReport, type ReportContext, type Scope } from "../../src/reports/queries.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { addDevice, addEvent, PROFILES, shippedModel, tempDb } from "./fixtures.js";

const H = 3_600_000;
const SITE = { id: "s", timeZone: "UTC", units: [{ id: "a", rooms: ["a-1", "a-2"] }] };
/** Four weeks: [2026-11-01, 2026-11-29) UTC. */
const FROM = Date.parse("2026-11-01T00:00:00Z");
const TO = FROM + 28 * 24 * H;
/** The report runs 10 minutes before the window ends. */
const NOW = TO - 10 * 60_000;

describe("coverage over a window the devices were only partly registered in", () => {
  let t: ReturnType<typeof tempDb>;
  let store: EmbeddedSeriesStore;
  let ctx: ReportContext;
  const scope: Scope = { sites: [SITE], units: null };

  beforeAll(async () => {
    t = tempDb();
    // Registered 3 minutes before now, online at once and since.
    addDevice(t.db, {
      id: "new",
      profile: "acme/radar",
      site: "s",
      unit: "a",
      room: "a-1",
      createdAt: NOW - 3 * 60_000,
    });
    addEvent(t.db, {
      device: "new",
      type: "device.online",
      at: NOW - 3 * 60_000,
      site: "s",
      unit: "a",
      room: "a-1",
    });
    // Registered 7 days into the window; online from then, offline for 12 hours on day 10.
    const old = FROM + 7 * 24 * H;
    addDevice(t.db, { id: "old", profile: "acme/radar", site: "s", unit: "a", room: "a-2", createdAt: old });
    addEvent(t.db, { device: "old", type: "device.online", at: old, site: "s", unit: "a", room: "a-2" });
    addEvent(t.db, {
      device: "old",
      type: "device.offline",
      at: FROM + 10 * 24 * H,
      site: "s",
      unit: "a",
      room: "a-2",
    });
    addEvent(t.db, {
      device: "old",
      type: "device.online",
      at: FROM + 10 * 24 * H + 12 * H,
      site: "s",
      unit: "a",
      room: "a-2",
    });
    store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    ctx = { db: t.db, store, model: shippedModel(), sites: [SITE], profiles: PROFILES, now: () => NOW };
  });

  afterAll(async () => {
    await store.stop();
    t.close();
  });

  it("a device registered 3 minutes ago is observed 0.05 h of the window, and its unit says so", async () => {
    const { body } = await coverageReport(ctx, scope, () => ({ from: FROM, to: TO }));
    // The window runs to now: 28 days less 10 minutes = 671.833 h.
    const byId = new Map(body.byDevice.map((d) => [d.device, d]));
    expect(byId.get("new")).toMatchObject({
      windowHours: 671.833,
      observedHours: 0.05,
      onlineHours: 0.05,
      onlineShare: 1,
    });
    // From day 7 to now: 21 days less 10 minutes = 503.833 h, 12 of them offline.
    expect(byId.get("old")).toMatchObject({
      windowHours: 671.833,
      observedHours: 503.833,
      onlineHours: 491.833,
      offlineHours: 12,
      outages: 1,
    });
    expect(byId.get("old")!.onlineShare).toBe(0.9762); // 491.833 / 503.833
    const unit = body.byUnit.find((u) => u.unit === "a")!;
    // The unit was observed from its first registration (day 7); the share weights each device by
    // its own observed time: (491.833 + 0.05) / (503.833 + 0.05) = 0.97618...
    expect(unit).toMatchObject({ windowHours: 671.833, observedHours: 503.833, onlineShare: 0.9762 });
  });

  it("a window that ended before any device was registered has no share, not 100 %", async () => {
    const { body, tables } = await coverageReport(ctx, scope, () => ({ from: FROM, to: FROM + 7 * 24 * H }));
    for (const d of body.byDevice) {
      expect(d).toMatchObject({ windowHours: 168, observedHours: 0, onlineHours: 0, onlineShare: null });
    }
    expect(body.byUnit.find((u) => u.unit === "a")).toMatchObject({
      windowHours: 168,
      observedHours: 0,
      onlineShare: null,
      fallSensorOnlineShare: null,
    });
    const byUnit = tables.find((x) => x.name === "by_unit")!;
    const row = byUnit.rows[0]!;
    expect(row[byUnit.columns.indexOf("window_hours")]).toBe(168);
    expect(row[byUnit.columns.indexOf("observed_hours")]).toBe(0);
    expect(row[byUnit.columns.indexOf("online_share")]).toBeNull();
  });
});
