/**
 * The hand-computed week: unit "a" of site "solbakken" (Europe/Copenhagen), Monday 19 to Sunday
 * 25 October 2026. Clocks go back on Sunday 25 October at 03:00 CEST -> 02:00 CET, so the night
 * that starts on Saturday 24 October (22:00 CEST) ends at 07:00 CET: 10 hours, not 9.
 *
 * Times are written in local time with their offset (+02:00 CEST until the change, +01:00 after).
 * Site overrides make each category's minutes distinct: 4 min per night check, 3 min per avoided
 * visit, 7 min per attended false alarm; the lift saving is the derived (2 x 273.6 - 156.9) / 60 =
 * 6.505 min. Baseline checks 2.5 per resident per night; visits within 15 minutes merge.
 *
 * Residents: R1 in a-1 (radar-1), R2 in a-2 (radar-2), R3 in a-3 (a pendant only: never eligible
 * for night supervision). Unit "b" has nothing and must come out as zeros.
 */
import type { Db } from "../../src/store/db.js";
import { addAlert, addDevice, addEvent, addResident, ms } from "./fixtures.js";

export const SITE = {
  id: "solbakken",
  timeZone: "Europe/Copenhagen",
  units: [
    { id: "a", rooms: ["a-1", "a-2", "a-3"] },
    { id: "b", rooms: ["b-1"] },
  ],
};
export const OVERRIDES = {
  solbakken: { minutesPerNightCheck: 4, minutesPerFalseAlarm: 7, minutesPerAvoidedVisit: 3 },
};
export const WEEK = { from: "2026-10-19", to: "2026-10-26" };
/** After the week's last night has ended (26 Oct 07:00 CET). */
export const AFTER_WEEK = ms("2026-10-26T12:00:00+01:00");

/** Per date, unit "a": [minutes, count] per category, worked out by hand (see the comments). */
export const EXPECTED: Record<
  string,
  {
    night: [number, number];
    lift: [number, number];
    remote: [number, number];
    falseAlarms: [number, number];
    net: number;
  }
> = {
  // Night: R1 no visits -> 2.5 checks; R2 A3 resolved remotely, no visit -> 2.5. (2.5 + 2.5) x 4 = 20.
  // Lifts: three one-helper cycles: 3 x 6.505 = 19.515. Remote: A3 (bed exit, staff, no visit) = 3.
  // Net 20 + 19.515 + 3 = 42.515.
  "2026-10-19": { night: [20, 2], lift: [19.515, 3], remote: [3, 1], falseAlarms: [0, 0], net: 42.515 },
  // Night: R1's radar was offline 02:00-02:30 (in the night) -> not counted. R2: A4 was closed by a
  // rule (bed return), no visit -> 2.5 x 4 = 10. Lifts: one two-helper, one one-helper with a fault ->
  // 0. False alarm A10 attended in the afternoon: -7. Net 10 - 7 = 3.
  "2026-10-20": { night: [10, 1], lift: [0, 0], remote: [0, 0], falseAlarms: [-7, 1], net: 3 },
  // Night: R1 presses at 23:10 and 23:20 merge into one visit, 03:00 is a second -> 2.5 - 2 = 0.5.
  // R2: A5 accepted at 01:01, then cancelled by the sensor: counted as a visit -> 1.5. (0.5 + 1.5) x 4
  // = 8. Remote: A7, R3's pendant call resolved as a false alarm by staff without a visit -> 3.
  // Net 8 + 3 = 11.
  "2026-10-21": { night: [8, 2], lift: [0, 0], remote: [3, 1], falseAlarms: [0, 0], net: 11 },
  // Night: R1: A1 attended 23:35 (the button press at 23:35 is the same visit), 05:00, 06:00 -> 3
  // visits, floored: max(0, 2.5 - 3) = 0. R2: 00:10 and 00:40 are 30 min apart -> 2 visits -> 0.5.
  // 0.5 x 4 = 2. A8 (device offline, low priority) resolved by staff: technical, not counted.
  "2026-10-22": { night: [2, 2], lift: [0, 0], remote: [0, 0], falseAlarms: [0, 0], net: 2 },
  // Night: R1's radar was offline from 21:00 to 22:30: offline when the night began -> not counted.
  // R2: the press at 21:59 is before 22:00 -> 0 visits -> 2.5 x 4 = 10. A9 (R3, resolved no-action)
  // had a button press in a-3 while open: a visit, so not remote. Net 10.
  "2026-10-23": { night: [10, 1], lift: [0, 0], remote: [0, 0], falseAlarms: [0, 0], net: 10 },
  // The 10-hour night 24 Oct 22:00 CEST -> 25 Oct 07:00 CET. R1: 21:50 is before the night; 06:40
  // CET is inside it (it would be after 07:00 CEST) -> 1 visit -> 1.5 x 4 = 6. R2: radar offline 06:30-
  // 06:45 CET, inside the night (but after 07:00 CEST) -> not counted. Lift at 23:59 -> 6.505.
  // Net 6 + 6.505 = 12.505.
  "2026-10-24": { night: [6, 1], lift: [6.505, 1], remote: [0, 0], falseAlarms: [0, 0], net: 12.505 },
  // Night: R1: A2 is a false alarm attended at 23:05 (button press): costed below, not a night visit
  // -> 2.5. R2: A6 fall attended 03:03 on the 26th -> 1 visit -> 1.5. (2.5 + 1.5) x 4 = 16. Lift at
  // 10:00 CET -> 6.505. False alarm A2: -7. Net 16 + 6.505 - 7 = 15.505.
  "2026-10-25": { night: [16, 2], lift: [6.505, 1], remote: [0, 0], falseAlarms: [-7, 1], net: 15.505 },
};
// Week: night 72 (18 checks x 4), lifts 32.525 (5 x 6.505), remote 6, false alarms -14; net 96.525.
export const WEEK_TOTAL = { night: 72, lift: 32.525, remote: 6, falseAlarms: -14, net: 96.525 };

export function buildScenario(db: Db): void {
  const site = SITE.id;
  addResident(db, "R1", site, "a", "a-1");
  addResident(db, "R2", site, "a", "a-2");
  addResident(db, "R3", site, "a", "a-3");
  const device = (id: string, profile: string, room: string, resident: string | null = null) =>
    addDevice(db, { id, profile, site, unit: "a", room, resident, createdAt: ms("2026-10-01T00:00:00Z") });
  device("radar-1", "acme/radar", "a-1", "R1");
  device("radar-2", "acme/radar", "a-2", "R2");
  device("button-a-1", "acme/button", "a-1");
  device("button-a-2", "acme/button", "a-2");
  device("button-a-3", "acme/button", "a-3");
  device("lift-1", "acme/lift", "a-1");
  device("pendant-3", "acme/pendant", "a-3", "R3");

  const ev = (
    dev: string,
    type: string,
    at: string,
    room: string,
    extra: Partial<Parameters<typeof addEvent>[1]> = {},
  ) => addEvent(db, { device: dev, type, at: ms(at), site, unit: "a", room, ...extra });

  // Presence of the radars.
  ev("radar-1", "device.online", "2026-10-18T12:00:00+02:00", "a-1", { resident: "R1" });
  ev("radar-1", "device.offline", "2026-10-21T02:00:00+02:00", "a-1", { resident: "R1" });
  ev("radar-1", "device.online", "2026-10-21T02:30:00+02:00", "a-1", { resident: "R1" });
  ev("radar-1", "device.offline", "2026-10-23T21:00:00+02:00", "a-1", { resident: "R1" });
  ev("radar-1", "device.online", "2026-10-23T22:30:00+02:00", "a-1", { resident: "R1" });
  ev("radar-2", "device.online", "2026-10-18T12:00:00+02:00", "a-2", { resident: "R2" });
  ev("radar-2", "device.offline", "2026-10-22T12:00:00+02:00", "a-2", { resident: "R2" });
  ev("radar-2", "device.online", "2026-10-22T13:00:00+02:00", "a-2", { resident: "R2" });
  ev("radar-2", "device.offline", "2026-10-25T06:30:00+01:00", "a-2", { resident: "R2" });
  ev("radar-2", "device.online", "2026-10-25T06:45:00+01:00", "a-2", { resident: "R2" });
  // Heartbeats are noise the computation must ignore.
  for (let h = 0; h < 7 * 24; h++) {
    const at = ms("2026-10-19T00:00:00+02:00") + h * 3_600_000;
    addEvent(db, {
      device: "radar-1",
      type: "device.heartbeat",
      at,
      site,
      unit: "a",
      room: "a-1",
      resident: "R1",
    });
  }

  // Staff presence buttons.
  const press = (room: string, at: string) =>
    ev(`button-${room}`, "staff.presence", at, room, {
      profile: "acme/button",
      data: { staffRef: "nurse-1" },
    });
  press("a-1", "2026-10-20T23:00:00+02:00"); // night 20: R1 not counted anyway
  press("a-1", "2026-10-21T23:10:00+02:00");
  press("a-1", "2026-10-21T23:20:00+02:00");
  press("a-1", "2026-10-22T03:00:00+02:00");
  press("a-1", "2026-10-22T23:35:00+02:00");
  press("a-1", "2026-10-23T05:00:00+02:00");
  press("a-1", "2026-10-23T06:00:00+02:00");
  press("a-1", "2026-10-24T21:50:00+02:00");
  press("a-1", "2026-10-25T06:40:00+01:00");
  press("a-1", "2026-10-25T23:05:00+01:00");
  press("a-2", "2026-10-23T00:10:00+02:00");
  press("a-2", "2026-10-23T00:40:00+02:00");
  press("a-2", "2026-10-23T21:59:00+02:00");
  press("a-2", "2026-10-25T01:00:00+02:00"); // night 24: R2 not counted anyway
  press("a-3", "2026-10-23T10:03:00+02:00");

  // Lift cycles.
  const lift = (at: string, helpers: number, fault?: string) =>
    ev("lift-1", "lift.cycle", at, "a-1", {
      profile: "acme/lift",
      data: { startedAt: at, endedAt: at, helpers, transfer: "bed-chair", ...(fault ? { fault } : {}) },
    });
  lift("2026-10-19T08:00:00+02:00", 1);
  lift("2026-10-19T09:00:00+02:00", 1);
  lift("2026-10-19T10:00:00+02:00", 1);
  lift("2026-10-20T08:00:00+02:00", 2);
  lift("2026-10-20T09:00:00+02:00", 1, "overload");
  lift("2026-10-24T23:59:00+02:00", 1);
  lift("2026-10-25T10:00:00+01:00", 1);
  lift("2026-10-26T00:30:00+01:00", 1); // Monday 26th: outside the week

  // Alerts.
  const r1 = { site, unit: "a", room: "a-1", resident: "R1", device: "radar-1" };
  const r2 = { site, unit: "a", room: "a-2", resident: "R2", device: "radar-2" };
  const r3 = { site, unit: "a", room: "a-3", resident: "R3", device: "pendant-3" };
  addAlert(db, {
    id: "A1",
    type: "fall",
    priority: "high",
    ...r1,
    raisedAt: ms("2026-10-22T23:30:00+02:00"),
    acceptedAt: ms("2026-10-22T23:31:00+02:00"),
    attendingAt: ms("2026-10-22T23:35:00+02:00"),
    attendingBy: "button",
    resolvedAt: ms("2026-10-22T23:50:00+02:00"),
    outcome: "assistance-given",
  });
  addAlert(db, {
    id: "A2",
    type: "fall",
    priority: "medium",
    ...r1,
    raisedAt: ms("2026-10-25T23:00:00+01:00"),
    acceptedAt: ms("2026-10-25T23:01:00+01:00"),
    attendingAt: ms("2026-10-25T23:05:00+01:00"),
    attendingBy: "button",
    resolvedAt: ms("2026-10-25T23:10:00+01:00"),
    outcome: "false-alarm",
  });
  addAlert(db, {
    id: "A3",
    type: "bed-exit",
    priority: "medium",
    ...r2,
    raisedAt: ms("2026-10-19T23:00:00+02:00"),
    acceptedAt: ms("2026-10-19T23:01:00+02:00"),
    resolvedAt: ms("2026-10-19T23:03:00+02:00"),
    outcome: "no-action",
  });
  addAlert(db, {
    id: "A4",
    type: "bed-exit",
    priority: "medium",
    ...r2,
    raisedAt: ms("2026-10-20T23:30:00+02:00"),
    resolvedAt: ms("2026-10-20T23:32:00+02:00"),
    outcome: "no-action",
    resolvedBy: "rule",
  });
  addAlert(db, {
    id: "A5",
    type: "fall",
    priority: "high",
    ...r2,
    raisedAt: ms("2026-10-22T01:00:00+02:00"),
    acceptedAt: ms("2026-10-22T01:01:00+02:00"),
    cancelledAt: ms("2026-10-22T01:02:00+02:00"),
  });
  addAlert(db, {
    id: "A6",
    type: "fall",
    priority: "high",
    ...r2,
    raisedAt: ms("2026-10-26T03:00:00+01:00"),
    acceptedAt: ms("2026-10-26T03:01:00+01:00"),
    attendingAt: ms("2026-10-26T03:03:00+01:00"),
    resolvedAt: ms("2026-10-26T03:30:00+01:00"),
    outcome: "fall-without-injury",
  });
  addAlert(db, {
    id: "A7",
    type: "call",
    priority: "high",
    ...r3,
    raisedAt: ms("2026-10-21T14:00:00+02:00"),
    acceptedAt: ms("2026-10-21T14:01:00+02:00"),
    resolvedAt: ms("2026-10-21T14:02:00+02:00"),
    outcome: "false-alarm",
  });
  addAlert(db, {
    id: "A8",
    type: "device-offline",
    priority: "low",
    ...r3,
    raisedAt: ms("2026-10-22T09:00:00+02:00"),
    acceptedAt: ms("2026-10-22T09:01:00+02:00"),
    resolvedAt: ms("2026-10-22T09:05:00+02:00"),
    outcome: "no-action",
  });
  addAlert(db, {
    id: "A9",
    type: "call",
    priority: "high",
    ...r3,
    raisedAt: ms("2026-10-23T10:00:00+02:00"),
    acceptedAt: ms("2026-10-23T10:01:00+02:00"),
    resolvedAt: ms("2026-10-23T10:06:00+02:00"),
    outcome: "no-action",
  });
  addAlert(db, {
    id: "A10",
    type: "call",
    priority: "high",
    ...r3,
    raisedAt: ms("2026-10-20T15:00:00+02:00"),
    acceptedAt: ms("2026-10-20T15:01:00+02:00"),
    attendingAt: ms("2026-10-20T15:04:00+02:00"),
    resolvedAt: ms("2026-10-20T15:06:00+02:00"),
    outcome: "false-alarm",
  });
}
