/**
 * The alert lifecycle: raise (or update the open alert with the same key), deliver, accept,
 * reject, attend, resolve, cancel, escalate, re-notify. Every transition is one transaction that
 * updates the alert and appends to the audit log; the audit id is the `seq` staff clients order and
 * resume by. Alerts, audit and channel attempts are read and written through an AlertStore
 * (store.ts), synchronously inside a step; the manager holds no SQL.
 *
 * An alert never ends in a black hole: a level with nobody connected, or where everybody rejected,
 * escalates at once; the last level repeats (fallback webhook included) until someone accepts, and
 * the alert stays visibly "undelivered" until a person's screen or the fallback confirmed receipt.
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { ApiError } from "../errors.js";
import type { LoggedEvent } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Priority } from "../model/event.js";
import type { Level } from "../rules/schema.js";
import type { DurableTimers, Timer } from "../rules/timers.js";
import type { StaffIdentity } from "../staff/protocol.js";
import type { Durability } from "../store/durability.js";
import {
  type AlertChannel,
  type Audience,
  type ChannelName,
  type ChannelReporter,
  type DeliveryReason,
  PERSON_CHANNELS,
  type Recipient,
} from "./channels/channel.js";
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
import type { AlertRow, AlertStore, AuditSummary } from "./store.js";

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

export interface AlertManagerContext {
  /**
   * The alerts, their audit and the channel attempts: the partition state's alert store
   * (src/rules/partition.ts), whose `step` is the unit of work the timers' writes share.
   */
  store: AlertStore;
  timers: DurableTimers;
  log: Logger;
  /** The delivery channels configured, by name (console always; push, paging, webhook when set up). */
  channels: ReadonlyMap<ChannelName, AlertChannel>;
  metrics?: Metrics;
  /** Display names of a site and unit, for text on lock screens and handsets (ids otherwise). */
  placeNames?: (siteId: string, unitId: string) => { site: string; unit: string };
  now?: () => number;
  /**
   * Holds channel calls until their attempts are durable: the single process's fsync of its
   * connection (`Durability`), a partition owner's flush to PostgreSQL in cluster mode
   * (src/cluster/partition-host.ts).
   */
  durability?: Pick<Durability, "after">;
}

/** The channels a ladder level uses: those it names, or every person channel configured; `fallback` adds the webhook. */
export function levelChannels(level: Level, configured: ReadonlySet<ChannelName>): ChannelName[] {
  const named = level.via ?? PERSON_CHANNELS.filter((c) => configured.has(c));
  const out = named.filter((c) => configured.has(c));
  if (level.to.includes("fallback") && configured.has("webhook") && !out.includes("webhook"))
    out.push("webhook");
  return out;
}

/** A channel's reach at one level: whom it can reach now. */
interface Reach {
  channel: AlertChannel;
  recipients: Recipient[];
}

/** Transitions after which nobody needs to be reached for the alert any more. */
const SETTLING = new Set<AuditAction>(["accepted", "attending", "resolved", "cancelled"]);

const PRIORITY_RANK: Record<Priority, number> = { high: 3, medium: 2, low: 1, info: 0 };
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const staffActor = (s: StaffIdentity): Actor => ({ id: `staff:${s.id}`, name: s.name });

/** AlertManager.visibleTo() for an alert read as a row (the HTTP API's history). */
export function alertVisibleTo(row: AlertRow, staff: StaffIdentity): boolean {
  if (!staff.sites.includes(row.site_id)) return false;
  if (staff.role === "manager" || staff.role === "admin") return true;
  if (staff.units === null || staff.units.includes(row.unit_id)) return true;
  return reachedBy(row, staff);
}

/** Has the alert escalated as far as this person, outside their units? */
function reachedBy(row: AlertRow, staff: StaffIdentity): boolean {
  const reached = (JSON.parse(row.ladder) as Level[]).slice(0, row.level + 1).flatMap((l) => l.to);
  return reached.includes("site") || (reached.includes("nurse") && staff.role === "nurse");
}

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
  private readonly store: AlertStore;
  /** Open batch() calls, and the changes waiting for the outermost one to commit. */
  private depth = 0;
  private queued: AlertChange[] = [];
  /** Channel calls waiting for the outermost batch() to commit (their attempts are rows by then). */
  private calls: (() => void)[] = [];
  /** Whether the outermost step now open is replayable (see replayable()); nested steps follow it. */
  private outermostReplayable = false;
  private readonly configured: ReadonlySet<ChannelName>;

  constructor(private readonly ctx: AlertManagerContext) {
    super();
    this.now = ctx.now ?? Date.now;
    this.store = ctx.store;
    this.configured = new Set(ctx.channels.keys());
    ctx.timers.on<{ alertId: string; level: number }>("escalate", (t) => this.onEscalateTimer(t));
    ctx.timers.on<{ alertId: string }>("renotify", (t) => this.onRenotifyTimer(t));
    ctx.timers.on<{ alertId: string; level: number }>("enter", (t) => this.onEnterTimer(t));
  }

  // ---------------------------------------------------------------- queries

  get(id: string): AlertView | undefined {
    const row = this.row(id);
    return row ? view(row) : undefined;
  }

  open(filter: { siteIds?: readonly string[] } = {}): AlertView[] {
    const rows = this.store.openAlerts();
    return rows.filter((r) => !filter.siteIds || filter.siteIds.includes(r.site_id)).map(view);
  }

  history(id: string): AuditEntry[] {
    return this.store.auditOf(id);
  }

  /** Latest audit id: the position a fresh snapshot corresponds to. */
  head(): number {
    return this.store.head();
  }

  /** Changes after `seq` for the given sites, in order (for resume). Null if more than `limit`. */
  changesSince(seq: number, siteIds: readonly string[], limit: number): AlertChange[] | null {
    if (!siteIds.length) return [];
    const rows = this.store.auditAfter(seq, siteIds, limit + 1);
    if (rows.length > limit) return null;
    // Each change carries the alert as it is now: a client replaying catches up to the present.
    const cache = new Map<string, AlertView>();
    return rows.map((r) => {
      let alert = cache.get(r.alert_id);
      if (!alert) {
        alert = this.get(r.alert_id)!;
        cache.set(r.alert_id, alert);
      }
      return alertChange(r, alert);
    });
  }

  /** Can this person see the alert? Their scope, widened by how far the alert has escalated. */
  visibleTo(alert: AlertView, staff: StaffIdentity): boolean {
    if (!staff.sites.includes(alert.site)) return false;
    if (staff.role === "manager" || staff.role === "admin") return true;
    if (staff.units === null || staff.units.includes(alert.unit)) return true;
    const row = this.row(alert.id);
    return row ? reachedBy(row, staff) : false;
  }

  // ---------------------------------------------------------------- rule actions

  /** Raise a new alert, or update the open one with the same key. */
  raise(spec: RaiseSpec, e: LoggedEvent, maintenance: { id: number; reason: string } | null): AlertView {
    return this.batch(() => {
      const key = dedupeKey(spec.alert, e.deviceId, e.placement.residentRef);
      const existing = this.store.openByDedupeKey(key);
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
          // Every event's effect names the event, as "raised" does: after a crash, whether a logged
          // fall reached its alert is a lookup, and its replay can be checked against the log.
          { eventSeq: e.logSeq, eventType: e.type },
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
      // Derived from the rule and the event, not drawn at random: a raise replayed after a power
      // loss took its commit back is the same alert (see replayable()).
      const id = alertId(spec.ruleId, e);
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
        this.store.insert(row);
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
      // The first level's notifications follow in a step of their own, at once: the alert and its
      // "raised" entry are committed, and on the staff screens, without waiting for them (about half
      // of a fall's time in the rules). The step is a durable timer set in this transaction, so a
      // crash in between cannot lose it; it has the escalation timer's id, which enterLevel() then
      // moves to the level's deadline, and an accept or close cancels it with the alert's others.
      this.ctx.timers.set(`alert:${id}:escalate`, "enter", now, { alertId: id, level: 0 });
      // As soon as the task that raised it ends (its commit and its announcement made), not a turn of
      // the event loop later behind the devices' traffic: push and paging wait for this step.
      queueMicrotask(() => this.ctx.timers.fireDue());
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
      const row = this.store.openByDedupeKey(dedupeKey(alertType, e.deviceId, e.placement.residentRef));
      if (!row) return undefined;
      const actor: Actor = { id: `device:${e.deviceId}`, name: `${e.type} (rule ${ruleId})` };
      const now = this.now();
      const result = this.transition(
        row,
        how,
        actor,
        opts.reason ?? e.type,
        {
          state: how,
          open: 0,
          resolved_at: now,
          ...(how === "resolved" ? { outcome: opts.outcome ?? "no-action" } : {}),
        },
        { eventSeq: e.logSeq, eventType: e.type },
      );
      this.ctx.timers.cancelPrefix(`alert:${row.id}:`);
      return result;
    });
  }

  /** A staff presence button in the room: open accepted alerts there become attending. */
  presenceInRoom(e: LoggedEvent): void {
    return this.batch(() => {
      if (!e.placement.roomId) return;
      const rows = this.store.awaitingPresence(e.placement.siteId, e.placement.roomId);
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
      const confirmed = this.store.confirmScreenReceipt(id, staff.id, this.now());
      if (confirmed)
        this.ctx.metrics?.channelOutcomes.inc({ channel: "console", outcome: "delivered" }, confirmed);
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
      const reach = this.reach(this.row(id)!, row.level).filter((r) =>
        PERSON_CHANNELS.includes(r.channel.name),
      );
      if (!reach.length) this.escalate(id, row.level, "every recipient rejected");
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

  // ---------------------------------------------------------------- channels

  /** What channels use to report their attempts; one per channel, bound to its name. */
  reporter(channel: ChannelName): ChannelReporter {
    return {
      sent: (attemptId, detail) => this.attemptOutcome(channel, attemptId, "sent", detail),
      delivered: (attemptId, detail, opts) =>
        this.attemptOutcome(channel, attemptId, "delivered", detail, { toPerson: opts?.toPerson ?? false }),
      failed: (attemptId, detail, opts) =>
        this.attemptOutcome(channel, attemptId, "failed", detail, {
          gone: opts?.gone ?? false,
          retry: opts?.retry ?? false,
        }),
      retrying: (attemptId, detail) => this.attemptOutcome(channel, attemptId, "retrying", detail),
      healthChanged: () => {
        // Only a channel going down can leave an alert with nobody to reach: one coming back (a
        // paging link answering again, push out of its cool-down) cannot, and the re-check scans
        // every open alert, so a flapping link must not run it twice per flap.
        if (this.ctx.channels.get(channel)?.health().ok !== false) return;
        try {
          this.recheckUndelivered();
        } catch (err) {
          this.ctx.log.error({ err, channel }, "re-checking the ladder after a health change failed");
        }
      },
    };
  }

  /**
   * Attempts whose outcome was unknown when the gateway stopped (recorded, then the process died
   * before the channel answered) are made again, for alerts that still wait for a person.
   */
  resumeAttempts(): number {
    return this.batch(() => {
      const rows = this.store.pendingAttempts();
      let n = 0;
      for (const a of rows) {
        const channel = this.ctx.channels.get(a.channel);
        const row = this.row(a.alert_id);
        if (!channel || !row) continue;
        this.store.countRetry(a.id, this.now());
        this.ctx.metrics?.channelAttempts.inc({ channel: a.channel, reason: "retry" });
        const recipient: Recipient = {
          id: a.recipient_id,
          name: a.recipient_name,
          ...(a.staff_id ? { staffId: a.staff_id } : {}),
        };
        const alert = view(row);
        this.calls.push(() =>
          channel.deliver({
            attemptId: a.id,
            alert,
            reason: "retry",
            level: a.level,
            recipient,
            place: this.place(row),
          }),
        );
        n++;
      }
      return n;
    });
  }

  private attemptOutcome(
    channel: ChannelName,
    attemptId: number,
    outcome: "sent" | "delivered" | "failed" | "retrying",
    detail: string,
    opts: { toPerson?: boolean; gone?: boolean; retry?: boolean } = {},
  ): void {
    if (!this.store.available()) return;
    try {
      this.batch(() => {
        const a = this.store.attempt(attemptId);
        if (!a || a.channel !== channel) return;
        const status = outcome === "retrying" || (outcome === "failed" && opts.retry) ? "pending" : outcome;
        // A receipt is final: a late "sent" (the push service's 201 after the phone's receipt) does not undo it.
        if (a.status === "delivered" && status !== "delivered") return;
        this.store.setAttemptStatus(attemptId, status, detail, this.now());
        if (outcome === "retrying" || outcome === "sent") {
          if (outcome === "sent") this.ctx.metrics?.channelOutcomes.inc({ channel, outcome });
          return;
        }
        this.ctx.metrics?.channelOutcomes.inc({ channel, outcome });
        const row = this.row(a.alert_id);
        if (!row) return;
        const actor: Actor = { id: `channel:${channel}`, name: a.recipient_name };
        const data = { channel, attemptId, recipient: a.recipient_id, ...(opts.gone ? { gone: true } : {}) };
        if (outcome === "delivered") {
          // Already confirmed for this person (a second phone, a repeat): the audit has it once per attempt
          // but the alert's delivered list names each person once.
          const delivered = JSON.parse(row.delivered_to) as string[];
          const name = opts.toPerson ? a.recipient_name : null;
          this.transition(
            row,
            channel === "webhook" ? "fallback_delivered" : "delivered",
            actor,
            detail,
            {
              undelivered: 0,
              ...(name && !delivered.includes(name)
                ? { delivered_to: JSON.stringify([...delivered, name]) }
                : {}),
            },
            data,
          );
        } else {
          this.transition(
            row,
            channel === "webhook" ? "fallback_failed" : "delivery_failed",
            actor,
            detail,
            {},
            data,
          );
        }
      });
    } catch (err) {
      this.ctx.log.error({ err, channel, attemptId }, "could not record a channel attempt's outcome");
    }
  }

  /** Record one attempt per recipient (before any channel is called) and queue the calls for after commit. */
  private notify(row: AlertRow, level: number, reach: Reach[], reason: DeliveryReason): void {
    const now = this.now();
    const alert = view(row);
    const place = this.place(row);
    for (const { channel, recipients } of reach) {
      if (!recipients.length) continue;
      const ids: number[] = [];
      for (const r of recipients) {
        // A screen may have confirmed the alert before its level was entered (raise()): its
        // attempt is recorded as delivered, since that receipt found nothing to confirm.
        const status = channel.handsOverOnCommit
          ? alert.deliveredTo.includes(r.name)
            ? "delivered"
            : "sent"
          : "pending";
        const attemptId = this.store.recordAttempt({
          alertId: row.id,
          channel: channel.name,
          recipientId: r.id,
          recipientName: r.name,
          staffId: r.staffId ?? null,
          level,
          reason,
          status,
          at: now,
        });
        ids.push(attemptId);
        this.calls.push(() => channel.deliver({ attemptId, alert, reason, level, recipient: r, place }));
      }
      this.ctx.metrics?.channelAttempts.inc({ channel: channel.name, reason }, recipients.length);
      if (channel.handsOverOnCommit)
        this.ctx.metrics?.channelOutcomes.inc({ channel: channel.name, outcome: "sent" }, recipients.length);
      // One audit entry per channel and step, naming whom it asked; re-notifications through the
      // console are sound on open screens and leave no entry.
      this.transition(
        row,
        "notified",
        { id: `channel:${channel.name}`, name: channel.name },
        `${reason === "renotify" ? "re-notified" : `level ${level}`}: ${recipients.map((r) => r.name).join(", ")}`,
        {},
        { channel: channel.name, level, reason, attempts: ids },
      );
    }
  }

  private place(row: AlertRow): { site: string; unit: string } {
    return this.ctx.placeNames?.(row.site_id, row.unit_id) ?? { site: row.site_id, unit: row.unit_id };
  }

  // ---------------------------------------------------------------- escalation

  /** Called when the staff directory or a channel's health changes: an alert nobody can receive moves on at once. */
  recheckUndelivered(): void {
    return this.batch(() => {
      const rows = this.store.awaitingAcceptance();
      for (const row of rows) {
        if (!this.reach(row, row.level).length) this.escalate(row.id, row.level, "no recipient reachable");
      }
    });
  }

  /**
   * Who is asked at a level, per channel: the people in its audience that the channel can reach
   * now, leaving out whoever already rejected this alert (someone who said no at the unit level is
   * not the answer at the next level either). Channels that are down are skipped.
   */
  private reach(row: AlertRow, level: number): Reach[] {
    const ladder = JSON.parse(row.ladder) as Level[];
    const step = ladder[Math.min(level, ladder.length - 1)]!;
    const audience: Audience = {
      siteId: row.site_id,
      unitId: row.unit_id,
      targets: step.to.filter((t): t is "unit" | "nurse" | "site" => t !== "fallback"),
      excluded: JSON.parse(row.rejected_by) as string[],
    };
    const alert = view(row);
    const out: Reach[] = [];
    for (const name of levelChannels(step, this.configured)) {
      const channel = this.ctx.channels.get(name)!;
      let recipients: Recipient[];
      try {
        if (!channel.health().ok) continue;
        recipients = channel.reach(audience, alert);
      } catch (err) {
        this.ctx.log.error({ err, channel: name, alertId: row.id }, "channel failed to say whom it reaches");
        continue;
      }
      if (recipients.length) out.push({ channel, recipients });
    }
    return out;
  }

  /** Arrive at a level: notify, schedule the next step, or move on at once if nobody is there. */
  private enterLevel(id: string, level: number, why: string): void {
    for (let guard = 0; guard < 20; guard++) {
      const row = this.row(id);
      if (row?.state !== "raised") return;
      const ladder = JSON.parse(row.ladder) as Level[];
      const step = ladder[Math.min(level, ladder.length - 1)]!;
      const reach = this.reach(row, level);
      if (reach.length) {
        this.notify(row, level, reach, "level");
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
      level = this.bumpLevel(row, level + 1, `no recipient reachable at level ${level}`);
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

  /** The first level of a raised alert (see raise()). */
  private onEnterTimer(t: Timer<{ alertId: string; level: number }>): void {
    return this.replayable(() => {
      const row = this.row(t.payload.alertId);
      if (row?.state !== "raised" || row.level !== t.payload.level) return;
      this.enterLevel(row.id, t.payload.level, "raised");
    });
  }

  private onEscalateTimer(t: Timer<{ alertId: string; level: number }>): void {
    return this.replayable(() => {
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

  /** Screens sound again ("renotify"), and channels that re-notify (push) reach the level's people again. */
  private onRenotifyTimer(t: Timer<{ alertId: string; intervalMs?: number }>): void {
    return this.replayable(() => {
      const row = this.row(t.payload.alertId);
      if (row?.state !== "raised") return;
      this.emit("renotify", view(row), { replayable: true } satisfies ChangeMeta);
      const reach = this.reach(row, row.level).filter((r) => r.channel.renotifies !== false);
      if (reach.length) this.notify(row, row.level, reach, "renotify");
      if (t.payload.intervalMs) this.armRenotify(row.id, t.payload.intervalMs);
    });
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * A step whose every input is durable without this connection's next fsync: a logged event (the
   * event log is fsynced before the rules see it) or a due timer. If a power loss takes the step's
   * commit back, the rules replay the event from their cursor (committed in the same transaction)
   * or the timer fires again, and the same alert (its id derives from rule and event) comes back
   * with the same changes. So its changes go to staff and channels at once, not after the fsync:
   * a fall does not wait for a second disk flush. Steps taken by a person (accept, resolve) are not
   * replayable and wait (Durability).
   */
  replayable<T>(fn: () => T): T {
    return this.step(fn, true);
  }

  /**
   * One transaction for a whole step (an alert, its audit entries and its timers: one fsync, and
   * one wait for the write lock the event-log writer also takes); nested calls are savepoints.
   * Changes are announced after the outermost commit, in order; a nested call that throws takes
   * its writes and its announcements with it.
   */
  batch<T>(fn: () => T): T {
    return this.step(fn, false);
  }

  private step<T>(fn: () => T, replayable: boolean): T {
    if (this.depth === 0) this.outermostReplayable = replayable;
    const mark = this.queued.length;
    // Timers armed or cancelled inside leave memory again if the transaction rolls back (a full
    // disk at COMMIT): the database and the armed timers never disagree.
    const timerMark = this.ctx.timers.mark();
    const callMark = this.calls.length;
    this.depth++;
    let result: T;
    try {
      result = this.store.step(fn);
    } catch (err) {
      this.queued.length = mark;
      this.ctx.timers.undo(timerMark);
      this.calls.length = callMark;
      throw err;
    } finally {
      this.depth--;
    }
    if (this.depth === 0) this.ctx.timers.committed();
    const meta: ChangeMeta = { replayable: this.outermostReplayable };
    if (this.depth === 0 && this.queued.length) {
      const changes = this.queued;
      this.queued = [];
      for (const c of changes) this.emitChange(c, meta);
    }
    // Channels are called only once their attempts are committed: what a channel does is never
    // ahead of what the database says was tried.
    if (this.depth === 0 && this.calls.length) {
      const calls = this.calls;
      this.calls = [];
      const run = () => {
        for (const call of calls) {
          try {
            call();
          } catch (err) {
            this.ctx.log.error({ err }, "a channel threw while delivering");
          }
        }
      };
      // ... and once those rows are on disk, or would be made again by a replay if they were lost.
      // In the channels' own lane: a fall's page is not held behind a staff socket's turn.
      if (this.ctx.durability) this.ctx.durability.after(run, { sync: !meta.replayable, lane: "channels" });
      else run();
    }
    return result;
  }

  private row(id: string): AlertRow | undefined {
    return this.store.alert(id);
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
    data: Record<string, unknown> | null = null,
  ): AlertView {
    const now = this.now();
    const next: AlertRow = { ...row, ...changes, updated_at: now };
    const seq = this.batch(() => {
      this.store.update(row.id, changes, now);
      return this.audit(next, action, actor, reason, data);
    });
    const a = view(next);
    this.announce({ seq, change: action, alert: a, actor: actor.name, reason });
    if (SETTLING.has(action)) this.settle(a);
    return a;
  }

  private audit(
    row: AlertRow,
    action: AuditAction,
    actor: Actor,
    reason: string | null,
    data: unknown,
  ): number {
    return this.store.appendAudit({
      alertId: row.id,
      at: this.now(),
      action,
      actor,
      reason,
      stateAfter: row.state,
      siteId: row.site_id,
      unitId: row.unit_id,
      data,
    });
  }

  /** Tell channels that left something on a screen (a push notification) that the alert is taken or closed. */
  private settle(alert: AlertView): void {
    for (const channel of this.ctx.channels.values())
      if (channel.settled) this.calls.push(() => channel.settled!(alert));
  }

  private announce(change: AlertChange): void {
    if (this.depth > 0) this.queued.push(change);
    else this.emitChange(change, { replayable: false });
  }

  private emitChange(change: AlertChange, meta: ChangeMeta): void {
    for (const listener of this.listeners("change")) {
      try {
        (listener as (c: AlertChange, m: ChangeMeta) => void)(change, meta);
      } catch (err) {
        this.ctx.log.error({ err, alertId: change.alert.id }, "alert change listener failed");
      }
    }
  }
}

/** The change an audit entry records, carrying the alert as `alert` shows it: the staff `alert` message. */
export function alertChange(
  entry: Pick<AuditSummary, "id" | "action" | "actor_name" | "reason">,
  alert: AlertView,
): AlertChange {
  return { seq: entry.id, change: entry.action, alert, actor: entry.actor_name, reason: entry.reason };
}

/** How a change may be shown: see AlertManager.replayable(). */
export interface ChangeMeta {
  /** Made again by a replay if a power loss took it back: may be shown before its fsync. */
  replayable: boolean;
}

/**
 * An alert's id from the rule that raised it and the event that raised it: the event's time of
 * receipt (ordering ids roughly by time, as before) and a hash of rule, device and event id.
 */
export function alertId(ruleId: string, e: LoggedEvent): string {
  const hash = createHash("sha256").update(`${ruleId}\0${e.deviceId}\0${e.eventId}`).digest("hex");
  return `al_${Date.parse(e.receivedAt).toString(36)}${hash.slice(0, 12)}`;
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
