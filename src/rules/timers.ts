/**
 * Durable timers: every pending duration (absence windows, escalation steps, re-notifications,
 * webhook retries) is a row in `timers` before it is armed in memory, so a restart resumes them,
 * and one that fell due while the gateway was down fires at start, in due order.
 *
 * Delivery is at-least-once: the row is deleted after its handler ran, so a crash in between fires
 * it again after the restart. Handlers check the state they act on (an escalation step for a level
 * already passed does nothing).
 *
 * The memory follows the database, also when a transaction rolls back: set() and cancel() inside a
 * transaction are journaled, and AlertManager.batch() undoes them in memory when its transaction
 * fails (a full disk at COMMIT), so no timer is armed that the database does not hold, and none is
 * forgotten that it still holds. A handler that fails because the storage refuses writes leaves its
 * timer in place and fires it again after `retryMs`, until the disk takes writes again.
 *
 * The rows are read and written through a `TimerStore` (timer-store.ts), in the unit of work of the
 * partition it belongs to (partition.ts): here, "transaction" is that unit's step.
 */
import type { Logger } from "../log.js";
import { isStorageError, type StorageHealth } from "../store/health.js";
import type { TimerStore } from "./timer-store.js";

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
  private loaded = false;
  /** When a timer whose handler met a full disk is tried again (memory only; its row is unchanged). */
  private readonly retryAt = new Map<string, number>();
  /** In-memory changes made inside the open transaction, newest last: how to undo each. */
  private journal: (() => void)[] = [];
  /** Set by the gateway: storage failures in handlers are reported there. */
  storage: StorageHealth | null = null;
  retryMs = 2000;

  constructor(
    private readonly store: TimerStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Register the handler for a kind before start(). */
  on<P>(kind: string, handler: (timer: Timer<P>) => void): void {
    this.handlers.set(kind, handler as unknown as Handler);
  }

  start(): void {
    this.load();
    this.running = true;
    // What fell due while the gateway was down fires now, inside start(), so it has happened
    // before the gateway takes connections (a device event cannot overtake an overdue timer).
    this.fireDue();
  }

  /** Read the timers from the database without firing any (the rules' replay fires them in order). */
  load(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const r of this.store.load())
      this.remember({ id: r.id, kind: r.kind, dueAt: r.due_at, payload: JSON.parse(r.payload) });
  }

  /** When the next timer is due (a retry counts), or undefined. */
  nextDue(): number | undefined {
    this.load();
    const t = this.peek();
    return t ? this.dueOf(t) : undefined;
  }

  /** Fire what is due up to `until` (the rules' replay: the time an event was received). */
  fireDueUntil(until: number): void {
    this.load();
    if (this.firing) return;
    this.fire(until);
  }

  /** Where the open transaction's in-memory changes begin (AlertManager.batch). */
  mark(): number {
    return this.journal.length;
  }

  /** The transaction (or savepoint) begun at `mark` rolled back: take its changes out of memory. */
  undo(mark: number): void {
    while (this.journal.length > mark) this.journal.pop()!();
  }

  /** The outermost transaction committed: its changes stay. */
  committed(): void {
    this.journal.length = 0;
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
    this.store.upsert(id, kind, Math.round(dueAt), JSON.stringify(payload), this.now());
    this.journalUndo(id);
    this.remember({ id, kind, dueAt: Math.round(dueAt), payload });
    if (!this.firing) this.arm();
  }

  cancel(id: string): boolean {
    if (!this.timers.has(id)) return false;
    this.store.remove(id);
    this.journalUndo(id);
    this.forget(id);
    return true;
  }

  private forget(id: string): void {
    this.timers.delete(id);
    this.retryAt.delete(id);
    this.generation.set(id, (this.generation.get(id) ?? 0) + 1);
  }

  /** Inside a transaction: remember how to put the timer back as it is now, should it roll back. */
  private journalUndo(id: string): void {
    if (!this.store.inStep()) {
      // Whatever transaction journaled before has ended without telling (not an AlertManager
      // batch): its entries can no longer be undone meaningfully.
      this.journal.length = 0;
      return;
    }
    const before = this.timers.get(id);
    this.journal.push(() => {
      if (before) this.remember(before);
      else this.forget(id);
      if (!this.firing) this.arm();
    });
  }

  private dueOf(t: Timer): number {
    return this.retryAt.get(t.id) ?? t.dueAt;
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
    this.fire(this.now());
  }

  private fire(now: number): void {
    this.firing = true;
    try {
      for (;;) {
        const top = this.peek();
        if (!top || this.dueOf(top) > now) break;
        this.pop();
        const handler = this.handlers.get(top.kind);
        try {
          if (handler) handler(top);
          else this.log.error({ timer: top.id, kind: top.kind }, "no handler for timer kind; dropped");
        } catch (err) {
          if (isStorageError(err) && this.timers.get(top.id) === top) {
            // The disk refused the handler's writes (its transaction rolled back): keep the timer
            // and try again, in memory only, since its row cannot be written either.
            this.storage?.failed("timers", err);
            this.retry(top, this.now() + this.retryMs);
            continue;
          }
          this.log.error({ err, timer: top.id, kind: top.kind }, "timer handler failed");
        }
        // The handler may have re-set the same id for later: only delete what is still this firing.
        const current = this.timers.get(top.id);
        if (current === top) {
          this.forget(top.id);
          try {
            this.store.removeFired(top.id, top.dueAt);
          } catch (err) {
            // Its effects are committed; the row stays and fires once more after a restart, which
            // handlers already tolerate (at-least-once, above).
            if (!this.storage?.failed("timers", err)) throw err;
          }
        }
      }
    } catch (err) {
      this.log.error({ err }, "firing timers failed");
    } finally {
      this.firing = false;
      this.arm();
    }
  }

  private retry(t: Timer, at: number): void {
    this.retryAt.set(t.id, at);
    const gen = (this.generation.get(t.id) ?? 0) + 1;
    this.generation.set(t.id, gen);
    this.push([at, t.id, gen]);
  }

  private remember(t: Timer): void {
    this.timers.set(t.id, t);
    this.retryAt.delete(t.id);
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
    const due = this.dueOf(next);
    if (this.armed && this.armedFor <= due) return;
    if (this.armed) clearTimeout(this.armed);
    const delay = Math.min(Math.max(0, due - this.now()), MAX_DELAY);
    this.armedFor = due;
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
