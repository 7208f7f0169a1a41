/**
 * What a newcomer sees after the README's run command: the gateway on the shipped configuration
 * (config/default.yaml, demo on), as a real process. The simulated week is played and computed, the
 * dashboard fills from it, and the live simulation brings alerts to the console. Only the ports, the
 * data directory and the live rate differ from `npm start` (the boost is raised to its maximum so
 * that an alert within a minute is certain, not likely).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import { eventually } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway } from "../helpers/process.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const MANAGER_TOKEN = "demo-manager-mette-solhaven";
const NURSE_TOKEN = "demo-nurse-nina-solhaven";

describe("demo mode on the shipped configuration", () => {
  let dir: string;
  let gw: GatewayProcess;
  let browser: TestBrowser;
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ata-demo-"));
    [gw, browser] = await Promise.all([
      spawnGateway(
        join(ROOT, "config/default.yaml"),
        {
          ATA_DATA_DIR: join(dir, "data"),
          ATA_MQTT_PORT: "0",
          ATA_MQTT_WS_PORT: "0",
          ATA_HTTP_PORT: "0",
          ATA_HTTP_HOST: "127.0.0.1",
          ATA__mqtt__tcp__host: "127.0.0.1",
          ATA__mqtt__ws__host: "127.0.0.1",
          ATA_LOG_LEVEL: "info",
          ATA__demo__liveBoost: "500",
        },
        30_000,
      ),
      launchBrowser(),
    ]);
    base = `http://127.0.0.1:${gw.http}`;
    // The simulated week is in and its days are computed once the live phase starts.
    await eventually(() => gw.stdout.some((l) => l.includes("demo: live simulation running")), 120_000, 250);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (gw) expect(await gw.stop()).toBe(0);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("prints the address to open, and played the history without a rejected publish", () => {
    const started = gw.stdout.find((l) => l.includes("ATA Gateway is running"));
    expect(started).toContain(`open http://127.0.0.1:${gw.http}/`);
    const played = JSON.parse(gw.stdout.find((l) => l.includes("demo: history played"))!);
    expect(played.events).toBeGreaterThan(1000);
    expect(played.rejected).toBe(0);
  });

  it("fills the managers' dashboard from the simulated week", async () => {
    const { page, problems } = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${base}/dashboard`);
    await page.fill("#token", MANAGER_TOKEN);
    await page.click("#signin-submit");
    await page.waitForSelector("#app", { state: "visible" });
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll("section[id^='p-']")).every(
          (s) => (s as HTMLElement).dataset.state !== "loading",
        ),
      undefined,
      { timeout: 15_000 },
    );
    expect(await page.textContent("#headline-value")).toMatch(/^-?\d+([.,]\d)?$/);
    // Both units of the demo home, by name; categories, response times, coverage have data.
    expect(await page.locator("#p-units svg.chart text.lbl").allTextContents()).toEqual(
      expect.arrayContaining(["Afsnit A", "Afsnit B"]),
    );
    for (const id of ["p-units", "p-trend", "p-categories", "p-volume", "p-coverage"])
      expect(await page.locator(`#${id} svg.chart rect.bar`).count(), id).toBeGreaterThan(0);
    expect(await page.locator("#p-model table.data tbody tr").count()).toBeGreaterThan(5);
    await page.screenshot({ path: screenshotPath("demo-dashboard"), fullPage: true });
    expect(problems.errors).toEqual([]);
  });

  it("brings live simulated alerts to the console within a minute", async () => {
    const { page, problems }: { page: Page; problems: PageProblems } = await browser.newPage();
    await page.goto(`${base}/`);
    await page.fill("#token", NURSE_TOKEN);
    await page.click("#signin-submit");
    await page.waitForSelector("#conn[data-state='live']", { timeout: 10_000 });
    await page.waitForSelector("li.alert", { timeout: 60_000 });
    const meta = await page.locator("li.alert .meta").first().textContent();
    expect(meta).toMatch(/Afsnit [AB]/);
    await page.screenshot({ path: screenshotPath("demo-console"), fullPage: true });
    expect(problems.errors).toEqual([]);
  });
});
