// @ts-check
/**
 * The browser side of the staff WebSocket protocol (src/staff/protocol.ts): hello with the token,
 * snapshot or replay, live alert changes, commands with one reply each. Reconnects by itself with
 * backoff and resumes from where it was, so a dropped connection loses nothing: from the last
 * `cursor` the server sent (cluster mode, any node), otherwise from the largest `seq` it saw.
 *
 * Events (CustomEvent, detail = the server message unless noted): "state" (detail: {state, retryAt}),
 * "welcome", "snapshot", "alert", "resumed", "renotify", "unauthorized".
 */

/** @typedef {"connecting" | "live" | "offline" | "unauthorized" | "stopped"} ConnState */
/**
 * @typedef {object} AlertView
 * @property {string} id
 * @property {string} type
 * @property {"high" | "medium" | "low" | "info"} priority
 * @property {"raised" | "accepted" | "attending" | "resolved" | "cancelled" | "suppressed"} state
 * @property {{ da: string; en: string }} message
 * @property {string} site
 * @property {string} unit
 * @property {string | null} room
 * @property {string | null} resident
 * @property {string} deviceId
 * @property {string} raisedAt
 * @property {string} updatedAt
 * @property {number} count
 * @property {{ id: string; name: string } | null} acceptedBy
 * @property {string | null} acceptedAt
 * @property {string | null} attendingAt
 * @property {number} level
 * @property {boolean} undelivered
 * @property {string[]} deliveredTo
 * @property {string[]} rejectedBy
 */
/** @typedef {{ id: string; name: string; role: string; sites: string[]; units: string[] | null }} StaffIdentity */
/** @typedef {{ code: string; message: string }} ReplyError */

/** Backoff steps (ms) before reconnect attempts; the last repeats. Jitter spreads a whole ward's screens. */
const BACKOFF_MS = [250, 1000, 2000, 3000, 5000];
const HELLO_TIMEOUT_MS = 8000;
const COMMAND_TIMEOUT_MS = 10_000;
/** Our own ping: how often, and how long an unanswered one may wait before the socket counts as dead. */
const PING_MS = 5000;
const DEAD_MS = 10_000;

export class CommandError extends Error {
  /**
   * @param {string} code error code from src/errors.ts, or "offline" / "timeout"
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class StaffClient extends EventTarget {
  /**
   * @param {{ url: string; token: string; language?: "da" | "en" }} options
   */
  constructor(options) {
    super();
    this.url = options.url;
    this.token = options.token;
    this.language = options.language ?? "da";
    /** @type {ConnState} */
    this.state = "stopped";
    /** The largest alert change applied (audit id); sent as resumeFrom on reconnect. */
    this.lastSeq = /** @type {number | null} */ (null);
    /** Cluster mode: where this connection's stream stood in the feed; sent as resumeCursor instead. */
    this.cursor = /** @type {string | null} */ (null);
    /** @type {WebSocket | null} */
    this.ws = null;
    this.attempt = 0;
    this.nextId = 1;
    /** @type {Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>} */
    this.pending = new Map();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.pingTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.helloTimer = null;
    /** Gateway clock minus ours (ms), from ping round trips. */
    this.clockOffset = 0;
    /** When the oldest unanswered ping went out (0 = none outstanding). */
    this.pingSentAt = 0;
    this.heartbeatSec = 15;
    /** When the connection last went live (ms). */
    this.liveSince = 0;
    /** When it was last live (ms), for "last connected" while offline. */
    this.lastLive = 0;
    this.retryAt = 0;
    this.onOnline = () => this.retryNow();
    this.onVisible = () => {
      if (document.visibilityState === "visible") {
        if (this.state === "offline") this.retryNow();
        // A frozen tab may hold a dead socket; probe it at once.
        else if (this.state === "live") this.probe();
      }
    };
  }

  start() {
    if (this.state !== "stopped") return;
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    this.setState("stopped");
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "signed out");
    this.failPending("offline");
  }

  /** Skip the backoff wait (the user pressed "retry now", or the network came back). */
  retryNow() {
    if (this.state !== "offline") return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /**
   * Send a command and wait for its reply.
   * @param {"accept" | "reject" | "attend" | "resolve" | "comment" | "received"} type
   * @param {Record<string, unknown>} fields
   * @returns {Promise<unknown>} the reply's result
   */
  command(type, fields) {
    const ws = this.ws;
    if (this.state !== "live" || !ws || ws.readyState !== WebSocket.OPEN)
      return Promise.reject(new CommandError("offline", "not connected"));
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CommandError("timeout", "no reply"));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  // ------------------------------------------------------------------ connection

  connect() {
    this.clearTimers();
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      /** @type {Record<string, unknown>} */
      const hello = { type: "hello", id: "hello", token: this.token, language: this.language };
      if (this.cursor !== null) hello.resumeCursor = this.cursor;
      else if (this.lastSeq !== null) hello.resumeFrom = this.lastSeq;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending("offline");
      if (this.state === "stopped" || this.state === "unauthorized") return;
      if (ev.code === 4003) {
        this.unauthorized();
        return;
      }
      this.scheduleRetry();
    });
    // No timeout on the browser's side for a TCP connect that hangs: bound it ourselves.
    this.helloTimer = setTimeout(() => {
      if (this.ws === ws && this.state === "connecting") this.drop();
    }, HELLO_TIMEOUT_MS);
  }

  /** Give up on the current socket now (it may be half-dead) and reconnect. */
  drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
    this.failPending("offline");
    if (this.state !== "stopped" && this.state !== "unauthorized") this.scheduleRetry();
  }

  scheduleRetry() {
    this.clearTimers();
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)] ?? 5000;
    this.attempt++;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    this.setState("offline");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  unauthorized() {
    this.clearTimers();
    this.setState("unauthorized");
    this.dispatchEvent(new CustomEvent("unauthorized"));
  }

  /** @param {any} msg */
  onMessage(msg) {
    switch (msg.type) {
      case "reply":
        if (msg.id === "hello") {
          if (!msg.ok) {
            if (msg.error?.code === "unauthenticated") this.unauthorized();
            return;
          }
          return;
        }
        this.settle(msg);
        return;
      case "welcome":
        if (this.helloTimer) clearTimeout(this.helloTimer);
        this.helloTimer = null;
        this.heartbeatSec = Math.max(5, Number(msg.heartbeatSec) || 15);
        this.attempt = 0;
        this.liveSince = Date.now();
        this.startPing();
        this.emit("welcome", msg);
        return;
      case "snapshot":
        this.lastSeq = msg.seq;
        // A single process sends none: resume by seq against it.
        this.cursor = typeof msg.cursor === "string" ? msg.cursor : null;
        this.emit("snapshot", msg);
        // Live only once the picture is complete: the warning stays up until then.
        this.setState("live");
        return;
      case "resumed":
        if (typeof msg.cursor === "string") this.cursor = msg.cursor;
        this.emit("resumed", msg);
        this.setState("live");
        return;
      case "alert":
        if (this.lastSeq === null || msg.seq > this.lastSeq) this.lastSeq = msg.seq;
        // In cluster mode messages come in the feed's order: the last cursor covers all before it.
        if (typeof msg.cursor === "string") this.cursor = msg.cursor;
        this.emit("alert", msg);
        return;
      case "renotify":
        this.emit("renotify", msg);
        return;
      case "pong": {
        const now = Date.now();
        const sentAt = this.pingSentAt || now;
        const server = Date.parse(msg.serverTime);
        // Ages are shown from the gateway's raisedAt; a tablet's clock may be minutes off.
        if (Number.isFinite(server) && now - sentAt < 2000) this.clockOffset = server - (sentAt + now) / 2;
        this.pingSentAt = 0;
        return;
      }
    }
  }

  /** @param {any} msg */
  settle(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new CommandError(msg.error?.code ?? "internal", msg.error?.message ?? ""));
  }

  startPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingSentAt = 0;
    this.probe();
    // The server pings at the WebSocket level, which a browser answers but cannot see. Our own
    // ping finds a dead connection (a sleeping laptop, a Wi-Fi hand-over) within seconds.
    this.pingTimer = setInterval(() => this.probe(), PING_MS);
  }

  /**
   * Judged by the oldest unanswered ping, not by time since the last message: a hidden tab's timers
   * may run once a minute, and a quiet but healthy connection must not count as dead.
   */
  probe() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.pingSentAt && Date.now() - this.pingSentAt > DEAD_MS) {
      this.drop();
      return;
    }
    if (!this.pingSentAt) this.pingSentAt = Date.now();
    ws.send(JSON.stringify({ type: "ping", id: `p${this.nextId++}` }));
  }

  clearTimers() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.retryTimer = this.pingTimer = this.helloTimer = null;
  }

  /** @param {string} code */
  failPending(code) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new CommandError(code, "connection lost"));
      this.pending.delete(id);
    }
  }

  /** @param {ConnState} state */
  setState(state) {
    if (this.state === "live" && state !== "live") this.lastLive = Date.now();
    if (state === this.state && state !== "offline") return;
    this.state = state;
    this.emit("state", { state, retryAt: this.retryAt });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
