/**
 * Observe mode's configuration (top-level `observe:`), checked at boot with the rest. Off by
 * default: a gateway in observe mode admits devices nobody registered (with a one-time enrolment
 * secret), so it says so loudly when on (docs/observe.md).
 */
import { z } from "zod";

export const ObserveConfig = z.strictObject({
  enabled: z.boolean().default(false),
  /** Sites observe mode is on for; absent: every site. Enrolments name a site in this list. */
  sites: z.array(z.string()).min(1).optional(),
  /** Samples one observed device keeps; its oldest go first. */
  perDevice: z.number().int().min(1).max(100_000).default(200),
  /** Samples kept in all; the oldest go first, whoever sent them. */
  total: z.number().int().min(1).max(10_000_000).default(20_000),
  /** Bytes of one payload kept (the rest is cut; its full size is kept beside it). */
  maxPayloadBytes: z.number().int().min(16).max(1_048_576).default(8192),
  /** Payloads one observed device may have stored per second; the rest are acknowledged and counted, not kept. */
  ratePerSec: z.number().min(1).max(1000).default(10),
  /** How long an enrolment secret is valid, for its first use and for the device's reconnects after. */
  enrolmentTtlHours: z
    .number()
    .min(0.01)
    .max(30 * 24)
    .default(72),
});
export type ObserveConfig = z.infer<typeof ObserveConfig>;

/** Sites named in observe.sites that the configuration does not have. */
export function observeProblems(
  observe: ObserveConfig,
  siteIds: readonly string[],
): { path: (string | number)[]; message: string }[] {
  const known = new Set(siteIds);
  return (observe.sites ?? []).flatMap((s, i) =>
    known.has(s) ? [] : [{ path: ["observe", "sites", i], message: `unknown site "${s}"` }],
  );
}

/** Whether observe mode admits devices of this site. */
export function observesSite(observe: ObserveConfig, siteId: string): boolean {
  return observe.enabled && (observe.sites === undefined || observe.sites.includes(siteId));
}

/** The reserved profile id of a device registered to be observed, not decoded. */
export const OBSERVE_PROFILE = "observe";
