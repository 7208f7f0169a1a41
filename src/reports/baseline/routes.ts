/**
 * The baselines API (docs/time-model.md "Baseline: how it was before"):
 *
 *   GET  /api/v1/baselines?site=S[&unit=U]   a site's versions, newest first
 *   GET  /api/v1/baselines/:id               one version
 *   POST /api/v1/baselines                   save a new version (managers of the site, admins): 201
 *
 * Read by managers and admins with the site in their token, like the reports. A token limited to
 * units sees the whole site's baselines and its own units', and saves only its own units'. A
 * version of a site the caller may not see is "not found", not "forbidden": ids are sequential, and
 * the answer should not tell which exist.
 */
import { z } from "zod";
import { ApiError } from "../../errors.js";
import { parseQuery } from "../../http/alerts.js";
import type { RequestContext, Router } from "../../http/router.js";
import type { StaffIdentity } from "../../staff/protocol.js";
import type { Db } from "../../store/db.js";
import {
  type Baseline,
  BaselineError,
  type BaselineSite,
  checkBaselineScope,
  parseBaseline,
} from "./schema.js";
import { BaselineStore, residentLookup } from "./store.js";

export interface BaselineRoutesContext {
  db: Db;
  sites: readonly BaselineSite[];
  now?: () => number;
  /** The gateway's; one is made over `db` when absent. */
  store?: BaselineStore;
  /** Called after a save, so realised figures are recomputed against the new version. */
  saved?: (b: Baseline) => void;
}

const ROLES: readonly string[] = ["manager", "admin"];

const ListQuery = z.strictObject({
  site: z.string().min(1).max(64),
  unit: z.string().min(1).max(64).optional(),
  token: z.string().optional(),
});

function visible(staff: StaffIdentity, b: { site: string; unit?: string | undefined }): boolean {
  if (!staff.sites.includes(b.site)) return false;
  return b.unit === undefined || staff.units === null || staff.units.includes(b.unit);
}

export function baselineRoutes(router: Router, ctx: BaselineRoutesContext): void {
  const store = ctx.store ?? new BaselineStore(ctx.db, ctx.now);
  const residentOf = residentLookup(ctx.db);
  const who = (r: RequestContext) => {
    const staff = r.staff();
    if (!ROLES.includes(staff.role))
      throw new ApiError("forbidden", `baselines need one of these roles: ${ROLES.join(", ")}`);
    return staff;
  };

  router.add("GET", "/api/v1/baselines", (r) => {
    const staff = who(r);
    const q = parseQuery(ListQuery, r.query);
    if (!staff.sites.includes(q.site)) throw new ApiError("forbidden", `no access to site "${q.site}"`);
    if (q.unit !== undefined && !visible(staff, { site: q.site, unit: q.unit }))
      throw new ApiError("forbidden", `no access to unit "${q.unit}"`);
    const versions = store.list(q.site, q.unit).filter((b) => visible(staff, b));
    return { site: q.site, ...(q.unit !== undefined ? { unit: q.unit } : {}), versions };
  });

  router.add("GET", "/api/v1/baselines/:id", (r) => {
    const staff = who(r);
    const id = Number(r.params.id);
    const b: Baseline | undefined = Number.isSafeInteger(id) ? store.get(id) : undefined;
    if (!b || !visible(staff, b)) throw new ApiError("not_found", `no baseline "${r.params.id}"`);
    return b;
  });

  router.add("POST", "/api/v1/baselines", async (r) => {
    const staff = who(r);
    const raw = await r.body(z.record(z.string(), z.unknown()));
    let input: ReturnType<typeof parseBaseline>;
    try {
      // The caller is who recorded it unless the body names the person who measured.
      input = parseBaseline({ recordedBy: staff.id, ...raw });
    } catch (err) {
      if (err instanceof BaselineError) throw new ApiError("invalid_body", undefined, err.problems);
      throw err;
    }
    if (!staff.sites.includes(input.site))
      throw new ApiError("forbidden", `no access to site "${input.site}"`);
    if (staff.units !== null && (input.unit === undefined || !staff.units.includes(input.unit)))
      throw new ApiError(
        "forbidden",
        input.unit === undefined
          ? "this token is limited to units: a whole site's baseline needs a site-wide token"
          : `no access to unit "${input.unit}"`,
      );
    const problems = checkBaselineScope(input, ctx.sites, residentOf);
    if (problems.length) throw new ApiError("invalid_body", undefined, problems);
    // Every save is a new version: 201 always, as the push API's `created`.
    const saved = store.save(input, staff.id);
    ctx.saved?.(saved);
    return { created: true, baseline: saved };
  });
}
