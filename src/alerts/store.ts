/**
 * Where the alert lifecycle keeps its state: the alerts, their append-only audit and the channel
 * attempts. `AlertManager` reaches its tables only through `AlertStore`; the HTTP API reads history
 * through `AlertHistory`. One process keeps both in SQLite (`SqliteAlertStore`,
 * `SqliteAlertHistory`); every implementation passes test/alerts/store.contract.ts.
 *
 * An alert store is one of the stores of a partition's state (`PartitionState`,
 * src/rules/partition.ts), with the durable timers' rows, the rules' cursor and the maintenance
 * windows in force: its `step` is the partition's unit of work, shared with them (on SQLite, one
 * connection's transaction). The design that doc comment gives is what this interface is for: in
 * cluster mode the partition's owner keeps its open alerts, their audit and pending attempts in
 * memory, answers a step's reads from them, and writes each outermost step, with the timers and the
 * cursor it moved, in one fenced transaction before anything of it is seen. So everything the
 * manager calls inside a step is synchronous, reads as well as writes; the history of closed alerts
 * for the HTTP API is asynchronous (`AlertHistory`); ids the store hands out (audit ids, attempt
 * ids) grow in commit order, the audit id being the `seq` staff clients order and resume by.
 *
 * Rows have the tables' columns (PostgreSQL's tables mirror SQLite's column for column,
 * src/cluster/pg/schema.ts), so an export and the manager's logic read the same shape.
 */
import type Database from "better-sqlite3";
import type { Priority } from "../model/event.js";
import type { Db } from "../store/db.js";
import { Statements } from "../store/statements.js";
import type { ChannelName, DeliveryReason } from "./channels/channel.js";
import type { Actor, AlertState, AuditAction, AuditEntry, Outcome } from "./model.js";

/** An alert as the `alerts` table holds it. */
export interface AlertRow {
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

export type AttemptStatus = "pending" | "sent" | "delivered" | "failed";

/** One channel's attempt to reach one recipient, as `channel_attempts` holds it. */
export interface AttemptRow {
  id: number;
  alert_id: string;
  channel: ChannelName;
  recipient_id: string;
  recipient_name: string;
  staff_id: string | null;
  level: number;
  reason: DeliveryReason;
  status: AttemptStatus;
  tries: number;
}

/** An audit entry to append: the alert's state after the change, its place, and what happened. */
export interface NewAuditEntry {
  alertId: string;
  at: number;
  action: AuditAction;
  actor: Actor;
  reason: string | null;
  stateAfter: AlertState;
  siteId: string;
  unitId: string;
  /** Kept as JSON; null (or anything falsy) for none. */
  data: unknown;
}

/** An attempt to record before its channel is called. */
export interface NewAttempt {
  alertId: string;
  channel: ChannelName;
  recipientId: string;
  recipientName: string;
  staffId: string | null;
  level: number;
  reason: DeliveryReason;
  status: AttemptStatus;
  at: number;
}

/** An audit entry as a staff client's resume replays it. */
export interface AuditSummary {
  id: number;
  alert_id: string;
  action: AuditAction;
  actor_name: string;
  reason: string | null;
}

/** The alert lifecycle's state, as the manager reads and changes it inside its steps. */
export interface AlertStore {
  /**
   * Runs `fn` as one unit of work and returns its result: every write inside it is kept, or none if
   * it throws (the error is thrown on). Nested calls are savepoints: one that throws takes back its
   * own writes only. The partition's step (`PartitionState.step`): the timers' and the rules'
   * cursor's writes made inside it are kept or taken back with the alerts'.
   */
  step<T>(fn: () => T): T;
  /** False once the store is closed (a channel answering during shutdown writes nothing). */
  available(): boolean;

  // ---------------------------------------------------------------- alerts
  /** The alert with this id, open or closed. */
  alert(id: string): AlertRow | undefined;
  /** Every open alert, oldest raise first. */
  openAlerts(): AlertRow[];
  /** The open alert with this dedupe key (at most one is open per key); closed ones are never found. */
  openByDedupeKey(key: string): AlertRow | undefined;
  /** Open alerts in a room that a person there attends: raised or accepted. */
  awaitingPresence(siteId: string, roomId: string): AlertRow[];
  /** Open alerts nobody has accepted yet (state raised): those the ladder still has to reach someone for. */
  awaitingAcceptance(): AlertRow[];
  /** A new alert (its id must be new). */
  insert(row: AlertRow): void;
  /** Changes these columns of the alert and sets `updated_at` (also when `changes` is empty). */
  update(id: string, changes: Partial<AlertRow>, updatedAt: number): void;

  // ---------------------------------------------------------------- audit
  /** Appends to the audit and returns the entry's id, greater than every id before it. */
  appendAudit(entry: NewAuditEntry): number;
  /** An alert's audit, oldest first. */
  auditOf(alertId: string): AuditEntry[];
  /** The greatest audit id so far, 0 before the first. */
  head(): number;
  /** Up to `limit` audit entries after `seq` for these sites, in id order. */
  auditAfter(seq: number, siteIds: readonly string[], limit: number): AuditSummary[];

  // ---------------------------------------------------------------- channel attempts
  /** Records an attempt and returns its id. */
  recordAttempt(a: NewAttempt): number;
  /** The attempt with this id. */
  attempt(id: number): AttemptRow | undefined;
  /** A channel's answer for an attempt: its status and the channel's words. */
  setAttemptStatus(id: number, status: AttemptStatus, detail: string, at: number): void;
  /**
   * The person's screen confirmed receipt: their console attempts for the alert not yet delivered
   * become delivered. Returns how many.
   */
  confirmScreenReceipt(alertId: string, staffId: string, at: number): number;
  /**
   * Attempts whose outcome is unknown (still pending: recorded, then the process stopped before the
   * channel answered, or a channel asked to retry) for alerts that still wait to be accepted, in the
   * order they were recorded.
   */
  pendingAttempts(): AttemptRow[];
  /** The attempt is made once more. */
  countRetry(id: number, at: number): void;
}

/**
 * Alerts and their audit for the HTTP API, which may read closed alerts of any site: asynchronous,
 * because in cluster mode that is a query to PostgreSQL, not the working set of a partition's owner.
 */
export interface AlertHistory {
  /** Alerts matching the query, newest raise first, at most `limit`. */
  find(q: AlertQuery): Promise<AlertRow[]>;
  /** The alert with this id, open or closed, and its audit oldest first, as of one moment. */
  withAudit(id: string): Promise<{ alert: AlertRow; audit: AuditEntry[] } | undefined>;
  /** The greatest audit id so far: the `seq` a listing corresponds to. */
  head(): Promise<number>;
}

export interface AlertQuery {
  /** At least one. */
  siteIds: readonly string[];
  /** A state, or every open or every closed alert. */
  state?: AlertState | "open" | "closed";
  unitId?: string;
  priority?: Priority;
  type?: string;
  /** Raised at or after (epoch ms). */
  from?: number;
  /** Raised before (epoch ms). */
  to?: number;
  limit: number;
}

/** An audit entry as `alert_audit` holds it (without its site and unit). */
export interface AuditRow {
  id: number;
  alert_id: string;
  at: number;
  action: AuditAction;
  actor_id: string;
  actor_name: string;
  reason: string | null;
  state_after: AlertState;
  data: string | null;
}

export function auditEntry(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    alertId: r.alert_id,
    at: new Date(r.at).toISOString(),
    action: r.action,
    actor: { id: r.actor_id, name: r.actor_name },
    reason: r.reason,
    stateAfter: r.state_after,
    data: r.data ? JSON.parse(r.data) : null,
  };
}

export class SqliteAlertStore implements AlertStore {
  /** Every statement is prepared once and kept: preparing one per call cost more than running it. */
  private readonly stmt: (sql: string) => Database.Statement;
  /**
   * One transaction wrapper for every step (nested ones become savepoints): better-sqlite3 builds a
   * wrapper's functions on each db.transaction() call, which per alert step was the largest single
   * source of garbage under load.
   */
  private readonly inTransaction: <T>(fn: () => T) => T;

  constructor(private readonly db: Db) {
    const statements = new Statements(db);
    this.stmt = (sql) => statements.get(sql);
    const tx = db.transaction((fn: () => unknown) => fn());
    this.inTransaction = <T>(fn: () => T) => tx(fn) as T;
  }

  step<T>(fn: () => T): T {
    return this.inTransaction(fn);
  }

  available(): boolean {
    return this.db.open;
  }

  alert(id: string): AlertRow | undefined {
    return this.stmt("SELECT * FROM alerts WHERE id = ?").get(id) as AlertRow | undefined;
  }

  openAlerts(): AlertRow[] {
    return this.stmt("SELECT * FROM alerts WHERE open = 1 ORDER BY raised_at").all() as AlertRow[];
  }

  openByDedupeKey(key: string): AlertRow | undefined {
    return this.stmt("SELECT * FROM alerts WHERE dedupe_key = ? AND open = 1").get(key) as
      | AlertRow
      | undefined;
  }

  awaitingPresence(siteId: string, roomId: string): AlertRow[] {
    return this.stmt(
      "SELECT * FROM alerts WHERE open = 1 AND site_id = ? AND room_id = ? AND state IN ('raised', 'accepted')",
    ).all(siteId, roomId) as AlertRow[];
  }

  awaitingAcceptance(): AlertRow[] {
    return this.stmt("SELECT * FROM alerts WHERE open = 1 AND state = 'raised'").all() as AlertRow[];
  }

  insert(row: AlertRow): void {
    this.stmt(
      `INSERT INTO alerts (${Object.keys(row).join(", ")}) VALUES (${Object.keys(row)
        .map((k) => `@${k}`)
        .join(", ")})`,
    ).run(row);
  }

  update(id: string, changes: Partial<AlertRow>, updatedAt: number): void {
    const cols = Object.keys(changes);
    this.stmt(
      `UPDATE alerts SET ${[...cols, "updated_at"].map((c) => `${c} = @${c}`).join(", ")} WHERE id = @id`,
    ).run({ ...changes, updated_at: updatedAt, id });
  }

  appendAudit(e: NewAuditEntry): number {
    const info = this.stmt(
      `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, reason, state_after, site_id, unit_id, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      e.alertId,
      e.at,
      e.action,
      e.actor.id,
      e.actor.name,
      e.reason,
      e.stateAfter,
      e.siteId,
      e.unitId,
      e.data ? JSON.stringify(e.data) : null,
    );
    return Number(info.lastInsertRowid);
  }

  auditOf(alertId: string): AuditEntry[] {
    return (
      this.stmt("SELECT * FROM alert_audit WHERE alert_id = ? ORDER BY id").all(alertId) as AuditRow[]
    ).map(auditEntry);
  }

  head(): number {
    const r = this.stmt("SELECT max(id) AS m FROM alert_audit").get() as { m: number | null };
    return r.m ?? 0;
  }

  auditAfter(seq: number, siteIds: readonly string[], limit: number): AuditSummary[] {
    if (!siteIds.length) return [];
    return this.stmt(
      `SELECT id, alert_id, action, actor_name, reason FROM alert_audit
         WHERE id > ? AND site_id IN (${siteIds.map(() => "?").join(",")}) ORDER BY id LIMIT ?`,
    ).all(seq, ...siteIds, limit) as AuditSummary[];
  }

  recordAttempt(a: NewAttempt): number {
    const info = this.stmt(
      `INSERT INTO channel_attempts (alert_id, channel, recipient_id, recipient_name, staff_id, level, reason, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      a.alertId,
      a.channel,
      a.recipientId,
      a.recipientName,
      a.staffId,
      a.level,
      a.reason,
      a.status,
      a.at,
      a.at,
    );
    return Number(info.lastInsertRowid);
  }

  attempt(id: number): AttemptRow | undefined {
    return this.stmt("SELECT * FROM channel_attempts WHERE id = ?").get(id) as AttemptRow | undefined;
  }

  setAttemptStatus(id: number, status: AttemptStatus, detail: string, at: number): void {
    this.stmt("UPDATE channel_attempts SET status = ?, detail = ?, updated_at = ? WHERE id = ?").run(
      status,
      detail,
      at,
      id,
    );
  }

  confirmScreenReceipt(alertId: string, staffId: string, at: number): number {
    return this.stmt(
      `UPDATE channel_attempts SET status = 'delivered', detail = 'receipt from the screen', updated_at = ?
           WHERE alert_id = ? AND channel = 'console' AND staff_id = ? AND status <> 'delivered'`,
    ).run(at, alertId, staffId).changes;
  }

  pendingAttempts(): AttemptRow[] {
    return this.stmt(
      `SELECT a.* FROM channel_attempts a JOIN alerts al ON al.id = a.alert_id
           WHERE a.status = 'pending' AND al.open = 1 AND al.state = 'raised' ORDER BY a.id`,
    ).all() as AttemptRow[];
  }

  countRetry(id: number, at: number): void {
    this.stmt("UPDATE channel_attempts SET tries = tries + 1, updated_at = ? WHERE id = ?").run(at, id);
  }
}

/** The HTTP API's reads on the same SQLite database (synchronous underneath, resolved at once). */
/**
 * The history on the one process's database. Single alerts, their audit and the head are the alert
 * store's own reads on the same connection; only the listing, which the store has no use for, is
 * written here.
 */
export class SqliteAlertHistory implements AlertHistory {
  private readonly statements: Statements;

  constructor(
    db: Db,
    private readonly store: AlertStore,
  ) {
    this.statements = new Statements(db);
  }

  async find(q: AlertQuery): Promise<AlertRow[]> {
    const where = [`site_id IN (${q.siteIds.map(() => "?").join(",")})`];
    const args: unknown[] = [...q.siteIds];
    if (q.state === "open") where.push("open = 1");
    else if (q.state === "closed") where.push("open = 0");
    else if (q.state) where.push("state = ?") && args.push(q.state);
    if (q.unitId) where.push("unit_id = ?") && args.push(q.unitId);
    if (q.priority) where.push("priority = ?") && args.push(q.priority);
    if (q.type) where.push("type = ?") && args.push(q.type);
    if (q.from !== undefined) where.push("raised_at >= ?") && args.push(q.from);
    if (q.to !== undefined) where.push("raised_at < ?") && args.push(q.to);
    return this.statements
      .get(`SELECT * FROM alerts WHERE ${where.join(" AND ")} ORDER BY raised_at DESC LIMIT ?`)
      .all(...args, q.limit) as AlertRow[];
  }

  async withAudit(id: string): Promise<{ alert: AlertRow; audit: AuditEntry[] } | undefined> {
    const alert = this.store.alert(id);
    return alert ? { alert, audit: this.store.auditOf(id) } : undefined;
  }

  async head(): Promise<number> {
    return this.store.head();
  }
}
