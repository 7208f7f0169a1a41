/**
 * A partition's state, and its one unit of work. In cluster mode a site's rules, durable timers and
 * alert lifecycle run on the one node that holds its partition's lease (src/cluster/partitions.ts);
 * one process owns every site. What a partition's steps read and write is handed out here:
 *
 * - `alerts`: the alerts, their audit and channel attempts (`AlertStore`, src/alerts/store.ts);
 * - `timers`: the durable timers' rows (`TimerStore`, timer-store.ts);
 * - `cursor`: the rules' position in the event log (`RulesCursor`, cursor.ts);
 * - `maintenance`: the maintenance windows in force, read only (`MaintenanceWindows`, maintenance.ts).
 *
 * `step(fn)` is the unit of work for all of them: every write inside it, whichever store made it, is
 * kept, or none is if it throws; nested steps are savepoints. The alert store's own `step` is this
 * same step (the alert manager opens steps through it, and an escalation's timer, the alert it
 * escalates and the rules' cursor past the event that raised it commit together). A write made
 * outside any step is a step of its own. On SQLite every store writes on one connection and the
 * step is its transaction (`SqlitePartitionState`); on PostgreSQL the partition's owner holds its
 * working set in memory and flushes each step in a fenced transaction (`PgPartitionState`,
 * src/cluster/pg/partition-state.ts, one per partition a cluster node holds:
 * src/cluster/partition-host.ts). Every implementation passes test/alerts/store.contract.ts and
 * test/rules/partition.contract.ts.
 *
 * Why it is synchronous, and what the PostgreSQL one looks like: the node holding
 * the lease is the single writer of the partition's state. It keeps the partition's working set in
 * memory (its open alerts, their audit, their pending channel attempts, its timers, the rules'
 * cursor, its sites' maintenance windows, loaded when the lease is acquired) and answers a step's
 * reads from it; a step's writes, from every store above, are collected here, and when the
 * outermost step ends they are written to PostgreSQL in one fenced transaction
 * (`PartitionLeases.fenced`, with the lease's token). That is an actor with persistence: one owner
 * per partition, its state in memory, its journal in the database. The flush is asynchronous, so
 * nothing of a step may be seen before it commits: staff sockets, channel calls and HTTP answers
 * already wait for the step's fsync (`Durability.after` / `durable`), and they would wait for its
 * flush the same way. A flush that fails (lease lost, PostgreSQL gone) leaves the working set to be
 * dropped and the partition given up; the next owner loads what committed, and the steps whose
 * inputs are replayable (`AlertManager.replayable()`: a logged event, a due timer) are made again
 * there. So:
 *
 * - everything called inside a step is synchronous, reads as well as writes: a rule's evaluation, an
 *   escalation and a staff action stay one uninterrupted step whose input nobody else changes
 *   meanwhile, as now;
 * - `step(fn)` is the unit of work: all or nothing, nested steps as savepoints (a nested step that
 *   throws takes its own writes back and leaves the outer step's), across the four stores;
 * - what must be asynchronous is outside these interfaces: the flush of a finished step (behind
 *   `step`), the history of closed alerts for the HTTP API (`AlertHistory`), the HTTP API's
 *   maintenance windows (`MaintenanceSchedule`: a window opened on any node reaches the owner's copy
 *   by notification, as alert changes reach other nodes), and loading an alert that is not in the
 *   working set (a comment on a closed alert, a channel's late answer for one) before the step that
 *   needs it begins;
 * - ids the stores hand out (audit ids, attempt ids) grow in commit order: the audit id is the `seq`
 *   staff clients order and resume by. A store answering synchronously hands them out without a
 *   round trip (from a block reserved ahead in a PostgreSQL sequence, say); one order across
 *   partitions for resume is the change feed's vector cursor (docs/cluster.md "Staff on any node").
 *
 * Rows have the tables' columns (PostgreSQL's tables mirror SQLite's column for column,
 * src/cluster/pg/schema.ts), so an export and the logic above read the same shape.
 *
 * Not here: the rules read the event log (replay, an absence timer's event, count conditions, which
 * leave out events logged under maintenance) through `RulesEventLog` (event-log.ts): SQLite's log in
 * one process, the partition's recent events in memory on a cluster node.
 */
import { type AlertStore, SqliteAlertStore } from "../alerts/store.js";
import type { Db } from "../store/db.js";
import { type RulesCursor, SqliteRulesCursor } from "./cursor.js";
import { type MaintenanceWindows, SqliteMaintenanceWindows } from "./maintenance.js";
import { SqliteTimerStore, type TimerStore } from "./timer-store.js";

export interface PartitionState {
  /**
   * Runs `fn` as one unit of work over every store below and returns its result: all their writes
   * inside it are kept, or none if it throws (the error is thrown on). Nested calls are savepoints.
   * The same step as `alerts.step`.
   */
  step<T>(fn: () => T): T;
  readonly alerts: AlertStore;
  readonly timers: TimerStore;
  readonly cursor: RulesCursor;
  readonly maintenance: MaintenanceWindows;
}

/** Every store on one SQLite connection: a step is its transaction. */
export class SqlitePartitionState implements PartitionState {
  readonly alerts: SqliteAlertStore;
  readonly timers: SqliteTimerStore;
  readonly cursor: SqliteRulesCursor;
  readonly maintenance: SqliteMaintenanceWindows;

  constructor(db: Db) {
    this.alerts = new SqliteAlertStore(db);
    this.timers = new SqliteTimerStore(db);
    this.cursor = new SqliteRulesCursor(db);
    this.maintenance = new SqliteMaintenanceWindows(db);
  }

  step<T>(fn: () => T): T {
    return this.alerts.step(fn);
  }
}
