/**
 * One MQTT client connection to another network's broker, as a bridge uses it: mqtt.js with Nagle off,
 * a persistent session (stable client id, clean: false) so the broker queues QoS 1 messages while the
 * gateway is away, reconnects with doubling waits, subscriptions at QoS 1 on every connect, and a QoS 1
 * message acknowledged only after its outcome is durable (events committed or dead-lettered): a crash
 * before that leaves it unacknowledged, and the broker delivers it again.
 *
 * Written against mqtt.js 5.16 (`customHandleAcks` set on `client.options`, `reconnect()`).
 */
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../log.js";
import type { BridgeMetrics } from "./metrics.js";

export interface ConnectionOptions {
  name: string;
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  clientId: string;
  tls?: { caFile?: string | undefined; rejectUnauthorized: boolean } | undefined;
  reconnect: { minMs: number; maxMs: number };
  topics: readonly string[];
}

/** Handles one message; resolves once its outcome is durable. A rejection means "not handled". */
export type MessageHandler = (topic: string, payload: Buffer, retained: boolean) => Promise<void>;

export interface ConnectionHealth {
  url: string;
  connected: boolean;
  connectedSince: string | null;
  lastMessageAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  reconnects: number;
}

/** The URL as shown to operators: without credentials (config refuses them there anyway). */
function shownUrl(url: string): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.toString();
}

export class BridgeConnection {
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  /** The last connection was dropped because a message could not be handled (storage refused it). */
  private backingOff = false;
  private stopped = true;
  private readonly health: ConnectionHealth;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly handle: MessageHandler,
    private readonly log: Logger,
    private readonly metrics: BridgeMetrics,
  ) {
    this.health = {
      url: shownUrl(options.url),
      connected: false,
      connectedSince: null,
      lastMessageAt: null,
      lastError: null,
      lastErrorAt: null,
      reconnects: 0,
    };
  }

  status(): ConnectionHealth {
    return { ...this.health };
  }

  /** Connects in the background: the gateway starts whether or not the broker is there. */
  start(): void {
    this.stopped = false;
    const o = this.options;
    const opts: IClientOptions = {
      clientId: o.clientId,
      clean: false,
      protocolVersion: 4,
      keepalive: 30,
      connectTimeout: 10_000,
      // Reconnects are scheduled here, with doubling waits; mqtt.js only knows a fixed period.
      reconnectPeriod: 0,
      resubscribe: false,
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(o.tls
        ? {
            rejectUnauthorized: o.tls.rejectUnauthorized,
            ...(o.tls.caFile ? { ca: readFileSync(o.tls.caFile) } : {}),
          }
        : {}),
    };
    const client = mqtt.connect(o.url, opts);
    // mqtt.js 5.x takes customHandleAcks from the options only with MQTT 5 and otherwise replaces it
    // with one that acknowledges at once; The Things Stack speaks MQTT 3.1.1 only. Its publish handler
    // reads client.options.customHandleAcks per packet, so setting it here holds the PUBACK (whose
    // reason code MQTT 3.1.1 does not encode) until the message's outcome is durable.
    client.options.customHandleAcks = (topic, message, packet, done) => {
      this.deliver(topic, message, packet.retain).then(
        () => done(0),
        // Not acknowledged: the session keeps it, and the broker sends it again after the reconnect.
        () => this.dropConnection("a message could not be handled"),
      );
    };
    this.client = client;
    client.on("connect", (connack) => {
      (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
      // After a drop for a message that could not be handled, the waits keep growing until one is:
      // a full disk must not turn into a reconnect every second.
      if (!this.backingOff) this.attempt = 0;
      this.health.connected = true;
      this.health.connectedSince = new Date().toISOString();
      this.metrics.connected.set({ bridge: o.name }, 1);
      this.log.info({ url: this.health.url, sessionPresent: connack.sessionPresent }, "bridge connected");
      // Always (again): a broker that restarted without persistence has forgotten the session.
      client.subscribe([...o.topics], { qos: 1 }, (err, granted) => {
        if (err) return this.failed(`subscribe failed: ${err.message}`);
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length) this.failed(`subscription refused: ${refused.join(", ")}`);
      });
    });
    // QoS 0 messages (The Things Stack's MQTT server offers only QoS 0) arrive here; QoS 1 and 2 come
    // through customHandleAcks above and are emitted here again after their acknowledgement.
    client.on("message", (topic, message, packet) => {
      if (packet.qos !== 0) return;
      this.deliver(topic, message, packet.retain).catch(() => {
        // Already logged by deliver(); a QoS 0 message cannot be asked for again.
      });
    });
    client.on("error", (err) => this.failed(err.message));
    client.on("close", () => {
      if (this.health.connected) this.log.warn({ url: this.health.url }, "bridge disconnected");
      this.health.connected = false;
      this.health.connectedSince = null;
      this.metrics.connected.set({ bridge: o.name }, 0);
      this.scheduleReconnect();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    if (client) await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    this.health.connected = false;
    this.metrics.connected.set({ bridge: this.options.name }, 0);
  }

  private async deliver(topic: string, message: Buffer, retained: boolean): Promise<void> {
    this.health.lastMessageAt = new Date().toISOString();
    this.metrics.messages.inc({ bridge: this.options.name });
    try {
      await this.handle(topic, message, retained);
      this.backingOff = false;
    } catch (err) {
      this.failed(`handling a message failed: ${(err as Error).message}`);
      throw err;
    }
  }

  private failed(message: string): void {
    this.health.lastError = message;
    this.health.lastErrorAt = new Date().toISOString();
    this.log.warn({ url: this.health.url, err: message }, "bridge error");
  }

  private dropConnection(reason: string): void {
    this.backingOff = true;
    this.log.warn(
      { url: this.health.url, reason },
      "bridge drops its connection to be sent the message again",
    );
    // As if the network dropped: no DISCONNECT, so the broker keeps the message for the session,
    // and the close handler schedules the reconnect.
    (this.client?.stream as unknown as Socket | undefined)?.destroy();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    const { minMs, maxMs } = this.options.reconnect;
    const base = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt, 20));
    // Up to a fifth less, so that many gateways do not return to one broker in step.
    const wait = Math.round(base * (0.8 + Math.random() * 0.2));
    this.attempt++;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped || !this.client) return;
      this.health.reconnects++;
      this.metrics.reconnects.inc({ bridge: this.options.name });
      this.client.reconnect();
    }, wait);
    this.timer.unref();
  }
}
