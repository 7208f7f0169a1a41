/**
 * The HTTP API's alert history on PostgreSQL (`AlertHistory`, src/alerts/store.ts): closed alerts and
 * audit of any site, read with queries, not from a partition owner's working set.
 *
 * What a node's own partitions stepped is seen here once flushed; `before` (the node's partition
 * states' `flushed()`) is awaited before each read, so a node reads its own writes, as the single
 * process does. Other nodes' steps are seen once they have committed.
 */
import type pg from "pg";
import type { AuditEntry } from "../../alerts/model.js";
import { type AlertHistory, type AlertQuery, type AlertRow, auditEntry } from "../../alerts/store.js";
import type { AuditTableRow } from "./alert-store.js";
import { NUMBERS, rows } from "./partition-schema.js";

export class PgAlertHistory implements AlertHistory {
  constructor(
    private readonly pool: pg.Pool,
    private readonly before: () => Promise<void> = async () => {},
  ) {}

  async find(q: AlertQuery): Promise<AlertRow[]> {
    await this.before();
    const args: unknown[] = [q.siteIds];
    const where = ["site_id = ANY($1::text[])"];
    const param = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    if (q.state === "open") where.push("open = 1");
    else if (q.state === "closed") where.push("open = 0");
    else if (q.state) where.push(`state = ${param(q.state)}`);
    if (q.unitId) where.push(`unit_id = ${param(q.unitId)}`);
    if (q.priority) where.push(`priority = ${param(q.priority)}`);
    if (q.type) where.push(`type = ${param(q.type)}`);
    if (q.from !== undefined) where.push(`raised_at >= ${param(q.from)}`);
    if (q.to !== undefined) where.push(`raised_at < ${param(q.to)}`);
    return rows<AlertRow>(
      this.pool,
      `SELECT * FROM alerts WHERE ${where.join(" AND ")} ORDER BY raised_at DESC LIMIT ${param(q.limit)}`,
      args,
    );
  }

  async withAudit(id: string): Promise<{ alert: AlertRow; audit: AuditEntry[] } | undefined> {
    await this.before();
    const c = await this.pool.connect();
    try {
      // One snapshot for both reads: the audit is the alert's as of the row read.
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const [alert] = await rows<AlertRow>(c, "SELECT * FROM alerts WHERE id = $1", [id]);
      const audit = alert
        ? await rows<AuditTableRow>(c, "SELECT * FROM alert_audit WHERE alert_id = $1 ORDER BY id", [id])
        : [];
      await c.query("COMMIT");
      return alert ? { alert, audit: audit.map(auditEntry) } : undefined;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  async head(): Promise<number> {
    await this.before();
    const { rows: r } = await this.pool.query<{ head: number }>({
      text: "SELECT coalesce(max(id), 0) AS head FROM alert_audit",
      types: NUMBERS,
    });
    return r[0]?.head ?? 0;
  }
}
