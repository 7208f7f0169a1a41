/**
 * A partition's owner (owner-node.ts) as a child process, so that a test can kill -9 it while it
 * serves a command:
 *
 *   node --import tsx test/cluster/pg/owner-command-node.ts <postgres url> <node id> <leaseMs>
 *
 * It prints one JSON line per event on stdout: `loaded`, then (after `start` on stdin) `started`,
 * `serving` with its token, `executing` for each command its handler runs, and `held` once the
 * flush round carrying that command's effects and answer has committed: the owner then waits for
 * ever, so a test kills it right after that commit.
 */
import { createInterface } from "node:readline";
import { ownerNode } from "./owner-node.js";

const [url, nodeId, leaseMs] = process.argv.slice(2);
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() !== "start") return;
  void ownerNode(url!, nodeId!, {
    leaseMs: Number(leaseMs),
    executing: (command, token) => say({ ev: "executing", id: command.id, token }),
    afterFlush: (commands) => {
      say({ ev: "held", ids: commands.map((c) => c.id) });
      return new Promise(() => undefined);
    },
  }).then(
    (node) => {
      say({ ev: "started" });
      void node.serving.then(({ token }) => say({ ev: "serving", token }));
    },
    (err: Error) => say({ ev: "error", message: err.message }),
  );
});
say({ ev: "loaded" });
