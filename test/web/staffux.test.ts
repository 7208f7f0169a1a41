/**
 * Staff get in and act correctly, in a real Chromium: a manager enrols a person on the dashboard
 * and the QR code's URL signs a phone in without typing; the console names other units and
 * residents (where the site shows names), offers only the outcomes an alert's type allows, turns
 * dark at the site's night hours or by the person's choice with readable contrast, and signs out
 * when the manager revokes the phone.
 */
import type { MqttClient } from "mqtt";
import type { Page } from "playwright-core";
import QRCode from "qrcode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OUTCOMES_BY_TYPE } from "../../src/alerts/outcomes.js";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import {
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const METTE = {
  id: "mette",
  name: "Mette",
  role: "manager",
  sites: ["home-a"],
  token: "test-manager-mette-0123456789",
};
const NATIVE = "ata/native";
const DEVICE = deviceIdFor(NATIVE);
const SITES = [
  {
    id: "home-a",
    name: "Home A",
    timeZone: "Europe/Copenhagen",
    nightHours: { from: "22:00", to: "07:00" },
    residentNames: true,
    units: [
      { id: "unit-1", name: "Skovbrynet", rooms: ["r1", "r2", "r3"] },
      { id: "unit-2", name: "Havebo", rooms: ["r4", "r5"] },
    ],
  },
  { id: "home-b", name: "Home B", units: [{ id: "unit-9", name: "Unit 9", rooms: ["r9"] }] },
];
const RESIDENTS = [
  {
    ref: "R-0001",
    site: "home-a",
    unit: "unit-1",
    room: "r1",
    flags: ["fall-risk"],
    displayName: "Karen Holm",
  },
  { ref: "R-0002", site: "home-a", unit: "unit-1", room: "r2", flags: [] },
  { ref: "R-0009", site: "home-b", unit: "unit-9", room: "r9", flags: [], displayName: "Never Shown" },
];

/** Copenhagen wall times (CET in December): 23:30 is night shift, 12:00 is day. */
const NIGHT = new Date("2026-12-02T23:30:00+01:00");
const DAY = new Date("2026-12-02T12:00:00+01:00");

/** WCAG 2.x contrast of every visible text element that matters on the console, against what is behind it. */
async function contrastProblems(page: Page, selectors: string[]): Promise<string[]> {
  const { checked, problems } = await page.evaluate((sels) => {
    const rgb = (c: string) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a] = m[1]!
        .split(/[,\s/]+/)
        .filter(Boolean)
        .map(Number);
      return { r: r!, g: g!, b: b!, a: a === undefined ? 1 : a };
    };
    const lum = (c: { r: number; g: number; b: number }) => {
      const f = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    };
    const background = (el: Element) => {
      for (let e: Element | null = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0.9) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const problems: string[] = [];
    let checked = 0;
    for (const sel of sels)
      for (const el of Array.from(document.querySelectorAll(sel))) {
        if (!(el instanceof HTMLElement) || !el.getClientRects().length || !el.textContent?.trim()) continue;
        checked++;
        const fg = rgb(getComputedStyle(el).color)!;
        const bg = background(el);
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a) as [number, number];
        const ratio = (hi + 0.05) / (lo + 0.05);
        if (ratio < 4.5) problems.push(`${sel} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
      }
    return { checked, problems };
  }, selectors);
  // A check that found nothing to check would pass without testing anything.
  expect(checked).toBeGreaterThan(10);
  return problems;
}

const CONSOLE_TEXT = [
  "body",
  ".topbar .brand",
  ".topbar .who",
  ".topbar .btn",
  "#conn-text",
  ".summary",
  "li.alert .room",
  "li.alert .age",
  "li.alert .msg",
  "li.alert .meta",
  "li.alert .status",
  "li.alert .prio",
  "li.alert .warn",
  "li.alert button",
  "#outcomes button",
  "#resolve-dialog h2",
  "#resolve-dialog label",
  "#resolve-dialog .dialog-which",
];

describe("staff sign-in by QR code, outcomes, names and the night theme in a real browser", () => {
  let t: TestGateway;
  let browser: TestBrowser;
  let dashboard: { page: Page; problems: PageProblems };
  let phone: { page: Page; problems: PageProblems };
  let device: MqttClient;
  let enrolUrl = "";
  let n = 0;

  const event = async (type: string) => {
    await publish(
      device,
      `ata/v1/${DEVICE}/events`,
      JSON.stringify({ eventId: `ux-${++n}`, type, data: {} }),
    );
  };

  beforeAll(async () => {
    [t, browser] = await Promise.all([
      startGateway({ overrides: { staff: [METTE], sites: SITES, residents: RESIDENTS } }),
      launchBrowser(),
    ]);
    device = await connectDevice(t.mqttPort, DEVICE, secretFor(NATIVE));
    const d = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    dashboard = { page: d.page, problems: d.problems };
    const p = await browser.newPage();
    phone = { page: p.page, problems: p.problems };
    // Day time for the first steps; the night is checked on its own page below.
    await phone.page.clock.setFixedTime(DAY);
  });

  afterAll(async () => {
    device?.end(true);
    await browser?.close();
    if (t) {
      t.gateway.staff.stop();
      await t.stop();
    }
  });

  it("a manager creates an enrolment on the dashboard: a valid SVG QR code of the console URL and a short code", async () => {
    const page = dashboard.page;
    await page.goto(`${t.httpUrl}/dashboard`);
    await page.fill("#token", METTE.token);
    await page.click("#signin-submit");
    await page.waitForSelector("#enrol-form");
    await page.waitForFunction(
      () => (document.querySelector("#enrol-unit") as HTMLSelectElement).options.length > 1,
    );
    await page.fill("#enrol-name", "Dorte");
    await page.selectOption("#enrol-role", "staff");
    await page.selectOption("#enrol-unit", "unit-2");
    expect(await page.locator("#enrol-unit option[value='unit-2']").textContent()).toBe("Havebo");
    await page.click("#enrol-create");
    await page.waitForSelector("#enrol-result:not([hidden])");

    const code = (await page.textContent("#enrol-code")) ?? "";
    expect(code).toMatch(/^[A-Z2-9]{5}-[A-Z2-9]{5}$/);
    enrolUrl = (await page.textContent("#enrol-url")) ?? "";
    expect(enrolUrl).toBe(`${t.httpUrl}/#enrol=${code}`);
    expect(await page.textContent("#enrol-for")).toBe("Kode til Dorte");

    // The image is an SVG the browser parses and draws, and it encodes exactly the URL shown.
    const qr = await page.evaluate(async () => {
      const img = document.querySelector("#enrol-qr") as HTMLImageElement;
      await img.decode();
      const svg = decodeURIComponent(img.src.replace(/^data:image\/svg\+xml;charset=utf-8,/, ""));
      const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
      return {
        svg,
        root: doc.documentElement.nodeName,
        parseError: doc.getElementsByTagName("parsererror").length,
        viewBox: doc.documentElement.getAttribute("viewBox"),
        paths: doc.getElementsByTagName("path").length,
        naturalWidth: img.naturalWidth,
        shownWidth: img.getBoundingClientRect().width,
      };
    });
    expect(qr.root).toBe("svg");
    expect(qr.parseError).toBe(0);
    expect(qr.viewBox).toMatch(/^0 0 \d+ \d+$/);
    expect(qr.paths).toBeGreaterThan(0);
    expect(qr.naturalWidth).toBeGreaterThan(0);
    expect(qr.shownWidth).toBe(240);
    expect(qr.svg).toBe(
      await QRCode.toString(enrolUrl, { type: "svg", errorCorrectionLevel: "M", margin: 4 }),
    );
    await page.locator("#p-staff").screenshot({ path: screenshotPath("dashboard-enrolment-qr") });
  });

  it("opening the QR code's URL on a phone signs in without typing a token, and forgets the code", async () => {
    const page = phone.page;
    await page.goto(enrolUrl);
    await page.waitForSelector("#conn[data-state='live']", { timeout: 5000 });
    expect(await page.textContent("#who")).toBe("Dorte");
    expect(new URL(page.url()).hash).toBe("");
    const stored = await page.evaluate(() => localStorage.getItem("ata.console.token"));
    expect(stored).toMatch(/^ata_/);
    // Used once: the same URL again is refused and says so.
    const other = await browser.newPage();
    await other.page.goto(enrolUrl);
    await other.page.waitForSelector("#enrol-status.form-error");
    expect(await other.page.textContent("#enrol-status")).toContain("ukendt, brugt eller udløbet");
    await other.context.close();
  });

  it("a fall from another unit, escalated to the whole site, shows that unit's name and the resident's display name", async () => {
    // Nobody of unit-1 is connected, so the fall climbs at once to the whole site, where Dorte (unit-2) is.
    await event("fall.detected");
    const card = phone.page.locator("li.alert.p-high");
    await card.waitFor({ timeout: 5000 });
    const meta = (await card.locator(".meta").textContent()) ?? "";
    expect(meta).toContain("Skovbrynet");
    expect(meta).not.toContain("unit-1");
    expect(meta).toContain("Karen Holm");
    expect(meta).not.toContain("R-0001");
    // The rule's message names the resident too ("Fald i r1 (R-0001)" as written by the rule).
    expect(await card.locator(".msg").textContent()).toBe("Fald i r1 (Karen Holm)");
  });

  it("the resolve dialog offers a fall's outcomes with the fall outcomes first, and a pendant call's without any fall", async () => {
    const page = phone.page;
    const fall = page.locator("li.alert", { hasText: "Fald" });
    await fall.locator("button[data-action='accept']").click();
    await fall.locator("button[data-action='resolve']").waitFor();
    await fall.locator("button[data-action='resolve']").click();
    await page.waitForSelector("#resolve-dialog[open]");
    const offered = () =>
      page.$$eval("#outcomes button", (bs) => bs.map((b) => (b as HTMLElement).dataset.outcome));
    expect(await offered()).toEqual(OUTCOMES_BY_TYPE.fall);
    expect(await page.textContent("#outcomes button:first-child")).toBe("Fald uden skade");
    await page.click("#outcomes button[data-outcome='fall-with-injury']");
    await fall.waitFor({ state: "detached" });

    await event("call.manual");
    const call = page.locator("li.alert", { hasText: "Kald" });
    await call.waitFor({ timeout: 5000 });
    await call.locator("button[data-action='accept']").click();
    await call.locator("button[data-action='resolve']").click();
    await page.waitForSelector("#resolve-dialog[open]");
    expect(await offered()).toEqual(OUTCOMES_BY_TYPE.call);
    expect(await offered()).not.toContain("fall-without-injury");
    await page.click("#resolve-dialog [data-close]");
  });

  it("at night by the site's hours the console is dark, by day light; the person's own choice wins and is remembered", async () => {
    const night = await browser.newPage();
    await night.page.clock.setFixedTime(NIGHT);
    const token = await phone.page.evaluate(() => localStorage.getItem("ata.console.token"));
    await night.page.goto(t.httpUrl);
    await night.page.evaluate((tk) => localStorage.setItem("ata.console.token", tk ?? ""), token);
    await night.page.reload();
    await night.page.waitForSelector("#conn[data-state='live']", { timeout: 5000 });
    await night.page.waitForSelector("li.alert", { timeout: 5000 });
    expect(await night.page.getAttribute("html", "data-theme")).toBe("dark");
    expect(await night.page.textContent("#theme")).toBe("Tema: auto");
    const paper = await night.page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(paper).toBe("rgb(11, 18, 32)");
    await night.page.screenshot({ path: screenshotPath("console-night-dark"), fullPage: true });

    // Readable at night: every text on the board and in the resolve dialog meets WCAG AA.
    expect(await contrastProblems(night.page, CONSOLE_TEXT)).toEqual([]);
    // The first tap turns sound on and its banner goes, moving the page: tap the banner's button first.
    await night.page.click("#sound-enable", { timeout: 5000 });
    await night.page.waitForSelector("#sound-warning", { state: "hidden" });
    await night.page.locator("li.alert button[data-action='resolve']").first().click({ timeout: 5000 });
    await night.page.waitForSelector("#resolve-dialog[open]", { timeout: 5000 }).catch((err) => {
      throw new Error(`${err.message}; page problems: ${JSON.stringify(night.problems.errors)}`);
    });
    expect(await contrastProblems(night.page, CONSOLE_TEXT)).toEqual([]);
    await night.page.screenshot({ path: screenshotPath("console-night-resolve") });
    await night.page.click("#resolve-dialog [data-close]", { timeout: 5000 });

    // The person prefers light at night: auto -> light, remembered across a reload.
    await night.page.click("#theme", { timeout: 5000 });
    expect(await night.page.textContent("#theme")).toBe("Tema: lyst");
    expect(await night.page.getAttribute("html", "data-theme")).toBe("light");
    await night.page.reload();
    await night.page.waitForSelector("#conn[data-state='live']", { timeout: 5000 });
    expect(await night.page.getAttribute("html", "data-theme")).toBe("light");
    await night.context.close();

    // By day the automatic theme is light; the person may choose dark.
    const page = phone.page;
    expect(await page.getAttribute("html", "data-theme")).toBe("light");
    expect(await contrastProblems(page, CONSOLE_TEXT)).toEqual([]);
    await page.click("#theme", { timeout: 5000 }); // auto -> light
    await page.click("#theme", { timeout: 5000 }); // light -> dark
    expect(await page.textContent("#theme")).toBe("Tema: mørkt");
    expect(await page.getAttribute("html", "data-theme")).toBe("dark");
    expect(await page.evaluate(() => localStorage.getItem("ata.console.theme"))).toBe("dark");
    await page.click("#theme", { timeout: 5000 }); // dark -> auto: light again by day
    expect(await page.getAttribute("html", "data-theme")).toBe("light");
  });

  it("the dashboard lists Dorte's phone with its last use; revoking it signs the phone out within seconds", async () => {
    const page = dashboard.page;
    await page.reload();
    const person = page.locator("li.person", { hasText: "Dorte" });
    await person.waitFor();

    // The outcomes panel counts by type; a call's fall columns show a dash (not possible), not 0.
    await page.waitForSelector("#p-outcomes[data-state='ready']", { timeout: 15_000 });
    const headers = await page.$$eval("#p-outcomes th", (ths) => ths.map((th) => th.textContent));
    const callRow = await page.locator("#p-outcomes tr", { hasText: "Kald" }).locator("td").allTextContents();
    const cell = (header: string) => callRow[headers.indexOf(header)];
    expect(cell("Alarmer")).toBe("1");
    expect(cell("Fald uden skade")).toBe("–");
    expect(cell("Fald med skade")).toBe("–");
    const fallRow = await page
      .locator("#p-outcomes tr", { hasText: /^Fald/ })
      .locator("td")
      .allTextContents();
    expect(fallRow[headers.indexOf("Fald med skade")]).toBe("1");
    expect(await person.locator(".person-meta").textContent()).toBe("Medarbejder · Havebo");
    const deviceRow = person.locator("li.device");
    expect(await deviceRow.count()).toBe(1);
    expect(await deviceRow.locator(".device-label").textContent()).toBe("Linux · Chrome");
    expect(await deviceRow.locator(".device-used").textContent()).not.toContain("aldrig");
    const t0 = Date.now();
    await deviceRow.locator("button[data-action='revoke']").click();
    await person.locator("li.device.revoked").waitFor();
    await phone.page.waitForSelector("#signin:not([hidden])", { timeout: 5000 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await phone.page.evaluate(() => localStorage.getItem("ata.console.token"))).toBeNull();
  });

  it("runs without script errors or CSP violations", () => {
    expect(dashboard.problems.errors).toEqual([]);
    expect(phone.problems.errors).toEqual([]);
  });
});
