/**
 * The reports API (docs/reports-api.md): time saved, response times, alert volume, false alarms,
 * coverage, quality (falls, time on the floor, lifts) and the model's assumptions, as JSON, machine
 * CSV or a Danish spreadsheet's CSV, scoped by the caller's staff token (its sites, and its units
 * when the token names units).
 */
import { z } from "zod";
import { ApiError } from "../errors.js";
import { parseQuery } from "../http/alerts.js";
import { RawReply, type RequestContext, type Router } from "../http/router.js";
import type { StaffIdentity } from "../staff/protocol.js";
import { addDays, DAY, dayWindow, isDate, localDate, startOfLocalDay } from "../time/zone.js";
import { type BenefitsContext, benefitsReport } from "./benefits.js";
import { spreadsheetCsv, tableCsv, tablesCsv } from "./csv.js";
import { outcomesReport } from "./outcomes.js";
import { qualityReport } from "./quality.js";
import {
  alertVolumeReport,
  coverageReport,
  falseAlarmReport,
  modelReport,
  type RangeOf,
  type ReportSite,
  responseTimesReport,
  type Scope,
  type Table,
  timeSavedReport,
} from "./queries.js";
import type { TimeSavedJob } from "./timesaved.js";

export interface ReportRoutesContext extends BenefitsContext {
  /** When given, POST /api/v1/reports/time-saved/recompute is offered to managers and admins. */
  job?: TimeSavedJob;
  /** Token roles that may read reports; default manager and admin (the dashboard's audience). */
  roles?: readonly string[];
}

export const DEFAULT_REPORT_ROLES: readonly string[] = ["manager", "admin"];

/** Longest range one request may cover. */
export const MAX_RANGE_DAYS = 1100;
/** Days covered when `from` is not given. */
export const DEFAULT_RANGE_DAYS = 30;

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const DateOrInstant = z
  .string()
  .refine(
    (s) => (isDate(s) ? true : INSTANT.test(s) && !Number.isNaN(Date.parse(s))),
    "a local date YYYY-MM-DD or an ISO 8601 instant with offset (2026-10-01T00:00:00+02:00)",
  );

const common = {
  site: z.string().min(1).max(64).optional(),
  unit: z.string().min(1).max(64).optional(),
  from: DateOrInstant.optional(),
  to: DateOrInstant.optional(),
  format: z.enum(["json", "csv", "csv-da"]).default("json"),
  table: z.string().max(64).optional(),
  /** Headings of format=csv-da. */
  lang: z.enum(["da", "en"]).default("da"),
  // Read by the router as a bearer token when there is no Authorization header.
  token: z.string().optional(),
};
const RangeQuery = z.strictObject(common);
const TimeSavedQuery = z.strictObject({
  ...common,
  interval: z.enum(["day", "week", "month"]).default("day"),
});
const ModelQuery = z.strictObject({
  site: common.site,
  format: common.format,
  table: common.table,
  lang: common.lang,
  token: common.token,
});
const RecomputeBody = z.strictObject({
  site: z.string().min(1),
  from: z.string().refine(isDate, "a local date YYYY-MM-DD"),
  to: z.string().refine(isDate, "a local date YYYY-MM-DD"),
});

interface Problem {
  param: string;
  message: string;
}

function invalid(problems: Problem[]): never {
  throw new ApiError("invalid_query", undefined, problems);
}

/** The sites and units the caller asked for, within what their token grants. */
function resolveScope(
  ctx: ReportRoutesContext,
  staff: StaffIdentity,
  q: { site?: string | undefined; unit?: string | undefined },
): Scope {
  let sites: ReportSite[];
  if (q.site !== undefined) {
    if (!staff.sites.includes(q.site)) throw new ApiError("forbidden", `no access to site "${q.site}"`);
    const site = ctx.sites.find((s) => s.id === q.site);
    if (!site) invalid([{ param: "site", message: `unknown site "${q.site}"` }]);
    sites = [site];
  } else {
    sites = ctx.sites.filter((s) => staff.sites.includes(s.id));
    if (sites.length === 0) throw new ApiError("forbidden", "the token grants no configured site");
  }
  let units: readonly string[] | null = staff.units;
  if (q.unit !== undefined) {
    if (!sites.some((s) => s.units.some((u) => u.id === q.unit)))
      invalid([
        { param: "unit", message: `unknown unit "${q.unit}"${q.site ? ` in site "${q.site}"` : ""}` },
      ]);
    if (staff.units && !staff.units.includes(q.unit))
      throw new ApiError("forbidden", `no access to unit "${q.unit}"`);
    units = [q.unit];
  }
  return { sites, units };
}

function instant(value: string, tz: string): number {
  return isDate(value) ? startOfLocalDay(value, tz) : Date.parse(value);
}

/**
 * [from, to) per site: dates are local midnights of the site; `to` defaults to the end of today and
 * `from` to 30 local days before `to`. Every problem is reported at once.
 */
function resolveRange(
  scope: Scope,
  q: { from?: string | undefined; to?: string | undefined },
  now: number,
): RangeOf {
  const ranges = new Map<string, { from: number; to: number }>();
  const problems: Problem[] = [];
  for (const site of scope.sites) {
    const tz = site.timeZone;
    const to = q.to !== undefined ? instant(q.to, tz) : dayWindow(localDate(now, tz), tz)[1];
    const from =
      q.from !== undefined
        ? instant(q.from, tz)
        : startOfLocalDay(addDays(localDate(to - 1, tz), 1 - DEFAULT_RANGE_DAYS), tz);
    if (from >= to) {
      problems.push({ param: q.to !== undefined ? "to" : "from", message: "from must be before to" });
      break;
    }
    if (to - from > MAX_RANGE_DAYS * DAY) {
      problems.push({ param: "from", message: `the range may cover at most ${MAX_RANGE_DAYS} days` });
      break;
    }
    ranges.set(site.id, { from, to });
  }
  if (problems.length > 0) invalid(problems);
  return (site) => ranges.get(site.id)!;
}

function reply(
  name: string,
  q: {
    format: "json" | "csv" | "csv-da";
    table?: string | undefined;
    site?: string | undefined;
    lang: "da" | "en";
  },
  report: { body: unknown; tables: Table[] },
  scope: Scope,
) {
  if (q.table !== undefined && !report.tables.some((t) => t.name === q.table)) {
    invalid([
      {
        param: "table",
        message: `unknown table "${q.table}"; this report has ${report.tables.map((t) => t.name).join(", ")}`,
      },
    ]);
  }
  if (q.format === "json") return report.body;
  const tables = q.table !== undefined ? report.tables.filter((t) => t.name === q.table) : report.tables;
  let body: string;
  if (q.format === "csv-da") {
    // A spreadsheet has no place for a second header row: one table per file.
    if (tables.length !== 1)
      invalid([
        {
          param: "table",
          message: `format=csv-da is one table per file; choose one of ${report.tables.map((t) => t.name).join(", ")}`,
        },
      ]);
    const zones = new Map(scope.sites.map((s) => [s.id, s.timeZone]));
    const fallback = scope.sites[0]?.timeZone ?? "UTC";
    body = spreadsheetCsv(tables[0]!, {
      lang: q.lang,
      timeZoneOf: (site) => (site !== undefined ? zones.get(site) : undefined) ?? fallback,
    });
  } else body = tables.length === 1 ? tableCsv(tables[0]!) : tablesCsv(tables);
  const file = [name, q.site ?? "all", q.format === "csv-da" ? tables[0]!.name : q.table]
    .filter(Boolean)
    .join("-");
  return new RawReply(200, "text/csv; charset=utf-8", body, {
    "content-disposition": `attachment; filename="${file}.csv"`,
    "cache-control": "no-store",
  });
}

export function reportRoutes(router: Router, ctx: ReportRoutesContext): void {
  const now = () => (ctx.now ?? Date.now)();
  const roles = ctx.roles ?? DEFAULT_REPORT_ROLES;
  const who = (r: RequestContext) => {
    const staff = r.staff();
    if (!roles.includes(staff.role))
      throw new ApiError("forbidden", `reports need one of these roles: ${roles.join(", ")}`);
    return staff;
  };

  const rangeReport = (
    name: string,
    run: (
      scope: Scope,
      rangeOf: RangeOf,
    ) => { body: unknown; tables: Table[] } | Promise<{ body: unknown; tables: Table[] }>,
  ) =>
    router.add("GET", `/api/v1/reports/${name}`, async (r) => {
      const staff = who(r);
      const q = parseQuery(RangeQuery, r.query);
      const scope = resolveScope(ctx, staff, q);
      return reply(name, q, await run(scope, resolveRange(scope, q, now())), scope);
    });

  router.add("GET", "/api/v1/reports/time-saved", async (r) => {
    const staff = who(r);
    const q = parseQuery(TimeSavedQuery, r.query);
    const scope = resolveScope(ctx, staff, q);
    const report = await timeSavedReport(ctx, scope, resolveRange(scope, q, now()), q.interval);
    return reply("time-saved", q, report, scope);
  });
  rangeReport("response-times", (scope, range) => responseTimesReport(ctx, scope, range));
  rangeReport("alert-volume", (scope, range) => alertVolumeReport(ctx, scope, range));
  rangeReport("false-alarms", (scope, range) => falseAlarmReport(ctx, scope, range));
  rangeReport("outcomes", (scope, range) => outcomesReport(ctx, scope, range));
  rangeReport("coverage", (scope, range) => coverageReport(ctx, scope, range));
  rangeReport("quality", (scope, range) => qualityReport(ctx, scope, range));
  rangeReport("benefits", (scope, range) => benefitsReport(ctx, scope, range));

  router.add("GET", "/api/v1/reports/model", (r) => {
    const staff = who(r);
    const q = parseQuery(ModelQuery, r.query);
    const scope = resolveScope(ctx, staff, q);
    return reply("model", q, modelReport(ctx, scope), scope);
  });

  const job = ctx.job;
  if (job) {
    router.add("POST", "/api/v1/reports/time-saved/recompute", async (r) => {
      const staff = who(r);
      if (staff.role !== "manager" && staff.role !== "admin")
        throw new ApiError("forbidden", "recomputing needs a manager or admin token");
      const b = await r.body(RecomputeBody);
      if (!staff.sites.includes(b.site)) throw new ApiError("forbidden", `no access to site "${b.site}"`);
      if (!ctx.sites.some((s) => s.id === b.site))
        throw new ApiError("invalid_body", undefined, [
          { path: "site", message: `unknown site "${b.site}"` },
        ]);
      if (b.from >= b.to)
        throw new ApiError("invalid_body", undefined, [{ path: "to", message: "from must be before to" }]);
      if ((Date.parse(b.to) - Date.parse(b.from)) / DAY > MAX_RANGE_DAYS)
        throw new ApiError("invalid_body", undefined, [
          { path: "from", message: `the range may cover at most ${MAX_RANGE_DAYS} days` },
        ]);
      return { recomputed: await job.recompute(b.site, b.from, b.to) };
    });
  }
}
