/**
 * A pooled PostgreSQL connection for one piece of work, with a deadline. Used by the components
 * whose rounds must not hang on a connection a network partition has swallowed (leases.ts,
 * staff-presence.ts): past `timeoutMs` the connection is destroyed rather than waited on, so the
 * next round starts on a fresh one, and a connection that arrives after the deadline is not used,
 * so an abandoned write cannot run after a newer one. A failed piece of work destroys its
 * connection too: a transaction left open dies with it.
 */
import type pg from "pg";

/**
 * node-postgres emits "error" on a checked-out client whose connection drops (PostgreSQL
 * restarting, or ending a fenced transaction left idle too long), and the pool listens only to
 * idle ones: without a listener that would take the process down. The statement in flight, or the
 * next one, fails with the error anyway, and that is where it is handled.
 */
export const ignoreDropped = (): void => undefined;

/**
 * `fn` on a connection from `open`, within `timeoutMs` if given. Past the deadline, or when `fn`
 * fails, the connection is destroyed; one that arrives after the deadline is destroyed unused. When
 * `fn` succeeds the connection goes back to its pool (`release`), or stays with the caller (`keep`:
 * the listener's LISTEN connection, which `fn` returns).
 */
export async function withDeadline<T>(
  open: () => Promise<pg.PoolClient>,
  timeoutMs: number | undefined,
  fn: (c: pg.PoolClient) => Promise<T>,
  after: "release" | "keep",
): Promise<T> {
  let client: pg.PoolClient | null = null;
  let done = false;
  const finish = (destroy: boolean) => {
    if (done) return;
    done = true;
    if (!client || (!destroy && after === "keep")) return;
    client.off("error", ignoreDropped);
    client.release(destroy);
  };
  const work = (async () => {
    const c = await open();
    if (done) {
      c.release(true);
      throw new Error("abandoned");
    }
    client = c;
    c.on("error", ignoreDropped);
    let result: T;
    try {
      result = await fn(c);
    } catch (err) {
      // The transaction, if any, dies with the connection.
      finish(true);
      throw err;
    }
    if (done) throw new Error("abandoned");
    finish(false);
    return result;
  })();
  if (timeoutMs === undefined) return work;
  work.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      finish(true);
      reject(new Error(`no answer from PostgreSQL within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A connection from `pool` for one piece of work within `timeoutMs`, returned to it after. */
export function session<T>(
  pool: pg.Pool,
  timeoutMs: number,
  fn: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return withDeadline(() => pool.connect(), timeoutMs, fn, "release");
}
