/**
 * The fallback at the end of an escalation ladder, as a channel: a signed JSON POST to an alarm
 * receiving centre, a nurse-call bridge or an on-call service. HMAC-SHA256 over "<timestamp>.<body>"
 * in `X-ATA-Signature: t=<unix seconds>,v1=<hex>` (the scheme Stripe and Slack use, so receivers can
 * reject replays by the timestamp). `X-ATA-Delivery` is the same for every try of one attempt, so a
 * receiver can drop a repeat (delivery is at least once: a try in flight at a crash is made again).
 *
 * Failed tries are retried with exponential backoff through durable timers, so a retry survives a
 * restart; every try is recorded in `webhook_deliveries`, and the attempt goes back to "pending"
 * (through the reporter) before each retry, so a retry in flight at a crash is made again at start.
 */
import { createHmac } from "node:crypto";
import type { Logger } from "../../log.js";
import type { DurableTimers } from "../../rules/timers.js";
import type { Db } from "../../store/db.js";
import type { AlertChannel, ChannelHealth, ChannelReporter, Delivery, Recipient } from "./channel.js";

export interface WebhookOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  maxAttempts: number;
  /** First retry delay; doubles per attempt up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

export interface WebhookContext {
  db: Db;
  timers: DurableTimers;
  log: Logger;
  options: WebhookOptions;
  now?: () => number;
}

interface Try {
  attemptId: number;
  alertId: string;
  try: number;
  body: string;
}

export function sign(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

const RECIPIENT: Recipient = { id: "webhook", name: "fallback webhook" };

export class WebhookChannel implements AlertChannel {
  readonly name = "webhook" as const;
  /** The webhook is called when a level is entered (and when the last level repeats), not per re-notification. */
  readonly renotifies = false;
  private readonly now: () => number;
  private reporter: ChannelReporter | null = null;
  private consecutiveFailures = 0;

  constructor(private readonly ctx: WebhookContext) {
    this.now = ctx.now ?? Date.now;
    ctx.timers.on<Try>("webhook", (t) => {
      this.reporter?.retrying(t.payload.attemptId, `try ${t.payload.try}`);
      this.post(t.payload);
    });
  }

  start(reporter: ChannelReporter): void {
    this.reporter = reporter;
  }

  stop(): void {
    this.reporter = null;
  }

  reach(): Recipient[] {
    return [RECIPIENT];
  }

  /**
   * Always healthy for the ladder: the webhook is the last resort and is retried by itself; a
   * receiver that keeps failing is visible in the audit, in /metrics and in `detail`.
   */
  health(): ChannelHealth {
    return this.consecutiveFailures
      ? { ok: true, detail: `${this.consecutiveFailures} failed tries in a row` }
      : { ok: true };
  }

  deliver(d: Delivery): void {
    const body = JSON.stringify({
      kind: "ata.alert",
      sentAt: new Date(this.now()).toISOString(),
      alert: d.alert,
    });
    this.post({ attemptId: d.attemptId, alertId: d.alert.id, try: 1, body });
  }

  private post(p: Try): void {
    const o = this.ctx.options;
    const timestamp = Math.floor(this.now() / 1000);
    const started = this.now();
    fetch(o.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-ata-signature": sign(o.secret, timestamp, p.body),
        "x-ata-delivery": `${p.alertId}:${p.attemptId}`,
        "x-ata-attempt": String(p.try),
      },
      body: p.body,
      signal: AbortSignal.timeout(o.timeoutMs),
    })
      .then(
        async (res) => {
          await res.arrayBuffer().catch(() => undefined);
          this.record(p, res.status, res.ok, res.ok ? null : `HTTP ${res.status}`, started);
        },
        (err: Error) =>
          this.record(
            p,
            null,
            false,
            err.name === "TimeoutError" ? `timeout after ${o.timeoutMs} ms` : err.message,
            started,
          ),
      )
      // An answer that arrives after shutdown closed the database must not become an unhandled
      // rejection (which ends the process): the attempt stays pending and is made again at start.
      .catch((err: Error) =>
        this.ctx.log.warn({ err: err.message, alertId: p.alertId }, "could not record a webhook try"),
      );
  }

  private record(p: Try, status: number | null, ok: boolean, error: string | null, started: number): void {
    const o = this.ctx.options;
    this.ctx.db
      .prepare(
        "INSERT INTO webhook_deliveries (alert_id, audit_id, attempt, at, status, ok, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(p.alertId, p.attemptId, p.try, started, status, ok ? 1 : 0, error);
    if (ok) {
      this.consecutiveFailures = 0;
      this.reporter?.delivered(p.attemptId, `attempt ${p.try}: HTTP ${status}`);
      return;
    }
    this.consecutiveFailures++;
    const retry = p.try < o.maxAttempts;
    this.ctx.log.warn({ alertId: p.alertId, attempt: p.try, error, retry }, "fallback webhook failed");
    this.reporter?.failed(
      p.attemptId,
      `attempt ${p.try}: ${error}${retry ? "; will retry" : "; giving up"}`,
      {
        retry,
      },
    );
    if (retry) {
      const delay = Math.min(o.backoffMs * 2 ** (p.try - 1), o.maxBackoffMs);
      // Under the alert's timer prefix: once a person accepts it, or it is closed, the alert
      // manager cancels the retries with its other timers, and nobody is called out for it.
      this.ctx.timers.set(`alert:${p.alertId}:webhook:${p.attemptId}`, "webhook", this.now() + delay, {
        ...p,
        try: p.try + 1,
      });
    }
  }
}
