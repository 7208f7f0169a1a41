/**
 * Wires the components together. Constructors do nothing; start() brings components up in
 * dependency order and stop() takes them down in reverse, draining ingest before the database
 * closes.
 */
import { join } from "node:path";
import { PROFILES } from "../devices/index.js";
import { Broker } from "./broker/broker.js";
import type { Config } from "./config/schema.js";
import { operationsRoutes, type ReadinessCheck } from "./http/operations.js";
import { Router } from "./http/router.js";
import { HttpServer } from "./http/server.js";
import { Ingest } from "./ingest/pipeline.js";
import { Presence } from "./ingest/presence.js";
import type { Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import type { DeviceProfile } from "./model/profile.js";
import { Registry } from "./registry/registry.js";
import { type Db, openDb } from "./store/db.js";

export interface GatewayOptions {
  config: Config;
  log: Logger;
  /** Override the database location (tests); default `<dataDir>/ata.db`. */
  dbPath?: string;
  profiles?: readonly DeviceProfile[];
  /** Collect Node's default process metrics (off in tests with many gateways per process). */
  defaultMetrics?: boolean;
}

export function profileMap(profiles: readonly DeviceProfile[] = PROFILES): Map<string, DeviceProfile> {
  return new Map(profiles.map((p) => [p.id, p]));
}

export class Gateway {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly profiles: Map<string, DeviceProfile>;
  db!: Db;
  registry!: Registry;
  ingest!: Ingest;
  presence!: Presence;
  broker!: Broker;
  router!: Router;
  http!: HttpServer;
  readonly readiness: ReadinessCheck[] = [];
  private started = false;
  private registryPoll: NodeJS.Timeout | null = null;

  constructor(private readonly options: GatewayOptions) {
    this.config = options.config;
    this.log = options.log;
    this.metrics = new Metrics({ defaultMetrics: options.defaultMetrics ?? true });
    this.profiles = profileMap(options.profiles);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const t0 = performance.now();
    this.db = openDb({ path: this.options.dbPath ?? join(config.dataDir, "ata.db") });
    const units = new Set(config.sites.flatMap((s) => s.units.map((u) => `${s.id}/${u.id}`)));
    this.registry = new Registry(this.db, new Set(this.profiles.keys()), {
      hasUnit: (site, unit) => units.has(`${site}/${unit}`),
    });
    this.registry.syncResidents(
      config.residents.map((r) => ({ ref: r.ref, siteId: r.site, unitId: r.unit, roomId: r.room ?? null, flags: r.flags })),
    );
    this.seedDevices();

    this.ingest = new Ingest({
      db: this.db,
      registry: this.registry,
      profiles: this.profiles,
      log: log.child({ component: "ingest" }),
      metrics: this.metrics,
      options: { ...config.ingest, maxPayloadBytes: config.mqtt.maxPayloadBytes },
    });
    this.ingest.start();

    this.presence = new Presence({
      db: this.db,
      registry: this.registry,
      profiles: this.profiles,
      log: log.child({ component: "presence" }),
      metrics: this.metrics,
      record: async (deviceId, events) => {
        await this.ingest.record(deviceId, events);
      },
    });
    this.presence.start();
    this.ingest.on("events", (events) => this.presence.onEvents(events));

    this.broker = new Broker({
      config: config.mqtt,
      registry: this.registry,
      log: log.child({ component: "broker" }),
      metrics: this.metrics,
      submit: (deviceId, topic, channel, payload) => this.ingest.submit(deviceId, topic, channel, payload),
    });
    this.broker.on("device.connected", (id: string) => this.presence.onConnected(id));
    this.broker.on("device.disconnected", (id: string, reason: string) => this.presence.onDisconnected(id, reason));
    this.broker.on("device.status", (id: string, payload: string) => this.presence.onStatus(id, payload));
    this.registry.on("device.changed", (d: { id: string; enabled: boolean }) => {
      // A disabled device loses its session at once, not at its next reconnect.
      if (!d.enabled) this.disconnectDevice(d.id);
    });

    // Devices added or disabled with the `ata` CLI while the gateway runs.
    this.registryPoll = setInterval(() => this.registry.refreshIfChanged(), 2000);
    this.registryPoll.unref();

    this.router = new Router(log.child({ component: "http" }));
    this.readiness.push({ name: "database", check: () => ({ ok: this.db.open }) });
    this.readiness.push({ name: "mqtt", check: () => ({ ok: this.broker.addresses.length > 0 }) });
    operationsRoutes(this.router, {
      db: this.db,
      registry: this.registry,
      presence: this.presence,
      metrics: this.metrics,
      adminToken: config.http.adminToken,
      readiness: this.readiness,
    });
    this.http = new HttpServer(this.router, log.child({ component: "http" }), config.http);

    await this.broker.start();
    await this.http.start();
    this.started = true;
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
    await this.http.stop();
    await this.broker.stop();
    await this.ingest.stop();
    this.presence.stop();
    this.db.close();
    this.log.info("gateway stopped");
  }

  mqttPort(name: "tcp" | "ws" | "tls" = "tcp"): number {
    const a = this.broker.addresses.find((x) => x.name === name);
    if (!a) throw new Error(`no ${name} listener`);
    return a.port;
  }

  private disconnectDevice(id: string): void {
    const client = this.broker.aedes?.clients[id];
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
