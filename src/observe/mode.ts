/**
 * Observe mode: the broker's side for devices nobody has a profile for yet. An unknown device id
 * with a one-time enrolment secret, or a device registered with the `observe` profile, is admitted
 * as observed; what it publishes below its own `ata/v1/<id>/` is kept in the observe store
 * (bounded, per device and in total) and nowhere else: not decoded, not in the event log, never
 * seen by the rules, so it can never raise an alert. Off by default, and loud when on: a warning
 * at start, in /readyz, and in the security log.
 */
import { isValidDeviceId } from "../broker/topics.js";
import type { Logger } from "../log.js";
import type { Device, Registry } from "../registry/registry.js";
import type { SecurityLog } from "../security/log.js";
import { KeyedBuckets } from "../security/throttle.js";
import type { Db } from "../store/db.js";
import { OBSERVE_PROFILE, type ObserveConfig, observesSite } from "./config.js";
import { type ObserveEnrolment, ObserveEnrolments } from "./enrolment.js";
import { ObserveStore } from "./store.js";

export interface ObserveModeContext {
  db: Db;
  config: ObserveConfig;
  /** Site ids and their units, from the configuration. */
  sites: readonly { id: string; units: readonly { id: string }[] }[];
  registry: Registry;
  security: SecurityLog;
  log: Logger;
}

/** What an enrolment request names that this gateway cannot take, in words for the operator. */
export class ObserveError extends Error {
  constructor(
    readonly code:
      | "observe_off"
      | "unknown_placement"
      | "invalid_device"
      | "device_exists"
      | "usage"
      | "not_found",
    message: string,
  ) {
    super(message);
    this.name = "ObserveError";
  }
}

/**
 * Create an enrolment secret after checking what it names: a configured site observe mode covers,
 * a unit of it, and (when given) a valid device id nobody registered. For the CLI (which works on
 * the database without the gateway) and the admin API alike.
 */
export function createEnrolment(
  ctx: {
    config: ObserveConfig;
    sites: ObserveModeContext["sites"];
    registry: Registry;
    enrolments: ObserveEnrolments;
  },
  input: { siteId: string; unitId: string; deviceId?: string | null; ttlHours?: number; createdBy: string },
): { enrolment: ObserveEnrolment; secret: string } {
  const site = ctx.sites.find((s) => s.id === input.siteId);
  if (!site?.units.some((u) => u.id === input.unitId))
    throw new ObserveError("unknown_placement", `unknown site/unit "${input.siteId}/${input.unitId}"`);
  if (!observesSite(ctx.config, input.siteId))
    throw new ObserveError(
      "observe_off",
      ctx.config.enabled
        ? `observe mode is not on for site "${input.siteId}" (observe.sites)`
        : "observe mode is off (observe.enabled: false); turn it on in the configuration first",
    );
  if (input.deviceId) {
    if (!isValidDeviceId(input.deviceId))
      throw new ObserveError(
        "invalid_device",
        `device id "${input.deviceId}" must be 1-64 letters, digits, . _ -`,
      );
    const d = ctx.registry.get(input.deviceId);
    if (d && d.profile !== OBSERVE_PROFILE)
      throw new ObserveError(
        "device_exists",
        `device "${input.deviceId}" is registered with profile ${d.profile}; it is not observed`,
      );
  }
  const hours = input.ttlHours ?? ctx.config.enrolmentTtlHours;
  return ctx.enrolments.create({
    siteId: input.siteId,
    unitId: input.unitId,
    deviceId: input.deviceId ?? null,
    ttlMs: Math.round(hours * 3_600_000),
    createdBy: input.createdBy,
  });
}

/**
 * Promote an observed device to a real profile. One registered as `observe` gets the profile (its
 * secret and placement stay); one admitted with an enrolment secret is registered under its id with
 * the placement it was enrolled for, and a generated secret returned once. Either way the gateway
 * ends its observed session, and it reconnects as a device like any other.
 */
export function promote(
  ctx: { registry: Registry; store: ObserveStore },
  input: { deviceId: string; profile: string; roomId?: string | null },
): { device: Device; secret?: string } {
  if (input.profile === OBSERVE_PROFILE)
    throw new ObserveError("usage", "promote to the device's real profile, not observe");
  const registered = ctx.registry.get(input.deviceId);
  if (registered) {
    if (registered.profile !== OBSERVE_PROFILE)
      throw new ObserveError(
        "device_exists",
        `device "${input.deviceId}" is already registered with profile ${registered.profile}`,
      );
    return { device: ctx.registry.setProfile(input.deviceId, input.profile) };
  }
  const seen = ctx.store.get(input.deviceId);
  if (!seen) throw new ObserveError("not_found", `no observed device "${input.deviceId}"`);
  return ctx.registry.add({
    id: input.deviceId,
    profile: input.profile,
    siteId: seen.siteId,
    unitId: seen.unitId,
    roomId: input.roomId ?? null,
  });
}

/** A broker CONNECT's outcome for a registered device: decoded as usual, observed, or refused. */
export type RegisteredAdmission = "native" | "observed" | "refused";

export class ObserveMode {
  readonly store: ObserveStore;
  readonly enrolments: ObserveEnrolments;
  /** Samples kept per device per second (bursts of as many); forgotten once full again. */
  private readonly rates: KeyedBuckets;

  constructor(private readonly ctx: ObserveModeContext) {
    this.rates = new KeyedBuckets({ perSec: ctx.config.ratePerSec, burst: ctx.config.ratePerSec });
    this.store = new ObserveStore(ctx.db, {
      perDevice: ctx.config.perDevice,
      total: ctx.config.total,
      maxPayloadBytes: ctx.config.maxPayloadBytes,
    });
    this.enrolments = new ObserveEnrolments(ctx.db);
  }

  get enabled(): boolean {
    return this.ctx.config.enabled;
  }

  /** Brings the store within its quotas; when on, says so loudly (log and security log). */
  start(): void {
    const trimmed = this.store.applyQuota();
    if (trimmed.device + trimmed.total)
      this.ctx.log.info({ trimmed }, "observe store brought within its quotas");
    if (!this.enabled) return;
    const { sites, perDevice, total } = this.ctx.config;
    this.ctx.log.warn(
      { sites: sites ?? "all", perDevice, total },
      "OBSERVE MODE ON: devices nobody registered may connect with an enrolment secret and publish. What they send is kept for onboarding and never raises an alert. Turn it off (observe.enabled: false) when onboarding is done.",
    );
    this.ctx.security.record({
      kind: "observe_mode_on",
      actor: "config",
      detail: { sites: sites ?? "all", perDevice, total },
    });
  }

  /** For /readyz: what an operator must hear while observe mode is on. */
  warnings(): string[] {
    if (!this.enabled) return [];
    const where = this.ctx.config.sites ? `sites ${this.ctx.config.sites.join(", ")}` : "every site";
    return [
      `observe mode is on for ${where}: devices nobody registered may connect with an enrolment secret; what they send never raises an alert. Turn it off (observe.enabled: false) when onboarding is done`,
    ];
  }

  /**
   * A CONNECT with an id nobody registered: an observation when the secret is a live enrolment
   * secret for this id (bound to it at first use). Null when the secret is no enrolment's, or
   * observe mode is off: the broker then refuses it exactly as it would without observe mode.
   */
  admitUnknown(
    deviceId: string,
    secret: string,
    address: string,
  ): { ok: true } | { ok: false; reason: string } | null {
    if (!this.enabled || !isValidDeviceId(deviceId)) return null;
    const m = this.enrolments.match(deviceId, secret);
    if (m === null) return null;
    if (!m.ok) return { ok: false, reason: m.reason };
    const { enrolment } = m;
    if (!observesSite(this.ctx.config, enrolment.siteId)) return { ok: false, reason: "observe_off" };
    this.store.touch({ deviceId, siteId: enrolment.siteId, unitId: enrolment.unitId, via: "enrolment" });
    if (m.firstUse) {
      this.ctx.security.record({
        kind: "observe_admitted",
        address,
        subject: deviceId,
        detail: { enrolment: enrolment.id, site: enrolment.siteId, unit: enrolment.unitId },
      });
      this.ctx.log.warn(
        { deviceId, enrolment: enrolment.id, site: enrolment.siteId, unit: enrolment.unitId, address },
        "unregistered device admitted in observe mode (enrolment secret now bound to it)",
      );
    }
    return { ok: true };
  }

  /** A registered device whose secret checked out: observed when its profile is `observe`. */
  registered(deviceId: string): RegisteredAdmission {
    const d = this.ctx.registry.peek(deviceId);
    if (!d || d.profile !== OBSERVE_PROFILE) return "native";
    if (!observesSite(this.ctx.config, d.siteId)) return "refused";
    this.store.touch({ deviceId, siteId: d.siteId, unitId: d.unitId, via: "registered" });
    return "observed";
  }

  /** An observed device's publish: kept within its rate and the quotas, acknowledged either way. */
  keep(deviceId: string, channel: string, payload: Buffer): void {
    if (!this.rates.take(deviceId)) {
      this.store.countRateDrop(deviceId);
      return;
    }
    const { dropped } = this.store.add(deviceId, channel, payload);
    this.ctx.log.debug({ deviceId, channel, bytes: payload.length, dropped }, "observed publish kept");
  }
}
