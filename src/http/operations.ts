/**
 * Operator routes: health, readiness, metrics, device administration, dead letters.
 */
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ApiError } from "../errors.js";
import type { Presence } from "../ingest/presence.js";
import type { Metrics } from "../metrics.js";
import { type Registry, RegistryError } from "../registry/registry.js";
import { SECURITY_EVENT_KINDS, type SecurityLog } from "../security/log.js";
import type { Db } from "../store/db.js";
import { deadLetterUsage, deviceDeadLetterUsage } from "../store/dead-letter-quota.js";
import { latestRefused, type Refused, refusedCounts } from "../store/diagnostics.js";
import { parseQuery } from "./alerts.js";
import { RawReply, type RequestContext, type Router } from "./router.js";

export interface ReadinessCheck {
  name: string;
  check(): Promise<{ ok: boolean; detail?: unknown }> | { ok: boolean; detail?: unknown };
}

export interface OperationsContext {
  db: Db;
  registry: Registry;
  presence: Presence;
  metrics: Metrics;
  adminToken: string | undefined;
  readiness: ReadinessCheck[];
  /**
   * What an operator must hear about even while the gateway is ready (demo mode on a network
   * address): in /readyz, and (demo only) for the sign-in page at /api/v1/about.
   */
  notices: () => { demo: boolean; demoExposed: boolean; warnings: string[] };
  /** Device administration is an admin action: each goes to the security log. */
  security: SecurityLog;
  /** The rules running now (after the last SIGHUP reload that succeeded). */
  rules: () => readonly { id: string; description?: string | undefined; enabled: boolean }[];
}

/** The request carries exactly this bearer token (compared in constant time), or 401. */
function requireBearer(ctx: RequestContext, token: string): void {
  if (!ctx.bearer) throw new ApiError("unauthenticated");
  const a = Buffer.from(ctx.bearer);
  const b = Buffer.from(token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new ApiError("unauthenticated");
}

const NewDeviceBody = z.strictObject({
  id: z.string(),
  profile: z.string(),
  site: z.string(),
  unit: z.string(),
  room: z.string().max(64).optional(),
  resident: z.string().optional(),
  secret: z.string().min(8).optional(),
});

const SecurityLogQuery = z.strictObject({
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  kind: z
    .string()
    .refine((k) => k.split(",").every((x) => (SECURITY_EVENT_KINDS as readonly string[]).includes(x)), {
      message: `comma-separated kinds of: ${SECURITY_EVENT_KINDS.join(", ")}`,
    })
    .optional(),
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

function registryCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RegistryError) throw new ApiError(err.code, err.message);
    throw err;
  }
}

/**
 * /metrics, on the main router or on the metrics listener's own (http.metrics). When metricsToken
 * is set it answers only with that bearer token; /healthz and /readyz stay open either way.
 */
export function metricsRoutes(
  router: Router,
  ctx: { metrics: Metrics; metricsToken: string | undefined },
): void {
  router.add("GET", "/metrics", async (r) => {
    if (ctx.metricsToken) requireBearer(r, ctx.metricsToken);
    return new RawReply(200, ctx.metrics.registry.contentType, await ctx.metrics.registry.metrics());
  });
}

export function operationsRoutes(router: Router, ctx: OperationsContext): void {
  const admin = (r: RequestContext) => r.admin();
  const audit = (r: RequestContext, action: string, device: string) =>
    ctx.security.record({
      kind: "admin_action",
      actor: "admin",
      address: r.address,
      subject: device,
      detail: { action },
    });

  router.add("GET", "/healthz", () => ({ status: "ok" }));
  router.add("GET", "/readyz", async (r) => {
    const results = await Promise.all(
      ctx.readiness.map(async (c) => {
        try {
          return { name: c.name, ...(await c.check()) };
        } catch (err) {
          return { name: c.name, ok: false, detail: (err as Error).message };
        }
      }),
    );
    const ok = results.every((x) => x.ok);
    r.res.statusCode = ok ? 200 : 503;
    return new RawReply(
      ok ? 200 : 503,
      "application/json",
      JSON.stringify({
        status: ok ? "ready" : "not_ready",
        checks: results,
        warnings: ctx.notices().warnings,
      }),
    );
  });
  // Unauthenticated, for the sign-in page: whether this is the demo, and whether it is exposed.
  router.add("GET", "/api/v1/about", () => {
    const { demo, demoExposed } = ctx.notices();
    return { demo, demoExposed };
  });
  router.add("GET", "/api/v1/devices", (r) => {
    admin(r);
    return { devices: ctx.registry.list().map((d) => ({ ...d, status: ctx.presence.status(d.id) })) };
  });
  router.add("GET", "/api/v1/devices/:id", (r) => {
    admin(r);
    const d = ctx.registry.get(r.params.id!);
    if (!d) throw new ApiError("device_not_found");
    return {
      device: {
        ...d,
        status: ctx.presence.status(d.id),
        // What this device sent that was not logged as an event.
        diagnostics: refusedCounts(ctx.db, d.id, Date.now()),
      },
    };
  });
  router.add("POST", "/api/v1/devices", async (r) => {
    admin(r);
    const body = await r.body(NewDeviceBody);
    const { device, secret } = registryCall(() =>
      ctx.registry.add({
        id: body.id,
        profile: body.profile,
        siteId: body.site,
        unitId: body.unit,
        roomId: body.room ?? null,
        residentRef: body.resident ?? null,
        ...(body.secret ? { secret: body.secret } : {}),
      }),
    );
    audit(r, "device_added", device.id);
    return { created: true, device, ...(secret ? { secret } : {}) };
  });
  router.add("POST", "/api/v1/devices/:id/disable", (r) => {
    admin(r);
    const device = registryCall(() => ctx.registry.setEnabled(r.params.id!, false));
    audit(r, "device_disabled", device.id);
    return { device };
  });
  router.add("POST", "/api/v1/devices/:id/enable", (r) => {
    admin(r);
    const device = registryCall(() => ctx.registry.setEnabled(r.params.id!, true));
    audit(r, "device_enabled", device.id);
    return { device };
  });
  router.add("POST", "/api/v1/devices/:id/rotate-secret", (r) => {
    admin(r);
    const secret = registryCall(() => ctx.registry.rotateSecret(r.params.id!));
    audit(r, "device_secret_rotated", r.params.id!);
    return { secret };
  });
  // The security log, newest first; page back with ?before=<id of the last row seen>.
  router.add("GET", "/api/v1/security-log", (r) => {
    admin(r);
    const q = parseQuery(SecurityLogQuery, r.query);
    return {
      events: ctx.security.list({
        ...(q.since ? { since: Date.parse(q.since) } : {}),
        ...(q.until ? { until: Date.parse(q.until) } : {}),
        ...(q.before ? { beforeId: q.before } : {}),
        ...(q.kind ? { kinds: q.kind.split(",") } : {}),
        limit: q.limit,
      }),
    };
  });
  router.add("GET", "/api/v1/rules", (r) => {
    admin(r);
    return {
      rules: ctx.rules().map((x) => ({ id: x.id, description: x.description ?? null, enabled: x.enabled })),
    };
  });
  const refused = (path: string, kind: Refused, key: string, extra?: (device: string | null) => object) =>
    router.add("GET", path, (r) => {
      admin(r);
      const limit = Math.min(Number(r.query.get("limit") ?? 100) || 100, 1000);
      const device = r.query.get("device");
      return { [key]: latestRefused(ctx.db, kind, { device, limit }), ...extra?.(device) };
    });
  refused("/api/v1/duplicates", "duplicates", "duplicates");
  // With the store's quotas, what it holds (the device's share when asked for one) and what the
  // quotas deleted.
  refused("/api/v1/dead-letters", "dead_letters", "deadLetters", (device) => ({
    usage: {
      ...deadLetterUsage(ctx.db),
      ...(device ? { device: { id: device, ...deviceDeadLetterUsage(ctx.db, device) } } : {}),
    },
  }));
}
