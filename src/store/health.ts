/**
 * Storage health: whether the data directory takes writes right now.
 *
 * A full or read-only disk must not take the gateway down (an uncaught write error in a timer ends
 * all alerting until somebody restarts the process). Every write path that runs outside a request
 * (ingest commits, rule batches, timers, presence supervision, sink cursors) catches its errors,
 * leaves nothing half-applied, and reports a storage failure here; /readyz then says `disk` is not
 * ready, with the reason, and /metrics counts each failure by component and SQLite code.
 *
 * Recovery needs no restart: each component retries its own work, and while a failure is
 * recorded a small probe write on the main database runs every `probeIntervalMs`; the first write
 * that succeeds (probe or real) clears the state and tells the listeners ("recovered"), so work that
 * was waiting for the disk (the rules' catch-up from the event log) resumes at once.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Db } from "./db.js";

/**
 * SQLite result codes that mean "the disk or the file refuses writes", as opposed to a bug or a
 * constraint: SQLITE_FULL (no space), SQLITE_IOERR_* (write or fsync failed), SQLITE_READONLY_*
 * (file or mount read-only), SQLITE_CANTOPEN (a journal or WAL file cannot be created),
 * SQLITE_BUSY (another connection held the write lock past busy_timeout: an operator's shell in a
 * transaction, say; the work is retried like a full disk's, never skipped as a failed rule), and the
 * plain errno codes Node reports for its own files.
 */
const STORAGE_CODE = /^(SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY)|ENOSPC|EROFS|EIO|EDQUOT)/;
const STORAGE_MESSAGE =
  /database or disk is full|disk I\/O error|attempt to write a readonly database|unable to open database file|database is locked/i;

/** Does this error mean the storage refuses writes (rather than a bug in what was written)? */
export function isStorageError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && STORAGE_CODE.test(code)) return true;
  return STORAGE_MESSAGE.test(err.message);
}

export function storageCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  const message = err instanceof Error ? err.message : String(err);
  if (/disk is full/i.test(message)) return "SQLITE_FULL";
  if (/readonly/i.test(message)) return "SQLITE_READONLY";
  if (/I\/O/i.test(message)) return "SQLITE_IOERR";
  if (/database is locked/i.test(message)) return "SQLITE_BUSY";
  return "unknown";
}

export interface StorageFailure {
  component: string;
  code: string;
  message: string;
  at: string;
  /** Failures since the storage last took a write. */
  count: number;
}

/** Emits "failed" (StorageFailure) on the first failure of an outage and "recovered" at its end. */
export class StorageHealth extends EventEmitter {
  private failure: StorageFailure | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly probeIntervalMs: number;

  constructor(
    private readonly ctx: {
      db: Db;
      log: Logger;
      metrics: Metrics;
      probeIntervalMs?: number;
    },
  ) {
    super();
    this.probeIntervalMs = ctx.probeIntervalMs ?? 1000;
  }

  get ok(): boolean {
    return this.failure === null;
  }

  get lastFailure(): StorageFailure | null {
    return this.failure;
  }

  /**
   * Report an error from a write path. Returns true when it is a storage error (recorded and
   * counted); false for anything else, which the caller handles as before.
   */
  failed(component: string, err: unknown): boolean {
    if (!isStorageError(err)) return false;
    const code = storageCode(err);
    this.ctx.metrics.storageWriteFailures.inc({ component, code });
    const first = this.failure === null;
    this.failure = {
      component,
      code,
      message: err instanceof Error ? err.message : String(err),
      at: new Date().toISOString(),
      count: (this.failure?.count ?? 0) + 1,
    };
    if (first) {
      this.ctx.log.error(
        { component, code, err: this.failure.message },
        "storage refuses writes: publishes are refused until it recovers",
      );
      this.emitSafely("failed", this.failure);
      this.armProbe();
    }
    return true;
  }

  /** A write committed: the storage takes writes again. */
  succeeded(): void {
    if (this.failure === null) return;
    const was = this.failure;
    this.failure = null;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.ctx.log.warn({ failures: was.count, since: was.at }, "storage takes writes again");
    this.emitSafely("recovered", was);
  }

  stop(): void {
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  /**
   * One small write on the main database: real work may not come along by itself (no device
   * publishing, no timer due), and readiness should not stay red after the space returned.
   */
  probe(): boolean {
    try {
      this.ctx.db
        .prepare(
          "INSERT INTO cursors (name, position, updated_at) VALUES ('storage:probe', 0, ?) ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .run(Date.now());
    } catch (err) {
      if (!isStorageError(err)) this.ctx.log.error({ err }, "storage probe failed");
      return false;
    }
    this.succeeded();
    return true;
  }

  private armProbe(): void {
    if (this.probeTimer || !this.ctx.db.open) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (this.failure && this.ctx.db.open && !this.probe()) this.armProbe();
    }, this.probeIntervalMs);
    this.probeTimer.unref();
  }

  private emitSafely(name: string, arg: unknown): void {
    for (const l of this.listeners(name)) {
      try {
        (l as (a: unknown) => void)(arg);
      } catch (err) {
        this.ctx.log.error({ err, event: name }, "storage health listener failed");
      }
    }
  }
}
