/**
 * Device presence: online/offline from MQTT connect and disconnect, keepalive timeouts and the
 * profile's heartbeat supervision. Each change is a canonical `device.online` / `device.offline`
 * event written through the event log like any other, and the current state per device is kept in
 * `device_state`.
 *
 * A device is online while it is connected and has been heard within its supervision window
 * (heartbeatSec x missedHeartbeats). A connection that stays open but goes silent is offline: a
 * radar whose firmware hangs keeps its TCP session alive.
 */
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { DecodedEvent } from "../model/event.js";
import type { DeviceProfile } from "../model/profile.js";
import type { Registry } from "../registry/registry.js";
import type { Db } from "../store/db.js";
import type { StorageHealth } from "../store/health.js";
import type { LoggedEvent } from "./pipeline.js";

export interface PresenceContext {
  db: Db;
  registry: Registry;
  profiles: ReadonlyMap<string, DeviceProfile>;
  log: Logger;
  metrics: Metrics;
  /** Writes gateway-originated events through the durable log. */
  record(deviceId: string, events: DecodedEvent[]): Promise<void>;
  now?: () => number;
  /** How often supervision runs; lower in tests. */
  checkIntervalMs?: number;
  /** Where storage failures are reported. */
  storage?: StorageHealth;
  /**
   * The cluster node logging the changes, carried in their `data.node`: whose session a change is
   * (src/reports/uptime.ts). Absent in a single process.
   */
  node?: string;
}

interface State {
  online: boolean;
  /** Open sessions: a reconnecting device's new session can arrive before the old one is gone. */
  connections: number;
  lastSeen: number;
  changedAt: number;
  /** online/changedAt differ from device_state. */
  dirty: boolean;
  /** Only lastSeen differs: written rarely, it is for display (supervision restarts at boot). */
  seenDirty: boolean;
}

export interface DeviceStatus {
  deviceId: string;
  online: boolean;
  connected: boolean;
  lastSeenAt: string | null;
  changedAt: string | null;
}

export class Presence {
  private readonly state = new Map<string, State>();
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private startedAt = 0;
  private onlineCount = 0;
  private seenPersistedAt = 0;
  /**
   * Online/offline changes the event log refused (a full disk): recorded again, in order, on the
   * next supervision pass, so the log and the state agree once the disk takes writes again.
   */
  private unrecorded: { deviceId: string; events: DecodedEvent[] }[] = [];
  private recording = false;

  constructor(private readonly ctx: PresenceContext) {
    this.now = ctx.now ?? Date.now;
  }

  start(): void {
    this.startedAt = this.now();
    const rows = this.ctx.db
      .prepare("SELECT device_id, online, changed_at, last_seen_at FROM device_state")
      .all() as {
      device_id: string;
      online: number;
      changed_at: number | null;
      last_seen_at: number | null;
    }[];
    for (const r of rows) {
      if (r.online === 1) this.onlineCount++;
      this.state.set(r.device_id, {
        online: r.online === 1,
        connections: 0,
        // A gateway restart is not the device's silence: supervision starts afresh from now.
        lastSeen: this.startedAt,
        changedAt: r.changed_at ?? 0,
        dirty: false,
        seenDirty: false,
      });
    }
    this.updateGauge();
    this.timer = setInterval(() => this.supervise(), this.ctx.checkIntervalMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.persist(true);
    } catch (err) {
      // device_state is a summary the log can rebuild; a full disk at shutdown must not stop it.
      this.ctx.log.error({ err }, "could not persist device states at stop");
    }
  }

  status(deviceId: string): DeviceStatus {
    const s = this.state.get(deviceId);
    return {
      deviceId,
      online: s?.online ?? false,
      connected: (s?.connections ?? 0) > 0,
      lastSeenAt: s?.lastSeen ? new Date(s.lastSeen).toISOString() : null,
      changedAt: s?.changedAt ? new Date(s.changedAt).toISOString() : null,
    };
  }

  onConnected(deviceId: string): void {
    const s = this.get(deviceId);
    s.connections++;
    this.seen(deviceId, s, "connected");
  }

  onDisconnected(deviceId: string, reason: string): void {
    const s = this.state.get(deviceId);
    if (!s) return;
    s.connections = Math.max(0, s.connections - 1);
    if (s.connections === 0 && s.online) this.change(deviceId, s, false, reason);
  }

  /** Last will or the device's own status message. */
  onStatus(deviceId: string, payload: string): void {
    const s = this.get(deviceId);
    if (payload.trim().toLowerCase() === "offline") {
      if (s.online) this.change(deviceId, s, false, "last will");
    } else this.seen(deviceId, s, "status");
  }

  /** A sign of life that did not come through this broker: a bridge's uplink or availability. */
  onSeen(deviceId: string, reason: string): void {
    this.seen(deviceId, this.get(deviceId), reason);
  }

  /** Another network says the device is gone (zigbee2mqtt availability "offline"). */
  onGone(deviceId: string, reason: string): void {
    const s = this.get(deviceId);
    if (s.online) this.change(deviceId, s, false, reason);
  }

  /** Every committed event is proof of life. */
  onEvents(events: readonly LoggedEvent[]): void {
    for (const e of events) {
      if (e.type === "device.online" || e.type === "device.offline") continue;
      const s = this.get(e.deviceId);
      this.seen(e.deviceId, s, "event");
    }
  }

  private get(deviceId: string): State {
    let s = this.state.get(deviceId);
    if (!s) {
      s = { online: false, connections: 0, lastSeen: 0, changedAt: 0, dirty: true, seenDirty: false };
      this.state.set(deviceId, s);
    }
    return s;
  }

  private seen(deviceId: string, s: State, reason: string): void {
    s.lastSeen = this.now();
    s.seenDirty = true;
    if (!s.online) this.change(deviceId, s, true, reason);
  }

  private change(deviceId: string, s: State, online: boolean, reason: string): void {
    if (s.online !== online) this.onlineCount += online ? 1 : -1;
    s.online = online;
    s.changedAt = this.now();
    s.dirty = true;
    this.updateGauge();
    const at = new Date(s.changedAt).toISOString();
    // The change itself is durable as an event in the log (below); device_state is a summary,
    // written with the next supervision pass in one transaction, not with an fsync per change (a
    // reconnect storm of thousands of devices would otherwise hold the event loop for seconds).
    const type = online ? "device.online" : "device.offline";
    const events: DecodedEvent[] = [
      {
        type,
        data: this.ctx.node ? { reason, node: this.ctx.node } : { reason },
        occurredAt: at,
        eventId: `gw:${type}:${s.changedAt}`,
        phase: "point",
      },
    ];
    // Behind earlier changes that wait for the disk: a device's online/offline keep their order.
    if (this.unrecorded.length || this.recording) this.unrecorded.push({ deviceId, events });
    else this.recordOne(deviceId, events);
  }

  private recordOne(deviceId: string, events: DecodedEvent[]): void {
    this.ctx.record(deviceId, events).catch((err: Error) => {
      if (!this.timer) return; // stopped: the log is closed
      // The eventId is fixed by the change's time, so a retry after an unknown outcome is deduped.
      this.unrecorded.push({ deviceId, events });
      if (!this.ctx.storage?.failed("presence", err))
        this.ctx.log.error({ deviceId, err: err.message }, "could not record presence change; will retry");
    });
  }

  /** Record what the log refused before, oldest first; stops at the first refusal. */
  private async retryUnrecorded(): Promise<void> {
    if (this.recording || !this.unrecorded.length) return;
    this.recording = true;
    try {
      while (this.unrecorded.length && this.timer) {
        const next = this.unrecorded[0]!;
        try {
          await this.ctx.record(next.deviceId, next.events);
        } catch (err) {
          this.ctx.storage?.failed("presence", err);
          return;
        }
        this.unrecorded.shift();
      }
    } finally {
      this.recording = false;
    }
  }

  /** Mark silent devices offline; persist last-seen times in one transaction. */
  supervise(): void {
    const now = this.now();
    for (const [deviceId, s] of this.state) {
      if (!s.online) continue;
      const device = this.ctx.registry.peek(deviceId);
      const profile = device && this.ctx.profiles.get(device.profile);
      if (!profile) continue;
      const windowMs = profile.supervision.heartbeatSec * profile.supervision.missedHeartbeats * 1000;
      if (now - s.lastSeen > windowMs)
        this.change(deviceId, s, false, `silent for ${Math.round((now - s.lastSeen) / 1000)} s`);
    }
    const seen = now - this.seenPersistedAt >= 5 * 60_000;
    void this.retryUnrecorded();
    // Runs in a timer: an error here would be uncaught and end the process (a full disk did).
    try {
      this.persist(seen, 200);
      if (seen) this.seenPersistedAt = now;
    } catch (err) {
      if (!this.ctx.storage?.failed("presence", err))
        this.ctx.log.error({ err }, "could not persist device states; will retry");
    }
  }

  /**
   * Write changed device states. Online/offline changes go every supervision pass; last-seen times
   * (which every heartbeat touches) only with `seen`, every few minutes and at stop. Chunks of 200
   * rows per transaction (under 2 ms each) keep any one write short: a long one holds the event loop,
   * and the event-log writer (and so every PUBACK) would wait behind it.
   */
  private persist(seen: boolean, chunk = Number.POSITIVE_INFINITY): void {
    const rows: [string, State][] = [];
    for (const entry of this.state) if (entry[1].dirty || (seen && entry[1].seenDirty)) rows.push(entry);
    if (!rows.length) return;
    const stmt = this.ctx.db.prepare(
      `INSERT INTO device_state (device_id, online, changed_at, last_seen_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(device_id) DO UPDATE SET online = excluded.online, changed_at = excluded.changed_at,
         last_seen_at = excluded.last_seen_at`,
    );
    const write = (from: number) => {
      const part = rows.slice(from, from + chunk);
      this.ctx.db.transaction(() => {
        for (const [id, s] of part)
          if (this.ctx.registry.peek(id))
            stmt.run(id, s.online ? 1 : 0, s.changedAt || null, s.lastSeen || null);
      })();
      // Clean only once committed: a refused write leaves them dirty for the next pass. (A change
      // between the write and here cannot happen: both run on this thread without yielding.)
      this.ctx.storage?.succeeded();
      for (const [, s] of part) {
        s.dirty = false;
        s.seenDirty = false;
      }
      if (from + chunk < rows.length)
        setImmediate(() => {
          if (!this.timer) return;
          try {
            write(from + chunk);
          } catch (err) {
            if (!this.ctx.storage?.failed("presence", err))
              this.ctx.log.error({ err }, "could not persist device states; will retry");
          }
        });
    };
    write(0);
  }

  private updateGauge(): void {
    this.ctx.metrics.devicesOnline.set(this.onlineCount);
  }
}
