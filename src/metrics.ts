/**
 * Prometheus metrics, on a registry owned by the gateway instance (never prom-client's global one,
 * so two gateways in one test process do not collide).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
  readonly devicesConnected = new Gauge({
    name: "ata_devices_connected",
    help: "Devices with an open MQTT connection",
    registers: [this.registry],
  });
  readonly devicesOnline = new Gauge({
    name: "ata_devices_online",
    help: "Devices considered online by supervision",
    registers: [this.registry],
  });
  readonly eventsAccepted = new Counter({
    name: "ata_events_accepted_total",
    help: "Canonical events committed to the event log",
    labelNames: ["type"] as const,
    registers: [this.registry],
  });
  readonly eventsDuplicate = new Counter({
    name: "ata_events_duplicate_total",
    help: "Events dropped as duplicates, by reason: event_id (the device's id was already logged) or redelivery (the same bytes without an id within the redelivery window)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly eventsRejected = new Counter({
    name: "ata_events_rejected_total",
    help: "Publishes dead-lettered, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly connectsRefused = new Counter({
    name: "ata_mqtt_connects_refused_total",
    help: "Refused MQTT CONNECTs, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly publishesDenied = new Counter({
    name: "ata_mqtt_publishes_denied_total",
    help: "Publishes or subscriptions refused by authorisation",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly commitBatchSize = new Histogram({
    name: "ata_commit_batch_size",
    help: "Events and dead letters per group commit",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: "ata_commit_seconds",
    help: "Time to commit one group to the event log",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly channelAttempts = new Counter({
    name: "ata_channel_attempts_total",
    help: "Attempts to reach a recipient, by channel and why (level, renotify, retry)",
    labelNames: ["channel", "reason"] as const,
    registers: [this.registry],
  });
  readonly channelOutcomes = new Counter({
    name: "ata_channel_outcomes_total",
    help: "Outcomes of channel attempts: sent (to an intermediary), delivered (receipt), failed",
    labelNames: ["channel", "outcome"] as const,
    registers: [this.registry],
  });
  /** Set by the gateway once the channels exist; read at scrape time. */
  channelHealth: () => { channel: string; ok: boolean }[] = () => [];
  readonly channelHealthy: Gauge = new Gauge({
    name: "ata_channel_healthy",
    help: "1 while a delivery channel can deliver, 0 while the ladder skips it",
    labelNames: ["channel"] as const,
    registers: [this.registry],
    collect: (): void => {
      for (const c of this.channelHealth()) this.channelHealthy.set({ channel: c.channel }, c.ok ? 1 : 0);
    },
  });

  /** Set by the gateway once the sink exists; read at scrape time. */
  timeseries: () => { backlog: number; failures: number } = () => ({ backlog: 0, failures: 0 });
  readonly timeseriesBacklog: Gauge = new Gauge({
    name: "ata_timeseries_backlog",
    help: "Event-log and audit rows not yet written to the time-series store",
    registers: [this.registry],
    collect: (): void => this.timeseriesBacklog.set(this.timeseries().backlog),
  });
  readonly timeseriesWriteFailures: Gauge = new Gauge({
    name: "ata_timeseries_write_failures",
    help: "Failed writes to the time-series store since start (retried with backoff)",
    registers: [this.registry],
    collect: (): void => this.timeseriesWriteFailures.set(this.timeseries().failures),
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "ata_" });
  }
}
