/**
 * Enrolment over HTTP (docs/staff-protocol.md "Signing in a phone"): managers and admins create
 * enrolments and see and revoke each person's enrolled devices; a phone exchanges a code for its
 * token. The exchange is the one unauthenticated write in the API, so it is limited per address.
 */
import { z } from "zod";
import { ApiError } from "../errors.js";
import type { Logger } from "../log.js";
import { ClaimUnavailableError, type EnrolmentStore, enrolmentUrl } from "../staff/enrolment.js";
import type { SiteCatalogueEntry, StaffIdentity } from "../staff/protocol.js";
import { ROLES, type TokenRecord, type TokenStore } from "../staff/tokens.js";
import type { RequestContext, Router } from "./router.js";

export interface EnrolmentRoutesContext {
  tokens: TokenStore;
  enrolments: EnrolmentStore;
  sites: readonly SiteCatalogueEntry[];
  /** The console's address as phones reach it; otherwise taken from the request's Host. */
  publicUrl?: string | undefined;
  tls: boolean;
  limits: { maxFailures: number; windowMs: number };
  log: Logger;
  /** A token was revoked here: its open sessions close now rather than at the next sweep. */
  onRevoked(tokenId: string): void;
  now?: () => number;
}

const Id = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/);
const CreateBody = z.strictObject({
  name: z.string().trim().min(1).max(80),
  role: z.enum(ROLES),
  sites: z.array(Id).min(1).max(50),
  units: z.array(Id).min(1).max(200).optional(),
  /** Another phone for someone already enrolled. */
  person: z.string().min(1).max(64).optional(),
});
const ExchangeBody = z.strictObject({
  code: z.string().min(1).max(32),
  device: z.string().trim().min(1).max(60).optional(),
});

export async function enrolmentQrSvg(url: string): Promise<string> {
  // Loaded on first use, not at import: the gateway's start (and its restart after a crash) does
  // not wait for a module only managers' enrolments need.
  const { default: QRCode } = await import("qrcode");
  // Level M survives a scratched or glare-spotted screen; the 4-module quiet zone is the spec's.
  return QRCode.toString(url, { type: "svg", errorCorrectionLevel: "M", margin: 4 });
}

const SAFE_HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

/** "Android · Chrome" from a user agent: enough for a manager to tell two phones apart. */
export function deviceLabelFrom(userAgent: string | undefined): string {
  const ua = userAgent ?? "";
  const os = /iPhone/.test(ua)
    ? "iPhone"
    : /iPad/.test(ua)
      ? "iPad"
      : /Android/.test(ua)
        ? "Android"
        : /Windows/.test(ua)
          ? "Windows"
          : /Mac OS X|Macintosh/.test(ua)
            ? "Mac"
            : /Linux|X11/.test(ua)
              ? "Linux"
              : null;
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /(Chrome|Chromium|CriOS)\//.test(ua)
        ? "Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : null;
  return [os, browser].filter(Boolean).join(" · ") || "Ukendt enhed";
}

/** Failed exchanges per remote address in a sliding window. */
export class AddressLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: { maxFailures: number; windowMs: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until this address may try again, or 0. */
  blockedFor(address: string): number {
    const recent = this.recent(address);
    if (recent.length < this.limits.maxFailures) return 0;
    return Math.max(1, Math.ceil((recent[0]! + this.limits.windowMs - this.now()) / 1000));
  }

  fail(address: string): void {
    const recent = this.recent(address);
    recent.push(this.now());
    this.failures.set(address, recent);
    // Bounded memory under a spray of addresses: forget the oldest.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(address: string): number[] {
    const cutoff = this.now() - this.limits.windowMs;
    const list = (this.failures.get(address) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(address, list);
    else this.failures.delete(address);
    return list;
  }
}

/** May `actor` enrol or manage someone with these sites and units? Managers: only within their own. */
export function mayManage(
  actor: StaffIdentity,
  target: { sites: readonly string[]; units: readonly string[] | null },
): boolean {
  if (actor.role !== "admin" && actor.role !== "manager") return false;
  if (!target.sites.every((s) => actor.sites.includes(s))) return false;
  const own = actor.units;
  if (own === null) return true;
  return Boolean(target.units?.every((u) => own.includes(u)));
}

export function enrolmentRoutes(router: Router, ctx: EnrolmentRoutesContext): void {
  const limiter = new AddressLimiter(ctx.limits, ctx.now);
  const manager = (r: RequestContext) => {
    const staff = r.staff();
    if (staff.role !== "admin" && staff.role !== "manager")
      throw new ApiError("forbidden", "enrolment needs a manager or admin token");
    return staff;
  };
  const baseUrl = (r: RequestContext) => {
    if (ctx.publicUrl) return ctx.publicUrl;
    const host = r.req.headers.host;
    if (!host || !SAFE_HOST.test(host))
      throw new ApiError("bad_request", "set enrolment.publicUrl: the request's Host cannot be used");
    return `${ctx.tls ? "https" : "http"}://${host}`;
  };

  router.add("POST", "/api/v1/enrolments", async (r) => {
    const actor = manager(r);
    const b = await r.body(CreateBody);
    const problems: { path: string; message: string }[] = [];
    b.sites.forEach((id, i) => {
      if (!ctx.sites.some((s) => s.id === id))
        problems.push({ path: `sites.${i}`, message: `unknown site "${id}"` });
    });
    b.units?.forEach((u, i) => {
      if (!ctx.sites.some((s) => b.sites.includes(s.id) && s.units.some((x) => x.id === u)))
        problems.push({ path: `units.${i}`, message: `unit "${u}" is not in the given sites` });
    });
    if (problems.length) throw new ApiError("invalid_body", undefined, problems);
    const target = { sites: b.sites, units: b.units ?? null };
    if (!mayManage(actor, target))
      throw new ApiError("forbidden", "you may enrol people only for your own sites and units");
    if (b.role === "admin" && actor.role !== "admin")
      throw new ApiError("forbidden", "only an admin may enrol an admin");
    if (b.person) {
      const existing = ctx.tokens.records().filter((t) => t.id === b.person);
      if (!existing.length || !existing.every((t) => mayManage(actor, t)))
        throw new ApiError("not_found", `no person "${b.person}" you manage`);
    }
    const enrolment = ctx.enrolments.create({
      name: b.name,
      role: b.role,
      sites: b.sites,
      units: b.units ?? null,
      personId: b.person,
      createdBy: `staff:${actor.id}`,
    });
    const url = enrolmentUrl(baseUrl(r), enrolment.code);
    ctx.log.info({ enrolment: enrolment.id, person: enrolment.personId, by: actor.id }, "enrolment created");
    return { created: true, enrolment, url, qrSvg: await enrolmentQrSvg(url) };
  });

  router.add("POST", "/api/v1/enrol", async (r) => {
    const address = r.address;
    const wait = limiter.blockedFor(address);
    if (wait > 0) {
      r.res.setHeader("retry-after", String(wait));
      throw new ApiError("rate_limited", `too many wrong codes; try again in ${wait} s`, {
        retryAfterSec: wait,
      });
    }
    const b = await r.body(ExchangeBody);
    const label = b.device ?? deviceLabelFrom(r.req.headers["user-agent"]);
    let result: Awaited<ReturnType<EnrolmentStore["redeem"]>>;
    try {
      result = await ctx.enrolments.redeem(b.code, label);
    } catch (err) {
      if (!(err instanceof ClaimUnavailableError)) throw err;
      // Not a wrong code: the address is not charged a failure.
      ctx.log.error({ err: err.message }, "enrolment refused: the cluster's database did not answer");
      throw new ApiError(
        "unavailable",
        "enrolment is unavailable for the moment; try the code again shortly",
      );
    }
    if (!result) {
      limiter.fail(address);
      ctx.log.warn({ address }, "enrolment code refused");
      throw new ApiError("enrolment_invalid");
    }
    ctx.log.info({ person: result.identity.id, tokenId: result.tokenId, device: label }, "device enrolled");
    return { token: result.token, staff: result.identity, deviceLabel: label };
  });

  router.add("GET", "/api/v1/staff-devices", (r) => {
    const actor = manager(r);
    const people = new Map<
      string,
      {
        person: string;
        name: string;
        role: string;
        sites: string[];
        units: string[] | null;
        devices: Omit<TokenRecord, "id" | "name" | "role" | "sites" | "units">[];
      }
    >();
    for (const t of ctx.tokens.records()) {
      if (!mayManage(actor, t)) continue;
      let p = people.get(t.id);
      if (!p) {
        p = { person: t.id, name: t.name, role: t.role, sites: t.sites, units: t.units, devices: [] };
        people.set(t.id, p);
      }
      p.devices.push({
        tokenId: t.tokenId,
        deviceLabel: t.deviceLabel,
        createdAt: t.createdAt,
        lastUsedAt: t.lastUsedAt,
        revoked: t.revoked,
      });
    }
    return { people: [...people.values()].sort((a, b) => a.name.localeCompare(b.name, "da")) };
  });

  router.add("DELETE", "/api/v1/staff-devices/:tokenId", (r) => {
    const actor = manager(r);
    const t = ctx.tokens.get(r.params.tokenId!);
    if (!t || !mayManage(actor, t)) throw new ApiError("device_token_not_found");
    if (!t.revoked) ctx.tokens.revoke(t.tokenId, `staff:${actor.id}`);
    ctx.onRevoked(t.tokenId);
    ctx.log.info({ tokenId: t.tokenId, person: t.id, by: actor.id }, "device token revoked");
    return { revoked: true, tokenId: t.tokenId };
  });
}
