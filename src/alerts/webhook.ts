/**
 * The fallback at the end of an escalation ladder: a signed JSON POST to an alarm receiving
 * centre, a nurse-call bridge or an on-call service. HMAC-SHA256 over "<timestamp>.<body>" in
 * `X-ATA-Signature: t=<unix seconds>,v1=<hex>` (the scheme Stripe and Slack use, so receivers can
 * reject replays by the timestamp). Failed attempts are retried with exponential backoff through
 * durable timers, so a retry survives a restart; every attempt is recorded.
 */
import { createHmac } from "node:crypto";
import type { Logger } from "../log.js";
import type { DurableTimers } from "../rules/timers.js";
import type { Db } from "../store/db.js";
import type { Fallback } from "./manager.js";
import type { AlertView } from "./model.js";

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
  options: WebhookOptions | undefined;
  /** Told after every attempt (the alert manager records it in the audit log). */
  onResult(alertId: string, ok: boolean, detail: string): void;
  now?: () => number;
}

interface Payload {
  alertId: string;
  auditId: number;
  attempt: number;
  body: string;
}

export function sign(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export class FallbackWebhook implements Fallback {
  private readonly now: () => number;

  constructor(private readonly ctx: WebhookContext) {
    this.now = ctx.now ?? Date.now;
    ctx.timers.on<Payload>("webhook", (t) => this.attempt(t.payload));
  }

  configured(): boolean {
    return Boolean(this.ctx.options);
  }

  send(alert: AlertView, auditId: number): void {
    if (!this.ctx.options) return;
    const body = JSON.stringify({ kind: "ata.alert", sentAt: new Date(this.now()).toISOString(), alert });
    this.attempt({ alertId: alert.id, auditId, attempt: 1, body });
  }

  private attempt(p: Payload): void {
    const o = this.ctx.options;
    if (!o) return;
    const timestamp = Math.floor(this.now() / 1000);
    const started = this.now();
    fetch(o.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-ata-signature": sign(o.secret, timestamp, p.body),
        "x-ata-delivery": `${p.alertId}:${p.auditId}`,
        "x-ata-attempt": String(p.attempt),
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
      // rejection (which ends the process): the attempt is lost, and its timer, if any, is not.
      .catch((err: Error) =>
        this.ctx.log.warn({ err: err.message, alertId: p.alertId }, "could not record a webhook attempt"),
      );
  }

  private record(
    p: Payload,
    status: number | null,
    ok: boolean,
    error: string | null,
    started: number,
  ): void {
    const o = this.ctx.options!;
    this.ctx.db
      .prepare(
        "INSERT INTO webhook_deliveries (alert_id, audit_id, attempt, at, status, ok, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(p.alertId, p.auditId, p.attempt, started, status, ok ? 1 : 0, error);
    if (ok) {
      this.ctx.onResult(p.alertId, true, `attempt ${p.attempt}: HTTP ${status}`);
      return;
    }
    const retry = p.attempt < o.maxAttempts;
    this.ctx.log.warn({ alertId: p.alertId, attempt: p.attempt, error, retry }, "fallback webhook failed");
    this.ctx.onResult(
      p.alertId,
      false,
      `attempt ${p.attempt}: ${error}${retry ? "; will retry" : "; giving up"}`,
    );
    if (retry) {
      const delay = Math.min(o.backoffMs * 2 ** (p.attempt - 1), o.maxBackoffMs);
      // Under the alert's timer prefix: once a person accepts it, or it is closed, the alert
      // manager cancels the retries with its other timers, and nobody is called out for it.
      this.ctx.timers.set(`alert:${p.alertId}:webhook:${p.auditId}`, "webhook", this.now() + delay, {
        ...p,
        attempt: p.attempt + 1,
      });
    }
  }
}
