import type { Download, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { staticFiles, WEB_ROOT } from "../../src/http/static.js";
import { loadTimeModel } from "../../src/reports/model.js";
import { reportRoutes } from "../../src/reports/routes.js";
import { TimeSavedJob } from "../../src/reports/timesaved.js";
import type { Db } from "../../src/store/db.js";
import { launchBrowser, type PageProblems, screenshotPath, type TestBrowser } from "../helpers/browser.js";
import { ADMIN_TOKEN, startGateway, type TestGateway } from "../helpers/gateway.js";

const SITE = "home-a";
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

/** A small home: five rooms over two units, a fall sensor in most, a lift, a pendant, a bed mat. */
const DEVICES = [
  { id: "radar-r1", profile: "vayyar/care", unit: "unit-1", room: "r1", resident: "R-0001" },
  { id: "radar-r2", profile: "milesight/vs373", unit: "unit-1", room: "r2", resident: "R-0002" },
  { id: "mat-r3", profile: "scaip/bed-mat", unit: "unit-1", room: "r3", resident: "R-0003" },
  { id: "lift-r1", profile: "generic/ceiling-lift", unit: "unit-1", room: "r1", resident: null },
  { id: "radar-r4", profile: "vayyar/care", unit: "unit-2", room: "r4", resident: "R-0004" },
  { id: "pendant-r5", profile: "scaip/pendant", unit: "unit-2", room: "r5", resident: "R-0005" },
  { id: "radar-r5", profile: "milesight/vs373", unit: "unit-2", room: "r5", resident: "R-0005" },
];
const RESIDENTS = [
  { ref: "R-0001", site: SITE, unit: "unit-1", room: "r1", flags: ["fall-risk", "lift-dependent"] },
  { ref: "R-0002", site: SITE, unit: "unit-1", room: "r2", flags: [] },
  { ref: "R-0003", site: SITE, unit: "unit-1", room: "r3", flags: ["fall-risk"] },
  { ref: "R-0004", site: SITE, unit: "unit-2", room: "r4", flags: [] },
  { ref: "R-0005", site: SITE, unit: "unit-2", room: "r5", flags: ["fall-risk"] },
];

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** Seeded PRNG (mulberry32): the same history on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Two weeks of history written as the gateway would have left it: devices online since before
 * the range (one with an outage), lift cycles, and alerts with their audit trail, response times
 * and outcomes (falls, calls, bed exits, a battery).
 */
function seedHistory(db: Db, now: number): void {
  const rand = rng(20261123);
  const between = (a: number, b: number) => a + rand() * (b - a);
  const start = now - 15 * DAY;
  const ev = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, site_id, unit_id,
       room_id, resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', NULL, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  let n = 0;
  const event = (d: (typeof DEVICES)[number], type: string, at: number, data: object = {}) =>
    ev.run(
      `seed-${++n}`,
      d.id,
      type,
      Math.round(at),
      Math.round(at) + 5,
      SITE,
      d.unit,
      d.room,
      d.resident,
      d.profile,
      JSON.stringify(data),
    );
  const alert = db.prepare(
    `INSERT INTO alerts (id, dedupe_key, open, type, priority, state, message_da, message_en, rule_id, site_id, unit_id,
       room_id, resident_ref, device_id, last_event_type, raised_at, updated_at, accepted_by, accepted_by_name,
       accepted_at, attending_at, resolved_at, outcome, level, undelivered, delivered_to, ladder)
     VALUES (?, ?, 0, ?, ?, 'resolved', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'anna', 'Anna', ?, ?, ?, ?, 0, 0, '["Anna"]', '[]')`,
  );
  const audit = db.prepare(
    `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  db.transaction(() => {
    // Registered 15 days ago: half of the dashboard's 28 days counts for uptime.
    db.prepare("UPDATE devices SET created_at = ? WHERE site_id = ?").run(start, SITE);
    for (const d of DEVICES) event(d, "device.online", start);
    const flaky = DEVICES[1]!;
    event(flaky, "device.offline", now - 5 * DAY);
    event(flaky, "device.online", now - 5 * DAY + 3 * HOUR);

    const lift = DEVICES[3]!;
    const kinds = [
      { type: "fall", priority: "high", ruleId: "fall", da: "Fald i {room}", en: "Fall in {room}", w: 3 },
      { type: "call", priority: "high", ruleId: "call", da: "Kald fra {room}", en: "Call from {room}", w: 4 },
      {
        type: "bed-exit",
        priority: "medium",
        ruleId: "bed-exit",
        da: "Ude af sengen",
        en: "Out of bed",
        w: 2,
      },
      {
        type: "battery-low",
        priority: "low",
        ruleId: "battery",
        da: "Lavt batteri",
        en: "Battery low",
        w: 1,
      },
    ];
    let id = 0;
    for (let day = 14; day >= 1; day--) {
      const dayStart = now - day * DAY;
      // Lift transfers by day: mostly one helper, some two.
      for (let i = 0; i < 5; i++) {
        const at = dayStart + between(7, 21) * HOUR;
        event(lift, "lift.cycle", at, {
          startedAt: new Date(at - 157_000).toISOString(),
          endedAt: new Date(at).toISOString(),
          helpers: rand() < 0.7 ? 1 : 2,
          transfer: "bed-chair",
        });
      }
      const count = 4 + Math.floor(rand() * 5);
      for (let i = 0; i < count; i++) {
        const pick = rand() * 10;
        let acc = 0;
        const kind =
          kinds.find((k) => {
            acc += k.w;
            return pick < acc;
          }) ?? kinds[0]!;
        const d = DEVICES.filter((x) => x.id !== lift.id)[Math.floor(rand() * (DEVICES.length - 1))]!;
        // More at night and in the morning.
        const hour = rand() < 0.4 ? between(22, 31) % 24 : between(7, 22);
        const raised = dayStart + hour * HOUR;
        const accepted = raised + between(15, 150) * 1000;
        const remote = kind.type !== "fall" && rand() < 0.45;
        const attending = remote ? null : accepted + between(40, 240) * 1000;
        const resolved = (attending ?? accepted) + between(60, 900) * 1000;
        const outcome = remote
          ? kind.type === "call"
            ? "assistance-given"
            : "no-action"
          : kind.type === "fall"
            ? rand() < 0.25
              ? "false-alarm"
              : rand() < 0.15
                ? "fall-with-injury"
                : "fall-without-injury"
            : rand() < 0.15
              ? "false-alarm"
              : "assistance-given";
        const alertId = `al_seed_${++id}`;
        alert.run(
          alertId,
          `${kind.type}|${d.id}|${alertId}`,
          kind.type,
          kind.priority,
          kind.da.replace("{room}", d.room),
          kind.en.replace("{room}", d.room),
          kind.ruleId,
          SITE,
          d.unit,
          d.room,
          d.resident,
          d.id,
          kind.type,
          Math.round(raised),
          Math.round(resolved),
          Math.round(accepted),
          attending === null ? null : Math.round(attending),
          Math.round(resolved),
          outcome,
        );
        const log = (at: number, action: string, actor: string, name: string, after: string) =>
          audit.run(alertId, Math.round(at), action, actor, name, after, SITE, d.unit);
        log(raised, "raised", `rule:${kind.ruleId}`, `rule ${kind.ruleId}`, "raised");
        log(raised + 300, "delivered", "staff:anna", "Anna", "raised");
        log(accepted, "accepted", "staff:anna", "Anna", "accepted");
        if (attending !== null) log(attending, "attending", "staff:anna", "Anna", "attending");
        log(resolved, "resolved", "staff:anna", "Anna", "resolved");
      }
    }
  })();
}

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

  it("runs without script errors or CSP violations", () => {
    expect(problems.errors.filter((e) => !e.includes("status of 503"))).toEqual([]);
  });
});
