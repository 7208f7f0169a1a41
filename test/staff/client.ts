/**
 * A staff WebSocket client for tests (the `ws` package, a real socket): keeps every message it
 * received, waits for the next one that matches, and sends commands that expect one reply.
 */
import WebSocket from "ws";

// biome-ignore lint/suspicious/noExplicitAny: tests read server messages by path; the protocol's types are checked in src
export type Msg = any;

export const STAFF = {
  anna: {
    id: "anna",
    name: "Anna",
    role: "staff",
    sites: ["home-a"],
    units: ["unit-1"],
    token: "anna-token-0123456789",
  },
  bo: {
    id: "bo",
    name: "Bo",
    role: "staff",
    sites: ["home-a"],
    units: ["unit-1"],
    token: "bo-token-0123456789ab",
  },
  carl: {
    id: "carl",
    name: "Carl",
    role: "staff",
    sites: ["home-a"],
    units: ["unit-2"],
    token: "carl-token-0123456789",
  },
  nina: { id: "nina", name: "Nina", role: "nurse", sites: ["home-a"], token: "nina-token-0123456789" },
  hans: { id: "hans", name: "Hans", role: "staff", sites: ["home-b"], token: "hans-token-0123456789" },
} as const;

export class StaffClient {
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];
  private readonly taken = new Set<number>();
  private n = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      this.messages.push(m);
      const w = this.waiters.find((x) => x.match(m));
      if (w) {
        this.taken.add(this.messages.length - 1);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters) w(this.closed);
    });
    ws.on("error", () => {});
  }

  static open(httpUrl: string, opts: WebSocket.ClientOptions = {}): Promise<StaffClient> {
    const ws = new WebSocket(`${httpUrl.replace(/^http/, "ws")}/staff/ws`, opts);
    const client = new StaffClient(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => {
        (ws as unknown as { _socket?: { setNoDelay(b: boolean): void } })._socket?.setNoDelay(true);
        resolve(client);
      });
      ws.once("error", reject);
    });
  }

  /** Open, say hello, and wait for what follows it (snapshot, or the replay up to `resumed`). */
  static async connect(
    httpUrl: string,
    token: string,
    resumeFrom?: number,
    opts: WebSocket.ClientOptions = {},
  ): Promise<StaffClient> {
    const c = await StaffClient.open(httpUrl, opts);
    const done = c.next((m) => m.type === "snapshot" || m.type === "resumed");
    c.send({ type: "hello", id: "hello", token, ...(resumeFrom === undefined ? {} : { resumeFrom }) });
    await done;
    return c;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === "string" || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  /** The oldest not yet taken message matching `match`, or the next such to arrive. */
  next(match: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    for (let i = 0; i < this.messages.length; i++)
      if (!this.taken.has(i) && match(this.messages[i])) {
        this.taken.add(i);
        return Promise.resolve(this.messages[i]);
      }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `no matching message within ${timeoutMs} ms; last: ${JSON.stringify(this.messages.slice(-3))}`,
          ),
        );
      }, timeoutMs);
      const done = (m: Msg) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ match, resolve: done });
    });
  }

  /** An alert change for this alert (and, if given, of this kind). */
  change(alertId: string | null, change?: string, timeoutMs?: number): Promise<Msg> {
    return this.next(
      (m) =>
        m.type === "alert" &&
        (alertId === null || m.alert.id === alertId) &&
        (!change || m.change === change),
      timeoutMs,
    );
  }

  /** Send a command and wait for its reply. */
  async request(msg: Record<string, unknown>): Promise<Msg> {
    const id = `r${++this.n}`;
    const reply = this.next((m) => m.type === "reply" && m.id === id);
    this.send({ ...msg, id });
    return reply;
  }

  /** Alert changes received so far (all of them, in arrival order). */
  alertChanges(): Msg[] {
    return this.messages.filter((m) => m.type === "alert");
  }

  waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closed = this.waitClosed();
    this.ws.close();
    return closed.then(() => undefined);
  }
}
