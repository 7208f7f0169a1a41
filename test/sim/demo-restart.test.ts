/**
 * Demo mode on a data directory that already holds its history: a restart must not play the
 * simulated history again on top of what the event log has, and the live phase must not depend on
 * the time-series store (InfluxDB down at start).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/store/db.js";
import { eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";

const DEMO = { enabled: true, historyDays: 1, liveBoost: 1, staffBot: false };
const DAY = 86_400_000;

/** Events of the configured devices that occurred at or before `at`. */
function eventsUpTo(db: Db, at: number): number {
  return db.prepare("SELECT COUNT(*) FROM events WHERE occurred_at <= ?").pluck().get(at) as number;
}

describe("demo mode across restarts", () => {
  const started: TestGateway[] = [];
  const dir = mkdtempSync(join(tmpdir(), "ata-demo-restart-"));

  afterAll(async () => {
    for (const g of started) await g.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a restart on the same data directory does not play the simulated day again", async () => {
    const first = await startGateway({ dir, keepDir: true, overrides: { demo: DEMO } });
    started.push(first);
    await eventually(() => first.gateway.demo?.phase === "live", 120_000, 100);
    // Publishes of the live phase still in flight settle well within 2 s; what occurred before is in.
    const before = Date.now() - 2000;
    const played = eventsUpTo(first.gateway.db, before);
    const oldest = first.gateway.db.prepare("SELECT MIN(occurred_at) FROM events").pluck().get() as number;
    // The simulated day is in: a day's worth of events, from a day ago.
    expect(played).toBeGreaterThan(100);
    expect(before - oldest).toBeGreaterThan(DAY - 60_000);
    await first.stop();
    started.pop();

    const second = await startGateway({ dir, keepDir: true, overrides: { demo: DEMO } });
    started.push(second);
    await eventually(() => second.gateway.demo?.phase === "live", 120_000, 100);
    // Nothing was added to the past the first run had played: the day was not played again.
    expect(eventsUpTo(second.gateway.db, before)).toBe(played);
    const oldestAgain = second.gateway.db.prepare("SELECT MIN(occurred_at) FROM events").pluck().get();
    expect(oldestAgain).toBe(oldest);
    await second.stop();
    started.pop();
  }, 240_000);

  it("reaches its live phase with InfluxDB configured where nothing listens, and keeps a backlog", async () => {
    const closed = await freePort();
    const g = await startGateway({
      overrides: { demo: DEMO, influx: { url: `http://127.0.0.1:${closed}` } },
    });
    started.push(g);
    expect(g.gateway.series.kind).toBe("influx");
    await eventually(() => g.gateway.demo?.phase === "live", 120_000, 100);
    // The store was never reachable: everything played waits in the event log for it.
    expect(g.gateway.sink.backlog()).toBeGreaterThan(100);
    await eventually(() => g.gateway.sink.lastError !== undefined, 10_000, 50);
  }, 240_000);
});
