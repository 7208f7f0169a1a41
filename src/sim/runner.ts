/**
 * Plays an event source (the nursing-home model, or the rate model for load) against a gateway over
 * real MQTT: one client per device with its own credentials, QoS 1, Nagle off, a bounded window of
 * unacknowledged publishes per client, and the simulated clock running `speed` times real time.
 *
 * What it measures: sent (PUBLISH written), acknowledged (PUBACK: the gateway has the event durably,
 * or has dead-lettered it), rejected (a message on the device's error topic: the payload was refused),
 * failed (the publish errored, e.g. the connection dropped before the PUBACK), publish-to-PUBACK
 * latency, and the simulated time reached. A rejected publish is also acknowledged, since the gateway
 * acknowledges what it has durably dead-lettered.
 */
import type { Socket } from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { deviceTopic, errorTopic } from "../broker/topics.js";
import { type Encoder, getEncoder } from "./encoders.js";
import type { EventSource, SimEvent } from "./model.js";

export interface RunnerDevice {
  id: string;
  profile: string;
  secret: string;
  /** The site's time zone, for vendors that send local time. */
  timeZone?: string;
}

export interface RunnerOptions {
  /** mqtt://host:port (or mqtts://, ws://). */
  url: string;
  devices: readonly RunnerDevice[];
  source: EventSource;
  /** Simulated seconds per real second; Infinity plays as fast as the gateway acknowledges. Default 1. */
  speed?: number;
  /** Unacknowledged publishes per client before further events for it wait. Default 32. */
  inFlight?: number;
  /** Events waiting for a window across all clients before the simulated clock is held back. Default 10,000. */
  maxBacklog?: number;
  /** Clients connecting at once. Default 100. */
  connectConcurrency?: number;
  progress?: (stats: RunnerStats) => void;
  /** How often `progress` is called. Default 1000 ms. */
  progressIntervalMs?: number;
  /** Extra mqtt.js options (e.g. TLS); credentials and protocol are set per device. */
  clientOptions?: IClientOptions;
}

export interface RunnerStats {
  /** Simulated time reached: the latest event handed to a client (epoch ms). */
  simTime: number;
  /** Real seconds since the first publish could go out. */
  elapsedSec: number;
  devices: number;
  connected: number;
  sent: number;
  acknowledged: number;
  rejected: number;
  failed: number;
  inFlight: number;
  /** Events due but waiting for a window. */
  backlog: number;
  /** Acknowledgements per real second over the last progress interval (overall once done). */
  ackRate: number;
  /** Sent per happening kind (heartbeat, fall, bed.exit, ...). */
  sentByKind: Record<string, number>;
  /** Rejections per error code. */
  rejectedByCode: Record<string, number>;
  /** Publish to PUBACK, milliseconds. */
  latencyMs: { p50: number; p99: number; max: number };
  /** The source is exhausted and every publish is settled. */
  done: boolean;
}

interface Peer {
  device: RunnerDevice;
  encoder: Encoder;
  client: MqttClient | null;
  connected: boolean;
  inFlight: number;
  queue: SimEvent[];
}

/** Log-spaced latency histogram: 1 µs .. ~100 s in 5% steps, constant memory. */
class Histogram {
  private readonly counts = new Uint32Array(400);
  private total = 0;
  max = 0;
  add(ms: number): void {
    const i = Math.min(
      this.counts.length - 1,
      Math.max(0, Math.floor(Math.log(ms * 1000 + 1) / Math.log(1.05))),
    );
    this.counts[i]!++;
    this.total++;
    if (ms > this.max) this.max = ms;
  }
  quantile(q: number): number {
    if (this.total === 0) return 0;
    let seen = 0;
    const want = q * this.total;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return Math.min(this.max, (1.05 ** (i + 1) - 1) / 1000);
    }
    return this.max;
  }
}

export class SimRunner {
  private readonly speed: number;
  private readonly window: number;
  private readonly maxBacklog: number;
  private readonly peers = new Map<string, Peer>();
  private readonly latency = new Histogram();
  private readonly counts = { sent: 0, acknowledged: 0, rejected: 0, failed: 0, connected: 0 };
  private readonly sentByKind: Record<string, number> = {};
  private readonly rejectedByCode: Record<string, number> = {};
  private inFlight = 0;
  private backlog = 0;
  private simTime: number;
  private realStart = 0;
  private running = false;
  private exhausted = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private tickQueued = false;
  private progressTimer: NodeJS.Timeout | null = null;
  private lastProgress = { at: 0, acknowledged: 0 };
  private lastRate = 0;
  private resolveDone!: (s: RunnerStats) => void;
  /** Resolves when the source is exhausted and every publish has settled (or on stop()). */
  readonly done: Promise<RunnerStats>;

  constructor(private readonly options: RunnerOptions) {
    this.speed = options.speed ?? 1;
    if (!(this.speed > 0)) throw new Error("speed must be positive");
    this.window = Math.max(1, options.inFlight ?? 32);
    this.maxBacklog = Math.max(1, options.maxBacklog ?? 10_000);
    this.simTime = options.source.start;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    for (const device of options.devices) {
      const encoder = getEncoder(device.profile);
      if (!encoder)
        throw new Error(`device ${device.id}: the simulator has no encoder for profile "${device.profile}"`);
      this.peers.set(device.id, { device, encoder, client: null, connected: false, inFlight: 0, queue: [] });
    }
  }

  /** Connect every device (failing if any is refused), then start the clock. */
  async start(): Promise<void> {
    const peers = [...this.peers.values()];
    const concurrency = Math.max(1, this.options.connectConcurrency ?? 100);
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < peers.length) {
        const peer = peers[next++]!;
        try {
          await this.connect(peer);
        } catch (err) {
          failures.push(`${peer.device.id}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, peers.length) }, worker));
    if (failures.length > 0) {
      await this.closeClients();
      const more = failures.length > 5 ? ` (and ${failures.length - 5} more)` : "";
      throw new Error(
        `${failures.length} device(s) could not connect: ${failures.slice(0, 5).join("; ")}${more}`,
      );
    }
    this.running = true;
    this.realStart = performance.now();
    this.lastProgress = { at: this.realStart, acknowledged: 0 };
    if (this.options.progress) {
      const every = this.options.progressIntervalMs ?? 1000;
      this.progressTimer = setInterval(() => this.options.progress?.(this.stats(true)), every);
      this.progressTimer.unref?.();
    }
    this.tick();
  }

  /** Stop the clock, give in-flight publishes up to `drainMs` to settle, close every client. */
  async stop(drainMs = 2000): Promise<RunnerStats> {
    this.running = false;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    const deadline = performance.now() + drainMs;
    while (this.inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.progressTimer) clearInterval(this.progressTimer);
    this.progressTimer = null;
    await this.closeClients();
    const final = this.stats();
    this.resolveDone(final);
    return final;
  }

  stats(interval = false): RunnerStats {
    const now = performance.now();
    const elapsedSec = this.realStart ? (now - this.realStart) / 1000 : 0;
    const done = this.exhausted && this.inFlight === 0 && this.backlog === 0;
    if (interval) {
      const dt = (now - this.lastProgress.at) / 1000;
      if (dt > 0) this.lastRate = (this.counts.acknowledged - this.lastProgress.acknowledged) / dt;
      this.lastProgress = { at: now, acknowledged: this.counts.acknowledged };
    }
    return {
      simTime: this.simTime,
      elapsedSec,
      devices: this.peers.size,
      connected: this.counts.connected,
      sent: this.counts.sent,
      acknowledged: this.counts.acknowledged,
      rejected: this.counts.rejected,
      failed: this.counts.failed,
      inFlight: this.inFlight,
      backlog: this.backlog,
      ackRate:
        done || !interval ? (elapsedSec > 0 ? this.counts.acknowledged / elapsedSec : 0) : this.lastRate,
      sentByKind: { ...this.sentByKind },
      rejectedByCode: { ...this.rejectedByCode },
      latencyMs: { p50: this.latency.quantile(0.5), p99: this.latency.quantile(0.99), max: this.latency.max },
      done,
    };
  }

  private connect(peer: Peer): Promise<void> {
    const { id, secret } = peer.device;
    return new Promise((resolve, reject) => {
      const client = mqtt.connect(this.options.url, {
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        ...this.options.clientOptions,
        clientId: id,
        username: id,
        password: secret,
        protocolVersion: 4,
        clean: true,
      });
      peer.client = client;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end(true);
        reject(err);
      };
      // mqtt.js leaves Nagle on: without this a small PUBACK waits for the next packet or 40 ms.
      const noDelay = () => (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
      noDelay();
      client.on("connect", () => {
        noDelay();
        peer.connected = true;
        this.counts.connected++;
        if (settled) return;
        client.subscribe(errorTopic(id), { qos: 1 }, (err) => {
          if (err) return fail(err);
          settled = true;
          resolve();
        });
      });
      client.on("close", () => {
        if (peer.connected) this.counts.connected--;
        peer.connected = false;
        // The first attempt decides: a gateway that is not there should fail the run, not retry forever.
        fail(new Error(`connection to ${this.options.url} closed before CONNACK`));
      });
      // After the first connect mqtt.js reconnects by itself and resends unacknowledged QoS 1 publishes.
      client.on("error", (err) => fail(err));
      client.on("message", (_topic, payload) => {
        this.counts.rejected++;
        let code = "unknown";
        try {
          code = String((JSON.parse(payload.toString("utf8")) as { code?: unknown }).code ?? "unknown");
        } catch {}
        this.rejectedByCode[code] = (this.rejectedByCode[code] ?? 0) + 1;
      });
    });
  }

  private async closeClients(): Promise<void> {
    await Promise.all(
      [...this.peers.values()].map(async (p) => {
        const client = p.client;
        p.client = null;
        if (client) await client.endAsync(true).catch(() => {});
      }),
    );
    this.counts.connected = 0;
  }

  /** Hand every due event to its client, then sleep until the next one is due or a window frees. */
  private tick(): void {
    this.tickTimer = null;
    this.tickQueued = false;
    if (!this.running) return;
    const source = this.options.source;
    const target = Number.isFinite(this.speed)
      ? source.start + (performance.now() - this.realStart) * this.speed
      : Number.POSITIVE_INFINITY;
    let next: SimEvent | undefined;
    while (this.backlog < this.maxBacklog) {
      next = source.peek();
      if (!next) {
        this.exhausted = true;
        break;
      }
      if (next.at > target) break;
      source.next();
      this.simTime = Math.max(this.simTime, next.at);
      this.dispatch(next);
    }
    if (this.exhausted) {
      if (Number.isFinite(this.speed)) this.simTime = Math.max(this.simTime, Math.min(target, source.end));
      this.settleIfDone();
      return;
    }
    if (this.backlog >= this.maxBacklog) return; // an acknowledgement re-arms the clock
    if (next && Number.isFinite(this.speed)) {
      this.simTime = Math.max(this.simTime, target);
      const waitMs = (next.at - target) / this.speed;
      this.tickTimer = setTimeout(() => this.tick(), Math.min(250, Math.max(1, waitMs)));
    }
  }

  private dispatch(e: SimEvent): void {
    const peer = this.peers.get(e.deviceId);
    if (!peer) return;
    if (peer.inFlight < this.window && peer.queue.length === 0) this.publish(peer, e);
    else {
      peer.queue.push(e);
      this.backlog++;
    }
  }

  private publish(peer: Peer, e: SimEvent): void {
    const client = peer.client;
    if (!client) return;
    const { channel, payload } = peer.encoder.encode(e.happening, {
      timeZone: peer.device.timeZone ?? "Europe/Copenhagen",
    });
    peer.inFlight++;
    this.inFlight++;
    this.counts.sent++;
    const kind = e.happening.kind === "fall" ? `fall.${e.happening.stage}` : e.happening.kind;
    this.sentByKind[kind] = (this.sentByKind[kind] ?? 0) + 1;
    const t0 = performance.now();
    client.publish(deviceTopic(peer.device.id, channel), payload, { qos: 1 }, (err) => {
      peer.inFlight--;
      this.inFlight--;
      if (err) this.counts.failed++;
      else {
        this.counts.acknowledged++;
        this.latency.add(performance.now() - t0);
      }
      const queued = peer.queue.shift();
      if (queued) {
        this.backlog--;
        this.publish(peer, queued);
      }
      this.wake();
    });
  }

  /** After an acknowledgement: resume pulling if the clock was held back, or finish. */
  private wake(): void {
    if (this.exhausted) {
      this.settleIfDone();
      return;
    }
    if (!this.running || this.tickQueued || this.tickTimer) return;
    if (this.backlog < this.maxBacklog / 2 || !Number.isFinite(this.speed)) {
      this.tickQueued = true;
      setImmediate(() => this.tick());
    }
  }

  private settleIfDone(): void {
    if (this.inFlight > 0 || this.backlog > 0) return;
    this.options.progress?.(this.stats());
    this.resolveDone(this.stats());
  }
}

/**
 * Run a source to its end: connect, play, wait for every acknowledgement, close. `settleMs` waits
 * for error-topic messages that may trail their PUBACK.
 */
export async function runSimulation(options: RunnerOptions, settleMs = 100): Promise<RunnerStats> {
  const runner = new SimRunner(options);
  await runner.start();
  await runner.done;
  await new Promise((r) => setTimeout(r, settleMs));
  return runner.stop();
}
