/**
 * The staff WebSocket channel (ws). A connection authenticates with `hello`, receives a snapshot
 * (or a replay from where it left off), then every alert change in its scope, in audit order.
 * Dead clients are found by ping/pong; a client that cannot keep up is cut off rather than
 * allowed to stall the gateway.
 *
 * The alerts come from a `StaffAlerts`, one of two kinds:
 * - `LocalStaffAlerts`, what the `AlertManager` of a single process is: its change and renotify
 *   events, `head()` and `changesSince()` by `seq`, its open alerts, synchronous answers. Replay and
 *   registration happen in one synchronous turn, and messages wait for the fsync of what they report
 *   (`Durability`).
 * - `FeedStaffAlerts`, cluster mode (src/cluster/staff-alerts.ts): a person's stream is followed
 *   from the cluster's change feed, whose reads are asynchronous; the source registers the stream
 *   before its first read and hands over, in order and once each, the snapshot or replay and then
 *   the live changes, each with the `cursor` a client resumes from on any node. Everything it hands
 *   over is committed in PostgreSQL before this node reads it, and a command's answer comes from the
 *   partition's owner after its commit: such messages wait for no fsync here (`sync: false`, and a
 *   cluster node's server has no `Durability`). `recheckUndelivered` is absent: who is connected is
 *   known to this node's sockets only (docs/cluster.md, "Not built yet").
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { StaffDirectory } from "../alerts/channels/console.js";
import type { AlertChange, ChangeMeta } from "../alerts/manager.js";
import type { AlertView, Outcome } from "../alerts/model.js";
import { outcomeCatalogue } from "../alerts/outcomes.js";
import { ApiError, ERRORS, type ErrorCode } from "../errors.js";
import { ClientAddress } from "../http/client-address.js";
import type { Logger } from "../log.js";
import type { SecurityLog } from "../security/log.js";
import type { StaffAuth } from "../security/staff-auth.js";
import type { Durability } from "../store/durability.js";
import { isStorageError } from "../store/health.js";
import {
  type ClientCommand,
  ClientMessage,
  MAX_CLIENT_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  placesInScope,
  runStaffCommand,
  type ServerMessage,
  type SiteCatalogueEntry,
  type SnapshotReason,
  type StaffIdentity,
} from "./protocol.js";
import type { TokenStore } from "./tokens.js";

/** A single process's alerts, as its `AlertManager` answers for them (synchronously, by `seq`). */
export interface LocalStaffAlerts {
  on(event: "change", listener: (change: AlertChange, meta?: ChangeMeta) => void): unknown;
  on(event: "renotify", listener: (alert: AlertView, meta?: ChangeMeta) => void): unknown;
  off(event: "change", listener: (change: AlertChange, meta?: ChangeMeta) => void): unknown;
  off(event: "renotify", listener: (alert: AlertView, meta?: ChangeMeta) => void): unknown;
  /** The newest `seq`: where a snapshot stands. */
  head(): number;
  /** Changes after `seq` in these sites, in order; null if more than `limit`. */
  changesSince(seq: number, siteIds: readonly string[], limit: number): AlertChange[] | null;
  open(filter: { siteIds?: readonly string[] }): AlertView[];
  visibleTo(alert: AlertView, staff: StaffIdentity): boolean;
  accept(id: string, staff: StaffIdentity): AlertView;
  reject(id: string, staff: StaffIdentity, reason?: string): AlertView;
  attend(id: string, staff: StaffIdentity): AlertView;
  resolve(id: string, staff: StaffIdentity, outcome: Outcome, note?: string): AlertView;
  comment(id: string, staff: StaffIdentity, text: string): AlertView;
  received(id: string, staff: StaffIdentity): AlertView;
  /** A person came or went: alerts nobody connected can receive move on. */
  recheckUndelivered(): void;
}

/** Where a connection asks its stream to start: a fresh snapshot, or a client's resume point. */
export type StaffStart = null | { seq: number } | { cursor: string };

/** What a `FeedStaffAlerts` hands to one connection, in order. */
export interface StaffStream {
  /** The person's open alerts as of `cursor` (first, or instead of a resume that cannot be served). */
  snapshot(alerts: AlertView[], reason: SnapshotReason, cursor: string): void;
  /** A change in scope, replayed or live, in feed order; `cursor` is the stream's position after it. */
  change(change: AlertChange, cursor: string): void;
  /** A resume's replay is complete; live changes follow. */
  resumed(replayed: number, cursor: string): void;
  renotify(alert: AlertView): void;
  /** The stream cannot be served now (its read failed): nothing more comes. */
  failed(err: Error): void;
}

/** Cluster mode: each person's alerts followed from the change feed (src/cluster/staff-alerts.ts). */
export interface FeedStaffAlerts {
  /**
   * Starts a person's stream. Throws an ApiError (`invalid_body`) for a malformed cursor before
   * anything else; otherwise nothing reaches `stream` before this returns. Replays longer than
   * `maxReplay` become a snapshot.
   */
  follow(staff: StaffIdentity, start: StaffStart, stream: StaffStream, maxReplay: number): { close(): void };
  /** Carried out by the owner of the alert's partition; ApiErrors are the owner's answers. */
  command(staff: StaffIdentity, command: ClientCommand): Promise<AlertView>;
}

/** The alerts the staff server serves: a single process's manager, or a cluster node's feed. */
export type StaffAlerts = LocalStaffAlerts | FeedStaffAlerts;

const fromFeed = (alerts: StaffAlerts): alerts is FeedStaffAlerts => "follow" in alerts;

export interface StaffServerOptions {
  heartbeatSec: number;
  helloTimeoutMs: number;
  /** A client with more than this many bytes queued is disconnected. */
  maxBufferedBytes: number;
  /** Replays longer than this get a fresh snapshot instead. */
  maxReplay: number;
  /** Bad messages per minute before the connection is closed as abusive. */
  maxErrorsPerMinute: number;
  /**
   * How often open sessions' tokens are checked for revocation. The `ata` CLI revokes in the
   * database directly, so the staff channel looks rather than waits to be told.
   */
  revocationCheckMs: number;
}

export const DEFAULT_STAFF_OPTIONS: StaffServerOptions = {
  heartbeatSec: 15,
  helloTimeoutMs: 10_000,
  maxBufferedBytes: 1 << 20,
  maxReplay: 5000,
  maxErrorsPerMinute: 30,
  revocationCheckMs: 2000,
};

/** Close code for a session whose token was revoked (the console signs out, as for a bad token). */
export const CLOSE_REVOKED = 4003;

/**
 * How long a closed socket's resume floor is kept for its token: past an hour a client resuming is
 * likely too far behind for a replay anyway (maxReplay) and gets a snapshot.
 */
const RESUME_FLOOR_TTL_MS = 60 * 60 * 1000;

interface Session {
  ws: WebSocket;
  /** This socket's ordering lane in the Durability queue. */
  lane: string;
  /** `seq` of alert changes queued for this socket and not sent yet (see send()). */
  unsent: Set<number>;
  address: string;
  staff: StaffIdentity | null;
  tokenId: string | null;
  alive: boolean;
  errors: number[];
  helloTimer: NodeJS.Timeout | null;
  /** Cluster mode: the person's stream from the feed. */
  stream: { close(): void } | null;
}

export class StaffServer implements StaffDirectory {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private heartbeat: NodeJS.Timeout | null = null;
  private revocations: NodeJS.Timeout | null = null;
  private lastTouch = 0;
  private recheck: NodeJS.Immediate | null = null;
  private stopping = false;
  private nextSession = 0;
  /**
   * Per staff token, where its next resume must start at the latest: set when a socket closed with
   * alert changes still queued behind later ones it had already been sent (see send()).
   */
  private readonly resumeFloors = new Map<string, { floor: number; at: number }>();
  readonly stats = { connections: 0, slowDisconnects: 0 };

  constructor(
    private readonly alerts: StaffAlerts,
    private readonly tokens: TokenStore,
    private readonly log: Logger,
    private readonly options: StaffServerOptions = DEFAULT_STAFF_OPTIONS,
    /** The configured sites and units, for the names in `welcome`. */
    private readonly sites: readonly SiteCatalogueEntry[] = [],
    /** Messages wait until the commits they report are on disk (the connection commits without fsync). */
    private readonly durability: Durability | null = null,
    /** Sign-in (throttled, logged) and the security log; without them tokens are checked plainly. */
    private readonly security: { auth: StaffAuth; log: SecurityLog } | null = null,
  ) {
    // Frames up to 1 MiB are read and answered with an error; larger ones are abuse and close.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
    this.wss.on("connection", (ws, req) => this.onConnection(ws, this.clientAddress.of(req)));
  }

  start(): void {
    if (!fromFeed(this.alerts)) {
      this.alerts.on("change", this.onChange);
      this.alerts.on("renotify", this.onRenotify);
    }
    this.heartbeat = setInterval(() => this.sweep(), this.options.heartbeatSec * 1000);
    this.heartbeat.unref();
    this.revocations = setInterval(() => this.checkRevocations(), this.options.revocationCheckMs);
    this.revocations.unref();
  }

  /** Close every session signed in with this token (revoked from the dashboard). */
  closeToken(tokenId: string): number {
    let n = 0;
    for (const s of this.sessions)
      if (s.tokenId === tokenId) {
        s.ws.close(CLOSE_REVOKED, "token revoked");
        n++;
      }
    return n;
  }

  private checkRevocations(): void {
    const ids = new Set<string>();
    for (const s of this.sessions) if (s.tokenId) ids.add(s.tokenId);
    if (!ids.size) return;
    try {
      for (const id of this.tokens.revokedAmong([...ids])) {
        const n = this.closeToken(id);
        this.security?.log.record({ kind: "session_revoked", subject: id, detail: { sessions: n } });
        this.log.info({ tokenId: id, sessions: n }, "closed sessions of a revoked token");
      }
      // A connected console is using its token: keep "last used" honest for the dashboard.
      const now = Date.now();
      if (now - this.lastTouch > 60_000) {
        this.lastTouch = now;
        this.tokens.touch([...ids], now);
      }
    } catch (err) {
      this.log.error({ err }, "revocation check failed");
    }
  }

  stop(): void {
    // Staff leaving because the gateway stops is not staff leaving: no recheck may escalate open
    // alerts (and call the fallback) on the way down.
    this.stopping = true;
    if (this.recheck) clearImmediate(this.recheck);
    this.recheck = null;
    if (!fromFeed(this.alerts)) {
      this.alerts.off("change", this.onChange);
      this.alerts.off("renotify", this.onRenotify);
    }
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.revocations) clearInterval(this.revocations);
    this.revocations = null;
    for (const s of this.sessions) s.ws.close(1001, "gateway shutting down");
    this.sessions.clear();
    this.wss.close();
  }

  handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit("connection", ws, req));
  };

  connected(): StaffIdentity[] {
    const seen = new Map<string, StaffIdentity>();
    for (const s of this.sessions)
      if (s.staff && s.ws.readyState === s.ws.OPEN) seen.set(s.staff.id, s.staff);
    return [...seen.values()];
  }

  get size(): number {
    return this.sessions.size;
  }

  private onConnection(ws: WebSocket, address: string): void {
    const session: Session = {
      ws,
      lane: `staff:${this.nextSession++}`,
      unsent: new Set(),
      address,
      staff: null,
      tokenId: null,
      alive: true,
      errors: [],
      helloTimer: null,
      stream: null,
    };
    this.sessions.add(session);
    this.stats.connections++;
    session.helloTimer = setTimeout(() => ws.close(4001, "hello expected"), this.options.helloTimeoutMs);
    ws.on("pong", () => {
      session.alive = true;
    });
    ws.on("message", (data, isBinary) => this.onMessage(session, data as Buffer, isBinary));
    ws.on("close", () => {
      if (session.helloTimer) clearTimeout(session.helloTimer);
      this.sessions.delete(session);
      session.stream?.close();
      session.stream = null;
      this.keepResumeFloor(session);
      if (session.staff) this.sessionsChanged();
    });
    ws.on("error", (err) => this.log.debug({ err: err.message }, "staff socket error"));
  }

  private onMessage(s: Session, data: Buffer, isBinary: boolean): void {
    s.alive = true;
    if (isBinary) return this.fail(s, null, "bad_request", "binary frames are not part of the protocol");
    if (data.length > MAX_CLIENT_MESSAGE_BYTES)
      return this.fail(
        s,
        null,
        "body_too_large",
        `messages are limited to ${MAX_CLIENT_MESSAGE_BYTES} bytes`,
      );
    let json: unknown;
    try {
      json = JSON.parse(data.toString("utf8"));
    } catch {
      return this.fail(s, null, "bad_request", "the message is not valid JSON");
    }
    const parsed = ClientMessage.safeParse(json);
    const id =
      typeof (json as { id?: unknown })?.id === "string" ? ((json as { id: string }).id as string) : null;
    if (!parsed.success)
      return this.fail(
        s,
        id,
        "invalid_body",
        undefined,
        parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      );
    const msg = parsed.data;
    if (msg.type === "hello") return this.hello(s, msg);
    if (!s.staff) return this.fail(s, msg.id, "unauthenticated", "send hello with a token first");
    if (msg.type === "ping")
      return this.send(s, { type: "pong", id: msg.id, serverTime: new Date().toISOString() });
    const staff = s.staff;
    if (fromFeed(this.alerts)) {
      // Answered by the partition's owner, after its commit: the reply waits for no fsync here.
      this.alerts.command(staff, msg).then(
        (alert) => this.send(s, { type: "reply", id: msg.id, ok: true, result: { alert } }, false),
        (err: unknown) => this.commandFailed(s, msg, err),
      );
      return;
    }
    try {
      const alert = runStaffCommand(this.alerts, staff, msg);
      this.send(s, { type: "reply", id: msg.id, ok: true, result: { alert } });
    } catch (err) {
      this.commandFailed(s, msg, err);
    }
  }

  private commandFailed(s: Session, msg: ClientCommand, err: unknown): void {
    if (err instanceof ApiError) return this.fail(s, msg.id, err.code, err.message, err.details, false);
    if (isStorageError(err))
      return this.fail(
        s,
        msg.id,
        "unavailable",
        "storage does not take writes right now (full, read-only or locked); try again",
        undefined,
        false,
      );
    this.log.error({ err, command: msg.type }, "staff command failed");
    this.fail(s, msg.id, "internal", undefined, undefined, false);
  }

  private hello(s: Session, msg: Extract<ClientMessage, { type: "hello" }>): void {
    // One identity per connection: a second hello (another person's token, or a replay) would
    // change whose scope the open session has; it is refused and the session stays as it was.
    if (s.staff) {
      this.log.warn({ staffId: s.staff.id }, "second hello on a signed-in staff connection refused");
      this.fail(s, msg.id, "already_signed_in");
      return;
    }
    let verified: { identity: StaffIdentity; tokenId: string | null } | null;
    try {
      verified = this.security
        ? this.security.auth.signIn(msg.token, s.address, "hello")
        : this.tokens.verifyToken(msg.token);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.fail(s, msg.id, err.code, err.message, undefined, false);
      this.closeAfterSent(s, 4003, err.code);
      return;
    }
    // The operator's admin token administers the gateway; it is nobody's console session.
    if (verified && verified.tokenId === null) verified = null;
    const staff = verified?.identity;
    if (!verified || !staff) {
      this.fail(s, msg.id, "unauthenticated", "unknown or revoked token", undefined, false);
      this.closeAfterSent(s, 4003, "unauthenticated");
      return;
    }
    const alerts = this.alerts;
    if (fromFeed(alerts)) {
      // The stream is registered before its first read and delivers nothing before follow()
      // returns, so the reply and welcome below go first (FeedStaffAlerts).
      const start =
        msg.resumeCursor !== undefined
          ? { cursor: msg.resumeCursor }
          : msg.resumeFrom !== undefined
            ? { seq: msg.resumeFrom }
            : null;
      try {
        s.stream = alerts.follow(staff, start, this.streamTo(s), this.options.maxReplay);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        return this.fail(s, msg.id, err.code, err.message, err.details);
      }
    }
    if (s.helloTimer) clearTimeout(s.helloTimer);
    s.helloTimer = null;
    s.staff = staff;
    s.tokenId = verified.tokenId;
    this.send(s, { type: "reply", id: msg.id, ok: true });
    this.send(s, {
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      staff,
      heartbeatSec: this.options.heartbeatSec,
      places: placesInScope(this.sites, staff),
      outcomes: outcomeCatalogue(),
    });
    if (fromFeed(alerts)) {
      this.sessionsChanged();
      return;
    }
    // Replay and registration for live changes happen in this same synchronous turn, so no change
    // can fall between them.
    if (msg.resumeFrom === undefined && msg.resumeCursor !== undefined)
      // A cluster's cursor: no position this gateway issued.
      this.snapshot(alerts, s, "resume_unknown");
    else if (msg.resumeFrom !== undefined && msg.resumeFrom > alerts.head())
      this.snapshot(alerts, s, "resume_unknown");
    else if (msg.resumeFrom !== undefined) {
      const from = Math.min(msg.resumeFrom, this.takeResumeFloor(verified.tokenId));
      const changes = alerts.changesSince(from, staff.sites, this.options.maxReplay);
      if (changes) {
        let n = 0;
        for (const c of changes) {
          if (!alerts.visibleTo(c.alert, staff)) continue;
          this.send(s, { type: "alert", ...c });
          n++;
        }
        this.send(s, { type: "resumed", from: msg.resumeFrom, replayed: n });
        this.sessionsChanged();
        return;
      }
      this.snapshot(alerts, s, "resume_too_old");
    } else this.snapshot(alerts, s, "initial");
    this.sessionsChanged();
  }

  private snapshot(alerts: LocalStaffAlerts, s: Session, reason: SnapshotReason): void {
    const staff = s.staff!;
    const open = alerts.open({ siteIds: staff.sites }).filter((a) => alerts.visibleTo(a, staff));
    this.send(s, { type: "snapshot", seq: alerts.head(), alerts: open, reason });
  }

  /**
   * A connection's stream from the feed. What it hands over is committed in PostgreSQL already, so
   * it is sent with `sync: false`: in the socket's order, waiting for no fsync.
   */
  private streamTo(s: Session): StaffStream {
    return {
      snapshot: (alerts, reason, cursor) =>
        this.send(s, { type: "snapshot", seq: 0, alerts, reason, cursor }, false),
      change: (c, cursor) => this.send(s, { type: "alert", ...c, cursor }, false),
      resumed: (replayed, cursor) => this.send(s, { type: "resumed", replayed, cursor }, false),
      renotify: (a) =>
        this.send(s, { type: "renotify", alertId: a.id, priority: a.priority, level: a.level }, false),
      failed: (err) => {
        this.log.warn({ err, staffId: s.staff?.id }, "staff stream could not be read; connection closed");
        this.fail(s, null, "unavailable", "alerts cannot be read now; reconnect", undefined, false);
        this.closeAfterSent(s, 1013, "try again later");
      },
    };
  }

  private onChange = (c: AlertChange, meta?: ChangeMeta): void => {
    const alerts = this.alerts as LocalStaffAlerts;
    const sync = !meta?.replayable;
    for (const s of this.sessions) {
      if (s.staff && alerts.visibleTo(c.alert, s.staff)) this.send(s, { type: "alert", ...c }, sync);
    }
  };

  private onRenotify = (a: AlertView, meta?: ChangeMeta): void => {
    const alerts = this.alerts as LocalStaffAlerts;
    const sync = !meta?.replayable;
    for (const s of this.sessions) {
      if (s.staff && s.staff.role !== "manager" && alerts.visibleTo(a, s.staff))
        this.send(s, { type: "renotify", alertId: a.id, priority: a.priority, level: a.level }, sync);
    }
  };

  /**
   * Told, with one identity per signed-in socket, whenever a person signs in or a socket of one
   * closes: in cluster mode this node's share of who is connected (src/cluster/pg/staff-presence.ts).
   */
  onSessions: ((sockets: StaffIdentity[]) => void) | null = null;

  /** Where a socket came from, behind a trusted load balancer too (http.trustedProxies). */
  clientAddress: ClientAddress = new ClientAddress();

  private sessionsChanged(): void {
    this.onSessions?.([...this.sessions].flatMap((s) => (s.staff ? [s.staff] : [])));
    this.scheduleRecheck();
  }

  /** A staff member came or went: alerts that nobody can receive now move on. */
  private scheduleRecheck(): void {
    if (this.recheck || this.stopping || fromFeed(this.alerts)) return;
    const alerts = this.alerts;
    this.recheck = setImmediate(() => {
      this.recheck = null;
      try {
        alerts.recheckUndelivered();
      } catch (err) {
        // A full disk: the escalation timers still run (and retry); a throw here would end the process.
        this.log.error({ err }, "could not re-check undelivered alerts");
      }
    });
  }

  /**
   * A message goes out only once what it reports is durable; `sync: false` for a change a replay
   * would make again (ChangeMeta), which needs only its place in the order. The order kept is this
   * socket's, and within it an alert's: a change to one alert waits for an earlier change to the
   * same alert and for earlier messages that are about no one alert (replies, snapshots), not for
   * another alert's change waiting for its fsync. So a fall's alert is not held behind another
   * alert's delivery receipt or a colleague's accept being made durable.
   *
   * `seq` is then monotonic per alert, not per socket: a client holding 11 may not have 10 yet. If
   * the socket closes before 10 is sent, the token's next resume starts before 10 (resumeFloors),
   * so nothing is lost; a client that tracks the highest seq it saw resumes correctly.
   */
  private send(s: Session, msg: ServerMessage, sync = true): void {
    if (!this.durability) return this.sendNow(s, msg);
    const seq = msg.type === "alert" ? msg.seq : null;
    const key = msg.type === "alert" ? msg.alert.id : msg.type === "renotify" ? msg.alertId : undefined;
    if (seq !== null) s.unsent.add(seq);
    this.durability.after(
      () => {
        if (seq !== null) s.unsent.delete(seq);
        this.sendNow(s, msg);
      },
      { sync, lane: s.lane, key },
    );
  }

  /** A socket closed with alert changes still queued: its token's next resume starts before them. */
  private keepResumeFloor(s: Session): void {
    if (s.unsent.size === 0 || s.tokenId === null) return;
    const now = Date.now();
    for (const [token, f] of this.resumeFloors)
      if (now - f.at > RESUME_FLOOR_TTL_MS) this.resumeFloors.delete(token);
    const floor = Math.min(...s.unsent) - 1;
    const kept = this.resumeFloors.get(s.tokenId);
    this.resumeFloors.set(s.tokenId, { floor: Math.min(floor, kept?.floor ?? floor), at: now });
  }

  private takeResumeFloor(tokenId: string | null): number {
    const f = tokenId === null ? undefined : this.resumeFloors.get(tokenId);
    if (!f) return Number.POSITIVE_INFINITY;
    this.resumeFloors.delete(tokenId!);
    return Date.now() - f.at > RESUME_FLOOR_TTL_MS ? Number.POSITIVE_INFINITY : f.floor;
  }

  /**
   * Closes behind the replies already queued: a reply waiting for an fsync would be dropped by a
   * close now. The close needs no fsync of its own, only its place in the order.
   */
  private closeAfterSent(s: Session, code: number, reason: string): void {
    if (this.durability) this.durability.after(() => s.ws.close(code, reason), { sync: false, lane: s.lane });
    else s.ws.close(code, reason);
  }

  private sendNow(s: Session, msg: ServerMessage): void {
    if (s.ws.readyState !== s.ws.OPEN) return;
    if (s.ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.stats.slowDisconnects++;
      this.log.warn(
        { staffId: s.staff?.id, buffered: s.ws.bufferedAmount },
        "staff client too slow; disconnected",
      );
      s.ws.terminate();
      return;
    }
    s.ws.send(JSON.stringify(msg));
  }

  private fail(
    s: Session,
    id: string | null,
    code: ErrorCode,
    message?: string,
    details?: unknown,
    countsAsAbuse = true,
  ): void {
    this.send(s, {
      type: "reply",
      id,
      ok: false,
      error: { code, message: message ?? ERRORS[code].text, ...(details === undefined ? {} : { details }) },
    });
    if (!countsAsAbuse) return;
    const now = Date.now();
    s.errors = s.errors.filter((t) => t > now - 60_000);
    s.errors.push(now);
    if (s.errors.length > this.options.maxErrorsPerMinute) {
      this.log.warn({ staffId: s.staff?.id }, "staff client sent too many bad messages; closed");
      this.closeAfterSent(s, 1008, "too many bad messages");
    }
  }

  private sweep(): void {
    for (const s of this.sessions) {
      if (!s.alive) {
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }
}
