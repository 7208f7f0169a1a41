/**
 * Redelivery detection for publishes that carry no eventId of their own.
 *
 * Such a payload is known by a hash of its device, channel and bytes. The same hash from the same
 * device again within the window is a redelivery (a QoS 1 publish sent again after a lost PUBACK,
 * or a device replaying its buffer after a reconnect) and is dropped with a trace; after the
 * window it is a new event (a second pendant press, a later bed exit from a mat that sends no
 * timestamp). A device-supplied eventId is deduped exactly by the event log's unique key instead.
 *
 * Bounded memory: per device only the most recent payload keys are kept (a redelivery repeats
 * what was in flight, which MQTT clients keep to a small window). The set is rebuilt from the event
 * log at start, so a redelivery after a crash (the event was committed, its PUBACK never left) is
 * still recognised.
 */
const PER_DEVICE = 32;

interface Seen {
  key: string;
  at: number;
}

export class RecentPayloads {
  private readonly byDevice = new Map<string, Seen[]>();

  constructor(private readonly windowMs: number) {}

  /** Age in ms of the same payload from this device within the window, or null. */
  seen(deviceId: string, key: string, now: number): number | null {
    const list = this.byDevice.get(deviceId);
    if (!list) return null;
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i]!;
      if (s.key === key) return now - s.at <= this.windowMs ? now - s.at : null;
    }
    return null;
  }

  remember(deviceId: string, key: string, at: number): void {
    let list = this.byDevice.get(deviceId);
    if (!list) {
      list = [];
      this.byDevice.set(deviceId, list);
    }
    const existing = list.findIndex((s) => s.key === key);
    if (existing >= 0) list.splice(existing, 1);
    list.push({ key, at });
    if (list.length > PER_DEVICE) list.shift();
  }

  /** A commit failed: the payload was not logged, so its redelivery must be taken, not dropped. */
  forget(deviceId: string, key: string, at: number): void {
    const list = this.byDevice.get(deviceId);
    if (!list) return;
    const i = list.findIndex((s) => s.key === key && s.at === at);
    if (i >= 0) list.splice(i, 1);
  }

  get windowMsValue(): number {
    return this.windowMs;
  }
}

/** `d:<hash>:<index>:t<ms36>` -> the payload key and receipt time, or null for a device's own id. */
export function parseDerivedId(eventId: string): { key: string; at: number } | null {
  const m = /^(d:[A-Za-z0-9_-]{22}):\d+:t([0-9a-z]+)$/.exec(eventId);
  return m ? { key: m[1]!, at: Number.parseInt(m[2]!, 36) } : null;
}
