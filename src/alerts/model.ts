/**
 * The alert as staff, managers and integrations see it. An alert is a persisted entity with a
 * lifecycle, not a notification (DESIGN.md "Alerts"; states after IHE PCD ACM and nurse-call
 * practice).
 */
import { z } from "zod";
import { Priority } from "../model/event.js";

export const ALERT_STATES = [
  "raised",
  "accepted",
  "attending",
  "resolved",
  "cancelled",
  "suppressed",
] as const;
export const AlertState = z.enum(ALERT_STATES);
export type AlertState = z.infer<typeof AlertState>;

/** Open states: the alert still wants a person. */
export const OPEN_STATES: readonly AlertState[] = ["raised", "accepted", "attending"];

export const OUTCOMES = [
  "fall-with-injury",
  "fall-without-injury",
  "false-alarm",
  "assistance-given",
  "no-action",
] as const;
export const Outcome = z.enum(OUTCOMES);
export type Outcome = z.infer<typeof Outcome>;

/** Audit actions: every change to an alert is one of these, with time, actor and reason. */
export const AUDIT_ACTIONS = [
  "raised",
  "updated",
  "delivered",
  "accepted",
  "rejected",
  "attending",
  "resolved",
  "cancelled",
  "escalated",
  "renotified",
  "comment",
  "suppressed",
  "fallback_delivered",
  "fallback_failed",
  /** A channel was asked to reach recipients (one entry per channel and step, naming them). */
  "notified",
  /** A channel's attempt failed (the push service refused, the paging system did not acknowledge). */
  "delivery_failed",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface Actor {
  /** "staff:<id>", "device:<id>", "rule:<id>", "system". */
  id: string;
  name: string;
}

export const AlertView = z.object({
  id: z.string(),
  type: z.string(),
  priority: Priority,
  state: AlertState,
  message: z.object({ da: z.string(), en: z.string() }),
  site: z.string(),
  unit: z.string(),
  room: z.string().nullable(),
  resident: z.string().nullable(),
  deviceId: z.string(),
  ruleId: z.string(),
  raisedAt: z.string(),
  updatedAt: z.string(),
  count: z.number().int(),
  lastEventType: z.string(),
  acceptedBy: z.object({ id: z.string(), name: z.string() }).nullable(),
  acceptedAt: z.string().nullable(),
  attendingAt: z.string().nullable(),
  resolvedAt: z.string().nullable(),
  outcome: Outcome.nullable(),
  /** Escalation level reached (0 = first recipients). */
  level: z.number().int(),
  /** True while no person and no fallback has received it: shown loudly, keeps escalating. */
  undelivered: z.boolean(),
  deliveredTo: z.array(z.string()),
  rejectedBy: z.array(z.string()),
});
export type AlertView = z.infer<typeof AlertView>;

export interface AuditEntry {
  id: number;
  alertId: string;
  at: string;
  action: AuditAction;
  actor: Actor;
  reason: string | null;
  stateAfter: AlertState;
  data: Record<string, unknown> | null;
}
