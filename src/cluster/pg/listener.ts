/**
 * One PostgreSQL connection held for LISTEN, for a component that must not miss a NOTIFY: the
 * leases, the log followers (change feed, event log, replication), the owner commands, the staff
 * presence.
 *
 * The connection is opened with the pool's settings but outside it: it is held for as long as the
 * owner runs, and counted against the pool's `max` it would leave the pool's work (a partition's
 * flush, an owner command) fewer connections than configured (six listeners held six of a node's
 * ten, measured), and nobody else could inherit the subscription anyway. A notification is delivered only to a session listening when
 * the sending transaction commits (PostgreSQL, NOTIFY), so what commits while the connection is down
 * is never announced: after a drop the connection is opened again after `reconnectMs`, LISTENs again,
 * and only then calls `onListening(true)`, where the owner reads everything. That order (listen, then
 * read) also holds at start: the owner reads after `start()` resolves, so whatever commits in between
 * is either read or announced. The owner keeps a slow poll of its own for a connection that hangs
 * without failing.
 */
import pg from "pg";
import { ignoreDropped, withDeadline } from "./session.js";

export interface PgListenerOptions {
  pool: pg.Pool;
  channels: readonly string[];
  /** Every notification on one of the channels. */
  onNotification(msg: pg.Notification): void;
  /**
   * After every LISTEN: `reconnected` false for the one `start()` made, true after a drop. Whatever
   * committed while the connection was down was not announced: read it now.
   */
  onListening?(reconnected: boolean): void;
  /** A (re)LISTEN failed; a new attempt follows after `reconnectMs`. */
  onError?(err: Error): void;
  /** The held connection failed or ended (with its error if it had one). */
  onDropped?(err: Error | undefined): void;
  /** Wait before opening a lost connection again. */
  reconnectMs: number;
  /** Connect and LISTEN within this, or the connection is destroyed and the attempt failed; none by default. */
  timeoutMs?: number;
  /** A failed first LISTEN is reported and retried instead of rejecting `start()`. */
  retryStart?: boolean;
  /** The wait before opening the connection again does not keep the process alive. */
  unref?: boolean;
}

export interface PgListenerStatus {
  connected: boolean;
  /** The listening connection's server process, for pg_stat_activity. */
  backendPid: number | null;
  /** LISTENs made again after a drop. */
  reconnects: number;
}

/** Constructing does nothing; `start()` listens; `stop()` releases the connection and the timer. */
export class PgListener {
  private running = false;
  private held: pg.PoolClient | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private reconnects = 0;

  constructor(private readonly o: PgListenerOptions) {}

  /** Listens; rejects (stopped again) when it cannot, unless `retryStart`. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.connect();
    } catch (err) {
      if (!this.o.retryStart) {
        this.stop();
        throw err;
      }
      this.o.onError?.(err as Error);
      this.retry();
      return;
    }
    if (this.held) this.o.onListening?.(false);
  }

  stop(): void {
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const c = this.held;
    this.held = null;
    c?.release(true);
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The listening connection, while there is one; statements on it run between notifications. */
  get client(): pg.PoolClient | null {
    return this.held;
  }

  status(): PgListenerStatus {
    return {
      connected: this.held !== null,
      backendPid: (this.held as { processID?: number } | null)?.processID ?? null,
      reconnects: this.reconnects,
    };
  }

  /**
   * Gives up the connection (if it is still `c`, when given): one that hangs is destroyed and
   * opened again after `reconnectMs`, as if it had dropped.
   */
  drop(c: pg.PoolClient | null = this.held): void {
    if (!c || this.held !== c) return;
    this.held = null;
    c.release(true);
    this.retry();
  }

  /** Opens the connection again after `reconnectMs`, unless it is open or already about to be. */
  retry(): void {
    if (!this.running || this.retryTimer || this.held) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.running || this.held) return;
      this.connect()
        .then(() => {
          if (!this.held) return;
          this.reconnects++;
          this.o.onListening?.(true);
        })
        .catch((err: Error) => {
          this.o.onError?.(err);
          this.retry();
        });
    }, this.o.reconnectMs);
    if (this.o.unref) this.retryTimer.unref();
  }

  private async connect(): Promise<void> {
    const c = await this.listen();
    if (!this.running) {
      c.release(true);
      return;
    }
    this.held = c;
    const dropped = (err?: Error) => {
      if (this.held !== c) return;
      this.held = null;
      c.release(true);
      this.o.onDropped?.(err);
      this.retry();
    };
    c.on("error", dropped);
    c.on("end", () => dropped());
  }

  /** A connection of its own that LISTENs on every channel, within `timeoutMs` if set. */
  private listen(): Promise<pg.PoolClient> {
    return withDeadline(
      () => openOutside(this.o.pool),
      this.o.timeoutMs,
      async (c) => {
        c.on("notification", (msg) => {
          if (this.o.channels.includes(msg.channel)) this.o.onNotification(msg);
        });
        await c.query(this.o.channels.map((ch) => `LISTEN ${ch}`).join("; "));
        return c;
      },
      "keep",
    );
  }
}

/**
 * A connection with the pool's settings (URL, application_name) that is not the pool's, shaped as
 * the pool's clients are: `release(true)` ends it.
 */
async function openOutside(pool: pg.Pool): Promise<pg.PoolClient> {
  const client = new pg.Client(pool.options);
  // A failure before the caller attaches its own listener must not be an uncaught "error".
  client.on("error", ignoreDropped);
  try {
    await client.connect();
  } catch (err) {
    client.end().catch(() => undefined);
    throw err;
  }
  return Object.assign(client, {
    release: () => {
      client.end().catch(() => undefined);
    },
  }) as unknown as pg.PoolClient;
}
