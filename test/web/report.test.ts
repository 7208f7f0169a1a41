/**
 * The printable benefits report (web/report.html) in a real Chromium against a real gateway with a
 * recorded baseline: every figure printed is the API's, formatted in the page's language; the
 * caveats are in words; every citation of the model is listed with its link; placeholders are
 * marked; and Chromium prints it to a multi-page A4 PDF.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { benefitsReport } from "../../src/reports/benefits.js";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import { api, startGateway, type TestGateway } from "../helpers/gateway.js";
import { DAY, DEVICES, RESIDENTS, SITE, seedHistory } from "../helpers/history.js";

const MANAGER = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: [SITE],
  token: "test-manager-mette-report-0123456789",
};
const TZ = "Europe/Copenhagen";
const SECTIONS = [
  "summary",
  "realised-potential",
  "fte-cost",
  "comparison",
  "quality",
  "baseline",
  "assumptions",
  "sources",
  "method",
];

/**
 * Recorded without a two-helper share: the lift-transfer category then has no realised figure,
 * which the report must print as "not measured", not as zero.
 */
const BASELINE = {
  site: SITE,
  period: { from: "2026-09-01", to: "2026-09-30" },
  recordedBy: "Mette Hansen",
  note: "Målt før sensorerne kom op",
  measurements: {
    nightChecksPerResident: { value: 3, method: "plejeplanerne talt op 15. september" },
    minutesPerNightCheck: { value: 4, method: "40 natlige tilsyn taget tid på" },
    minutesPerAlarm: { value: 7, method: "30 alarmer taget tid på i september" },
    alarmsPerNight: { value: 6, method: "kaldeloggen, september" },
  },
};

type Lang = "da" | "en";
const LOCALE: Record<Lang, string> = { da: "da-DK", en: "en-GB" };

/** The benefits account as the API sends it (its JSON has no Dates or bigints). */
type Benefits = Awaited<ReturnType<typeof benefitsReport>>["body"];
type Amounts = Benefits["headline"]["potential"];
interface Param {
  value: number | string;
  unit: string;
  source: string;
  da?: { unit: string; source: string };
  placeholder: boolean;
  derived?: string;
  cites?: string[];
}
interface Model {
  model: {
    modelVersion: string;
    parameters: Record<string, Param>;
    citations: { id: string; title: string; year: number; doi?: string; url?: string; authors?: string }[];
  };
}

/** A number as the page's language writes it (decimal comma and thousands dot in Danish). */
const fmt = (lang: Lang, n: number, digits: number) =>
  new Intl.NumberFormat(LOCALE[lang], { maximumFractionDigits: digits }).format(n);
const money = (lang: Lang, n: number, currency: string) =>
  new Intl.NumberFormat(LOCALE[lang], {
    style: "currency",
    currency,
    currencyDisplay: lang === "da" ? "symbol" : "code",
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(n);
/** Text with every run of white space (no-break spaces included) as one space. */
const squash = (s: string | null) => (s ?? "").replace(/\s+/g, " ").trim();
const localDate = (ms: number) => new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(ms);

async function reportReady(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.state === "ready", undefined, { timeout: 15_000 });
}

describe("the printable benefits report", () => {
  let t: TestGateway;
  let browser: TestBrowser;
  let page: Page;
  let problems: PageProblems;
  let benefits: Benefits;
  let model: Model;
  let from: string;
  let to: string;

  beforeAll(async () => {
    [t, browser] = await Promise.all([
      startGateway({
        overrides: {
          staff: [MANAGER],
          residents: RESIDENTS,
          devices: DEVICES.map((d, i) => ({
            id: d.id,
            profile: d.profile,
            secret: `secret-report-${i}-0123456789`,
            site: SITE,
            unit: d.unit,
            room: d.room,
            ...(d.resident ? { resident: d.resident } : {}),
          })),
        },
      }),
      launchBrowser(),
    ]);
    const now = Date.now();
    seedHistory(t.gateway.db, now);
    const saved = await api(t.httpUrl, "POST", "/api/v1/baselines", BASELINE, MANAGER.token);
    expect(saved.status).toBe(201);
    from = localDate(now - 15 * DAY);
    to = localDate(now + DAY);
    const recomputed = await api(
      t.httpUrl,
      "POST",
      "/api/v1/reports/time-saved/recompute",
      { site: SITE, from, to },
      MANAGER.token,
    );
    expect(recomputed.status).toBe(200);
    const get = async (path: string) => {
      const r = await api(t.httpUrl, "GET", path, undefined, MANAGER.token);
      expect(r.status, path).toBe(200);
      return r.body;
    };
    benefits = await get(`/api/v1/reports/benefits?site=${SITE}&from=${from}&to=${to}`);
    model = await get(`/api/v1/reports/model?site=${SITE}`);
    // The history gives both figures something to show: a report of zeros would prove little.
    expect(benefits.headline.realised?.hoursPerWeek).toBeGreaterThan(0);
    expect(benefits.headline.potential.hoursPerWeek).toBeGreaterThan(0);

    ({ page, problems } = await browser.newPage({ viewport: { width: 1200, height: 1000 } }));
    await page.goto(`${t.httpUrl}/report.html?site=${SITE}&from=${from}&to=${to}`);
    await page.fill("#token", MANAGER.token);
    await page.click("#signin-submit");
    await reportReady(page);
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("in Danish has every section, and the headline prints the API's realised hours per week first with the potential beside it", async () => {
    expect(await page.getAttribute("html", "lang")).toBe("da");
    for (const s of SECTIONS)
      expect(await page.getAttribute(`section[data-section="${s}"]`, "data-state"), s).toBe("ready");
    const { realised, potential } = benefits.headline;
    const summary = page.locator('[data-section="summary"]');
    expect(await summary.locator(".benefits-headline").getAttribute("data-basis")).toBe("realised");
    expect(squash(await summary.locator(".benefits-value").textContent())).toBe(
      fmt("da", realised!.hoursPerWeek, 1),
    );
    const beside = squash(await summary.locator(".benefits-potential").textContent());
    expect(beside).toContain(fmt("da", potential.hoursPerWeek, 1));
    expect(beside.toLowerCase()).toContain("potentiale");
    // The caveats in words, directly under the headline, in the API's order.
    expect(benefits.headline.caveats.length).toBeGreaterThan(1);
    expect((await summary.locator(".caveat").allTextContents()).map(squash)).toEqual(
      benefits.headline.caveats.map((c) => squash(c.da)),
    );
  });

  it("prints hours, årsværk and kroner as the API computed them, with a decimal comma and kr.", async () => {
    const { realised, potential } = benefits.headline;
    const cur = benefits.economics.currency;
    const expected = (a: Amounts): Record<string, string> => ({
      hours: fmt("da", a.hours, 2),
      hoursPerWeek: fmt("da", a.hoursPerWeek, 1),
      hoursPerYear: fmt("da", a.hoursPerYear, 0),
      fte: fmt("da", a.fte, 2),
      cost: money("da", a.cost, cur),
      costPerYear: money("da", a.costPerYear, cur),
    });
    for (const [basis, a] of [
      ["realised", realised!],
      ["potential", potential],
    ] as const)
      for (const [k, v] of Object.entries(expected(a)))
        expect(
          squash(await page.textContent(`[data-section="fte-cost"] [data-figure="${basis}.${k}"]`)),
          k,
        ).toBe(squash(v));
    expect(squash(money("da", potential.costPerYear, cur))).toMatch(/,\d\d kr\.$/);

    // Per category: a figure where the baseline measured it, and "not measured" where it did not.
    const unmeasured = benefits.categories.filter((c) => c.realised === null);
    expect(unmeasured.map((c) => c.category)).toEqual(["lift_transfers"]);
    const rows = page.locator('[data-section="realised-potential"] tbody tr');
    expect(await rows.count()).toBe(benefits.categories.length + 1);
    for (const [i, c] of benefits.categories.entries()) {
      const row = squash(await rows.nth(i).textContent());
      expect(row).toContain(fmt("da", c.potential.hours, 2));
      if (c.realised) expect(row).toContain(fmt("da", c.realised.hours, 2));
      else expect(row).toContain("ikke målt i baselinen");
    }
  });

  it("compares with the baseline and the previous period, says 'for lidt data' where the API does, and shows the baseline with its methods", async () => {
    const notes = benefits.comparison.filter((r) => r.site === SITE && r.note !== null);
    expect(notes.length).toBeGreaterThan(0);
    const tooLittle = await page.locator('[data-section="comparison"] .too-little').allTextContents();
    expect(tooLittle).toEqual(notes.map((r) => r.note!.da));

    const b = benefits.baselines[0]!;
    const section = squash(await page.textContent('[data-section="baseline"]'));
    expect(section).toContain(b.label);
    expect(section).toContain(b.fingerprint.slice(0, 12));
    expect(section).toContain(BASELINE.recordedBy);
    for (const m of Object.values(b.measurements)) expect(section).toContain(m.method);

    const footer = squash(await page.textContent("#report-footer"));
    expect(footer).toContain(benefits.modelVersions[SITE]!);
    expect(footer).toContain(b.label);
  });

  it("lists every assumption with its Danish unit and source and marks the placeholders (minutes and hourly costs)", async () => {
    const params = Object.entries(model.model.parameters);
    const rows = page.locator('[data-section="assumptions"] tr[data-param]');
    expect(await rows.count()).toBe(params.length);
    for (const [key, p] of params) {
      const row = page.locator(`[data-section="assumptions"] tr[data-param="${key}"]`);
      const text = squash(await row.textContent());
      expect(text, key).toContain(squash(p.da!.unit));
      expect(text, key).toContain(squash(p.da!.source));
      expect(await row.getAttribute("class"), key).toBe(p.placeholder ? "placeholder" : null);
      if (p.placeholder) expect(text).toContain("pladsholder – mål selv");
    }
    expect(params.filter(([, p]) => p.placeholder).length).toBeGreaterThan(0);

    const eco = benefits.economics;
    const costPlaceholders = [eco.annualHoursPerFte, eco.hourlyCost.night, eco.hourlyCost.day].filter(
      (v) => v.placeholder,
    );
    expect(costPlaceholders.length).toBeGreaterThan(0);
    expect(await page.locator('[data-section="fte-cost"] tr.placeholder').count()).toBe(
      costPlaceholders.length,
    );
    expect(
      await page.locator('[data-section="fte-cost"] tr.placeholder .placeholder-mark').allTextContents(),
    ).toEqual(costPlaceholders.map(() => "pladsholder – mål selv"));
  });

  it("lists every citation of the model with title, year and its DOI or URL, the ceiling-lift study among them", async () => {
    const citations = model.model.citations;
    expect(citations.length).toBeGreaterThan(0);
    const items = page.locator('[data-section="sources"] ol.citations > li');
    expect(await items.count()).toBe(citations.length);
    for (const c of citations) {
      const li = page.locator(`[data-section="sources"] li[data-citation="${c.id}"]`);
      const text = squash(await li.textContent());
      expect(text, c.id).toContain(c.title);
      expect(text, c.id).toContain(String(c.year));
      if (c.authors) expect(text, c.id).toContain(c.authors);
      const href = c.doi ? `https://doi.org/${c.doi}` : c.url;
      expect(await li.locator("a.cite-link").getAttribute("href"), c.id).toBe(href);
    }
    const lift = page.locator('[data-section="sources"] li.citation', {
      hasText: "Evaluation of ceiling lifts: transfer time, patient comfort and staff perceptions",
    });
    expect(await lift.locator("a.cite-link").getAttribute("href")).toBe(
      "https://doi.org/10.1016/j.injury.2008.12.002",
    );
    expect(squash(await lift.textContent())).toContain("2009");

    // A source with no full citation is shown as recorded and said to have none, not given one.
    const uncited = Object.values(model.model.parameters).filter(
      (p) => !p.cites && !p.placeholder && !p.derived,
    );
    expect(uncited.length).toBeGreaterThan(0);
    const list = squash(await page.textContent('[data-section="sources"] ul.uncited'));
    for (const p of uncited) expect(list).toContain(squash(p.da!.source));
    expect(await page.locator('[data-section="sources"] ul.uncited .no-citation').first().textContent()).toBe(
      "(ingen fuld kildehenvisning registreret)",
    );
    // Parameters that cite a source point at its number in the list.
    const cited = Object.entries(model.model.parameters).find(([, p]) => p.cites?.length)!;
    expect(
      await page
        .locator(`[data-section="assumptions"] tr[data-param="${cited[0]}"] a.cite-ref`)
        .first()
        .getAttribute("href"),
    ).toBe(`#cite-${cited[1].cites![0]}`);
  });

  it("explains the method with the figures the account used: annual hours, 52 weeks, both hourly costs, versions", async () => {
    const text = squash(await page.textContent('[data-section="method"]'));
    const eco = benefits.economics;
    expect(text).toContain(fmt("da", eco.annualHoursPerFte.value, 1));
    expect(text).toContain(`${benefits.weeksPerYear} uger`);
    expect(text).toContain(squash(money("da", eco.hourlyCost.night.value, eco.currency)));
    expect(text).toContain(squash(money("da", eco.hourlyCost.day.value, eco.currency)));
    expect(text).toContain(benefits.modelVersions[SITE]!);
    expect(text).toContain(benefits.baselines[0]!.label);
    expect(text.toLowerCase()).toContain("for lidt data");
  });

  it("prints to a multi-page A4 PDF without the buttons", async () => {
    await page.screenshot({ path: screenshotPath("report-da"), fullPage: true });
    // The button asks the browser to print (the dialog itself is the browser's).
    await page.evaluate(() => {
      const w = window as unknown as { printed: number };
      w.printed = 0;
      window.print = () => {
        w.printed++;
      };
    });
    await page.click("#print");
    expect(await page.evaluate(() => (window as unknown as { printed: number }).printed)).toBe(1);
    await page.emulateMedia({ media: "print" });
    expect(await page.isVisible("#print")).toBe(false);
    expect(await page.isVisible('[data-section="method"]')).toBe(true);
    await page.emulateMedia({ media: "screen" });
    const pdf = await page.pdf({ format: "A4", printBackground: true });
    expect(pdf.subarray(0, 4).toString("latin1")).toBe("%PDF");
    const pages = pdf.toString("latin1").match(/\/Type\s*\/Page(?!s)/g) ?? [];
    expect(pages.length).toBeGreaterThan(1);
  });

  it("in English prints the same figures the English way, caveats and placeholders in English", async () => {
    await page.click("#lang");
    await expect.poll(() => page.getAttribute("html", "lang")).toBe("en");
    expect(page.url()).toContain("lang=en");
    const { realised, potential } = benefits.headline;
    const summary = page.locator('[data-section="summary"]');
    expect(squash(await summary.locator(".benefits-value").textContent())).toBe(
      fmt("en", realised!.hoursPerWeek, 1),
    );
    expect(squash(await summary.locator(".benefits-potential").textContent())).toContain(
      fmt("en", potential.hoursPerWeek, 1),
    );
    expect((await summary.locator(".caveat").allTextContents()).map(squash)).toEqual(
      benefits.headline.caveats.map((c) => squash(c.en)),
    );
    expect(
      squash(await page.textContent('[data-section="fte-cost"] [data-figure="potential.costPerYear"]')),
    ).toBe(squash(money("en", potential.costPerYear, benefits.economics.currency)));
    expect(squash(await page.textContent('[data-section="realised-potential"]'))).toContain(
      "not measured in the baseline",
    );
    const placeholder = Object.entries(model.model.parameters).find(([, p]) => p.placeholder)!;
    const row = squash(
      await page.textContent(`[data-section="assumptions"] tr[data-param="${placeholder[0]}"]`),
    );
    expect(row).toContain("placeholder — measure on site");
    expect(row).toContain(squash(placeholder[1].unit));

    // Opened in English from the address, too.
    const en = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    await en.page.goto(`${t.httpUrl}/report.html?site=${SITE}&from=${from}&to=${to}&lang=en`);
    await en.page.fill("#token", MANAGER.token);
    await en.page.click("#signin-submit");
    await reportReady(en.page);
    expect(await en.page.textContent('[data-section="sources"] .no-citation')).toBe(
      "(no full citation recorded)",
    );
    await en.context.close();
    expect(en.problems.errors).toEqual([]);
  });

  it("without a baseline says so under the headline and shows the potential labelled as potential", async () => {
    const {
      page: bare,
      problems: bareProblems,
      context,
    } = await browser.newPage({
      viewport: { width: 1200, height: 1000 },
    });
    const noBaseline = { code: "no_baseline", da: "Ingen baseline (prøve)", en: "No baseline (sample)" };
    // The account as the API gives it for a site without a baseline: no realised figures at all.
    await bare.route("**/api/v1/reports/benefits*", async (route) => {
      const real = (await (await route.fetch()).json()) as Benefits;
      const body = {
        ...real,
        headline: { ...real.headline, realised: null, caveats: [noBaseline, ...real.headline.caveats] },
        categories: real.categories.map((c) => ({ ...c, realised: null })),
        baselines: [],
      };
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) });
    });
    await bare.goto(`${t.httpUrl}/report.html?site=${SITE}&from=${from}&to=${to}&lang=da`);
    await bare.fill("#token", MANAGER.token);
    await bare.click("#signin-submit");
    await reportReady(bare);
    const summary = bare.locator('[data-section="summary"]');
    expect(await summary.locator(".benefits-headline").getAttribute("data-basis")).toBe("potential");
    expect(squash(await summary.locator(".benefits-label").textContent())).toMatch(
      /potentiel.*ingen baseline/i,
    );
    expect(squash(await summary.locator(".benefits-value").textContent())).toBe(
      fmt("da", benefits.headline.potential.hoursPerWeek, 1),
    );
    expect(await summary.locator(".caveat").first().textContent()).toBe(noBaseline.da);
    expect(
      await bare.locator('[data-section="realised-potential"] .not-measured').first().textContent(),
    ).toBe("ingen baseline");
    expect(await bare.textContent('[data-section="baseline"]')).toMatch(/ingen baseline registreret/i);
    await context.close();
    expect(bareProblems.errors).toEqual([]);
  });

  it("without from and to covers the last complete calendar quarter", async () => {
    const { page: q, problems: qProblems, context } = await browser.newPage();
    await q.goto(`${t.httpUrl}/report.html?site=${SITE}`);
    await q.fill("#token", MANAGER.token);
    await q.click("#signin-submit");
    await reportReady(q);
    const [year, month] = localDate(Date.now()).split("-").map(Number) as [number, number];
    const first = Math.floor((month - 1) / 3) * 3; // months before this quarter
    const start = first === 0 ? [year - 1, 10] : [year, first - 2];
    const pad = (n: number) => String(n).padStart(2, "0");
    const url = new URL(q.url());
    expect(url.searchParams.get("from")).toBe(`${start[0]}-${pad(start[1]!)}-01`);
    expect(url.searchParams.get("to")).toBe(`${year}-${pad(first + 1)}-01`);
    await context.close();
    expect(qProblems.errors).toEqual([]);
  });

  it("runs without script errors or CSP violations", () => {
    expect(problems.errors).toEqual([]);
  });
});
