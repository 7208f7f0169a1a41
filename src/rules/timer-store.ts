/**
 * Where the durable timers (timers.ts) keep their rows: `DurableTimers` holds the armed timers in
 * memory and reaches the `timers` table only through `TimerStore`. Synchronous, because `set()` and
 * `cancel()` run inside a partition's steps (an escalation armed in the same step as the alert it
 * escalates): a store handed out by a `PartitionState` (partition.ts) writes in that partition's
 * unit of work, so a step that throws takes its timer rows back with its alert changes. A write made
 * outside any step (a fired timer's row removed after its handler) is a step of its own.
 *
 * One process keeps the rows in SQLite (`SqliteTimerStore`); every implementation passes
 * test/rules/partition.contract.ts.
 */
import type Database from "better-sqlite3";
import type { Db } from "../store/db.js";

/** A timer as the `timers` table holds it (its payload as JSON). */
export interface TimerRow {
  id: string;
  kind: string;
  due_at: number;
  payload: string;
}

export interface TimerStore {
  /** Every timer, in no particular order. */
  load(): TimerRow[];
  /**
   * Creates the timer, or changes the kind, due time and payload of the one with this id
   * (`createdAt` is kept from its creation).
   */
  upsert(id: string, kind: string, dueAt: number, payload: string, createdAt: number): void;
  /** Deletes the timer, whatever its due time. */
  remove(id: string): void;
  /**
   * Deletes the timer only if it is still due at `dueAt`: one that fired and was moved by its
   * handler (set again for later) stays.
   */
  removeFired(id: string, dueAt: number): void;
  /**
   * Whether a step of the unit of work these writes belong to is open: a write now is taken back if
   * that step fails (the timers journal their in-memory changes only then).
   */
  inStep(): boolean;
}

export class SqliteTimerStore implements TimerStore {
  private prepared: {
    load: Database.Statement;
    upsert: Database.Statement;
    remove: Database.Statement;
    removeFired: Database.Statement;
  } | null = null;

  constructor(private readonly db: Db) {}

  /** Prepared once: upsert() and remove() run for every bed exit and every alert transition. */
  private statements() {
    this.prepared ??= {
      load: this.db.prepare("SELECT id, kind, due_at, payload FROM timers"),
      upsert: this.db.prepare(
        `INSERT INTO timers (id, kind, due_at, payload, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at, payload = excluded.payload`,
      ),
      remove: this.db.prepare("DELETE FROM timers WHERE id = ?"),
      removeFired: this.db.prepare("DELETE FROM timers WHERE id = ? AND due_at = ?"),
    };
    return this.prepared;
  }

  load(): TimerRow[] {
    return this.statements().load.all() as TimerRow[];
  }

  upsert(id: string, kind: string, dueAt: number, payload: string, createdAt: number): void {
    this.statements().upsert.run(id, kind, dueAt, payload, createdAt);
  }

  remove(id: string): void {
    this.statements().remove.run(id);
  }

  removeFired(id: string, dueAt: number): void {
    this.statements().removeFired.run(id, dueAt);
  }

  inStep(): boolean {
    return this.db.inTransaction;
  }
}
