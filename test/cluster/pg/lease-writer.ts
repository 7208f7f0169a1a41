/**
 * An owner's work, as the tests see it: while a node holds partitions it appends
 * (partition, token, node) to `lease_log` through `fenced()`, one partition after another, one write
 * at a time. The log is what proves that no two nodes acted on a partition at once
 * (`checkLeaseLog` in leases.test.ts).
 */
import { LeaseLostError, type PartitionLeases } from "../../../src/cluster/pg/leases.js";

export const LEASE_LOG_TABLE = `
  CREATE TABLE lease_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition INTEGER NOT NULL,
    token BIGINT NOT NULL,
    node TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
  )`;

export interface FencedWriter {
  readonly stats: { written: number; refused: number; failed: number; lastError: string | null };
  stop(): Promise<void>;
}

export function fencedWriter(leases: PartitionLeases, everyMs = 20): FencedWriter {
  const stats = { written: 0, refused: 0, failed: 0, lastError: null as string | null };
  let next = 0;
  let current: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (current) return;
    const owned = leases.status().partitions;
    if (owned.length === 0) return;
    const { partition, token } = owned[next++ % owned.length]!;
    current = leases
      .fenced(partition, token, async (c) => {
        await c.query("INSERT INTO lease_log (partition, token, node) VALUES ($1, $2, $3)", [
          partition,
          token,
          leases.nodeId,
        ]);
      })
      .then(
        () => {
          stats.written++;
        },
        (err: Error) => {
          if (err instanceof LeaseLostError) stats.refused++;
          else {
            stats.failed++;
            stats.lastError = err.message;
          }
        },
      )
      .finally(() => {
        current = null;
      });
  }, everyMs);
  return {
    stats,
    stop: async () => {
      clearInterval(timer);
      await current;
    },
  };
}
