/**
 * A device's online history (src/reports/uptime.ts `PresenceReads`), for every implementation:
 * SQLite's (one process) and PostgreSQL's shared log (a cluster node). Each fixture logs presence
 * changes where its gateway reads them, in the order given (its row ids ascending), with the node
 * that logged them in `data.node` when one is given.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type PresenceReads, uptime } from "../../src/reports/uptime.js";

export interface PresenceLogged {
  deviceId: string;
  type: string;
  at: number;
  /** The node that logged it; absent as in a single process. */
  node?: string;
}

export interface PresenceReadsFixture {
  reads: PresenceReads;
  /** Logs the events in this order (received when they occurred). */
  log(...events: PresenceLogged[]): Promise<void>;
  /** Drops from the log what was received before `before`, as the gateway's retention would; SQLite keeps everything. */
  prune(before: number): Promise<void>;
  cleanup(): Promise<void>;
}

export const T0 = Date.parse("2026-11-02T00:00:00Z");
const MIN = 60_000;
const HOUR = 60 * MIN;

export const on = (deviceId: string, at: number, node?: string): PresenceLogged => ({
  deviceId,
  type: "device.online",
  at,
  ...(node ? { node } : {}),
});
export const off = (deviceId: string, at: number, node?: string): PresenceLogged => ({
  deviceId,
  type: "device.offline",
  at,
  ...(node ? { node } : {}),
});

export function presenceReadsContract(name: string, make: () => Promise<PresenceReadsFixture>): void {
  describe(`presence reads contract: ${name}`, () => {
    let f: PresenceReadsFixture;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.cleanup();
    });

    const history = async (deviceId: string, from: number, to: number) =>
      (await f.reads.onlineHistories([deviceId], from, to)).get(deviceId);

    it("the state at the window's start is the last change before it; changes in [from, to) follow in order", async () => {
      await f.log(
        on("radar-1", T0 - 3 * HOUR),
        off("radar-1", T0 - 2 * HOUR),
        on("radar-1", T0 - HOUR),
        off("radar-1", T0),
        { deviceId: "radar-1", type: "device.heartbeat", at: T0 + MIN },
        on("radar-1", T0 + 10 * MIN),
        on("radar-1", T0 + 20 * MIN),
        off("radar-1", T0 + HOUR),
        on("radar-2", T0 + 5 * MIN),
      );
      expect(await history("radar-1", T0, T0 + HOUR)).toEqual({
        initial: true,
        changes: [
          { at: T0, online: false },
          { at: T0 + 10 * MIN, online: true },
          { at: T0 + 20 * MIN, online: true },
        ],
      });
      expect(await history("radar-1", T0 - 90 * MIN, T0 - 30 * MIN)).toEqual({
        initial: false,
        changes: [{ at: T0 - HOUR, online: true }],
      });
      expect(uptime((await history("radar-1", T0, T0 + HOUR))!, T0, T0 + HOUR)).toEqual({
        onlineMs: 50 * MIN,
        offlineMs: 10 * MIN,
        unknownMs: 0,
        outages: 1,
        longestOutageMs: 10 * MIN,
      });
    });

    it("a device without any change before the window is unknown at its start, and every asked device is answered", async () => {
      await f.log(on("radar-1", T0 + 5 * MIN));
      const got = await f.reads.onlineHistories(["radar-1", "radar-9"], T0, T0 + HOUR);
      expect(got.get("radar-1")).toEqual({ initial: null, changes: [{ at: T0 + 5 * MIN, online: true }] });
      expect(got.get("radar-9")).toEqual({ initial: null, changes: [] });
    });

    it("changes in the same millisecond count in the order they were logged", async () => {
      await f.log(
        off("radar-1", T0 - MIN),
        on("radar-1", T0 - MIN),
        on("radar-2", T0 - MIN),
        off("radar-2", T0 - MIN),
      );
      const got = await f.reads.onlineHistories(["radar-1", "radar-2"], T0, T0 + HOUR);
      expect(got.get("radar-1")?.initial).toBe(true);
      expect(got.get("radar-2")?.initial).toBe(false);
    });

    it("a node's offline after the device went online on another node is not a change (a device that moved)", async () => {
      // Online on A; reconnects through B; A's keepalive times out later; then B's supervision.
      await f.log(
        on("radar-1", T0 - HOUR, "node-a"),
        on("radar-1", T0 + 10 * MIN, "node-b"),
        off("radar-1", T0 + 12 * MIN, "node-a"),
        off("radar-1", T0 + 50 * MIN, "node-b"),
      );
      expect(await history("radar-1", T0, T0 + HOUR)).toEqual({
        initial: true,
        changes: [
          { at: T0 + 10 * MIN, online: true },
          { at: T0 + 50 * MIN, online: false },
        ],
      });
      // Before the window too: A's late offline does not make the device offline at B's.
      expect(await history("radar-1", T0 + 30 * MIN, T0 + 40 * MIN)).toEqual({ initial: true, changes: [] });
      // The owner's own offline counts, wherever the window starts.
      expect(await history("radar-1", T0 + 55 * MIN, T0 + 2 * HOUR)).toEqual({ initial: false, changes: [] });
    });

    it("the device's next online on any node takes it over; the owner's offline ends it", async () => {
      await f.log(
        on("radar-1", T0 - HOUR, "node-a"),
        on("radar-1", T0 - 30 * MIN, "node-b"),
        on("radar-1", T0 - 20 * MIN, "node-a"),
        off("radar-1", T0 - 10 * MIN, "node-b"),
        off("radar-1", T0 + 10 * MIN, "node-b"),
        off("radar-1", T0 + 20 * MIN, "node-a"),
      );
      expect(await history("radar-1", T0, T0 + HOUR)).toEqual({
        initial: true,
        changes: [{ at: T0 + 20 * MIN, online: false }],
      });
      expect(await history("radar-1", T0 + 30 * MIN, T0 + HOUR)).toEqual({ initial: false, changes: [] });
    });

    it("the state at the window's start survives the log's prune of every change before it", async () => {
      // Online for longer than the retention: its online and everything around it are pruned.
      await f.log(
        on("radar-1", T0 - 40 * HOUR, "node-a"),
        on("radar-2", T0 - 40 * HOUR, "node-a"),
        off("radar-2", T0 - 39 * HOUR, "node-a"),
        // Moved to B, A's stale offline after it: B still holds it.
        on("radar-3", T0 - 40 * HOUR, "node-a"),
        on("radar-3", T0 - 39 * HOUR, "node-b"),
        off("radar-3", T0 - 38 * HOUR, "node-a"),
        // Several prunes' worth: the newest pruned change per node and type is what stays.
        on("radar-4", T0 - 40 * HOUR),
        off("radar-4", T0 - 30 * HOUR),
        { deviceId: "radar-1", type: "device.heartbeat", at: T0 - 20 * HOUR },
      );
      await f.prune(T0 - 35 * HOUR);
      await f.log(on("radar-4", T0 - 25 * HOUR), on("radar-1", T0 + 30 * MIN, "node-a"));
      await f.prune(T0 - 10 * HOUR);
      const got = await f.reads.onlineHistories(["radar-1", "radar-2", "radar-3", "radar-4"], T0, T0 + HOUR);
      expect(got.get("radar-1")).toEqual({ initial: true, changes: [{ at: T0 + 30 * MIN, online: true }] });
      expect(got.get("radar-2")).toEqual({ initial: false, changes: [] });
      expect(got.get("radar-3")).toEqual({ initial: true, changes: [] });
      expect(got.get("radar-4")).toEqual({ initial: true, changes: [] });
      // A window that starts between two pruned changes starts in the earlier one's state.
      expect(
        (await f.reads.onlineHistories(["radar-2"], T0 - 39.5 * HOUR, T0 - 39.2 * HOUR)).get("radar-2"),
      ).toEqual({ initial: true, changes: [] });
    });
  });
}
