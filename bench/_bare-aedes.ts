/**
 * Baseline for the benchmarks: aedes with no hooks, no pipeline, TCP_NODELAY on, on a free port.
 * Prints one ready line with its port.
 */
import { createServer } from "node:net";
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
