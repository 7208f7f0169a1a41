/**
 * What the time-saved job reads of the event log (src/reports/event-reads.ts), for every
 * implementation: SQLite's (one process) and PostgreSQL's shared log (a cluster node). Each fixture
 * logs events where its gateway reads them, in the order given (its row ids ascending).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventReads } from "../../src/reports/event-reads.js";

export interface LoggedEvent {
  siteId: string;
  deviceId: string;
  type: string;
  at: number;
  unitId: string;
  roomId: string | null;
  residentRef: string | null;
  data: string;
}

export interface EventReadsFixture {
  reads: EventReads;
  /** Logs the events in this order, each device registered to the event's site. */
  log(...events: LoggedEvent[]): Promise<void>;
  cleanup(): Promise<void>;
}

const T0 = Date.parse("2026-11-02T00:00:00Z");
const MIN = 60_000;

let n = 0;
export function ev(over: Partial<LoggedEvent> & { at: number }): LoggedEvent {
  return {
    siteId: "site-a",
    deviceId: "button-1",
    type: "staff.presence",
    unitId: "unit-1",
    roomId: "room-1",
    residentRef: "res-1",
    data: `{"n":${++n}}`,
    ...over,
  };
}

export function eventReadsContract(name: string, make: () => Promise<EventReadsFixture>): void {
  describe(`event reads contract: ${name}`, () => {
    let f: EventReadsFixture;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.cleanup();
    });

    it("events of a type are read in [from, to) of one site, with their place and data", async () => {
      await f.log(
        ev({ at: T0 - 1, data: '{"k":"before"}' }),
        ev({ at: T0, roomId: null, data: '{"k":"from"}' }),
        ev({ at: T0 + 30 * MIN, unitId: "unit-2", residentRef: null, data: '{"k":"mid"}' }),
        ev({ at: T0 + 60 * MIN - 1, data: '{"k":"last"}' }),
        ev({ at: T0 + 60 * MIN, data: '{"k":"to"}' }),
        ev({ at: T0 + MIN, siteId: "site-b", deviceId: "button-b", data: '{"k":"other-site"}' }),
        // A device that moved: this event was placed in another site, whatever the device's site now.
        ev({ at: T0 + 2 * MIN, siteId: "site-c", data: '{"k":"placed-elsewhere"}' }),
      );
      const got = await f.reads.eventsOfType("site-a", "staff.presence", T0, T0 + 60 * MIN);
      expect(got).toEqual([
        { unit_id: "unit-1", room_id: null, resident_ref: "res-1", at: T0, data: '{"k":"from"}' },
        { unit_id: "unit-2", room_id: "room-1", resident_ref: null, at: T0 + 30 * MIN, data: '{"k":"mid"}' },
        {
          unit_id: "unit-1",
          room_id: "room-1",
          resident_ref: "res-1",
          at: T0 + 60 * MIN - 1,
          data: '{"k":"last"}',
        },
      ]);
      expect(
        (await f.reads.eventsOfType("site-b", "staff.presence", T0, T0 + 60 * MIN)).map((e) => e.data),
      ).toEqual(['{"k":"other-site"}']);
      expect(await f.reads.eventsOfType("site-d", "staff.presence", T0, T0 + 60 * MIN)).toEqual([]);
    });

    it("only the asked type is read, and heartbeats never", async () => {
      await f.log(
        ev({ at: T0 + MIN, type: "lift.cycle", deviceId: "lift-1", data: '{"helpers":1}' }),
        ev({ at: T0 + 2 * MIN, type: "staff.presence" }),
        ev({ at: T0 + 3 * MIN, type: "device.heartbeat", deviceId: "lift-1", data: "{}" }),
        ev({ at: T0 + 4 * MIN, type: "lift.cycle", deviceId: "lift-1", data: '{"helpers":2}' }),
      );
      const lifts = await f.reads.eventsOfType("site-a", "lift.cycle", T0, T0 + 60 * MIN);
      expect(lifts.map((e) => e.data)).toEqual(['{"helpers":1}', '{"helpers":2}']);
      expect(await f.reads.eventsOfType("site-a", "device.heartbeat", T0, T0 + 60 * MIN)).toEqual([]);
    });

    it("events come in occurred_at order whatever order they were logged in, ties in log order", async () => {
      await f.log(
        ev({ at: T0 + 5 * MIN, data: '{"k":"c"}' }),
        ev({ at: T0 + MIN, deviceId: "button-2", data: '{"k":"a"}' }),
        ev({ at: T0 + 3 * MIN, deviceId: "button-2", data: '{"k":"b2"}' }),
        ev({ at: T0 + 3 * MIN, deviceId: "button-1", data: '{"k":"b1"}' }),
        ev({ at: T0 + 3 * MIN, deviceId: "button-2", data: '{"k":"b3"}' }),
      );
      const got = await f.reads.eventsOfType("site-a", "staff.presence", T0, T0 + 60 * MIN);
      expect(got.map((e) => JSON.parse(e.data).k)).toEqual(["a", "b2", "b1", "b3", "c"]);
    });

    it("data comes back as the logged text, byte for byte", async () => {
      // Key order, spacing, escapes, non-ASCII and a large integer: anything a JSON round trip could change.
      const data =
        '{"z":1, "a":{"b":[1,2.50,null]},"text":"Ærø \\u00e6 \\"q\\" 🚑","big":12345678901234567890}';
      await f.log(ev({ at: T0, type: "lift.cycle", deviceId: "lift-1", data }));
      const [got] = await f.reads.eventsOfType("site-a", "lift.cycle", T0, T0 + 1);
      expect(got?.data).toBe(data);
    });

    it("lift cycles in [from, to) are counted by fault and helpers, of the asked units or all", async () => {
      const lift = (at: number, data: string, over: Partial<LoggedEvent> = {}) =>
        ev({ at, type: "lift.cycle", deviceId: "lift-1", data, ...over });
      await f.log(
        lift(T0 - 1, '{"helpers":1}'),
        lift(T0, '{"helpers":1}'),
        lift(T0 + MIN, '{"helpers":2}'),
        lift(T0 + 2 * MIN, '{"helpers":3}', { unitId: "unit-2", deviceId: "lift-2" }),
        lift(T0 + 3 * MIN, '{"helpers":1,"fault":"overload"}'),
        lift(T0 + 4 * MIN, '{"helpers":2,"fault":""}', { unitId: "unit-2", deviceId: "lift-2" }),
        lift(T0 + 5 * MIN, "{}"),
        lift(T0 + 6 * MIN, '{"helpers":1}', { siteId: "site-b", deviceId: "lift-b" }),
        ev({ at: T0 + 7 * MIN, type: "staff.presence", data: '{"helpers":1}' }),
        lift(T0 + 60 * MIN, '{"helpers":1}'),
      );
      expect(await f.reads.liftCycleCounts("site-a", T0, T0 + 60 * MIN, null)).toEqual({
        cycles: 6,
        faults: 1,
        oneHelper: 1,
        twoHelper: 3,
      });
      expect(await f.reads.liftCycleCounts("site-a", T0, T0 + 60 * MIN, ["unit-2"])).toEqual({
        cycles: 2,
        faults: 0,
        oneHelper: 0,
        twoHelper: 2,
      });
      expect(await f.reads.liftCycleCounts("site-a", T0, T0 + 60 * MIN, ["unit-9"])).toEqual({
        cycles: 0,
        faults: 0,
        oneHelper: 0,
        twoHelper: 0,
      });
    });

    it("the earliest event of a site is its first occurrence, heartbeats included; none without events", async () => {
      expect(await f.reads.firstEventAt("site-a")).toBeUndefined();
      await f.log(
        ev({ at: T0 + 10 * MIN }),
        ev({ at: T0 + 2 * MIN, type: "device.heartbeat", deviceId: "radar-1", data: "{}" }),
        ev({ at: T0 - 5 * MIN, siteId: "site-b", deviceId: "button-b" }),
        ev({ at: T0 + 7 * MIN, type: "lift.cycle", deviceId: "lift-1" }),
      );
      expect(await f.reads.firstEventAt("site-a")).toBe(T0 + 2 * MIN);
      expect(await f.reads.firstEventAt("site-b")).toBe(T0 - 5 * MIN);
      expect(await f.reads.firstEventAt("site-c")).toBeUndefined();
    });
  });
}
