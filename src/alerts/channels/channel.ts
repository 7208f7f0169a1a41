/**
 * Alert delivery channels: the ways an alert reaches a person (the staff console over WebSocket,
 * Web Push to a phone, a page to a DECT handset) or a system (the signed fallback webhook).
 *
 * The alert manager decides *who* is asked at each escalation level (the level's audience); each
 * channel the level names says *whom of them it can reach now* (`reach`) and delivers to them
 * (`deliver`). Channels never throw into the manager and never block it: every attempt has been
 * recorded before `deliver` is called, and its outcome comes back through the `ChannelReporter`
 * (receipt, or failure), which the manager writes into the alert's audit and the metrics. A channel
 * that cannot deliver at all right now (`health().ok === false`: the paging link is down, the push
 * service keeps failing) is skipped by the ladder, so it never stalls an escalation.
 */
import type { StaffIdentity } from "../../staff/protocol.js";
import type { AlertView } from "../model.js";

export const CHANNEL_NAMES = ["console", "push", "paging", "webhook"] as const;
export type ChannelName = (typeof CHANNEL_NAMES)[number];

/** Channels that reach a person (the webhook reaches a system). */
export const PERSON_CHANNELS: readonly ChannelName[] = ["console", "push", "paging"];

/** Whom a ladder level asks, in people terms. */
export interface Audience {
  siteId: string;
  unitId: string;
  /** The level's `to`: staff of the alert's unit, the site's nurses, everyone at the site. */
  targets: readonly ("unit" | "nurse" | "site")[];
  /** Staff ids who rejected this alert: not asked again at any level. */
  excluded: readonly string[];
}

/** Does a person belong to a level's audience? One definition for every channel. */
export function inAudience(s: Pick<StaffIdentity, "id" | "role" | "sites" | "units">, a: Audience): boolean {
  if (!s.sites.includes(a.siteId) || s.role === "manager" || a.excluded.includes(s.id)) return false;
  if (a.targets.includes("site")) return true;
  if (a.targets.includes("nurse") && s.role === "nurse") return true;
  return a.targets.includes("unit") && (s.units === null || s.units.includes(a.unitId));
}

/** One addressee of one channel. */
export interface Recipient {
  /** Stable within the channel, for the audit and receipts: a staff id, a subscription id, a call address. */
  id: string;
  /** For people reading the audit: "Anna", "DECT 2301 (night nurse)", "fallback webhook". */
  name: string;
  /** The person behind it, where there is one (a push subscription's owner, a handset's holder). */
  staffId?: string;
}

/** Why a delivery is made. */
export type DeliveryReason =
  /** The alert was raised, or a level was entered (first time or repeating the last level). */
  | "level"
  /** The priority's re-notification interval passed and nobody has accepted yet. */
  | "renotify"
  /** An attempt whose outcome was unknown at a restart, made again. */
  | "retry";

export interface Delivery {
  /** The attempt's id (a row in `channel_attempts`, written before this call). */
  attemptId: number;
  alert: AlertView;
  reason: DeliveryReason;
  level: number;
  recipient: Recipient;
  /** Display names of the alert's place, for text on a lock screen or a handset. */
  place: { site: string; unit: string };
}

/** How a channel reports what happened to an attempt. Safe to call after shutdown (then a no-op). */
export interface ChannelReporter {
  /**
   * Handed to an intermediary that will carry it on (the push service answered 201): recorded, but
   * not yet a receipt. Optional for channels without an intermediary.
   */
  sent(attemptId: number, detail: string): void;
  /**
   * The recipient's device has it: the push service accepted it and the phone's service worker
   * confirmed it, the paging system acknowledged the page, the webhook answered 2xx.
   * `toPerson`: it reached a person's own device (clears "undelivered"); false for a system.
   */
  delivered(attemptId: number, detail: string, opts?: { toPerson?: boolean }): void;
  /**
   * The attempt failed; `gone` means the recipient no longer exists (push 404/410). `retry`: the
   * channel will try again by itself (it then calls `retrying` before the next try).
   */
  failed(attemptId: number, detail: string, opts?: { gone?: boolean; retry?: boolean }): void;
  /** About to make another try of an attempt (recorded first, so a crash mid-try re-sends at start). */
  retrying(attemptId: number, detail: string): void;
  /** The channel's health changed: the ladder re-checks alerts waiting at a level only it reached. */
  healthChanged(): void;
}

export interface ChannelHealth {
  ok: boolean;
  detail?: string;
}

export interface AlertChannel {
  readonly name: ChannelName;
  /** Whether re-notifications go through this channel too (default true; a level entry always does). */
  readonly renotifies?: boolean;
  /**
   * The committed change itself is the hand-over (the console's change stream): attempts are
   * recorded as sent in the escalation step's own transaction, so no second write follows each
   * step. `deliver` is still called and has nothing to report but a receipt, later.
   */
  readonly handsOverOnCommit?: boolean;
  /** Who this channel can reach now among the audience; empty means it is no answer at this level. */
  reach(audience: Audience, alert: AlertView): Recipient[];
  /** Make one attempt. Must not throw or block; the outcome goes to the reporter. */
  deliver(delivery: Delivery): void;
  /** Whether the channel can deliver at all now; an unhealthy channel is skipped by the ladder. */
  health(): ChannelHealth;
  /**
   * The alert was accepted, resolved or cancelled: a channel that left something on a screen may
   * replace or remove it (a push notification becomes "taken by Anna"). Optional.
   */
  settled?(alert: AlertView): void;
  start?(reporter: ChannelReporter): void | Promise<void>;
  stop?(): void | Promise<void>;
}
