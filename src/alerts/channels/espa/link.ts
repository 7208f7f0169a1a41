/**
 * The ESPA 4.4.4 data link (§3, after ISO 1745) over any byte stream, supervised and reconnected.
 *
 * Roles. The gateway is the control station (address `ownAddress`, '1') and the paging system a
 * slave ('2'), the pairing §3.1 recommends for two stations ("the telephone system has the address
 * '1' and the paging system the address '2'"). Every exchange is one of:
 * - select, when a page is queued: `EOT <peer> ENQ`; the paging system answers ACK (ready) or NAK
 *   (not ready, §3.2); then each block is answered ACK (BCC good) or NAK (bad, retransmit, §3.5);
 *   the gateway ends with EOT (§3.3), which returns it to control station.
 * - poll, when idle for `pollIntervalMs` (supervision): the same `EOT <peer> ENQ`. A paging system
 *   with nothing to send answers EOT; one with status to send answers `<own> ENQ`, selecting the
 *   gateway (§3.2), and the gateway ACKs and receives its blocks until EOT. A slave that reads the
 *   enquiry as a selection answers ACK; the gateway then simply ends with EOT. Any of these answers
 *   proves the link; silence for `responseTimeoutMs` is a missed poll.
 * ESPA uses the same `<address> ENQ` for poll and select, so the answer, not the question, decides
 * which it was; accepting all three answers is what lets one gateway work with systems that differ
 * here (G. Scott's annotations to §3.1-3.2 record that they do). A paging system that acts as the
 * control station itself (§3: "the paging system will act as a Control Station when required")
 * polls the gateway with `<own> ENQ`; it is answered EOT, or by selecting it when a page waits.
 *
 * Retries. A NAK or no answer to a block retransmits it up to `blockRetries` times; a NAK or no
 * answer to a selection re-selects up to `selectRetries` times (the counts the Avaya/Nortel DECT
 * Messenger manual's eESPA_NAK_retry_cnt_n and eESPA_Timeout_n make configurable, as here).
 *
 * Supervision. The link is "up" once the paging system has answered; a missed poll makes it
 * "down" at once (health false, so the ladder skips paging), and after `reconnectAfterMisses`
 * misses, or at once when the stream closes, the stream is reopened with exponential backoff.
 *
 * A page whose stream is lost while it is on the wire (after the selection, before the block's
 * ACK) is sent again after the reconnect, up to `maxResends` times and only until its deadline:
 * ESPA has no sequence numbers, so the gateway cannot know whether the paging system took it, and a
 * page twice on a handset is harmless where a page lost is not.
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import {
  ACK as ACK_BYTE,
  ENQ,
  EOT,
  type EspaBlock,
  type LinkEvent,
  LinkReader,
  NAK as NAK_BYTE,
} from "./framing.js";
import type { EspaTransport } from "./transport.js";

export interface LinkOptions {
  ownAddress: string;
  peerAddress: string;
  /** How long to wait for the answer to an enquiry or a block. */
  responseTimeoutMs: number;
  /** Retransmissions of a block after a NAK or no answer. */
  blockRetries: number;
  /** Repeated selections after NAK (not ready) or no answer. */
  selectRetries: number;
  /** Pause before selecting again after a "not ready" answer. */
  notReadyDelayMs: number;
  /** Idle time after which the paging system is polled, proving the link. */
  pollIntervalMs: number;
  /** Missed polls after which the stream is reopened. */
  reconnectAfterMisses: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

export interface SendOptions {
  /** Epoch ms after which the page is failed if it has not been sent (link down, queue). */
  deadline: number;
  /** Sends after a lost stream (0: fail the page when the stream drops under it). */
  maxResends: number;
  /** Told before the page is sent again after a lost stream. */
  onResend?: (detail: string) => void;
  /** For logs only (never the text): the call address. */
  label: string;
}

export type SendResult = { ok: true; detail: string } | { ok: false; detail: string };

interface Job extends SendOptions {
  frame: Buffer;
  resends: number;
  done: boolean;
  timer: NodeJS.Timeout | null;
  finish(r: SendResult): void;
}

type Next = LinkEvent | "timeout" | "closed";

export interface LinkEvents {
  up: [];
  down: [reason: string];
  /** A data block from the paging system (status information, §4.2 header '2'), BCC good. */
  block: [block: EspaBlock];
  error: [err: Error];
}

export class EspaLink extends EventEmitter<LinkEvents> {
  private readonly queue: Job[] = [];
  private inFlight: Job | null = null;
  private stream: Duplex | null = null;
  private readonly reader = new LinkReader();
  private inbox: LinkEvent[] = [];
  private closed = true;
  private stopped = true;
  private isUp = false;
  private downReason = "not started";
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly transport: EspaTransport,
    private readonly o: LinkOptions,
  ) {
    super();
  }

  get up(): boolean {
    return this.isUp;
  }

  get reason(): string {
    return this.isUp ? "up" : this.downReason;
  }

  /** Pages waiting or on the wire. */
  get pending(): number {
    return this.queue.length;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.running = this.run().catch((err: Error) => {
      this.emit("error", err);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const job of this.queue.splice(0)) job.finish({ ok: false, detail: "paging channel stopped" });
    this.signal();
    this.stream?.destroy();
    await this.running;
    this.setDown("stopped");
  }

  /** Queue one data block (already framed). Never rejects; the result says what happened. */
  send(frame: Buffer, o: SendOptions): Promise<SendResult> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve({ ok: false, detail: "paging channel stopped" });
      const job: Job = {
        ...o,
        frame,
        resends: 0,
        done: false,
        timer: null,
        finish: (r) => {
          if (job.done) return;
          job.done = true;
          if (job.timer) clearTimeout(job.timer);
          const i = this.queue.indexOf(job);
          if (i >= 0) this.queue.splice(i, 1);
          resolve(r);
        },
      };
      // A page that cannot go out (link down, stream lost mid-page) fails at its deadline instead
      // of waiting for a link that may not come back; one on the wire finishes its own retries.
      job.timer = setTimeout(
        () => {
          if (this.inFlight !== job)
            job.finish({ ok: false, detail: `not sent within its deadline: ${this.reason}` });
        },
        Math.max(0, o.deadline - Date.now()),
      );
      this.queue.push(job);
      this.signal();
    });
  }

  // --- connection -------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let backoff = this.o.reconnectMinMs;
    while (!this.stopped) {
      let stream: Duplex;
      try {
        stream = await this.transport.open();
      } catch (err) {
        this.setDown(`cannot open ${this.transport.description}: ${(err as Error).message}`);
        await this.backoff(backoff);
        backoff = Math.min(backoff * 2, this.o.reconnectMaxMs);
        continue;
      }
      if (this.stopped) {
        stream.destroy();
        break;
      }
      this.attach(stream);
      const { reason, wasUp } = await this.session();
      this.stream = null;
      stream.destroy();
      this.closed = true;
      this.setDown(reason);
      if (wasUp) backoff = this.o.reconnectMinMs;
      if (!this.stopped) {
        await this.backoff(backoff);
        backoff = Math.min(backoff * 2, this.o.reconnectMaxMs);
      }
    }
  }

  private attach(stream: Duplex): void {
    this.stream = stream;
    this.closed = false;
    this.inbox = [];
    this.reader.reset();
    stream.on("data", (chunk: Buffer) => {
      if (this.stream !== stream) return;
      this.inbox.push(...this.reader.push(chunk));
      this.signal();
    });
    const lost = () => {
      if (this.stream !== stream) return;
      this.closed = true;
      this.signal();
    };
    stream.on("close", lost);
    stream.on("end", lost);
    // The error is the close's reason; the close handler acts on it.
    stream.on("error", lost);
  }

  private async session(): Promise<{ reason: string; wasUp: boolean }> {
    let wasUp = false;
    let misses = 0;
    let nextPoll = 0;
    for (;;) {
      if (this.stopped) {
        this.write([EOT]);
        return { reason: "stopped", wasUp };
      }
      if (this.closed) return { reason: "connection lost", wasUp };
      const ev = this.inbox.shift();
      if (ev) {
        await this.unsolicited(ev);
        continue;
      }
      const job = this.queue[0];
      let answered: boolean | null = null;
      if (job) {
        answered = await this.transmit(job, false);
      } else if (Date.now() >= nextPoll) {
        answered = await this.poll();
      } else {
        await this.pause(nextPoll - Date.now());
        continue;
      }
      nextPoll = Date.now() + this.o.pollIntervalMs;
      if (this.closed) continue;
      if (answered) {
        misses = 0;
        wasUp = true;
        this.setUp();
      } else if (answered === false) {
        misses++;
        this.setDown(`paging system did not answer (${misses}x ${this.o.responseTimeoutMs} ms)`);
        if (misses >= this.o.reconnectAfterMisses) return { reason: this.downReason, wasUp };
      }
    }
  }

  // --- exchanges --------------------------------------------------------------------------------

  /** Supervision poll. True if the paging system answered. */
  private async poll(): Promise<boolean> {
    const ev = await this.ask([EOT, ...this.addr(this.o.peerAddress), ENQ]);
    if (ev === "timeout" || ev === "closed") return false;
    await this.answerAsControl(ev);
    return true;
  }

  /**
   * One page: select, send the block (with retransmissions), end with EOT. Returns whether the
   * paging system answered at all (for supervision); the job's own result goes to its promise.
   */
  private async transmit(job: Job, polled: boolean): Promise<boolean> {
    if (job.resends > 0) {
      if (job.resends > job.maxResends) {
        job.finish({ ok: false, detail: `link lost mid-page ${job.resends} times` });
        return true;
      }
      job.onResend?.(`link was lost mid-page; sending again (${job.resends} of ${job.maxResends})`);
    }
    this.inFlight = job;
    try {
      let answered = false;
      let selected = false;
      let lastNo = "no answer";
      // A poll from a control-station peer already hands us the line: select without EOT.
      const select = polled
        ? [...this.addr(this.o.peerAddress), ENQ]
        : [EOT, ...this.addr(this.o.peerAddress), ENQ];
      for (let i = 0; i <= this.o.selectRetries && !selected; i++) {
        const ev = await this.ask(i === 0 ? select : [EOT, ...this.addr(this.o.peerAddress), ENQ]);
        if (ev === "closed") return this.lostMidPage(job, answered);
        if (ev === "timeout") {
          lastNo = `no answer to selection within ${this.o.responseTimeoutMs} ms`;
          continue;
        }
        answered = true;
        if (ev.kind === "ack") selected = true;
        else if (ev.kind === "enq" && ev.address === this.o.ownAddress) {
          // The paging system has status to deliver first (it read our enquiry as a poll).
          await this.answerAsControl(ev);
          i--;
        } else {
          lastNo = ev.kind === "nak" ? "paging system not ready (NAK)" : `paging system answered ${ev.kind}`;
          await this.pause(this.o.notReadyDelayMs);
        }
      }
      if (!selected) {
        this.write([EOT]);
        job.finish({
          ok: false,
          detail: `selection failed after ${this.o.selectRetries + 1} tries: ${lastNo}`,
        });
        return answered;
      }
      let last = "";
      for (let i = 0; i <= this.o.blockRetries; i++) {
        const ev = await this.ask(job.frame);
        if (ev === "closed") return this.lostMidPage(job, true);
        if (ev !== "timeout" && ev.kind === "ack") {
          this.write([EOT]);
          job.finish({
            ok: true,
            detail: `acknowledged by paging system${i > 0 ? ` after ${i} retransmission${i > 1 ? "s" : ""}` : ""}`,
          });
          return true;
        }
        last =
          ev === "timeout"
            ? `no answer within ${this.o.responseTimeoutMs} ms`
            : ev.kind === "nak"
              ? `NAK${ev.prefix ? ` (code ${ev.prefix})` : ""}`
              : `unexpected ${ev.kind}`;
      }
      this.write([EOT]);
      job.finish({
        ok: false,
        detail: `paging system refused the page ${this.o.blockRetries + 1} times: ${last}`,
      });
      return true;
    } finally {
      this.inFlight = null;
    }
  }

  private lostMidPage(job: Job, answered: boolean): boolean {
    job.resends++;
    if (job.maxResends === 0) job.finish({ ok: false, detail: "link lost mid-page" });
    else if (Date.now() >= job.deadline)
      job.finish({ ok: false, detail: "link lost mid-page; deadline passed" });
    return answered;
  }

  /** An answer to our poll, or the peer speaking first: act as control station would. */
  private async answerAsControl(ev: LinkEvent): Promise<void> {
    switch (ev.kind) {
      case "enq":
        if (ev.address !== this.o.ownAddress) return;
        // The paging system selects us: ready, take its blocks until EOT (§3.2, §3.5).
        this.write([ACK_BYTE]);
        await this.receive();
        return;
      case "ack":
        // It took the enquiry as a selection; we have nothing: end (§3.3).
        this.write([EOT]);
        return;
      case "block":
        this.takeBlock(ev);
        return;
      default:
        return;
    }
  }

  /** Something arrived while we were idle. */
  private async unsolicited(ev: LinkEvent): Promise<void> {
    if (ev.kind === "enq" && ev.address === this.o.ownAddress) {
      // A peer acting as control station polls us (it cannot speak otherwise): hand over a
      // waiting page by selecting it, or say we have nothing.
      const job = this.queue[0];
      if (job) await this.transmit(job, true);
      else this.write([EOT]);
      return;
    }
    if (ev.kind === "block") this.takeBlock(ev);
  }

  /** Slave side of a transfer: ACK good blocks, NAK bad ones, until EOT or the peer goes quiet. */
  private async receive(): Promise<void> {
    for (;;) {
      const ev = await this.next(this.o.responseTimeoutMs * 3);
      if (ev === "timeout" || ev === "closed" || ev.kind === "eot") return;
      if (ev.kind === "block") this.takeBlock(ev);
      else if (ev.kind === "enq") {
        this.inbox.unshift(ev);
        return;
      }
    }
  }

  private takeBlock(ev: Extract<LinkEvent, { kind: "block" }>): void {
    this.write([ev.bccOk ? ACK_BYTE : NAK_BYTE]);
    if (ev.bccOk) this.emit("block", ev.block);
  }

  // --- plumbing ---------------------------------------------------------------------------------

  /** Send a question and wait for its answer; answers that arrived late for an earlier one go. */
  private async ask(bytes: number[] | Buffer): Promise<Next> {
    this.inbox = this.inbox.filter(
      (e) => e.kind === "block" || (e.kind === "enq" && e.address === this.o.ownAddress),
    );
    this.write(bytes);
    return this.next(this.o.responseTimeoutMs);
  }

  private async next(timeoutMs: number): Promise<Next> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ev = this.inbox.shift();
      if (ev) return ev;
      if (this.closed || this.stopped) return "closed";
      const left = deadline - Date.now();
      if (left <= 0) return "timeout";
      await this.pause(left);
    }
  }

  private write(bytes: number[] | Buffer): void {
    if (this.closed || !this.stream) return;
    this.stream.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  private addr(a: string): number[] {
    return [...Buffer.from(a, "latin1")];
  }

  /** Sleep until `ms` pass or something happens (data, close, a new page, stop). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      this.wake?.();
      this.wake = done;
    });
  }

  /** Wait out a reconnect backoff; only stop cuts it short (new pages must not hammer a dead peer). */
  private async backoff(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopped && Date.now() < until) await this.pause(until - Date.now());
  }

  private signal(): void {
    this.wake?.();
  }

  private setUp(): void {
    if (this.isUp) return;
    this.isUp = true;
    this.emit("up");
  }

  private setDown(reason: string): void {
    this.downReason = reason;
    if (!this.isUp) return;
    this.isUp = false;
    this.emit("down", reason);
  }
}
