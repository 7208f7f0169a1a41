/**
 * The rule engine, alert manager and durable timers wired by hand on an in-memory database, fed
 * through the real ingest pipeline (commit per event, so rules run synchronously). Built after
 * `vi.useFakeTimers()` so every component's clock is the simulated one.
 */
import { vi } from "vitest";
import { PROFILES } from "../../devices/index.js";
import type { AlertChannel, ChannelName } from "../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../src/alerts/channels/console.js";
import { AlertManager } from "../../src/alerts/manager.js";
import type { AlertView } from "../../src/alerts/model.js";
import { Ingest, type IngestResult, type LoggedEvent } from "../../src/ingest/pipeline.js";
import { silentLogger } from "../../src/log.js";
import { Metrics } from "../../src/metrics.js";
import type { DecodedEvent, EventType } from "../../src/model/event.js";
import { Registry } from "../../src/registry/registry.js";
import { loadRuleFile, parseRules, RuleEngine } from "../../src/rules/engine.js";
import { SqliteRulesEventLog } from "../../src/rules/event-log.js";
import { SqlitePartitionState } from "../../src/rules/partition.js";
import { DurableTimers } from "../../src/rules/timers.js";
import type { StaffIdentity } from "../../src/staff/protocol.js";
import { type Db, openDb } from "../../src/store/db.js";

export const UNIT_STAFF: StaffIdentity = {
  id: "anna",
  name: "Anna",
  role: "staff",
  sites: ["home-a"],
  units: ["unit-1"],
};

export interface Harness {
  db: Db;
  timers: DurableTimers;
  alerts: AlertManager;
  engine: RuleEngine;
  /** Who the alert manager believes is connected; tests change it. */
  connected: StaffIdentity[];
  /** What the webhook channel was asked to send (with `fallback: true`); it answers 200 at once. */
  fallbackSends: { alert: AlertView; attemptId: number }[];
  /** Log an event from a device (default: the bed mat of fall-risk resident R-0001) and run rules. */
  emit(
    type: EventType,
    opts?: {
      device?: string;
      occurredAt?: string;
      data?: Record<string, unknown>;
      /** Return before the event loop's next turn: what the rules made due at once has not run. */
      hold?: boolean;
    },
  ): LoggedEvent;
  /** A device's publish through the real decode/dedupe path (commit per publish: done on return). */
  publish(deviceId: string, channel: string, payload: string): Promise<IngestResult>;
  /** Every alert, oldest first. */
  all(): AlertView[];
  close(): void;
}

/** Devices: one per kind, all in home-a/unit-1/r1 with resident R-0001 (fall-risk). */
export const DEVICES = {
  radar: { id: "radar-1", profile: "vayyar/care" },
  mat: { id: "mat-1", profile: "scaip/bed-mat" },
  native: { id: "native-1", profile: "ata/native" },
  /** Resident R-0002 has no fall-risk flag. */
  matNoRisk: { id: "mat-2", profile: "scaip/bed-mat", room: "r2", resident: "R-0002" },
};

export function buildHarness(
  opts: {
    rulesYaml?: string;
    fallback?: boolean;
    /** Further channels (a test's own push or paging stand-in), beside console and webhook. */
    channels?: AlertChannel[];
    /** An existing database (a restart in the same test); default a fresh in-memory one. */
    db?: Db;
    /** The site's time zone; default Europe/Copenhagen. */
    timeZone?: string;
  } = {},
): Harness {
  const log = silentLogger();
  const db = opts.db ?? openDb({ path: ":memory:" });
  const registry = new Registry(db, new Set(PROFILES.map((p) => p.id)), { hasUnit: () => true });
  registry.syncResidents([
    { ref: "R-0001", siteId: "home-a", unitId: "unit-1", roomId: "r1", flags: ["fall-risk"] },
    { ref: "R-0002", siteId: "home-a", unitId: "unit-1", roomId: "r2", flags: [] },
  ]);
  if (!registry.get(DEVICES.radar.id))
    registry.addMany(
      Object.values(DEVICES).map((d) => ({
        id: d.id,
        profile: d.profile,
        siteId: "home-a",
        unitId: "unit-1",
        roomId: "room" in d ? d.room : "r1",
        residentRef: "resident" in d ? d.resident : "R-0001",
        secret: `${d.id}-secret-0123456789`,
      })),
      { generatedSecrets: true },
    );
  const profiles = new Map(PROFILES.map((p) => [p.id, p]));
  const ingest = new Ingest({
    db,
    registry,
    profiles,
    log,
    metrics: new Metrics({ defaultMetrics: false }),
    options: {
      commitMaxDelayMs: 0,
      commitMaxEvents: 1,
      keepRawPayload: false,
      maxPayloadBytes: 4096,
      maxDeadLetterBytes: 4096,
    },
  });
  ingest.start();
  const partition = new SqlitePartitionState(db);
  const timers = new DurableTimers(partition.timers, log);
  const connected: StaffIdentity[] = [UNIT_STAFF];
  const fallbackSends: Harness["fallbackSends"] = [];
  const channels = new Map<ChannelName, AlertChannel>([
    ["console", new ConsoleChannel({ connected: () => connected })],
  ]);
  if (opts.fallback)
    channels.set("webhook", {
      name: "webhook",
      renotifies: false,
      reach: () => [{ id: "webhook", name: "fallback webhook" }],
      deliver: (d) => {
        // Recorded, never answered: the alert stays "undelivered", as with a receiver that is down.
        fallbackSends.push({ alert: d.alert, attemptId: d.attemptId });
      },
      health: () => ({ ok: true }),
    });
  for (const c of opts.channels ?? []) channels.set(c.name, c);
  const alerts = new AlertManager({ store: partition.alerts, timers, log, channels });
  for (const c of channels.values()) void c.start?.(alerts.reporter(c.name));
  const file = opts.rulesYaml ? parseRules(opts.rulesYaml, "test rules") : loadRuleFile("config/rules.yaml");
  const engine = new RuleEngine(
    {
      events: new SqliteRulesEventLog(db),
      cursor: partition.cursor,
      maintenance: partition.maintenance,
      registry,
      profiles,
      alerts,
      timers,
      log,
      timeZones: new Map([["home-a", opts.timeZone ?? "Europe/Copenhagen"]]),
    },
    file,
  );
  ingest.on("events", (events: LoggedEvent[]) => engine.onEvents(events));
  // As the gateway starts: events logged after the rules' cursor (a restart on an existing database)
  // go through the rules first, then the timers still due fire.
  engine.start();
  timers.start();

  let n = 0;
  return {
    db,
    timers,
    alerts,
    engine,
    connected,
    fallbackSends,
    emit(type, o = {}) {
      let logged: LoggedEvent | undefined;
      const grab = (events: LoggedEvent[]) => {
        logged = events[0];
      };
      ingest.once("events", grab);
      const decoded: DecodedEvent = {
        type,
        eventId: `ev-${++n}`,
        occurredAt: o.occurredAt ?? new Date(Date.now()).toISOString(),
        data: o.data ?? {},
      } as DecodedEvent;
      // commitMaxEvents = 1: the commit, and the rules, run inside this call.
      void ingest.record(o.device ?? DEVICES.mat.id, [decoded]);
      ingest.off("events", grab);
      // The event loop's next turn: what the rules made due at once runs (a raised alert's first
      // level, AlertManager.raise()).
      if (!o.hold) vi.advanceTimersByTime(0);
      if (!logged) throw new Error(`${type} was not logged`);
      return logged;
    },
    publish: (deviceId, channel, payload) =>
      ingest.submit(deviceId, `ata/v1/${deviceId}/${channel}`, channel, Buffer.from(payload)),
    all: () =>
      (db.prepare("SELECT id FROM alerts ORDER BY raised_at, rowid").all() as { id: string }[]).map(
        (r) => alerts.get(r.id)!,
      ),
    close() {
      timers.stop();
      db.close();
    },
  };
}
