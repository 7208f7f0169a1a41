/**
 * The alert lifecycle: raise (or update the open alert with the same key), deliver, accept,
 * reject, attend, resolve, cancel, escalate, re-notify. Every transition is one transaction that
 * updates the alert and appends to the audit log; the audit id is the `seq` staff clients order and
 * resume by.
 *
 * An alert never ends in a black hole: a level with nobody connected, or where everybody rejected,
 * escalates at once; the last level repeats (fallback webhook included) until someone accepts, and
 * the alert stays visibly "undelivered" until a person's screen or the fallback confirmed receipt.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type Database from "better-sqlite3";
import { ApiError } from "../errors.js";
import type { LoggedEvent } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Priority } from "../model/event.js";
import type { Level } from "../rules/schema.js";
import type { DurableTimers, Timer } from "../rules/timers.js";
import type { StaffIdentity } from "../staff/protocol.js";
import type { Db } from "../store/db.js";
import {
  type Actor,
  type AlertState,
  type AlertView,
  type AuditAction,
  type AuditEntry,
  OPEN_STATES,
  type Outcome,
} from "./model.js";
import { allowedOutcomes, outcomeAllowed } from "./outcomes.js";

export interface RaiseSpec {
  ruleId: string;
  alert: string;
  priority: Priority;
  message: { da: string; en: string };
  ladder: Level[];
  renotifyMs: number;
  /** What the rule's count condition measured: `{count}` in the message (the alert's count otherwise). */
  count?: number;
}

export interface AlertChange {
  seq: number;
  change: AuditAction;
  alert: AlertView;
  actor: string;
  reason: string | null;
}

/** Who is connected right now: the staff channel answers. */
export interface StaffDirectory {
  connected(): StaffIdentity[];
}

/** The fallback at the end of a ladder: answers whether one is configured and sends. */
export interface Fallback {
  configured(): boolean;
  send(alert: AlertView, auditId: number): void;
}

export interface AlertManagerContext {
  db: Db;
  timers: DurableTimers;
  log: Logger;
  staff: StaffDirectory;
  fallback: Fallback;
  now?: () => number;
}

interface AlertRow {
  id: string;
  dedupe_key: string;
  open: number;
  type: string;
  priority: Priority;
  state: AlertState;
  message_da: string;
  message_en: string;
  rule_id: string;
  site_id: string;
  unit_id: string;
  room_id: string | null;
  resident_ref: string | null;
  device_id: string;
  count: number;
  first_event_seq: number | null;
  last_event_seq: number | null;
  last_event_type: string;
  raised_at: number;
  updated_at: number;
  accepted_by: string | null;
  accepted_by_name: string | null;
  accepted_at: number | null;
  attending_at: number | null;
  resolved_at: number | null;
  outcome: Outcome | null;
  level: number;
  undelivered: number;
  delivered_to: string;
  rejected_by: string;
  ladder: string;
}

const PRIORITY_RANK: Record<Priority, number> = { high: 3, medium: 2, low: 1, info: 0 };
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const staffActor = (s: StaffIdentity): Actor => ({ id: `staff:${s.id}`, name: s.name });

export function dedupeKey(alertType: string, deviceId: string, residentRef: string | null): string {
  return `${alertType}|${deviceId}|${residentRef ?? ""}`;
}

function render(template: string, e: LoggedEvent, count: number): string {
  const vars: Record<string, string> = {
    room: e.placement.roomId ?? "-",
    unit: e.placement.unitId,
    site: e.placement.siteId,
    resident: e.placement.residentRef ?? "-",
    device: e.deviceId,
    count: String(count),
    event: e.type,
  };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m);
}

/** Emits "change" (AlertChange) after every committed transition, "renotify" (AlertView). */
export class AlertManager extends EventEmitter {
  private readonly now: () => number;
  private readonly statements = new Map<string, Database.Statement>();
  /** Open batch() calls, and the changes waiting for the outermost one to commit. */
  private depth = 0;
  private queued: AlertChange[] = [];

  constructor(private readonly ctx: AlertManagerContext) {
    super();
    this.now = ctx.now ?? Date.now;
    ctx.timers.on<{ alertId: string; level: number }>("escalate", (t) => this.onEscalateTimer(t));
    ctx.timers.on<{ alertId: string }>("renotify", (t) => this.onRenotifyTimer(t));
  }

  // ---------------------------------------------------------------- queries

  get(id: string): AlertView | undefined {
    const row = this.row(id);
    return row ? view(row) : undefined;
  }

  open(filter: { siteIds?: readonly string[] } = {}): AlertView[] {
    const rows = this.stmt("SELECT * FROM alerts WHERE open = 1 ORDER BY raised_at").all() as AlertRow[];
    return rows.filter((r) => !filter.siteIds || filter.siteIds.includes(r.site_id)).map(view);
  }

  history(id: string): AuditEntry[] {
    return (
      this.stmt("SELECT * FROM alert_audit WHERE alert_id = ? ORDER BY id").all(id) as {
        id: number;
        alert_id: string;
        at: number;
        action: AuditAction;
        actor_id: string;
        actor_name: string;
        reason: string | null;
        state_after: AlertState;
        data: string | null;
      }[]
    ).map((r) => ({
      id: r.id,
      alertId: r.alert_id,
      at: iso(r.at)!,
      action: r.action,
      actor: { id: r.actor_id, name: r.actor_name },
      reason: r.reason,
      stateAfter: r.state_after,
      data: r.data ? JSON.parse(r.data) : null,
    }));
  }

  /** Latest audit id: the position a fresh snapshot corresponds to. */
  head(): number {
    const r = this.stmt("SELECT max(id) AS m FROM alert_audit").get() as { m: number | null };
    return r.m ?? 0;
  }

  /** Changes after `seq` for the given sites, in order (for resume). Null if more than `limit`. */
  changesSince(seq: number, siteIds: readonly string[], limit: number): AlertChange[] | null {
    if (!siteIds.length) return [];
    const rows = this.stmt(
      `SELECT id, alert_id, action, actor_name, reason FROM alert_audit
         WHERE id > ? AND site_id IN (${siteIds.map(() => "?").join(",")}) ORDER BY id LIMIT ?`,
    ).all(seq, ...siteIds, limit + 1) as {
      id: number;
      alert_id: string;
      action: AuditAction;
      actor_name: string;
      reason: string | null;
    }[];
    if (rows.length > limit) return null;
    // Each change carries the alert as it is now: a client replaying catches up to the present.
    const cache = new Map<string, AlertView>();
    return rows.map((r) => {
      let alert = cache.get(r.alert_id);
      if (!alert) {
        alert = this.get(r.alert_id)!;
        cache.set(r.alert_id, alert);
      }
      return { seq: r.id, change: r.action, alert, actor: r.actor_name, reason: r.reason };
    });
  }

  /** Can this person see the alert? Their scope, widened by how far the alert has escalated. */
  visibleTo(alert: AlertView, staff: StaffIdentity): boolean {
    if (!staff.sites.includes(alert.site)) return false;
    if (staff.role === "manager" || staff.role === "admin") return true;
    if (staff.units === null || staff.units.includes(alert.unit)) return true;
    const row = this.row(alert.id);
    if (!row) return false;
    const reached = (JSON.parse(row.ladder) as Level[]).slice(0, row.level + 1).flatMap((l) => l.to);
    return reached.includes("site") || (reached.includes("nurse") && staff.role === "nurse");
  }

  // ---------------------------------------------------------------- rule actions

  /** Raise a new alert, or update the open one with the same key. */
  raise(spec: RaiseSpec, e: LoggedEvent, maintenance: { id: number; reason: string } | null): AlertView {
    return this.batch(() => {
      const key = dedupeKey(spec.alert, e.deviceId, e.placement.residentRef);
      const existing = this.stmt("SELECT * FROM alerts WHERE dedupe_key = ? AND open = 1").get(key) as
        | AlertRow
        | undefined;
      const now = this.now();
      const actor: Actor = { id: `rule:${spec.ruleId}`, name: `rule ${spec.ruleId}` };
      if (existing) {
        const upgraded = PRIORITY_RANK[spec.priority] > PRIORITY_RANK[existing.priority];
        // A lower-priority re-trigger (suspected after detected) must not soften the message.
        const rerender = PRIORITY_RANK[spec.priority] >= PRIORITY_RANK[existing.priority];
        const count = existing.count + 1;
        // The higher priority brings its ladder: a detected fall must not wait out a suspicion's delays.
        const level = upgraded ? Math.min(existing.level, spec.ladder.length - 1) : existing.level;
        const a = this.transition(
          existing,
          "updated",
          actor,
          upgraded ? `priority raised to ${spec.priority}` : null,
          {
            count,
            last_event_seq: e.logSeq,
            last_event_type: e.type,
            ...(rerender
              ? {
                  message_da: render(spec.message.da, e, spec.count ?? count),
                  message_en: render(spec.message.en, e, spec.count ?? count),
                }
              : {}),
            ...(upgraded ? { priority: spec.priority, ladder: JSON.stringify(spec.ladder), level } : {}),
          },
        );
        if (upgraded && a.state === "raised") {
          this.armRenotify(a.id, spec.renotifyMs);
          const timerId = `alert:${a.id}:escalate`;
          const due = this.now() + spec.ladder[level]!.after;
          const pending = this.ctx.timers.get(timerId);
          if (!pending || pending.dueAt > due || level !== existing.level)
            this.ctx.timers.set(timerId, "escalate", due, { alertId: a.id, level });
        }
        return a;
      }
      const id = `al_${now.toString(36)}${randomBytes(4).toString("hex")}`;
      const row: AlertRow = {
        id,
        dedupe_key: key,
        open: maintenance ? 0 : 1,
        type: spec.alert,
        priority: spec.priority,
        state: maintenance ? "suppressed" : "raised",
        message_da: render(spec.message.da, e, spec.count ?? 1),
        message_en: render(spec.message.en, e, spec.count ?? 1),
        rule_id: spec.ruleId,
        site_id: e.placement.siteId,
        unit_id: e.placement.unitId,
        room_id: e.placement.roomId,
        resident_ref: e.placement.residentRef,
        device_id: e.deviceId,
        count: 1,
        first_event_seq: e.logSeq,
        last_event_seq: e.logSeq,
        last_event_type: e.type,
        raised_at: now,
        updated_at: now,
        accepted_by: null,
        accepted_by_name: null,
        accepted_at: null,
        attending_at: null,
        resolved_at: null,
        outcome: null,
        level: 0,
        undelivered: maintenance ? 0 : 1,
        delivered_to: "[]",
        rejected_by: "[]",
        ladder: JSON.stringify(spec.ladder),
      };
      const reason = maintenance ? `maintenance #${maintenance.id}: ${maintenance.reason}` : null;
      const seq = this.batch(() => {
        this.stmt(
          `INSERT INTO alerts (${Object.keys(row).join(", ")}) VALUES (${Object.keys(row)
            .map((k) => `@${k}`)
            .join(", ")})`,
        ).run(row);
        return this.audit(row, maintenance ? "suppressed" : "raised", actor, reason, {
          eventSeq: e.logSeq,
          eventType: e.type,
          ...(maintenance ? { maintenanceId: maintenance.id } : {}),
        });
      });
      const a = view(row);
      this.announce({
        seq,
        change: maintenance ? "suppressed" : "raised",
        alert: a,
        actor: actor.name,
        reason,
      });
      if (maintenance) return a;
      this.armRenotify(id, spec.renotifyMs);
      this.enterLevel(id, 0, "raised");
      return this.get(id)!;
    });
  }

  /** The device withdrew it (fall.cancelled) or a rule closes it (device back online). */
  close(
    how: "cancelled" | "resolved",
    alertType: string,
    e: LoggedEvent,
    ruleId: string,
    opts: { reason?: string; outcome?: Outcome } = {},
  ): AlertView | undefined {
    return this.batch(() => {
      const row = this.stmt("SELECT * FROM alerts WHERE dedupe_key = ? AND open = 1").get(
        dedupeKey(alertType, e.deviceId, e.placement.residentRef),
      ) as AlertRow | undefined;
      if (!row) return undefined;
      const actor: Actor = { id: `device:${e.deviceId}`, name: `${e.type} (rule ${ruleId})` };
      const now = this.now();
      const result = this.transition(row, how, actor, opts.reason ?? e.type, {
        state: how,
        open: 0,
        resolved_at: now,
        ...(how === "resolved" ? { outcome: opts.outcome ?? "no-action" } : {}),
      });
      this.ctx.timers.cancelPrefix(`alert:${row.id}:`);
      return result;
    });
  }

  /** A staff presence button in the room: open accepted alerts there become attending. */
  presenceInRoom(e: LoggedEvent): void {
    return this.batch(() => {
      if (!e.placement.roomId) return;
      const rows = this.stmt(
        "SELECT * FROM alerts WHERE open = 1 AND site_id = ? AND room_id = ? AND state IN ('raised', 'accepted')",
      ).all(e.placement.siteId, e.placement.roomId) as AlertRow[];
      for (const row of rows) {
        const now = this.now();
        this.transition(
          row,
          "attending",
          { id: `device:${e.deviceId}`, name: "staff presence in the room" },
          e.type,
          {
            state: "attending",
            attending_at: now,
            ...(row.accepted_at === null ? { accepted_at: now } : {}),
          },
        );
        this.ctx.timers.cancelPrefix(`alert:${row.id}:`);
      }
    });
  }

  // ---------------------------------------------------------------- staff actions

  received(id: string, staff: StaffIdentity): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      const delivered = JSON.parse(row.delivered_to) as string[];
      if (delivered.includes(staff.name) && !row.undelivered) return view(row);
      return this.transition(row, "delivered", staffActor(staff), null, {
        delivered_to: JSON.stringify(delivered.includes(staff.name) ? delivered : [...delivered, staff.name]),
        undelivered: 0,
      });
    });
  }

  accept(id: string, staff: StaffIdentity): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      if (row.state === "accepted" || row.state === "attending") {
        if (row.accepted_by === staff.id) return view(row);
        throw new ApiError("already_taken", `already taken by ${row.accepted_by_name}`);
      }
      this.requireState(row, ["raised"], "accept");
      const a = this.transition(row, "accepted", staffActor(staff), null, {
        state: "accepted",
        accepted_by: staff.id,
        accepted_by_name: staff.name,
        accepted_at: this.now(),
        undelivered: 0,
      });
      this.ctx.timers.cancelPrefix(`alert:${id}:`);
      return a;
    });
  }

  reject(id: string, staff: StaffIdentity, reason?: string): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      this.requireState(row, ["raised"], "reject");
      const rejected = JSON.parse(row.rejected_by) as string[];
      const a = this.transition(row, "rejected", staffActor(staff), reason ?? null, {
        rejected_by: JSON.stringify(rejected.includes(staff.id) ? rejected : [...rejected, staff.id]),
      });
      // Everybody asked at this level said no: the next level now, not after the delay.
      const recipients = this.recipients(this.row(id)!, row.level);
      if (!recipients.people.length) this.escalate(id, row.level, "every recipient rejected");
      return this.get(id) ?? a;
    });
  }

  attend(id: string, staff: StaffIdentity): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      this.requireState(row, ["accepted"], "attend");
      if (row.accepted_by !== staff.id)
        throw new ApiError("already_taken", `taken by ${row.accepted_by_name}`);
      return this.transition(row, "attending", staffActor(staff), null, {
        state: "attending",
        attending_at: this.now(),
      });
    });
  }

  resolve(id: string, staff: StaffIdentity, outcome: Outcome, note?: string): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      this.requireState(row, ["accepted", "attending"], "resolve");
      if (!outcomeAllowed(row.type, outcome))
        throw new ApiError("outcome_not_allowed", undefined, {
          type: row.type,
          outcome,
          allowed: allowedOutcomes(row.type),
        });
      const a = this.transition(row, "resolved", staffActor(staff), note ?? null, {
        state: "resolved",
        open: 0,
        resolved_at: this.now(),
        outcome,
      });
      this.ctx.timers.cancelPrefix(`alert:${id}:`);
      return a;
    });
  }

  comment(id: string, staff: StaffIdentity, text: string): AlertView {
    return this.batch(() => {
      const row = this.mustGet(id, staff);
      return this.transition(row, "comment", staffActor(staff), text, {});
    });
  }

  /** The fallback webhook reported an attempt: delivered counts as received by somebody. */
  fallbackResult(id: string, ok: boolean, detail: string): void {
    return this.batch(() => {
      const row = this.row(id);
      if (!row) return;
      this.transition(
        row,
        ok ? "fallback_delivered" : "fallback_failed",
        { id: "system", name: "fallback webhook" },
        detail,
        ok ? { undelivered: 0 } : {},
      );
    });
  }

  // ---------------------------------------------------------------- escalation

  /** Called when the staff directory changes: an alert nobody can receive moves on at once. */
  recheckUndelivered(): void {
    return this.batch(() => {
      const rows = this.stmt("SELECT * FROM alerts WHERE open = 1 AND state = 'raised'").all() as AlertRow[];
      for (const row of rows) {
        const r = this.recipients(row, row.level);
        if (!r.people.length && !r.fallback) this.escalate(row.id, row.level, "no recipient connected");
      }
    });
  }

  /**
   * Who is asked at a level: connected people in its scope who have not already rejected this
   * alert (someone who said no at the unit level is not the answer at the next level either).
   */
  private recipients(row: AlertRow, level: number): { people: StaffIdentity[]; fallback: boolean } {
    const ladder = JSON.parse(row.ladder) as Level[];
    const targets = ladder[Math.min(level, ladder.length - 1)]!.to;
    const rejected = JSON.parse(row.rejected_by) as string[];
    const people = this.ctx.staff.connected().filter((s) => {
      if (!s.sites.includes(row.site_id) || s.role === "manager" || rejected.includes(s.id)) return false;
      if (targets.includes("site")) return true;
      if (targets.includes("nurse") && s.role === "nurse") return true;
      return targets.includes("unit") && (s.units === null || s.units.includes(row.unit_id));
    });
    return { people, fallback: targets.includes("fallback") && this.ctx.fallback.configured() };
  }

  /** Arrive at a level: notify, schedule the next step, or move on at once if nobody is there. */
  private enterLevel(id: string, level: number, why: string): void {
    for (let guard = 0; guard < 20; guard++) {
      const row = this.row(id);
      if (row?.state !== "raised") return;
      const ladder = JSON.parse(row.ladder) as Level[];
      const step = ladder[Math.min(level, ladder.length - 1)]!;
      const { people, fallback } = this.recipients(row, level);
      if (fallback) this.ctx.fallback.send(view(row), this.head());
      if (people.length || fallback) {
        this.ctx.timers.set(`alert:${id}:escalate`, "escalate", this.now() + step.after, {
          alertId: id,
          level,
        });
        return;
      }
      const last = level >= ladder.length - 1;
      if (last) {
        // Nobody anywhere and no fallback: stay loud, try the whole ladder's end again later.
        this.ctx.log.error(
          { alertId: id, level, why },
          "alert has no recipient and no fallback: undelivered",
        );
        this.ctx.timers.set(`alert:${id}:escalate`, "escalate", this.now() + step.after, {
          alertId: id,
          level,
        });
        return;
      }
      level = this.bumpLevel(row, level + 1, `no recipient connected at level ${level}`);
    }
  }

  private escalate(id: string, fromLevel: number, reason: string): void {
    const row = this.row(id);
    if (row?.state !== "raised" || row.level !== fromLevel) return;
    const ladder = JSON.parse(row.ladder) as Level[];
    const next = Math.min(fromLevel + 1, ladder.length - 1);
    const level = next === fromLevel ? fromLevel : this.bumpLevel(row, next, reason);
    if (next === fromLevel)
      this.transition(
        row,
        "escalated",
        { id: "system", name: "escalation" },
        `${reason}; repeating last level`,
        {},
      );
    this.enterLevel(id, level, reason);
  }

  private bumpLevel(row: AlertRow, level: number, reason: string): number {
    this.transition(row, "escalated", { id: "system", name: "escalation" }, reason, { level });
    return level;
  }

  private onEscalateTimer(t: Timer<{ alertId: string; level: number }>): void {
    return this.batch(() => {
      this.escalate(t.payload.alertId, t.payload.level, "not accepted in time");
    });
  }

  private armRenotify(id: string, intervalMs: number): void {
    if (intervalMs > 0)
      this.ctx.timers.set(`alert:${id}:renotify`, "renotify", this.now() + intervalMs, {
        alertId: id,
        intervalMs,
      });
  }

  private onRenotifyTimer(t: Timer<{ alertId: string; intervalMs?: number }>): void {
    const row = this.row(t.payload.alertId);
    if (row?.state !== "raised") return;
    this.emit("renotify", view(row));
    if (t.payload.intervalMs) this.armRenotify(row.id, t.payload.intervalMs);
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * One transaction for a whole step (an alert, its audit entries and its timers: one fsync, and
   * one wait for the write lock the event-log writer also takes); nested calls are savepoints.
   * Changes are announced after the outermost commit, in order; a nested call that throws takes
   * its writes and its announcements with it.
   */
  batch<T>(fn: () => T): T {
    const mark = this.queued.length;
    this.depth++;
    let result: T;
    try {
      result = this.ctx.db.transaction(fn)();
    } catch (err) {
      this.queued.length = mark;
      throw err;
    } finally {
      this.depth--;
    }
    if (this.depth === 0 && this.queued.length) {
      const changes = this.queued;
      this.queued = [];
      for (const c of changes) this.emitChange(c);
    }
    return result;
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.ctx.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private row(id: string): AlertRow | undefined {
    return this.stmt("SELECT * FROM alerts WHERE id = ?").get(id) as AlertRow | undefined;
  }

  private mustGet(id: string, staff: StaffIdentity): AlertRow {
    const row = this.row(id);
    if (!row || !this.visibleTo(view(row), staff))
      throw new ApiError("alert_not_found", `no alert "${id}" in your scope`);
    if (staff.role === "manager")
      throw new ApiError("forbidden", "managers see alerts but do not act on them");
    return row;
  }

  private requireState(row: AlertRow, allowed: AlertState[], action: string): void {
    if (!allowed.includes(row.state))
      throw new ApiError("illegal_transition", `cannot ${action} an alert that is ${row.state}`, {
        state: row.state,
        allowed,
      });
  }

  /** Update the row and append the audit entry in one transaction, then announce. */
  private transition(
    row: AlertRow,
    action: AuditAction,
    actor: Actor,
    reason: string | null,
    changes: Partial<AlertRow>,
  ): AlertView {
    const now = this.now();
    const next: AlertRow = { ...row, ...changes, updated_at: now };
    const seq = this.batch(() => {
      const cols = Object.keys(changes);
      this.stmt(
        `UPDATE alerts SET ${[...cols, "updated_at"].map((c) => `${c} = @${c}`).join(", ")} WHERE id = @id`,
      ).run({ ...pick(next, cols), updated_at: now, id: row.id });
      return this.audit(next, action, actor, reason, null);
    });
    const a = view(next);
    this.announce({ seq, change: action, alert: a, actor: actor.name, reason });
    return a;
  }

  private audit(
    row: AlertRow,
    action: AuditAction,
    actor: Actor,
    reason: string | null,
    data: unknown,
  ): number {
    const info = this.stmt(
      `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, reason, state_after, site_id, unit_id, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      row.id,
      this.now(),
      action,
      actor.id,
      actor.name,
      reason,
      row.state,
      row.site_id,
      row.unit_id,
      data ? JSON.stringify(data) : null,
    );
    return Number(info.lastInsertRowid);
  }

  private announce(change: AlertChange): void {
    if (this.depth > 0) this.queued.push(change);
    else this.emitChange(change);
  }

  private emitChange(change: AlertChange): void {
    for (const listener of this.listeners("change")) {
      try {
        (listener as (c: AlertChange) => void)(change);
      } catch (err) {
        this.ctx.log.error({ err, alertId: change.alert.id }, "alert change listener failed");
      }
    }
  }
}

function pick(row: AlertRow, cols: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of cols) out[c] = (row as unknown as Record<string, unknown>)[c];
  return out;
}

export function view(r: AlertRow): AlertView {
  return {
    id: r.id,
    type: r.type,
    priority: r.priority,
    state: r.state,
    message: { da: r.message_da, en: r.message_en },
    site: r.site_id,
    unit: r.unit_id,
    room: r.room_id,
    resident: r.resident_ref,
    deviceId: r.device_id,
    ruleId: r.rule_id,
    raisedAt: iso(r.raised_at)!,
    updatedAt: iso(r.updated_at)!,
    count: r.count,
    lastEventType: r.last_event_type,
    acceptedBy: r.accepted_by ? { id: r.accepted_by, name: r.accepted_by_name ?? r.accepted_by } : null,
    acceptedAt: iso(r.accepted_at),
    attendingAt: iso(r.attending_at),
    resolvedAt: iso(r.resolved_at),
    outcome: r.outcome,
    level: r.level,
    undelivered: r.undelivered === 1 && OPEN_STATES.includes(r.state),
    deliveredTo: JSON.parse(r.delivered_to) as string[],
    rejectedBy: JSON.parse(r.rejected_by) as string[],
  };
}
