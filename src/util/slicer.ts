/**
 * Cooperative time slicing for long synchronous work on the main thread (better-sqlite3 queries
 * are synchronous): call pause() between units of work; it yields to the event loop once the
 * current slice has run for sliceMs, so sockets (a fall arriving, a PUBACK going out) are served in
 * between. Never call it while a statement iterator is open on the connection.
 */
export class Slicer {
  private start = performance.now();

  /** 2 ms: a fall arriving meanwhile waits at most that long for this work (issue: falls first). */
  constructor(private readonly sliceMs = 2) {}

  /** Resolves at once inside a slice; after sliceMs, on the next turn of the event loop. */
  async pause(): Promise<void> {
    if (performance.now() - this.start < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.start = performance.now();
  }
}
