/**
 * A device's credentials checked once, for every way in: the embedded broker's CONNECT
 * (src/broker/broker.ts) and RabbitMQ's HTTP auth backend in cluster mode (src/cluster/). Both get
 * the same answers from the same registry, the same throttles (failures per address and per device
 * id, known-good pairs exempt, attempts paced while their secret is checked, a global ceiling on
 * KDF checks) and the same security-log rows; each caller turns a refusal into its own wire form
 * (a CONNACK return code, or "deny").
 */
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Registry } from "../registry/registry.js";
import type { SecurityLog } from "./log.js";
import { FailureWindows, TokenBucket } from "./throttle.js";

/**
 * Observe mode's side of authentication (src/observe/mode.ts). An observed device authenticates
 * like any other, publishes only below its own `ata/v1/<id>/`, and its publishes are kept for
 * onboarding, never decoded.
 */
export interface ObserveGate {
  /**
   * A CONNECT under an id nobody registered: observed when the secret is a live enrolment secret
   * for it; refused with a reason when it is an enrolment secret that is used, expired or revoked;
   * null when it is no enrolment secret (refused exactly as without observe mode).
   */
  admitUnknown(
    deviceId: string,
    secret: string,
    address: string,
  ): { ok: true } | { ok: false; reason: string } | null;
  /** A registered device whose secret checked out: decoded as usual, observed, or refused. */
  registered(deviceId: string): "native" | "observed" | "refused";
  /** An observed device's publish (acknowledged once this returns). */
  keep(deviceId: string, channel: string, payload: Buffer): void;
}

export interface DeviceAuthContext {
  limits: Config["mqtt"]["authFailures"];
  registry: Registry;
  log: Logger;
  metrics: Metrics;
  security: SecurityLog;
  observe?: ObserveGate | undefined;
}

export interface DeviceLogin {
  /** The device id. */
  username: string | undefined;
  secret: string | undefined;
  /** The MQTT client id, which must equal the device id. */
  clientId: string;
  /**
   * Where the device connects from, when the caller knows it: failures are then throttled per
   * address as well as per device id. RabbitMQ 3.10 does not send it with a login.
   */
  address: string | null;
  /** The subject CN of a verified client certificate (mutual TLS); undefined without one. */
  certificateName?: string | undefined;
  /**
   * Whether observe mode may admit this connection. Only the embedded broker can hand an observed
   * device's publishes to observe mode; elsewhere an observed device is refused.
   */
  observe: boolean;
  /** Added to the security log's detail, to tell the ways in apart ("rabbitmq"). */
  via?: string;
}

/** How a refusal reads on the wire: each maps to an MQTT 3.1.1 CONNACK return code (3.2.2.3). */
export type RefusalKind = "identifier_rejected" | "unavailable" | "bad_credentials" | "not_authorized";

export type DeviceLoginResult =
  | { ok: true; observed: boolean }
  | { ok: false; kind: RefusalKind; reason: string; message: string };

export class DeviceAuthenticator {
  /** Failed logins by remote address, and by device id (both windowed by authFailures). */
  private readonly failures: FailureWindows;
  private readonly idFailures: FailureWindows;
  /** KDF secret checks per second, for all addresses together (mqtt.authFailures.kdfPerSec). */
  private readonly kdfBudget: TokenBucket;
  /** Secrets being checked now, and attempts waiting for a slot, by "a:<address>" / "i:<id>". */
  private readonly checking = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly ctx: DeviceAuthContext) {
    this.kdfBudget = new TokenBucket(ctx.limits.kdfPerSec);
    const limits = () => ctx.limits;
    this.failures = new FailureWindows("a", limits);
    this.idFailures = new FailureWindows("i", limits);
  }

  async login(login: DeviceLogin): Promise<DeviceLoginResult> {
    const { username, address, via } = login;
    const refuse = (kind: RefusalKind, reason: string, message: string): DeviceLoginResult => {
      this.ctx.metrics.connectsRefused.inc({ reason });
      // The security log has it at warn, folded when repeated; a line each would flood the log.
      this.ctx.log.debug({ deviceId: username ?? null, address, reason, via }, "CONNECT refused");
      this.ctx.security.record({
        kind: reason === "throttled" || reason === "busy" ? "connect_throttled" : "connect_refused",
        address,
        // Only a registered device is named: an unknown id is the attacker's choice, and naming each
        // would keep a spray of random ids from folding into one row per address.
        subject: username && this.ctx.registry.get(username) ? username : null,
        detail: via ? { reason, via } : { reason },
      });
      return { ok: false, kind, reason, message };
    };
    const secret = login.secret;
    if (!username || secret === undefined) {
      if (address !== null && this.failures.throttled(address))
        return refuse("unavailable", "throttled", "too many failed attempts");
      if (address !== null) this.failures.record(address);
      return refuse(
        "bad_credentials",
        "no_credentials",
        "username (device id) and password (secret) are required",
      );
    }
    if (login.clientId !== username)
      return refuse("identifier_rejected", "client_id_mismatch", "client id must equal the device id");
    // With mutual TLS the certificate names the device: another device's certificate (or one
    // without a CN) does not open this one's session, whatever secret comes with it.
    if (login.certificateName !== undefined && login.certificateName !== username)
      return refuse("not_authorized", "certificate_mismatch", "the client certificate names another device");
    // A pair that connected before goes past the throttles: a device behind the same NAT as an
    // attacker keeps connecting while the attacker's failures lock the address.
    const cost = this.ctx.registry.verificationCost(username, secret);
    const keys: (readonly [FailureWindows, string])[] = [];
    if (address !== null) keys.push([this.failures, address]);
    keys.push([this.idFailures, username]);
    const slots = cost === "known" ? [] : await this.admitAll(keys);
    if (slots === null) return refuse("unavailable", "throttled", "too many failed attempts");
    const observe = login.observe ? this.ctx.observe : undefined;
    let outcome: Awaited<ReturnType<Registry["authenticate"]>> | "observed" | string;
    try {
      // Observe mode: an unregistered id with an enrolment secret (behind the same throttles).
      const observation =
        observe && !this.ctx.registry.peek(username)
          ? observe.admitUnknown(username, secret, address ?? "unknown")
          : null;
      if (observation) outcome = observation.ok ? "observed" : observation.reason;
      else {
        // A global ceiling on KDF checks per second: a spray of guesses from many addresses cannot
        // take the CPU (each scrypt is tens of milliseconds); devices with generated secrets never wait.
        if (cost === "kdf" && !this.kdfBudget.take())
          return refuse("unavailable", "busy", "too many secret checks right now");
        outcome = await this.ctx.registry.authenticate(username, secret);
      }
    } finally {
      for (const held of slots) this.release(held);
    }
    if (outcome === "ok" && this.ctx.observe) {
      const admission = this.ctx.observe.registered(username);
      if (admission === "refused")
        return refuse("not_authorized", "observe_off", "observe mode is off for this device's site");
      if (admission === "observed") {
        if (!observe)
          return refuse(
            "not_authorized",
            "observed",
            "an observed device connects to the embedded broker only",
          );
        outcome = "observed";
      }
    }
    if (outcome === "ok" || outcome === "observed") return { ok: true, observed: outcome === "observed" };
    if (outcome === "disabled") return refuse("not_authorized", "disabled", "device is disabled");
    if (address !== null) this.failures.record(address);
    this.idFailures.record(username);
    return refuse("bad_credentials", outcome, "unknown device or wrong secret");
  }

  /**
   * A slot per key (address, device id) to check a secret, or null (and none held) when one key's
   * failures alone reach the limit. Each attempt holds its slots while its secret is checked, and
   * failures plus slots never pass the limit: parallel attempts wait their turn instead of all
   * passing the throttle while the first ones are still being verified. A storm of good devices is
   * only paced.
   */
  private async admitAll(keys: readonly (readonly [FailureWindows, string])[]): Promise<string[] | null> {
    const slots: string[] = [];
    for (const [table, key] of keys) {
      const slot = await this.admit(table, key);
      if (slot === null) {
        for (const held of slots) this.release(held);
        return null;
      }
      slots.push(slot);
    }
    return slots;
  }

  /**
   * A slot to check a secret for this key (an address, a device id), or null when its failures
   * alone reach the limit. While failures plus the attempts being checked fill the limit, waits for
   * one of those to finish.
   */
  private async admit(table: FailureWindows, key: string): Promise<string | null> {
    const slot = `${table.name}:${key}`;
    const { max } = this.ctx.limits;
    for (;;) {
      if (table.throttled(key)) {
        // Whoever waits behind learns it too, rather than waiting for a release that never comes.
        this.wakeNext(slot);
        return null;
      }
      const failures = table.count(key);
      const checking = this.checking.get(slot) ?? 0;
      if (failures + checking < max) {
        this.checking.set(slot, checking + 1);
        return slot;
      }
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(slot) ?? [];
        queue.push(resolve);
        this.waiting.set(slot, queue);
      });
    }
  }

  private release(slot: string): void {
    const n = (this.checking.get(slot) ?? 1) - 1;
    if (n > 0) this.checking.set(slot, n);
    else this.checking.delete(slot);
    this.wakeNext(slot);
  }

  private wakeNext(slot: string): void {
    const queue = this.waiting.get(slot);
    const next = queue?.shift();
    if (queue && !queue.length) this.waiting.delete(slot);
    next?.();
  }
}
