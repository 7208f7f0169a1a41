/**
 * Prometheus metrics, on a registry owned by the gateway instance (never prom-client's global one,
 * so two gateways in one test process do not collide).
 */
import { opendir } from "node:fs/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { currentThreadId } from "./util/threads.js";

const LOOP_RESOLUTION_MS = 2;

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
  readonly deadLettersDropped = new Counter({
    name: "ata_dead_letters_dropped_total",
    help: "Oldest dead letters deleted to keep the store within its quotas, by quota (device_quota, total_quota); counts from the store's creation, carried across restarts",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  /** Set by the gateway; read at scrape time (one row, kept by the store's triggers). */
  deadLetters: () => { letters: number; bytes: number } = () => ({ letters: 0, bytes: 0 });
  readonly deadLettersStored: Gauge = new Gauge({
    name: "ata_dead_letters_stored",
    help: "Dead letters in the store (bounded by ingest.deadLetters.total)",
    registers: [this.registry],
    collect: (): void => this.deadLettersStored.set(this.deadLetters().letters),
  });
  readonly deadLettersStoredBytes: Gauge = new Gauge({
    name: "ata_dead_letters_stored_bytes",
    help: "Bytes of stored payloads, reasons and topics in the dead-letter store (bounded by ingest.deadLetters.totalBytes)",
    registers: [this.registry],
    collect: (): void => this.deadLettersStoredBytes.set(this.deadLetters().bytes),
  });
  readonly connectsRefused = new Counter({
    name: "ata_mqtt_connects_refused_total",
    help: "Refused MQTT CONNECTs, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: "ata_mqtt_connections_refused_total",
    help: "MQTT connections closed on arrival, by reason: connection_cap (mqtt.maxConnections) or pending_cap (mqtt.maxPendingPerAddress)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly sessionTakeovers = new Counter({
    name: "ata_mqtt_session_takeovers_total",
    help: "Device sessions replaced by a new connection with the same credentials",
    registers: [this.registry],
  });
  readonly publishesDenied = new Counter({
    name: "ata_mqtt_publishes_denied_total",
    help: "Publishes or subscriptions refused by authorisation",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  /**
   * Questions RabbitMQ's HTTP auth backend asked (cluster mode), by endpoint and answer: with
   * RabbitMQ's auth cache in front, what the cache did not answer itself.
   */
  readonly rabbitAuthRequests = new Counter({
    name: "ata_rabbitmq_auth_requests_total",
    help: "Requests from RabbitMQ's HTTP auth backend, by endpoint (user, vhost, resource, topic) and answer (allow, deny)",
    labelNames: ["endpoint", "answer"] as const,
    registers: [this.registry],
  });
  /**
   * Cluster mode's ingest consumer: messages delivered `maxDeliveries` times or more, committed
   * alone (src/cluster/rabbit-ingest.ts, "Poison messages"), by outcome.
   */
  readonly rabbitIngestIsolated = new Counter({
    name: "ata_rabbitmq_ingest_isolated_total",
    help: "Messages from RabbitMQ redelivered up to the limit and committed alone, by outcome: committed, dead_lettered (commit_failed: the commit failed alone too), requeued (the storage or the dead letter failed)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  /**
   * Cluster mode's ingest consumer with partitions: the queues this node is the active consumer of
   * (it had deliveries from them lately), and the queues it gave up to the next consumer for the
   * load spread (src/cluster/rabbit-ingest.ts, "Load spread").
   */
  readonly rabbitIngestActiveQueues: Gauge = new Gauge({
    name: "ata_rabbitmq_ingest_active_queues",
    help: "With partitioned ingest: queues this node is the active consumer of (it had deliveries from them within balance.activeMs), as of the last check (every balance.checkMs)",
    registers: [this.registry],
  });
  readonly rabbitIngestGivenUp = new Counter({
    name: "ata_rabbitmq_ingest_given_up_total",
    help: "Ingest queues this node gave up to the next consumer because another live node is their preferred one (load spread)",
    registers: [this.registry],
  });
  readonly commitBatchSize = new Histogram({
    name: "ata_commit_batch_size",
    help: "Events and dead letters per group commit, by lane (urgent: events that can raise a high-priority alert)",
    labelNames: ["lane"],
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    registers: [this.registry],
  });
  readonly walCheckpointSeconds = new Histogram({
    name: "ata_wal_checkpoint_seconds",
    help: "WAL checkpoints by the checkpointer thread (off the commit paths)",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: "ata_commit_seconds",
    help: "Time from handing a group to the event-log writer to its commit (written and shown to the rules; its PUBACKs follow the fsync), by lane",
    labelNames: ["lane"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly urgentStageSeconds = new Histogram({
    name: "ata_urgent_stage_seconds",
    help: "An urgent publish (a fall, a call) on its way to an alert, per stage: handover (submit to the writer thread), commit (writer wait, fsync, answer), rules (evaluation and the alert's transaction)",
    labelNames: ["stage"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 1],
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

  readonly storageWriteFailures = new Counter({
    name: "ata_storage_write_failures_total",
    help: "Writes the storage refused (disk full, read-only, I/O error), by component and SQLite code",
    labelNames: ["component", "code"] as const,
    registers: [this.registry],
  });
  readonly rulesReplayed = new Counter({
    name: "ata_rules_replayed_events_total",
    help: "Logged events the rules evaluated from the event log (at start, or after a failed batch) rather than live",
    registers: [this.registry],
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

  /**
   * A cluster node's gauges (src/cluster/node.ts), read at scrape time. Registered only on a
   * cluster node: a single process has no partitions, not zero of them.
   */
  cluster(
    read: () => {
      partitions: number;
      liveNodes: number | null;
      forwarderBacklog: number;
      forwardFailing: boolean;
      /** Registry, token and push subscription changes not yet in PostgreSQL (null: unknown). */
      replicationBacklog: number | null;
    },
    /** Per partition held, the shared log's events its rules have not taken (ClusterNode.partitionLag). */
    lag?: () => Promise<{ partition: number; lag: number }[]>,
  ): void {
    const gauge = (name: string, help: string, value: (c: ReturnType<typeof read>) => number | null) => {
      const g: Gauge = new Gauge({
        name,
        help,
        registers: [this.registry],
        collect: (): void => {
          const v = value(read());
          if (v !== null) g.set(v);
        },
      });
    };
    if (lag) {
      const g: Gauge<"partition"> = new Gauge({
        name: "ata_cluster_partition_lag_events",
        help: "Per partition this node holds: events in the shared log its rules have not taken yet",
        labelNames: ["partition"],
        registers: [this.registry],
        collect: async (): Promise<void> => {
          // Only the partitions held now: one given up since the last scrape leaves no stale series.
          g.reset();
          try {
            for (const { partition, lag: n } of await lag()) g.set({ partition: String(partition) }, n);
          } catch {
            // PostgreSQL not answering: no figure rather than a failed scrape (readyz says why).
          }
        },
      });
    }
    gauge(
      "ata_cluster_partitions_held",
      "Partitions whose lease this node holds and whose rules, timers and alerts it runs",
      (c) => c.partitions,
    );
    gauge(
      "ata_cluster_live_nodes",
      "Gateway nodes with a current heartbeat in PostgreSQL, as of this node's last lease round",
      (c) => c.liveNodes,
    );
    gauge(
      "ata_cluster_forward_backlog",
      "Events this node logged and has not yet appended to the shared event log (their publishes wait for it)",
      (c) => c.forwarderBacklog,
    );
    gauge(
      "ata_cluster_replication_backlog",
      "Registry, staff token and push subscription changes made on this node and not yet in PostgreSQL",
      (c) => c.replicationBacklog,
    );
    gauge(
      "ata_cluster_forward_failing",
      "1 while the last append to the shared event log failed (PostgreSQL unreachable), else 0",
      (c) => (c.forwardFailing ? 1 : 0),
    );
  }

  /**
   * A cluster node's writer of the alerts' time series (src/cluster/alert-series.ts): whether this
   * node writes now, the change feed's entries not yet in the store (by the cursors in PostgreSQL,
   * whichever node writes; read at each scrape), the entries pruned before they were written, and
   * what the fill-in from the audit made of them.
   */
  alertSeries(
    read: () => { writer: boolean; pruned: number; filled: number; unfilled: number },
    backlog: () => Promise<number>,
  ): void {
    const writer: Gauge = new Gauge({
      name: "ata_cluster_alert_series_writer",
      help: "1 while this node writes the alerts' points from the change feed (one node at a time), else 0",
      registers: [this.registry],
      collect: (): void => writer.set(read().writer ? 1 : 0),
    });
    const behind: Gauge = new Gauge({
      name: "ata_cluster_alert_series_backlog",
      help: "Alert change feed entries not yet written to the time-series store, over all partitions",
      registers: [this.registry],
      collect: async (): Promise<void> => {
        try {
          behind.set(await backlog());
        } catch {
          // PostgreSQL not answering: no figure rather than a failed scrape (readyz says why).
        }
      },
    });
    const counter = (name: string, help: string, of: (s: ReturnType<typeof read>) => number): void => {
      let counted = 0;
      const c: Counter = new Counter({
        name,
        help,
        registers: [this.registry],
        collect: (): void => {
          const n = of(read());
          if (n > counted) c.inc(n - counted);
          counted = n;
        },
      });
    };
    counter(
      "ata_cluster_alert_series_pruned_total",
      "Alert change feed entries this node found pruned before they reached the time-series store (then filled in from alert_audit)",
      (s) => s.pruned,
    );
    counter(
      "ata_cluster_alert_series_filled_total",
      "Alert points this node wrote from alert_audit for entries pruned from the change feed, the window's overlap included",
      (s) => s.filled,
    );
    counter(
      "ata_cluster_alert_series_unfilled_total",
      "Audit entries in a fill-in's window that made no point because their alert row is gone: missing from the time series",
      (s) => s.unfilled,
    );
  }

  /**
   * How late the event loop ran a 2 ms timer, since the last scrape: the time a fall arriving at a
   * random moment waits before its socket is read. prom-client's ata_nodejs_eventloop_lag_* report
   * the timer's whole interval (their 10 ms resolution included); these subtract the resolution.
   */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  readonly eventLoopDelay: Gauge = new Gauge({
    name: "ata_event_loop_delay_seconds",
    help: "Event-loop delay since the last scrape, by quantile (p50, p99, max), timer resolution subtracted",
    labelNames: ["quantile"],
    registers: [this.registry],
    collect: (): void => {
      const h = this.loopDelay;
      const late = (ns: number) => Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000);
      if (h.count > 0) {
        this.eventLoopDelay.set({ quantile: "0.5" }, late(h.percentile(50)));
        this.eventLoopDelay.set({ quantile: "0.99" }, late(h.percentile(99)));
        this.eventLoopDelay.set({ quantile: "1" }, late(h.max));
      }
      h.reset();
    },
  });
  /** Which OS thread is which (Linux thread ids), so per-thread CPU can be read from /proc. */
  readonly threads = new Gauge({
    name: "ata_thread_info",
    help: "The gateway's named threads (value 1), with their Linux thread id",
    labelNames: ["thread", "tid"],
    registers: [this.registry],
  });

  /** Each fall-path thread's nice value once set (config `priority.fallPathNice`); absent when left alone. */
  readonly threadNice = new Gauge({
    name: "ata_thread_nice",
    help: "Nice value of the gateway's fall-path threads (main, event-log-writer), as set at start",
    labelNames: ["thread"],
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: "ata_" });
      if (process.platform === "linux") this.countOpenFilesApart();
      this.loopDelay.enable();
    }
    const tid = currentThreadId();
    if (tid !== null) this.threads.set({ thread: "main", tid: String(tid) }, 1);
  }

  /**
   * prom-client counts open file descriptors by listing /proc/self/fd synchronously, on every scrape:
   * with 12,000 connected devices that list took 12 ms of the event loop (and 25 ms inside the
   * alert-latency benchmark's gateway under load), which every fall arriving during a scrape waited
   * behind. The same gauge is counted here by reading the directory in batches of 1,024 names, each
   * an event-loop turn of its own.
   */
  private countOpenFilesApart(): void {
    this.registry.removeSingleMetric("ata_process_open_fds");
    new Gauge({
      name: "ata_process_open_fds",
      help: "Number of open file descriptors.",
      registers: [this.registry],
      async collect() {
        let n = 0;
        try {
          for await (const _ of await opendir("/proc/self/fd", { bufferSize: 1024 })) n++;
        } catch {
          return; // as prom-client: no figure rather than a failed scrape
        }
        // Less the descriptor the listing itself held open.
        this.set(n - 1);
      },
    });
  }
}
