/**
 * The gauges the gateway computes itself rather than taking from prom-client: open file descriptors
 * (counted in batches instead of prom-client's synchronous listing, src/metrics.ts), and the
 * cluster's alert time series counters, read from its writer's status at each scrape.
 */
import { closeSync, openSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/metrics.js";

async function openFds(m: Metrics): Promise<number> {
  const text = await m.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith("ata_process_open_fds "));
  expect(line, "ata_process_open_fds is exported").toBeDefined();
  return Number(line!.split(" ")[1]);
}

describe.runIf(process.platform === "linux")("open file descriptors", () => {
  it("are counted once, across several batches of the listing, and follow files opened and closed", async () => {
    const m = new Metrics();
    const text = await m.registry.metrics();
    expect(text.match(/^# TYPE ata_process_open_fds gauge$/gm)).toHaveLength(1);
    const before = await openFds(m);
    // More than two of the listing's batches of 1,024 names.
    const fds = Array.from({ length: 2_500 }, () => openSync("/dev/null", "r"));
    try {
      // Other tests' sockets may open or close meanwhile: a small slack, not a range a wrong count hits.
      expect(Math.abs((await openFds(m)) - before - 2_500)).toBeLessThanOrEqual(5);
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    expect(Math.abs((await openFds(m)) - before)).toBeLessThanOrEqual(5);
  });
});

describe("the cluster's alert time series", () => {
  it("exports what the writer pruned, filled in and could not fill in, as counters of its status", async () => {
    const m = new Metrics();
    const status = { writer: true, pruned: 0, filled: 0, unfilled: 0 };
    m.alertSeries(
      () => status,
      async () => 7,
    );
    const value = async (name: string) => {
      const line = (await m.registry.metrics()).split("\n").find((l) => l.startsWith(`${name} `));
      expect(line, `${name} is exported`).toBeDefined();
      return Number(line!.split(" ")[1]);
    };
    expect(await value("ata_cluster_alert_series_writer")).toBe(1);
    expect(await value("ata_cluster_alert_series_backlog")).toBe(7);
    Object.assign(status, { pruned: 17, filled: 25, unfilled: 1 });
    expect(await value("ata_cluster_alert_series_pruned_total")).toBe(17);
    expect(await value("ata_cluster_alert_series_filled_total")).toBe(25);
    expect(await value("ata_cluster_alert_series_unfilled_total")).toBe(1);
    // Scraped again with nothing new: the same, not counted twice.
    expect(await value("ata_cluster_alert_series_filled_total")).toBe(25);
    expect((await m.registry.metrics()).includes("ata_cluster_alert_series_lost_total")).toBe(false);
  });
});
