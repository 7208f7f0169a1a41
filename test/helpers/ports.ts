/**
 * Loopback ports for the servers the tests start: one free port, and whether one accepts yet.
 *
 * The ports come from below the kernel's ephemeral range (32768-60999 on Linux), so nothing
 * that binds port 0 and no outgoing connection can take one of them; and each vitest worker
 * draws from a slice of its own, so two test files running side by side never pick the same
 * port. That matters when a test stops a server and starts it again on its old port (an
 * InfluxDB outage, a broker restart): with ports from the ephemeral range, another worker's
 * server could take the port in between, and the restart would fail with EADDRINUSE.
 */
import { createServer, connect as tcpConnect } from "node:net";

const LOW = 20_000;
const HIGH = 32_767; // below /proc/sys/net/ipv4/ip_local_port_range's default start
const SLICES = 8;
const SLICE = Math.floor((HIGH - LOW + 1) / SLICES);

/** This process's slice: vitest numbers its workers from 1; anything else (a benchmark) takes one by pid. */
function slice(): number {
  const pool = Number(process.env.VITEST_POOL_ID);
  return Number.isInteger(pool) && pool > 0 ? (pool - 1) % SLICES : process.pid % SLICES;
}

const base = LOW + slice() * SLICE;
// Start somewhere in the slice at random: the file before this one in the same worker may have
// left a server shutting down on the first ports.
const start = Math.floor(Math.random() * SLICE);
let next = start;

function tryBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port of this worker's slice that nothing has bound, and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  while (next - start < SLICE) {
    const port = base + (next++ % SLICE);
    if (await tryBind(port)) return port;
  }
  throw new Error(`no free port left in ${base}-${base + SLICE - 1}`);
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
