/**
 * Sends Web Push messages from a thread of their own (push-sender-worker.js), so the main thread,
 * which takes a fall's publish to the staff sockets, neither encrypts them nor holds their requests.
 *
 * Measured in `npm run bench -- alert-latency` before this thread existed: RFC 8291's per-message
 * key agreement, key derivation and cipher are native objects, and the main thread's scavenges
 * spent 3.9 ms each finalising them (V8's `external_weak_global_handles` phase), against 0.34 ms
 * with push left out; bare aedes spends none. A message now costs the main thread one structured
 * clone out and one back.
 *
 * The thread is started by `start()` and ended by `stop()`. If it dies, every request it held is
 * answered as failed (the channel's retries and health take it from there) and the next request
 * starts a new one.
 */
import { getPriority } from "node:os";
import { Worker } from "node:worker_threads";
import type { Logger } from "../../log.js";

/** One message to one subscription, its payload already the JSON text to encrypt. */
export interface PushRequest {
  endpoint: string;
  /** The subscription's keys (base64url), RFC 8291 §3. */
  p256dh: string;
  auth: string;
  payload: string;
  /** The VAPID `Authorization` header (RFC 8292), signed by the channel. */
  headers: Record<string, string>;
  ttlSeconds: number;
  urgency: "very-low" | "low" | "normal" | "high";
  topic: string;
  timeoutMs: number;
}

export interface PushResult {
  ok: boolean;
  /** The push service's HTTP status, or null when no answer came. */
  status: number | null;
  error: string;
}

type FromThread =
  | { type: "ready" }
  | { type: "thread"; tid: number }
  | { type: "result"; id: number; ok: boolean; status: number | null; error: string };

interface Pending {
  resolve(r: PushResult): void;
  timer: NodeJS.Timeout;
}

/** How long past a request's own timeout the main thread waits for the thread's answer. */
const GRACE_MS = 2000;

export class PushSender {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  /** The nice value of the thread that built this sender, before any raise (see thread()). */
  private readonly nice = getPriority();
  private nextId = 1;
  private running = false;

  constructor(
    private readonly o: {
      log: Logger;
      /** PEM certificates to trust beside the system's (a private push service's CA). */
      ca?: string;
      /** The thread's script; push-sender-worker.js unless a test starts one that fails on purpose. */
      entry?: URL;
      /** The thread's Linux id (ata_thread_info), each time one starts. */
      onThread?: (tid: number) => void;
    },
  ) {}

  async start(): Promise<void> {
    this.running = true;
    await this.thread();
  }

  /** Never rejects: whatever goes wrong is a failed result. */
  async send(request: PushRequest): Promise<PushResult> {
    if (!this.running) return { ok: false, status: null, error: "push sender stopped" };
    let worker: Worker;
    try {
      worker = await this.thread();
    } catch (err) {
      // The thread could not start (out of memory, say): this message fails like any other, and
      // the next one tries a new thread.
      return { ok: false, status: null, error: `push sender thread: ${(err as Error).message}` };
    }
    const id = this.nextId++;
    return new Promise<PushResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, status: null, error: "no answer from the push sender thread" });
      }, request.timeoutMs + GRACE_MS);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      worker.postMessage({ type: "send", id, request });
    });
  }

  /** Ends the thread; requests still in it are answered as failed. */
  async stop(): Promise<void> {
    this.running = false;
    const worker = this.worker;
    this.worker = null;
    this.ready = null;
    if (worker) await worker.terminate();
    this.failAll("push sender stopped");
  }

  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  private thread(): Promise<Worker> {
    const current = this.worker;
    if (current && this.ready) return this.ready.then(() => current);
    const worker = new Worker(this.o.entry ?? new URL("./push-sender-worker.js", import.meta.url), {
      // A thread inherits the nice value of the thread that starts it, and this one may start after
      // the main thread raised its own (priority.fallPathNice): it goes back to the priority the
      // process had, since encrypting a push is not on a fall's way to the staff screen.
      workerData: { nice: this.nice, ...(this.o.ca ? { ca: this.o.ca } : {}) },
    });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once("error", reject);
      worker.once("exit", () => reject(new Error("the push sender thread ended before it was ready")));
      worker.on("message", (m: FromThread) => {
        if (m.type === "ready") resolve();
        else if (m.type === "thread") this.o.onThread?.(m.tid);
        else this.answer(m);
      });
    });
    // A rejected start is reported by the send that awaits it; nothing else may see it unhandled.
    this.ready.catch(() => {});
    worker.on("error", (err) => this.o.log.error({ err }, "push sender thread failed"));
    worker.on("exit", (code) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.ready = null;
      if (this.running)
        this.o.log.error({ code }, "push sender thread ended; a new one starts with the next message");
      this.failAll("the push sender thread ended");
    });
    return this.ready.then(() => worker);
  }

  private answer(m: Extract<FromThread, { type: "result" }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve({ ok: m.ok, status: m.status, error: m.error });
  }

  private failAll(error: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve({ ok: false, status: null, error });
    }
  }
}
