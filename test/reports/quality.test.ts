/**
 * The quality report over real HTTP on a real SQLite database, on a hand-computed month: site
 * "solbakken" (Europe/Copenhagen), Monday 5 October to Monday 2 November 2026 (28 local days; the
 * clocks go back on 25 October). Unit "a" has 12 residents and a ceiling lift, unit "b" one resident.
 *
 * Bed-days = resident-nights = 13 x 28 = 364 (unit "b" alone: 28, too little for any rate).
 * Falls (resolved with a fall outcome, any alert type): F1-F6 in "a", Fb in "b" = 7; with injury F2,
 * F6 = 2. Not falls: false alarms, a cancelled fall alert, assistance given, a fall before the range.
 * Floor time (detection -> attended): F1 120, F2 300, F3 130 (attended 100 s after the raise, its
 * event seen 30 s before it), F4 600, F5 180, Fb 45; F6 never attended. Sorted 45 120 130 180 300
 * 600: nearest-rank median is the 3rd = 130 s (from the raise it would be 120); n = 6 < 10, no p90.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Router } from "../../src/http/router.js";
import { HttpServer } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { QUALITY_MINIMUMS } from "../../src/reports/quality.js";
import { reportRoutes } from "../../src/reports/routes.js";
import { SecurityLog } from "../../src/security/log.js";
import { StaffAuth } from "../../src/security/staff-auth.js";
import { TokenStore } from "../../src/staff/tokens.js";
import { EmbeddedSeriesStore } from "../../src/store/embedded-series.js";
import {
  type AlertInput,
  addAlert,
  addDevice,
  addEvent,
  addResident,
  ms,
  PROFILES,
  shippedModel,
  tempDb,
} from "./fixtures.js";

const ADMIN = "admin-token-0123456789abcdef";
const CARER = "carer-solbakken-0123456789";
const SITE = {
  id: "solbakken",
  timeZone: "Europe/Copenhagen",
  units: [
    { id: "a", rooms: ["a-1"] },
    { id: "b", rooms: ["b-1"] },
  ],
};
const MONTH = "from=2026-10-05&to=2026-11-02";
const S = 1000;

function build(db: Parameters<typeof addAlert>[0]): void {
  const site = SITE.id;
  for (let i = 1; i <= 12; i++) addResident(db, `R${i}`, site, "a", "a-1");
  addResident(db, "B1", site, "b", "b-1");
  addDevice(db, { id: "radar-1", profile: "acme/radar", site, unit: "a", room: "a-1", resident: "R1" });
  addDevice(db, { id: "radar-b", profile: "acme/radar", site, unit: "b", room: "b-1", resident: "B1" });
  addDevice(db, { id: "lift-1", profile: "acme/lift", site, unit: "a", room: "a-1" });

  const at = (iso: string) => ms(iso);
  /** An alert in unit "a" raised at `raised`, accepted `accept` s and attended `attend` s later. */
  const alert = (
    id: string,
    raised: string,
    o: {
      type?: string;
      priority?: AlertInput["priority"];
      accept?: number;
      attend?: number;
      unit?: string;
    } & Pick<AlertInput, "outcome"> & { cancel?: boolean; open?: boolean },
  ) => {
    const r = at(raised);
    const unit = o.unit ?? "a";
    addAlert(db, {
      id,
      type: o.type ?? "call",
      priority: o.priority ?? "high",
      site,
      unit,
      room: `${unit}-1`,
      resident: unit === "a" ? "R1" : "B1",
      device: unit === "a" ? "radar-1" : "radar-b",
      raisedAt: r,
      ...(o.accept !== undefined ? { acceptedAt: r + o.accept * S } : {}),
      ...(o.attend !== undefined ? { attendingAt: r + o.attend * S } : {}),
      ...(o.cancel ? { cancelledAt: r + 120 * S } : o.open ? {} : { resolvedAt: r + 900 * S }),
      ...(o.outcome ? { outcome: o.outcome } : {}),
    });
  };
  const fall = "fall";
  // Before the range: not counted.
  alert("F0", "2026-10-04T23:00:00+02:00", {
    type: fall,
    accept: 5,
    attend: 10,
    outcome: "fall-with-injury",
  });
  // Week of 5 October: accepts 10 20 30 40 50 -> median 30 s.
  alert("F1", "2026-10-05T10:00:00+02:00", {
    type: fall,
    accept: 10,
    attend: 120,
    outcome: "fall-without-injury",
  });
  alert("F2", "2026-10-06T03:00:00+02:00", {
    type: fall,
    accept: 20,
    attend: 300,
    outcome: "fall-with-injury",
  });
  alert("FA1", "2026-10-07T22:00:00+02:00", { accept: 30, outcome: "false-alarm" });
  alert("FA2", "2026-10-08T01:00:00+02:00", {
    type: fall,
    priority: "medium",
    accept: 40,
    attend: 100,
    outcome: "false-alarm",
  });
  // A technical false alarm: counted in the accept trend, not as a care false alarm.
  alert("X1", "2026-10-09T09:00:00+02:00", {
    type: "device-offline",
    priority: "low",
    accept: 50,
    outcome: "false-alarm",
  });
  // Week of 12 October: accepts 60 10 20 30 40 50 -> sorted, 3rd of 6 = 30 s.
  alert("F3", "2026-10-12T08:00:00+02:00", {
    type: fall,
    accept: 60,
    attend: 100,
    outcome: "fall-without-injury",
  });
  alert("F4", "2026-10-13T08:00:00+02:00", {
    type: fall,
    accept: 10,
    attend: 600,
    outcome: "fall-without-injury",
  });
  alert("F5", "2026-10-14T08:00:00+02:00", {
    type: "bed-exit",
    priority: "medium",
    accept: 20,
    attend: 180,
    outcome: "fall-without-injury",
  });
  alert("C1", "2026-10-15T08:00:00+02:00", { type: fall, accept: 30, cancel: true });
  alert("A1", "2026-10-16T08:00:00+02:00", { accept: 40, outcome: "assistance-given" });
  alert("A2", "2026-10-17T08:00:00+02:00", { accept: 50, outcome: "no-action" });
  // Unit b's fall, attended by the button without an accept.
  alert("Fb", "2026-10-16T04:00:00+02:00", {
    type: fall,
    unit: "b",
    attend: 45,
    outcome: "fall-without-injury",
  });
  // Week of 19 October (the clocks go back on the 25th): 4 accepts -> too little for a median.
  alert("F6", "2026-10-20T02:00:00+02:00", { type: fall, accept: 15, outcome: "fall-with-injury" });
  alert("FA3", "2026-10-21T22:00:00+02:00", { accept: 25, outcome: "false-alarm" });
  alert("A3", "2026-10-22T08:00:00+02:00", { accept: 35, outcome: "no-action" });
  alert("A4", "2026-10-25T23:30:00+01:00", { accept: 45, outcome: "no-action" });
  alert("O1", "2026-10-23T08:00:00+02:00", { open: true });
  // Week of 26 October: five accepts of 100 s -> 100 s.
  alert("FA4", "2026-10-26T21:00:00+01:00", { accept: 100, outcome: "false-alarm" });
  for (const [i, d] of ["27", "28", "29", "30"].entries())
    alert(`W${i}`, `2026-10-${d}T08:00:00+01:00`, { accept: 100, outcome: "no-action" });
  // After the range: not counted.
  alert("L1", "2026-11-02T00:30:00+01:00", { type: fall, accept: 1, attend: 2, outcome: "fall-with-injury" });

  // F3's sensor saw the fall 30 s before the raise: detection is the event, floor time 100 + 30 = 130 s.
  addEvent(db, {
    device: "radar-1",
    type: "fall.detected",
    at: at("2026-10-12T08:00:00+02:00") - 30 * S,
    site,
    unit: "a",
    room: "a-1",
    resident: "R1",
  });
  db.prepare("UPDATE alerts SET first_event_seq = (SELECT MAX(seq) FROM events) WHERE id = 'F3'").run();

  // Lift cycles: 18 with one helper, 5 with two, 1 fault in the range; one after it.
  const cycle = (iso: string, helpers: number, fault?: string) =>
    addEvent(db, {
      device: "lift-1",
      type: "lift.cycle",
      at: at(iso),
      site,
      unit: "a",
      room: "a-1",
      profile: "acme/lift",
      data: { startedAt: iso, endedAt: iso, helpers, transfer: "bed-chair", ...(fault ? { fault } : {}) },
    });
  for (let d = 0; d < 18; d++) cycle(`2026-10-${String(5 + d).padStart(2, "0")}T09:00:00+02:00`, 1);
  for (let d = 0; d < 5; d++) cycle(`2026-10-${String(5 + d).padStart(2, "0")}T15:00:00+02:00`, 2);
  cycle("2026-10-10T15:00:00+02:00", 1, "overload");
  cycle("2026-11-02T09:00:00+01:00", 1);
}

describe("quality report", () => {
  let t: ReturnType<typeof tempDb>;
  let store: EmbeddedSeriesStore;
  let http: HttpServer;
  let base: string;

  beforeAll(async () => {
    t = tempDb();
    build(t.db);
    const tokens = new TokenStore(t.db);
    tokens.create({ name: "Bo", role: "staff", sites: ["solbakken"], token: CARER });
    store = new EmbeddedSeriesStore({ path: ":memory:" });
    await store.start();
    const sites = [SITE];
    const auth = new StaffAuth({
      tokens,
      adminToken: ADMIN,
      allSites: () => sites.map((s) => s.id),
      security: new SecurityLog(t.db, silentLogger()),
      options: { maxFailures: 20, windowSec: 60 },
    });
    const router = new Router(silentLogger(), null, auth);
    reportRoutes(router, {
      db: t.db,
      store,
      model: shippedModel(),
      sites,
      profiles: PROFILES,
      now: () => ms("2026-11-03T12:00:00+01:00"),
    });
    http = new HttpServer(router, silentLogger(), { host: "127.0.0.1", port: 0 });
    await http.start();
    base = `http://127.0.0.1:${http.port}`;
  });
  afterAll(async () => {
    await http.stop();
    await store.stop();
    t.close();
  });

  const get = (path: string, token = ADMIN) =>
    fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  // biome-ignore lint/suspicious/noExplicitAny: the report body, checked field by field
  const json = async (path: string): Promise<Record<string, any>> => (await get(path)).json();

  it("gives every figure of the hand-computed month", async () => {
    const b = await json(`/api/v1/reports/quality?site=solbakken&${MONTH}`);
    expect(b.residents).toBe(13);
    expect(b.bedDays).toBe(364);
    expect(b.minimums).toEqual(QUALITY_MINIMUMS);
    // 7 / 364 x 1000 = 19.2308; 2 / 364 x 1000 = 5.4945.
    expect(b.falls).toEqual({
      n: 364,
      minimum: 300,
      enough: true,
      note: null,
      events: 7,
      per1000BedDays: 19.23,
    });
    expect(b.fallsWithInjury).toMatchObject({ n: 364, enough: true, events: 2, per1000BedDays: 5.49 });
    expect(b.floorTime).toEqual({
      n: 6,
      minimum: 5,
      enough: true,
      note: null,
      unattended: 1,
      medianSec: 130,
      p90Sec: null,
    });
    expect(b.responseTrend).toEqual([
      { week: "2026-10-05", n: 5, minimum: 5, enough: true, note: null, medianSec: 30 },
      { week: "2026-10-12", n: 6, minimum: 5, enough: true, note: null, medianSec: 30 },
      {
        week: "2026-10-19",
        n: 4,
        minimum: 5,
        enough: false,
        note: { da: "for lidt data", en: "too little data" },
        medianSec: null,
      },
      { week: "2026-10-26", n: 5, minimum: 5, enough: true, note: null, medianSec: 100 },
    ]);
    // Care false alarms FA1-FA4 (X1 is technical): 4 / 364 = 0.010989.
    expect(b.falseAlarms).toEqual({
      n: 364,
      minimum: 100,
      enough: true,
      note: null,
      residentNights: 364,
      events: 4,
      perResidentNight: 0.011,
    });
    // 18 / (18 + 5) = 0.78261; the faulted cycle is a cycle but has no helper count.
    expect(b.lift).toEqual({
      n: 23,
      minimum: 20,
      enough: true,
      note: null,
      cycles: 24,
      oneHelper: 18,
      twoHelper: 5,
      faults: 1,
      oneHelperShare: 0.7826,
    });
  });

  it("gives nulls with 'for lidt data' where there is too little data, and no lift figure without a lift", async () => {
    const b = await json(`/api/v1/reports/quality?site=solbakken&unit=b&${MONTH}`);
    const little = { da: "for lidt data", en: "too little data" };
    expect(b.residents).toBe(1);
    expect(b.bedDays).toBe(28);
    expect(b.falls).toEqual({
      n: 28,
      minimum: 300,
      enough: false,
      note: little,
      events: 1,
      per1000BedDays: null,
    });
    expect(b.fallsWithInjury).toMatchObject({ enough: false, events: 0, per1000BedDays: null });
    expect(b.floorTime).toMatchObject({ n: 1, enough: false, note: little, medianSec: null, p90Sec: null });
    expect(b.falseAlarms).toMatchObject({
      n: 28,
      enough: false,
      note: little,
      events: 0,
      perResidentNight: null,
    });
    expect(b.responseTrend.map((w: { n: number; medianSec: null }) => [w.n, w.medianSec])).toEqual([
      [0, null],
      [0, null],
      [0, null],
      [0, null],
    ]);
    expect(b.lift).toBeNull();
    // The site over one week: 13 x 7 = 91 bed-days, 12 lift cycles with a helper count (7 + 5) and a fault.
    const w = await json("/api/v1/reports/quality?site=solbakken&from=2026-10-05&to=2026-10-12");
    expect(w.bedDays).toBe(91);
    expect(w.falls).toMatchObject({ enough: false, events: 2, per1000BedDays: null });
    expect(w.lift).toMatchObject({ n: 12, enough: false, note: little, cycles: 13, oneHelperShare: null });
    // A week with a lift but no cycles: the lift figure is there, with nothing to go on.
    const last = await json("/api/v1/reports/quality?site=solbakken&from=2026-10-26&to=2026-11-02");
    expect(last.lift).toEqual({
      n: 0,
      minimum: 20,
      enough: false,
      note: little,
      cycles: 0,
      oneHelper: 0,
      twoHelper: 0,
      faults: 0,
      oneHelperShare: null,
    });
  });

  it("serves the figures as CSV, and only to the report roles", async () => {
    const res = await get(`/api/v1/reports/quality?site=solbakken&unit=b&${MONTH}&format=csv&table=figures`);
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split("\r\n");
    expect(lines[0]).toBe("figure,value,unit,n,enough,note");
    expect(lines[1]).toBe("falls,,per 1000 bed-days,28,false,for lidt data");
    expect((await get(`/api/v1/reports/quality?site=solbakken&${MONTH}`, CARER)).status).toBe(403);
  });
});
