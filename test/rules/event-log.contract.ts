/**
 * The rules' event log contract (src/rules/event-log.ts): what `after`, `get` and `count` answer,
 * for every implementation. Each gives a log to read, a way to log events (positions drawn in
 * order) and a way to open a maintenance window.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { LoggedEvent } from "../../src/ingest/pipeline.js";
import type { RulesEventLog } from "../../src/rules/event-log.js";
import type { NewMaintenance } from "../../src/rules/maintenance.js";

export interface EventLogFixture {
  log: RulesEventLog;
  /** Logs the events in order and returns them with their positions. */
  add(events: Omit<LoggedEvent, "logSeq">[]): LoggedEvent[];
  maintenance(w: NewMaintenance): void;
}

/** A fixed clock for every implementation: events an hour old are inside any test's look-back. */
export const NOW = Date.parse("2026-12-03T12:00:00Z");

let next = 0;
export function event(
  type: string,
  over: {
    device?: string;
    resident?: string | null;
    room?: string | null;
    at?: number;
    receivedAt?: number;
  } = {},
): Omit<LoggedEvent, "logSeq"> {
  const at = over.at ?? NOW - 60_000;
  return {
    eventId: `e-${++next}`,
    schemaVersion: 1,
    deviceId: over.device ?? "radar-1",
    type,
    phase: "point",
    occurredAt: new Date(at).toISOString(),
    receivedAt: new Date(over.receivedAt ?? at).toISOString(),
    data: {},
    profile: "generic-json",
    placement: {
      siteId: "site-a",
      unitId: "unit-a",
      roomId: over.room === undefined ? "room-1" : over.room,
      residentRef: over.resident === undefined ? "res-1" : over.resident,
    },
  } as Omit<LoggedEvent, "logSeq">;
}

export function eventLogContract(name: string, make: () => EventLogFixture): void {
  describe(`rules event log contract: ${name}`, () => {
    let f: EventLogFixture;
    beforeEach(() => {
      f = make();
    });

    it("reads events after a position in log order, a page at a time", () => {
      const logged = f.add([
        event("bed.exit"),
        event("device.heartbeat"),
        event("bed.return"),
        event("fall.detected"),
      ]);
      const positions = logged.map((e) => e.logSeq);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
      expect(f.log.after(0, 10).map((e) => e.eventId)).toEqual(logged.map((e) => e.eventId));
      expect(f.log.after(positions[0]!, 2).map((e) => e.type)).toEqual(["device.heartbeat", "bed.return"]);
      expect(f.log.after(positions[3]!, 10)).toEqual([]);
      // An event comes back as it was logged: placement, times, position.
      const back = f.log.after(positions[2]!, 1)[0]!;
      expect(back).toEqual(logged[3]);
    });

    it("gets one event by its position, and nothing for a position never logged", () => {
      const logged = f.add([event("bed.exit"), event("bed.return")]);
      expect(f.log.get(logged[1]!.logSeq)).toEqual(logged[1]);
      expect(f.log.get(logged[1]!.logSeq + 100)).toBeUndefined();
    });

    it("counts a device's events of the given types within the window, up to a position", () => {
      const logged = f.add([
        event("fall.detected", { at: NOW - 50 * 60_000 }),
        event("fall.suspected", { at: NOW - 20 * 60_000 }),
        event("bed.exit", { at: NOW - 10 * 60_000 }),
        event("fall.detected", { at: NOW - 5 * 60_000, device: "radar-2" }),
        event("fall.detected", { at: NOW - 60_000 }),
      ]);
      const last = logged[4]!;
      const q = { per: "device" as const, key: "radar-1", until: NOW - 60_000, upTo: last.logSeq };
      expect(f.log.count({ ...q, types: ["fall.*"], since: NOW - 30 * 60_000 })).toBe(2);
      expect(f.log.count({ ...q, types: ["fall.*"], since: NOW - 60 * 60_000 })).toBe(3);
      expect(f.log.count({ ...q, types: ["fall.detected"], since: NOW - 60 * 60_000 })).toBe(2);
      // Both ends of the window count.
      expect(
        f.log.count({ ...q, types: ["fall.*"], since: NOW - 50 * 60_000, until: NOW - 20 * 60_000 }),
      ).toBe(2);
      // Nothing logged after `upTo` counts, even inside the window.
      expect(
        f.log.count({ ...q, types: ["fall.*"], since: NOW - 60 * 60_000, upTo: logged[3]!.logSeq }),
      ).toBe(2);
      // Another device's events are its own.
      expect(f.log.count({ ...q, key: "radar-2", types: ["fall.*"], since: NOW - 60 * 60_000 })).toBe(1);
      expect(f.log.count({ ...q, key: "radar-9", types: ["fall.*"], since: NOW - 60 * 60_000 })).toBe(0);
    });

    it("counts every type, heartbeats included, when no type is given", () => {
      const logged = f.add([event("device.heartbeat"), event("bed.exit"), event("device.heartbeat")]);
      const q = {
        per: "device" as const,
        key: "radar-1",
        since: NOW - 3_600_000,
        until: NOW,
        upTo: logged[2]!.logSeq,
      };
      expect(f.log.count({ ...q, types: null })).toBe(3);
      expect(f.log.count({ ...q, types: ["device.heartbeat"] })).toBe(2);
      expect(f.log.count({ ...q, types: ["*"] })).toBe(3);
    });

    it("counts a resident's events from any of their devices", () => {
      const logged = f.add([
        event("bed.exit", { device: "mat-1" }),
        event("room.exit", { device: "radar-1" }),
        event("bed.exit", { device: "mat-2", resident: "res-2" }),
        event("bed.exit", { device: "mat-3", resident: null }),
      ]);
      const q = { per: "resident" as const, since: NOW - 3_600_000, until: NOW, upTo: logged[3]!.logSeq };
      expect(f.log.count({ ...q, key: "res-1", types: ["bed.exit", "room.exit"] })).toBe(2);
      expect(f.log.count({ ...q, key: "res-2", types: null })).toBe(1);
    });

    it("leaves out events received while a maintenance window of their device or room was in force", () => {
      f.maintenance({
        siteId: "site-a",
        deviceId: "radar-1",
        roomId: null,
        startsAt: NOW - 40 * 60_000,
        endsAt: NOW - 30 * 60_000,
        reason: "recalibration",
        createdBy: "tok-1",
        createdAt: NOW - 40 * 60_000,
      });
      f.maintenance({
        siteId: "site-a",
        deviceId: null,
        roomId: "room-9",
        startsAt: NOW - 15 * 60_000,
        endsAt: NOW - 10 * 60_000,
        reason: "room works",
        createdBy: "tok-1",
        createdAt: NOW - 15 * 60_000,
      });
      const logged = f.add([
        event("fall.detected", { at: NOW - 35 * 60_000 }), // inside the device's window
        event("fall.detected", { at: NOW - 30 * 60_000 }), // at its end: the end is exclusive
        event("fall.detected", { at: NOW - 45 * 60_000, receivedAt: NOW - 38 * 60_000 }), // received inside
        event("fall.detected", { at: NOW - 12 * 60_000, room: "room-9" }), // inside the room's window
        event("fall.detected", { at: NOW - 12 * 60_000, room: "room-1" }), // another room
      ]);
      const q = {
        per: "device" as const,
        key: "radar-1",
        types: ["fall.*"],
        since: NOW - 3_600_000,
        until: NOW,
      };
      expect(f.log.count({ ...q, upTo: logged[4]!.logSeq })).toBe(2);
    });
  });
}
