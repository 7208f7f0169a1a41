/**
 * A device's online history, behind one interface (`PresenceReads`): a single process reads its
 * SQLite log (`SqlitePresenceReads`), a cluster node PostgreSQL's shared log, which holds every
 * node's ingest (src/cluster/pg/presence-reads.ts); a node's own SQLite holds only what it ingested.
 * One contract suite holds both (test/reports/presence-reads.contract.ts).
 *
 * The gateway writes `device.online` / `device.offline` on every presence change
 * (src/ingest/presence.ts), so the state at any instant follows from those before it, in occurred_at
 * order (ties: the log's order). Before the window, only the last change and what followed it from
 * the same node matter, so each implementation reads just that, then `historyOf` folds it.
 *
 * Whose presence counts. On a cluster a device can move between nodes (a reconnect through a load
 * balancer, a RabbitMQ queue taken over by another consumer): node A may log `device.offline` (its
 * keepalive or heartbeat supervision timing out) after node B logged `device.online`. Presence events
 * carry the node that wrote them in `data.node` (absent in a single process), and the node of the
 * latest `device.online` owns the device's presence: an offline from another node is that node's
 * stale session ending and is not a change. Read in time order alone, A's late offline would mark the
 * device offline until its next change, which B, seeing it online all along, never logs. Against "online
 * while online on any node": a node that stops for good (a container with a new name) would hold
 * its devices online for ever; here the device's next online anywhere takes it over. What is left:
 * a device that comes back to a node that still held it online logs nothing there, so the other
 * node's timeout reads as offline until the device's next change. Without nodes (one process)
 * every event counts, as the log has it.
 *
 * Without any change before the window, a single process's `device_state` still proves the state
 * when its last change lies before the window (the state has held since); PostgreSQL keeps each
 * device's last pruned changes instead (presence-reads.ts). Otherwise the state is unknown, which
 * every report treats as not online.
 *
 * SQLite's queries go per device through the events(device_id, type, occurred_at) index: a month of
 * a busy site's heartbeats is never scanned.
 */
import { type Db, NOT_HEARTBEAT } from "../store/db.js";

export interface OnlineHistory {
  /** State at `from`: true, false, or null when nothing says. */
  initial: boolean | null;
  /** Changes in [from, to), in order (repeats of the current state included as logged). */
  changes: { at: number; online: boolean }[];
}

/** A presence event as read: the node that logged it ("" for none), and its place in the log's order. */
export interface PresenceMark {
  at: number;
  seq: number;
  node: string;
}

export interface PresenceChange extends PresenceMark {
  online: boolean;
}

/** What decides a device's state at a window's start. */
export interface PresenceBefore {
  /** The last `device.online` before the window. */
  lastOnline?: PresenceMark;
  /** The last `device.offline` before the window: of lastOnline's node, or of any node without one. */
  lastOffline?: PresenceMark;
  /** Without either: the state some other record proves held at the window's start. */
  held?: boolean;
}

/** Later in the log's order: occurred_at, then seq. */
export function isAfter(a: PresenceMark, b: PresenceMark): boolean {
  return a.at > b.at || (a.at === b.at && a.seq > b.seq);
}

/** The history from the state before the window and the window's changes in order (see the header). */
export function historyOf(before: PresenceBefore, changes: readonly PresenceChange[]): OnlineHistory {
  const { lastOnline: on, lastOffline: off } = before;
  let initial: boolean | null;
  let owner: string | undefined;
  if (on) {
    initial = !(off && isAfter(off, on));
    owner = on.node;
  } else if (off) initial = false;
  else initial = before.held ?? null;
  let online = initial;
  const out: OnlineHistory["changes"] = [];
  for (const c of changes) {
    if (c.online) owner = c.node;
    // Another node's session ending while this one holds the device: not a change.
    else if (online === true && owner !== undefined && c.node !== owner) continue;
    online = c.online;
    out.push({ at: c.at, online: c.online });
  }
  return { initial, changes: out };
}

export interface PresenceReads {
  /** Each device's online history over [from, to) (epoch ms); every asked device has an entry. */
  onlineHistories(
    deviceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<Map<string, OnlineHistory>>;
}

interface Statements {
  last: import("better-sqlite3").Statement;
  lastOfNode: import("better-sqlite3").Statement;
  changes: import("better-sqlite3").Statement;
  state: import("better-sqlite3").Statement;
}

const NODE = "COALESCE(json_extract(data, '$.node'), '')";

export class SqlitePresenceReads implements PresenceReads {
  private s: Statements | undefined;

  constructor(private readonly db: Db) {}

  async onlineHistories(
    deviceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<Map<string, OnlineHistory>> {
    return new Map(deviceIds.map((id) => [id, this.onlineHistoryNow(id, from, to)]));
  }

  /** One device's history without a promise, for the synchronous reports over SQLite. */
  onlineHistoryNow(deviceId: string, from: number, to: number): OnlineHistory {
    const s = this.prepared();
    const lastOnline = s.last.get(deviceId, "device.online", from) as PresenceMark | undefined;
    const lastOffline = (
      lastOnline
        ? s.lastOfNode.get(deviceId, from, lastOnline.node)
        : s.last.get(deviceId, "device.offline", from)
    ) as PresenceMark | undefined;
    const before: PresenceBefore = { lastOnline, lastOffline };
    if (!lastOnline && !lastOffline) {
      const state = s.state.get(deviceId) as { online: number; changed_at: number | null } | undefined;
      if (state && state.changed_at !== null && state.changed_at <= from) before.held = state.online === 1;
    }
    const changes = (
      s.changes.all(deviceId, from, to) as { type: string; at: number; seq: number; node: string }[]
    ).map((r) => ({ at: r.at, seq: r.seq, node: r.node, online: r.type === "device.online" }));
    return historyOf(before, changes);
  }

  private prepared(): Statements {
    this.s ??= {
      last: this.db.prepare(
        `SELECT occurred_at AS at, seq, ${NODE} AS node FROM events
         WHERE device_id = ? AND type = ? AND ${NOT_HEARTBEAT} AND occurred_at < ?
         ORDER BY occurred_at DESC, seq DESC LIMIT 1`,
      ),
      lastOfNode: this.db.prepare(
        `SELECT occurred_at AS at, seq, ${NODE} AS node FROM events
         WHERE device_id = ? AND type = 'device.offline' AND ${NOT_HEARTBEAT} AND occurred_at < ? AND ${NODE} = ?
         ORDER BY occurred_at DESC, seq DESC LIMIT 1`,
      ),
      changes: this.db.prepare(
        `SELECT type, occurred_at AS at, seq, ${NODE} AS node FROM events
         WHERE device_id = ? AND type IN ('device.online', 'device.offline') AND ${NOT_HEARTBEAT}
           AND occurred_at >= ? AND occurred_at < ?
         ORDER BY occurred_at, seq`,
      ),
      state: this.db.prepare("SELECT online, changed_at FROM device_state WHERE device_id = ?"),
    };
    return this.s;
  }
}

const sqliteReads = new WeakMap<Db, SqlitePresenceReads>();

/** The SQLite presence reads of a database (one per database, so its statements are prepared once). */
export function sqlitePresenceReads(db: Db): SqlitePresenceReads {
  let r = sqliteReads.get(db);
  if (!r) {
    r = new SqlitePresenceReads(db);
    sqliteReads.set(db, r);
  }
  return r;
}

/** The context's presence reads, or its SQLite's. */
export function presenceReadsOf(ctx: { db: Db; presenceReads?: PresenceReads }): PresenceReads {
  return ctx.presenceReads ?? sqlitePresenceReads(ctx.db);
}

/** True when the device was known online at the window's start and did not go offline in it. */
export function onlineThroughout(h: OnlineHistory): boolean {
  return h.initial === true && h.changes.every((c) => c.online);
}

export interface Uptime {
  onlineMs: number;
  offlineMs: number;
  unknownMs: number;
  /** Transitions from online to offline inside the window. */
  outages: number;
  longestOutageMs: number;
}

/** Time online, offline and unknown in [from, to) of a history over that window. */
export function uptime(h: OnlineHistory, from: number, to: number): Uptime {
  const out: Uptime = { onlineMs: 0, offlineMs: 0, unknownMs: 0, outages: 0, longestOutageMs: 0 };
  let state = h.initial;
  let since = from;
  let outageStart: number | null = state === false ? from : null;
  const close = (until: number) => {
    const span = until - since;
    if (state === true) out.onlineMs += span;
    else if (state === false) out.offlineMs += span;
    else out.unknownMs += span;
  };
  for (const c of h.changes) {
    if (c.online === state) continue;
    close(c.at);
    if (!c.online) {
      if (state === true) out.outages++;
      outageStart = c.at;
    } else if (outageStart !== null) {
      out.longestOutageMs = Math.max(out.longestOutageMs, c.at - outageStart);
      outageStart = null;
    }
    state = c.online;
    since = c.at;
  }
  close(to);
  if (outageStart !== null) out.longestOutageMs = Math.max(out.longestOutageMs, to - outageStart);
  return out;
}
