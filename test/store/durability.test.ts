import { closeSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { type Db, openDb } from "../../src/store/db.js";
import { Durability, walPathOf } from "../../src/store/durability.js";
import { api, startGateway } from "../helpers/gateway.js";
import { tempDbs } from "../helpers/tempdb.js";

const log = silentLogger();

describe("Durability: visible effects wait for the WAL's fsync, off the event loop", () => {
  const temp = tempDbs("ata-durability-unit-");
  afterEach(() => temp.cleanup());
  const open = () => temp.open({ synchronous: "NORMAL" });
  const write = (db: Db, name: string) =>
    db.prepare("INSERT INTO cursors (name, position, updated_at) VALUES (?, 1, 1)").run(name);

  it("the gateway's connection commits without an fsync; the CLI's with one", () => {
    const { db, path } = open();
    expect(db.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    const cli = openDb({ path });
    expect(cli.pragma("synchronous", { simple: true })).toBe(2); // FULL
    cli.close();
  });

  it("holds a callback after a commit until an fsync has run, and runs callbacks in order", async () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    const order: string[] = [];
    write(db, "a");
    d.after(() => order.push("first"));
    write(db, "b");
    d.after(() => order.push("second"));
    expect(order).toEqual([]); // not before the disk has it
    await d.durable();
    expect(order).toEqual(["first", "second"]);
    expect(d.stats.fsyncs).toBeGreaterThanOrEqual(1);
    // Nothing committed since: at once, without another fsync.
    const fsyncs = d.stats.fsyncs;
    let ran = false;
    d.after(() => {
      ran = true;
    });
    expect(ran).toBe(true);
    expect(d.stats.fsyncs).toBe(fsyncs);
  });

  it("a callback behind one that waits also waits, even with nothing new committed (order)", async () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    const order: number[] = [];
    write(db, "a");
    d.after(() => order.push(1));
    d.after(() => order.push(2));
    expect(order).toEqual([]);
    await d.durable();
    expect(order).toEqual([1, 2]);
  });

  it("sync: false needs no fsync of its own but keeps its place behind what waits", async () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    const order: string[] = [];
    write(db, "a");
    d.after(() => order.push("replayable, nothing ahead"), { sync: false });
    expect(order).toEqual(["replayable, nothing ahead"]); // at once, before any fsync
    d.after(() => order.push("a person's action"));
    d.after(() => order.push("replayable, behind it"), { sync: false });
    expect(order).toEqual(["replayable, nothing ahead"]);
    await d.durable();
    expect(order).toEqual(["replayable, nothing ahead", "a person's action", "replayable, behind it"]);
  });

  it("lanes: a callback waits only for its lane's callbacks with its key or none, and for those with no lane", async () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    const order: string[] = [];
    const push = (name: string) => () => order.push(name);
    write(db, "a");
    d.after(push("socket 1: alert A accepted"), { lane: "s1", key: "A" });
    d.after(push("socket 1: alert B raised"), { sync: false, lane: "s1", key: "B" });
    d.after(push("socket 2: alert B raised"), { sync: false, lane: "s2", key: "B" });
    d.after(push("socket 1: alert A escalated"), { sync: false, lane: "s1", key: "A" });
    d.after(push("socket 1: a reply"), { sync: false, lane: "s1" });
    d.after(push("socket 2: alert C raised"), { sync: false, lane: "s2", key: "C" });
    // Neither alert A's change nor anything behind the barrier in socket 1's lane has gone; the rest has.
    expect(order).toEqual([
      "socket 1: alert B raised",
      "socket 2: alert B raised",
      "socket 2: alert C raised",
    ]);
    d.after(push("no lane"), { sync: false });
    d.after(push("socket 2: behind the unlaned one"), { sync: false, lane: "s2", key: "D" });
    expect(order).toHaveLength(3);
    await d.durable();
    expect(order).toEqual([
      "socket 1: alert B raised",
      "socket 2: alert B raised",
      "socket 2: alert C raised",
      "socket 1: alert A accepted",
      "socket 1: alert A escalated",
      "socket 1: a reply",
      "no lane",
      "socket 2: behind the unlaned one",
    ]);
  });

  it("a commit made while an fsync runs waits for the next one", async () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    write(db, "a");
    const first = d.durable();
    write(db, "b"); // after the first fsync started
    let secondDone = false;
    const second = d.durable().then(() => {
      secondDone = true;
    });
    await first;
    expect(secondDone).toBe(false);
    await second;
    expect(d.stats.fsyncs).toBe(2);
  });

  it("in memory there is no WAL to wait for: callbacks run at once", () => {
    const db = temp.track(openDb({ path: ":memory:" }));
    const d = new Durability(db, walPathOf(":memory:"), log);
    write(db, "a");
    let ran = false;
    d.after(() => {
      ran = true;
    });
    expect(ran).toBe(true);
  });

  it("close() syncs on the spot and runs what waits", () => {
    const { db, path } = open();
    const d = new Durability(db, walPathOf(path), log);
    write(db, "a");
    let ran = false;
    d.after(() => {
      ran = true;
    });
    d.close();
    expect(ran).toBe(true);
  });

  it("a failed fsync is fatal and nothing waiting is released", async () => {
    const { db, path } = open();
    const failures: Error[] = [];
    const d = new Durability(db, walPathOf(path), log, (err) => failures.push(err));
    write(db, "a");
    await d.durable(); // opens the WAL's descriptor
    closeSync((d as unknown as { fd: number }).fd); // the descriptor goes bad under it
    write(db, "b");
    let ran = false;
    d.after(() => {
      ran = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(failures.length).toBe(1);
    expect((failures[0] as NodeJS.ErrnoException).code).toBe("EBADF");
    expect(ran).toBe(false);
    (d as unknown as { fd: number | null }).fd = null;
  });

  it("the gateway answers a request that wrote only after the WAL's fsync", async () => {
    const t = await startGateway();
    try {
      const before = t.gateway.durability.stats.fsyncs;
      const res = await api(t.httpUrl, "POST", "/api/v1/devices", {
        id: "durable-1",
        profile: "ata/native",
        site: "home-a",
        unit: "unit-1",
      });
      expect(res.status).toBe(201);
      expect(t.gateway.durability.stats.fsyncs).toBeGreaterThan(before);
    } finally {
      await t.stop();
    }
  });
});
