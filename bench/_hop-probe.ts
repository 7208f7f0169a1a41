/**
 * What the machine itself does to a thread hop, as a baseline beside a server under load: a process
 * of its own that does nothing but, every SPACING_MS (the falls' spacing), hand a message to a worker
 * thread and time the answer (postMessage there and back: two wake-ups, as a publish handed to the
 * event-log writer and answered), and time how late a timer of the same period fires (one wake-up).
 * Neither does any work, so their tail is the scheduler's and the hypervisor's, not code's.
 *
 * SIGUSR2 opens a window; the next SIGUSR2 closes it and prints one JSON line
 * (`{"hopWindow": {"roundTrip": {n, p50Ms, p99Ms, maxMs}, "timerLate": {...}}}`).
 *
 *   tsx bench/_hop-probe.ts [spacingMs=20]
 */
import { Worker } from "node:worker_threads";

{
  const spacing = Number(process.argv[2] ?? 20);
  // Plain JavaScript, as the gateway's own threads are: it answers each message at once.
  const worker = new Worker(
    "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));",
    { eval: true },
  );
  await new Promise<void>((resolve) => worker.once("online", () => resolve()));
  let window: { roundTrip: number[]; timerLate: number[] } | null = null;
  let sentAt = 0;
  worker.on("message", () => window?.roundTrip.push(performance.now() - sentAt));
  let due = performance.now() + spacing;
  const tick = () => {
    const now = performance.now();
    window?.timerLate.push(now - due);
    sentAt = performance.now();
    worker.postMessage(0);
    due = now + spacing;
    setTimeout(tick, spacing);
  };
  setTimeout(tick, spacing);
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length
      ? Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! * 1000) / 1000
      : Number.NaN;
  };
  const summary = (xs: number[]) => ({
    n: xs.length,
    p50Ms: pct(xs, 50),
    p99Ms: pct(xs, 99),
    maxMs: pct(xs, 100),
  });
  process.on("SIGUSR2", () => {
    if (!window) {
      window = { roundTrip: [], timerLate: [] };
      return;
    }
    const w = window;
    window = null;
    process.stdout.write(
      `${JSON.stringify({ hopWindow: { roundTrip: summary(w.roundTrip), timerLate: summary(w.timerLate) } })}\n`,
    );
  });
  process.on("SIGTERM", () => {
    void worker.terminate().then(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
}
