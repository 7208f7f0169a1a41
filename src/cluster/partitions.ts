/**
 * Sites are divided over a fixed number of partitions; each partition is owned by one gateway node at
 * a time (src/cluster/pg/leases.ts), and the owner runs the rules, timers and alert lifecycle of
 * every site in it.
 *
 * The hash decides which node acts for a site, so it must give the same answer on every node and in
 * every version: a node running another hash, or another partition count, would act for sites that
 * another node also acts for. It is the first four bytes of the SHA-256 of the site id's UTF-8 bytes,
 * read as an unsigned big-endian integer, modulo the partition count. SHA-256 because it is in every
 * runtime and its output is fixed by a standard (FIPS 180-4), not by a library version; the values
 * are pinned by a test. Changing the count moves almost every site to another partition: it is set
 * once for a cluster, and the lease table refuses a node whose count differs.
 */
import { createHash } from "node:crypto";

export const DEFAULT_PARTITION_COUNT = 64;

/** Partitions a site can be in: 0 .. count - 1. */
export function partitionOf(siteId: string, count: number = DEFAULT_PARTITION_COUNT): number {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`partition count ${count}`);
  return createHash("sha256").update(siteId, "utf8").digest().readUInt32BE(0) % count;
}
