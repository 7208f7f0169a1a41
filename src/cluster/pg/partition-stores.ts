/**
 * A PostgreSQL partition's durable timers, rules' cursor and maintenance windows, held in memory by
 * its owner (`PgPartitionState`, partition-state.ts) beside its alerts (alert-store.ts). Timers and
 * the cursor are written in the partition's step and flushed with it; the windows are read only,
 * replaced as a whole by `PgPartitionState.refreshMaintenance` between steps.
 */

import type { RulesCursor } from "../../rules/cursor.js";
import type { MaintenanceRow, MaintenanceWindows } from "../../rules/maintenance.js";
import type { TimerRow, TimerStore } from "../../rules/timer-store.js";
import type { UnitOfWork } from "./unit-of-work.js";

/** A timer as PostgreSQL's `timers` holds it, with the partition it belongs to. */
export interface TimerTableRow extends TimerRow {
  created_at: number;
  partition: number | null;
}

export class PgTimerStore implements TimerStore {
  private readonly timers = new Map<string, TimerTableRow>();

  constructor(
    private readonly uow: UnitOfWork,
    private readonly partition: number,
  ) {}

  hold(rows: readonly TimerTableRow[]): void {
    for (const r of rows) this.timers.set(r.id, { ...r, partition: this.partition });
  }

  rowOf(id: string): TimerTableRow | undefined {
    const r = this.timers.get(id);
    return r && { ...r };
  }

  load(): TimerRow[] {
    return [...this.timers.values()].map((t) => ({
      id: t.id,
      kind: t.kind,
      due_at: t.due_at,
      payload: t.payload,
    }));
  }

  upsert(id: string, kind: string, dueAt: number, payload: string, createdAt: number): void {
    this.uow.step(() => {
      const before = this.timers.get(id);
      this.set(id, {
        id,
        kind,
        due_at: dueAt,
        payload,
        created_at: before?.created_at ?? createdAt,
        partition: this.partition,
      });
    });
  }

  remove(id: string): void {
    this.uow.step(() => {
      if (this.timers.has(id)) this.set(id, undefined);
    });
  }

  removeFired(id: string, dueAt: number): void {
    this.uow.step(() => {
      if (this.timers.get(id)?.due_at === dueAt) this.set(id, undefined);
    });
  }

  inStep(): boolean {
    return this.uow.inStep();
  }

  private set(id: string, row: TimerTableRow | undefined): void {
    const before = this.timers.get(id);
    if (row) this.timers.set(id, row);
    else this.timers.delete(id);
    this.uow.changed("timers", id, () => {
      if (before) this.timers.set(id, before);
      else this.timers.delete(id);
    });
  }
}

export class PgRulesCursor implements RulesCursor {
  private at = 0;
  private pos = 0;

  constructor(
    private readonly uow: UnitOfWork,
    private readonly partition: number,
    private readonly isAvailable: () => boolean,
  ) {}

  hold(position: number, at: number): void {
    this.pos = position;
    this.at = at;
  }

  updatedAt(): number {
    return this.at;
  }

  position(): number {
    return this.pos;
  }

  set(position: number, at: number): void {
    this.uow.step(() => {
      const before = [this.pos, this.at] as const;
      this.pos = position;
      this.at = at;
      this.uow.changed("partition_state", this.partition, () => {
        [this.pos, this.at] = before;
      });
    });
  }

  available(): boolean {
    return this.isAvailable();
  }
}

export class PgMaintenanceWindows implements MaintenanceWindows {
  private rows: readonly MaintenanceRow[] = [];

  /** Replaces the windows held (between steps: a step sees one version throughout). */
  hold(rows: readonly MaintenanceRow[]): void {
    this.rows = [...rows].sort((a, b) => a.id - b.id);
  }

  inForce(siteId: string, deviceId: string, roomId: string | null, at: number) {
    for (const w of this.rows)
      if (
        w.site_id === siteId &&
        w.starts_at <= at &&
        w.ends_at > at &&
        (w.device_id === deviceId || (w.room_id !== null && w.room_id === roomId))
      )
        return { id: w.id, reason: w.reason };
    return null;
  }
}
