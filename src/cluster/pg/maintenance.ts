/**
 * The HTTP API's maintenance windows on PostgreSQL (`MaintenanceSchedule`, src/rules/maintenance.ts):
 * any node lists, opens and ends windows of any site, with a query.
 *
 * The rules read windows from the partition owner's copy (`PgPartitionState.maintenance`), so a
 * window opened or ended must reach that copy. The contract asks that it has once `open` or `end`
 * resolves (a window opened and then an event's alert suppressed, in that order). So each change
 * calls `changed(siteId)` after its commit and resolves after it: on the node owning the site's
 * partition, that is the state's `refreshMaintenance()`. For the other nodes the change is also
 * notified on `MAINTENANCE_CHANNEL` (payload: the site id) in the same transaction; the owner of the
 * site's partition, listening there, refreshes too (the listening connection is the gateway's
 * wiring, with the leases').
 */
import type pg from "pg";
import type { MaintenanceRow, MaintenanceSchedule, NewMaintenance } from "../../rules/maintenance.js";
import { rows } from "./partition-schema.js";

export const MAINTENANCE_CHANNEL = "ata_maintenance";

export class PgMaintenanceSchedule implements MaintenanceSchedule {
  constructor(
    private readonly pool: pg.Pool,
    /** After a window of this site was opened or ended and committed: refresh the owner's copy. */
    private readonly changed: (siteId: string) => Promise<void> | void = () => {},
  ) {}

  async current(siteIds: readonly string[], at: number): Promise<MaintenanceRow[]> {
    return rows<MaintenanceRow>(
      this.pool,
      "SELECT * FROM maintenance WHERE ends_at > $1 AND site_id = ANY($2::text[]) ORDER BY starts_at, id",
      [at, siteIds],
    );
  }

  async open(w: NewMaintenance): Promise<number> {
    const [row] = await rows<{ id: number }>(
      this.pool,
      `WITH w AS (
         INSERT INTO maintenance (site_id, device_id, room_id, starts_at, ends_at, reason, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, site_id)
       SELECT id, pg_notify($9, site_id)::text AS notified FROM w`,
      [
        w.siteId,
        w.deviceId,
        w.roomId,
        w.startsAt,
        w.endsAt,
        w.reason,
        w.createdBy,
        w.createdAt,
        MAINTENANCE_CHANNEL,
      ],
    );
    await this.changed(w.siteId);
    return row!.id;
  }

  async end(id: number, siteIds: readonly string[], at: number): Promise<boolean> {
    const [row] = await rows<{ site_id: string }>(
      this.pool,
      `WITH w AS (
         UPDATE maintenance SET ends_at = $1 WHERE id = $2 AND ends_at > $1 AND site_id = ANY($3::text[])
         RETURNING site_id)
       SELECT site_id, pg_notify($4, site_id)::text AS notified FROM w`,
      [at, id, siteIds, MAINTENANCE_CHANNEL],
    );
    if (!row) return false;
    await this.changed(row.site_id);
    return true;
  }
}
