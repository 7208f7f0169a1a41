/**
 * The rules' position in the event log (engine.ts): every event up to it has had its rule effects
 * committed. It is set inside the step that commits those effects (a `PartitionState`'s unit of
 * work, partition.ts), so either both are kept or neither is; set outside a step (heartbeats no rule
 * looks at, persisted at most once a second) it is a step of its own.
 *
 * One process keeps it in SQLite's `cursors` table, row `rules:events` (`SqliteRulesCursor`); every
 * implementation passes test/rules/partition.contract.ts.
 */
import type Database from "better-sqlite3";
import { type Db, getCursor } from "../store/db.js";

/** The rules' position in the event log (cursors.name). */
export const RULES_CURSOR = "rules:events";

export interface RulesCursor {
  /** The log seq up to which every event's rule effects are committed; 0 before the first. */
  position(): number;
  /** Moves it (a log seq), at `at` (epoch ms, kept for operators). */
  set(position: number, at: number): void;
  /** False once the storage is closed (then nothing is written). */
  available(): boolean;
}

export class SqliteRulesCursor implements RulesCursor {
  private statement: Database.Statement | null = null;

  constructor(
    private readonly db: Db,
    private readonly name: string = RULES_CURSOR,
  ) {}

  position(): number {
    return getCursor(this.db, this.name);
  }

  set(position: number, at: number): void {
    this.statement ??= this.db.prepare(
      "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
    );
    this.statement.run(this.name, position, at);
  }

  available(): boolean {
    return this.db.open;
  }
}
