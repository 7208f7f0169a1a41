/**
 * A ChannelReporter that records what a channel reports, for channel tests until the alert manager
 * is the reporter; `next` waits for a report instead of sleeping.
 */
import type { ChannelReporter } from "../../src/alerts/channels/channel.js";

export type Report =
  | { kind: "sent" | "delivered" | "retrying"; attemptId: number; detail: string; toPerson?: boolean }
  | { kind: "failed"; attemptId: number; detail: string; gone: boolean }
  | { kind: "healthChanged"; attemptId?: undefined };

export class RecordingReporter implements ChannelReporter {
  readonly reports: Report[] = [];
  private readonly waiters = new Set<() => void>();

  sent(attemptId: number, detail: string): void {
    this.push({ kind: "sent", attemptId, detail });
  }
  delivered(attemptId: number, detail: string, opts?: { toPerson?: boolean }): void {
    this.push({ kind: "delivered", attemptId, detail, toPerson: opts?.toPerson ?? false });
  }
  failed(attemptId: number, detail: string, opts?: { gone?: boolean }): void {
    this.push({ kind: "failed", attemptId, detail, gone: opts?.gone ?? false });
  }
  retrying(attemptId: number, detail: string): void {
    this.push({ kind: "retrying", attemptId, detail });
  }
  healthChanged(): void {
    this.push({ kind: "healthChanged" });
  }

  /** Reports about one attempt. */
  about(attemptId: number): Report[] {
    return this.reports.filter((r) => "attemptId" in r && r.attemptId === attemptId);
  }

  /** Waits for the first report about an attempt (or of a kind) that matches. */
  next(pred: (r: Report) => boolean, timeoutMs = 5000): Promise<Report> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.reports.find(pred);
        if (hit) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching report within ${timeoutMs} ms; got ${JSON.stringify(this.reports)}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private push(r: Report): void {
    this.reports.push(r);
    for (const w of [...this.waiters]) w();
  }
}
