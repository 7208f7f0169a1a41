/**
 * The security log: refused and throttled connects, session takeovers, staff sign-in failures,
 * token creation and revocation, and admin actions. Append-only in the database (a trigger refuses
 * every UPDATE, and any DELETE of a row younger than 400 days) and at warn in the process log, so a
 * security officer can answer "who tried what, from where, when" after the fact.
 *
 * Never a secret: a token appears only as its id, a device secret never, a payload never.
 *
 * A flood must not become a flood of rows: the same kind from the same address about the same
 * subject with the same detail is written once, and its repeats within FOLD_MS are folded into one row with a count
 * (written when the window closes). Past ROWS_PER_SEC rows per second, further events are folded
 * per kind into one row per window.
 */
import type { Statement } from "better-sqlite3";
import type { Logger } from "../log.js";
import type { Db } from "../store/db.js";

export const SECURITY_EVENT_KINDS = [
  /** A device CONNECT refused (bad credentials, disabled, client id mismatch). */
  "connect_refused",
  /** A device CONNECT refused unchecked: its address or id failed too often, or the KDF ceiling. */
  "connect_throttled",
  /** A connection closed by a limit: frame size before or after CONNECT, connection cap. */
  "connection_limited",
  /** A device publishing faster than its rate limit. */
  "device_rate_limited",
  /** A device published or subscribed outside its own topics. */
  "topic_denied",
  /** A device session replaced by a second connection with the same credentials. */
  "session_takeover",
  /** Takeovers of one device repeated past the threshold: a technical alert was raised. */
  "takeover_alert",
  /** A staff token or admin token refused (HTTP bearer or WebSocket hello). */
  "staff_auth_failed",
  /** Staff sign-in attempts refused unchecked: the address or token prefix failed too often. */
  "staff_auth_throttled",
  "token_created",
  "token_revoked",
  /** A session closed because its token was revoked. */
  "session_revoked",
  /** Device administration: added, enabled, disabled, secret rotated. */
  "admin_action",
  /** Demo credentials disabled because demo mode is off. */
  "demo_credentials_disabled",
  /** The gateway started with observe mode on (src/observe/): unregistered devices may be admitted. */
  "observe_mode_on",
  /** An unregistered device admitted in observe mode: an enrolment secret bound to its id. */
  "observe_admitted",
  /** A request to the RabbitMQ auth backend endpoints (cluster mode) without the shared secret. */
  "backend_auth_failed",
] as const;
export type SecurityEventKind = (typeof SECURITY_EVENT_KINDS)[number];

export interface SecurityEvent {
  kind: SecurityEventKind;
  actor?: string | null;
  address?: string | null;
  subject?: string | null;
  /** Reasons, counts, names; never a secret or a payload. */
  detail?: Record<string, unknown>;
}

export interface SecurityLogRow {
  id: number;
  at: string;
  lastAt: string;
  kind: SecurityEventKind;
  actor: string | null;
  address: string | null;
  subject: string | null;
  count: number;
  detail: Record<string, unknown>;
}

interface Folding {
  event: SecurityEvent;
  windowStart: number;
  /** Repeats since the row was written, with the first and last time. */
  count: number;
  first: number;
  last: number;
}

const FOLD_MS = 10_000;
const ROWS_PER_SEC = 50;
const MAX_FOLDING = 10_000;
const RETENTION_MS = 400 * 86_400_000;

export class SecurityLog {
  private readonly insert: Statement;
  private readonly folding = new Map<string, Folding>();
  /** Events past the row budget, folded per kind until the next flush. */
  private readonly overflow = new Map<SecurityEventKind, Folding>();
  private budget = ROWS_PER_SEC;
  private budgetAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.insert = db.prepare(
      "INSERT INTO security_log (at, last_at, kind, actor, address, subject, count, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
  }

  /** Flushes folded repeats every window; prunes rows past the retention once a day. */
  start(): void {
    this.prune();
    let sincePrune = 0;
    this.timer = setInterval(() => {
      this.flush(false);
      sincePrune += FOLD_MS;
      if (sincePrune >= 86_400_000) {
        sincePrune = 0;
        this.prune();
      }
    }, FOLD_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.flush(true);
  }

  record(event: SecurityEvent): void {
    const now = this.now();
    const key = [
      event.kind,
      event.address,
      event.subject,
      event.actor,
      JSON.stringify(event.detail ?? {}),
    ].join("\u0000");
    const f = this.folding.get(key);
    if (f && now - f.windowStart < FOLD_MS) {
      if (f.count === 0) f.first = now;
      f.count++;
      f.last = now;
      return;
    }
    if (f) this.write(f);
    if (!this.takeBudget(now) || (!f && this.folding.size >= MAX_FOLDING)) {
      this.fold(
        this.overflow,
        event.kind,
        { kind: event.kind, subject: "*", detail: { folded: "overflow" } },
        now,
      );
      return;
    }
    this.folding.set(key, { event, windowStart: now, count: 0, first: now, last: now });
    this.writeRow(event, now, now, 1);
  }

  /** Rows newest first, optionally from a time, of some kinds, before an id (paging). */
  list(q: {
    since?: number;
    until?: number;
    kinds?: readonly string[];
    beforeId?: number;
    limit: number;
  }): SecurityLogRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    const when = (sql: string, ...values: unknown[]) => {
      where.push(sql);
      args.push(...values);
    };
    if (q.since !== undefined) when("at >= ?", q.since);
    if (q.until !== undefined) when("at < ?", q.until);
    if (q.beforeId !== undefined) when("id < ?", q.beforeId);
    if (q.kinds?.length) when(`kind IN (${q.kinds.map(() => "?").join(",")})`, ...q.kinds);
    const rows = this.db
      .prepare(
        `SELECT * FROM security_log ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`,
      )
      .all(...args, q.limit) as {
      id: number;
      at: number;
      last_at: number;
      kind: SecurityEventKind;
      actor: string | null;
      address: string | null;
      subject: string | null;
      count: number;
      detail: string;
    }[];
    return rows.map((r) => ({
      id: r.id,
      at: new Date(r.at).toISOString(),
      lastAt: new Date(r.last_at).toISOString(),
      kind: r.kind,
      actor: r.actor,
      address: r.address,
      subject: r.subject,
      count: r.count,
      detail: JSON.parse(r.detail),
    }));
  }

  /** Writes folded repeats whose window has closed (all of them when final). */
  flush(final: boolean): void {
    const now = this.now();
    for (const [key, f] of this.folding) {
      if (!final && now - f.windowStart < FOLD_MS) continue;
      this.write(f);
      this.folding.delete(key);
    }
    for (const [kind, f] of this.overflow) {
      this.write(f);
      this.overflow.delete(kind);
    }
  }

  private fold(
    table: Map<SecurityEventKind, Folding>,
    kind: SecurityEventKind,
    event: SecurityEvent,
    now: number,
  ) {
    const f = table.get(kind);
    if (f) {
      f.count++;
      f.last = now;
    } else table.set(kind, { event, windowStart: now, count: 1, first: now, last: now });
  }

  private write(f: Folding): void {
    if (f.count === 0) return;
    this.writeRow({ ...f.event, detail: { ...f.event.detail, repeated: true } }, f.first, f.last, f.count);
    f.count = 0;
  }

  private writeRow(event: SecurityEvent, at: number, lastAt: number, count: number): void {
    try {
      this.insert.run(
        at,
        lastAt,
        event.kind,
        event.actor ?? null,
        event.address ?? null,
        event.subject ?? null,
        count,
        JSON.stringify(event.detail ?? {}),
      );
    } catch (err) {
      // A full or read-only disk must not turn a refused connect into a crash; the process log
      // below still has it.
      this.log.error({ err: (err as Error).message, kind: event.kind }, "security log write failed");
    }
    this.log.warn(
      {
        security: event.kind,
        actor: event.actor ?? undefined,
        address: event.address ?? undefined,
        subject: event.subject ?? undefined,
        ...(count > 1 ? { count } : {}),
        ...event.detail,
      },
      `security: ${event.kind.replaceAll("_", " ")}`,
    );
  }

  private takeBudget(now: number): boolean {
    if (now - this.budgetAt >= 1000) {
      this.budgetAt = now;
      this.budget = ROWS_PER_SEC;
    }
    if (this.budget <= 0) return false;
    this.budget--;
    return true;
  }

  private prune(): void {
    try {
      this.db.prepare("DELETE FROM security_log WHERE at < ?").run(this.now() - RETENTION_MS - 60_000);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "security log prune failed");
    }
  }
}
