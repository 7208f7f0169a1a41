/**
 * The embedded MQTT broker (aedes 1.x, MQTT 3.1.1) with its listeners. Security lives here, in the
 * broker hooks: authenticate (device id + secret, throttled per address), authorizePublish (a device
 * publishes only as itself; the PUBACK waits for the durable commit), authorizeSubscribe (a device
 * reads only its own error and command topics).
 */
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import {
  createServer as createTlsServer,
  TLSSocket,
  type TlsOptions,
  type Server as TlsServer,
} from "node:tls";
import { Aedes, type Client, type PublishPacket, type Subscription } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { Config } from "../config/schema.js";
import type { IngestResult } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Registry } from "../registry/registry.js";
import { DeviceAuthenticator, type ObserveGate, type RefusalKind } from "../security/device-auth.js";
import type { SecurityLog } from "../security/log.js";
import { FailureWindows } from "../security/throttle.js";
import { ErrorReplies, type ErrorReply } from "./error-replies.js";
import { errorTopic, mayPublishOn, maySubscribe, parseDeviceTopic, STATUS } from "./topics.js";

export interface BrokerContext {
  config: Config["mqtt"];
  /** Open no plain listener (mqtt.tcp, mqtt.ws) whatever their own settings say. */
  tlsOnly?: boolean;
  registry: Registry;
  log: Logger;
  metrics: Metrics;
  /** Durable intake of a device publish; the PUBACK is sent when it resolves. */
  submit(deviceId: string, topic: string, channel: string, payload: Buffer): Promise<IngestResult>;
  /** Refused connects, limits and takeovers. */
  security: SecurityLog;
  /** Observe mode (src/observe/mode.ts); absent, no device is ever observed. */
  observe?: ObserveGate;
  /**
   * The device credential check (shared with cluster mode's RabbitMQ auth backend, so that both
   * count failures in the same throttles); the broker makes its own when none is given.
   */
  auth?: DeviceAuthenticator;
}

export type { ObserveGate } from "../security/device-auth.js";

export interface ListenerAddress {
  name: "tcp" | "ws" | "tls" | "wss";
  host: string;
  port: number;
  tls: boolean;
}

/** MQTT 3.1.1 CONNACK return codes (section 3.2.2.3). */
const CONNACK = { identifierRejected: 2, serverUnavailable: 3, badCredentials: 4, notAuthorized: 5 } as const;

const CONNACK_FOR: Record<RefusalKind, number> = {
  identifier_rejected: CONNACK.identifierRejected,
  unavailable: CONNACK.serverUnavailable,
  bad_credentials: CONNACK.badCredentials,
  not_authorized: CONNACK.notAuthorized,
};

function refusal(code: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode: code });
}

/** The parts of mqtt-packet's parser (aedes' `client._parser`) that `parseIntoYoungPackets` uses. */
interface PacketParser {
  _stateCounter: number;
  _list: { length: number };
  error: Error | null;
  packet: { cmd: string | null };
  parse(buf: Buffer): number;
  _newPacket(): boolean;
}

/** What an idle parser holds instead of an empty packet object: never written, replaced on parse. */
const IDLE = Object.seal({
  cmd: null,
  retain: false,
  qos: 0,
  dup: false,
  length: -1,
  topic: null,
  payload: null,
});
let Packet: (new () => PacketParser["packet"]) | null = null;

/**
 * mqtt-packet makes the object for a connection's next packet as soon as it has parsed one, so it
 * waits for the device's next publish: a minute for a device sending heartbeats, long enough to
 * survive two scavenges and be moved to the old generation. The next frame's topic, payload and
 * message id were then written into that old object, and the scavenger keeps whatever an old object
 * points to until the next full collection, dead or not: every publish's payload was copied twice
 * and promoted. Measured with `npm run bench -- alert-latency` and V8's sampling heap profiler set
 * to keep only what survives a scavenge, that was about two thirds of all promoted bytes, and each
 * scavenge (the pause every event waits behind) took 10-14 ms. A parser that has consumed all it
 * was given holds a shared placeholder instead, and gets a fresh object just before it parses
 * again, so a publish is built in the young generation and dies there.
 */
function parseIntoYoungPackets(client: Client): void {
  const parser = (client as unknown as { _parser: PacketParser })._parser;
  Packet ??= parser.packet.constructor as new () => PacketParser["packet"];
  parser.parse = parseFresh;
  parser._newPacket = newPacketIdle;
  parser.packet = IDLE;
}

function parseFresh(this: PacketParser, buf: Buffer): number {
  if (this.packet === IDLE) this.packet = new Packet!();
  return Object.getPrototypeOf(this).parse.call(this, buf);
}

function newPacketIdle(this: PacketParser): boolean {
  const done = Object.getPrototypeOf(this)._newPacket.call(this) as boolean;
  // Nothing more in the buffer and the new packet untouched (a handler of the packet just emitted
  // may have parsed on): the parser is idle until its next parse.
  if (this._list.length === 0 && this._stateCounter === 3 && this.packet.cmd === null) this.packet = IDLE;
  return done;
}

/**
 * Publishes that ingest has taken (committed, or refused with a reply on the device's errors topic).
 * aedes goes on, after the PUBACK, to fan each publish out: a packet copy, the retained store, a
 * match against the subscriptions, a lookup of offline sessions' subscriptions. Nobody can be
 * subscribed to a device's topics (a device may subscribe only to its own errors and commands
 * topics, and the gateway subscribes to nothing), so that work reaches nobody; it was a tenth of the
 * main thread's allocation per event in `npm run bench -- alert-latency`. Status publishes and last
 * wills are not ingested and go through as before.
 *
 * The mark is a property on the packet, which is young and dies with it. A WeakSet of packets made
 * every scavenge walk the entries added since the last one: about 0.2 microseconds each, so 0.7-0.9
 * ms more per scavenge at 4,000 publishes between scavenges (measured in isolation), and a fall
 * arriving during a scavenge waits for all of it.
 */
const INGESTED = Symbol("ingested");
type Marked = PublishPacket & { [INGESTED]?: true };

function skipFanOutOfIngested(aedes: Aedes): void {
  // The typings know only publish(packet, done); the client's handler calls publish(packet, client, done).
  const publish = aedes.publish.bind(aedes) as (packet: PublishPacket, ...rest: unknown[]) => void;
  aedes.publish = ((packet: Marked, client: unknown, done?: (err?: Error) => void) => {
    if (typeof client === "function" || packet[INGESTED] !== true) return publish(packet, client, done);
    done?.();
  }) as Aedes["publish"];
}

/**
 * Emits "device.connected" (deviceId, address), "device.disconnected" (deviceId, reason) and
 * "device.status" (deviceId, payload) for the presence tracker.
 */
export class Broker extends EventEmitter {
  aedes!: Aedes;
  private servers: { name: ListenerAddress["name"]; server: NetServer | TlsServer | HttpServer }[] = [];
  private wss: WebSocketServer[] = [];
  /** Device id and secret checks, throttled per address and per device id. */
  private readonly auth: DeviceAuthenticator;
  /** Session takeovers per device id (mqtt.takeovers): repeated ones mean a shared secret. */
  private readonly takeovers: FailureWindows;
  /** What a device hears on its errors topic when a publish is refused, and how often. */
  private readonly replies: ErrorReplies;
  /** Open connections on every listener, and those not past CONNECT per address. */
  private open = 0;
  /** Per address, the connections not yet past CONNECT, oldest first (each by how to close it). */
  private readonly pending = new Map<string, Set<() => void>>();
  private readonly slots = new WeakMap<Client, { settled(): void; closed(): void }>();
  /** The subject CN of a connection's verified client certificate (mutual TLS). */
  private readonly certificateNames = new WeakMap<Client, string>();
  private readonly sockets = new Set<Socket>();
  /** Connections admitted in observe mode, and the one per device id. */
  private readonly observed = new WeakSet<Client>();
  private readonly observedIds = new Map<string, Client>();
  readonly addresses: ListenerAddress[] = [];

  constructor(private readonly ctx: BrokerContext) {
    super();
    this.auth =
      ctx.auth ??
      new DeviceAuthenticator({
        limits: ctx.config.authFailures,
        registry: ctx.registry,
        log: ctx.log,
        metrics: ctx.metrics,
        security: ctx.security,
        observe: ctx.observe,
      });
    this.takeovers = new FailureWindows("takeover", () => ({
      max: ctx.config.takeovers.alertAfter,
      windowSec: ctx.config.takeovers.windowSec,
    }));
    this.replies = new ErrorReplies(ctx.log, (deviceId, reply) => this.publishError(deviceId, reply));
  }

  async start(): Promise<void> {
    const { config, log } = this.ctx;
    this.aedes = await Aedes.createBroker({
      // Device ids are up to 64 characters; MQTT 3.1's 23 is not ours.
      maxClientsIdLength: 64,
      heartbeatInterval: 60_000,
      concurrency: 1000,
      queueLimit: 200,
      maxTopicLevels: 8,
      connectTimeout: config.connectTimeoutMs,
    });
    this.aedes.authenticate = (client, username, password, cb) => {
      this.authenticate(client, username, password).then(
        () => cb(null, true),
        (err: Error) => cb(err as Error & { returnCode: number }, false),
      );
    };
    this.aedes.authorizePublish = (client, packet, cb) => this.authorizePublish(client, packet, cb);
    skipFanOutOfIngested(this.aedes);
    this.aedes.authorizeSubscribe = (client, sub, cb) => this.authorizeSubscribe(client, sub, cb);
    this.aedes.on("client", (client) => {
      this.slots.get(client)?.settled();
      this.ctx.metrics.devicesConnected.inc();
      // An observed device has no presence: nothing supervises a device without a profile.
      if (this.observed.has(client)) this.observedIds.set(client.id, client);
      else this.emit("device.connected", client.id, remoteAddress(client));
    });
    this.aedes.on("clientDisconnect", (client) => {
      this.ctx.metrics.devicesConnected.dec();
      if (!this.observed.has(client)) this.emit("device.disconnected", client.id, "disconnect");
      else if (this.observedIds.get(client.id) === client) this.observedIds.delete(client.id);
    });
    this.aedes.on("keepaliveTimeout", (client) => {
      log.info({ deviceId: client.id }, "keepalive timeout");
    });
    this.aedes.on("clientError", (client, err) => {
      log.info({ deviceId: client.id, reason: err.message }, "client error; connection closed");
    });
    this.aedes.on("connectionError", (client, err) => {
      log.debug({ deviceId: client?.id, reason: err.message }, "connection refused");
    });

    const handle = (
      stream: Parameters<Aedes["handle"]>[0],
      address: string,
      refuse: () => void,
      certificateName: string | null,
    ) => {
      const slot = this.admitConnection(address, refuse);
      if (!slot) return refuse();
      stream.once("close", slot.closed);
      const client = this.aedes.handle(stream);
      this.slots.set(client, slot);
      if (certificateName !== null) this.certificateNames.set(client, certificateName);
      this.limitFrames(client);
      parseIntoYoungPackets(client);
    };
    const onSocket = (socket: Socket) => {
      // mqtt.js does not disable Nagle; without this, small PUBACKs wait up to 40 ms.
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      handle(socket, socket.remoteAddress ?? "unknown", () => socket.destroy(), peerName(socket));
    };

    const plain = !this.ctx.tlsOnly;
    // The TLS and WSS listeners share one certificate, key, CA and minVersion (mqtt.tls). Node's
    // default cipher list is kept (forward-secret AEAD suites first; no RC4, DES, MD5, export or
    // anonymous suites): a narrower list would lock out older device TLS stacks for little gain.
    const tlsOptions = (): TlsOptions => ({
      cert: readFileSync(config.tls.certFile!),
      key: readFileSync(config.tls.keyFile!),
      minVersion: config.tls.minVersion,
      ...(config.tls.caFile ? { ca: readFileSync(config.tls.caFile) } : {}),
      // Mutual TLS: the handshake fails without a certificate from caFile; authenticate() then
      // checks that its CN is the device id the CONNECT names.
      ...(config.tls.clientCertificates === "required"
        ? { requestCert: true, rejectUnauthorized: true }
        : {}),
    });
    if (plain && config.tcp.enabled) {
      const server = createNetServer(onSocket);
      await this.listen("tcp", server, config.tcp.host, config.tcp.port);
    }
    if (config.tls.enabled) {
      const server = createTlsServer(tlsOptions(), (socket) => onSocket(socket as unknown as Socket));
      await this.listen("tls", server, config.tls.host, config.tls.port);
    }
    const webSocket = (server: HttpServer) => {
      const wss = new WebSocketServer({ server, maxPayload: config.maxFrameBytes });
      wss.on("connection", (ws, req) => {
        const stream = createWebSocketStream(ws);
        (req.socket as Socket).setNoDelay(true);
        stream.on("error", () => ws.terminate());
        handle(
          stream as unknown as Socket,
          req.socket.remoteAddress ?? "unknown",
          () => ws.terminate(),
          peerName(req.socket),
        );
      });
      this.wss.push(wss);
    };
    const upgradeRequired = (scheme: string) => (_req: unknown, res: ServerResponse) => {
      res
        .writeHead(426, { "content-type": "text/plain" })
        .end(`MQTT over WebSocket: connect with ${scheme}://host:port/mqtt\n`);
    };
    if (plain && config.ws.enabled) {
      const server = createHttpServer(upgradeRequired("ws"));
      webSocket(server);
      await this.listen("ws", server, config.ws.host, config.ws.port);
    }
    if (config.wss.enabled) {
      const server = createHttpsServer(tlsOptions(), upgradeRequired("wss"));
      webSocket(server);
      await this.listen("wss", server, config.wss.host, config.wss.port);
    }
  }

  private async listen(
    name: ListenerAddress["name"],
    server: NetServer | TlsServer | HttpServer,
    host: string,
    port: number,
  ): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address();
    const bound = typeof addr === "object" && addr ? addr.port : port;
    this.servers.push({ name, server });
    this.addresses.push({ name, host, port: bound, tls: name === "tls" || name === "wss" });
    this.ctx.log.info({ listener: name, host, port: bound }, "MQTT listener ready");
  }

  /** Stop accepting, close every device connection (their wills fire), close the broker. */
  async stop(): Promise<void> {
    for (const { server } of this.servers) server.close();
    for (const wss of this.wss) wss.close();
    this.wss = [];
    for (const s of this.sockets) s.destroy();
    if (this.aedes) await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    this.servers = [];
  }

  /** Whether this device id is connected in observe mode now. */
  isObserved(deviceId: string): boolean {
    return this.observedIds.has(deviceId);
  }

  /** Tell a device why its publish was rejected, on its own error topic. */
  publishError(deviceId: string, body: ErrorReply): void {
    this.aedes.publish(
      {
        cmd: "publish",
        topic: errorTopic(deviceId),
        payload: Buffer.from(JSON.stringify(body)),
        qos: 1,
        retain: false,
        dup: false,
      } as PublishPacket,
      (err) => {
        if (err) this.ctx.log.warn({ deviceId, err }, "could not publish to error topic");
      },
    );
  }

  /**
   * A device id already connected is taken over by this connection (MQTT 3.1.1 3.1.4-2: the old
   * session is closed). Once is a device reconnecting before its old socket timed out; again and
   * again within the window is two holders of one secret fighting over the session: a stolen secret
   * shows itself. Each is a security event; at mqtt.takeovers.alertAfter the gateway is told
   * ("device.credentials_shared") and raises a tamper alert.
   */
  private noteTakeover(client: Client, address: string): void {
    // aedes keeps its connected clients by id; the typings do not say so.
    const previous = (this.aedes as unknown as { clients: Record<string, Client | undefined> }).clients[
      client.id
    ];
    if (!previous || previous === client) return;
    const previousAddress = remoteAddress(previous);
    this.ctx.metrics.sessionTakeovers.inc();
    this.ctx.security.record({
      kind: "session_takeover",
      address,
      subject: client.id,
      detail: { previousAddress },
    });
    this.takeovers.record(client.id);
    const n = this.takeovers.count(client.id);
    if (n === this.ctx.config.takeovers.alertAfter) {
      this.ctx.security.record({
        kind: "takeover_alert",
        address,
        subject: client.id,
        detail: { takeovers: n, windowSec: this.ctx.config.takeovers.windowSec },
      });
      this.emit("device.credentials_shared", client.id, n);
    }
  }

  /**
   * Whether to take a new connection: not past the cap on all listeners (mqtt.maxConnections).
   * Connections from one address that have not completed CONNECT yet are capped too
   * (mqtt.maxPendingPerAddress): past it the oldest of them is closed to make room, so one host
   * cannot hold the slots with idle sockets. Counts the connection when taken; `settled` marks
   * CONNECT done, `closed` gives the slot back.
   */
  private admitConnection(address: string, close: () => void): { settled(): void; closed(): void } | null {
    const { maxConnections, maxPendingPerAddress } = this.ctx.config;
    if (this.open >= maxConnections) {
      this.ctx.metrics.connectionsRefused.inc({ reason: "connection_cap" });
      this.ctx.security.record({ kind: "connection_limited", address, detail: { reason: "connection_cap" } });
      return null;
    }
    let pending = this.pending.get(address);
    if (!pending) {
      pending = new Set();
      this.pending.set(address, pending);
    }
    if (pending.size >= maxPendingPerAddress) {
      // The oldest connection still waiting for CONNECT goes, not the new one: a device's CONNECT
      // arrives within milliseconds of its socket, an attacker's idle sockets sit for the connect
      // timeout. So idle sockets cannot keep a device behind the same address out.
      const oldest = pending.values().next().value;
      if (oldest) {
        pending.delete(oldest);
        oldest();
      }
      this.ctx.metrics.connectionsRefused.inc({ reason: "pending_cap" });
      this.ctx.security.record({ kind: "connection_limited", address, detail: { reason: "pending_cap" } });
    }
    this.open++;
    pending.add(close);
    const set = pending;
    const settled = () => {
      if (!set.delete(close)) return;
      if (!set.size && this.pending.get(address) === set) this.pending.delete(address);
    };
    let isOpen = true;
    return {
      settled,
      closed: () => {
        settled();
        if (isOpen) this.open--;
        isOpen = false;
      },
    };
  }

  /**
   * MQTT 3.1.1 has no way to refuse an oversized PUBLISH, and aedes buffers whole packets. A frame
   * whose declared length exceeds the limit closes the connection before it is buffered: before
   * CONNECT has succeeded the limit is mqtt.maxConnectFrameBytes (a CONNECT with its will), after
   * it mqtt.maxFrameBytes.
   */
  private limitFrames(client: Client): void {
    const { maxFrameBytes, maxConnectFrameBytes } = this.ctx.config;
    const security = this.ctx.security;
    const parser = (
      client as unknown as { _parser: { _parseLength(): boolean; packet: { length: number; cmd: string } } }
    )._parser;
    const original = parser._parseLength.bind(parser);
    const log = this.ctx.log;
    parser._parseLength = function limitedParseLength(this: typeof parser) {
      const done = original();
      // aedes sets connackSent once CONNECT succeeded (not in its typings).
      const connected = (client as unknown as { connackSent: boolean }).connackSent;
      const max = connected ? maxFrameBytes : maxConnectFrameBytes;
      if (done && this.packet.length > max) {
        security.record({
          kind: "connection_limited",
          address: remoteAddress(client),
          subject: client.id ?? null,
          detail: { reason: connected ? "frame_too_large" : "connect_frame_too_large", limit: max },
        });
        log.warn(
          {
            deviceId: client.id ?? null,
            declared: this.packet.length,
            limit: max,
            address: remoteAddress(client),
          },
          "MQTT frame larger than the limit; connection closed",
        );
        client.conn.destroy();
        return false;
      }
      return done;
    };
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined) {
    const address = remoteAddress(client);
    const result = await this.auth.login({
      username,
      secret: password?.toString("utf8"),
      clientId: client.id,
      address,
      certificateName: this.certificateNames.get(client),
      observe: true,
    });
    if (!result.ok) throw refusal(CONNACK_FOR[result.kind], result.message);
    if (result.observed) this.observed.add(client);
    this.noteTakeover(client, address);
  }

  private authorizePublish(
    client: Client | null,
    packet: PublishPacket,
    cb: (err?: Error | null) => void,
  ): void {
    // client is null when aedes itself publishes a will after the device is gone.
    if (!client) return cb(null);
    const deviceId = client.id;
    const parsed = parseDeviceTopic(packet.topic);
    if (parsed === null || !mayPublishOn(deviceId, parsed)) {
      this.ctx.metrics.publishesDenied.inc({ kind: "publish" });
      this.ctx.security.record({
        kind: "topic_denied",
        address: remoteAddress(client),
        subject: deviceId,
        detail: { action: "publish", topic: packet.topic.slice(0, 128) },
      });
      this.ctx.log.warn(
        { deviceId, topic: packet.topic },
        "publish outside the device's own topics; disconnected",
      );
      return cb(new Error(`not authorised to publish on ${packet.topic}`));
    }
    const { channel } = parsed;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    if (this.observed.has(client)) {
      // Kept for onboarding, status included; never decoded, never logged as an event.
      packet.retain = false;
      try {
        this.ctx.observe!.keep(deviceId, channel, payload);
      } catch (err) {
        this.ctx.log.error(
          { deviceId, err: (err as Error).message },
          "observed publish not kept; connection closed",
        );
        return cb(err as Error);
      }
      return cb(null);
    }
    if (channel === STATUS) {
      this.emit("device.status", deviceId, payload.toString("utf8").slice(0, 32));
      return cb(null);
    }
    // Only status is kept retained; a retained event would replay to nobody and cost memory.
    packet.retain = false;
    this.ctx.submit(deviceId, packet.topic, channel, payload).then(
      (result) => {
        if (!result.ok) this.replies.refused(deviceId, packet.topic, result.rejection);
        (packet as Marked)[INGESTED] = true;
        cb(null);
      },
      (err: Error) => {
        // Not durable: no PUBACK. Closing the connection makes the device redeliver.
        this.ctx.log.error(
          { deviceId, err: err.message },
          "publish could not be committed; connection closed",
        );
        cb(err);
      },
    );
  }

  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    cb: (err: Error | null, sub: Subscription | null) => void,
  ): void {
    if (maySubscribe(client.id, sub.topic)) return cb(null, sub);
    this.ctx.metrics.publishesDenied.inc({ kind: "subscribe" });
    this.ctx.security.record({
      kind: "topic_denied",
      address: remoteAddress(client),
      subject: client.id,
      detail: { action: "subscribe", topic: sub.topic.slice(0, 128) },
    });
    this.ctx.log.warn({ deviceId: client.id, topic: sub.topic }, "subscription refused");
    // SUBACK 0x80 (failure) for this topic; the connection stays up.
    cb(null, null);
  }
}

function remoteAddress(client: Client): string {
  const conn = client.conn as unknown as { remoteAddress?: string; _socket?: { remoteAddress?: string } };
  return conn.remoteAddress ?? conn._socket?.remoteAddress ?? "unknown";
}

/**
 * The subject CN of a TLS peer's client certificate, when the handshake verified one against
 * mqtt.tls.caFile (mutual TLS; "" when it has no CN); null otherwise.
 */
function peerName(socket: Socket | TLSSocket): string | null {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === "string" ? cn : (cn?.[0] ?? "");
}
