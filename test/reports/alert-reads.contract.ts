/**
 * What the reports and the time-saved job read of alerts (src/reports/alert-reads.ts), for every
 * implementation: SQLite's (one process) and PostgreSQL's (a cluster node). Each fixture writes
 * alerts and audit where its gateway keeps them, and can log an alert's first event.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AlertRow, NewAuditEntry } from "../../src/alerts/store.js";
import { ALERT_PAGE, type AlertReads } from "../../src/reports/alert-reads.js";

export interface AlertReadsFixture {
  reads: AlertReads;
  alert(row: AlertRow): Promise<void>;
  audit(entry: NewAuditEntry): Promise<void>;
  device(id: string, profile: string, siteId: string): Promise<void>;
  /** Logs an event of the site that occurred at `at`; returns what an alert names it by (first_event_seq). */
  event(siteId: string, at: number): Promise<number>;
  cleanup(): Promise<void>;
}

const T0 = Date.parse("2026-11-02T00:00:00Z");
const MIN = 60_000;

let n = 0;
export function alertRow(over: Partial<AlertRow> & { raised_at: number }): AlertRow {
  const id = over.id ?? `alert-${String(++n).padStart(6, "0")}`;
  return {
    id,
    dedupe_key: `k-${id}`,
    open: 0,
    type: "fall.detected",
    priority: "high",
    state: "resolved",
    message_da: "Fald",
    message_en: "Fall",
    rule_id: "fall",
    site_id: "site-a",
    unit_id: "unit-1",
    room_id: "room-1",
    resident_ref: "res-1",
    device_id: "radar-1",
    count: 1,
    first_event_seq: null,
    last_event_seq: null,
    last_event_type: "fall.detected",
    updated_at: over.raised_at,
    accepted_by: null,
    accepted_by_name: null,
    accepted_at: null,
    attending_at: null,
    resolved_at: null,
    outcome: null,
    level: 0,
    undelivered: 0,
    delivered_to: "[]",
    rejected_by: "[]",
    ladder: "[]",
    ...over,
  };
}

const audit = (
  alertId: string,
  action: "accepted" | "resolved",
  actor: string,
  at: number,
): NewAuditEntry => ({
  alertId,
  at,
  action,
  actor: { id: actor, name: actor },
  reason: null,
  stateAfter: action === "accepted" ? "accepted" : "resolved",
  siteId: "site-a",
  unitId: "unit-1",
  data: null,
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function alertReadsContract(name: string, make: () => Promise<AlertReadsFixture>): void {
  describe(`alert reads contract: ${name}`, () => {
    let f: AlertReadsFixture;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.cleanup();
    });

    it("alerts are read in [from, to) of one site and its chosen units, in raise order, with every column", async () => {
      await f.alert(alertRow({ id: "before", raised_at: T0 - 1 }));
      await f.alert(alertRow({ id: "at-to", raised_at: T0 + 60 * MIN }));
      await f.alert(alertRow({ id: "other-site", raised_at: T0 + MIN, site_id: "site-b" }));
      await f.alert(
        alertRow({
          id: "late",
          raised_at: T0 + 30 * MIN,
          unit_id: "unit-2",
          room_id: null,
          state: "cancelled",
          priority: "medium",
          type: "bed.exit",
        }),
      );
      await f.alert(
        alertRow({
          id: "at-from",
          raised_at: T0,
          accepted_at: T0 + 20_000,
          attending_at: T0 + 90_000,
          resolved_at: T0 + 5 * MIN,
          outcome: "false-alarm",
        }),
      );
      await f.alert(alertRow({ id: "open", raised_at: T0 + 59 * MIN, open: 1, state: "raised" }));

      const all = await collect(
        f.reads.alerts({ siteId: "site-a", from: T0, to: T0 + 60 * MIN, units: null }),
      );
      expect(all.map((a) => a.raised_at)).toEqual([T0, T0 + 30 * MIN, T0 + 59 * MIN]);
      expect(all[0]).toEqual({
        site_id: "site-a",
        unit_id: "unit-1",
        room_id: "room-1",
        device_id: "radar-1",
        type: "fall.detected",
        priority: "high",
        state: "resolved",
        open: 0,
        outcome: "false-alarm",
        raised_at: T0,
        accepted_at: T0 + 20_000,
        attending_at: T0 + 90_000,
        resolved_at: T0 + 5 * MIN,
      });
      expect(all[1]).toMatchObject({
        unit_id: "unit-2",
        room_id: null,
        state: "cancelled",
        accepted_at: null,
      });
      expect(all[2]).toMatchObject({ open: 1, state: "raised" });

      const unit2 = await collect(
        f.reads.alerts({ siteId: "site-a", from: T0, to: T0 + 60 * MIN, units: ["unit-2", "unit-9"] }),
      );
      expect(unit2.map((a) => a.raised_at)).toEqual([T0 + 30 * MIN]);
      const siteB = await collect(
        f.reads.alerts({ siteId: "site-b", from: T0, to: T0 + 60 * MIN, units: null }),
      );
      expect(siteB.map((a) => a.raised_at)).toEqual([T0 + MIN]);
    });

    it("a range of more than a page is read whole and once, raises on a page's edge included", async () => {
      // Every raise shared by three alerts, so page edges fall between alerts of one millisecond.
      const count = ALERT_PAGE + 7;
      for (let i = 0; i < count; i++) await f.alert(alertRow({ raised_at: T0 + Math.floor(i / 3) * 1000 }));
      const all = await collect(
        f.reads.alerts({ siteId: "site-a", from: T0, to: T0 + 3600_000, units: null }),
      );
      expect(all).toHaveLength(count);
      const times = all.map((a) => a.raised_at);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(new Set(times).size).toBe(Math.ceil(count / 3));
    });

    it("asked for, an alert comes with its device's profile and its first event's time, null where there is none", async () => {
      await f.device("radar-1", "vayyar-care", "site-a");
      const seq = await f.event("site-a", T0 - 4000);
      await f.alert(alertRow({ id: "known", raised_at: T0, first_event_seq: seq }));
      await f.alert(
        alertRow({ id: "gone", raised_at: T0 + 1, device_id: "radar-gone", first_event_seq: null }),
      );
      const range = { siteId: "site-a", from: T0, to: T0 + MIN, units: null };
      const [known, gone] = await collect(f.reads.alerts(range, { profile: true, firstEventAt: true }));
      expect(known).toMatchObject({ profile: "vayyar-care", first_event_at: T0 - 4000 });
      expect(gone).toMatchObject({ profile: null, first_event_at: null });
      const [plain] = await collect(f.reads.alerts(range));
      expect(plain).not.toHaveProperty("profile");
      expect(plain).not.toHaveProperty("first_event_at");
    });

    it("volume counts per unit, type, priority and bucket of the raise, inside the range and units", async () => {
      const Q = 15 * MIN;
      await f.alert(alertRow({ raised_at: T0 }));
      await f.alert(alertRow({ raised_at: T0 + Q - 1 }));
      await f.alert(alertRow({ raised_at: T0 + Q }));
      await f.alert(alertRow({ raised_at: T0 + Q, priority: "medium" }));
      await f.alert(alertRow({ raised_at: T0 + Q, unit_id: "unit-2", type: "call.manual" }));
      await f.alert(alertRow({ raised_at: T0 + 4 * Q }));
      await f.alert(alertRow({ raised_at: T0 - 1 }));
      await f.alert(alertRow({ raised_at: T0, site_id: "site-b" }));
      const sorted = (rows: { unit_id: string; type: string; priority: string; q: number; n: number }[]) =>
        [...rows].sort(
          (a, b) => a.q - b.q || a.unit_id.localeCompare(b.unit_id) || a.priority.localeCompare(b.priority),
        );
      const q0 = T0 / Q;
      expect(
        sorted(await f.reads.volume({ siteId: "site-a", from: T0, to: T0 + 4 * Q, units: null }, Q)),
      ).toEqual([
        { unit_id: "unit-1", type: "fall.detected", priority: "high", q: q0, n: 2 },
        { unit_id: "unit-1", type: "fall.detected", priority: "high", q: q0 + 1, n: 1 },
        { unit_id: "unit-1", type: "fall.detected", priority: "medium", q: q0 + 1, n: 1 },
        { unit_id: "unit-2", type: "call.manual", priority: "high", q: q0 + 1, n: 1 },
      ]);
      expect(
        await f.reads.volume({ siteId: "site-a", from: T0, to: T0 + 4 * Q, units: ["unit-2"] }, Q),
      ).toEqual([{ unit_id: "unit-2", type: "call.manual", priority: "high", q: q0 + 1, n: 1 }]);
    });

    it("care raise times are the high and medium alerts of the range and units, ascending", async () => {
      await f.alert(alertRow({ raised_at: T0 + 3000, priority: "medium" }));
      await f.alert(alertRow({ raised_at: T0 + 1000 }));
      await f.alert(alertRow({ raised_at: T0 + 2000, priority: "low" }));
      await f.alert(alertRow({ raised_at: T0 + 2500, priority: "info" }));
      await f.alert(alertRow({ raised_at: T0 + 4000, unit_id: "unit-2" }));
      await f.alert(alertRow({ raised_at: T0 + 5000 }));
      await f.alert(alertRow({ raised_at: T0, site_id: "site-b" }));
      expect(await f.reads.careRaisedAt({ siteId: "site-a", from: T0, to: T0 + 5000, units: null })).toEqual([
        T0 + 1000,
        T0 + 3000,
        T0 + 4000,
      ]);
      expect(
        await f.reads.careRaisedAt({ siteId: "site-a", from: T0 + 1001, to: T0 + 9000, units: ["unit-1"] }),
      ).toEqual([T0 + 3000, T0 + 5000]);
    });

    it("a day's alerts name who resolved each one last, and nobody for an alert without a resolve", async () => {
      await f.alert(
        alertRow({ id: "twice", raised_at: T0 + 2000, resident_ref: null, outcome: "no-action" }),
      );
      await f.alert(alertRow({ id: "accepted-only", raised_at: T0 + 1000, state: "accepted" }));
      await f.alert(alertRow({ id: "no-audit", raised_at: T0 + 3000, unit_id: "unit-2" }));
      await f.alert(alertRow({ id: "outside", raised_at: T0 + 9000 }));
      await f.alert(alertRow({ id: "other-site", raised_at: T0 + 2000, site_id: "site-b" }));
      await f.audit(audit("twice", "accepted", "nurse-a", T0 + 2100));
      await f.audit(audit("twice", "resolved", "nurse-a", T0 + 2200));
      await f.audit(audit("twice", "resolved", "nurse-b", T0 + 2300));
      await f.audit(audit("accepted-only", "accepted", "nurse-c", T0 + 1100));
      await f.audit(audit("outside", "resolved", "nurse-d", T0 + 9100));
      const day = await f.reads.dayAlerts("site-a", T0, T0 + 9000);
      expect(day.map((a) => [a.id, a.resolved_by])).toEqual([
        ["accepted-only", null],
        ["twice", "nurse-b"],
        ["no-audit", null],
      ]);
      expect(day[1]).toEqual({
        id: "twice",
        type: "fall.detected",
        priority: "high",
        state: "resolved",
        unit_id: "unit-1",
        room_id: "room-1",
        resident_ref: null,
        raised_at: T0 + 2000,
        accepted_at: null,
        attending_at: null,
        resolved_at: null,
        outcome: "no-action",
        resolved_by: "nurse-b",
      });
    });

    it("a site's first raise is its earliest alert's, and none for a site without alerts", async () => {
      await f.alert(alertRow({ raised_at: T0 + 5000 }));
      await f.alert(alertRow({ raised_at: T0 + 1000 }));
      await f.alert(alertRow({ raised_at: T0 - 7000, site_id: "site-b" }));
      expect(await f.reads.firstRaisedAt("site-a")).toBe(T0 + 1000);
      expect(await f.reads.firstRaisedAt("site-c")).toBeUndefined();
    });
  });
}
