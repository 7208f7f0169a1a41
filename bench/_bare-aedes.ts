/**
 * Baseline for the benchmarks: aedes with no hooks, no pipeline, TCP_NODELAY on, on a free port.
 * Prints one ready line with its port. Its garbage-collection pauses, to set beside the gateway's:
 * SIGUSR2 opens a window and the next SIGUSR2 closes it and prints it as one JSON line
 * (`{"gcWindow": {"minor": {pauses, ms, over10ms}, "major": {...}}}`).
 */
import { createServer } from "node:net";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { Aedes } from "aedes";

const broker = await Aedes.createBroker({ maxClientsIdLength: 64, concurrency: 1000 });
const server = createServer((socket) => {
  socket.setNoDelay(true);
  broker.handle(socket);
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  process.stdout.write(`${JSON.stringify({ ready: true, mqtt: port })}\n`);
});
process.on("SIGTERM", () => {
  server.close();
  broker.close(() => process.exit(0));
});

let window: { minor: number[]; major: number[] } | null = null;
new PerformanceObserver((list) => {
  if (!window) return;
  for (const e of list.getEntries()) {
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
    (kind === constants.NODE_PERFORMANCE_GC_MINOR ? window.minor : window.major).push(e.duration);
  }
}).observe({ entryTypes: ["gc"] });
const summary = (ms: number[]) => ({
  pauses: ms.length,
  ms: Math.round(ms.reduce((a, b) => a + b, 0)),
  over10ms: ms.filter((x) => x > 10).length,
});
process.on("SIGUSR2", () => {
  if (!window) {
    window = { minor: [], major: [] };
    return;
  }
  const { minor, major } = window;
  window = null;
  process.stdout.write(`${JSON.stringify({ gcWindow: { minor: summary(minor), major: summary(major) } })}\n`);
});
