import type { Download, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { staticFiles, WEB_ROOT } from "../../src/http/static.js";
import { loadTimeModel } from "../../src/reports/model.js";
import { reportRoutes } from "../../src/reports/routes.js";
import { TimeSavedJob } from "../../src/reports/timesaved.js";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import { ADMIN_TOKEN, api, startGateway, type TestGateway } from "../helpers/gateway.js";
import { DAY, DEVICES, RESIDENTS, SITE, seedHistory } from "../helpers/history.js";

const MANAGER = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: [SITE],
  token: "test-manager-mette-0123456789",
};
const STAFF = {
  id: "anna",
  name: "Anna",
  role: "staff",
  sites: [SITE],
  units: ["unit-1"],
  token: "test-staff-anna-0123456789",
};

/** Until the gateway serves web/ and the reports itself, the test registers them (read per request). */
async function wire(t: TestGateway): Promise<TimeSavedJob> {
  const g = t.gateway;
  const sites = g.config.sites.map((s) => ({ id: s.id, timeZone: s.timeZone, units: s.units }));
  const model = loadTimeModel();
  const job = new TimeSavedJob({ db: g.db, store: g.series, model, sites, profiles: g.profiles });
  const page = await fetch(`${t.httpUrl}/dashboard`);
  await page.arrayBuffer();
  if (page.status === 404) g.http.fallback(staticFiles(WEB_ROOT));
  const reports = await fetch(`${t.httpUrl}/api/v1/reports/model`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  await reports.arrayBuffer();
  if (reports.status === 404)
    reportRoutes(g.router, {
      db: g.db,
      store: g.series,
      model,
      sites,
      profiles: g.profiles,
      job,
    });
  return job;
}

/** RFC 4180: quoted fields with doubled quotes and embedded separators or line breaks. */
function parseCsv(text: string, sep = ","): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

async function readDownload(d: Download): Promise<string> {
  const stream = await d.createReadStream();
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const PANELS = [
  "p-units",
  "p-trend",
  "p-categories",
  "p-response",
  "p-volume",
  "p-false",
  "p-coverage",
  "p-model",
];

async function panelsSettled(page: Page): Promise<void> {
  await page.waitForFunction(
    (ids) => ids.every((id) => document.getElementById(id)?.dataset.state !== "loading"),
    PANELS,
    { timeout: 15_000 },
  );
}

const TZ = "Europe/Copenhagen";
const localDate = (ms: number) => new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(ms);
/** Hours per week as the Danish dashboard writes them: one decimal, decimal comma. */
const danish = (n: number) => new Intl.NumberFormat("da-DK", { maximumFractionDigits: 1 }).format(n);

interface Benefits {
  headline: {
    realised: { hoursPerWeek: number } | null;
    potential: { hoursPerWeek: number };
    caveats: { code: string; da: string }[];
  };
}

describe("managers' dashboard in a real browser", () => {
  let t: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    [t, browser] = await Promise.all([
      startGateway({
        overrides: {
          staff: [MANAGER, STAFF],
          residents: RESIDENTS,
          devices: DEVICES.map((d, i) => ({
            id: d.id,
            profile: d.profile,
            secret: `secret-dash-${i}-0123456789`,
            site: SITE,
            unit: d.unit,
            room: d.room,
            ...(d.resident ? { resident: d.resident } : {}),
          })),
        },
      }),
      launchBrowser(),
    ]);
    const job = await wire(t);
    const now = Date.now();
    seedHistory(t.gateway.db, now);
    await job.recompute(SITE, new Date(now - 15 * DAY), new Date(now + DAY));
    ({ page, problems } = await browser.newPage({ viewport: { width: 1400, height: 1000 } }));
  });

  /** The benefits account for what the dashboard shows: its site and its days up to today. */
  async function benefitsOfPage(): Promise<Benefits> {
    const days = Number(await page.inputValue("#f-days"));
    const from = localDate(Date.now() - (days - 1) * DAY);
    const r = await api(
      t.httpUrl,
      "GET",
      `/api/v1/reports/benefits?site=${SITE}&from=${from}`,
      undefined,
      MANAGER.token,
    );
    expect(r.status).toBe(200);
    return r.body;
  }

  afterAll(async () => {
    await browser?.close();
    t?.gateway.staff.stop();
    await t?.stop();
  });

  it("refuses a care worker's token: the dashboard is for managers", async () => {
    await page.goto(`${t.httpUrl}/dashboard`);
    await page.fill("#token", STAFF.token);
    await page.click("#signin-submit");
    await expect.poll(() => page.textContent("#signin-error")).toContain("ikke en leders");
    expect(await page.isHidden("#app")).toBe(true);
  });

  it("shows time freed per unit, trend, categories, response times, volume, false alarms and coverage as charts", async () => {
    await page.fill("#token", MANAGER.token);
    await page.click("#signin-submit");
    await page.waitForSelector("#app", { state: "visible" });
    await panelsSettled(page);
    for (const id of PANELS) expect(await page.getAttribute(`#${id}`, "data-state"), id).toBe("ready");

    const headline = await page.textContent("#headline-value");
    expect(headline).toMatch(/^-?\d+([.,]\d)?$/);
    expect(await page.textContent("#headline-model")).toContain("2026.1");
    expect(await page.locator("#headline-cats .chip").count()).toBe(4);

    for (const id of [
      "p-units",
      "p-trend",
      "p-categories",
      "p-response",
      "p-volume",
      "p-false",
      "p-coverage",
    ]) {
      const bars = await page.locator(`#${id} svg.chart rect.bar`).count();
      expect(bars, id).toBeGreaterThan(0);
    }
    // Both units, and 24 hours of the day.
    expect(await page.locator("#p-units svg.chart rect.bar").count()).toBe(2);
    expect(await page.locator("#p-volume svg.chart rect.bar").count()).toBeGreaterThanOrEqual(10);
    // Lowest uptime first: the sensor that was offline for three hours.
    expect(await page.locator("#p-coverage svg.chart text.lbl").first().textContent()).toBe("radar-r2");
    // The devices were registered 15 days ago and the dashboard shows 28 days: the share says so.
    expect(await page.locator("#p-coverage svg.chart text.val").first().textContent()).toMatch(
      /^99,\d % \(observeret 2 uger af 4 uger\)$/,
    );
    // The unit picker learned the units from the reports, and shows them by their configured names,
    // as do the charts and the site picker.
    expect(await page.locator("#f-unit option").allTextContents()).toEqual([
      "Alle afsnit",
      "Unit 1",
      "Unit 2",
    ]);
    expect(await page.locator("#p-units svg.chart text.lbl").allTextContents()).toEqual(
      expect.arrayContaining(["Unit 1", "Unit 2"]),
    );
    expect(await page.locator("#f-site option").first().textContent()).toBe("Home A");
    await page.screenshot({ path: screenshotPath("dashboard"), fullPage: true });
  });

  it("lists every model parameter with value, unit and source, and marks the placeholders", async () => {
    const rows = page.locator("#p-model table.data").first().locator("tbody tr");
    const model = (await (
      await fetch(`${t.httpUrl}/api/v1/reports/model?site=${SITE}`, {
        headers: { authorization: `Bearer ${MANAGER.token}` },
      })
    ).json()) as { parameters: Record<string, { placeholder: boolean; source: string }> };
    const keys = Object.keys(model.parameters);
    expect(keys.length).toBeGreaterThan(5);
    expect(await rows.count()).toBe(keys.length);
    const text = await page.locator("#p-model").textContent();
    for (const k of keys) expect(text).toContain(k);
    expect(text).toContain("Injury 2009;40:987");
    const placeholders = keys.filter((k) => model.parameters[k]!.placeholder);
    expect(placeholders.length).toBeGreaterThan(0);
    expect(await page.locator("#p-model tr.row-placeholder").count()).toBe(placeholders.length);
    expect(await page.locator("#p-model .badge-placeholder").first().textContent()).toBe(
      "Pladsholder – mål selv",
    );
  });

  it("downloads every table as the Danish spreadsheet's CSV (BOM, semicolons) that parses into a header and rows", async () => {
    const buttons = await page.locator("[data-csv]").all();
    expect(buttons.length).toBeGreaterThanOrEqual(12);
    for (const b of buttons) {
      // Pacing, not waiting for a condition: Chromium drops an eleventh download started by one page
      // within about a second, which no manager clicking buttons will reach.
      await page.waitForTimeout(150);
      const what = `${await b.getAttribute("data-csv")}/${await b.getAttribute("data-table")}`;
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: 5000 }), b.click()]);
      expect(download.suggestedFilename(), what).toMatch(/\.csv$/);
      const text = await readDownload(download);
      expect(text.startsWith("\uFEFF"), what).toBe(true);
      const rows = parseCsv(text.slice(1), ";");
      expect(rows.length, what).toBeGreaterThan(1);
      const header = rows[0]!;
      expect(header.length, what).toBeGreaterThan(1);
      for (const r of rows.slice(1)) expect(r.length, `${what}: ${r.join("|")}`).toBe(header.length);
    }
  });

  it("narrows to one unit, and keeps the other panels when one report fails", async () => {
    await page.route("**/api/v1/reports/coverage*", (route) =>
      route.fulfill({
        status: 503,
        contentType: "application/json",
        body: JSON.stringify({ error: { code: "unavailable", message: "The service is not ready" } }),
      }),
    );
    await page.selectOption("#f-unit", "unit-2");
    await panelsSettled(page);
    expect(await page.getAttribute("#p-coverage", "data-state")).toBe("error");
    expect(await page.textContent("#p-coverage .panel-body")).toContain("The service is not ready");
    expect(await page.getAttribute("#p-units", "data-state")).toBe("ready");
    expect(await page.locator("#p-units svg.chart rect.bar").count()).toBe(1);
    expect(await page.locator("#p-units svg.chart text.lbl").allTextContents()).toEqual(["Unit 2"]);
    expect(page.url()).toContain("unit=unit-2");
    await page.unroute("**/api/v1/reports/coverage*");

    await page.setViewportSize({ width: 400, height: 900 });
    await page.screenshot({ path: screenshotPath("dashboard-phone") });
    await page.setViewportSize({ width: 1400, height: 1000 });

    // English, too, from the same data.
    await page.click("#lang");
    expect(await page.textContent("#p-model h2")).toBe("Assumptions");
    await page.click("#lang");
  });

  it("without a baseline the headline says so in words and shows the potential, labelled as potential", async () => {
    await page.selectOption("#f-unit", "");
    await panelsSettled(page);
    await page.waitForFunction(() => document.getElementById("headline")?.dataset.basis !== undefined);
    const b = await benefitsOfPage();
    expect(b.headline.realised).toBeNull();
    expect(b.headline.caveats[0]!.code).toBe("no_baseline");
    expect(await page.getAttribute("#headline", "data-basis")).toBe("potential");
    expect(await page.textContent("#headline-value")).toBe(danish(b.headline.potential.hoursPerWeek));
    const label = (await page.textContent("#headline-label")) ?? "";
    expect(label).toMatch(/potentiel/i);
    expect(label).toMatch(/ingen baseline/i);
    expect(await page.isHidden("#headline-potential")).toBe(true);
    // The caveats in words: the first two in full, the rest folded and all of them on hover.
    const shown = await page.locator("#headline-caveats > ul > li.caveat").allTextContents();
    expect(shown).toEqual(b.headline.caveats.slice(0, 2).map((c) => c.da));
    expect(await page.getAttribute("#headline-caveats > ul", "title")).toBe(
      b.headline.caveats.map((c) => c.da).join("\n"),
    );
    const href = (await page.getAttribute("#report-link", "href")) ?? "";
    expect(href).toMatch(/^\/report\.html\?/);
    expect(new URLSearchParams(href.split("?")[1]).get("site")).toBe(SITE);
  });

  it("with a baseline the headline shows the realised hours per week first and the potential beside it", async () => {
    const saved = await api(
      t.httpUrl,
      "POST",
      "/api/v1/baselines",
      {
        site: SITE,
        period: { from: "2026-09-01", to: "2026-09-30" },
        measurements: {
          nightChecksPerResident: { value: 3, method: "care plans counted" },
          minutesPerAlarm: { value: 6, method: "30 alarms timed" },
        },
      },
      MANAGER.token,
    );
    expect(saved.status).toBe(201);
    const now = Date.now();
    const recomputed = await api(
      t.httpUrl,
      "POST",
      "/api/v1/reports/time-saved/recompute",
      { site: SITE, from: localDate(now - 30 * DAY), to: localDate(now + DAY) },
      MANAGER.token,
    );
    expect(recomputed.status).toBe(200);
    await page.click("#refresh");
    await page.waitForFunction(() => document.getElementById("headline")?.dataset.basis === "realised");
    const b = await benefitsOfPage();
    expect(b.headline.realised).not.toBeNull();
    expect(await page.textContent("#headline-value")).toBe(danish(b.headline.realised!.hoursPerWeek));
    expect(await page.textContent("#headline-label")).toMatch(/realiseret/i);
    const beside = (await page.textContent("#headline-potential")) ?? "";
    expect(beside).toMatch(/potentiale/i);
    expect(beside).toContain(danish(b.headline.potential.hoursPerWeek));
    expect(await page.locator("#headline-caveats li.caveat").first().textContent()).toBe(
      b.headline.caveats[0]!.da,
    );
    // The category breakdown stays.
    expect(await page.locator("#headline-cats .chip").count()).toBe(4);
  });

  it("runs without script errors or CSP violations", () => {
    expect(problems.errors.filter((e) => !e.includes("status of 503"))).toEqual([]);
  });
});
