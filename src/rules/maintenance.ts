/**
 * Maintenance windows: a device, or a room, whose events raise nothing for a while (a radar being
 * recalibrated and tested). Their alerts are recorded as suppressed, and their events do not count.
 *
 * Two readers, two interfaces, as for the alerts (`AlertStore`, `AlertHistory`):
 * - the rules read the window in force for an event inside a partition's step
 *   (`MaintenanceWindows`, synchronous, handed out by a `PartitionState`, partition.ts): in cluster
 *   mode that is the partition owner's copy of its sites' windows;
 * - the HTTP API lists, opens and ends windows of any site the caller may see (`MaintenanceSchedule`,
 *   asynchronous): in cluster mode any node answers, with a query to PostgreSQL, not the owner's
 *   working set, so it cannot be synchronous there. On SQLite it resolves at once.
 *
 * One process keeps both in SQLite's `maintenance` table (`SqliteMaintenanceWindows`,
 * `SqliteMaintenanceSchedule`); every implementation passes test/rules/partition.contract.ts.
 *
 * Still outside: the rules' count condition reads the event log joined with this table (engine.ts),
 * where events logged under maintenance do not count.
 */
import type Database from "better-sqlite3";
import type { Db } from "../store/db.js";

/** A window as the `maintenance` table holds it. */
export interface MaintenanceRow {
  id: number;
  site_id: string;
  device_id: string | null;
  room_id: string | null;
  starts_at: number;
  ends_at: number;
  reason: string;
  created_by: string;
  created_at: number;
}

/** A window to open: for a device or for a room (one of the two). */
export interface NewMaintenance {
  siteId: string;
  deviceId: string | null;
  roomId: string | null;
  startsAt: number;
  endsAt: number;
  reason: string;
  createdBy: string;
  createdAt: number;
}

/** What the rules need to know inside a step. */
export interface MaintenanceWindows {
  /**
   * The window in force at `at` (from `starts_at` inclusive to `ends_at` exclusive) for this device,
   * or for its room when it has one, the first opened if several; null if none.
   */
  inForce(
    siteId: string,
    deviceId: string,
    roomId: string | null,
    at: number,
  ): { id: number; reason: string } | null;
}

/** The HTTP API's windows, any site. */
export interface MaintenanceSchedule {
  /** Windows of these sites not yet ended at `at` (including those still to start), by start. */
  current(siteIds: readonly string[], at: number): Promise<MaintenanceRow[]>;
  /** Opens a window and returns its id. */
  open(w: NewMaintenance): Promise<number>;
  /**
   * Ends the window at `at` if it is one of these sites' and not ended yet; false (nothing changed)
   * otherwise.
   */
  end(id: number, siteIds: readonly string[], at: number): Promise<boolean>;
}

export class SqliteMaintenanceWindows implements MaintenanceWindows {
  private statement: Database.Statement | null = null;

  constructor(private readonly db: Db) {}

  inForce(siteId: string, deviceId: string, roomId: string | null, at: number) {
    this.statement ??= this.db.prepare(
      `SELECT id, reason FROM maintenance WHERE site_id = ? AND starts_at <= ? AND ends_at > ?
         AND (device_id = ? OR (room_id IS NOT NULL AND room_id = ?)) ORDER BY id LIMIT 1`,
    );
    const row = this.statement.get(siteId, at, at, deviceId, roomId) as
      | { id: number; reason: string }
      | undefined;
    return row ?? null;
  }
}

/** The HTTP API's side on the same SQLite database (synchronous underneath, resolved at once). */
export class SqliteMaintenanceSchedule implements MaintenanceSchedule {
  constructor(private readonly db: Db) {}

  async current(siteIds: readonly string[], at: number): Promise<MaintenanceRow[]> {
    return this.db
      .prepare(
        `SELECT * FROM maintenance WHERE ends_at > ? AND site_id IN (${siteIds.map(() => "?").join(",")}) ORDER BY starts_at`,
      )
      .all(at, ...siteIds) as MaintenanceRow[];
  }

  async open(w: NewMaintenance): Promise<number> {
    const info = this.db
      .prepare(
        "INSERT INTO maintenance (site_id, device_id, room_id, starts_at, ends_at, reason, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      )
      .run(w.siteId, w.deviceId, w.roomId, w.startsAt, w.endsAt, w.reason, w.createdBy, w.createdAt);
    return Number(info.lastInsertRowid);
  }

  async end(id: number, siteIds: readonly string[], at: number): Promise<boolean> {
    const changed = this.db
      .prepare(
        `UPDATE maintenance SET ends_at = ? WHERE id = ? AND ends_at > ? AND site_id IN (${siteIds.map(() => "?").join(",")})`,
      )
      .run(at, id, at, ...siteIds).changes;
    return changed > 0;
  }
}
