/**
 * The contract every PartitionState passes, beside test/alerts/store.contract.ts for its alert
 * store: the durable timers' rows (TimerStore), the rules' cursor (RulesCursor), the maintenance
 * windows in force (MaintenanceWindows) with the HTTP API's side of them (MaintenanceSchedule), and
 * the one unit of work they share (`step`). The SQLite state runs it now; a PostgreSQL one (a
 * partition owner's working set, each step flushed in one fenced transaction) must run it too.
 * Each test gets a fresh, empty state; `reopen()` opens the same storage again, as a restart or the
 * next owner of the partition would.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MaintenanceSchedule, NewMaintenance } from "../../src/rules/maintenance.js";
import type { PartitionState } from "../../src/rules/partition.js";
import type { TimerRow } from "../../src/rules/timer-store.js";
import { alertRow } from "../alerts/store.contract.js";

export interface PartitionStateContractSubject {
  state: PartitionState;
  /** The HTTP API's maintenance windows, on the same storage. */
  schedule: MaintenanceSchedule;
  /** Lets go of `state` and opens the same storage again. */
  reopen(): Promise<PartitionState>;
  cleanup(): Promise<void>;
}

const T0 = Date.parse("2026-11-02T21:14:05.250Z");
const MIN = 60_000;

const byId = (rows: TimerRow[]) => [...rows].sort((a, b) => a.id.localeCompare(b.id));

export function partitionStateContract(
  name: string,
  factory: () => Promise<PartitionStateContractSubject>,
): void {
  let subject: PartitionStateContractSubject;
  let state: PartitionState;

  const setUp = () => {
    beforeEach(async () => {
      subject = await factory();
      state = subject.state;
    });
    afterEach(async () => {
      await subject.cleanup();
    });
  };

  describe(`TimerStore contract: ${name}`, () => {
    setUp();

    it("gives back upserted timers; upserting an id again changes its kind, due time and payload", () => {
      const timers = state.timers;
      timers.upsert("alert:al_1:escalate", "escalate", T0 + MIN, '{"alertId":"al_1","level":1}', T0);
      timers.upsert("absence:bed-exit:dev-1", "absence", T0 + 10 * MIN, '{"ruleId":"bed-exit"}', T0);
      expect(byId(timers.load())).toEqual([
        {
          id: "absence:bed-exit:dev-1",
          kind: "absence",
          due_at: T0 + 10 * MIN,
          payload: '{"ruleId":"bed-exit"}',
        },
        {
          id: "alert:al_1:escalate",
          kind: "escalate",
          due_at: T0 + MIN,
          payload: '{"alertId":"al_1","level":1}',
        },
      ]);

      timers.upsert("alert:al_1:escalate", "renotify", T0 + 3 * MIN, '{"alertId":"al_1"}', T0 + 5);
      expect(byId(timers.load())).toEqual([
        {
          id: "absence:bed-exit:dev-1",
          kind: "absence",
          due_at: T0 + 10 * MIN,
          payload: '{"ruleId":"bed-exit"}',
        },
        { id: "alert:al_1:escalate", kind: "renotify", due_at: T0 + 3 * MIN, payload: '{"alertId":"al_1"}' },
      ]);
    });

    it("removes a timer whatever its due time; removing one that is not there changes nothing", () => {
      const timers = state.timers;
      timers.upsert("a", "k", T0 + 1000, "{}", T0);
      timers.upsert("b", "k", T0 + 2000, "{}", T0);
      timers.remove("a");
      timers.remove("nothing");
      expect(timers.load().map((t) => t.id)).toEqual(["b"]);
    });

    it("removes a fired timer only while it is still due at the time it fired for", () => {
      const timers = state.timers;
      timers.upsert("tick", "k", T0 + 1000, '{"n":1}', T0);
      // Its handler moved it to later: the firing at T0 + 1000 must not delete the moved timer.
      timers.upsert("tick", "k", T0 + 2000, '{"n":2}', T0 + 1000);
      timers.removeFired("tick", T0 + 1000);
      expect(timers.load()).toEqual([{ id: "tick", kind: "k", due_at: T0 + 2000, payload: '{"n":2}' }]);

      timers.removeFired("tick", T0 + 2000);
      expect(timers.load()).toEqual([]);
    });

    it("keeps timers across a reopen, as they were last written", async () => {
      state.timers.upsert("kept", "k", T0 + 1000, '{"n":1}', T0);
      state.timers.upsert("moved", "k", T0 + 1000, "{}", T0);
      state.timers.upsert("moved", "k", T0 + 5000, '{"to":5}', T0);
      state.timers.upsert("gone", "k", T0 + 1000, "{}", T0);
      state.timers.remove("gone");
      const again = await subject.reopen();
      expect(byId(again.timers.load())).toEqual([
        { id: "kept", kind: "k", due_at: T0 + 1000, payload: '{"n":1}' },
        { id: "moved", kind: "k", due_at: T0 + 5000, payload: '{"to":5}' },
      ]);
    });

    it("is in a step only inside one; a step that throws takes its timer writes back, one that returns keeps them", () => {
      const timers = state.timers;
      timers.upsert("before", "k", T0 + 1000, "{}", T0);
      expect(timers.inStep()).toBe(false);
      expect(() =>
        state.step(() => {
          expect(timers.inStep()).toBe(true);
          timers.upsert("armed", "k", T0 + 2000, "{}", T0);
          timers.remove("before");
          throw new Error("rule failed");
        }),
      ).toThrow("rule failed");
      expect(timers.inStep()).toBe(false);
      expect(timers.load().map((t) => t.id)).toEqual(["before"]);

      state.step(() => {
        timers.upsert("armed", "k", T0 + 2000, "{}", T0);
        timers.remove("before");
      });
      expect(timers.load().map((t) => t.id)).toEqual(["armed"]);
    });
  });

  describe(`RulesCursor contract: ${name}`, () => {
    setUp();

    it("is 0 before the first set; set moves it, inside a step or on its own, and it survives a reopen", async () => {
      expect(state.cursor.position()).toBe(0);
      expect(state.cursor.available()).toBe(true);
      state.step(() => state.cursor.set(41, T0));
      expect(state.cursor.position()).toBe(41);
      // Heartbeats no rule looks at: persisted on their own, outside any step.
      state.cursor.set(57, T0 + 1000);
      expect(state.cursor.position()).toBe(57);
      const again = await subject.reopen();
      expect(again.cursor.position()).toBe(57);
    });

    it("does not keep a cursor set inside a step that throws, nor the step's alerts and timers", () => {
      state.cursor.set(10, T0);
      expect(() =>
        state.step(() => {
          state.alerts.insert(alertRow({ id: "al_1", first_event_seq: 11, last_event_seq: 11 }));
          state.timers.upsert(
            "alert:al_1:escalate",
            "escalate",
            T0 + MIN,
            '{"alertId":"al_1","level":1}',
            T0,
          );
          state.cursor.set(11, T0 + 1);
          expect(state.cursor.position()).toBe(11);
          throw new Error("disk full at COMMIT");
        }),
      ).toThrow("disk full at COMMIT");
      expect(state.cursor.position()).toBe(10);
      expect(state.alerts.alert("al_1")).toBeUndefined();
      expect(state.timers.load()).toEqual([]);

      // The same writes in a step that returns are all kept, through the alert store's step too.
      state.alerts.step(() => {
        state.alerts.insert(alertRow({ id: "al_1", first_event_seq: 11, last_event_seq: 11 }));
        state.timers.upsert("alert:al_1:escalate", "escalate", T0 + MIN, '{"alertId":"al_1","level":1}', T0);
        state.cursor.set(11, T0 + 1);
      });
      expect(state.cursor.position()).toBe(11);
      expect(state.alerts.alert("al_1")?.id).toBe("al_1");
      expect(state.timers.load().map((t) => t.id)).toEqual(["alert:al_1:escalate"]);
    });

    it("takes back a nested step's cursor when it throws and keeps the outer step's", () => {
      state.step(() => {
        state.cursor.set(3, T0);
        expect(() =>
          state.step(() => {
            state.cursor.set(7, T0 + 1);
            throw new Error("one event's rule failed");
          }),
        ).toThrow();
        expect(state.cursor.position()).toBe(3);
      });
      expect(state.cursor.position()).toBe(3);
    });
  });

  describe(`MaintenanceWindows contract: ${name}`, () => {
    setUp();

    const win = (over: Partial<NewMaintenance> = {}): NewMaintenance => ({
      siteId: "home-a",
      deviceId: "dev-1",
      roomId: null,
      startsAt: T0,
      endsAt: T0 + 60 * MIN,
      reason: "radar recalibration",
      createdBy: "Mette",
      createdAt: T0 - 5,
      ...over,
    });

    it("a device's window is in force from its start until (not at) its end, for that device and site only", async () => {
      const id = await subject.schedule.open(win());
      const m = state.maintenance;
      expect(m.inForce("home-a", "dev-1", "r12", T0 - 1)).toBeNull();
      expect(m.inForce("home-a", "dev-1", "r12", T0)).toEqual({ id, reason: "radar recalibration" });
      expect(m.inForce("home-a", "dev-1", null, T0 + 60 * MIN - 1)).toEqual({
        id,
        reason: "radar recalibration",
      });
      expect(m.inForce("home-a", "dev-1", "r12", T0 + 60 * MIN)).toBeNull();
      expect(m.inForce("home-a", "dev-2", "r12", T0 + MIN)).toBeNull();
      expect(m.inForce("home-b", "dev-1", "r12", T0 + MIN)).toBeNull();
    });

    it("a room's window covers every device in that room, and none without a room", async () => {
      const id = await subject.schedule.open(
        win({ deviceId: null, roomId: "r12", reason: "room repainted" }),
      );
      const m = state.maintenance;
      expect(m.inForce("home-a", "dev-9", "r12", T0 + MIN)).toEqual({ id, reason: "room repainted" });
      expect(m.inForce("home-a", "dev-9", "r13", T0 + MIN)).toBeNull();
      expect(m.inForce("home-a", "dev-9", null, T0 + MIN)).toBeNull();
    });

    it("of several windows in force, gives the first opened", async () => {
      const first = await subject.schedule.open(win({ deviceId: null, roomId: "r12", startsAt: T0 + MIN }));
      const second = await subject.schedule.open(win({ reason: "battery swap" }));
      expect(state.maintenance.inForce("home-a", "dev-1", "r12", T0 + 2 * MIN)).toEqual({
        id: first,
        reason: "radar recalibration",
      });
      // Before the room's window starts, only the device's is in force.
      expect(state.maintenance.inForce("home-a", "dev-1", "r12", T0)).toEqual({
        id: second,
        reason: "battery swap",
      });
    });

    it("ends a window of the caller's sites once, from then on", async () => {
      const id = await subject.schedule.open(win());
      expect(await subject.schedule.end(id, ["home-b"], T0 + 10 * MIN)).toBe(false);
      expect(await subject.schedule.end(id + 1000, ["home-a"], T0 + 10 * MIN)).toBe(false);
      expect(await subject.schedule.end(id, ["home-b", "home-a"], T0 + 10 * MIN)).toBe(true);
      expect(await subject.schedule.end(id, ["home-a"], T0 + 11 * MIN)).toBe(false);
      expect(state.maintenance.inForce("home-a", "dev-1", null, T0 + 10 * MIN - 1)?.id).toBe(id);
      expect(state.maintenance.inForce("home-a", "dev-1", null, T0 + 10 * MIN)).toBeNull();
    });

    it("lists the windows of the caller's sites not ended at a time, later ones too, by start", async () => {
      const later = await subject.schedule.open(win({ startsAt: T0 + 30 * MIN, endsAt: T0 + 90 * MIN }));
      const now = await subject.schedule.open(
        win({ deviceId: null, roomId: "r12", reason: "room repainted" }),
      );
      await subject.schedule.open(win({ endsAt: T0 + 5 * MIN, reason: "ends soon" }));
      await subject.schedule.open(win({ siteId: "home-b" }));
      const rows = await subject.schedule.current(["home-a"], T0 + 5 * MIN);
      expect(rows).toEqual([
        {
          id: now,
          site_id: "home-a",
          device_id: null,
          room_id: "r12",
          starts_at: T0,
          ends_at: T0 + 60 * MIN,
          reason: "room repainted",
          created_by: "Mette",
          created_at: T0 - 5,
        },
        {
          id: later,
          site_id: "home-a",
          device_id: "dev-1",
          room_id: null,
          starts_at: T0 + 30 * MIN,
          ends_at: T0 + 90 * MIN,
          reason: "radar recalibration",
          created_by: "Mette",
          created_at: T0 - 5,
        },
      ]);
      expect((await subject.schedule.current(["home-b"], T0)).map((r) => r.site_id)).toEqual(["home-b"]);
    });

    it("keeps windows across a reopen", async () => {
      const id = await subject.schedule.open(win());
      const again = await subject.reopen();
      expect(again.maintenance.inForce("home-a", "dev-1", null, T0 + MIN)).toEqual({
        id,
        reason: "radar recalibration",
      });
    });
  });
}
