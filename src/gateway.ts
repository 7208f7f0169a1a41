/**
 * Wires the components together. Constructors do nothing; start() brings components up in
 * dependency order and stop() takes them down in reverse, draining ingest before the database
 * closes.
 */

import { join } from "node:path";
import { PROFILES } from "../devices/index.js";
import type { AlertChannel, ChannelName } from "./alerts/channels/channel.js";
import { ConsoleChannel } from "./alerts/channels/console.js";
import { PagingChannel, type PagingOptions, pagingProblems } from "./alerts/channels/paging.js";
import { PushChannel, PushOptions, type PushOptionsInput, pushKeyMakers } from "./alerts/channels/push.js";
import { WebhookChannel } from "./alerts/channels/webhook.js";
import { AlertManager } from "./alerts/manager.js";
import { alertAuditSource } from "./alerts/series.js";
import { SqliteAlertHistory } from "./alerts/store.js";
import { Bridges } from "./bridges/index.js";
import { BridgeMetrics } from "./bridges/metrics.js";
import { Broker } from "./broker/broker.js";
import { ClusterAlertSeries } from "./cluster/alert-series.js";
import { ClusterNode } from "./cluster/node.js";
import { ChannelRoutes } from "./cluster/partition-host.js";
import { PgAlertHistory } from "./cluster/pg/alert-history.js";
import { PgAlertReads } from "./cluster/pg/alert-reads.js";
import { ChangeFeed } from "./cluster/pg/change-feed.js";
import { claimEnrolment } from "./cluster/pg/enrolment-claims.js";
import { PgEventReads } from "./cluster/pg/event-reads.js";
import { JOB_LOCKS, PgJobLock } from "./cluster/pg/job-lock.js";
import { liveNodes } from "./cluster/pg/live-nodes.js";
import { PgMaintenanceSchedule } from "./cluster/pg/maintenance.js";
import { PgPresenceReads } from "./cluster/pg/presence-reads.js";
import { RabbitAuth, rabbitAuthRoutes } from "./cluster/rabbit-auth.js";
import { RabbitIngest } from "./cluster/rabbit-ingest.js";
import { uninstallReplication } from "./cluster/replicated-tables.js";
import { TableReplication } from "./cluster/replication.js";
import { ClusterStaffAlerts } from "./cluster/staff-alerts.js";
import { ConfigError, formatPath } from "./config/load.js";
import { type Config, isLoopback } from "./config/schema.js";
import { type AlertActions, alertRoutes } from "./http/alerts.js";
import { ClientAddress } from "./http/client-address.js";
import { enrolmentRoutes } from "./http/enrolment.js";
import { metricsRoutes, operationsRoutes, type ReadinessCheck } from "./http/operations.js";
import { pushRoutes } from "./http/push.js";
import { Router } from "./http/router.js";
import { HttpServer } from "./http/server.js";
import { staticFiles } from "./http/static.js";
import { Ingest, type IngestResult, type LoggedEvent, type SubmitOptions } from "./ingest/pipeline.js";
import { Presence } from "./ingest/presence.js";
import type { Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import type { DeviceProfile } from "./model/profile.js";
import { OBSERVE_PROFILE } from "./observe/config.js";
import { ObserveMode } from "./observe/mode.js";
import { observeRoutes } from "./observe/routes.js";
import { ProfileCatalogue, type ProfileStatus } from "./profiles/catalogue.js";
import { Registry } from "./registry/registry.js";
import { baselineRoutes } from "./reports/baseline/routes.js";
import { BaselineStore } from "./reports/baseline/store.js";
import { checkTimeModelSites, loadTimeModel, type TimeModel, TimeModelError } from "./reports/model.js";
import { reportRoutes } from "./reports/routes.js";
import { TimeSavedJob } from "./reports/timesaved.js";
import { checkRuleChannels, loadRuleFile, RuleEngine } from "./rules/engine.js";
import { SqliteRulesEventLog } from "./rules/event-log.js";
import { SqliteMaintenanceSchedule } from "./rules/maintenance.js";
import { SqlitePartitionState } from "./rules/partition.js";
import type { RuleFile } from "./rules/schema.js";
import { DurableTimers } from "./rules/timers.js";
import { ScaipReceiver } from "./scaip/receiver.js";
import { DemoCredentials, shippedDemoSeeds } from "./security/demo-credentials.js";
import { DeviceAuthenticator } from "./security/device-auth.js";
import { SecurityLog } from "./security/log.js";
import { StaffAuth } from "./security/staff-auth.js";
import { DemoMode, seedDemoBaselines } from "./sim/demo.js";
import { EnrolmentStore } from "./staff/enrolment.js";
import type { SiteCatalogueEntry } from "./staff/protocol.js";
import { DEFAULT_STAFF_OPTIONS, type StaffAlerts, StaffServer } from "./staff/server.js";
import { tokenKeyFor } from "./staff/token-key.js";
import { TokenStore, tokenKeyFingerprint } from "./staff/tokens.js";
import { Checkpointer } from "./store/checkpointer.js";
import { type Db, eventLogPath, openDb } from "./store/db.js";
import { deadLetterUsage } from "./store/dead-letter-quota.js";
import { Durability, walPathOf } from "./store/durability.js";
import { StorageHealth } from "./store/health.js";
import { type SeriesStoreSpec, seriesStoreFrom } from "./store/series-spec.js";
import { TimeSeriesSink } from "./store/sink.js";
import { SinkThread } from "./store/sink-thread.js";
import type { TimeSeriesStore } from "./store/timeseries.js";

export interface GatewayOptions {
  config: Config;
  log: Logger;
  /** Override the database location (tests); default `<dataDir>/ata.db`. */
  dbPath?: string;
  profiles?: readonly DeviceProfile[];
  /** Rules to run instead of the configured rule file (main.ts validates it before start). */
  rules?: RuleFile;
  /** The time-saved model instead of the configured file. */
  timeModel?: TimeModel;
  /** Collect Node's default process metrics (off in tests with many gateways per process). */
  defaultMetrics?: boolean;
  /** Paging options instead of the configuration's `channels.paging` (tests). */
  paging?: PagingOptions;
  /** Web Push options instead of the configuration's `channels.push` (tests). */
  push?: PushOptionsInput;
  /** Certificates (PEM) to trust for push services with a private CA (the tests' local push service). */
  pushCa?: string;
}

/** Site and unit display names from the configuration, ids where a name is missing. */
function placeNames(
  sites: readonly { id: string; name: string; units: { id: string; name: string }[] }[],
): (siteId: string, unitId: string) => { site: string; unit: string } {
  const map = new Map<string, { site: string; unit: string }>();
  for (const s of sites) for (const u of s.units) map.set(`${s.id}/${u.id}`, { site: s.name, unit: u.name });
  return (siteId, unitId) => map.get(`${siteId}/${unitId}`) ?? { site: siteId, unit: unitId };
}

export function profileMap(profiles: readonly DeviceProfile[] = PROFILES): Map<string, DeviceProfile> {
  return new Map(profiles.map((p) => [p.id, p]));
}

/** The configured sites with their residents, for the names and settings staff screens receive. */
export function siteCatalogue(config: Config): SiteCatalogueEntry[] {
  return config.sites.map((s) => ({
    ...s,
    residents: config.residents.filter((r) => r.site === s.id),
  }));
}

const NOTHING_URGENT: ReadonlySet<string> = new Set();
export class Gateway {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly profiles: Map<string, DeviceProfile>;
  /** Built-in and external profiles (profiles.dir); `profiles` is its live map. */
  readonly catalogue: ProfileCatalogue;
  db!: Db;
  registry!: Registry;
  ingest!: Ingest;
  presence!: Presence;
  broker!: Broker;
  /** Connections to LoRaWAN network servers' and zigbee2mqtt's brokers (config `bridges`). */
  bridges!: Bridges;
  router!: Router;
  http!: HttpServer;
  /** /metrics on its own address (http.metrics), or null when it is served on the main port. */
  metricsHttp: HttpServer | null = null;
  timers!: DurableTimers;
  alerts!: AlertManager;
  rules!: RuleEngine;
  tokens!: TokenStore;
  /** The Web Push channel, when configured. */
  push: PushChannel | null = null;
  staff!: StaffServer;
  /** Refused connects, throttling, takeovers, token and admin actions (append-only). */
  security!: SecurityLog;
  /** Staff and operator sign-in for HTTP and the staff WebSocket. */
  staffAuth!: StaffAuth;
  /** Delivery channels by name: console always; webhook, push and paging when configured. */
  readonly channels = new Map<ChannelName, AlertChannel>();
  series!: TimeSeriesStore;
  /** On its own thread (a database file); in this thread for an in-memory database (tests). */
  sink!: TimeSeriesSink | SinkThread;
  demo: DemoMode | null = null;
  /** The SCAIP receiver (SIP over UDP, TCP and TLS), when scaip.enabled. */
  scaip: ScaipReceiver | null = null;
  /** Device publishes consumed from RabbitMQ (cluster.rabbitmq.ingest), or null. */
  rabbitIngest: RabbitIngest | null = null;
  /**
   * This node's part in a cluster on PostgreSQL (cluster.postgres), or null: then this process owns
   * every site, with the rules, timers and alerts below.
   */
  cluster: ClusterNode | null = null;
  /** A cluster node's registry, staff tokens and push subscriptions, shared with the others. */
  replication: TableReplication | null = null;
  /** The cluster's alert change feed, followed for this node's staff sockets. */
  private changeFeed: ChangeFeed | null = null;
  /** A cluster node's writer of the alerts' points (one node at a time writes). */
  private alertSeries: ClusterAlertSeries | null = null;
  /** Alerts as this node's staff and HTTP API see them in cluster mode (owners elsewhere). */
  private clusterAlerts: ClusterStaffAlerts | null = null;
  /** Observe mode for unknown devices (off unless configured; src/observe/). */
  observe!: ObserveMode;
  timeSaved!: TimeSavedJob;
  storage!: StorageHealth;
  /** fsyncs the main database off the event loop; visible effects wait for it. */
  durability!: Durability;
  /** WAL checkpoints of the main database and the event log, on their own thread. */
  checkpointer: Checkpointer | null = null;
  readonly readiness: ReadinessCheck[] = [];
  private started = false;
  private registryPoll: NodeJS.Timeout | null = null;

  constructor(private readonly options: GatewayOptions) {
    this.config = options.config;
    this.log = options.log;
    this.metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
    this.catalogue = new ProfileCatalogue({
      builtIn: options.profiles ?? PROFILES,
      dir: options.config.profiles.dir,
      log: options.log.child({ component: "profiles" }),
    });
    this.profiles = this.catalogue.map;
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const t0 = performance.now();
    const dbPath = this.options.dbPath ?? join(config.dataDir, "ata.db");
    // Commits without an fsync on the event loop; what they make visible waits for the durability.
    const onDisk = dbPath !== ":memory:";
    this.db = openDb({ path: dbPath, synchronous: "NORMAL", autoCheckpoint: !onDisk });
    // Checkpoints on their own thread, never inside a commit (a fall's, or the event loop's).
    this.checkpointer = !onDisk
      ? null
      : new Checkpointer(
          { paths: [dbPath, eventLogPath(dbPath)] },
          log.child({ component: "checkpointer" }),
          this.metrics,
        );
    this.durability = new Durability(this.db, walPathOf(dbPath), log.child({ component: "durability" }));
    this.storage = new StorageHealth({
      db: this.db,
      log: log.child({ component: "storage" }),
      metrics: this.metrics,
    });
    // A cluster node's registry, tokens and push subscriptions are the cluster's: its SQLite takes
    // PostgreSQL's rows (and agrees the push keys) before anything reads or seeds them. A single
    // process captures nothing (src/cluster/replicated-tables.ts).
    const clusterPg = config.cluster.postgres;
    const pushOptions = this.options.push ?? config.channels.push;
    if (clusterPg) {
      this.replication = new TableReplication({
        db: this.db,
        url: clusterPg.url,
        nodeId: clusterPg.nodeId,
        log,
        tokenKeyFingerprint: tokenKeyFingerprint(tokenKeyFor(this.db.name)),
        ...(pushOptions ? { keyMakers: pushKeyMakers(PushOptions.parse(pushOptions)) } : {}),
      });
      await this.replication.start();
    } else uninstallReplication(this.db);
    // External profiles before the registry, so devices registered with them are known at once.
    await this.catalogue.load();
    const units = new Set(config.sites.flatMap((s) => s.units.map((u) => `${s.id}/${u.id}`)));
    // `observe`: registered to be observed, never decoded (src/observe/).
    this.registry = new Registry(this.db, new Set([...this.profiles.keys(), OBSERVE_PROFILE]), {
      hasUnit: (site, unit) => units.has(`${site}/${unit}`),
    });
    this.registry.syncResidents(
      config.residents.map((r) => ({
        ref: r.ref,
        siteId: r.site,
        unitId: r.unit,
        roomId: r.room ?? null,
        flags: r.flags,
      })),
    );
    this.seedDevices();
    // Changes from other nodes: a device disabled there loses its session here too (device.changed).
    this.replication?.on("applied", (tables) => {
      if (tables.has("devices") || tables.has("residents")) this.registry.refreshIfChanged();
    });

    this.ingest = new Ingest({
      db: this.db,
      registry: this.registry,
      profiles: this.profiles,
      log: log.child({ component: "ingest" }),
      metrics: this.metrics,
      storage: this.storage,
      // The rules are built later; until then (and for a rule-less gateway) nothing is urgent.
      urgentTypes: () => this.rules?.urgentTypes ?? NOTHING_URGENT,
      onRateLimited: (deviceId) =>
        this.security.record({
          kind: "device_rate_limited",
          subject: deviceId,
          detail: config.ingest.deviceRate,
        }),
      options: {
        ...config.ingest,
        maxPayloadBytes: config.mqtt.maxPayloadBytes,
        dbPath: eventLogPath(dbPath),
        autoCheckpoint: this.checkpointer === null,
        writerNice: config.priority.fallPathNice,
      },
    });
    this.ingest.start();
    this.metrics.deadLetters = () => deadLetterUsage(this.db);

    this.presence = new Presence({
      db: this.db,
      registry: this.registry,
      profiles: this.profiles,
      log: log.child({ component: "presence" }),
      metrics: this.metrics,
      storage: this.storage,
      record: async (deviceId, events) => {
        await this.ingest.record(deviceId, events);
      },
      ...(clusterPg ? { node: clusterPg.nodeId } : {}),
    });
    this.presence.start();
    this.ingest.on("events", (events) => this.presence.onEvents(events));

    this.tokens = new TokenStore(this.db);
    this.security = new SecurityLog(this.db, log.child({ component: "security" }));
    this.security.start();
    this.tokens.onAudit = (e) => this.security.record(e);
    this.observe = new ObserveMode({
      db: this.db,
      config: config.observe,
      sites: config.sites,
      registry: this.registry,
      security: this.security,
      log: log.child({ component: "observe" }),
    });
    this.observe.start();
    this.staffAuth = new StaffAuth({
      tokens: this.tokens,
      adminToken: config.http.adminToken,
      allSites: () => config.sites.map((s) => s.id),
      security: this.security,
      options: config.staffAuth,
    });
    this.ensureStaffTokens();
    // Demo secrets are public: they exist only while demo mode is on.
    const demoCredentials = new DemoCredentials({
      db: this.db,
      registry: this.registry,
      tokens: this.tokens,
      security: this.security,
      log,
    });
    if (config.demo.enabled) demoCredentials.enable(config.demo);
    else await demoCredentials.disable(config.demo, shippedDemoSeeds());
    // One process owns every site: one partition state, every store on the main connection, whose
    // transaction is the unit of work alerts, timers and the rules' cursor share.
    const partition = new SqlitePartitionState(this.db);
    this.timers = new DurableTimers(partition.timers, log.child({ component: "timers" }));
    this.timers.storage = this.storage;
    let staff: StaffServer | null = null;
    // Who the console reaches: this process's sockets, or in cluster mode everyone on any node.
    this.channels.set(
      "console",
      new ConsoleChannel({ connected: () => this.cluster?.presence.connected() ?? staff?.connected() ?? [] }),
    );
    if (config.alarms.fallbackWebhook)
      this.channels.set(
        "webhook",
        new WebhookChannel({
          db: this.db,
          timers: this.timers,
          log: log.child({ component: "webhook" }),
          options: config.alarms.fallbackWebhook,
        }),
      );
    const paging = this.options.paging ?? config.channels.paging;
    if (paging) {
      const problems = pagingProblems(paging, config.sites, this.tokens.list());
      if (problems.length)
        throw new ConfigError(
          "configuration",
          problems.map((p) => ({
            path: formatPath(["channels", "paging", ...p.path]),
            message: p.message,
          })),
        );
      this.channels.set(
        "paging",
        new PagingChannel({
          options: paging,
          log: log.child({ component: "paging" }),
          // Tokens created at run time (`ata tokens create`) carry handsets too; a revoked one does not.
          // One row by id, not the whole list: this runs for every alert the paging system may get.
          staff: (id) => {
            const t = this.tokens.get(id);
            return t && !t.revoked
              ? { id: t.tokenId, name: t.name, role: t.role, sites: t.sites, units: t.units }
              : undefined;
          },
        }),
      );
    }
    const push = this.options.push ?? config.channels.push;
    if (push) {
      this.push = new PushChannel({
        db: this.db,
        staff: this.tokens,
        log: log.child({ component: "push" }),
        options: PushOptions.parse(push),
        ...(this.options.pushCa ? { ca: this.options.pushCa } : {}),
        onThread: (tid) => this.metrics.threads.set({ thread: "push-sender", tid: String(tid) }, 1),
      });
      this.channels.set("push", this.push);
    }
    const rules = this.options.rules ?? loadRuleFile(config.rulesFile);
    this.checkLadders(rules);
    const names = placeNames(config.sites);
    this.alerts = new AlertManager({
      store: partition.alerts,
      timers: this.timers,
      log: log.child({ component: "alerts" }),
      channels: this.channels,
      metrics: this.metrics,
      placeNames: names,
      durability: this.durability,
    });
    this.metrics.channelHealth = () =>
      [...this.channels.values()].map((c) => ({ channel: c.name, ok: c.health().ok }));
    const clusterConfig = config.cluster.postgres;
    // In cluster mode the node's channels report to the partition that made each attempt.
    const routes = clusterConfig ? new ChannelRoutes(this.channels) : null;
    for (const c of this.channels.values())
      await c.start?.(routes ? routes.reporter(c.name) : this.alerts.reporter(c.name));
    let staffAlerts: StaffAlerts = this.alerts;
    if (clusterConfig && routes) {
      const cluster = new ClusterNode({
        config: clusterConfig,
        db: this.db,
        rules: () => this.rules.ruleFile,
        routes,
        registry: this.registry,
        profiles: this.profiles,
        timeZones: new Map(config.sites.map((s) => [s.id, s.timeZone])),
        placeNames: names,
        log,
        metrics: this.metrics,
      });
      this.cluster = cluster;
      this.changeFeed = new ChangeFeed({
        pool: cluster.pool,
        retentionMs: clusterConfig.changeFeedRetentionHours * 3_600_000,
      });
      const clusterAlerts = new ClusterStaffAlerts({
        pool: cluster.pool,
        feed: this.changeFeed,
        partitions: clusterConfig.partitions,
        send: cluster.commands.sender(clusterConfig.nodeId, clusterConfig.commandTimeoutMs),
        log: log.child({ component: "staff-alerts" }),
      });
      staffAlerts = this.clusterAlerts = clusterAlerts;
    }
    this.staff = staff = new StaffServer(
      staffAlerts,
      this.tokens,
      log.child({ component: "staff" }),
      DEFAULT_STAFF_OPTIONS,
      siteCatalogue(config),
      this.durability,
      { auth: this.staffAuth, log: this.security },
    );
    const presence = this.cluster?.presence;
    if (presence) this.staff.onSessions = (sockets) => presence.publish(sockets);
    this.rules = new RuleEngine(
      {
        events: new SqliteRulesEventLog(this.db),
        cursor: partition.cursor,
        maintenance: partition.maintenance,
        registry: this.registry,
        profiles: this.profiles,
        alerts: this.alerts,
        timers: this.timers,
        log: log.child({ component: "rules" }),
        timeZones: new Map(config.sites.map((s) => [s.id, s.timeZone])),
        storage: this.storage,
        metrics: this.metrics,
      },
      rules,
    );
    // One node: the rules take every committed event. A cluster node forwards them to the shared
    // log instead, and the owner of each site's partition evaluates them (src/cluster/node.ts).
    if (this.cluster) {
      const cluster = this.cluster;
      this.ingest.on("events", (events: LoggedEvent[]) => {
        const last = events[events.length - 1];
        if (last) cluster.logged(last.logSeq);
      });
    } else this.ingest.on("events", (events) => this.rules.onEvents(events));

    this.series = this.createSeriesStore();
    try {
      await this.series.start();
    } catch (err) {
      // Ingest never waits for the time-series store: the event log is the buffer, and the sink
      // creates what is missing on its first successful write.
      log.warn(
        { err: (err as Error).message, store: this.series.kind },
        "time-series store not reachable at start; will retry",
      );
    }
    // A cursor per store: a store configured anew is filled from the event log from its start.
    const storeId = this.seriesStoreId();
    const sinkLog = log.child({ component: "sink" });
    if (dbPath === ":memory:") {
      // Another thread cannot open this database: the sink runs here, in small batches for the
      // embedded store so that no stretch is long.
      const sink = new TimeSeriesSink({
        db: this.db,
        store: this.series,
        storeId,
        logger: sinkLog,
        batchSize: this.series.kind === "embedded" ? 1000 : 5000,
      });
      sink.addSource(alertAuditSource(this.db));
      this.sink = sink;
    } else
      this.sink = new SinkThread({
        db: this.db,
        dbPath,
        store: this.seriesStoreSpec(),
        storeId,
        // Off the event loop, batches can be large for either store.
        batchSize: 5000,
        log: sinkLog,
        onThread: (tid) => this.metrics.threads.set({ thread: "sink", tid: String(tid) }, 1),
      });
    this.sink.on("cursorFailed", (f: { error: unknown }) => this.storage.failed("sink", f.error));
    this.sink.start();
    // A cluster node's SQLite audit is empty: the alerts' points come from the change feed instead,
    // written by whichever node holds the writer's lock, to the same store.
    if (this.cluster && clusterConfig)
      this.alertSeries = new ClusterAlertSeries({
        pool: this.cluster.pool,
        store: this.series,
        storeId,
        partitions: clusterConfig.partitions,
        log: log.child({ component: "alert-series" }),
      });
    this.ingest.on("events", () => this.sink.notify());
    this.alerts.on("change", () => this.sink.notify());
    // Events logged before a crash whose rule transaction did not commit: through the rules now,
    // in log order with the timers that fell due between them, before any device can connect
    // (their redeliveries are duplicates the rules never see). Then the timers still due fire.
    if (this.cluster) {
      // The partitions this node acquires are taken up with their own rules, timers and alerts;
      // this process's own rules and alerts stay idle (no site is this process's alone). Its timers
      // run: the webhook channel's retries are this node's own work.
      this.timers.start();
      await this.cluster.start();
      await this.changeFeed?.start();
      await this.alertSeries?.start();
      (staffAlerts as ClusterStaffAlerts).start();
    } else {
      this.rules.start();
      // Armed after every handler is registered; due timers from before a restart fire now.
      this.timers.start();
      // Attempts a crash left without an outcome are made again, before devices reconnect.
      const resumed = this.alerts.resumeAttempts();
      if (resumed)
        log.warn({ attempts: resumed }, "channel attempts without an outcome made again after restart");
    }
    this.staff.start();

    // One credential check for the embedded broker and RabbitMQ (cluster mode): a device's failed
    // attempts count in the same throttles whichever way it came in.
    const deviceAuth = new DeviceAuthenticator({
      limits: config.mqtt.authFailures,
      registry: this.registry,
      log: log.child({ component: "broker" }),
      metrics: this.metrics,
      security: this.security,
      observe: this.observe,
    });
    this.broker = new Broker({
      auth: deviceAuth,
      config: config.mqtt,
      tlsOnly: config.tlsOnly,
      registry: this.registry,
      log: log.child({ component: "broker" }),
      metrics: this.metrics,
      submit: (deviceId, topic, channel, payload) => this.submit(deviceId, topic, channel, payload),
      security: this.security,
      observe: this.observe,
    });
    // A device whose session keeps being taken over: its secret is in two places. The rules turn
    // the tamper event into an alert (config/rules.yaml, "tamper"), like a sensor forced open.
    this.broker.on("device.credentials_shared", (id: string, takeovers: number) => {
      const at = new Date();
      this.ingest
        .record(id, [
          {
            type: "device.tamper",
            phase: "point",
            occurredAt: at.toISOString(),
            eventId: `gw:credentials-shared:${at.getTime()}`,
            data: { reason: `credentials_shared: ${takeovers} session takeovers` },
          },
        ])
        .catch((err: Error) =>
          log.error({ deviceId: id, err: err.message }, "could not record the takeover alert"),
        );
    });
    this.broker.on("device.connected", (id: string) => this.presence.onConnected(id));
    this.broker.on("device.disconnected", (id: string, reason: string) =>
      this.presence.onDisconnected(id, reason),
    );
    this.broker.on("device.status", (id: string, payload: string) => this.presence.onStatus(id, payload));
    this.registry.on("device.changed", (d: { id: string; enabled: boolean }) => {
      // A disabled device loses its session at once, not at its next reconnect.
      if (!d.enabled) this.disconnectDevice(d.id);
    });
    // An observed device registered with its real profile reconnects with its own secret.
    this.registry.on("device.changed", (d: { id: string; profile: string }) => {
      if (d.profile !== OBSERVE_PROFILE && this.broker.isObserved(d.id)) this.disconnectDevice(d.id);
    });

    // Devices added or disabled with the `ata` CLI while the gateway runs.
    this.registryPoll = setInterval(() => this.registry.refreshIfChanged(), 2000);
    this.registryPoll.unref();

    const addresses = new ClientAddress(config.http.trustedProxies);
    this.staff.clientAddress = addresses;
    this.router = new Router(log.child({ component: "http" }), this.durability, this.staffAuth, addresses);
    this.readiness.push({ name: "database", check: () => ({ ok: this.db.open }) });
    this.readiness.push({
      name: "disk",
      check: () => {
        const f = this.storage.lastFailure;
        const rules = this.rules.position;
        if (!f) return { ok: true, detail: { rulesCursor: rules.cursor } };
        return {
          ok: false,
          detail: {
            reason: `storage refuses writes (${f.code}): device publishes are refused until it recovers`,
            code: f.code,
            component: f.component,
            error: f.message,
            since: f.at,
            failures: f.count,
            rulesBehind: rules.behind,
          },
        };
      },
    });
    this.readiness.push({ name: "mqtt", check: () => ({ ok: this.broker.addresses.length > 0 }) });
    if (this.cluster) {
      const cluster = this.cluster;
      this.metrics.cluster(
        () => {
          const status = cluster.status();
          return {
            partitions: status.partitions.length,
            liveNodes: status.liveNodes,
            forwarderBacklog: Math.max(0, status.forwarder.logged - status.forwarder.forwarded),
            replicationBacklog: backlogOf(this.replication),
            forwardFailing: status.forwarder.lastError !== null,
          };
        },
        () => cluster.partitionLag(),
      );
      const alertSeries = this.alertSeries;
      if (alertSeries)
        this.metrics.alertSeries(
          () => alertSeries.status(),
          () => alertSeries.backlog(),
        );
      // Ready once the node takes part: its share of partitions held and the shared log reachable.
      this.readiness.push({
        name: "cluster",
        check: () => {
          const detail = {
            ...cluster.status(),
            replication: this.replication?.status() ?? null,
            alertSeries: this.alertSeries?.status() ?? null,
          };
          return { ok: detail.forwarder.lastError === null && detail.liveNodes !== null, detail };
        },
      });
    }
    this.bridges = new Bridges(config.bridges, {
      isRegistered: (id) => this.registry.peek(id) !== undefined,
      submit: (id, topic, channel, payload) => this.submit(id, topic, channel, payload),
      refuse: (id, topic, code, message, payload) => this.ingest.refuse(id, topic, code, message, payload),
      seen: (id, reason) => this.presence.onSeen(id, reason),
      gone: (id, reason) => this.presence.onGone(id, reason),
      log,
      metrics: new BridgeMetrics(this.metrics),
    });
    this.readiness.push(...this.bridges.readiness());
    const rabbitIngest = config.cluster.rabbitmq.ingest;
    if (rabbitIngest) {
      const clusterPool = this.cluster?.pool;
      const ingest = new RabbitIngest({
        config: rabbitIngest,
        exchange: config.cluster.rabbitmq.exchange,
        submit: (id, topic, channel, payload, options) => this.submit(id, topic, channel, payload, options),
        refuse: (id, topic, code, message, payload) => this.ingest.refuse(id, topic, code, message, payload),
        status: (id, payload) => this.presence.onStatus(id, payload),
        presence: {
          connected: (id) => this.presence.onConnected(id),
          disconnected: (id, reason) => this.presence.onDisconnected(id, reason),
        },
        admits: (id) => {
          const d = this.registry.peek(id);
          return !d ? "unknown" : d.enabled ? "yes" : "disabled";
        },
        // The load spread over the cluster's live nodes (rabbit-ingest.ts, "Load spread").
        ...(clusterPool && clusterConfig
          ? {
              balance: {
                nodeId: clusterConfig.nodeId,
                liveNodes: () => liveNodes(clusterPool, clusterConfig.leaseMs),
              },
            }
          : {}),
        log: log.child({ component: "rabbitmq-ingest" }),
        metrics: this.metrics,
      });
      this.rabbitIngest = ingest;
      // Not ready while it does not consume: RabbitMQ keeps the publishes, but nothing raises alerts.
      this.readiness.push({
        name: "rabbitmq-ingest",
        check: () => {
          const detail = ingest.status();
          return { ok: detail.ready, detail };
        },
      });
    }
    // A refused external profile does not make the gateway unready (the others run); it shows here.
    this.readiness.push({ name: "profiles", check: () => ({ ok: true, detail: this.catalogue.status() }) });
    this.readiness.push({
      name: "scaip",
      check: () => (this.scaip ? this.scaip.readiness() : { ok: true, detail: { enabled: false } }),
    });
    this.readiness.push({
      name: "channels",
      // A channel that is down does not make the gateway unready (the ladder skips it and the
      // console still works), but an operator sees it here and in ata_channel_healthy.
      check: () => {
        const detail: Record<string, unknown> = {};
        for (const c of this.channels.values()) detail[c.name] = c.health();
        return { ok: this.db.open, detail };
      },
    });
    this.readiness.push({
      name: "timeseries",
      check: async () => {
        const backlog = this.sink.backlog();
        const reachable = await this.series.ping().catch(() => false);
        // Ready while the store answers or the backlog is modest: the log buffers an outage, and
        // an operator should see it here before it grows large.
        return {
          ok: reachable || backlog < 100_000,
          detail: {
            store: this.series.kind,
            reachable,
            backlog,
            lastError: this.sink.lastError?.message ?? null,
          },
        };
      },
    });
    this.metrics.timeseries = () => ({
      backlog: this.sink.backlog(),
      failures: this.sink.counters.writeFailures,
    });
    operationsRoutes(this.router, {
      db: this.db,
      registry: this.registry,
      presence: this.presence,
      metrics: this.metrics,
      adminToken: config.http.adminToken,
      readiness: this.readiness,
      security: this.security,
      notices: () => {
        const demoExposed = this.demoExposed();
        return {
          demo: config.demo.enabled,
          demoExposed,
          warnings: [
            ...(demoExposed
              ? [
                  "demo mode on a network address: the demo's device secrets and staff tokens are public; turn demo mode off or listen on 127.0.0.1 only",
                ]
              : []),
            ...this.observe.warnings(),
          ],
        };
      },
      rules: () => this.rules.rules,
    });
    // In cluster mode the API reads PostgreSQL, and what it does to an alert runs on its owner.
    const cluster = this.cluster;
    const alertActions: AlertActions = this.clusterAlerts?.actions() ?? this.alerts;
    alertRoutes(this.router, {
      maintenance: cluster
        ? new PgMaintenanceSchedule(cluster.pool, (site) => cluster.maintenanceChanged(site))
        : new SqliteMaintenanceSchedule(this.db),
      alerts: alertActions,
      history: cluster
        ? new PgAlertHistory(cluster.readPool)
        : new SqliteAlertHistory(this.db, partition.alerts),
      places: siteCatalogue(config),
    });
    if (config.cluster.rabbitmq.enabled)
      rabbitAuthRoutes(
        this.router,
        new RabbitAuth({
          config: config.cluster.rabbitmq,
          registry: this.registry,
          auth: deviceAuth,
          security: this.security,
          metrics: this.metrics,
          log: log.child({ component: "rabbitmq-auth" }),
          // Until the ingest queue exists a publish would be confirmed with nowhere to go.
          ...(this.rabbitIngest ? { ingestDeclared: () => this.rabbitIngest?.declared ?? false } : {}),
        }),
      );
    observeRoutes(this.router, {
      observe: this.observe,
      config: config.observe,
      sites: config.sites,
      registry: this.registry,
      security: this.security,
    });
    const replication = this.replication;
    const clusterNode = config.cluster.postgres;
    enrolmentRoutes(this.router, {
      tokens: this.tokens,
      enrolments: new EnrolmentStore(this.db, this.tokens, {
        ttlMs: config.enrolment.codeTtlMinutes * 60_000,
        // A cluster's codes are claimed in PostgreSQL first: each node's SQLite alone would let two
        // nodes redeem one code (src/cluster/pg/enrolment-claims.ts).
        ...(replication && clusterNode
          ? { claim: (id: string) => claimEnrolment(replication.pool, id, clusterNode.nodeId) }
          : {}),
      }),
      sites: siteCatalogue(config),
      publicUrl: config.enrolment.publicUrl,
      tls: Boolean(config.http.tls),
      limits: {
        maxFailures: config.enrolment.maxFailures,
        windowMs: config.enrolment.failureWindowSec * 1000,
      },
      log: log.child({ component: "enrolment" }),
      onRevoked: (tokenId) => this.staff.closeToken(tokenId),
    });
    // Always registered: without a push channel the key is null, so the console hides its
    // "allow notifications" control instead of meeting 404s.
    pushRoutes(this.router, {
      push: this.push,
      alerts: alertActions,
      tokens: this.tokens,
    });
    const timeModel = this.options.timeModel ?? loadTimeModel(config.timeModelFile);
    const modelProblems = checkTimeModelSites(
      timeModel,
      config.sites.map((s) => s.id),
    );
    if (modelProblems.length) throw new TimeModelError(config.timeModelFile, modelProblems);
    const sites = config.sites.map((s) => ({ id: s.id, timeZone: s.timeZone, units: s.units }));
    const baselineStore = new BaselineStore(this.db);
    // A cluster node's SQLite has no alerts: its partitions' owners keep them in PostgreSQL. The
    // time-saved job's points go to the shared store, so one node at a time computes them.
    const pgPartitions = config.cluster.postgres?.partitions;
    const alertReads =
      cluster && pgPartitions !== undefined ? new PgAlertReads(cluster.readPool, pgPartitions) : undefined;
    // Its SQLite log holds only the events this node ingested; the shared log holds every node's.
    const pgRetention = config.cluster.postgres?.eventRetentionDays;
    const eventReads =
      cluster && pgRetention !== undefined ? new PgEventReads(cluster.readPool, pgRetention) : undefined;
    // Likewise devices' online changes, each logged by the node that saw the change.
    const presenceReads = cluster ? new PgPresenceReads(cluster.readPool) : undefined;
    this.timeSaved = new TimeSavedJob({
      db: this.db,
      alertReads,
      eventReads,
      presenceReads,
      lock: cluster ? new PgJobLock(cluster.readPool, JOB_LOCKS.timeSaved) : undefined,
      store: this.series,
      model: timeModel,
      sites,
      profiles: this.profiles,
      baselineStore,
      log: log.child({ component: "time-saved" }),
    });
    reportRoutes(this.router, {
      db: this.db,
      alertReads,
      eventReads,
      presenceReads,
      store: this.series,
      model: timeModel,
      sites,
      profiles: this.profiles,
      job: this.timeSaved,
      baselineStore,
    });
    const timeSaved = this.timeSaved;
    baselineRoutes(this.router, {
      db: this.db,
      sites,
      store: baselineStore,
      // Not awaited: the history is recomputed in the background, as on start.
      saved: () => void timeSaved.runOnce().catch(() => undefined),
    });
    const metricsAt = config.http.metrics;
    const metricsLog = log.child({ component: "metrics-http" });
    const metricsRouter = metricsAt ? new Router(metricsLog) : this.router;
    metricsRoutes(metricsRouter, { metrics: this.metrics, metricsToken: config.http.metricsToken });
    if (metricsAt)
      this.metricsHttp = new HttpServer(metricsRouter, metricsLog, {
        host: metricsAt.host,
        port: metricsAt.port,
        tls: metricsAt.tls ? config.http.tls : undefined,
      });
    this.http = new HttpServer(this.router, log.child({ component: "http" }), config.http);
    this.http.onUpgrade("/staff/ws", this.staff.handleUpgrade);
    this.http.fallback(staticFiles());

    await this.broker.start();
    // Before the HTTP listener: the ingest queue is declared before RabbitMQ can ask this gateway
    // to admit a device (and before the ready line).
    await this.rabbitIngest?.start();
    // Background connects: a network server that is away does not hold up the gateway.
    this.bridges.start();
    if (config.scaip.enabled) {
      this.scaip = new ScaipReceiver({
        config: config.scaip,
        tlsOnly: config.tlsOnly,
        tls: config.mqtt.tls,
        seeds: config.devices,
        registry: this.registry,
        profiles: this.profiles,
        ingest: this.ingest,
        security: this.security,
        log: log.child({ component: "scaip" }),
      });
      await this.scaip.start();
    }
    await this.http.start();
    await this.metricsHttp?.start();
    // One line an operator can check against what the site means to expose (tlsOnly or not).
    log.info(
      {
        tlsOnly: config.tlsOnly,
        listeners: this.listeners().map((l) => `${l.scheme}://${l.host}:${l.port} (${l.service})`),
      },
      "listeners open",
    );
    if (this.demoExposed())
      log.warn(
        {
          listeners: this.listeners()
            .filter((l) => !isLoopback(l.host))
            .map((l) => `${l.host}:${l.port}`),
        },
        "DEMO MODE ON A NETWORK ADDRESS: the demo's device secrets and staff tokens are public, and simulated devices and a simulated colleague are running. Anyone who can reach these ports can sign in. Turn demo mode off (demo.enabled: false) or listen on 127.0.0.1 only.",
      );
    // In the background: the first run backfills missing days and must not delay accepting devices.
    void this.timeSaved
      .start()
      .catch((err: Error) => log.error({ err: err.message }, "time-saved job failed to start"));
    this.started = true;
    if (config.demo.enabled) {
      seedDemoBaselines(baselineStore, config, log);
      this.demo = new DemoMode({
        config,
        mqttUrl: `mqtt://127.0.0.1:${this.mqttPort()}`,
        alerts: this.alerts,
        rules: this.rules,
        log: log.child({ component: "demo" }),
        options: config.demo,
        markOnline: async (deviceId, at) => {
          await this.ingest.record(deviceId, [
            {
              type: "device.online",
              eventId: `gw:demo-online:${at}`,
              occurredAt: new Date(at).toISOString(),
              phase: "point",
              data: { reason: "demo history" },
            },
          ]);
        },
        historyPlayed: async (from, to) => {
          for (const site of config.sites)
            await this.timeSaved.recompute(site.id, new Date(from), new Date(to));
        },
        lastEventAt: (ids) => this.lastEventAt(ids),
      });
      this.demo.start();
    }
    log.info(
      { devices: this.registry.size, ms: Math.round(performance.now() - t0), http: this.http.port },
      "gateway started",
    );
  }

  /** Graceful: stop taking connections, drain and commit what is queued, close the database. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.registryPoll) clearInterval(this.registryPoll);
    await this.demo?.stop();
    // Staff sockets first: the HTTP server's close waits for every open upgrade.
    this.staff.stop();
    await this.http.stop();
    await this.metricsHttp?.stop();
    await this.scaip?.stop();
    await this.broker.stop();
    // Before ingest stops: what is in flight is committed and acked, the rest stays in the queue.
    await this.rabbitIngest?.stop();
    await this.bridges.stop();
    await this.ingest.stop();
    await this.timeSaved.stop();
    // Before the store it writes to; its cursor is saved and its lock released.
    await this.alertSeries?.stop();
    await this.sink.stop();
    await this.series.stop();
    this.rules.stop();
    this.timers.stop();
    // Its partitions given up (each stops acting first) before the channels they call stop.
    await this.changeFeed?.stop();
    await this.cluster?.stop();
    await this.replication?.stop();
    // What waits for the last fsync (a channel call, a staff message) goes out before channels stop.
    this.durability.close();
    for (const c of this.channels.values()) await c.stop?.();
    this.presence.stop();
    this.security.stop();
    this.storage.stop();
    await this.checkpointer?.close();
    this.db.close();
    this.log.info("gateway stopped");
  }

  /**
   * A device's publish into ingest. In cluster mode it is acknowledged (PUBACK, RabbitMQ's ack) only
   * once its events are in the shared log, so an acknowledged event survives this node's machine.
   */
  private async submit(
    deviceId: string,
    topic: string,
    channel: string,
    payload: Buffer,
    options?: SubmitOptions,
  ): Promise<IngestResult> {
    const result = await this.ingest.submit(deviceId, topic, channel, payload, options);
    if (this.cluster && result.ok) await this.cluster.drained();
    return result;
  }

  /**
   * The configuration's staff tokens, created when missing. A token already held by another staff
   * token in the database (made with `ata tokens create`) is a configuration error with its path,
   * listed with every other such clash: otherwise one secret would sign in as either of two people.
   */
  private ensureStaffTokens(): void {
    const problems: { path: string; message: string }[] = [];
    this.config.staff.forEach((t, i) => {
      const holder = this.tokens.holderOf(t.token);
      if (holder !== null && holder !== t.id)
        problems.push({
          path: formatPath(["staff", i, "token"]),
          message: `already the token of "${holder}" in the database; each staff token needs its own`,
        });
    });
    if (problems.length) throw new ConfigError("configuration", problems);
    for (const t of this.config.staff) this.tokens.ensure({ ...t, units: t.units ?? null, actor: "config" });
  }

  /**
   * SIGHUP: re-read the external profile directory. A changed profile serves new publishes at once;
   * a removed one's devices stay registered and dead-letter `profile_missing`.
   */
  async reloadProfiles(): Promise<ProfileStatus> {
    const before = new Set(this.catalogue.ids);
    const status = await this.catalogue.load();
    const after = this.catalogue.ids;
    this.registry.updateProfiles({
      added: [...after].filter((id) => !before.has(id)),
      removed: [...before].filter((id) => !after.has(id)),
    });
    return status;
  }

  /** SIGHUP: re-read the rule file; an invalid one keeps the running rules. */
  reloadRules() {
    return this.rules.reload(() => {
      const file = loadRuleFile(this.config.rulesFile);
      this.checkLadders(file);
      return file;
    });
  }

  /** Every ladder names only channels this gateway has; otherwise the rule file is refused with paths. */
  private checkLadders(file: RuleFile): void {
    checkRuleChannels(file, new Set(this.channels.keys()), this.config.rulesFile);
  }

  /** Every listener this gateway has open: MQTT, the console/API/staff WebSocket, metrics. */
  /**
   * The latest occurred_at of any of these devices' events, heartbeats included. Through the
   * (site, time) index from the newest row back (`+device_id` keeps the planner off the per-device
   * index, which would read every row of each device): a few rows when the devices were active.
   */
  private lastEventAt(deviceIds: readonly string[]): number | null {
    const ids = JSON.stringify(deviceIds);
    const sites = this.db
      .prepare("SELECT DISTINCT site_id FROM devices WHERE id IN (SELECT value FROM json_each(?))")
      .pluck()
      .all(ids) as string[];
    const newest = this.db
      .prepare(
        `SELECT occurred_at FROM events WHERE site_id = ? AND +device_id IN (SELECT value FROM json_each(?))
         ORDER BY occurred_at DESC LIMIT 1`,
      )
      .pluck();
    let last: number | null = null;
    for (const site of sites) {
      const at = newest.get(site, ids) as number | undefined;
      if (at !== undefined && (last === null || at > last)) last = at;
    }
    return last;
  }

  /** Demo mode with a listener reachable from other machines: said at start, in /readyz and on the sign-in page. */
  demoExposed(): boolean {
    return this.config.demo.enabled && this.listeners().some((l) => !isLoopback(l.host));
  }

  listeners(): {
    service: "mqtt" | "http" | "metrics";
    scheme: string;
    host: string;
    port: number;
    tls: boolean;
  }[] {
    const mqttScheme = { tcp: "mqtt", tls: "mqtts", ws: "ws", wss: "wss" } as const;
    const web = (tls: boolean) => (tls ? "https" : "http");
    const out: ReturnType<Gateway["listeners"]> = this.broker.addresses.map((a) => ({
      service: "mqtt" as const,
      scheme: mqttScheme[a.name],
      host: a.host,
      port: a.port,
      tls: a.tls,
    }));
    const httpTls = Boolean(this.config.http.tls);
    out.push({
      service: "http",
      scheme: web(httpTls),
      host: this.config.http.host,
      port: this.http.port,
      tls: httpTls,
    });
    const m = this.config.http.metrics;
    if (m && this.metricsHttp)
      out.push({
        service: "metrics",
        scheme: web(m.tls),
        host: m.host,
        port: this.metricsHttp.port,
        tls: m.tls,
      });
    return out;
  }

  mqttPort(name: "tcp" | "ws" | "tls" | "wss" = "tcp"): number {
    const a = this.broker.addresses.find((x) => x.name === name);
    if (!a) throw new Error(`no ${name} listener`);
    return a.port;
  }

  /** Names the store the configuration points at, for the sink's cursors: `embedded`, `influx:<url>/<db>`. */
  private seriesStoreId(): string {
    const influx = this.config.influx;
    if (!influx) return "embedded";
    const url = new URL(influx.url);
    return `influx:${url.origin}${url.pathname.replace(/\/+$/, "")}/${influx.database}`;
  }

  /** The time-series store the configuration names, as data (the sink thread makes its own from it). */
  private seriesStoreSpec(): SeriesStoreSpec {
    const influx = this.config.influx;
    if (!influx) return { kind: "embedded", path: join(this.config.dataDir, "series.db") };
    const url = new URL(influx.url);
    return {
      kind: "influx",
      options: {
        host: url.hostname,
        port: Number(url.port || (url.protocol === "https:" ? 443 : 8086)),
        protocol: url.protocol === "https:" ? "https" : "http",
        database: influx.database,
        retentionPolicy: influx.retentionPolicy,
        retentionDuration: influx.retentionDuration,
        manageDatabase: influx.manageDatabase,
        ...(influx.username ? { username: influx.username } : {}),
        ...(influx.password ? { password: influx.password } : {}),
      },
    };
  }

  private createSeriesStore(): TimeSeriesStore {
    return seriesStoreFrom(this.seriesStoreSpec(), this.log.child({ component: "series-writer" }));
  }

  private disconnectDevice(id: string): void {
    const clients = (
      this.broker.aedes as unknown as { clients: Record<string, { close(): void }> } | undefined
    )?.clients;
    const client = clients?.[id];
    if (client) client.close();
  }

  private seedDevices(): void {
    for (const d of this.config.devices) {
      if (this.registry.get(d.id)) continue;
      this.registry.add({
        id: d.id,
        profile: d.profile,
        siteId: d.site,
        unitId: d.unit,
        roomId: d.room ?? null,
        residentRef: d.resident ?? null,
        secret: d.secret,
      });
      this.log.info({ deviceId: d.id, profile: d.profile }, "seeded device from configuration");
    }
  }
}

/** Changes not yet in PostgreSQL, or null when there is no replication (or its database closed). */
function backlogOf(replication: TableReplication | null): number | null {
  const n = replication?.status().outbox ?? -1;
  return n < 0 ? null : n;
}
