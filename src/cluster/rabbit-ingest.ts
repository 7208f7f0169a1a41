/**
 * The ingest consumer: device publishes that RabbitMQ's MQTT plugin took reach the gateway's ingest
 * through a quorum queue, and each is acknowledged to RabbitMQ only after the gateway committed it.
 *
 * The durability chain (docs/cluster.md): the device's PUBACK waits for RabbitMQ's publisher confirm,
 * which for a quorum queue waits for a majority of its replicas; the message leaves the queue only
 * when this consumer acks it, and it acks after `submit()` resolved, that is after the event (or its
 * dead letter) is in the event log. A gateway that dies in between leaves the message unacked, and
 * RabbitMQ delivers it again: to the next consumer, where the pipeline's dedupe (the event log's
 * unique eventId, the payload key for events without one) drops what was already committed.
 *
 * The consumer survives the loss of the RabbitMQ node it consumes from: it is given one URL per node
 * and, when a connection is lost or cannot be made, tries the next one round the list. What the dead
 * connection had unacked is returned to the queue by RabbitMQ (the quorum queue's leader sees the
 * consumer's node go down) and delivered again on the new connection, where dedupe drops what was
 * committed.
 *
 * Per-device order with more than one gateway node (`partitions` > 1). RabbitMQ hands a queue's
 * deliveries to its consumers in turn, so with one queue and two gateway nodes two publishes of one
 * device can be committed by different nodes, the later one first. With partitions, the MQTT exchange
 * is bound (exchange to exchange, for device topics) to a consistent-hash exchange (plugin
 * rabbitmq_consistent_hash_exchange) that puts each message in one of the quorum queues `<queue>.<k>`
 * by a hash of its routing key, each queue bound with weight 1. The routing key is the topic, so all
 * of one (device, channel)'s publishes are in one queue, in the order RabbitMQ took them; MQTT
 * orders a client's QoS 1 publishes on one topic (MQTT 3.1.1 §4.6), so a device's `events` reach
 * the queue in the order it sent them. Each queue has `x-single-active-consumer`: one consumer at a
 * time gets its messages, and the gateway hands them to ingest in delivery order (below). What is
 * ordered is one topic of one device: a device's `events` and its `heartbeat` may be in different
 * queues, and are not ordered against each other (nor are they in MQTT).
 *
 * Single active consumer on 3.10 (tested, test/cluster/rabbit-partitions.test.ts): the first consumer
 * registered on a queue is its active one, the others standby; nothing moves it to a later consumer.
 * Every gateway node consumes every queue, each on a channel of its own; any node takes a queue over
 * when the active one's channel or connection goes. The messages the old one had not acked are
 * returned and delivered to the new one first, in queue order, before anything newer; what it had
 * committed is dropped by dedupe, as above.
 *
 * Load spread (test/cluster/rabbit-balance.test.ts). Left alone, the first node to start would be
 * active on every queue and ingest alone. With a cluster, each queue has a preferred node:
 * rendezvous hashing of its name over the live gateway nodes, read from PostgreSQL (rabbit-balance.ts).
 * A node that is active on a queue (it had deliveries on it within `balance.activeMs`: 3.10 tells a
 * consumer nothing of its activation in AMQP 0-9-1) whose preferred node is another, once the live
 * nodes have been unchanged for `balance.stableMs`, gives it up: it closes that queue's channel and
 * registers again on a fresh one, at the back of the consumer line. The next consumer in line becomes
 * active; with two nodes that is the other one, with more each non-preferred node gives up in turn
 * until the preferred one has it. Give-ups are bounded per queue (rabbit-balance.ts), so a preferred
 * node live in PostgreSQL but not consuming cannot make a queue bounce for ever. Off unless
 * `balance.enabled`: the connection events' queue (followConnections) is not spread, so with the
 * load spread a device's connections and its heartbeats can reach different nodes, and the one that
 * heard it connect and hears nothing more marks it offline when its supervision window ends.
 * Why the channel is closed at once, commits in flight and all: this is the takeover above, made on
 * purpose. RabbitMQ returns what the channel had not acked and gives it to the next consumer first,
 * in queue order; this node may still commit what it held, in its delivery order, and the next one
 * commits the same messages again in the same order before anything newer. Of the two commits of a
 * message the log keeps the earlier (dedupe), and each node's commits are in queue order, so the
 * earlier commits are in queue order too. Waiting for the commits before closing would not make it
 * safer and would hold the queue. A basic.cancel would be worse: the next consumer becomes active at
 * once while this channel keeps what it holds unacked, so the next one can commit newer messages of a
 * device before this one commits the older.
 * The changed queue layout does not move what is in the old one: a deployment going from one queue
 * to partitions drains `<queue>` first (docs/cluster.md).
 *
 * Poison messages. A failing group commit fails every publish in it, and each goes back to the
 * queue (below: requeued, with a back-off); a payload whose rows make every commit fail would bring
 * its group back again and again, and hold its queue (and the falls behind it) for ever: 3.10's
 * quorum queues set no delivery limit unless `x-delivery-limit` is given, and a limit there would
 * drop or dead-letter inside RabbitMQ whatever the cause, a full disk included. The consumer
 * counts instead, with the header the quorum queue puts on a message it delivers again,
 * `x-delivery-count` (the deliveries before this one; absent on the first). From the
 * `maxDeliveries`-th delivery (default 5) a message is committed alone, in a transaction of its
 * own, so it cannot fail others nor they it. If that fails too:
 * - because SQLite refused its rows (a constraint or trigger, a value too big: the pipeline's
 *   CommitError `rowsRefused`), the payload goes to the gateway's dead-letter store with
 *   `commit_failed` and the error, the device is told on its errors topic, and the message is
 *   acked: the record is the dead letter, as for any payload the gateway refuses;
 * - for any other cause (the storage refusing writes: a full disk, an I/O error, a read-only file;
 *   the database busy or corrupt; the writer thread gone; the gateway stopping; or the commit made
 *   and what follows it failing, the cluster's forwarding), nothing is the message's doing:
 *   requeued with the back-off, as any failed commit, for as long as it lasts;
 * - and if the dead letter cannot be committed either, requeued with the back-off too. Nothing is
 *   acked that is not in the event log or the dead-letter store.
 * What this cannot tell apart: a constraint or trigger that refuses every row (a schema gone wrong)
 * looks like a payload refused; each message then ends as a dead letter from its limit on, payload
 * kept, rather than waiting in the queue.
 * The good messages of a failing group come back with their count raised too, and from the limit on
 * they are committed one by one until the bad one is out; that costs a few fsyncs, once.
 *
 * Written against RabbitMQ 3.10.8 and amqplib 2.3. What 3.10's MQTT plugin puts on a message
 * (rabbit_mqtt_processor:amqp_pub/2): the routing key (the topic, "/" written "."), the headers
 * `x-mqtt-publish-qos` and `x-mqtt-dup`, delivery mode 2 for QoS 1; no client id, no user id. The
 * publisher cannot be read from the message, so the device is the one the routing key names, and
 * the gateway's own topic checks (rabbit-auth.ts) are what make that the publisher. A message that
 * does carry a user id (RabbitMQ checks it against the publishing connection's user) must name the
 * same device.
 */
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from "amqplib";
import { ErrorReplies, type ErrorReply } from "../broker/error-replies.js";
import {
  COMMANDS,
  deviceRoutingKeyPattern,
  ERRORS,
  errorTopic,
  parseDeviceTopic,
  STATUS,
  topicFromRoutingKey,
} from "../broker/topics.js";
import type { ErrorCode } from "../errors.js";
import { CommitError, type IngestResult, type SubmitOptions } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { RabbitIngestConfig } from "./config.js";
import { IngestBalance } from "./rabbit-balance.js";
import { CONNECTION_CLOSED, CONNECTION_CREATED, ConnectionEvents } from "./rabbit-connections.js";

/** Where rabbitmq_event_exchange publishes RabbitMQ's events (the default vhost only). */
export const EVENT_EXCHANGE = "amq.rabbitmq.event";
/** Connection events queued for the gateway at most; the oldest are dropped past it. */
const CONNECTION_EVENTS_MAX = 100_000;

export interface RabbitIngestContext {
  config: RabbitIngestConfig;
  /** The topic exchange the MQTT plugin publishes to (cluster.rabbitmq.exchange). */
  exchange: string;
  /**
   * The embedded broker's intake: resolves once the publish's events or its dead letter are
   * committed; rejects with a CommitError when the commit failed.
   */
  submit(
    deviceId: string,
    topic: string,
    channel: string,
    payload: Buffer,
    options?: SubmitOptions,
  ): Promise<IngestResult>;
  /** Dead-letter what reached no decoder; resolves once it is committed. */
  refuse(
    deviceId: string | null,
    topic: string,
    code: ErrorCode,
    message: string,
    payload: Buffer,
  ): Promise<IngestResult>;
  /** A device's `status` publish (retained "online", or its last will "offline"), for presence. */
  status(deviceId: string, payload: string): void;
  /**
   * Whether the registry still admits the device now. RabbitMQ checked it at login, but a session
   * outlives a disable, a deletion or a secret rotation (3.10 has no way for the gateway to end it,
   * and its auth cache admits new logins for up to its TTL): the consumer is where the gateway's
   * word holds for every message.
   */
  admits(deviceId: string): "yes" | "unknown" | "disabled";
  /**
   * A device's MQTT connection to RabbitMQ opened or closed (rabbit-connections.ts), read from the
   * `rabbitmq_event_exchange` plugin's events when the plugin is enabled.
   */
  presence?: {
    connected(deviceId: string): void;
    disconnected(deviceId: string, reason: string): void;
  };
  /**
   * With partitions on a cluster: this node's id and the live gateway nodes (PostgreSQL's
   * cluster_nodes), for the load spread (header) when `balance.enabled`. Without it the first node
   * keeps every queue.
   */
  balance?: {
    nodeId: string;
    liveNodes(): Promise<readonly string[]>;
  };
  log: Logger;
  /** For the ata_rabbitmq_ingest_* metrics. */
  metrics?: Metrics;
  /** Monotonic milliseconds, for the load spread's waits. */
  now?: () => number;
}

/** One queue the consumer takes device publishes from. */
export interface RabbitIngestQueueHealth {
  name: string;
  /** Declared and bound by this process since it started. */
  declared: boolean;
  /** A consumer of this process is registered on it (active or, with partitions, standby). */
  consuming: boolean;
  /** This process had deliveries from it within `balance.activeMs`: its active consumer, as far as it can tell. */
  active: boolean;
  /** With the load spread: the node that should consume it (null: unknown, or no load spread). */
  preferred: string | null;
  /** Times this process gave it up to the next consumer (load spread). */
  givenUp: number;
}

/** The load spread as this process sees it (null without partitions or a cluster). */
export interface RabbitIngestBalanceHealth {
  nodeId: string;
  /** The live gateway nodes as last read, this one included (null: not read yet, or the read failed). */
  liveNodes: string[] | null;
  /** Milliseconds the live nodes have been unchanged. */
  stableForMs: number | null;
}

export interface RabbitIngestHealth {
  /** Connected, every queue declared and bound, and consuming each. */
  ready: boolean;
  /** The node connected to, or being tried (without its password). */
  url: string;
  /** Every node the consumer may use, in the order it tries them (without passwords). */
  urls: string[];
  /** The configured name: the queue itself, or with partitions the prefix of `<queue>.<k>`. */
  queue: string;
  /** Every queue and binding were declared once by this process (devices may publish). */
  declared: boolean;
  /** Each queue consumed: one, or with partitions `<queue>.0` to `<queue>.<partitions - 1>`. */
  queues: RabbitIngestQueueHealth[];
  connectedSince: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  reconnects: number;
  /**
   * Connection events consumed (`<queue>.connections`): devices' connects and disconnects drive
   * presence. False while the event exchange plugin is not enabled (or not yet followed).
   */
  connectionEvents: boolean;
  /** Deliveries handed to ingest and not yet acknowledged. */
  inFlight: number;
  acked: number;
  requeued: number;
  deadLettered: number;
  /** Messages delivered `maxDeliveries` times or more and committed alone (poison messages). */
  isolated: number;
  /** Of those, dead-lettered `commit_failed` because their commit alone failed too. */
  poisoned: number;
  /** Queues given up to the next consumer for the load spread, since start. */
  givenUp: number;
  /** Deliveries held unacked at those give-ups: returned by RabbitMQ, delivered to the next consumer. */
  givenUpUnacked: number;
  balance: RabbitIngestBalanceHealth | null;
}

/** One ingest queue: its channel (one per queue, so one can be given up alone) and its deliveries. */
interface QueueSlot {
  name: string;
  health: RabbitIngestQueueHealth;
  /** The channel its consumer is registered on; null while none (connecting, giving up). */
  channel: Channel | null;
  /** When the current channel last had a delivery (monotonic ms); null: none yet. */
  lastDelivery: number | null;
  /** Deliveries of the current channel not yet acked or requeued. */
  held: number;
}

/** The deliveries of a message so far, this one included: the quorum queue's count plus one. */
export function deliveryNumber(msg: Pick<ConsumeMessage, "properties">): number {
  const count = msg.properties.headers?.["x-delivery-count"];
  return (typeof count === "number" && Number.isFinite(count) && count > 0 ? count : 0) + 1;
}

/** The URL as shown to operators: without the password. */
function shownUrl(url: string): string {
  const u = new URL(url);
  u.password = "";
  return u.toString();
}

/** A message the consumer passes over: the gateway's own direction (errors, commands). */
const GATEWAY_CHANNELS = new Set([ERRORS, COMMANDS]);

export class RabbitIngest {
  private connection: ChannelModel | null = null;
  private channel: Channel | null = null;
  /** Bumped on every (re)connect: callbacks of an older connection are ignored. */
  private generation = 0;
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  /** The URL in use or being tried: advances round the list when a node is lost. */
  private urlIndex = 0;
  /** A delivery could not be committed (storage refusing): waits keep growing until one is. */
  private backingOff = false;
  private stopped = true;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly health: RabbitIngestHealth;

  /** The queues consumed: `queue`, or `<queue>.<k>` behind the hash exchange. */
  private readonly queues: string[];
  private readonly slots: QueueSlot[];
  /** The load spread; null without partitions or a cluster. */
  private readonly balance: IngestBalance | null;
  private balanceTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  /** A refused publish's reason, told on the device's errors topic as the embedded broker does. */
  private readonly replies: ErrorReplies;
  /** Devices' open connections, from the event exchange; kept across reconnects (pids are cluster-wide). */
  private readonly connections: ConnectionEvents | null;
  /** "The plugin is not enabled" is logged once, not at every reconnect. */
  private eventsMissingLogged = false;

  constructor(private readonly ctx: RabbitIngestContext) {
    this.replies = new ErrorReplies(ctx.log, (deviceId, reply) => this.publishError(deviceId, reply));
    const presence = ctx.presence;
    this.connections = presence
      ? new ConnectionEvents({
          admits: (id) => ctx.admits(id) === "yes",
          connected: (id) => presence.connected(id),
          disconnected: (id, reason) => presence.disconnected(id, reason),
        })
      : null;
    const { queue, partitions } = ctx.config;
    this.queues = partitions === 1 ? [queue] : Array.from({ length: partitions }, (_, k) => `${queue}.${k}`);
    this.health = {
      ready: false,
      url: shownUrl(ctx.config.urls[0] as string),
      urls: ctx.config.urls.map(shownUrl),
      queue: ctx.config.queue,
      declared: false,
      queues: this.queues.map((name) => ({
        name,
        declared: false,
        consuming: false,
        active: false,
        preferred: null,
        givenUp: 0,
      })),
      connectedSince: null,
      lastError: null,
      lastErrorAt: null,
      reconnects: 0,
      connectionEvents: false,
      inFlight: 0,
      acked: 0,
      requeued: 0,
      deadLettered: 0,
      isolated: 0,
      poisoned: 0,
      givenUp: 0,
      givenUpUnacked: 0,
      balance: null,
    };
    this.slots = this.health.queues.map((health) => ({
      name: health.name,
      health,
      channel: null,
      lastDelivery: null,
      held: 0,
    }));
    this.now = ctx.now ?? (() => performance.now());
    this.balance =
      ctx.balance && partitions > 1 && ctx.config.balance.enabled
        ? new IngestBalance(ctx.balance.nodeId, ctx.config.balance.stableMs)
        : null;
  }

  status(): RabbitIngestHealth {
    const now = this.now();
    for (const slot of this.slots) slot.health.active = this.isActive(slot, now);
    const balance = this.balance;
    return {
      ...this.health,
      urls: [...this.health.urls],
      queues: this.health.queues.map((q) => ({ ...q })),
      inFlight: this.inFlight.size,
      balance: balance
        ? {
            nodeId: balance.nodeId,
            liveNodes: balance.liveNodes ? [...balance.liveNodes] : null,
            stableForMs: balance.stableFor(now),
          }
        : null,
    };
  }

  /** The names of the queues this process is active on now (load spread; see the header). */
  activeQueues(): string[] {
    const now = this.now();
    return this.slots.filter((s) => this.isActive(s, now)).map((s) => s.name);
  }

  /** Whether the ingest queues and their bindings exist, so a device's publish is not confirmed unrouted. */
  get declared(): boolean {
    return this.health.declared;
  }

  /**
   * The first connection is awaited, so that the queue is declared before the gateway reports ready
   * (and before it answers RabbitMQ's auth requests); when RabbitMQ is not there, the gateway starts
   * all the same, says so in /readyz, and keeps trying. Each node is tried once before that.
   */
  async start(): Promise<void> {
    this.stopped = false;
    // With partitions: which queues this node is active on (the gauge), and the load spread.
    if (this.queues.length > 1) this.scheduleBalance();
    for (const _ of this.ctx.config.urls) {
      if (await this.connect(false)) return;
      if (this.stopped) return;
    }
    this.scheduleReconnect();
  }

  /**
   * Stop taking deliveries, ack what is in flight once it is committed, close the connection. The
   * consumers are not cancelled first: on a single-active-consumer queue a cancel makes the next
   * consumer active at once, which would commit newer messages while this one still commits older
   * ones. Deliveries that arrive meanwhile are left unacked and return to their queue at the close,
   * ahead of anything newer, when the next consumer becomes active.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.balanceTimer) clearTimeout(this.balanceTimer);
    this.balanceTimer = null;
    await Promise.allSettled([...this.inFlight]);
    await this.close();
  }

  /**
   * Connect to the current URL, declare, consume. On failure the next URL is current, and a
   * reconnect is scheduled unless `retry` is false. Resolves whether it consumes.
   */
  private async connect(retry = true): Promise<boolean> {
    const generation = ++this.generation;
    const { config } = this.ctx;
    const url = config.urls[this.urlIndex] as string;
    this.health.url = shownUrl(url);
    let connection: ChannelModel | null = null;
    try {
      connection = await amqp.connect(url, {
        // Nagle off: an ack must not wait 40 ms for company (the MQTT side does the same).
        noDelay: true,
        timeout: 10_000,
        clientProperties: { connection_name: "ata-gateway ingest" },
      });
      if (this.stopped || generation !== this.generation) {
        await connection.close().catch(() => undefined);
        return false;
      }
      this.connection = connection;
      connection.on("error", (err: Error) => this.failed(`connection: ${err.message}`));
      connection.on("close", () => this.lost(generation, "connection closed"));
      // Declaring, and the replies on devices' errors topics; each queue is consumed on its own.
      const channel = await connection.createChannel();
      this.channel = channel;
      channel.on("error", (err: Error) => this.failed(`channel: ${err.message}`));
      channel.on("close", () => this.lost(generation, "channel closed"));
      await this.declare(channel);
      for (const slot of this.slots) await this.consume(connection, generation, slot);
      await this.followConnections(connection, generation);
      if (!this.backingOff) this.attempt = 0;
      this.health.ready = true;
      this.health.connectedSince = new Date().toISOString();
      this.ctx.log.info(
        { url: this.health.url, queues: this.queues.length, queue: config.queue, prefetch: config.prefetch },
        "consuming device publishes from RabbitMQ",
      );
      return true;
    } catch (err) {
      this.failed(`connect: ${(err as Error).message}`);
      if (connection) await connection.close().catch(() => undefined);
      if (generation === this.generation) this.lost(generation, "connect failed", retry);
      return false;
    }
  }

  /**
   * Durable quorum queues: a confirm (and so the device's PUBACK) waits for a majority of their
   * replicas. Declared with the same arguments by every gateway node; a queue declared otherwise (a
   * classic queue of the same name, or without single active consumer) is refused by RabbitMQ, and
   * /readyz says so. Redeclaring an existing binding changes nothing, the hash ring's weights
   * included (3.10's rabbit_binding:add/3 calls no exchange callback for a binding that exists).
   */
  private async declare(channel: Channel): Promise<void> {
    const { config, exchange } = this.ctx;
    const pattern = deviceRoutingKeyPattern();
    if (config.partitions === 1) {
      await channel.assertQueue(config.queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
      await channel.bindQueue(config.queue, exchange, pattern);
    } else {
      const hash = `${config.queue}.hash`;
      // Hashes the routing key (neither `hash-header` nor `hash-property` set); a binding's key is
      // its weight on the ring.
      await channel.assertExchange(hash, "x-consistent-hash", { durable: true });
      for (const queue of this.queues) {
        await channel.assertQueue(queue, {
          durable: true,
          arguments: { "x-queue-type": "quorum", "x-single-active-consumer": true },
        });
        await channel.bindQueue(queue, hash, "1");
      }
      // Last, so that nothing reaches the hash exchange before every queue is on its ring.
      await channel.bindExchange(hash, exchange, pattern);
    }
    for (const q of this.health.queues) q.declared = true;
    this.health.declared = true;
  }

  /**
   * Devices' connects and disconnects from rabbitmq_event_exchange, on a channel of their own so
   * that nothing here can close the ingest's. One durable quorum queue for the cluster with single
   * active consumer, as the ingest partitions: the node that consumes devices' publishes (on 3.10
   * the first to start, unless the load spread is on: header) is the one that hears their
   * connections, so its presence and its heartbeat supervision agree; a per-node queue would mark a
   * device online on every node, and the nodes that get none of its heartbeats would then mark it
   * offline again. And
   * a close names only the connection's pid (rabbit-connections.ts), so the created and closed
   * events of one connection must reach one consumer, in order: one queue, one consumer at a time.
   * The queue keeps what happens while no gateway consumes, bounded (the oldest dropped).
   *
   * Without the plugin the exchange does not exist: the check fails (closing only this channel),
   * that is logged once, and presence stays as before (publishes, `status`, last wills, heartbeat
   * supervision). Checked again at each reconnect, so enabling the plugin needs no gateway restart.
   */
  private async followConnections(connection: ChannelModel, generation: number): Promise<void> {
    const follower = this.connections;
    if (!follower) return;
    const queue = `${this.ctx.config.queue}.connections`;
    let channel: Channel;
    try {
      channel = await connection.createChannel();
      channel.on("error", () => undefined); // a missing exchange closes the channel: handled below
      await channel.checkExchange(EVENT_EXCHANGE);
    } catch {
      this.health.connectionEvents = false;
      if (!this.eventsMissingLogged)
        this.ctx.log.info(
          { exchange: EVENT_EXCHANGE },
          "RabbitMQ's event exchange is not there (plugin rabbitmq_event_exchange not enabled, or another vhost than /): device presence from publishes, status and heartbeats only",
        );
      this.eventsMissingLogged = true;
      return;
    }
    try {
      channel.on("close", () => {
        if (generation === this.generation && this.health.connectionEvents)
          this.ctx.log.warn({ queue }, "stopped following RabbitMQ's connection events until the reconnect");
        this.health.connectionEvents = false;
      });
      await channel.assertQueue(queue, {
        durable: true,
        arguments: {
          "x-queue-type": "quorum",
          "x-single-active-consumer": true,
          "x-max-length": CONNECTION_EVENTS_MAX,
        },
      });
      await channel.bindQueue(queue, EVENT_EXCHANGE, CONNECTION_CREATED);
      await channel.bindQueue(queue, EVENT_EXCHANGE, CONNECTION_CLOSED);
      await channel.prefetch(500, false);
      await channel.consume(
        queue,
        (msg) => {
          if (msg === null) return;
          try {
            follower.handle(msg.fields.routingKey, msg.properties.headers);
          } catch (err) {
            this.ctx.log.error({ err: (err as Error).message }, "a connection event failed");
          }
          try {
            channel.ack(msg);
          } catch {
            // The channel is gone; the event is delivered again and counted once per pid.
          }
        },
        { noAck: false },
      );
      this.health.connectionEvents = true;
      if (this.eventsMissingLogged) this.ctx.log.info({ queue }, "following RabbitMQ's connection events");
      this.eventsMissingLogged = false;
    } catch (err) {
      this.health.connectionEvents = false;
      this.failed(`connection events: ${(err as Error).message}`);
    }
  }

  /**
   * A channel of the queue's own, so that giving it up closes nothing else. Its prefetch is per
   * consumer (global: false): the deliveries in flight to this gateway from the queue, which one
   * group commit takes together. One consumer on one channel receives in queue order.
   */
  private async consume(connection: ChannelModel, generation: number, slot: QueueSlot): Promise<void> {
    const channel = await connection.createChannel();
    channel.on("error", (err: Error) => this.failed(`channel of ${slot.name}: ${err.message}`));
    // A channel given up is no longer the slot's: its close is the give-up's, not a loss.
    channel.on("close", () => {
      if (slot.channel === channel) this.lost(generation, `channel of ${slot.name} closed`);
    });
    await channel.prefetch(this.ctx.config.prefetch, false);
    slot.channel = channel;
    slot.lastDelivery = null;
    slot.held = 0;
    await channel.consume(slot.name, (msg) => this.onDelivery(slot, channel, msg), { noAck: false });
    slot.health.consuming = true;
  }

  private onDelivery(slot: QueueSlot, channel: Channel, msg: ConsumeMessage | null): void {
    // null: RabbitMQ cancelled the consumer (the queue was deleted). Reconnecting declares it again.
    if (msg === null) {
      this.failed(`consumer of ${slot.name} cancelled by RabbitMQ (queue deleted?)`);
      void channel.close().catch(() => undefined);
      return;
    }
    // Stopping: left for the queue to give to the next consumer at the close (stop()). A channel
    // given up: it is closing, and what it is given goes back to the queue with it.
    if (this.stopped || slot.channel !== channel) return;
    slot.lastDelivery = this.now();
    slot.held++;
    const done = this.handle(channel, msg)
      .finally(() => {
        if (slot.channel === channel) slot.held--;
      })
      .finally(() => this.inFlight.delete(done));
    this.inFlight.add(done);
  }

  private isActive(slot: QueueSlot, now: number): boolean {
    return (
      slot.channel !== null &&
      slot.lastDelivery !== null &&
      now - slot.lastDelivery < this.ctx.config.balance.activeMs
    );
  }

  private scheduleBalance(): void {
    if (this.stopped || this.balanceTimer) return;
    this.balanceTimer = setTimeout(() => {
      this.balanceTimer = null;
      void this.rebalance()
        .catch((err: Error) => this.ctx.log.warn({ err: err.message }, "ingest load spread check failed"))
        .finally(() => this.scheduleBalance());
    }, this.ctx.config.balance.checkMs);
  }

  /** One check of the load spread: read the live nodes, give up what this node should not have. */
  private async rebalance(): Promise<void> {
    const balance = this.balance;
    const source = this.ctx.balance;
    if (!balance || !source) {
      const now = this.now();
      this.ctx.metrics?.rabbitIngestActiveQueues.set(this.slots.filter((s) => this.isActive(s, now)).length);
      return;
    }
    let live: readonly string[] | null;
    try {
      live = await source.liveNodes();
    } catch (err) {
      // Not knowing who is alive, nothing is given up (and the stable wait starts again).
      live = null;
      this.ctx.log.warn({ err: (err as Error).message }, "could not read the live gateway nodes");
    }
    if (this.stopped) return;
    const now = this.now();
    balance.membership(live, now);
    const active = this.slots.filter((s) => this.isActive(s, now));
    for (const slot of this.slots) {
      slot.health.active = active.includes(slot);
      slot.health.preferred = balance.preferred(slot.name);
    }
    this.ctx.metrics?.rabbitIngestActiveQueues.set(active.length);
    const due = new Set(
      balance.due(
        active.map((s) => s.name),
        now,
      ),
    );
    for (const slot of active) if (due.has(slot.name)) await this.giveUp(slot, balance);
  }

  /**
   * Hand the queue to the next consumer in line: close its channel (RabbitMQ returns what it had not
   * acked, to be delivered to the next consumer first; header, "Load spread") and register again on
   * a fresh one, at the back of the line. Commits in flight finish; their acks find the channel
   * closed, and of the two commits of each such message (this node's, the next consumer's) dedupe
   * drops the second.
   */
  private async giveUp(slot: QueueSlot, balance: IngestBalance): Promise<void> {
    const channel = slot.channel;
    const connection = this.connection;
    const generation = this.generation;
    if (!channel || !connection || this.stopped) return;
    const held = slot.held;
    slot.channel = null;
    slot.lastDelivery = null;
    slot.held = 0;
    slot.health.consuming = false;
    slot.health.active = false;
    balance.gaveUp(slot.name, this.now());
    slot.health.givenUp++;
    this.health.givenUp++;
    this.health.givenUpUnacked += held;
    this.ctx.metrics?.rabbitIngestGivenUp.inc();
    this.ctx.log.info(
      { queue: slot.name, preferred: balance.preferred(slot.name), unacked: held },
      "giving an ingest queue up to the next consumer (load spread)",
    );
    await channel.close().catch(() => undefined);
    if (this.stopped || generation !== this.generation || this.connection !== connection) return;
    try {
      await this.consume(connection, generation, slot);
    } catch (err) {
      this.failed(`consume ${slot.name} again: ${(err as Error).message}`);
      this.lost(generation, "could not consume again after a give-up");
    }
  }

  /**
   * One delivery to its durable outcome, then its ack. Called in delivery order and hands the message
   * to ingest before its first await, so the pipeline sees a device's publishes in queue order.
   */
  private async handle(channel: Channel, msg: ConsumeMessage): Promise<void> {
    const routingKey = msg.fields.routingKey;
    const payload = msg.content;
    const topic = topicFromRoutingKey(routingKey);
    const parsed = topic === null ? null : parseDeviceTopic(topic);
    const admission =
      parsed && !GATEWAY_CHANNELS.has(parsed.channel) ? this.ctx.admits(parsed.deviceId) : "yes";
    let outcome: Promise<IngestResult> | null;
    // Whose errors topic hears a refusal: not the device a forged or topic-less message names.
    let tell: string | null = null;
    // Delivered often enough to be suspected of failing its groups: committed alone (header).
    let alone = false;
    if (topic === null || parsed === null) {
      outcome = this.ctx.refuse(
        null,
        routingKey.slice(0, 256),
        "unknown_topic",
        `routing key "${routingKey.slice(0, 128)}" is no device topic (ata.v1.<deviceId>.<channel>)`,
        payload,
      );
    } else if (GATEWAY_CHANNELS.has(parsed.channel)) {
      // The gateway's way to a device, which devices may not publish on: nothing to ingest.
      outcome = null;
    } else if (msg.properties.userId !== undefined && msg.properties.userId !== parsed.deviceId) {
      outcome = this.ctx.refuse(
        parsed.deviceId,
        topic,
        "forbidden",
        `published by "${String(msg.properties.userId).slice(0, 64)}", not by the device the topic names`,
        payload,
      );
    } else if (admission !== "yes") {
      // Kept as a dead letter, not logged: its events raise nothing, and the operator sees what a
      // device that should be silent still sends.
      const unknown = admission === "unknown";
      tell = parsed.deviceId;
      outcome = this.ctx.refuse(
        parsed.deviceId,
        topic,
        unknown ? "unknown_device" : "forbidden",
        unknown
          ? "the device is no longer registered; its session outlived the removal"
          : "the device is disabled; its session outlived the disable",
        payload,
      );
    } else if (parsed.channel === STATUS) {
      this.ctx.status(parsed.deviceId, payload.toString("utf8").slice(0, 32));
      outcome = null;
    } else {
      tell = parsed.deviceId;
      alone = deliveryNumber(msg) >= this.ctx.config.maxDeliveries;
      outcome = this.ctx.submit(
        parsed.deviceId,
        topic,
        parsed.channel,
        payload,
        alone ? { alone } : undefined,
      );
      if (alone) this.health.isolated++;
    }
    try {
      let result: IngestResult | null;
      try {
        result = await outcome;
        if (alone) this.countIsolated("committed");
      } catch (err) {
        // Alone, rows refused are the payload's own doing: kept as a dead letter. Anything else
        // (and a dead letter that fails too) goes back to the queue below.
        if (!alone || !(err instanceof CommitError) || !err.rowsRefused || parsed === null || topic === null)
          throw err;
        result = await this.ctx.refuse(
          parsed.deviceId,
          topic,
          "commit_failed",
          `delivered ${deliveryNumber(msg)} times, and its commit failed alone as well: ${err.message.slice(0, 200)}`,
          payload,
        );
        this.health.poisoned++;
        this.countIsolated("dead_lettered");
        this.ctx.log.error(
          { deviceId: parsed.deviceId, topic, deliveries: deliveryNumber(msg), err: err.message },
          "a message whose commit fails alone is dead-lettered (commit_failed) and acked",
        );
      }
      if (result && !result.ok) {
        this.health.deadLettered++;
        if (tell !== null && topic !== null) this.replies.refused(tell, topic, result.rejection);
      }
      this.backingOff = false;
    } catch (err) {
      if (alone) this.countIsolated("requeued");
      // Not durable (storage refusing, the gateway stopping): back to the queue, and this channel
      // closed so that the rest in flight go back too and nothing is taken until the reconnect's
      // wait is over. A full disk must not become a redelivery loop.
      this.failed(`not committed, requeued: ${(err as Error).message}`);
      this.backingOff = true;
      if (this.slots.some((s) => s.channel === channel)) {
        try {
          channel.nack(msg, false, true);
          this.health.requeued++;
        } catch {
          // The channel is already gone: RabbitMQ requeues what it had not seen acked.
        }
        void channel.close().catch(() => undefined);
      }
      return;
    }
    try {
      channel.ack(msg);
      this.health.acked++;
    } catch {
      // The channel closed after the commit: RabbitMQ delivers the message again, and the
      // pipeline's dedupe drops it as already logged.
    }
  }

  /**
   * A reply on the device's errors topic, through the exchange the MQTT plugin publishes to, under
   * the routing key the plugin makes of `ata/v1/<device>/errors` ("/" written "."), where a device's
   * subscription to that topic is bound. Persistent and marked QoS 1 for the plugin, as the embedded
   * broker publishes it. On the consumer's channel, without a confirm: best effort, like any publish
   * to a device; the dead letter is the record. (The ingest queue's binding takes it too, and the
   * consumer passes over the gateway's own channels.)
   */
  private publishError(deviceId: string, reply: ErrorReply): void {
    const channel = this.channel;
    if (!channel) return;
    try {
      channel.publish(
        this.ctx.exchange,
        errorTopic(deviceId).replaceAll("/", "."),
        Buffer.from(JSON.stringify(reply)),
        { persistent: true, headers: { "x-mqtt-publish-qos": 1 } },
      );
    } catch (err) {
      this.ctx.log.warn({ deviceId, err: (err as Error).message }, "could not publish to error topic");
    }
  }

  private countIsolated(outcome: "committed" | "dead_lettered" | "requeued"): void {
    this.ctx.metrics?.rabbitIngestIsolated.inc({ outcome });
  }

  private failed(message: string): void {
    this.health.lastError = message;
    this.health.lastErrorAt = new Date().toISOString();
    this.ctx.log.warn({ url: this.health.url, err: message }, "RabbitMQ ingest error");
  }

  /**
   * The connection or channel of this generation is gone: tidy up, make the next node current and
   * schedule the reconnect. A channel closed on a live node (a failed commit, a deleted queue) moves
   * on too: a node whose queue replica misbehaves is not worse to leave than to return to.
   */
  private lost(generation: number, reason: string, retry = true): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.urlIndex = (this.urlIndex + 1) % this.ctx.config.urls.length;
    if (this.health.ready) this.ctx.log.warn({ url: this.health.url, reason }, "RabbitMQ ingest stopped");
    this.health.ready = false;
    this.health.connectedSince = null;
    void this.close();
    if (retry) this.scheduleReconnect();
  }

  private async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    this.channel = null;
    this.health.ready = false;
    this.health.connectionEvents = false;
    for (const slot of this.slots) {
      slot.channel = null;
      slot.lastDelivery = null;
      slot.held = 0;
      slot.health.consuming = false;
      slot.health.active = false;
    }
    if (connection) await connection.close().catch(() => undefined);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    const { reconnect, urls } = this.ctx.config;
    const { minMs, maxMs } = reconnect;
    // Doubling after each round of the list: the next node is tried after the shortest wait, since
    // the loss of one node says nothing about the others.
    const rounds = Math.floor(this.attempt / urls.length);
    const base = Math.min(maxMs, minMs * 2 ** Math.min(rounds, 20));
    // Up to a fifth less, so that gateway nodes do not return to one RabbitMQ node in step.
    const wait = Math.round(base * (0.8 + Math.random() * 0.2));
    this.attempt++;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      this.health.reconnects++;
      void this.connect();
    }, wait);
  }
}
