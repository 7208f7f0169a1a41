import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import {
  ADMIN_TOKEN,
  api,
  connectDevice,
  publish,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const MANAGER = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: ["home-a"],
  token: "test-manager-mette-0123456789",
};
/** A payload a stranger sent: it must reach the page as text, never as markup. */
const HOSTILE = '<img src=x onerror="document.title=1">';

describe("the dashboard's observe panel", () => {
  let t: TestGateway;
  let browser: TestBrowser;

  beforeAll(async () => {
    [t, browser] = await Promise.all([
      startGateway({ overrides: { staff: [MANAGER], observe: { enabled: true } } }),
      launchBrowser(),
    ]);
    const r = await api(t.httpUrl, "POST", "/api/v1/observe/enrolments", { site: "home-a", unit: "unit-1" });
    const c = await connectDevice(t.mqttPort, "acme-radar-3", r.body.secret);
    await publish(
      c,
      "ata/v1/acme-radar-3/events",
      JSON.stringify({ status: "fall", label: HOSTILE, ts: 1762077600 }),
    );
    await publish(
      c,
      "ata/v1/acme-radar-3/events",
      JSON.stringify({ status: "clear", label: "ok", ts: 1762077660 }),
    );
    c.end(true);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    t?.gateway.staff.stop();
    await t?.stop();
  });

  const signIn = async (token: string): Promise<{ page: Page; problems: PageProblems }> => {
    const { page, problems } = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${t.httpUrl}/dashboard`);
    await page.fill("#token", token);
    await page.click("#signin-submit");
    await page.waitForSelector("#app", { state: "visible" });
    return { page, problems };
  };

  it("shows the operator that observe mode is on, what each device sent and the drafted profile", async () => {
    const { page, problems } = await signIn(ADMIN_TOKEN);
    await page.waitForSelector("#p-observe", { state: "visible" });
    await expect.poll(() => page.textContent("#observe-status")).toContain("SLÅET TIL");
    const row = page.locator("#observe-body tr", { hasText: "acme-radar-3" });
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.textContent()).toContain("home-a/unit-1");
    await page.click('#observe-body button[data-device="acme-radar-3"]');
    await page.waitForSelector("#observe-detail", { state: "visible" });
    const draft = await page.textContent("#observe-detail pre");
    expect(draft).toContain('status: z.enum(["fall", "clear"]),');
    expect(draft).toContain(HOSTILE.replaceAll('"', '\\"'));
    // The stranger's markup is text in the field table and the draft, never an element.
    expect(await page.locator("#observe-detail img").count()).toBe(0);
    expect(await page.title()).not.toBe("1");
    expect(await page.textContent("#observe-detail table")).toContain("label");

    await page.selectOption('#observe-enrol select[name="unit"]', "unit-2");
    await page.click("#observe-enrol button");
    await expect.poll(() => page.textContent("#observe-secret")).toMatch(/home-a\/unit-2: obs_\S+/);
    await page.screenshot({ path: screenshotPath("observe-panel"), fullPage: true });
    expect(problems.errors).toEqual([]);
  });

  it("is not there for a manager", async () => {
    const { page, problems } = await signIn(MANAGER.token);
    // The staff panel loads in the same batch: once it is filled, the observe panel has decided.
    await page.waitForSelector("#p-staff .panel-body > *");
    expect(await page.isHidden("#p-observe")).toBe(true);
    expect(problems.errors).toEqual([]);
  });
});
