/**
 * A gateway node reduced to what the owner-command path needs, for owner-commands.test.ts and for
 * its child process (owner-command-node.ts): a pool, partition leases (one partition), the
 * `OwnerCommands` endpoint, and on `acquired` the partition's `PgPartitionState` with the real
 * `AlertManager` on it, served with `applyCommand`, each command and its answer one step of the
 * state, so that its flush round writes both.
 */
import pg from "pg";
import type { AlertChannel, ChannelName } from "../../../src/alerts/channels/channel.js";
import { ConsoleChannel } from "../../../src/alerts/channels/console.js";
import { AlertManager, type RaiseSpec } from "../../../src/alerts/manager.js";
import { PartitionLeases } from "../../../src/cluster/pg/leases.js";
import { applyCommand, type OwnerCommand, OwnerCommands } from "../../../src/cluster/pg/owner-commands.js";
import { PgPartitionState } from "../../../src/cluster/pg/partition-state.js";
import type { LoggedEvent } from "../../../src/ingest/pipeline.js";
import { silentLogger } from "../../../src/log.js";
import { DurableTimers } from "../../../src/rules/timers.js";
import type { StaffIdentity } from "../../../src/staff/protocol.js";

export const SITE = "home-a";
export const ANNA: StaffIdentity = {
  id: "anna",
  name: "Anna",
  role: "staff",
  sites: [SITE],
  units: ["unit-1"],
};
export const BO: StaffIdentity = { id: "bo", name: "Bo", role: "staff", sites: [SITE], units: ["unit-1"] };
const T0 = Date.parse("2026-11-02T21:14:05.250Z");

export const FALL: RaiseSpec = {
  ruleId: "fall",
  alert: "fall",
  priority: "high",
  message: { da: "Fald i stue {room}", en: "Fall in room {room}" },
  ladder: [{ to: ["unit"], after: 120_000 }],
  renotifyMs: 60_000,
};

export function fallEvent(deviceId: string, room: string, logSeq: number): LoggedEvent {
  return {
    eventId: `ev-${deviceId}-${logSeq}`,
    schemaVersion: 1,
    deviceId,
    occurredAt: new Date(T0).toISOString(),
    receivedAt: new Date(T0).toISOString(),
    phase: "point",
    type: "fall.detected",
    data: { confidence: 0.97 },
    placement: { siteId: SITE, unitId: "unit-1", roomId: room, residentRef: `res-${room}` },
    logSeq,
    profile: "test",
  } as LoggedEvent;
}

export interface OwnerNodeOptions {
  leaseMs?: number;
  pollMs?: number;
  /**
   * Awaited after the state's flush of the commands just run, before their round ends (a test holds
   * the owner here: their answers have committed with their effects by then).
   */
  afterFlush?: (command: OwnerCommand[]) => Promise<void>;
  /**
   * A failed flush (the state lost while the lease is still this node's) takes the partition up
   * again with the same token, as a cluster node does (src/cluster/node.ts `retake`).
   */
  retake?: boolean;
  /** Told of every command the handler runs, before it runs. */
  executing?: (command: OwnerCommand, token: number) => void;
}

export interface OwnerNode {
  nodeId: string;
  pool: pg.Pool;
  leases: PartitionLeases;
  commands: OwnerCommands;
  /** Ids of the commands this node's handler ran. */
  executed: string[];
  errors: Error[];
  /** Resolves once the node serves partition 0 (its state loaded). */
  serving: Promise<{ state: PgPartitionState; alerts: AlertManager; token: number }>;
  stop(): Promise<void>;
}

export function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 6, application_name: name });
  pool.on("error", () => undefined);
  return pool;
}

/** The alert manager on a partition's state, as the gateway builds it. */
export function manager(state: PgPartitionState): AlertManager {
  const log = silentLogger();
  const timers = new DurableTimers(state.timers, log, () => T0);
  const channels = new Map<ChannelName, AlertChannel>([
    ["console", new ConsoleChannel({ connected: () => [ANNA, BO] })],
  ]);
  return new AlertManager({ store: state.alerts, timers, log, channels, now: () => T0 });
}

/** A node that owns partition 0 of 1 whenever its leases give it, and serves its commands then. */
export async function ownerNode(url: string, nodeId: string, o: OwnerNodeOptions = {}): Promise<OwnerNode> {
  const pool = newPool(url, nodeId);
  const leases = new PartitionLeases({ pool, nodeId, partitions: 1, leaseMs: o.leaseMs ?? 60_000 });
  const commands = new OwnerCommands({ pool, leases, pollMs: o.pollMs ?? 200 });
  const executed: string[] = [];
  const errors: Error[] = [];
  leases.on("error", () => undefined);
  commands.on("error", (err) => errors.push(err));
  let serving!: (s: { state: PgPartitionState; alerts: AlertManager; token: number }) => void;
  const node: OwnerNode = {
    nodeId,
    pool,
    leases,
    commands,
    executed,
    errors,
    serving: new Promise((r) => {
      serving = r;
    }),
    stop: async () => {
      await commands.stop();
      await leases.stop();
      state?.close();
      await pool.end();
    },
  };
  let state: PgPartitionState | undefined;
  const takeUp = (partition: number, token: number): void => {
    void (async () => {
      const s = await PgPartitionState.load({ pool, leases, partition, token });
      state = s;
      const alerts = manager(s);
      const held: OwnerCommand[] = [];
      const served = commands.serve(partition, {
        token,
        handler: (command) => {
          o.executing?.(command, token);
          executed.push(command.id);
          held.push(command);
          return applyCommand(alerts, command);
        },
        step: (fn) => alerts.batch(fn),
        state: {
          token: s.token,
          answer: (id, answer) => s.answer(id, answer),
          flushed: async () => {
            await s.flushed();
            await o.afterFlush?.(held.splice(0));
          },
        },
      });
      s.once("lost", () => {
        void served.stop();
        s.close();
        if (o.retake && leases.holds(partition, token)) takeUp(partition, token);
      });
      serving({ state: s, alerts, token });
    })().catch((err: Error) => errors.push(err));
  };
  leases.on("acquired", takeUp);
  await commands.start();
  await leases.start();
  return node;
}
