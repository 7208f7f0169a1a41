/**
 * The presence reads contract on SQLite (one gateway process), and what only SQLite has: a single
 * process's `device_state` as the state before the window when the log has no change before it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SqlitePresenceReads } from "../../src/reports/uptime.js";
import type { Db } from "../../src/store/db.js";
import { tempDbs } from "../helpers/tempdb.js";
import { type PresenceLogged, presenceReadsContract, T0 } from "./presence-reads.contract.js";

const dbs = tempDbs("ata-presence-reads-");
afterEach(() => dbs.cleanup());

function logger(db: Db): (...events: PresenceLogged[]) => Promise<void> {
  let e = 0;
  const insert = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, occurred_at, received_at, site_id, unit_id, room_id,
       resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', ?, ?, 'site-a', 'unit-1', NULL, NULL, 'p', ?)`,
  );
  return async (...events) => {
    for (const x of events)
      insert.run(`e-${++e}`, x.deviceId, x.type, x.at, x.at, JSON.stringify(x.node ? { node: x.node } : {}));
  };
}

presenceReadsContract("SQLite", async () => {
  const { db } = dbs.open();
  return {
    reads: new SqlitePresenceReads(db),
    log: logger(db),
    prune: async () => {},
    cleanup: async () => {},
  };
});

describe("presence reads on SQLite: device_state before the window", () => {
  const HOUR = 3_600_000;
  it("device_state proves the state at the window's start only when its change lies before it", async () => {
    const { db } = dbs.open();
    const device = db.prepare(
      `INSERT INTO devices (id, profile, site_id, unit_id, secret_hash, created_at, updated_at)
       VALUES (?, 'p', 'site-a', 'unit-1', 'x', 0, 0)`,
    );
    for (const id of ["radar-1", "radar-2", "radar-3", "radar-4"]) device.run(id);
    const state = db.prepare(
      "INSERT INTO device_state (device_id, online, changed_at, last_seen_at) VALUES (?, ?, ?, ?)",
    );
    state.run("radar-1", 1, T0 - HOUR, T0);
    state.run("radar-2", 1, T0 + HOUR, T0);
    state.run("radar-3", 0, T0 - HOUR, T0);
    await logger(db)({ deviceId: "radar-4", type: "device.offline", at: T0 - 2 * HOUR });
    state.run("radar-4", 1, T0 - HOUR, T0);
    const got = await new SqlitePresenceReads(db).onlineHistories(
      ["radar-1", "radar-2", "radar-3", "radar-4"],
      T0,
      T0 + HOUR,
    );
    expect(got.get("radar-1")?.initial).toBe(true);
    expect(got.get("radar-2")?.initial).toBeNull();
    expect(got.get("radar-3")?.initial).toBe(false);
    // The log's own change wins over the summary.
    expect(got.get("radar-4")?.initial).toBe(false);
  });
});
