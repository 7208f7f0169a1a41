/**
 * Which gateway node should be the active consumer of each partitioned ingest queue, and when a node
 * that is active on a queue it should not have gives it up (src/cluster/rabbit-ingest.ts, "Load
 * spread"). Pure: the consumer feeds it the live nodes and the queues it is active on, with the time.
 *
 * The preferred node of a queue is chosen by rendezvous (highest-random-weight) hashing of the queue
 * name over the live nodes (Thaler and Ravishankar, "A Name-Based Mapping Scheme for Rendezvous",
 * 1996): every node computes the same answer from the same list, with no coordination, and a node
 * joining or leaving moves only the queues it wins or held.
 *
 * A give-up waits until the membership has been unchanged for `stableMs`, so that a node appearing
 * and disappearing (a restart, a heartbeat late) does not send queues back and forth. And it is
 * bounded per queue: a preferred node live in PostgreSQL but not consuming on RabbitMQ (its consumer
 * not started yet, or its RabbitMQ connection down) would hand the queue straight back to the node
 * that gave it up. After a queue's n-th give-up in one membership the next waits stableMs x 2^n
 * (at most 2^8), so such a queue moves a few times and then rarely; a change of membership starts
 * the count again.
 */
import { createHash } from "node:crypto";

/** A node's weight for a queue: the first 8 bytes of SHA-256 of `node \n queue`, unsigned. */
function weight(node: string, queue: string): bigint {
  return createHash("sha256").update(`${node}\n${queue}`).digest().readBigUInt64BE(0);
}

/** The node of `nodes` with the highest weight for the queue (ties to the smaller id); null if none. */
export function preferredNode(queue: string, nodes: readonly string[]): string | null {
  let best: string | null = null;
  let bestWeight = -1n;
  for (const node of nodes) {
    const w = weight(node, queue);
    if (w > bestWeight || (w === bestWeight && best !== null && node < best)) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
}

/** The longest wait between two give-ups of one queue in one membership: stableMs x 2^8. */
const MAX_DOUBLINGS = 8;

export class IngestBalance {
  /** The live nodes, this one included, sorted; null while unknown (nothing is given up). */
  private nodes: string[] | null = null;
  /** When the membership last changed (monotonic ms). */
  private since = 0;
  private readonly giveUps = new Map<string, { count: number; at: number }>();

  constructor(
    readonly nodeId: string,
    readonly stableMs: number,
  ) {}

  /**
   * The live nodes as read now, or null when they could not be read. This node counts as live
   * whatever the list says: it is consuming (its heartbeat may be late).
   */
  membership(live: readonly string[] | null, now: number): void {
    const next = live === null ? null : [...new Set([...live, this.nodeId])].sort();
    const same =
      next !== null &&
      this.nodes !== null &&
      next.length === this.nodes.length &&
      next.every((n, i) => n === this.nodes?.[i]);
    if (same) return;
    this.nodes = next;
    this.since = now;
    this.giveUps.clear();
  }

  /** The live nodes as last read (null: unknown). */
  get liveNodes(): readonly string[] | null {
    return this.nodes;
  }

  /** Milliseconds the membership has been unchanged (null: unknown). */
  stableFor(now: number): number | null {
    return this.nodes === null ? null : now - this.since;
  }

  preferred(queue: string): string | null {
    return this.nodes === null ? null : preferredNode(queue, this.nodes);
  }

  /** Of the queues this node is active on, those it should give up now. */
  due(active: Iterable<string>, now: number): string[] {
    if (this.nodes === null || now - this.since < this.stableMs) return [];
    const out: string[] = [];
    for (const queue of active) {
      if (this.preferred(queue) === this.nodeId) continue;
      const last = this.giveUps.get(queue);
      if (last && now - last.at < this.stableMs * 2 ** Math.min(last.count, MAX_DOUBLINGS)) continue;
      out.push(queue);
    }
    return out;
  }

  /** The queue was given up at `now`. */
  gaveUp(queue: string, now: number): void {
    const count = (this.giveUps.get(queue)?.count ?? 0) + 1;
    this.giveUps.set(queue, { count, at: now });
  }
}
