/**
 * Pure evaluation of rule conditions against one event. Everything a condition needs beyond the
 * event itself comes in through the context, so tests can evaluate without a database.
 */
import type { LoggedEvent } from "../ingest/pipeline.js";
import { isWithinLocalWindow } from "../time/zone.js";
import type { Condition } from "./schema.js";

export interface EvalContext {
  event: LoggedEvent;
  deviceKind: string;
  residentFlags: readonly string[];
  timeZone: string;
  /** Events matching `types` for this device or resident since `sinceMs` (this one included). */
  count(per: "device" | "resident", types: readonly string[] | null, sinceMs: number): number;
}

const asList = (v: string | string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v : [v];

export function typeMatches(type: string, patterns: readonly string[]): boolean {
  return patterns.some(
    (p) => p === "*" || p === type || (p.endsWith(".*") && type.startsWith(p.slice(0, -1))),
  );
}

export function evaluate(c: Condition, ctx: EvalContext): boolean {
  const e = ctx.event;
  const p = e.placement;
  const event = asList(c.event);
  if (event && !typeMatches(e.type, event)) return false;
  const kind = asList(c.deviceKind);
  if (kind && !kind.includes(ctx.deviceKind)) return false;
  const profile = asList(c.profile);
  if (profile && !profile.includes(e.profile)) return false;
  const site = asList(c.site);
  if (site && !site.includes(p.siteId)) return false;
  const unit = asList(c.unit);
  if (unit && !unit.includes(p.unitId)) return false;
  const room = asList(c.room);
  if (room && (p.roomId === null || !room.includes(p.roomId))) return false;
  const priority = asList(c.priority);
  if (priority && (e.priority === undefined || !priority.includes(e.priority))) return false;
  if (c.dataPresent) {
    const data = e.data as Record<string, unknown>;
    if (!c.dataPresent.every((k) => data[k] !== undefined && data[k] !== null)) return false;
  }
  if (c.residentFlags && !c.residentFlags.every((f) => ctx.residentFlags.includes(f))) return false;
  // [from, to) by the local wall clock; from > to spans midnight (src/time/zone.ts).
  if (c.time && !isWithinLocalWindow(Date.parse(e.occurredAt), c.time, ctx.timeZone)) return false;
  if (c.all && !c.all.every((x) => evaluate(x, ctx))) return false;
  if (c.any && !c.any.some((x) => evaluate(x, ctx))) return false;
  if (c.not && evaluate(c.not, ctx)) return false;
  // Counting touches the event log: last, and only when everything cheaper held.
  if (c.count) {
    if (c.count.per === "resident" && !p.residentRef) return false;
    const types = asList(c.count.event) ?? event ?? null;
    const n = ctx.count(c.count.per, types, Date.parse(e.occurredAt) - c.count.within);
    if (n < c.count.atLeast) return false;
  }
  return true;
}
