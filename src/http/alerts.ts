import { z } from "zod";
import { type AlertManager, alertVisibleTo, view } from "../alerts/manager.js";
import type { AlertView } from "../alerts/model.js";
import { ALERT_STATES, type AuditEntry, Outcome } from "../alerts/model.js";
import { outcomeCatalogue } from "../alerts/outcomes.js";
import type { AlertHistory } from "../alerts/store.js";
import { ApiError } from "../errors.js";
import { PRIORITIES } from "../model/event.js";
import type { MaintenanceSchedule } from "../rules/maintenance.js";
import { placesInScope, type SiteCatalogueEntry, type StaffIdentity } from "../staff/protocol.js";
import type { RequestContext, Router } from "./router.js";

/**
 * What staff do to an alert: the alert manager itself in one process; in cluster mode a command
 * carried to the node that owns the alert's partition (src/cluster/staff-alerts.ts `actions`).
 */
export type AlertActions = {
  [K in "accept" | "received" | "attend" | "reject" | "resolve" | "comment"]: (
    ...args: Parameters<AlertManager[K]>
  ) => AlertView | Promise<AlertView>;
};

export interface AlertRoutesContext {
  /** Maintenance windows of any site, listed, opened and ended. */
  maintenance: MaintenanceSchedule;
  alerts: AlertActions;
  /** The alerts and their audit as the API lists them, closed ones included. */
  history: AlertHistory;
  /** The configured sites and units with their names, for /me. */
  places?: readonly SiteCatalogueEntry[];
}

const ListQuery = z.strictObject({
  state: z.union([z.enum(ALERT_STATES), z.literal("open"), z.literal("closed")]).optional(),
  site: z.string().optional(),
  unit: z.string().optional(),
  priority: z.enum(PRIORITIES).optional(),
  type: z.string().optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

export function parseQuery<T>(schema: z.ZodType<T>, q: URLSearchParams): T {
  const parsed = schema.safeParse(Object.fromEntries(q));
  if (!parsed.success)
    throw new ApiError(
      "invalid_query",
      undefined,
      parsed.error.issues.map((i) => ({
        param: i.path.join(".") || String((i as { keys?: string[] }).keys?.[0] ?? ""),
        message: i.message,
      })),
    );
  return parsed.data;
}

/** Seconds from raise to accept / attend / resolve, derived from the audit log. */
export function responseTimes(history: AuditEntry[]): {
  toAcceptSec: number | null;
  toAttendSec: number | null;
  toResolveSec: number | null;
} {
  const at = (action: string) => history.find((h) => h.action === action)?.at;
  const raised = at("raised");
  const since = (t: string | undefined) => (raised && t ? (Date.parse(t) - Date.parse(raised)) / 1000 : null);
  return {
    toAcceptSec: since(at("accepted")),
    toAttendSec: since(at("attending")),
    toResolveSec: since(at("resolved")),
  };
}

const ResolveBody = z.strictObject({ outcome: Outcome, note: z.string().max(2000).optional() });
const RejectBody = z.strictObject({ reason: z.string().max(500).optional() });
const CommentBody = z.strictObject({ text: z.string().min(1).max(2000) });
const MaintenanceBody = z
  .strictObject({
    site: z.string(),
    device: z.string().optional(),
    room: z.string().optional(),
    minutes: z
      .number()
      .int()
      .min(1)
      .max(60 * 24 * 30),
    reason: z.string().min(3).max(500),
  })
  .refine((b) => Boolean(b.device) !== Boolean(b.room), { message: "give either device or room" });

export function alertRoutes(router: Router, ctx: AlertRoutesContext): void {
  const who = (r: RequestContext) => r.staff();

  router.add("GET", "/api/v1/me", (r) => {
    const staff = who(r);
    return { staff, places: placesInScope(ctx.places ?? [], staff), outcomes: outcomeCatalogue() };
  });

  router.add("GET", "/api/v1/alerts", async (r) => {
    const staff = who(r);
    const q = parseQuery(ListQuery, r.query);
    if (q.site && !staff.sites.includes(q.site))
      throw new ApiError("forbidden", `no access to site "${q.site}"`);
    // The seq before the listing: a change committed between the two reads (possible once they are
    // two queries to PostgreSQL) is then replayed on resume, never skipped.
    const seq = await ctx.history.head();
    const rows = await ctx.history.find({
      siteIds: q.site ? [q.site] : staff.sites,
      ...(q.state ? { state: q.state } : {}),
      ...(q.unit ? { unitId: q.unit } : {}),
      ...(q.priority ? { priority: q.priority } : {}),
      ...(q.type ? { type: q.type } : {}),
      ...(q.from ? { from: Date.parse(q.from) } : {}),
      ...(q.to ? { to: Date.parse(q.to) } : {}),
      limit: q.limit,
    });
    const alerts = rows.filter((row) => alertVisibleTo(row, staff)).map(view);
    return { alerts, seq };
  });

  router.add("GET", "/api/v1/alerts/:id", async (r) => {
    const staff = who(r);
    const found = await ctx.history.withAudit(r.params.id!);
    if (!found || !alertVisibleTo(found.alert, staff)) throw new ApiError("alert_not_found");
    const history = found.audit;
    return { alert: view(found.alert), history, responseTimes: responseTimes(history) };
  });

  const action = (
    name: string,
    run: (id: string, staff: StaffIdentity, r: RequestContext) => Promise<unknown> | unknown,
  ) =>
    router.add("POST", `/api/v1/alerts/:id/${name}`, async (r) => ({
      alert: await run(r.params.id!, who(r), r),
    }));
  action("accept", (id, s) => ctx.alerts.accept(id, s));
  action("received", (id, s) => ctx.alerts.received(id, s));
  action("attend", (id, s) => ctx.alerts.attend(id, s));
  action("reject", async (id, s, r) => ctx.alerts.reject(id, s, (await r.body(RejectBody)).reason));
  action("resolve", async (id, s, r) => {
    const b = await r.body(ResolveBody);
    return ctx.alerts.resolve(id, s, b.outcome, b.note);
  });
  action("comment", async (id, s, r) => ctx.alerts.comment(id, s, (await r.body(CommentBody)).text));

  router.add("GET", "/api/v1/maintenance", async (r) => {
    const staff = who(r);
    const rows = await ctx.maintenance.current(staff.sites, Date.now());
    return {
      maintenance: rows.map((m) => ({
        ...m,
        starts_at: new Date(m.starts_at).toISOString(),
        ends_at: new Date(m.ends_at).toISOString(),
        created_at: new Date(m.created_at).toISOString(),
      })),
    };
  });
  router.add("POST", "/api/v1/maintenance", async (r) => {
    const staff = who(r);
    if (staff.role === "staff")
      throw new ApiError("forbidden", "maintenance mode needs a nurse, manager or admin token");
    const b = await r.body(MaintenanceBody);
    if (!staff.sites.includes(b.site)) throw new ApiError("forbidden", `no access to site "${b.site}"`);
    const now = Date.now();
    const id = await ctx.maintenance.open({
      siteId: b.site,
      deviceId: b.device ?? null,
      roomId: b.room ?? null,
      startsAt: now,
      endsAt: now + b.minutes * 60_000,
      reason: b.reason,
      createdBy: staff.name,
      createdAt: now,
    });
    return {
      created: true,
      id,
      endsAt: new Date(now + b.minutes * 60_000).toISOString(),
    };
  });
  router.add("DELETE", "/api/v1/maintenance/:id", async (r) => {
    const staff = who(r);
    if (staff.role === "staff") throw new ApiError("forbidden");
    const changed = await ctx.maintenance.end(Number(r.params.id), staff.sites, Date.now());
    if (!changed) throw new ApiError("not_found", "no active maintenance window with that id in your sites");
    return { ended: true };
  });
}
