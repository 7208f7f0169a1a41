/**
 * Durable timers: every pending duration (absence windows, escalation steps, re-notifications,
 * webhook retries) is a row in `timers` before it is armed in memory, so a restart resumes them,
 * and one that fell due while the gateway was down fires at start, in due order.
 *
 * Delivery is at-least-once: the row is deleted after its handler ran, so a crash in between fires
 * it again after the restart. Handlers check the state they act on (an escalation step for a level
 * already passed does nothing).
 */
import type Database from "better-sqlite3";
import type { Logger } from "../log.js";
import type { Db } from "../store/db.js";

export interface Timer<P = unknown> {
  id: string;
  kind: string;
  dueAt: number;
  payload: P;
}

// Handlers are stored per kind and given their own payload type by on<P>().
type Handler = (timer: Timer<unknown>) => void;

/** setTimeout cannot wait longer than 2^31-1 ms; longer timers re-arm. */
const MAX_DELAY = 2_147_483_647;

export class DurableTimers {
  private readonly handlers = new Map<string, Handler>();
  private readonly timers = new Map<string, Timer>();
  /** Min-heap of [dueAt, id, generation]; stale entries are skipped when popped. */
  private heap: [number, string, number][] = [];
  private readonly generation = new Map<string, number>();
  private armed: NodeJS.Timeout | null = null;
  private armedFor = Number.POSITIVE_INFINITY;
  private running = false;
  private firing = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Register the handler for a kind before start(). */
  on<P>(kind: string, handler: (timer: Timer<P>) => void): void {
    this.handlers.set(kind, handler as unknown as Handler);
  }

  start(): void {
    this.running = true;
    const rows = this.db.prepare("SELECT id, kind, due_at, payload FROM timers").all() as {
      id: string;
      kind: string;
      due_at: number;
      payload: string;
    }[];
    for (const r of rows)
      this.remember({ id: r.id, kind: r.kind, dueAt: r.due_at, payload: JSON.parse(r.payload) });
    // What fell due while the gateway was down fires now, inside start(), so it has happened
    // before the gateway takes connections (a device event cannot overtake an overdue timer).
    this.fireDue();
  }

  stop(): void {
    this.running = false;
    if (this.armed) clearTimeout(this.armed);
    this.armed = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.timers.size;
  }

  get(id: string): Timer | undefined {
    return this.timers.get(id);
  }

  list(kind?: string): Timer[] {
    return [...this.timers.values()]
      .filter((t) => !kind || t.kind === kind)
      .sort((a, b) => a.dueAt - b.dueAt);
  }

  /** Create or move a timer. Written to the database before it is armed. */
  set<P>(id: string, kind: string, dueAt: number, payload: P): void {
    if (!this.handlers.has(kind)) throw new Error(`no handler for timer kind "${kind}"`);
    this.statements().upsert.run(id, kind, Math.round(dueAt), JSON.stringify(payload), this.now());
    this.remember({ id, kind, dueAt: Math.round(dueAt), payload });
    if (!this.firing) this.arm();
  }

  cancel(id: string): boolean {
    if (!this.timers.has(id)) return false;
    this.statements().remove.run(id);
    this.timers.delete(id);
    this.generation.set(id, (this.generation.get(id) ?? 0) + 1);
    return true;
  }

  /** Cancel every timer whose id starts with the prefix (all timers of one alert). */
  cancelPrefix(prefix: string): number {
    let n = 0;
    for (const id of [...this.timers.keys()]) if (id.startsWith(prefix) && this.cancel(id)) n++;
    return n;
  }

  /** Fire everything due now, in due order. Called by the armed timeout; public for tests. */
  fireDue(): void {
    if (!this.running || this.firing) return;
    this.firing = true;
    try {
      const now = this.now();
      for (;;) {
        const top = this.peek();
        if (!top || top.dueAt > now) break;
        this.pop();
        const handler = this.handlers.get(top.kind);
        try {
          if (handler) handler(top);
          else this.log.error({ timer: top.id, kind: top.kind }, "no handler for timer kind; dropped");
        } catch (err) {
          this.log.error({ err, timer: top.id, kind: top.kind }, "timer handler failed");
        }
        // The handler may have re-set the same id for later: only delete what is still this firing.
        const current = this.timers.get(top.id);
        if (current === top) {
          this.timers.delete(top.id);
          this.statements().removeFired.run(top.id, top.dueAt);
        }
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }

  private prepared: {
    upsert: Database.Statement;
    remove: Database.Statement;
    removeFired: Database.Statement;
  } | null = null;
  /** Prepared once: set() and cancel() run for every bed exit and every alert transition. */
  private statements() {
    this.prepared ??= {
      upsert: this.db.prepare(
        `INSERT INTO timers (id, kind, due_at, payload, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at, payload = excluded.payload`,
      ),
      remove: this.db.prepare("DELETE FROM timers WHERE id = ?"),
      removeFired: this.db.prepare("DELETE FROM timers WHERE id = ? AND due_at = ?"),
    };
    return this.prepared;
  }

  private remember(t: Timer): void {
    this.timers.set(t.id, t);
    const gen = (this.generation.get(t.id) ?? 0) + 1;
    this.generation.set(t.id, gen);
    this.push([t.dueAt, t.id, gen]);
  }

  private peek(): Timer | undefined {
    while (this.heap.length) {
      const [, id, gen] = this.heap[0]!;
      const t = this.timers.get(id);
      if (t && this.generation.get(id) === gen) return t;
      this.popHeap();
    }
    return undefined;
  }

  private pop(): void {
    this.popHeap();
  }

  private arm(): void {
    if (!this.running) return;
    const next = this.peek();
    if (!next) {
      if (this.armed) clearTimeout(this.armed);
      this.armed = null;
      this.armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.armed && this.armedFor <= next.dueAt) return;
    if (this.armed) clearTimeout(this.armed);
    const delay = Math.min(Math.max(0, next.dueAt - this.now()), MAX_DELAY);
    this.armedFor = next.dueAt;
    this.armed = setTimeout(() => {
      this.armed = null;
      this.armedFor = Number.POSITIVE_INFINITY;
      this.fireDue();
    }, delay);
  }

  private push(item: [number, string, number]): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]![0] <= h[i]![0]) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private popHeap(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (!h.length) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]![0] < h[m]![0]) m = l;
      if (r < h.length && h[r]![0] < h[m]![0]) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}
