import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../src/log.js";
import { SqliteTimerStore } from "../../src/rules/timer-store.js";
import { DurableTimers, type Timer } from "../../src/rules/timers.js";
import { type Db, openDb } from "../../src/store/db.js";

describe("durable timers", () => {
  let db: Db;
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date("2026-03-01T12:00:00Z") });
    db = openDb({ path: ":memory:" });
  });
  afterEach(() => {
    db.close();
    vi.useRealTimers();
  });

  const timers = (fired: string[]) => {
    const t = new DurableTimers(new SqliteTimerStore(db), silentLogger());
    t.on<{ n: number }>("k", (x: Timer<{ n: number }>) => fired.push(`${x.id}@${Date.now() - start}`));
    return t;
  };
  let start = 0;

  it("fires each timer once at its due time, in due order", () => {
    start = Date.now();
    const fired: string[] = [];
    const t = timers(fired);
    t.start();
    t.set("c", "k", start + 3000, { n: 3 });
    t.set("a", "k", start + 1000, { n: 1 });
    t.set("b", "k", start + 2000, { n: 2 });
    t.set("b", "k", start + 2500, { n: 2 }); // moved
    expect(t.cancel("c")).toBe(true);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(["a@1000", "b@2500"]);
    expect(db.prepare("SELECT count(*) AS n FROM timers").get()).toEqual({ n: 0 });
  });

  it("timers that fell due while stopped fire inside start(), in due order; later ones wait", () => {
    start = Date.now();
    const before = timers([]);
    before.start();
    before.set("late", "k", start + 60_000, { n: 3 });
    before.set("second", "k", start + 2000, { n: 2 });
    before.set("first", "k", start + 1000, { n: 1 });
    before.stop();
    // Down for 30 s.
    vi.advanceTimersByTime(30_000);
    const fired: string[] = [];
    const after = timers(fired);
    after.start();
    expect(fired).toEqual(["first@30000", "second@30000"]);
    vi.advanceTimersByTime(30_000);
    expect(fired).toEqual(["first@30000", "second@30000", "late@60000"]);
  });

  it("a handler that throws does not stop the others, and its timer is not retried forever", () => {
    start = Date.now();
    const fired: string[] = [];
    const t = new DurableTimers(new SqliteTimerStore(db), silentLogger());
    t.on("boom", () => {
      throw new Error("handler failed");
    });
    t.on("k", (x) => fired.push(x.id));
    t.start();
    t.set("x", "boom", start + 1000, {});
    t.set("y", "k", start + 1000, {});
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(["y"]);
    expect(t.size).toBe(0);
  });

  it("a handler may re-arm its own timer for later", () => {
    start = Date.now();
    const fired: number[] = [];
    const t = new DurableTimers(new SqliteTimerStore(db), silentLogger());
    t.on("tick", (x) => {
      fired.push(Date.now() - start);
      if (fired.length < 3) t.set(x.id, "tick", Date.now() + 1000, {});
    });
    t.start();
    t.set("tick", "tick", start + 1000, {});
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual([1000, 2000, 3000]);
    expect(db.prepare("SELECT count(*) AS n FROM timers").get()).toEqual({ n: 0 });
  });
});
