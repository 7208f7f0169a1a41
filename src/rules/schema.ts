/**
 * The rule file (config/rules.yaml): conditions on canonical events, and what to do when they hold.
 * Validated at boot with every problem listed; reloaded on SIGHUP (an invalid file keeps the
 * running rules).
 */
import { z } from "zod";
import { CHANNEL_NAMES, type ChannelName } from "../alerts/channels/channel.js";
import { OUTCOMES } from "../alerts/model.js";
import { EVENT_TYPES, PRIORITIES } from "../model/event.js";
import { DEVICE_KINDS } from "../model/profile.js";

/** "90s", "10m", "24h", "2d" -> milliseconds. */
export const Duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'a duration such as "30s", "10m", "24h"')
  .transform((s) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s)!;
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      m[2] as "ms" | "s" | "m" | "h" | "d"
    ];
    return Math.round(Number(m[1]) * unit);
  });

const TypePattern = z.string().refine((p) => {
  if (p === "*") return true;
  if (p.endsWith(".*")) return EVENT_TYPES.some((t) => t.startsWith(p.slice(0, -1)));
  return (EVENT_TYPES as string[]).includes(p);
}, "not a canonical event type or a pattern such as fall.*");

const Clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day such as "22:00"');
const OneOrMany = <T extends z.ZodType>(t: T) => z.union([t, z.array(t).min(1)]);

export interface Condition {
  event?: string | string[];
  deviceKind?: string | string[];
  profile?: string | string[];
  site?: string | string[];
  unit?: string | string[];
  room?: string | string[];
  residentFlags?: string[];
  time?: { from: string; to: string };
  priority?: string | string[];
  dataPresent?: string[];
  count?: { atLeast: number; within: number; per: "device" | "resident"; event?: string | string[] };
  all?: Condition[];
  any?: Condition[];
  not?: Condition;
}

export const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.strictObject({
    event: OneOrMany(TypePattern).optional(),
    deviceKind: OneOrMany(z.enum(DEVICE_KINDS)).optional(),
    profile: OneOrMany(z.string()).optional(),
    site: OneOrMany(z.string()).optional(),
    unit: OneOrMany(z.string()).optional(),
    room: OneOrMany(z.string()).optional(),
    residentFlags: z.array(z.string()).min(1).optional(),
    /** Local time window in the site's time zone; from > to spans midnight (22:00-07:00). */
    time: z.strictObject({ from: Clock, to: Clock }).optional(),
    priority: OneOrMany(z.enum(PRIORITIES)).optional(),
    /** Holds when the event's data has these fields (a lift cycle with a `fault`). */
    dataPresent: z.array(z.string()).min(1).optional(),
    /** Holds when at least N matching events (this one included) happened within the window. */
    count: z
      .strictObject({
        atLeast: z.number().int().min(2),
        within: Duration,
        per: z.enum(["device", "resident"]).default("resident"),
        event: OneOrMany(TypePattern).optional(),
      })
      .optional(),
    all: z.array(ConditionSchema).min(1).optional(),
    any: z.array(ConditionSchema).min(1).optional(),
    not: ConditionSchema.optional(),
  }),
);

const Message = z.strictObject({ da: z.string().min(1), en: z.string().min(1) });

export const RECIPIENTS = ["unit", "nurse", "site", "fallback"] as const;
const Level = z.strictObject({
  /** unit: staff of the unit; nurse: role nurse at the site; site: everyone at the site; fallback: webhook. */
  to: z.array(z.enum(RECIPIENTS)).min(1),
  /**
   * The channels that reach them (console, push, paging; webhook for a system). Omitted: every
   * person channel configured. `fallback` in `to` adds the webhook.
   */
  via: z
    .array(z.enum(CHANNEL_NAMES))
    .min(1)
    .refine((v) => new Set(v).size === v.length, "a channel is named twice")
    .optional(),
  /** How long this level has to accept before the next one is tried. */
  after: Duration,
});
export type Level = z.infer<typeof Level>;

const Raise = z.strictObject({
  alert: z.string().regex(/^[a-z][a-z0-9-]*$/),
  priority: z.enum(PRIORITIES),
  message: Message,
  /** Overrides the priority's default ladder. */
  escalation: z.array(Level).min(1).optional(),
  /** Overrides the priority's default re-notification interval; "0s" = once. */
  renotify: Duration.optional(),
  /**
   * Raise only if no event of these types from the same device follows within the window
   * (a bed exit without a return within 10 minutes). The window is a durable timer.
   */
  unless: z.strictObject({ event: OneOrMany(TypePattern), within: Duration }).optional(),
});

export const RuleSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    description: z.string().optional(),
    enabled: z.boolean().default(true),
    when: ConditionSchema,
    raise: Raise.optional(),
    /** Close the open alert of this type for the same device: cancelled (by the device) or resolved. */
    cancel: z.strictObject({ alert: z.string(), reason: z.string().optional() }).optional(),
    resolve: z.strictObject({ alert: z.string(), outcome: z.enum(OUTCOMES).default("no-action") }).optional(),
  })
  .refine((r) => !(r.raise && (r.cancel || r.resolve)), {
    message: "a rule either raises, or cancels/resolves",
  })
  .refine((r) => r.raise || r.cancel || r.resolve, { message: "a rule needs raise, cancel or resolve" });
export type Rule = z.infer<typeof RuleSchema>;

const DEFAULT_LADDERS: Record<
  "high" | "medium" | "low" | "info",
  { to: (typeof RECIPIENTS)[number][]; after: string }[]
> = {
  high: [
    { to: ["unit"], after: "60s" },
    { to: ["unit", "nurse"], after: "60s" },
    { to: ["site"], after: "60s" },
    { to: ["site", "fallback"], after: "120s" },
  ],
  medium: [
    { to: ["unit"], after: "3m" },
    { to: ["unit", "nurse"], after: "3m" },
    { to: ["site", "fallback"], after: "5m" },
  ],
  low: [
    { to: ["unit"], after: "30m" },
    { to: ["site", "fallback"], after: "60m" },
  ],
  info: [{ to: ["unit"], after: "24h" }],
};

export const RuleFileSchema = z.strictObject({
  /**
   * An event that reaches the gateway longer than this after it happened (a device replaying a
   * buffer after an outage) is logged, counted and may cancel or resolve, but raises no alert: the
   * night shift is not paged for yesterday's bed exit. The event log and reports still have it.
   */
  staleAfter: Duration.prefault("6h"),
  /** Per priority (IEC 60601-1-8's idea: high repeats every few seconds, medium less, low once). */
  renotify: z
    .strictObject({
      high: Duration.prefault("10s"),
      medium: Duration.prefault("60s"),
      low: Duration.prefault("0s"),
      info: Duration.prefault("0s"),
    })
    .prefault({}),
  escalation: z
    .strictObject({
      high: z.array(Level).min(1).prefault(DEFAULT_LADDERS.high),
      medium: z.array(Level).min(1).prefault(DEFAULT_LADDERS.medium),
      low: z.array(Level).min(1).prefault(DEFAULT_LADDERS.low),
      info: z.array(Level).min(1).prefault(DEFAULT_LADDERS.info),
    })
    .prefault({}),
  rules: z.array(RuleSchema),
});
export type RuleFile = z.infer<typeof RuleFileSchema>;

/**
 * Ladders checked against the channels this gateway has: a level that names a channel which is
 * not configured would silently reach nobody, so it is a boot error (and a reload keeps the
 * running rules).
 */
export function ladderChannelProblems(
  file: RuleFile,
  configured: ReadonlySet<ChannelName>,
  hints: Partial<Record<ChannelName, string>> = {},
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const check = (ladder: Level[], path: (string | number)[]) =>
    ladder.forEach((level, i) => {
      level.via?.forEach((c, j) => {
        if (!configured.has(c))
          problems.push({
            path: [...path, i, "via", j],
            message: `channel "${c}" is not configured${hints[c] ? ` (${hints[c]})` : ""}`,
          });
      });
      if (level.via && !level.via.some((c) => c !== "webhook") && !level.to.every((t) => t === "fallback"))
        problems.push({
          path: [...path, i, "via"],
          message: `level asks people (${level.to.join(", ")}) but names no channel that reaches a person`,
        });
    });
  for (const p of PRIORITIES) check(file.escalation[p], ["escalation", p]);
  file.rules.forEach((r, i) => {
    if (r.raise?.escalation) check(r.raise.escalation, ["rules", i, "raise", "escalation"]);
  });
  return problems;
}

export function ruleProblems(file: RuleFile): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const ids = new Set<string>();
  file.rules.forEach((r, i) => {
    if (ids.has(r.id)) problems.push({ path: ["rules", i, "id"], message: `duplicate rule id "${r.id}"` });
    ids.add(r.id);
  });
  return problems;
}
