/**
 * format=csv-da: the CSV a Danish Excel opens by double-click (BOM, ";", decimal comma, headings in
 * Danish or English, one table per file), read back here the way Danish Excel reads it and compared
 * with the same report's JSON and machine CSV.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Router } from "../../src/http/router.js";
import { HttpServer } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { hasHeading } from "../../src/reports/columns.js";
import { reportRoutes } from "../../src/reports/routes.js";
import { TimeSavedJob } from "../../src/reports/timesaved.js";
import { SecurityLog } from "../../src/security/log.js";
import { StaffAuth } from "../../src/security/staff-auth.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { PROFILES, shippedModel, tempDb } from "./fixtures.js";
import { AFTER_WEEK, buildScenario, OVERRIDES, SITE, WEEK, WEEK_TOTAL } from "./scenario.js";

const ADMIN = "admin-token-0123456789abcdef";
const MANAGER = "manager-solbakken-0123456789";

/** RFC 4180 fields separated by `sep`, quotes doubled inside quoted fields, CRLF rows. */
function parseCsv(text: string, sep: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) {
      row.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i++;
    } else cell += c;
  }
  if (cell !== "" || row.length > 0) rows.push([...row, cell]);
  return rows;
}

/** A Danish spreadsheet's number: decimal comma, optional minus, no grouping. */
const DANISH_NUMBER = /^-?\d+(,\d+)?$/;
const danishNumber = (s: string) => Number(s.replace(",", "."));

const REPORTS = [
  "time-saved",
  "response-times",
  "alert-volume",
  "false-alarms",
  "outcomes",
  "coverage",
  "quality",
  "benefits",
  "model",
];

describe("reports as a Danish spreadsheet's CSV (format=csv-da)", () => {
  let t: ReturnType<typeof tempDb>;
  let store: EmbeddedSeriesStore;
  let http: HttpServer;
  let base: string;

  beforeAll(async () => {
    t = tempDb();
    buildScenario(t.db);
    const tokens = new TokenStore(t.db);
    tokens.create({ name: "Mette", role: "manager", sites: ["solbakken"], token: MANAGER });
    store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    const model = shippedModel(OVERRIDES);
    const sites = [SITE];
    const job = new TimeSavedJob({
      db: t.db,
      store,
      model,
      sites,
      profiles: PROFILES,
      now: () => AFTER_WEEK,
    });
    await job.recompute(SITE.id, WEEK.from, WEEK.to);
    const auth = new StaffAuth({
      tokens,
      adminToken: ADMIN,
      allSites: () => sites.map((s) => s.id),
      security: new SecurityLog(t.db, silentLogger()),
      options: { maxFailures: 20, windowSec: 60 },
    });
    const router = new Router(silentLogger(), null, auth);
    reportRoutes(router, { db: t.db, store, model, sites, profiles: PROFILES, job, now: () => AFTER_WEEK });
    http = new HttpServer(router, silentLogger(), { host: "127.0.0.1", port: 0 });
    await http.start();
    base = `http://127.0.0.1:${http.port}`;
  });
  afterAll(async () => {
    await http.stop();
    await store.stop();
    t.close();
  });

  const get = (path: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${MANAGER}` } });
  const range = (report: string) => (report === "model" ? "" : `&from=${WEEK.from}&to=${WEEK.to}`);
  /** The raw bytes: the BOM must be in the file, not added or eaten by a decoder. */
  const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());

  it("time saved per unit: BOM, semicolons, Danish headings, and the JSON's figures with a decimal comma", async () => {
    const res = await get(
      `/api/v1/reports/time-saved?site=solbakken${range("x")}&format=csv-da&table=by_unit`,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe(
      'attachment; filename="time-saved-solbakken-by_unit.csv"',
    );
    const raw = await bytes(res);
    expect([...raw.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const rows = parseCsv(raw.subarray(3).toString("utf8"), ";");
    const [header, ...data] = rows;
    expect(header!.slice(0, 4)).toEqual([
      "Plejehjem",
      "Afsnit",
      "Frigjort tid i alt (minutter)",
      "Frigjort tid i alt (timer)",
    ]);
    const json = (await (await get(`/api/v1/reports/time-saved?site=solbakken${range("x")}`)).json()) as {
      byUnit: {
        unit: string;
        minutes: number;
        hours: number;
        categories: Record<string, { minutes: number }>;
      }[];
      totals: { minutes: number };
    };
    expect(data).toHaveLength(json.byUnit.length);
    for (const [i, u] of json.byUnit.entries()) {
      const row = data[i]!;
      expect(row.length).toBe(header!.length);
      expect(row[1]).toBe(u.unit);
      expect(row[2]).toMatch(DANISH_NUMBER);
      expect(danishNumber(row[2]!)).toBe(u.minutes);
      expect(danishNumber(row[3]!)).toBe(u.hours);
      const falseAlarms = header!.indexOf("Falske alarmer (minutter)");
      expect(danishNumber(row[falseAlarms]!)).toBe(u.categories.false_alarms!.minutes);
    }
    // The scenario's known week: unit a freed 96.525 minutes, written as Excel in Denmark reads it.
    expect(data[0]![2]).toBe("96,525");
    expect(json.totals.minutes).toBe(WEEK_TOTAL.net);
    expect(data.reduce((s, r) => s + danishNumber(r[2]!), 0)).toBeCloseTo(json.totals.minutes, 6);
  });

  it("lang=en keeps the Danish spreadsheet's separators with English headings", async () => {
    const da = parseCsv(
      (
        await bytes(
          await get(`/api/v1/reports/time-saved?site=solbakken${range("x")}&format=csv-da&table=by_unit`),
        )
      )
        .subarray(3)
        .toString("utf8"),
      ";",
    );
    const res = await get(
      `/api/v1/reports/time-saved?site=solbakken${range("x")}&format=csv-da&table=by_unit&lang=en`,
    );
    const raw = await bytes(res);
    expect([...raw.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const en = parseCsv(raw.subarray(3).toString("utf8"), ";");
    expect(en[0]!.slice(0, 4)).toEqual([
      "Site",
      "Unit",
      "Net time freed (minutes)",
      "Net time freed (hours)",
    ]);
    // Same figures, same decimal comma; only the headings differ.
    expect(en.slice(1)).toEqual(da.slice(1));
    expect(en[0]!.filter((h, i) => h === da[0]![i]).length).toBeLessThan(en[0]!.length / 4);
  });

  it("every table of every report reads back to the machine CSV's values, with a heading per column", async () => {
    // lang=en: the same texts as the machine CSV (in Danish the model's units and sources are Danish).
    for (const report of REPORTS) {
      // The tables the report has: the error names them when there are several, the file name when one.
      const whole = await get(`/api/v1/reports/${report}?site=solbakken${range(report)}&format=csv-da`);
      const tables =
        whole.status === 400
          ? (
              (await whole.json()) as { error: { details: { message: string }[] } }
            ).error.details[0]!.message.split("choose one of ")[1]!.split(", ")
          : [/-solbakken-(\w+)\.csv/.exec(whole.headers.get("content-disposition") ?? "")![1]!];
      if (whole.status !== 400) await whole.arrayBuffer();
      expect(tables.length, report).toBeGreaterThan(report === "outcomes" ? 0 : 1);
      for (const table of tables) {
        const what = `${report}/${table}`;
        const plain = parseCsv(
          await (
            await get(`/api/v1/reports/${report}?site=solbakken${range(report)}&format=csv&table=${table}`)
          ).text(),
          ",",
        );
        const res = await get(
          `/api/v1/reports/${report}?site=solbakken${range(report)}&format=csv-da&table=${table}&lang=en`,
        );
        expect(res.status, what).toBe(200);
        expect(res.headers.get("content-disposition"), what).toContain(`${report}-solbakken-${table}.csv`);
        const raw = await bytes(res);
        expect(raw[0], what).toBe(0xef);
        const danish = parseCsv(raw.subarray(3).toString("utf8"), ";");
        expect(danish.length, what).toBe(plain.length);
        for (const column of plain[0]!) expect(hasHeading(table, column), `${what}: ${column}`).toBe(true);
        for (const [r, row] of plain.slice(1).entries()) {
          const da = danish[r + 1]!;
          expect(da.length, what).toBe(row.length);
          for (const [c, value] of row.entries()) {
            const cell = da[c]!;
            const where = `${what} row ${r} ${plain[0]![c]}`;
            if (/^-?\d+(\.\d+)?(e[-+]\d+)?$/.test(value)) {
              expect(cell, where).toMatch(DANISH_NUMBER);
              expect(danishNumber(cell), where).toBe(Number(value));
            } else if (value === "true" || value === "false")
              expect(cell, where).toBe(value === "true" ? "yes" : "no");
            else if (/^\d{4}-\d{2}-\d{2}T.*Z$/.test(value)) {
              // An instant is the site's wall clock (the scenario's week crosses the end of summer time).
              const local = new Date(value).toLocaleString("sv-SE", { timeZone: SITE.timeZone }).slice(0, 16);
              expect(cell, where).toBe(local);
            } else expect(cell, where).toBe(value);
          }
        }
      }
    }
  });

  it("instants are the site's local midnights across the change from summer time; periods stay ISO dates", async () => {
    const res = await get(`/api/v1/reports/time-saved?site=solbakken${range("x")}&format=csv-da&table=trend`);
    const [header, ...rows] = parseCsv((await bytes(res)).subarray(3).toString("utf8"), ";");
    const start = header!.indexOf("Start (lokal tid)");
    const period = header!.indexOf("Periode");
    expect(rows.map((r) => r[start])).toEqual(
      ["19", "20", "21", "22", "23", "24", "25"].map((d) => `2026-10-${d} 00:00`),
    );
    expect(rows.map((r) => r[period])).toEqual(
      ["19", "20", "21", "22", "23", "24", "25"].map((d) => `2026-10-${d}`),
    );
  });

  it("a text holding a semicolon is quoted, and reads back whole", async () => {
    const res = await get("/api/v1/reports/model?site=solbakken&format=csv-da&table=model");
    const text = (await bytes(res)).subarray(3).toString("utf8");
    expect(text).toContain('"Injury 2009;40:987');
    const [header, ...rows] = parseCsv(text, ";");
    expect(header).toEqual(["Parameter", "Værdi", "Enhed", "Pladsholder", "Kilde"]);
    const ceiling = rows.find((r) => r[0] === "transferSecondsCeilingLift")!;
    expect(ceiling[1]).toBe("156,9");
    expect(ceiling[4]).toMatch(/^Injury 2009;40:987/);
    expect(rows.every((r) => r[3] === "ja" || r[3] === "nej")).toBe(true);
    // In Danish, the model's units and sources are its Danish texts, as on the dashboard.
    const json = (await (await get("/api/v1/reports/model?site=solbakken")).json()) as {
      parameters: Record<string, { da: { unit: string; source: string } }>;
    };
    expect(rows).toHaveLength(Object.keys(json.parameters).length);
    for (const r of rows)
      expect([r[2], r[4]], r[0]).toEqual([
        json.parameters[r[0]!]!.da.unit,
        json.parameters[r[0]!]!.da.source,
      ]);
  });

  it("is one table per file: a report with several tables needs table=, a report with one does not", async () => {
    const several = await get(`/api/v1/reports/time-saved?site=solbakken${range("x")}&format=csv-da`);
    expect(several.status).toBe(400);
    const problem = ((await several.json()) as { error: { details: { param: string; message: string }[] } })
      .error.details[0]!;
    expect(problem.param).toBe("table");
    expect(problem.message).toContain("by_unit, series, trend, model");
    const one = await get(`/api/v1/reports/outcomes?site=solbakken${range("x")}&format=csv-da`);
    expect(one.status).toBe(200);
    expect(one.headers.get("content-disposition")).toContain("outcomes-solbakken-by_type.csv");
    const bad = await get(`/api/v1/reports/model?site=solbakken&format=csv-da&table=model&lang=de`);
    expect(bad.status).toBe(400);
  });
});
