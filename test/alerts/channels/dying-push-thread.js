// A push sender thread for test/alerts/channels/push-sender.test.ts: it answers every message as
// accepted (299, a status no real service sends), ends itself mid-request on the payload "die", and
// never answers the payload "silent".
import { parentPort } from "node:worker_threads";

parentPort.on("message", (m) => {
  if (m.type !== "send") return;
  if (m.request.payload === '"die"') process.exit(1);
  if (m.request.payload === '"silent"') return;
  parentPort.postMessage({ type: "result", id: m.id, ok: true, status: 299, error: "" });
});
parentPort.postMessage({ type: "ready" });
