/**
 * Prepared statements by their SQL, made once per connection and kept.
 *
 * `db.prepare` on a busy path costs twice: SQLite compiles the SQL every time, and each statement
 * is a native object the main thread's garbage collector must finalise (V8's weak-handle phase of
 * a scavenge, on the thread that takes a fall to staff). Measured in `npm run bench --
 * alert-latency`: the staff token lookups alone prepared about 6,000 statements in a run's 20 s.
 */
import type Database from "better-sqlite3";
import type { Db } from "./db.js";

export class Statements {
  private readonly cache = new Map<string, Database.Statement>();

  constructor(private readonly db: Db) {}

  get(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
}
