/**
 * Waiting in a test for something another component does on its own time (a follower's delivery,
 * a lease changing hands): checked every few milliseconds, failing with what was awaited, and how
 * far it got, once the time is up.
 */
import { performance } from "node:perf_hooks";

/**
 * Resolves once `ok()` holds; rejects after `timeoutMs` with `what` (a function: said at that moment).
 * Either may be asynchronous (a query to the database under test).
 */
export function until(
  what: string | (() => string | Promise<string>),
  ok: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = async () => {
      if (await ok()) return resolve();
      if (performance.now() - started > timeoutMs)
        return reject(
          new Error(`not within ${timeoutMs} ms: ${typeof what === "string" ? what : await what()}`),
        );
      setTimeout(() => void check().catch(reject), 5);
    };
    void check().catch(reject);
  });
}
