/**
 * Operator routes: health, readiness, metrics, device administration, dead letters.
 */
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ApiError } from "../errors.js";
import type { Presence } from "../ingest/presence.js";
import type { Metrics } from "../metrics.js";
import { type Registry, RegistryError } from "../registry/registry.js";
import type { Db } from "../store/db.js";
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
  /** The rules running now (after the last SIGHUP reload that succeeded). */
  rules: () => readonly { id: string; description?: string | undefined; enabled: boolean }[];
}

export function requireAdmin(ctx: RequestContext, adminToken: string | undefined): void {
  if (!adminToken)
    throw new ApiError("forbidden", "the admin API is disabled: set http.adminToken (ATA_ADMIN_TOKEN)");
  if (!ctx.bearer) throw new ApiError("unauthenticated");
  const a = Buffer.from(ctx.bearer);
  const b = Buffer.from(adminToken);
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

function registryCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RegistryError) throw new ApiError(err.code, err.message);
    throw err;
  }
}

export function operationsRoutes(router: Router, ctx: OperationsContext): void {
  const admin = (r: RequestContext) => requireAdmin(r, ctx.adminToken);

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
      JSON.stringify({ status: ok ? "ready" : "not_ready", checks: results }),
    );
  });
  router.add(
    "GET",
    "/metrics",
    async () => new RawReply(200, ctx.metrics.registry.contentType, await ctx.metrics.registry.metrics()),
  );

  router.add("GET", "/api/v1/devices", (r) => {
    admin(r);
    return { devices: ctx.registry.list().map((d) => ({ ...d, status: ctx.presence.status(d.id) })) };
  });
  router.add("GET", "/api/v1/devices/:id", (r) => {
    admin(r);
    const d = ctx.registry.get(r.params.id!);
    if (!d) throw new ApiError("device_not_found");
    // What this device sent that was not logged as an event: dead letters and dropped duplicates.
    const counts = (sql: string) =>
      ctx.db.prepare(sql).get({ device: d.id, since: Date.now() - 86_400_000 }) as {
        total: number;
        day: number;
      };
    return {
      device: {
        ...d,
        status: ctx.presence.status(d.id),
        diagnostics: {
          deadLetters: counts(
            "SELECT count(*) AS total, count(*) FILTER (WHERE received_at >= @since) AS day FROM dead_letters WHERE device_id = @device",
          ),
          duplicates: counts(
            "SELECT count(*) AS total, count(*) FILTER (WHERE received_at >= @since) AS day FROM duplicates WHERE device_id = @device",
          ),
        },
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
    return { created: true, device, ...(secret ? { secret } : {}) };
  });
  router.add("POST", "/api/v1/devices/:id/disable", (r) => {
    admin(r);
    return { device: registryCall(() => ctx.registry.setEnabled(r.params.id!, false)) };
  });
  router.add("POST", "/api/v1/devices/:id/enable", (r) => {
    admin(r);
    return { device: registryCall(() => ctx.registry.setEnabled(r.params.id!, true)) };
  });
  router.add("POST", "/api/v1/devices/:id/rotate-secret", (r) => {
    admin(r);
    return { secret: registryCall(() => ctx.registry.rotateSecret(r.params.id!)) };
  });
  router.add("GET", "/api/v1/rules", (r) => {
    admin(r);
    return {
      rules: ctx.rules().map((x) => ({ id: x.id, description: x.description ?? null, enabled: x.enabled })),
    };
  });
  router.add("GET", "/api/v1/duplicates", (r) => {
    admin(r);
    const limit = Math.min(Number(r.query.get("limit") ?? 100) || 100, 1000);
    const device = r.query.get("device");
    const rows = ctx.db
      .prepare(
        `SELECT id, received_at, device_id, event_id, topic, reason FROM duplicates
         ${device ? "WHERE device_id = ?" : ""} ORDER BY id DESC LIMIT ?`,
      )
      .all(...(device ? [device, limit] : [limit])) as Record<string, unknown>[];
    return {
      duplicates: rows.map((x) => ({ ...x, received_at: new Date(x.received_at as number).toISOString() })),
    };
  });
  router.add("GET", "/api/v1/dead-letters", (r) => {
    admin(r);
    const limit = Math.min(Number(r.query.get("limit") ?? 100) || 100, 1000);
    const device = r.query.get("device");
    const rows = ctx.db
      .prepare(
        `SELECT id, received_at, device_id, topic, code, reason, size, sha256, truncated FROM dead_letters
         ${device ? "WHERE device_id = ?" : ""} ORDER BY id DESC LIMIT ?`,
      )
      .all(...(device ? [device, limit] : [limit])) as Record<string, unknown>[];
    return {
      deadLetters: rows.map((x) => ({ ...x, received_at: new Date(x.received_at as number).toISOString() })),
    };
  });
}
