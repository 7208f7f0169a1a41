/**
 * What a newcomer sees after the README's run command: the gateway on the shipped configuration
 * (config/default.yaml, demo on), as a real process. The simulated week is played and computed, the
 * dashboard fills from it, and the live simulation brings alerts to the console. Only the ports and
 * the data directory differ from `npm start`.
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
const ADMIN_TOKEN = "demo-test-admin-token-0123456789";

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
          ATA_ADMIN_TOKEN: ADMIN_TOKEN,
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

  it("pages nobody for the simulated week: every alert so far was raised in the live phase", async () => {
    const live = JSON.parse(gw.stdout.find((l) => l.includes("demo: live simulation running"))!)
      .time as number;
    const res = await fetch(`${base}/api/v1/alerts?limit=500`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const { alerts } = (await res.json()) as { alerts: { raisedAt: string }[] };
    for (const a of alerts) expect(Date.parse(a.raisedAt)).toBeGreaterThanOrEqual(live);
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
    // Both units of the demo home, by name; time saved, trend, categories and coverage come from the
    // week. (Alert volume, response times and false alarms fill from the live phase: the week pages
    // nobody.)
    expect(await page.locator("#p-units svg.chart text.lbl").allTextContents()).toEqual(
      expect.arrayContaining(["Afsnit A", "Afsnit B"]),
    );
    for (const id of ["p-units", "p-trend", "p-categories", "p-coverage"])
      expect(await page.locator(`#${id} svg.chart rect.bar`).count(), id).toBeGreaterThan(0);
    expect(await page.locator("#p-model table.data tbody tr").count()).toBeGreaterThan(5);
    await page.screenshot({ path: screenshotPath("demo-dashboard"), fullPage: true });
    expect(problems.errors).toEqual([]);
  });

  it("brings live simulated alerts to the console within a minute", async () => {
    const { page, problems }: { page: Page; problems: PageProblems } = await browser.newPage();
    await page.goto(`${base}/`);
    // Before anyone signs in, the page says this is the demo (on loopback: not the loud warning).
    await expect.poll(() => page.textContent("#demo-notice")).toMatch(/^Demo: simulerede enheder/);
    expect(await page.getAttribute("#demo-notice", "class")).not.toContain("demo-exposed");
    await page.fill("#token", NURSE_TOKEN);
    await page.click("#signin-submit");
    await page.waitForSelector("#conn[data-state='live']", { timeout: 10_000 });
    // The live phase opens with a pendant call 10 s in, so there is always something to see.
    const call = page.locator("li.alert", { has: page.locator(".meta", { hasText: /^Kald/ }) }).first();
    await call.waitFor({ timeout: 60_000 });
    expect(await call.locator(".meta").textContent()).toMatch(/Afsnit [AB]/);
    expect(await call.getAttribute("class")).toContain("p-high");
    await page.screenshot({ path: screenshotPath("demo-console"), fullPage: true });
    expect(problems.errors).toEqual([]);
  });
});
