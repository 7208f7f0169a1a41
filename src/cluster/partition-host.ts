/**
 * A partition at work on the node that owns it: the rules, the durable timers and the alert
 * lifecycle of the partition's sites, over its state on PostgreSQL (`PgPartitionState`,
 * pg/partition-state.ts) and its recent events in memory (`EventWindow`, src/rules/event-log.ts).
 * What the single process runs once for every site (src/gateway.ts: `DurableTimers`, `AlertManager`,
 * `RuleEngine` over `SqlitePartitionState`), a cluster node runs once per partition it holds: the
 * same classes, so a rule means the same on one node as on one process.
 *
 * Life. Made when the partition's lease is acquired and its state loaded; `start(history)` takes the
 * partition's recent events (as far back as the rules look, read from the shared event log) into the
 * window, and the rules replay those after the state's cursor, with the timers that fell due
 * between them, as a process does after a restart: events a previous owner logged but had not
 * evaluated when it died are evaluated here, once (the cursor moves in the same flush as their
 * effects). Then the timers run, attempts left without an outcome are made again, and `deliver`
 * takes the partition's newer events in position order. `stop()` ends it; the state's `lost` (a
 * failed flush, the lease lost) stops it at once, and nothing of it acts any more.
 *
 * What a step made becomes visible outside only once it is in PostgreSQL: channel calls wait for
 * the state's flush (`FlushedCalls`), as the single process's wait for its fsync; a change a replay
 * would make again waits only for its place. `deliver` resolves once the events' effects are
 * flushed, so the caller (the follower of the partition's events) reads on only then, and what it
 * acknowledges has been acted on.
 *
 * Channels are the node's (one push sender, one paging link); their reports of an attempt go to
 * the partition whose manager made it (`ChannelRoutes`).
 */
import type { AlertChannel, ChannelName, ChannelReporter, Delivery } from "../alerts/channels/channel.js";
import { AlertManager } from "../alerts/manager.js";
import type { AlertView } from "../alerts/model.js";
import type { LoggedEvent } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { DeviceProfile } from "../model/profile.js";
import type { Registry } from "../registry/registry.js";
import { RuleEngine } from "../rules/engine.js";
import { EventWindow, lookBack } from "../rules/event-log.js";
import type { RuleFile } from "../rules/schema.js";
import { DurableTimers } from "../rules/timers.js";
import type { AfterOptions } from "../store/durability.js";
import type { PgPartitionState } from "./pg/partition-state.js";

/**
 * Channel calls in order per lane, each after the flush that made its attempt durable. Lanes as in
 * src/store/durability.ts: one lane's wait holds up no other lane. A flush that fails (the state
 * lost) runs none of what waited for it: the attempts are not in PostgreSQL, and the next owner
 * makes them again if their step is replayable.
 */
export class FlushedCalls {
  private readonly tails = new Map<string, Promise<void>>();
  private dropped = false;

  constructor(
    private readonly state: Pick<PgPartitionState, "flushed">,
    private readonly log: Logger,
  ) {}

  after(fn: () => void, opts: AfterOptions = {}): void {
    if (this.dropped) return;
    // Taken now: it covers the steps made so far, this call's among them.
    const flushed = opts.sync === false ? null : this.state.flushed();
    flushed?.catch(() => {});
    const lane = opts.lane ?? "";
    const tail = (this.tails.get(lane) ?? Promise.resolve())
      .then(() => flushed)
      .then(
        () => {
          if (!this.dropped) fn();
        },
        () => {
          // Lost: nothing behind this in the lane may run ahead of it, so the lane ends here.
          this.dropped = true;
        },
      )
      .catch((err: unknown) => this.log.error({ err }, "a call after a partition's flush threw"));
    this.tails.set(lane, tail);
    // Forget a lane whose last call has run, so idle lanes cost nothing.
    void tail.then(() => {
      if (this.tails.get(lane) === tail) this.tails.delete(lane);
    });
  }

  /** Runs nothing more (the partition was given up). */
  drop(): void {
    this.dropped = true;
  }
}

/**
 * The node's channels, shared by the partitions it holds. Each partition's manager gets its own view
 * of them (`channelsFor`), through which every attempt it makes is remembered as its own; the
 * channel's reports (started once, with `reporter(name)`) go to the manager that made the attempt.
 * A report for an attempt of a partition no longer held is dropped: the attempt has no outcome in
 * PostgreSQL, and the partition's next owner makes it again (`resumeAttempts`).
 */
export class ChannelRoutes {
  /** Attempt id -> the partition whose manager made it (until its final outcome). */
  private readonly owners = new Map<number, number>();
  private readonly reporters = new Map<number, Map<ChannelName, ChannelReporter>>();

  constructor(readonly channels: ReadonlyMap<ChannelName, AlertChannel>) {}

  /**
   * The channels as one partition's manager uses them: the same channels, every attempt remembered
   * as the partition's. The manager that reads the reports is attached once it exists (`attach`).
   */
  channelsFor(partition: number): Map<ChannelName, AlertChannel> {
    const out = new Map<ChannelName, AlertChannel>();
    for (const [name, channel] of this.channels) {
      // Started and stopped once by the node, not per partition: the view has no start or stop.
      const view: AlertChannel = {
        name: channel.name,
        ...(channel.renotifies === undefined ? {} : { renotifies: channel.renotifies }),
        ...(channel.handsOverOnCommit === undefined ? {} : { handsOverOnCommit: channel.handsOverOnCommit }),
        reach: (audience, alert) => channel.reach(audience, alert),
        deliver: (d: Delivery) => {
          this.owners.set(d.attemptId, partition);
          channel.deliver(d);
        },
        health: () => channel.health(),
        ...(channel.settled ? { settled: (alert) => channel.settled?.(alert) } : {}),
      };
      out.set(name, view);
    }
    return out;
  }

  /** The partition's manager, which the reports of its attempts go to. */
  attach(partition: number, manager: Pick<AlertManager, "reporter">): void {
    this.reporters.set(partition, new Map([...this.channels.keys()].map((n) => [n, manager.reporter(n)])));
  }

  /** The partition is no longer held: its attempts' reports are dropped from now on. */
  release(partition: number): void {
    this.reporters.delete(partition);
    for (const [id, p] of this.owners) if (p === partition) this.owners.delete(id);
  }

  /** What a channel is started with: reports routed to the partition that made each attempt. */
  reporter(name: ChannelName): ChannelReporter {
    const route = (attemptId: number, settled: boolean): ChannelReporter | undefined => {
      const partition = this.owners.get(attemptId);
      if (partition === undefined) return undefined;
      if (settled) this.owners.delete(attemptId);
      return this.reporters.get(partition)?.get(name);
    };
    return {
      sent: (id, detail) => route(id, false)?.sent(id, detail),
      delivered: (id, detail, opts) => route(id, true)?.delivered(id, detail, opts),
      failed: (id, detail, opts) => route(id, !opts?.retry)?.failed(id, detail, opts),
      retrying: (id, detail) => route(id, false)?.retrying(id, detail),
      // A channel's health concerns every partition's alerts.
      healthChanged: () => {
        for (const r of this.reporters.values()) r.get(name)?.healthChanged();
      },
    };
  }
}

export interface PartitionHostOptions {
  partition: number;
  /** Loaded, with this node holding the lease (its `lost` stops the host). */
  state: PgPartitionState;
  rules: RuleFile;
  routes: ChannelRoutes;
  registry: Registry;
  profiles: ReadonlyMap<string, DeviceProfile>;
  timeZones: ReadonlyMap<string, string>;
  placeNames?: (siteId: string, unitId: string) => { site: string; unit: string };
  log: Logger;
  metrics?: Metrics;
  /**
   * Kept in the event window beyond what the rules look back at, for a timer that fires late (a
   * takeover): 1 hour by default.
   */
  lookBackMarginMs?: number;
  /**
   * A renotify (an unaccepted alert's repeated signal) for staff on every node, with the alert's
   * latest audit id: it is no audit change, so it is not in the state's flush (cluster/node.ts
   * appends it to the change feed).
   */
  renotify?: (alert: AlertView, seq: number) => void;
  now?: () => number;
}

export class PartitionHost {
  readonly partition: number;
  readonly timers: DurableTimers;
  readonly alerts: AlertManager;
  readonly rules: RuleEngine;
  readonly events: EventWindow;
  private readonly calls: FlushedCalls;
  private stopped = false;

  constructor(private readonly o: PartitionHostOptions) {
    this.partition = o.partition;
    const log = o.log.child({ partition: o.partition });
    this.timers = new DurableTimers(o.state.timers, log.child({ component: "timers" }));
    this.calls = new FlushedCalls(o.state, log);
    this.events = new EventWindow({
      lookBackMs: lookBack(o.rules.rules) + (o.lookBackMarginMs ?? 3_600_000),
      maintenance: o.state.maintenance,
      ...(o.now ? { now: o.now } : {}),
    });
    this.alerts = new AlertManager({
      store: o.state.alerts,
      timers: this.timers,
      log: log.child({ component: "alerts" }),
      channels: o.routes.channelsFor(o.partition),
      durability: this.calls,
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.placeNames ? { placeNames: o.placeNames } : {}),
      ...(o.now ? { now: o.now } : {}),
    });
    o.routes.attach(o.partition, this.alerts);
    if (o.renotify) {
      const renotify = o.renotify;
      this.alerts.on("renotify", (alert: AlertView) => {
        const audit = this.alerts.history(alert.id);
        renotify(alert, audit[audit.length - 1]?.id ?? 0);
      });
    }
    this.rules = new RuleEngine(
      {
        events: this.events,
        cursor: o.state.cursor,
        maintenance: o.state.maintenance,
        registry: o.registry,
        profiles: o.profiles,
        alerts: this.alerts,
        timers: this.timers,
        log: log.child({ component: "rules" }),
        timeZones: o.timeZones,
        ...(o.metrics ? { metrics: o.metrics } : {}),
        ...(o.now ? { now: o.now } : {}),
      },
      o.rules,
    );
    o.state.on("lost", this.onLost);
  }

  /**
   * Takes the partition's recent events (position order; those after the cursor are the ones not
   * yet evaluated), replays what is after the cursor, arms the timers and makes again the attempts
   * left without an outcome. Returns how many events were replayed.
   */
  start(history: readonly LoggedEvent[]): { replayed: number } {
    this.events.append(history);
    const { replayed } = this.rules.start();
    this.timers.start();
    this.alerts.resumeAttempts();
    return { replayed };
  }

  /** The position up to which events have been taken (the follower reads on from here). */
  head(): number {
    return Math.max(this.events.head(), this.rules.position.cursor);
  }

  /**
   * The partition's next events, in position order after `head()`. Resolves once their effects are
   * in PostgreSQL; rejects if the partition was lost meanwhile (the next owner evaluates them).
   */
  async deliver(events: readonly LoggedEvent[]): Promise<void> {
    if (this.stopped) throw new Error(`partition ${this.partition} is no longer held here`);
    const fresh = events.filter((e) => e.logSeq > this.events.head());
    if (fresh.length === 0) return;
    this.events.append(fresh);
    this.rules.onEvents(fresh);
    await this.o.state.flushed();
  }

  /** Reads the partition's maintenance windows again (one was opened or ended, on any node). */
  refreshMaintenance(): Promise<void> {
    return this.o.state.refreshMaintenance();
  }

  /** Resolves once everything this partition did so far is in PostgreSQL. */
  flushed(): Promise<void> {
    return this.o.state.flushed();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.o.state.off("lost", this.onLost);
    this.rules.stop();
    this.timers.stop();
    this.calls.drop();
    this.o.routes.release(this.partition);
    this.o.state.close();
  }

  private onLost = (): void => {
    this.o.log.warn(
      { partition: this.partition },
      "partition state lost; its rules, timers and alerts stop here",
    );
    this.stop();
  };
}
