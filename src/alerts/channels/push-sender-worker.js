// The push sender's thread (push-sender.ts): encrypts a Web Push message (RFC 8291) and sends it to
// the push service (RFC 8030), one message per request from the gateway's main thread. Plain
// JavaScript, so it starts without the TypeScript loader when the gateway runs from source.
//
// Why a thread: RFC 8291 wants fresh keys for every message (an ECDH key pair, HKDF, an AES-GCM
// cipher), and each is a native object that the main thread's garbage collector would have to
// finalise in its scavenges, on the same thread that takes a fall's publish to staff. Here they
// die in this thread's own heap.
import { readlinkSync } from "node:fs";
import { Agent } from "node:https";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import webpush from "web-push";

/** @type {{ ca?: string, nice?: number }} */
const data = workerData ?? {};
// Back to the process's own priority when started by a raised thread (push-sender.ts); lowering a
// thread's priority is always allowed.
if (typeof data.nice === "number" && getPriority() !== data.nice) {
  try {
    setPriority(data.nice);
  } catch {}
}
// Connections to a push service are kept open between messages (one TLS handshake per service).
const agent = new Agent({ keepAlive: true, ...(data.ca ? { ca: data.ca } : {}) });

if (!parentPort) throw new Error("push-sender-worker.js runs as a worker thread");
const port = parentPort;

port.on("message", (m) => {
  if (m.type === "close") {
    agent.destroy();
    port.close();
    return;
  }
  if (m.type !== "send") return;
  const r = m.request;
  webpush
    .sendNotification({ endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth } }, r.payload, {
      headers: r.headers,
      contentEncoding: "aes128gcm",
      TTL: r.ttlSeconds,
      urgency: r.urgency,
      topic: r.topic,
      timeout: r.timeoutMs,
      agent,
    })
    .then(
      (res) => port.postMessage({ type: "result", id: m.id, ok: true, status: res.statusCode, error: "" }),
      (err) => {
        // web-push's WebPushError carries the service's status; anything else is the request's own.
        const status = typeof err?.statusCode === "number" ? err.statusCode : null;
        const error = status !== null ? `answered ${status}` : String(err?.message || "request failed");
        port.postMessage({ type: "result", id: m.id, ok: false, status, error });
      },
    );
});

// This thread's Linux id, for per-thread CPU accounting (Linux only): the encryption is its work.
try {
  const tid = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"))?.[1];
  if (tid) port.postMessage({ type: "thread", tid: Number(tid) });
} catch {}
port.postMessage({ type: "ready" });
