/**
 * The move from one process to a cluster, at a partition's first owner (src/cluster/pg/partition-state.ts):
 * what the single process numbered by its log's seq (the rules' cursor, an absence timer's event)
 * is numbered by the partition's own positions from then on, once, on a real PostgreSQL 15.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { partitionOf } from "../../../src/cluster/partitions.js";
import { appendEvents, type EventToLog } from "../../../src/cluster/pg/event-log.js";
import { PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { PgPartitionState } from "../../../src/cluster/pg/partition-state.js";
import type { PlacedEvent } from "../../../src/model/event.js";
import { RULES_CURSOR } from "../../../src/rules/cursor.js";
import { pgTestDatabases } from "../../helpers/pg-databases.js";

const pgdb = pgTestDatabases("upgrade_numbering");
const PARTITIONS = 2;
/** Two sites in different partitions (the hash never changes). */
const [HOME, OTHER] = (() => {
  const found = new Map<number, string>();
  for (let i = 0; found.size < 2; i++) found.set(partitionOf(`home-${i}`, PARTITIONS), `home-${i}`);
  return [...found.values()] as [string, string];
})();

function event(site: string, n: number): EventToLog {
  const at = new Date(Date.UTC(2026, 11, 3, 12, 0, n)).toISOString();
  return {
    event: {
      eventId: `e-${site}-${n}`,
      schemaVersion: 1,
      deviceId: `mat-${site}`,
      type: "bed.exit",
      phase: "point",
      occurredAt: at,
      receivedAt: at,
      data: {},
      placement: { siteId: site, unitId: "unit-1", roomId: "r1", residentRef: null },
    } as unknown as PlacedEvent,
    profile: "ata/native",
    topic: null,
    raw: null,
  };
}

describe("a partition's first owner after the move from one process", () => {
  it("takes the rules' cursor and its absence timers' events from the log's seq to the partition's positions, once", async () => {
    const url = await pgdb.fresh();
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pool.on("error", () => undefined);
    pgdb.cleanup(() => pool.end());
    // The shared log with the two sites' events interleaved, as one process logged them: seq and
    // a partition's position part ways.
    const client = await pool.connect();
    const placed: Awaited<ReturnType<typeof appendEvents>> = [];
    try {
      // One group each, as a process's commits came: seqs alternate between the sites.
      for (let i = 0; i < 10; i++)
        placed.push(
          ...(await appendEvents(client, [event(i % 2 ? OTHER : HOME, i)], { partitions: PARTITIONS })),
        );
    } finally {
      client.release();
    }
    const home = placed.filter((p, i) => p && i % 2 === 0).map((p) => p!);
    expect(home.map((p) => p.position)).toEqual([1, 2, 3, 4, 5]);
    expect(home.map((p) => p.seq)).not.toEqual([1, 2, 3, 4, 5]);
    // The single process's rules had evaluated up to HOME's third event; an absence window waits
    // for its fourth (a bed exit without a return).
    await pool.query("INSERT INTO cursors (name, position, updated_at) VALUES ($1, $2, $3)", [
      RULES_CURSOR,
      home[2]!.seq,
      Date.now(),
    ]);
    await pool.query(
      "INSERT INTO timers (id, kind, due_at, payload, created_at) VALUES ($1, 'absence', $2, $3, $4)",
      [
        "absence:night-exit:mat-home",
        Date.now() + 60_000,
        JSON.stringify({ ruleId: "night-exit", eventSeq: home[3]!.seq }),
        Date.now(),
      ],
    );

    const leases = new PartitionLeases({ pool, nodeId: "node-a", partitions: PARTITIONS, leaseMs: 60_000 });
    leases.on("error", () => undefined);
    pgdb.cleanup(() => leases.stop());
    await leases.start();
    const p = partitionOf(HOME, PARTITIONS);
    const load = () => PgPartitionState.load({ pool, leases, partition: p, token: leases.tokenOf(p)! });

    const first = await load();
    expect(first.cursor.position()).toBe(3);
    expect(JSON.parse(first.timers.load()[0]!.payload)).toEqual({ ruleId: "night-exit", eventSeq: 4 });
    first.close();

    // The next owner finds the numbering done and does not do it again (4 is no seq of HOME's).
    const again = await load();
    expect(again.cursor.position()).toBe(3);
    expect(JSON.parse(again.timers.load()[0]!.payload)).toEqual({ ruleId: "night-exit", eventSeq: 4 });
    again.close();
  });
});
