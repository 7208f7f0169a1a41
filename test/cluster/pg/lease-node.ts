/**
 * A gateway node reduced to its partition leases and an owner's writes, run as a child process so
 * that tests can kill -9 it, SIGSTOP it and SIGCONT it by PID:
 *
 *   node --import tsx test/cluster/pg/lease-node.ts <postgres url> <node id> <leaseMs> <partitions>
 *
 * It prints one JSON line per event on stdout: `loaded` once its modules are loaded (it then waits
 * for `start` on stdin, so a test can start a node without waiting for the module loading),
 * `started`, `acquired`, `lost`, and for each `write <partition> <token>` line on stdin the outcome
 * of that one fenced write. While it owns partitions it writes to lease_log (lease-writer.ts).
 */
import { createInterface } from "node:readline";
import pg from "pg";
import { LeaseLostError, PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { fencedWriter } from "./lease-writer.js";

const [url, nodeId, leaseMs, partitions] = process.argv.slice(2);
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

const pool = new pg.Pool({ connectionString: url, max: 3 });
pool.on("error", () => undefined);
const leases = new PartitionLeases({
  pool,
  nodeId: nodeId!,
  leaseMs: Number(leaseMs),
  partitions: Number(partitions),
});
leases.on("acquired", (p, token) => say({ ev: "acquired", p, token }));
leases.on("lost", (p, reason) => say({ ev: "lost", p, reason }));
leases.on("error", (err) => say({ ev: "error", message: err.message }));

async function write(p: number, token: number): Promise<void> {
  try {
    await leases.fenced(p, token, (c) =>
      c.query("INSERT INTO lease_log (partition, token, node) VALUES ($1, $2, $3)", [p, token, nodeId]),
    );
    say({ ev: "write", p, token, ok: true });
  } catch (err) {
    const e = err as Error;
    say({
      ev: "write",
      p,
      token,
      ok: false,
      error: e.name,
      where: err instanceof LeaseLostError ? err.where : undefined,
    });
  }
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, a, b] = line.trim().split(" ");
  if (cmd === "start")
    void leases.start().then(
      () => {
        fencedWriter(leases);
        say({ ev: "started" });
      },
      (err: Error) => say({ ev: "error", message: err.message }),
    );
  else if (cmd === "write") void write(Number(a), Number(b));
});
say({ ev: "loaded" });
