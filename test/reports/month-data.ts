/**
 * A month of deterministic data for 200 devices, shaped so that every report total can be worked
 * out by hand (month.test.ts does, in comments). Site "big" (Europe/Copenhagen), October 2026 (it
 * contains the change back to CET on the 25th), ten units u0..u9, each with:
 *
 *   residents r1..r10 in rooms <unit>-r1..r10
 *   8 radars (fall sensors) in rooms r1..r8; the r8 radar drops out 23:30-00:30 UTC every night
 *   8 presence buttons in rooms r1..r8; r1-r3 are pressed once a night at 00:30 UTC
 *   2 ceiling lifts: 6 cycles a day each (4 one-helper, 1 two-helper, 1 one-helper with a fault)
 *   2 pendants in rooms r9 and r10 (no radar there): a call a day resolved remotely at 08:00 UTC
 *     and a call a day attended at 14:00 UTC
 *   the r1 radar: a fall alarm at 12:00 UTC every day, attended, a false alarm
 *
 * Response delays vary by day of month D: d = 10 s x (1 + D mod 10).
 * UTC times are chosen to fall inside the night (22:00-07:00 local) or the day whatever the offset.
 */
import type { Db } from "../../src/store/db.js";
import {
  type AlertInput,
  addDevice,
  addResident,
  prepareAlertInsert,
  prepareEventInsert,
} from "./fixtures.js";

export const BIG = {
  id: "big",
  timeZone: "Europe/Copenhagen",
  units: Array.from({ length: 10 }, (_, u) => ({
    id: `u${u}`,
    rooms: Array.from({ length: 10 }, (_, r) => `u${u}-r${r + 1}`),
  })),
};
export const MONTH = { from: "2026-10-01", to: "2026-11-01" };
/** Local midnights of the month. */
export const MONTH_FROM_MS = Date.parse("2026-10-01T00:00:00+02:00");
export const MONTH_TO_MS = Date.parse("2026-11-01T00:00:00+01:00");
export const AFTER_MONTH = Date.parse("2026-11-02T12:00:00+01:00");
export const BIG_PROFILES = new Map([
  ["acme/radar", { kind: "fall-sensor" }],
  ["acme/button", { kind: "presence-button" }],
  ["acme/lift", { kind: "ceiling-lift" }],
  ["acme/pendant", { kind: "pendant" }],
]);

const utc = (day: number, hh: number, mm = 0) => Date.UTC(2026, 9, day, hh, mm);

export interface MonthOptions {
  /** Heartbeat interval per device in minutes; 0 for none. Default 60. */
  heartbeatMinutes?: number;
}

/** Fills the database; returns the number of event rows written. */
export function buildMonth(db: Db, options: MonthOptions = {}): number {
  const heartbeat = options.heartbeatMinutes ?? 60;
  const site = BIG.id;
  const event = prepareEventInsert(db);
  const alert = prepareAlertInsert(db);
  let events = 0;
  const ev = (e: Parameters<typeof event>[0]) => {
    event(e);
    events++;
  };
  const created = Date.UTC(2026, 8, 1);
  db.transaction(() => {
    for (const unit of BIG.units) {
      const u = unit.id;
      const room = (r: number) => `${u}-r${r}`;
      const devices: { id: string; profile: string; room: string; resident: string | null }[] = [];
      for (let r = 1; r <= 10; r++) addResident(db, `${u}-R${r}`, site, u, room(r));
      for (let r = 1; r <= 8; r++) {
        devices.push({ id: `${u}-radar-${r}`, profile: "acme/radar", room: room(r), resident: `${u}-R${r}` });
        devices.push({ id: `${u}-button-${r}`, profile: "acme/button", room: room(r), resident: null });
      }
      devices.push({ id: `${u}-lift-1`, profile: "acme/lift", room: room(1), resident: null });
      devices.push({ id: `${u}-lift-2`, profile: "acme/lift", room: room(2), resident: null });
      devices.push({ id: `${u}-pendant-9`, profile: "acme/pendant", room: room(9), resident: `${u}-R9` });
      devices.push({ id: `${u}-pendant-10`, profile: "acme/pendant", room: room(10), resident: `${u}-R10` });
      for (const d of devices) {
        addDevice(db, { ...d, site, unit: u, createdAt: created });
        const base = { device: d.id, site, unit: u, room: d.room, resident: d.resident, profile: d.profile };
        ev({ ...base, type: "device.online", at: Date.UTC(2026, 8, 30, 12) });
        if (heartbeat > 0) {
          for (
            let t = Date.UTC(2026, 9, 1) - 2 * 3_600_000;
            t < Date.UTC(2026, 10, 1, 6);
            t += heartbeat * 60_000
          ) {
            ev({ ...base, type: "device.heartbeat", at: t, data: { battery: 90 } });
          }
        }
      }
      // The r8 radar: offline 23:30-00:30 UTC from 30 September to 31 October.
      for (let day = 0; day <= 31; day++) {
        const base = { device: `${u}-radar-8`, site, unit: u, room: room(8), resident: `${u}-R8` };
        ev({ ...base, type: "device.offline", at: utc(day, 23, 30) });
        ev({ ...base, type: "device.online", at: utc(day + 1, 0, 30) });
      }
      // Presses in r1-r3 at 00:30 UTC on 2 Oct .. 1 Nov: one visit in each night of October.
      for (let day = 2; day <= 32; day++) {
        for (let r = 1; r <= 3; r++) {
          ev({
            device: `${u}-button-${r}`,
            type: "staff.presence",
            at: utc(day, 0, 30),
            site,
            unit: u,
            room: room(r),
            profile: "acme/button",
            data: { staffRef: "n1" },
          });
        }
      }
      for (let day = 1; day <= 31; day++) {
        // Lifts: 07:00-12:00 UTC, the same local date whatever the offset.
        for (const lift of [1, 2]) {
          const helpers = [1, 1, 1, 1, 2, 1];
          helpers.forEach((h, i) => {
            const at = utc(day, 7 + i);
            const iso = new Date(at).toISOString();
            ev({
              device: `${u}-lift-${lift}`,
              type: "lift.cycle",
              at,
              site,
              unit: u,
              room: room(lift),
              profile: "acme/lift",
              data: { startedAt: iso, endedAt: iso, helpers: h, ...(i === 5 ? { fault: "overload" } : {}) },
            });
          });
        }
        const d = 10_000 * (1 + (day % 10));
        for (const p of [9, 10]) {
          const who = { site, unit: u, room: room(p), resident: `${u}-R${p}`, device: `${u}-pendant-${p}` };
          const remote: AlertInput = {
            id: `${u}-call-remote-${p}-${day}`,
            type: "call",
            priority: "high",
            ...who,
            raisedAt: utc(day, 8),
            acceptedAt: utc(day, 8) + 30_000,
            resolvedAt: utc(day, 8) + 60_000,
            outcome: "no-action",
          };
          alert(remote);
          const raised = utc(day, 14);
          alert({
            id: `${u}-call-visit-${p}-${day}`,
            type: "call",
            priority: "high",
            ...who,
            raisedAt: raised,
            acceptedAt: raised + d,
            attendingAt: raised + d + 60_000,
            resolvedAt: raised + d + 300_000,
            outcome: "assistance-given",
          });
        }
        const raised = utc(day, 12);
        alert({
          id: `${u}-fall-fa-${day}`,
          type: "fall",
          priority: "medium",
          site,
          unit: u,
          room: room(1),
          resident: `${u}-R1`,
          device: `${u}-radar-1`,
          raisedAt: raised,
          acceptedAt: raised + d,
          attendingAt: raised + d + 60_000,
          resolvedAt: raised + d + 300_000,
          outcome: "false-alarm",
        });
      }
    }
  })();
  return events;
}
