/**
 * Admin routes for observe mode: what observed devices sent, drafted profiles, and enrolment
 * secrets. Every route is admin-only (r.admin()); creating and revoking an enrolment is an admin
 * action in the security log.
 */
import { z } from "zod";
import { ApiError } from "../errors.js";
import type { RequestContext, Router } from "../http/router.js";
import { type Registry, RegistryError } from "../registry/registry.js";
import type { SecurityLog } from "../security/log.js";
import type { ObserveConfig } from "./config.js";
import { channelSummary, describeChannels, draftProfile, preview } from "./draft.js";
import { createEnrolment, ObserveError, type ObserveMode, type ObserveModeContext, promote } from "./mode.js";
import type { ObserveStore } from "./store.js";

export interface ObserveRoutesContext {
  observe: ObserveMode;
  config: ObserveConfig;
  sites: ObserveModeContext["sites"];
  registry: Registry;
  security: SecurityLog;
}

const PromoteBody = z.strictObject({ profile: z.string(), room: z.string().max(64).optional() });

/** Observe and registry errors as the catalogue's. */
function observeCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ObserveError) {
      const code =
        err.code === "observe_off"
          ? "conflict"
          : err.code === "not_found"
            ? "device_not_found"
            : err.code === "usage"
              ? "bad_request"
              : err.code;
      throw new ApiError(code, err.message);
    }
    if (err instanceof RegistryError) throw new ApiError(err.code, err.message);
    throw err;
  }
}

const EnrolmentBody = z.strictObject({
  site: z.string(),
  unit: z.string(),
  id: z.string().optional(),
  hours: z
    .number()
    .min(0.01)
    .max(30 * 24)
    .optional(),
});

/** What one observed device sent: the store's view of it, per channel, and its latest samples. */
export function observedDetail(store: ObserveStore, deviceId: string, limit = 20) {
  const device = store.get(deviceId);
  if (!device) return null;
  const samples = store.samples(deviceId);
  return {
    device,
    channels: describeChannels(samples).map(channelSummary),
    samples: samples.slice(0, limit).map((s) => ({
      id: s.id,
      channel: s.channel,
      receivedAt: s.receivedAt,
      size: s.size,
      cut: s.payload.length < s.size,
      ...preview(s.payload),
    })),
  };
}

export function observeRoutes(router: Router, ctx: ObserveRoutesContext): void {
  const admin = (r: RequestContext) => r.admin();
  const audit = (r: RequestContext, action: string, subject: string, detail: Record<string, unknown> = {}) =>
    ctx.security.record({
      kind: "admin_action",
      actor: "admin",
      address: r.address,
      subject,
      detail: { action, ...detail },
    });

  router.add("GET", "/api/v1/observe", (r) => {
    admin(r);
    return {
      enabled: ctx.config.enabled,
      sites: ctx.config.sites ?? null,
      usage: ctx.observe.store.usage(),
      devices: ctx.observe.store.list(),
      enrolments: ctx.observe.enrolments.list(),
    };
  });
  router.add("GET", "/api/v1/observe/:id", (r) => {
    admin(r);
    const detail = observedDetail(ctx.observe.store, r.params.id!, Number(r.query.get("limit") ?? 20) || 20);
    if (!detail) throw new ApiError("device_not_found", `no observed device "${r.params.id}"`);
    return detail;
  });
  router.add("GET", "/api/v1/observe/:id/draft", (r) => {
    admin(r);
    const id = r.params.id!;
    if (!ctx.observe.store.get(id)) throw new ApiError("device_not_found", `no observed device "${id}"`);
    const d = draftProfile(id, ctx.observe.store.samples(id));
    return {
      deviceId: id,
      profileId: d.profileId,
      channels: d.channels.map(channelSummary),
      fixtures: d.fixtures,
      module: d.module,
      samplesJsonl: d.samplesJsonl,
    };
  });
  router.add("POST", "/api/v1/observe/:id/forget", (r) => {
    admin(r);
    const id = r.params.id!;
    if (!ctx.observe.store.get(id)) throw new ApiError("device_not_found", `no observed device "${id}"`);
    const samples = ctx.observe.store.forget(id);
    audit(r, "observe_forgotten", id, { samples });
    return { forgotten: id, samples };
  });
  router.add("POST", "/api/v1/observe/:id/promote", async (r) => {
    admin(r);
    const body = await r.body(PromoteBody);
    const id = r.params.id!;
    const { device, secret } = observeCall(() =>
      promote(
        { registry: ctx.registry, store: ctx.observe.store },
        { deviceId: id, profile: body.profile, roomId: body.room ?? null },
      ),
    );
    audit(r, "observe_promoted", id, { profile: body.profile });
    return { promoted: true, device, ...(secret ? { secret } : {}) };
  });
  router.add("POST", "/api/v1/observe/enrolments", async (r) => {
    admin(r);
    const body = await r.body(EnrolmentBody);
    const created = observeCall(() =>
      createEnrolment(
        { config: ctx.config, sites: ctx.sites, registry: ctx.registry, enrolments: ctx.observe.enrolments },
        {
          siteId: body.site,
          unitId: body.unit,
          deviceId: body.id ?? null,
          ...(body.hours !== undefined ? { ttlHours: body.hours } : {}),
          createdBy: "admin",
        },
      ),
    );
    audit(r, "observe_enrolment_created", created.enrolment.id, {
      site: body.site,
      unit: body.unit,
      ...(body.id ? { device: body.id } : {}),
    });
    return { created: true, enrolment: created.enrolment, secret: created.secret };
  });
  router.add("POST", "/api/v1/observe/enrolments/:id/revoke", (r) => {
    admin(r);
    if (!ctx.observe.enrolments.revoke(r.params.id!))
      throw new ApiError("not_found", "no active enrolment with this id");
    audit(r, "observe_enrolment_revoked", r.params.id!);
    return { revoked: r.params.id };
  });
}
