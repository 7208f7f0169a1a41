/**
 * The in-memory half of a PostgreSQL partition's step (partition-state.ts): how a step's writes are
 * taken back (savepoints), which rows an outermost step changed (the journal its flush writes), and
 * the ids handed out without a round trip (`IdBlocks`).
 *
 * Every store of the partition changes its rows in memory at once, so a step reads its own writes,
 * and registers with the change how to undo it and which row it touched. A step that throws runs its
 * undos newest first, back to where it began, and forgets its journal entries: a nested step takes
 * back only its own writes. When the outermost step returns, the rows its journal names are handed
 * to `commit` as they now are (a row changed three times is written once, as it ended).
 */

/**
 * The tables a partition's step writes (partition_state: the rules' cursor and the audit head;
 * owner_commands: the answer to a staff command the step carried out, owner-commands.ts).
 */
export type Table =
  | "alerts"
  | "alert_audit"
  | "channel_attempts"
  | "timers"
  | "partition_state"
  | "owner_commands";

export type Changed = ReadonlyMap<Table, ReadonlySet<string | number>>;

export class UnitOfWork {
  private depth = 0;
  private readonly undos: (() => void)[] = [];
  private readonly journal: [Table, string | number][] = [];

  constructor(
    private readonly hooks: {
      /** Before an outermost step begins: throws if the partition may take no step now. */
      begin(): void;
      /** An outermost step returned: its writes, to be flushed. */
      commit(changed: Changed): void;
    },
  ) {}

  inStep(): boolean {
    return this.depth > 0;
  }

  step<T>(fn: () => T): T {
    if (this.depth === 0) this.hooks.begin();
    const undoFrom = this.undos.length;
    const journalFrom = this.journal.length;
    this.depth++;
    let result: T;
    try {
      result = fn();
      // As better-sqlite3 refuses one: a step that awaited would let other steps in between.
      if (result && typeof (result as { then?: unknown }).then === "function")
        throw new TypeError("a partition's step must be synchronous; it returned a promise");
    } catch (err) {
      for (let i = this.undos.length - 1; i >= undoFrom; i--) this.undos[i]!();
      this.undos.length = undoFrom;
      this.journal.length = journalFrom;
      this.depth--;
      throw err;
    }
    this.depth--;
    if (this.depth === 0) {
      const changed = new Map<Table, Set<string | number>>();
      for (const [table, key] of this.journal) {
        const keys = changed.get(table) ?? new Set();
        changed.set(table, keys);
        keys.add(key);
      }
      this.undos.length = 0;
      this.journal.length = 0;
      if (changed.size > 0) this.hooks.commit(changed);
    }
    return result;
  }

  /** Records a change made inside the open step: the row it touched and how to take it back. */
  changed(table: Table, key: string | number, undo: () => void): void {
    if (this.depth === 0) throw new Error("a partition's write outside a step");
    this.undos.push(undo);
    this.journal.push([table, key]);
  }

  /** Records how to take back an in-memory change that writes no row (an id handed out). */
  onUndo(undo: () => void): void {
    if (this.depth > 0) this.undos.push(undo);
  }
}

/** Thrown when a step needs an id and the block reserved ahead is used up. */
export class IdsExhaustedError extends Error {
  readonly code = "ids_exhausted";
  constructor(what: string, lastError: string | null) {
    super(
      `no ${what} reserved ahead: the refill from PostgreSQL has not arrived${lastError ? ` (last refill failed: ${lastError})` : ""}; the step is refused rather than made to wait`,
    );
    this.name = "IdsExhaustedError";
  }
}

/**
 * Ids from a PostgreSQL sequence, reserved a block at a time so that a step takes one without a
 * round trip. The sequence never goes back, and one refill runs at a time, so the ids a partition
 * hands out grow in the order its steps take them, which is their commit order; a new owner's first
 * block comes after every id any owner reserved before. An id taken by a step that throws is handed
 * out again (the next step gets it), as SQLite reuses a rolled-back rowid.
 *
 * A refill starts when no more than half a block is left; a step that needs more ids than are
 * reserved throws `IdsExhaustedError` instead of blocking (the event loop must not wait for
 * PostgreSQL inside a step).
 */
export class IdBlocks {
  private ids: number[] = [];
  private pos = 0;
  private refilling: Promise<void> | null = null;
  private lastError: string | null = null;

  constructor(
    private readonly what: string,
    private readonly size: number,
    private readonly reserve: (n: number) => Promise<number[]>,
    private readonly uow: UnitOfWork,
  ) {}

  /** Adds reserved ids (the first block, reserved by the load). */
  add(ids: readonly number[]): void {
    const last = this.ids[this.ids.length - 1];
    if (ids.length > 0 && last !== undefined && ids[0]! <= last)
      throw new Error(`${this.what}: a reserved block does not follow the previous one`);
    this.ids.push(...ids);
  }

  get remaining(): number {
    return this.ids.length - this.pos;
  }

  next(): number {
    if (this.pos >= this.ids.length) {
      this.refill();
      throw new IdsExhaustedError(this.what, this.lastError);
    }
    const id = this.ids[this.pos++]!;
    this.uow.onUndo(() => {
      this.pos--;
    });
    if (this.remaining <= this.size / 2) this.refill();
    return id;
  }

  /** Resolves when no refill is in flight (a failed one is reported by the next `next()` that runs out). */
  async settled(): Promise<void> {
    while (this.refilling) await this.refilling;
  }

  private refill(): void {
    if (this.refilling) return;
    this.refilling = this.reserve(this.size)
      .then((ids) => {
        // Outside any step (an async continuation): the ids already used can go.
        this.ids = this.ids.slice(this.pos);
        this.pos = 0;
        this.add(ids);
        this.lastError = null;
      })
      .catch((err: Error) => {
        this.lastError = err.message;
      })
      .finally(() => {
        this.refilling = null;
      });
  }
}
