/**
 * A device's online history from the event log: the gateway writes `device.online` /
 * `device.offline` on every presence change (src/ingest/presence.ts), so the state at any instant is
 * the last of those before it. Without any such event before the window, `device_state` still proves
 * the state when its last change lies before the window (the state has held since); otherwise the
 * state is unknown, which every report treats as not online.
 *
 * Queries go per device through the events(device_id, type, occurred_at) index: a month of a busy
 * site's heartbeats is never scanned.
 */
import { type Db, NOT_HEARTBEAT } from "../store/db.js";

export interface OnlineHistory {
  /** State at `from`: true, false, or null when nothing says. */
  initial: boolean | null;
  /** Changes in [from, to), in order (repeats of the current state included as logged). */
  changes: { at: number; online: boolean }[];
}

interface Statements {
  last: import("better-sqlite3").Statement;
  changes: import("better-sqlite3").Statement;
  state: import("better-sqlite3").Statement;
}

const statements = new WeakMap<Db, Statements>();

function prepared(db: Db): Statements {
  let s = statements.get(db);
  if (!s) {
    s = {
      last: db.prepare(
        `SELECT occurred_at AS at, seq FROM events WHERE device_id = ? AND type = ? AND ${NOT_HEARTBEAT} AND occurred_at < ?
         ORDER BY occurred_at DESC, seq DESC LIMIT 1`,
      ),
      changes: db.prepare(
        `SELECT type, occurred_at AS at FROM events
         WHERE device_id = ? AND type IN ('device.online', 'device.offline') AND ${NOT_HEARTBEAT}
           AND occurred_at >= ? AND occurred_at < ?
         ORDER BY occurred_at, seq`,
      ),
      state: db.prepare("SELECT online, changed_at FROM device_state WHERE device_id = ?"),
    };
    statements.set(db, s);
  }
  return s;
}

export function onlineHistory(db: Db, deviceId: string, from: number, to: number): OnlineHistory {
  const s = prepared(db);
  const on = s.last.get(deviceId, "device.online", from) as { at: number; seq: number } | undefined;
  const off = s.last.get(deviceId, "device.offline", from) as { at: number; seq: number } | undefined;
  let initial: boolean | null = null;
  if (on && off) initial = on.at > off.at || (on.at === off.at && on.seq > off.seq);
  else if (on) initial = true;
  else if (off) initial = false;
  else {
    const state = s.state.get(deviceId) as { online: number; changed_at: number | null } | undefined;
    if (state && state.changed_at !== null && state.changed_at <= from) initial = state.online === 1;
  }
  const changes = (s.changes.all(deviceId, from, to) as { type: string; at: number }[]).map((r) => ({
    at: r.at,
    online: r.type === "device.online",
  }));
  return { initial, changes };
}

/** True when the device was known online at `from` and did not go offline before `to`. */
export function onlineThroughout(db: Db, deviceId: string, from: number, to: number): boolean {
  const h = onlineHistory(db, deviceId, from, to);
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

/** Time online, offline and unknown in [from, to). */
export function uptime(db: Db, deviceId: string, from: number, to: number): Uptime {
  const h = onlineHistory(db, deviceId, from, to);
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
