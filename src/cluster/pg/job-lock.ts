/**
 * One run at a time of a cluster-wide job (the time-saved job, which writes computed points to the
 * shared time-series store): a session-level advisory lock held on a dedicated connection for the
 * run's duration. A node that does not get it skips the run (`pg_try_advisory_lock`), or, for a run
 * someone asked for, waits for it (`pg_advisory_lock`).
 *
 * If the holder's connection is lost mid-run, PostgreSQL releases the lock and another node may start
 * while the first is still writing: the points are the same computation of the same rows, written
 * over each other, which the job tolerates as it tolerates a retried range.
 */
import type pg from "pg";
import type { JobLock } from "../../reports/timesaved.js";

/** First key of the pair, "ATA" as the migrations' (second key 0) and node registration's (1). */
export const ATA = 0x415441;
/**
 * Second keys of the jobs that run once per cluster: the time-saved job's runs, and the alerts' time
 * series writer (src/cluster/alert-series.ts), which holds its key for as long as it writes.
 */
export const JOB_LOCKS = { timeSaved: 2, alertSeries: 3 } as const;

export class PgJobLock implements JobLock {
  constructor(
    private readonly pool: pg.Pool,
    private readonly key: number,
  ) {}

  async run<T>(
    work: () => Promise<T>,
    opts: { wait?: boolean } = {},
  ): Promise<{ ran: true; value: T } | { ran: false }> {
    const c = await this.pool.connect();
    // A connection whose lock state is unknown is closed, not returned: closing releases the lock.
    let broken: Error | undefined;
    try {
      if (opts.wait) await c.query("SELECT pg_advisory_lock($1, $2)", [ATA, this.key]);
      else {
        const { rows } = await c.query<{ got: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS got", [
          ATA,
          this.key,
        ]);
        if (!rows[0]?.got) {
          c.release();
          return { ran: false };
        }
      }
    } catch (err) {
      broken = err as Error;
      c.release(broken);
      throw err;
    }
    try {
      return { ran: true, value: await work() };
    } finally {
      await c.query("SELECT pg_advisory_unlock($1, $2)", [ATA, this.key]).catch((err: Error) => {
        broken = err;
      });
      c.release(broken);
    }
  }
}
