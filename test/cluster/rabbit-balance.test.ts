/**
 * The ingest load spread's decisions (src/cluster/rabbit-balance.ts), on a simulated clock: which
 * node should consume each queue, and when an active node gives a queue up. The same with a real
 * RabbitMQ: test/cluster/rabbit-rebalance.test.ts.
 */
import { describe, expect, it } from "vitest";
import { IngestBalance, preferredNode } from "../../src/cluster/rabbit-balance.js";

const QUEUES = Array.from({ length: 64 }, (_, k) => `ata.ingest.${k}`);
const STABLE = 5_000;

describe("preferredNode: rendezvous hashing of a queue over the live nodes", () => {
  it("is the same whatever the order of the list, and none without nodes", () => {
    for (const q of QUEUES)
      expect(preferredNode(q, ["gw-1", "gw-2", "gw-3"])).toBe(preferredNode(q, ["gw-3", "gw-1", "gw-2"]));
    expect(preferredNode("ata.ingest.0", [])).toBeNull();
  });

  it("a node joining takes only queues it wins, from anyone, and leaving gives back only its own", () => {
    const two = QUEUES.map((q) => preferredNode(q, ["gw-1", "gw-2"]));
    const three = QUEUES.map((q) => preferredNode(q, ["gw-1", "gw-2", "gw-3"]));
    for (const [k, p] of three.entries()) if (p !== "gw-3") expect(p).toBe(two[k]);
    const won = three.filter((p) => p === "gw-3").length;
    // Spread: each of three nodes gets a fair share of 64 queues (binomial, within about 3 sigma).
    for (const node of ["gw-1", "gw-2", "gw-3"]) {
      const n = three.filter((p) => p === node).length;
      expect(n, node).toBeGreaterThan(10);
      expect(n, node).toBeLessThan(33);
    }
    expect(won).toBeGreaterThan(0);
  });
});

describe("IngestBalance: when an active node gives a queue up", () => {
  const mine = (b: IngestBalance, nodes: string[]) =>
    QUEUES.filter((q) => preferredNode(q, nodes) === b.nodeId);
  const others = (b: IngestBalance, nodes: string[]) =>
    QUEUES.filter((q) => preferredNode(q, nodes) !== b.nodeId);

  it("alone it keeps everything; when a node joins it gives up the queues the other is preferred for, once the membership has been unchanged for stableMs", () => {
    const b = new IngestBalance("gw-1", STABLE);
    b.membership(["gw-1"], 0);
    expect(b.due(QUEUES, 60_000)).toEqual([]);
    b.membership(["gw-1", "gw-2"], 60_000);
    expect(b.due(QUEUES, 60_000 + STABLE - 1)).toEqual([]);
    expect(b.due(QUEUES, 60_000 + STABLE)).toEqual(others(b, ["gw-1", "gw-2"]));
    // Only what it is active on, and never its own.
    const active = mine(b, ["gw-1", "gw-2"]).slice(0, 3);
    expect(b.due(active, 60_000 + STABLE)).toEqual([]);
  });

  it("this node counts as live even when the list misses it (a late heartbeat)", () => {
    const b = new IngestBalance("gw-1", STABLE);
    b.membership(["gw-2"], 0);
    expect(b.liveNodes).toEqual(["gw-1", "gw-2"]);
  });

  it("a membership that keeps changing (a node flapping) gives nothing up", () => {
    const b = new IngestBalance("gw-1", STABLE);
    for (let t = 0; t < 120_000; t += STABLE - 1) {
      b.membership(t % 2 === 0 ? ["gw-1", "gw-2"] : ["gw-1"], t);
      expect(b.due(QUEUES, t + STABLE - 2)).toEqual([]);
    }
  });

  it("unknown live nodes (PostgreSQL not answering) give nothing up, and the stable wait starts again", () => {
    const b = new IngestBalance("gw-1", STABLE);
    b.membership(["gw-1", "gw-2"], 0);
    b.membership(null, 10_000);
    expect(b.due(QUEUES, 20_000)).toEqual([]);
    b.membership(["gw-1", "gw-2"], 20_000);
    expect(b.due(QUEUES, 20_000 + STABLE - 1)).toEqual([]);
    expect(b.due(QUEUES, 20_000 + STABLE).length).toBeGreaterThan(0);
  });

  it("a queue that keeps coming back (its preferred node not consuming) is given up with doubling waits, and a new membership starts the count again", () => {
    const b = new IngestBalance("gw-1", STABLE);
    const q = others(b, ["gw-1", "gw-2"])[0] as string;
    b.membership(["gw-1", "gw-2"], 0);
    const times: number[] = [];
    for (let t = STABLE; t < 3_600_000; t += 100) {
      if (b.due([q], t).length > 0) {
        b.gaveUp(q, t);
        times.push(t);
      }
    }
    // stableMs, then 2, 4, 8 ... 256 x stableMs between give-ups: 12 in the hour, not 720.
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    expect(gaps.slice(0, 8)).toEqual([2, 4, 8, 16, 32, 64, 128, 256].map((m) => m * STABLE));
    expect(gaps.slice(8).every((g) => g === 256 * STABLE)).toBe(true);
    expect(times.length).toBeLessThan(15);
    b.membership(["gw-1", "gw-2", "gw-3"], 3_600_000);
    b.membership(["gw-1", "gw-2"], 3_600_000 + 1);
    expect(b.due([q], 3_600_001 + STABLE)).toEqual([q]);
  });
});
