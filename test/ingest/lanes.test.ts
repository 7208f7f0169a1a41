import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { Ingest, type IngestResult, type LoggedEvent } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import { Registry } from "../../src/registry/registry.js";
import { type Db, eventLogPath, openDb } from "../../src/store/db.js";

/**
 * The urgent lane: a fall does not wait for the background group's timer or for a free slot
 * behind background groups, and a device's earlier publishes still waiting go with it, in order.
 * Background groups here wait 2 s for companions, so a fall that waited with them would show, with
 * room for a loaded machine (the writer thread starts and opens its database within that time).
 */
/** How long a background group waits for companions, and what counts as "at once" beside it. */
const GROUP_WAIT_MS = 2000;
const AT_ONCE_MS = 1200;

describe("ingest lanes", () => {
  const dirs: string[] = [];
  const open: { ingest: Ingest; db: Db }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0)) {
      await o.ingest.stop();
      o.db.close();
    }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function build(
    urgent: string[],
    options: { commitMaxDelayMs?: number; backgroundIntervalMs?: number } = {},
  ) {
    const dir = mkdtempSync(join(tmpdir(), "ata-lanes-"));
    dirs.push(dir);
    const path = join(dir, "ata.db");
    const db = openDb({ path, synchronous: "NORMAL" });
    const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
    registry.addMany(
      ["a", "b", "c"].map((id) => ({
        id,
        profile: "ata/native",
        siteId: "s",
        unitId: "u",
        roomId: `room-${id}`,
        secret: `${id}-secret-0123456789`,
      })),
      { generatedSecrets: true },
    );
    const metrics = new Metrics({ defaultMetrics: false });
    const ingest = new Ingest({
      db,
      registry,
      profiles: new Map(PROFILES.map((p) => [p.id, p])),
      log: silentLogger(),
      metrics,
      urgentTypes: () => new Set(urgent),
      options: {
        writer: "worker",
        dbPath: eventLogPath(path),
        commitMaxDelayMs: GROUP_WAIT_MS,
        commitMaxEvents: 1000,
        ...options,
        keepRawPayload: false,
        maxPayloadBytes: 4096,
        maxDeadLetterBytes: 4096,
      },
    });
    ingest.start();
    open.push({ ingest, db });
    const logged: LoggedEvent[] = [];
    /** The event ids of each group as the listeners got it. */
    const groups: string[][] = [];
    ingest.on("events", (events: LoggedEvent[]) => {
      logged.push(...events);
      groups.push(events.map((e) => e.eventId));
    });
    const settled = new Map<string, number>();
    const t0 = performance.now();
    const submit = (device: string, eventId: string, type: string): Promise<IngestResult> =>
      ingest
        .submit(
          device,
          `ata/v1/${device}/events`,
          "events",
          Buffer.from(
            JSON.stringify({ eventId, type, data: type === "device.heartbeat" ? {} : { confidence: 0.9 } }),
          ),
        )
        .then((r) => {
          settled.set(eventId, performance.now() - t0);
          return r;
        });
    return { ingest, metrics, logged, groups, settled, submit, elapsed: () => performance.now() - t0 };
  }

  it("a fall is committed at once while heartbeats wait for their group", async () => {
    const { metrics, logged, groups, settled, submit } = build(["fall.detected"]);
    const heartbeat = submit("a", "hb-1", "device.heartbeat");
    await submit("b", "fall-1", "fall.detected");
    expect(settled.get("fall-1")).toBeLessThan(AT_ONCE_MS);
    // The fall went to the listeners alone; the heartbeat was still waiting for companions. (Their
    // answers may come together: one fsync covers every group written before it started.)
    expect(groups[0]).toEqual(["fall-1"]);
    await heartbeat; // (with the next group: after the fall's commit, what waits goes next)
    expect(groups).toEqual([["fall-1"], ["hb-1"]]);
    expect(logged.map((e) => e.eventId)).toEqual(["fall-1", "hb-1"]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/ata_commit_seconds_count\{lane="urgent"\} 1/);
    expect(text).toMatch(/ata_commit_seconds_count\{lane="background"\} 1/);
    // The fall's way to its alert, stage by stage; the heartbeat is not urgent and is not counted.
    for (const stage of ["handover", "commit", "rules"])
      expect(text).toMatch(new RegExp(`ata_urgent_stage_seconds_count\\{stage="${stage}"\\} 1\n`));
  });

  it("background groups start at most once per backgroundIntervalMs, and a fall does not wait for the next", async () => {
    const INTERVAL_MS = 1500;
    const { settled, submit, logged, elapsed } = build(["fall.detected"], {
      commitMaxDelayMs: 0,
      backgroundIntervalMs: INTERVAL_MS,
    });
    // The first group goes at once: it starts after this moment, and the next group no sooner
    // than the interval after its start.
    const firstSubmitted = elapsed();
    await submit("a", "hb-1", "device.heartbeat");
    const first = settled.get("hb-1")!;
    const second = submit("a", "hb-2", "device.heartbeat");
    const third = submit("c", "hb-3", "device.heartbeat");
    await submit("b", "fall-3", "fall.detected");
    expect(settled.get("fall-3")! - first).toBeLessThan(AT_ONCE_MS);
    expect(settled.has("hb-2")).toBe(false); // waiting for the interval, gathering companions
    await Promise.all([second, third]);
    // Both in one group, which started no earlier than the interval after the first one.
    expect(settled.get("hb-2")! - firstSubmitted).toBeGreaterThanOrEqual(INTERVAL_MS);
    expect(Math.abs(settled.get("hb-2")! - settled.get("hb-3")!)).toBeLessThan(50);
    expect(logged.map((e) => e.eventId)).toEqual(["hb-1", "fall-3", "hb-2", "hb-3"]);
  });

  it("a device's earlier publishes still waiting go with its fall, ahead of it", async () => {
    const { logged, groups, settled, submit } = build(["fall.detected"]);
    const before = submit("c", "hb-c", "device.heartbeat");
    const other = submit("a", "hb-a", "device.heartbeat");
    await submit("c", "fall-c", "fall.detected");
    await before;
    expect(settled.get("hb-c")).toBeLessThan(AT_ONCE_MS);
    // Another device's heartbeat keeps its group: not in the fall's.
    expect(groups[0]).toEqual(["hb-c", "fall-c"]);
    const c = logged.filter((e) => e.deviceId === "c");
    expect(c.map((e) => e.eventId)).toEqual(["hb-c", "fall-c"]);
    expect(c[0]!.logSeq).toBeLessThan(c[1]!.logSeq);
    await other;
    expect(groups).toEqual([["hb-c", "fall-c"], ["hb-a"]]);
  });

  it("a type no rule raises a high-priority alert on takes the background lane", async () => {
    const { settled, submit } = build([]);
    await submit("b", "fall-2", "fall.detected");
    expect(settled.get("fall-2")).toBeGreaterThanOrEqual(GROUP_WAIT_MS - 50);
  });

  it("an event the device marks high priority is urgent whatever the rules say", async () => {
    const { ingest, settled } = build([]);
    const t0 = performance.now();
    await ingest.submit(
      "b",
      "ata/v1/b/events",
      "events",
      Buffer.from(JSON.stringify({ eventId: "call-1", type: "call.manual", priority: "high", data: {} })),
    );
    expect(performance.now() - t0).toBeLessThan(AT_ONCE_MS);
    expect(settled.size).toBe(0);
  });
});
