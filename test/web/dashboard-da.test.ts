/**
 * The dashboard in Danish and in English, in a real Chromium against a real gateway: the
 * assumptions panel shows every unit and source in the page's language, and the CSV buttons give
 * a Danish spreadsheet's CSV in Danish and the machine CSV in English.
 */
import type { Download, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type PageProblems, type TestBrowser } from "../helpers/browser.js";
import { startGateway, type TestGateway } from "../helpers/gateway.js";

const SITE = "home-a";
const MANAGER = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: [SITE],
  token: "test-manager-mette-da-0123456789",
};

interface ModelJson {
  parameters: Record<string, { unit: string; source: string; da: { unit: string; source: string } }>;
  model: { references: { name: string; da: { name: string } }[] };
}

async function readBytes(d: Download): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await d.createReadStream()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The first row of a CSV, fields split on `sep` outside quotes. */
function headerRow(text: string, sep: string): string[] {
  const fields: string[] = [];
  let cell = "";
  let quoted = false;
  for (const c of text.slice(0, text.indexOf("\r\n"))) {
    if (c === '"') quoted = !quoted;
    else if (c === sep && !quoted) {
      fields.push(cell);
      cell = "";
    } else cell += c;
  }
  return [...fields, cell];
}

/** Unit and source cells of the assumptions table, by parameter key. */
async function shownTexts(page: Page): Promise<Map<string, { unit: string; source: string }>> {
  const rows: Locator = page.locator("#p-model table.data").first().locator("tbody tr");
  const out = new Map<string, { unit: string; source: string }>();
  for (const row of await rows.all()) {
    const cells = row.locator("td");
    const key = (await row.locator("code.param-key").textContent()) ?? "";
    out.set(key, {
      unit: (await cells.nth(2).textContent()) ?? "",
      source: (await cells.nth(3).textContent()) ?? "",
    });
  }
  return out;
}

async function modelReady(page: Page): Promise<void> {
  await page.waitForFunction(() => document.getElementById("p-model")?.dataset.state === "ready", undefined, {
    timeout: 15_000,
  });
}

describe("the dashboard's assumptions and CSV in the page's language", () => {
  let t: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  let problems: PageProblems;
  let model: ModelJson;

  beforeAll(async () => {
    [t, browser] = await Promise.all([startGateway({ overrides: { staff: [MANAGER] } }), launchBrowser()]);
    model = (await (
      await fetch(`${t.httpUrl}/api/v1/reports/model?site=${SITE}`, {
        headers: { authorization: `Bearer ${MANAGER.token}` },
      })
    ).json()) as ModelJson;
    ({ page, problems } = await browser.newPage({ viewport: { width: 1400, height: 1000 } }));
    await page.goto(`${t.httpUrl}/dashboard`);
    await page.fill("#token", MANAGER.token);
    await page.click("#signin-submit");
    await page.waitForSelector("#app", { state: "visible" });
    await modelReady(page);
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("in Danish every parameter's unit and source are the model's Danish texts, citations as published", async () => {
    expect(await page.getAttribute("html", "lang")).toBe("da");
    const shown = await shownTexts(page);
    const keys = Object.keys(model.parameters);
    expect(keys.length).toBeGreaterThan(5);
    expect([...shown.keys()].sort()).toEqual([...keys].sort());
    for (const k of keys) {
      expect(shown.get(k), k).toEqual(model.parameters[k]!.da);
      expect(shown.get(k)!.unit, k).not.toBe(model.parameters[k]!.unit);
    }
    const text = (await page.textContent("#p-model")) ?? "";
    expect(text).toContain("Injury 2009;40:987 (loftlift, én hjælper)");
    expect(text).not.toContain("staff-minutes");
    for (const r of model.model.references) {
      expect(text).toContain(r.da.name);
      expect(text).not.toContain(r.name);
    }
  });

  it("in Danish the CSV button gives the Danish spreadsheet's CSV: BOM, semicolons, Danish headings, decimal comma", async () => {
    const button = page.locator('[data-csv="model"][data-table="model"]');
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 5000 }), button.click()]);
    expect(download.suggestedFilename()).toBe(`model-${SITE}-model.csv`);
    const bytes = await readBytes(download);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.subarray(3).toString("utf8");
    expect(headerRow(text, ";")).toEqual(["Parameter", "Værdi", "Enhed", "Pladsholder", "Kilde"]);
    expect(text).toContain("\r\ntransferSecondsCeilingLift;156,9;");
  });

  it("in English the panel shows the English units and sources, and the CSV button the machine CSV", async () => {
    await page.click("#lang");
    await expect.poll(() => page.getAttribute("html", "lang")).toBe("en");
    await modelReady(page);
    const shown = await shownTexts(page);
    for (const [k, p] of Object.entries(model.parameters))
      expect(shown.get(k), k).toEqual({ unit: p.unit, source: p.source });
    const text = (await page.textContent("#p-model")) ?? "";
    expect(text).toContain("Injury 2009;40:987 (ceiling lift, one helper)");
    expect(text).not.toContain("personaleminutter");
    for (const r of model.model.references) expect(text).toContain(r.name);

    await page.waitForTimeout(150); // pacing between two downloads, as a person clicking would
    const button = page.locator('[data-csv="model"][data-table="model"]');
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 5000 }), button.click()]);
    const bytes = await readBytes(download);
    expect(bytes[0]).not.toBe(0xef);
    const csv = bytes.toString("utf8");
    expect(headerRow(csv, ",")).toEqual(["parameter", "value", "unit", "placeholder", "source"]);
    expect(csv).toContain("\r\ntransferSecondsCeilingLift,156.9,");

    await page.click("#lang");
    await expect.poll(() => page.getAttribute("html", "lang")).toBe("da");
    await modelReady(page);
    expect((await shownTexts(page)).get("minutesPerNightCheck")).toEqual(
      model.parameters.minutesPerNightCheck!.da,
    );
  });

  it("runs without script errors", () => {
    expect(problems.errors).toEqual([]);
  });
});
