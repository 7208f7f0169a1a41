import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Router } from "../../src/http/router.js";
import { HttpServer } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { reportRoutes } from "../../src/reports/routes.js";
import { TimeSavedJob } from "../../src/reports/timesaved.js";
import { SecurityLog } from "../../src/security/log.js";
import { StaffAuth } from "../../src/security/staff-auth.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import { addDevice, addEvent, PROFILES, shippedModel, tempDb } from "./fixtures.js";
import { AFTER_WEEK, buildScenario, OVERRIDES, SITE, WEEK, WEEK_TOTAL } from "./scenario.js";

const ADMIN = "admin-token-0123456789abcdef";
const MANAGER = "manager-solbakken-0123456789";
const OTHER_MANAGER = "manager-other-0123456789";
const LEADER_A = "leader-unit-a-0123456789";
const CARER = "carer-solbakken-0123456789";
const OTHER = { id: "other", timeZone: "America/New_York", units: [{ id: "x", rooms: ["x-1"] }] };

/** RFC 4180 rows (quotes, doubled quotes, CRLF); blank lines kept as []. */
function parseCsv(text: string): string[][] {
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
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row.length === 1 && row[0] === "" ? [] : row);
      row = [];
      cell = "";
      i++;
    } else cell += c;
  }
  if (cell !== "" || row.length > 0) rows.push([...row, cell]);
  return rows;
}

describe("reports API over HTTP", () => {
  let t: ReturnType<typeof tempDb>;
  let store: EmbeddedSeriesStore;
  let http: HttpServer;
  let base: string;

  beforeAll(async () => {
    t = tempDb();
    buildScenario(t.db);
    addDevice(t.db, { id: "radar-x", profile: "acme/radar", site: "other", unit: "x", room: "x-1" });
    addEvent(t.db, {
      device: "radar-x",
      type: "device.online",
      at: Date.parse("2026-10-18T12:00:00Z"),
      site: "other",
      unit: "x",
      room: "x-1",
    });
    const tokens = new TokenStore(t.db);
    tokens.create({ name: "Mette", role: "manager", sites: ["solbakken"], token: MANAGER });
    tokens.create({ name: "Ole", role: "manager", sites: ["other"], token: OTHER_MANAGER });
    tokens.create({ name: "Anna", role: "manager", sites: ["solbakken"], units: ["a"], token: LEADER_A });
    tokens.create({ name: "Bo", role: "staff", sites: ["solbakken"], token: CARER });
    store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    const model = shippedModel(OVERRIDES);
    const sites = [SITE, OTHER];
    const job = new TimeSavedJob({
      db: t.db,
      store,
      model,
      sites,
      profiles: PROFILES,
      now: () => AFTER_WEEK,
    });
    await job.recompute(SITE.id, WEEK.from, WEEK.to);
    await job.recompute(OTHER.id, WEEK.from, WEEK.to);
    const auth = new StaffAuth({
      tokens,
      adminToken: ADMIN,
      allSites: () => sites.map((s) => s.id),
      security: new SecurityLog(t.db, silentLogger()),
      options: { maxFailures: 20, windowSec: 60 },
    });
    const router = new Router(silentLogger(), null, auth);
    reportRoutes(router, {
      db: t.db,
      store,
      model,
      sites,
      profiles: PROFILES,
      job,
      now: () => AFTER_WEEK,
    });
    http = new HttpServer(router, silentLogger(), { host: "127.0.0.1", port: 0 });
    await http.start();
    base = `http://127.0.0.1:${http.port}`;
  });
  afterAll(async () => {
    await http.stop();
    await store.stop();
    t.close();
  });

  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const json = async (path: string, token?: string) => {
    const res = await get(path, token);
    // biome-ignore lint/suspicious/noExplicitAny: bodies of six report shapes, each checked field by field
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const week = `from=${WEEK.from}&to=${WEEK.to}`;

  it("refuses a request without a token (401) and a manager asking for another site (403)", async () => {
    expect((await json(`/api/v1/reports/time-saved?site=solbakken&${week}`)).status).toBe(401);
    const other = await json(`/api/v1/reports/time-saved?site=other&${week}`, MANAGER);
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe("forbidden");
    for (const report of ["response-times", "alert-volume", "false-alarms", "coverage", "model"]) {
      expect((await json(`/api/v1/reports/${report}?site=other`, MANAGER)).status, report).toBe(403);
    }
  });

  it("a manager sees the week's time saved of their own site, with the model it used", async () => {
    const { status, body } = await json(`/api/v1/reports/time-saved?site=solbakken&${week}`, MANAGER);
    expect(status).toBe(200);
    expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
    expect(body.model.version).toBe("2026.1");
    expect(body.model.parameters.nightChecksPerResident).toMatchObject({
      value: 2.5,
      unit: "checks per resident per night",
      range: [2, 3],
    });
    expect(body.model.parameters.nightChecksPerResident.source).toContain("Kepler");
  });

  it("without a site the report covers the token's sites only; the admin token covers all", async () => {
    const mine = await json(`/api/v1/reports/time-saved?${week}`, MANAGER);
    expect(mine.body.ranges.map((r: { site: string }) => r.site)).toEqual(["solbakken"]);
    const all = await json(`/api/v1/reports/time-saved?${week}`, ADMIN);
    expect(all.body.ranges.map((r: { site: string }) => r.site)).toEqual(["solbakken", "other"]);
    // Dates are local midnights of each site: New York is 4 hours behind UTC in October.
    expect(all.body.ranges[1]).toMatchObject({
      from: "2026-10-19T04:00:00.000Z",
      timeZone: "America/New_York",
    });
    expect(all.body.byUnit.map((u: { site: string; unit: string }) => `${u.site}/${u.unit}`)).toEqual([
      "other/x",
      "solbakken/a",
      "solbakken/b",
    ]);
  });

  it("a care worker's token is refused: reports are for managers", async () => {
    const res = await json(`/api/v1/reports/time-saved?site=solbakken&${week}`, CARER);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
  });

  it("a unit leader's token limited to unit a sees unit a only, and 403 for unit b", async () => {
    const mine = await json(`/api/v1/reports/time-saved?${week}`, LEADER_A);
    expect(mine.body.byUnit.map((u: { unit: string }) => u.unit)).toEqual(["a"]);
    expect((await json(`/api/v1/reports/time-saved?unit=b&${week}`, LEADER_A)).status).toBe(403);
    const volume = await json(`/api/v1/reports/alert-volume?${week}`, LEADER_A);
    expect(volume.body.byUnit.map((u: { unit: string }) => u.unit)).toEqual(["a"]);
  });

  it("bad parameters get 400 invalid_query with the problem per parameter", async () => {
    const { status, body } = await json(
      "/api/v1/reports/time-saved?site=solbakken&from=yesterday&to=2026-02-30&interval=year&colour=red",
      MANAGER,
    );
    expect(status).toBe(400);
    expect(body.error.code).toBe("invalid_query");
    const params = body.error.details.map((d: { param: string }) => d.param).sort();
    expect(params).toEqual(["colour", "from", "interval", "to"]);
    for (const d of body.error.details) expect(d.message).toEqual(expect.any(String));

    const backwards = await json(
      `/api/v1/reports/response-times?site=solbakken&from=2026-10-26&to=2026-10-19`,
      MANAGER,
    );
    expect(backwards.status).toBe(400);
    expect(backwards.body.error.details).toEqual([{ param: "to", message: "from must be before to" }]);
    const unit = await json(`/api/v1/reports/coverage?site=solbakken&unit=zz`, MANAGER);
    expect(unit.status).toBe(400);
    expect(unit.body.error.details[0].param).toBe("unit");
    const long = await json(
      `/api/v1/reports/alert-volume?site=solbakken&from=2020-01-01&to=2026-01-01`,
      MANAGER,
    );
    expect(long.body.error.details[0].param).toBe("from");
    const table = await json(`/api/v1/reports/coverage?site=solbakken&format=csv&table=nope`, MANAGER);
    expect(table.body.error.details[0].param).toBe("table");
  });

  it("CSV of one table: a header row, then the same figures as the JSON", async () => {
    const res = await get(
      `/api/v1/reports/time-saved?site=solbakken&${week}&format=csv&table=by_unit`,
      MANAGER,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toContain("time-saved-solbakken-by_unit.csv");
    const rows = parseCsv(await res.text());
    const [header, ...data] = rows;
    expect(header?.slice(0, 4)).toEqual(["site", "unit", "net_minutes", "net_hours"]);
    expect(data).toHaveLength(2);
    const a = Object.fromEntries(header!.map((h, i) => [h, data[0]![i]]));
    expect(a).toMatchObject({
      site: "solbakken",
      unit: "a",
      net_minutes: "96.525",
      night_supervision_minutes: "72",
      lift_transfers_count: "5",
      false_alarms_minutes: "-14",
    });
  });

  it("CSV of every report: each table has its own header row, and each row names its table", async () => {
    for (const report of [
      "time-saved",
      "response-times",
      "alert-volume",
      "false-alarms",
      "coverage",
      "model",
    ]) {
      const res = await get(
        `/api/v1/reports/${report}?site=solbakken&${report === "model" ? "" : week}&format=csv`,
        MANAGER,
      );
      expect(res.status, report).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
      const rows = parseCsv(await res.text());
      // Sections are separated by one empty row.
      const sections: string[][][] = [[]];
      for (const row of rows) {
        if (row.length === 0) sections.push([]);
        else sections[sections.length - 1]!.push(row);
      }
      expect(sections.length, report).toBeGreaterThanOrEqual(2);
      for (const [header, ...data] of sections) {
        expect(header?.[0], report).toBe("table");
        for (const row of data) {
          expect(row.length).toBe(header!.length);
          expect(row[0]).toBe(data[0]![0]);
        }
      }
      const names = sections.map((s) => s[1]?.[0]).filter(Boolean);
      expect(names, report).toContain("model");
    }
  });

  it("every report names the model version and parameters it used", async () => {
    for (const report of ["time-saved", "response-times", "alert-volume", "false-alarms", "coverage"]) {
      const { status, body } = await json(`/api/v1/reports/${report}?site=solbakken&${week}`, MANAGER);
      expect(status, report).toBe(200);
      expect(body.model.version).toBe("2026.1");
      expect(Object.keys(body.model.parameters)).toContain("minutesPerNightCheck");
    }
  });

  it("the model endpoint lists every parameter with value, unit and source, and labels placeholders", async () => {
    const { body } = await json("/api/v1/reports/model?site=solbakken", MANAGER);
    const params = body.parameters as Record<string, Record<string, unknown>>;
    expect(Object.keys(params).sort()).toEqual(
      [
        "liftMinutesSavedPerTransfer",
        "minutesPerAvoidedVisit",
        "minutesPerFalseAlarm",
        "minutesPerNightCheck",
        "nightChecksPerResident",
        "nightEnd",
        "nightStart",
        "oneHelperTransferShare",
        "transferSecondsCeilingLift",
        "transferSecondsFloorLift",
        "visitMergeMinutes",
      ].sort(),
    );
    for (const [key, p] of Object.entries(params)) {
      expect(p.value, key).toBeDefined();
      expect(p.unit, key).toEqual(expect.any(String));
      expect(p.source, key).toEqual(expect.any(String));
    }
    // Solbakken set 4 minutes without saying how it measured them: still a placeholder.
    expect(params.minutesPerNightCheck).toMatchObject({
      value: 4,
      placeholder: true,
      label: "placeholder — measure on site",
      siteOverride: true,
    });
    expect(params.liftMinutesSavedPerTransfer?.source).toContain("derived");
    expect(params.transferSecondsFloorLift).toMatchObject({
      value: 273.6,
      source: expect.stringContaining("Injury 2009;40:987"),
    });
    expect(params.oneHelperTransferShare).toMatchObject({ range: [0.6, 0.74], usedFor: "plausibility" });
    expect(body.model.references.length).toBeGreaterThan(0);
  });

  it("a manager can recompute a range of their site; a care worker cannot", async () => {
    const post = (token: string, body: unknown) =>
      fetch(`${base}/api/v1/reports/time-saved/recompute`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await post(MANAGER, { site: "solbakken", from: "2026-10-19", to: "2026-10-21" });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { recomputed: { days: number } }).recomputed.days).toBe(2);
    expect((await post(CARER, { site: "solbakken", from: "2026-10-19", to: "2026-10-21" })).status).toBe(403);
    expect((await post(MANAGER, { site: "other", from: "2026-10-19", to: "2026-10-21" })).status).toBe(403);
    const { body } = await json(`/api/v1/reports/time-saved?site=solbakken&${week}`, MANAGER);
    expect(body.totals.minutes).toBe(WEEK_TOTAL.net);
  });
});
