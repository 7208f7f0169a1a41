import { afterEach, describe, expect, it } from "vitest";
import { PgMaintenanceWindows } from "../../src/cluster/pg/partition-stores.js";
import type { LoggedEvent } from "../../src/ingest/pipeline.js";
import { parseRules } from "../../src/rules/engine.js";
import { EventWindow, lookBack, SqliteRulesEventLog } from "../../src/rules/event-log.js";
import type { MaintenanceRow, NewMaintenance } from "../../src/rules/maintenance.js";
import { tempDbs } from "../helpers/tempdb.js";
import { event, eventLogContract, NOW } from "./event-log.contract.js";

const dbs = tempDbs("ata-event-log-");
afterEach(() => dbs.cleanup());

eventLogContract("SQLite", () => {
  const { db } = dbs.open();
  const insert =
    db.prepare(`INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at,
    device_seq, site_id, unit_id, room_id, resident_ref, profile, data, raw, topic)
    VALUES (?, ?, ?, ?, NULL, ?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL, 'ata/v1/test/events')`);
  const open = db.prepare(
    "INSERT INTO maintenance (site_id, device_id, room_id, starts_at, ends_at, reason, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  return {
    log: new SqliteRulesEventLog(db),
    add: (events) =>
      events.map((e) => {
        const p = e.placement;
        const info = insert.run(
          e.eventId,
          e.deviceId,
          e.type,
          e.phase,
          Date.parse(e.occurredAt),
          Date.parse(e.receivedAt),
          p.siteId,
          p.unitId,
          p.roomId,
          p.residentRef,
          e.profile,
          JSON.stringify(e.data),
        );
        return { ...e, logSeq: Number(info.lastInsertRowid) } as LoggedEvent;
      }),
    maintenance: (w) => {
      open.run(w.siteId, w.deviceId, w.roomId, w.startsAt, w.endsAt, w.reason, w.createdBy, w.createdAt);
    },
  };
});

function windowFixture(lookBackMs = 24 * 3_600_000) {
  const windows: MaintenanceRow[] = [];
  const maintenance = new PgMaintenanceWindows();
  const log = new EventWindow({ lookBackMs, maintenance, now: () => NOW });
  // Positions as a partition's are drawn: dense from 1, here with a gap before the first to show
  // that nothing depends on starting at 1 (a window filled from the middle of a partition).
  let position = 40;
  return {
    log,
    add: (events: Omit<LoggedEvent, "logSeq">[]) => {
      const logged = events.map((e) => ({ ...e, logSeq: ++position }) as LoggedEvent);
      log.append(logged);
      return logged;
    },
    maintenance: (w: NewMaintenance) => {
      windows.push({
        id: windows.length + 1,
        site_id: w.siteId,
        device_id: w.deviceId,
        room_id: w.roomId,
        starts_at: w.startsAt,
        ends_at: w.endsAt,
        reason: w.reason,
        created_by: w.createdBy,
        created_at: w.createdAt,
      });
      maintenance.hold(windows);
    },
  };
}

eventLogContract("a partition's window in memory", () => windowFixture());

describe("EventWindow", () => {
  it("refuses a position at or below the last it holds", () => {
    const f = windowFixture();
    const [a] = f.add([event("bed.exit")]);
    expect(() => f.log.append([{ ...a!, eventId: "again" }])).toThrow(/out of order/);
    expect(f.log.size()).toBe(1);
  });

  it("lets go of events received before the look-back, oldest first, and keeps the newest", () => {
    const f = windowFixture(30 * 60_000);
    const logged = f.add([
      event("bed.exit", { at: NOW - 50 * 60_000 }),
      event("bed.exit", { at: NOW - 40 * 60_000 }),
      // Occurred long ago, received now (a device sending its buffer): kept by its receipt.
      event("bed.exit", { at: NOW - 45 * 60_000, receivedAt: NOW - 60_000 }),
      event("bed.exit", { at: NOW - 20 * 60_000 }),
    ]);
    expect(f.log.size()).toBe(2);
    expect(f.log.get(logged[0]!.logSeq)).toBeUndefined();
    expect(f.log.after(0, 10).map((e) => e.logSeq)).toEqual([logged[2]!.logSeq, logged[3]!.logSeq]);
    // The counts no longer see what was let go.
    expect(
      f.log.count({
        per: "device",
        key: "radar-1",
        types: null,
        since: 0,
        until: NOW,
        upTo: logged[3]!.logSeq,
      }),
    ).toBe(2);

    // Everything old: the newest stays, so the window still knows where it is.
    const g = windowFixture(60_000);
    const old = g.add([
      event("bed.exit", { at: NOW - 3_600_000 }),
      event("bed.exit", { at: NOW - 3_000_000 }),
    ]);
    expect(g.log.size()).toBe(1);
    expect(g.log.head()).toBe(old[1]!.logSeq);
    expect(g.log.get(old[1]!.logSeq)).toEqual(old[1]);
  });

  it("keeps its positions contiguous across many appends and trims", () => {
    let now = NOW;
    const log = new EventWindow({
      lookBackMs: 10_000,
      maintenance: new PgMaintenanceWindows(),
      now: () => now,
    });
    let pos = 0;
    for (let i = 0; i < 5000; i++) {
      now += 100;
      log.append([
        { ...event("device.heartbeat", { at: now, device: `d-${i % 7}` }), logSeq: ++pos } as LoggedEvent,
      ]);
    }
    // 10 s of events at 10/s (the newest counted), and `after` walks them without a gap.
    expect(log.size()).toBe(101);
    const held = log.after(0, 1000).map((e) => e.logSeq);
    expect(held).toEqual(Array.from({ length: 101 }, (_, k) => pos - 100 + k));
    expect(log.count({ per: "device", key: "d-3", types: null, since: 0, until: now, upTo: pos })).toBe(
      held.filter((p) => (p - 1) % 7 === 3).length,
    );
  });
});

describe("lookBack", () => {
  it("is the longest count or absence window a rule file has, nested conditions included", () => {
    const file = parseRules(
      `
rules:
  - id: repeated-falls
    when:
      all:
        - event: fall.*
        - not:
            count: { atLeast: 3, within: 6h, per: resident }
    raise: { alert: fall, priority: high, message: { da: Fald, en: Fall } }
  - id: bed-exit-night
    when: { event: bed.exit }
    raise:
      alert: bed-exit
      priority: medium
      message: { da: Seng, en: Bed }
      unless: { event: bed.return, within: 20m }
  - id: two-falls
    when: { event: fall.*, count: { atLeast: 2, within: 30m } }
    raise: { alert: falls, priority: high, message: { da: Fald, en: Falls } }
`,
      "test",
    );
    expect(lookBack(file.rules)).toBe(6 * 3_600_000);
    expect(lookBack(file.rules.slice(1))).toBe(30 * 60_000);
    expect(lookBack([])).toBe(0);
  });
});
