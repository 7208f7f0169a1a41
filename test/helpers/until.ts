/**
 * Waiting in a test for something another component does on its own time (a follower's delivery,
 * a lease changing hands): checked every few milliseconds, failing with what was awaited, and how
 * far it got, once the time is up.
 */
import { performance } from "node:perf_hooks";

/** Resolves once `ok()` holds; rejects after `timeoutMs` with `what` (a function: said at that moment). */
export function until(what: string | (() => string), ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (ok()) return resolve();
      if (performance.now() - started > timeoutMs)
        return reject(new Error(`not within ${timeoutMs} ms: ${typeof what === "string" ? what : what()}`));
      setTimeout(check, 5);
    };
    check();
  });
}
