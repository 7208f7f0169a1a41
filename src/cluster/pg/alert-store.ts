/**
 * A partition's alerts, their audit and channel attempts, held in memory by the partition's owner
 * (`PgPartitionState`, partition-state.ts) and answered from there: the `AlertStore` of a PostgreSQL
 * partition. Writes change the memory at once, inside the partition's step, and are flushed with
 * the step; see partition-state.ts for the load and the flush.
 *
 * The working set is the partition's open alerts with their audit and attempts (loaded with the
 * lease), what was written since, and closed alerts loaded on purpose (`PgPartitionState.loadAlert`
 * before a step that needs one, a comment on a closed alert or a channel's late answer). Closed
 * alerts beyond a bound are let go once flushed, least recently used first (`evictClosed`). So:
 * - `alert(id)`, `auditOf(id)` and `attempt(id)` know nothing of a closed alert that is not held;
 * - `auditAfter(seq)` is complete for `seq >= auditFloor()`: the head when the working set was
 *   loaded, raised past the entries of alerts let go. A resume from further back needs entries only
 *   PostgreSQL has (a staff client's resume across nodes is the cross-node fan-out's question).
 *
 * What PostgreSQL would refuse at the flush is refused here, in the step, by a throw that takes the
 * step back: a flush that fails gives the whole partition up. So an alert id is inserted once, one
 * alert is open per dedupe key, an audit entry names an alert of the working set, and a site's alert
 * is written only by its own partition's owner.
 */

import type { AuditEntry } from "../../alerts/model.js";
import {
  type AlertRow,
  type AlertStore,
  type AttemptRow,
  type AttemptStatus,
  type AuditRow,
  type AuditSummary,
  auditEntry,
  type NewAttempt,
  type NewAuditEntry,
} from "../../alerts/store.js";
import type { IdBlocks, UnitOfWork } from "./unit-of-work.js";

/** An audit entry as `alert_audit` holds it. */
export interface AuditTableRow extends AuditRow {
  site_id: string;
  unit_id: string;
}

/** An attempt as `channel_attempts` holds it. */
export interface AttemptTableRow extends AttemptRow {
  created_at: number;
  updated_at: number;
  detail: string | null;
}

/** A write this working set cannot make as PostgreSQL would take it: the step is taken back. */
export class WorkingSetError extends Error {
  readonly code = "working_set";
  constructor(message: string) {
    super(message);
    this.name = "WorkingSetError";
  }
}

export interface PgAlertStoreContext {
  uow: UnitOfWork;
  auditIds: IdBlocks;
  attemptIds: IdBlocks;
  /** Throws unless the site is in this partition. */
  checkSite(siteId: string): void;
  /** The audit head changed (its row in partition_state is written with the step). */
  headMoved(): void;
  available(): boolean;
}

export class PgAlertStore implements AlertStore {
  private readonly alerts = new Map<string, AlertRow>();
  private readonly openByKey = new Map<string, string>();
  private readonly auditById = new Map<number, AuditTableRow>();
  /** Every audit entry held, by id. */
  private auditLog: AuditTableRow[] = [];
  private readonly auditByAlert = new Map<string, AuditTableRow[]>();
  private readonly attempts = new Map<number, AttemptTableRow>();
  /** Alert ids, least recently loaded or written first: the order closed ones are let go in. */
  private readonly recency = new Map<string, true>();
  /**
   * Audit id -> the alert's row as the entry found it, until the step's flush takes it:
   * the alert a change feed entry carries, as the single process announces it (rows are replaced,
   * never changed in place, so this is a reference).
   */
  private readonly alertAtAudit = new Map<number, AlertRow>();
  private headId = 0;
  private floor = 0;

  constructor(private readonly ctx: PgAlertStoreContext) {}

  // ---------------------------------------------------------------- loading (outside steps)

  /** Takes rows read from PostgreSQL into the working set (an alert already held is kept as it is). */
  hold(
    alerts: readonly AlertRow[],
    audit: readonly AuditTableRow[],
    attempts: readonly AttemptTableRow[],
  ): void {
    const fresh = new Set<string>();
    for (const a of alerts) {
      if (this.alerts.has(a.id)) continue;
      fresh.add(a.id);
      this.touch(a.id);
      this.alerts.set(a.id, { ...a });
      if (a.open === 1) this.openByKey.set(a.dedupe_key, a.id);
    }
    for (const e of audit) {
      if (!fresh.has(e.alert_id) || this.auditById.has(e.id)) continue;
      const row = { ...e };
      this.auditById.set(row.id, row);
      let i = this.auditLog.length;
      while (i > 0 && this.auditLog[i - 1]!.id > row.id) i--;
      this.auditLog.splice(i, 0, row);
      const list = this.auditByAlert.get(row.alert_id) ?? [];
      list.push(row);
      list.sort((x, y) => x.id - y.id);
      this.auditByAlert.set(row.alert_id, list);
    }
    for (const t of attempts)
      if (fresh.has(t.alert_id) && !this.attempts.has(t.id)) this.attempts.set(t.id, { ...t });
  }

  /** The head as the partition's row in PostgreSQL has it, at load. */
  setHead(head: number): void {
    this.headId = head;
    this.floor = head;
  }

  has(id: string): boolean {
    return this.alerts.has(id);
  }

  /**
   * Lets closed alerts go, with their audit and attempts, least recently loaded or written first,
   * once more than `keep` (and a quarter) are held, until `keep` are. Between steps, with every write
   * flushed: what goes is in PostgreSQL as it is here. The audit floor rises past what goes.
   */
  evictClosed(keep: number): number {
    let closed = 0;
    for (const a of this.alerts.values()) if (a.open !== 1) closed++;
    if (closed <= keep + Math.floor(keep / 4)) return 0;
    const gone = new Set<string>();
    for (const id of this.recency.keys()) {
      if (closed <= keep) break;
      const a = this.alerts.get(id);
      if (a && a.open === 1) continue;
      this.recency.delete(id);
      if (!a) continue;
      gone.add(id);
      closed--;
      this.alerts.delete(id);
      for (const e of this.auditByAlert.get(id) ?? []) {
        this.auditById.delete(e.id);
        this.floor = Math.max(this.floor, e.id);
      }
      this.auditByAlert.delete(id);
    }
    this.auditLog = this.auditLog.filter((e) => !gone.has(e.alert_id));
    for (const [id, t] of this.attempts) if (gone.has(t.alert_id)) this.attempts.delete(id);
    return gone.size;
  }

  hasAttempt(id: number): boolean {
    return this.attempts.has(id);
  }

  /** `auditAfter(seq)` is complete for every seq at or above this. */
  auditFloor(): number {
    return this.floor;
  }

  // ---------------------------------------------------------------- the flush's reads

  rowOf(id: string): AlertRow | undefined {
    const r = this.alerts.get(id);
    return r && { ...r };
  }

  auditRowOf(id: number): AuditTableRow | undefined {
    const r = this.auditById.get(id);
    return r && { ...r };
  }

  /**
   * The alert's row as an audit entry of a finished step found it, once: the flush takes it with the
   * entry (whether or not it appends to the change feed, so nothing is kept past the step).
   */
  takeAlertAtAudit(id: number): AlertRow | undefined {
    const r = this.alertAtAudit.get(id);
    this.alertAtAudit.delete(id);
    return r && { ...r };
  }

  attemptRowOf(id: number): AttemptTableRow | undefined {
    const r = this.attempts.get(id);
    return r && { ...r };
  }

  // ---------------------------------------------------------------- AlertStore

  step<T>(fn: () => T): T {
    return this.ctx.uow.step(fn);
  }

  available(): boolean {
    return this.ctx.available();
  }

  alert(id: string): AlertRow | undefined {
    return this.rowOf(id);
  }

  openAlerts(): AlertRow[] {
    return this.open((a) => a.open === 1).sort((x, y) => x.raised_at - y.raised_at);
  }

  openByDedupeKey(key: string): AlertRow | undefined {
    const id = this.openByKey.get(key);
    return id === undefined ? undefined : this.rowOf(id);
  }

  awaitingPresence(siteId: string, roomId: string): AlertRow[] {
    return this.open(
      (a) =>
        a.open === 1 &&
        a.site_id === siteId &&
        a.room_id === roomId &&
        (a.state === "raised" || a.state === "accepted"),
    );
  }

  awaitingAcceptance(): AlertRow[] {
    return this.open((a) => a.open === 1 && a.state === "raised");
  }

  insert(row: AlertRow): void {
    this.step(() => {
      if (this.alerts.has(row.id)) throw new WorkingSetError(`alert ${row.id} exists already`);
      this.ctx.checkSite(row.site_id);
      const stored = { ...row };
      this.claimKey(stored);
      this.touch(row.id);
      this.alerts.set(row.id, stored);
      this.ctx.uow.changed("alerts", row.id, () => {
        this.releaseKey(stored);
        this.alerts.delete(row.id);
      });
    });
  }

  update(id: string, changes: Partial<AlertRow>, updatedAt: number): void {
    this.step(() => {
      const before = this.alerts.get(id);
      if (!before) throw new WorkingSetError(`alert ${id} is not in the partition's working set`);
      const after: AlertRow = { ...before, ...changes, id, updated_at: updatedAt };
      if (after.site_id !== before.site_id) this.ctx.checkSite(after.site_id);
      this.releaseKey(before);
      try {
        this.claimKey(after);
      } catch (err) {
        this.claimKey(before);
        throw err;
      }
      this.alerts.set(id, after);
      this.touch(id);
      this.ctx.uow.changed("alerts", id, () => {
        this.releaseKey(after);
        this.claimKey(before);
        this.alerts.set(id, before);
      });
    });
  }

  appendAudit(e: NewAuditEntry): number {
    return this.step(() => {
      if (!this.alerts.has(e.alertId))
        throw new WorkingSetError(
          `audit for alert ${e.alertId}, which is not in the partition's working set`,
        );
      const id = this.ctx.auditIds.next();
      const row: AuditTableRow = {
        id,
        alert_id: e.alertId,
        at: e.at,
        action: e.action,
        actor_id: e.actor.id,
        actor_name: e.actor.name,
        reason: e.reason,
        state_after: e.stateAfter,
        site_id: e.siteId,
        unit_id: e.unitId,
        data: e.data ? JSON.stringify(e.data) : null,
      };
      const head = this.headId;
      this.alertAtAudit.set(id, this.alerts.get(e.alertId)!);
      this.auditById.set(id, row);
      this.auditLog.push(row);
      const list = this.auditByAlert.get(e.alertId) ?? [];
      this.auditByAlert.set(e.alertId, list);
      list.push(row);
      this.headId = Math.max(head, id);
      this.ctx.uow.changed("alert_audit", id, () => {
        this.auditById.delete(id);
        this.alertAtAudit.delete(id);
        this.auditLog.pop();
        list.pop();
        if (list.length === 0) this.auditByAlert.delete(e.alertId);
        this.headId = head;
      });
      this.ctx.headMoved();
      return id;
    });
  }

  auditOf(alertId: string): AuditEntry[] {
    return (this.auditByAlert.get(alertId) ?? []).map(auditEntry);
  }

  head(): number {
    return this.headId;
  }

  auditAfter(seq: number, siteIds: readonly string[], limit: number): AuditSummary[] {
    const sites = new Set(siteIds);
    const out: AuditSummary[] = [];
    if (sites.size === 0 || limit <= 0) return out;
    // The first entry after seq (the log is in id order).
    let lo = 0;
    let hi = this.auditLog.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.auditLog[mid]!.id > seq) hi = mid;
      else lo = mid + 1;
    }
    for (let i = lo; i < this.auditLog.length && out.length < limit; i++) {
      const r = this.auditLog[i]!;
      if (sites.has(r.site_id))
        out.push({
          id: r.id,
          alert_id: r.alert_id,
          action: r.action,
          actor_name: r.actor_name,
          reason: r.reason,
        });
    }
    return out;
  }

  recordAttempt(a: NewAttempt): number {
    return this.step(() => {
      const id = this.ctx.attemptIds.next();
      this.attempts.set(id, {
        id,
        alert_id: a.alertId,
        channel: a.channel,
        recipient_id: a.recipientId,
        recipient_name: a.recipientName,
        staff_id: a.staffId,
        level: a.level,
        reason: a.reason,
        status: a.status,
        tries: 1,
        created_at: a.at,
        updated_at: a.at,
        detail: null,
      });
      this.ctx.uow.changed("channel_attempts", id, () => this.attempts.delete(id));
      return id;
    });
  }

  attempt(id: number): AttemptRow | undefined {
    return this.attemptRowOf(id);
  }

  setAttemptStatus(id: number, status: AttemptStatus, detail: string, at: number): void {
    this.changeAttempt(id, { status, detail, updated_at: at });
  }

  confirmScreenReceipt(alertId: string, staffId: string, at: number): number {
    return this.step(() => {
      let n = 0;
      for (const a of [...this.attempts.values()])
        if (
          a.alert_id === alertId &&
          a.channel === "console" &&
          a.staff_id === staffId &&
          a.status !== "delivered"
        ) {
          this.changeAttempt(a.id, {
            status: "delivered",
            detail: "receipt from the screen",
            updated_at: at,
          });
          n++;
        }
      return n;
    });
  }

  pendingAttempts(): AttemptRow[] {
    const out: AttemptRow[] = [];
    for (const a of this.attempts.values()) {
      if (a.status !== "pending") continue;
      const alert = this.alerts.get(a.alert_id);
      if (alert?.open === 1 && alert.state === "raised") out.push({ ...a });
    }
    return out.sort((x, y) => x.id - y.id);
  }

  countRetry(id: number, at: number): void {
    const a = this.attempts.get(id);
    this.changeAttempt(id, { tries: (a?.tries ?? 0) + 1, updated_at: at });
  }

  // ---------------------------------------------------------------- inside

  private open(keep: (a: AlertRow) => boolean): AlertRow[] {
    const out: AlertRow[] = [];
    for (const a of this.alerts.values()) if (keep(a)) out.push({ ...a });
    return out;
  }

  private changeAttempt(id: number, changes: Partial<AttemptTableRow>): void {
    this.step(() => {
      const before = this.attempts.get(id);
      if (!before) throw new WorkingSetError(`attempt ${id} is not in the partition's working set`);
      this.attempts.set(id, { ...before, ...changes, id });
      this.ctx.uow.changed("channel_attempts", id, () => this.attempts.set(id, before));
    });
  }

  /** The order is a hint only (a step taken back leaves it moved), so it needs no undo. */
  private touch(id: string): void {
    this.recency.delete(id);
    this.recency.set(id, true);
  }

  /** alerts_open_key: one open alert per dedupe key. */
  private claimKey(a: AlertRow): void {
    if (a.open !== 1) return;
    const holder = this.openByKey.get(a.dedupe_key);
    if (holder !== undefined && holder !== a.id)
      throw new WorkingSetError(`alert ${holder} is already open with dedupe key ${a.dedupe_key}`);
    this.openByKey.set(a.dedupe_key, a.id);
  }

  private releaseKey(a: AlertRow): void {
    if (a.open === 1 && this.openByKey.get(a.dedupe_key) === a.id) this.openByKey.delete(a.dedupe_key);
  }
}
