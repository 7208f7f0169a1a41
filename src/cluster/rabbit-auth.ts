/**
 * RabbitMQ's HTTP auth backend (rabbitmq_auth_backend_http), answered from the gateway's registry:
 * in cluster mode devices connect to RabbitMQ's MQTT plugin, and RabbitMQ asks here who may log in
 * and what they may touch. The answers are the embedded broker's: the same credential check and
 * throttles (src/security/device-auth.ts), the same topic rules (src/broker/topics.ts), the same
 * security-log rows.
 *
 * What RabbitMQ 3.10.8 sends (read from its rabbit_auth_backend_http, rabbit_direct,
 * rabbit_mqtt_processor and rabbit_channel modules, and seen on the wire in
 * test/cluster/rabbit-auth.test.ts), form-encoded in a POST body (auth_http.http_method = post) or
 * in the query string (get):
 *
 *   user      username, password, vhost, client_id (the MQTT client id)
 *   vhost     username, vhost, ip (the device's address), tags, client_id
 *   resource  username, vhost, resource (exchange | queue), name, permission
 *             (configure | write | read), tags, client_id
 *   topic     username, vhost, resource (topic), name (the exchange), permission (write on publish,
 *             read on subscribe), tags, routing_key, variable_map.{client_id,username,vhost}
 *
 * Each answer is 200 with a body of `allow` or `deny` (3.10 accepts nothing else: no reasons after
 * "deny", no tags for devices). Requests without the shared secret (HTTP Basic, from the user info
 * RabbitMQ's HTTP client finds in the configured URL) get 401 and a security-log row.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { mayPublish, maySubscribe, topicFromRoutingKey } from "../broker/topics.js";
import { ApiError } from "../errors.js";
import { RawReply, type RequestContext, type Router } from "../http/router.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { OBSERVE_PROFILE } from "../observe/config.js";
import type { Registry } from "../registry/registry.js";
import type { DeviceAuthenticator } from "../security/device-auth.js";
import type { SecurityLog } from "../security/log.js";
import { FailureWindows } from "../security/throttle.js";
import type { RabbitAuthConfig } from "./config.js";

export const RABBIT_AUTH_BASE = "/api/v1/cluster/rabbitmq";

const Name = z.string().min(1).max(255);
const Optional = z.string().max(255).optional();

/** One schema per endpoint; parameters RabbitMQ adds in later versions are ignored. */
export const RABBIT_REQUESTS = {
  user: z.object({
    username: Name,
    password: z.string().max(1024).optional(),
    vhost: Optional,
    client_id: Optional,
  }),
  vhost: z.object({ username: Name, vhost: Name, ip: Optional, client_id: Optional }),
  resource: z.object({
    username: Name,
    vhost: Name,
    resource: z.enum(["exchange", "queue", "topic"]),
    name: Name,
    permission: z.enum(["configure", "write", "read"]),
    client_id: Optional,
  }),
  topic: z.object({
    username: Name,
    vhost: Name,
    resource: z.literal("topic"),
    name: Name,
    permission: z.enum(["write", "read"]),
    routing_key: z.string().max(1024),
    "variable_map.client_id": Optional,
  }),
} as const;

export type RabbitRequestKind = keyof typeof RABBIT_REQUESTS;
export type RabbitRequest<K extends RabbitRequestKind> = z.infer<(typeof RABBIT_REQUESTS)[K]>;

/**
 * The parameters of one request, checked against its endpoint's schema. A parameter given twice is
 * refused rather than read one way here and another way by whoever wrote the request.
 */
export function parseRabbitRequest<K extends RabbitRequestKind>(
  kind: K,
  params: URLSearchParams,
): { ok: true; request: RabbitRequest<K> } | { ok: false; problems: { path: string; message: string }[] } {
  const raw: Record<string, string> = {};
  const problems: { path: string; message: string }[] = [];
  for (const [key, value] of params) {
    if (Object.hasOwn(raw, key)) problems.push({ path: key, message: "given more than once" });
    raw[key] = value;
  }
  const parsed = RABBIT_REQUESTS[kind].safeParse(raw);
  if (!parsed.success)
    problems.push(...parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
  if (problems.length || !parsed.success) return { ok: false, problems };
  return { ok: true, request: parsed.data as RabbitRequest<K> };
}

export interface RabbitAuthContext {
  config: RabbitAuthConfig;
  registry: Registry;
  /** The credential check the embedded broker uses, with its throttles. */
  auth: DeviceAuthenticator;
  security: SecurityLog;
  metrics: Metrics;
  log: Logger;
  /**
   * With the ingest consumer configured: whether its queue and binding were declared. Until then
   * publishes are refused, since RabbitMQ 3.10 confirms (and PUBACKs) a publish no queue takes.
   */
  ingestDeclared?: () => boolean;
}

/** The security log's `via` for everything that comes through RabbitMQ. */
const VIA = "rabbitmq";

export class RabbitAuth {
  private readonly credential: Buffer;
  /** Requests without the shared secret, per address: past the limit they are refused unchecked. */
  private readonly secretFailures = new FailureWindows("rabbit-secret", () => ({ max: 20, windowSec: 60 }));

  /** The ingest consumer's AMQP users (one per URL, usually the same), when configured. */
  private readonly consumerUsers: ReadonlySet<string>;

  constructor(private readonly ctx: RabbitAuthContext) {
    const { username, secret, ingest } = ctx.config;
    if (!secret) throw new Error("cluster.rabbitmq.secret is required");
    this.credential = digest(`${username}:${secret}`);
    this.consumerUsers = new Set(ingest?.urls.map((u) => decodeURIComponent(new URL(u).username)) ?? []);
  }

  /** Whether the request carries the shared secret (HTTP Basic); throws 401 or 429 otherwise. */
  checkCaller(authorization: string | undefined, address: string): void {
    if (this.secretFailures.throttled(address)) {
      this.ctx.security.record({
        kind: "backend_auth_failed",
        address,
        detail: { reason: "throttled", via: VIA },
      });
      throw new ApiError("rate_limited");
    }
    const given = authorization?.startsWith("Basic ")
      ? Buffer.from(authorization.slice(6).trim(), "base64").toString("utf8")
      : null;
    if (given !== null && timingSafeEqual(digest(given), this.credential)) return;
    this.secretFailures.record(address);
    this.ctx.security.record({
      kind: "backend_auth_failed",
      address,
      detail: { reason: given === null ? "no_credentials" : "bad_secret", via: VIA },
    });
    throw new ApiError("unauthenticated", "the RabbitMQ auth endpoints need the shared secret");
  }

  /** Counts an answer, so an operator sees how often RabbitMQ asks (and what its cache spares). */
  answered(kind: RabbitRequestKind, allowed: boolean): void {
    this.ctx.metrics.rabbitAuthRequests.inc({ endpoint: kind, answer: allowed ? "allow" : "deny" });
  }

  /** A device logs in: its id (username and client id) and secret, checked as on the embedded broker. */
  async user(req: RabbitRequest<"user">): Promise<boolean> {
    // The ingest consumer's own AMQP user is RabbitMQ's to check (auth_backends.2 = internal): no
    // device, no failure to count or log.
    if (req.client_id === undefined && this.consumerUsers.has(req.username)) return false;
    const result = await this.ctx.auth.login({
      username: req.username,
      secret: req.password,
      // A connection without a client id is no MQTT device (an AMQP 0-9-1 client, say): refused.
      clientId: req.client_id ?? "",
      // RabbitMQ 3.10 sends no address with a login: failures are throttled per device id.
      address: null,
      observe: false,
      via: VIA,
    });
    return result.ok;
  }

  /** The configured vhost, for a device that may connect now. */
  vhost(req: RabbitRequest<"vhost">): boolean {
    return this.activeDevice(req.username, req.client_id) && req.vhost === this.ctx.config.vhost;
  }

  /**
   * What RabbitMQ's MQTT plugin itself does for a device: publish to the topic exchange (write), bind
   * its subscription queues to it (read), and declare, bind and consume its own subscription queues
   * `mqtt-subscription-<client id>qos0|qos1` (rabbit_mqtt_util:subcription_queue_name/1). Nothing else.
   */
  resource(req: RabbitRequest<"resource">): boolean {
    const { config } = this.ctx;
    if (!this.activeDevice(req.username, req.client_id) || req.vhost !== config.vhost) return false;
    if (req.resource === "exchange")
      return req.name === config.exchange && (req.permission === "write" || req.permission === "read");
    if (req.resource === "queue")
      return (
        req.name === `mqtt-subscription-${req.username}qos0` ||
        req.name === `mqtt-subscription-${req.username}qos1`
      );
    return false;
  }

  /** A publish (write) or subscription (read): the embedded broker's mayPublish / maySubscribe. */
  topic(req: RabbitRequest<"topic">): boolean {
    const { config } = this.ctx;
    const deviceId = req.username;
    const action = req.permission === "write" ? "publish" : "subscribe";
    const topic = topicFromRoutingKey(req.routing_key);
    if (action === "publish" && this.ctx.ingestDeclared && !this.ctx.ingestDeclared()) {
      this.ctx.log.warn(
        { deviceId, routingKey: req.routing_key },
        "publish refused: the ingest queue is not declared yet (RabbitMQ would confirm it unrouted)",
      );
      return false;
    }
    const allowed =
      this.activeDevice(deviceId, req["variable_map.client_id"]) &&
      req.vhost === config.vhost &&
      req.name === config.exchange &&
      topic !== null &&
      (action === "publish" ? mayPublish(deviceId, topic) : maySubscribe(deviceId, topic));
    if (allowed) return true;
    this.ctx.metrics.publishesDenied.inc({ kind: action });
    this.ctx.security.record({
      kind: "topic_denied",
      // RabbitMQ names the device but not its address in a topic check.
      address: null,
      subject: this.ctx.registry.peek(deviceId) ? deviceId : null,
      detail: { action, topic: (topic ?? req.routing_key).slice(0, 128), via: VIA },
    });
    this.ctx.log.warn({ deviceId, routingKey: req.routing_key, action }, "topic refused (RabbitMQ)");
    return false;
  }

  /**
   * Registered, enabled, decoded (not observed), and the connection's client id, when RabbitMQ
   * names it, is the device id: RabbitMQ opens a client id's session to whoever logs in with it.
   */
  private activeDevice(deviceId: string, clientId: string | undefined): boolean {
    const d = this.ctx.registry.peek(deviceId);
    if (!d?.enabled || d.profile === OBSERVE_PROFILE) return false;
    return clientId === undefined || clientId === deviceId;
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** The four endpoints, on GET (parameters in the query) and POST (form-encoded body). */
export function rabbitAuthRoutes(router: Router, rabbit: RabbitAuth): void {
  const answer =
    <K extends RabbitRequestKind>(kind: K, decide: (req: RabbitRequest<K>) => boolean | Promise<boolean>) =>
    async (ctx: RequestContext) => {
      rabbit.checkCaller(ctx.req.headers.authorization, ctx.address);
      const params = ctx.req.method === "POST" ? await ctx.form() : ctx.query;
      const parsed = parseRabbitRequest(kind, params);
      if (!parsed.ok) throw new ApiError("invalid_query", undefined, parsed.problems);
      const allowed = await decide(parsed.request);
      rabbit.answered(kind, allowed);
      return new RawReply(200, "text/plain; charset=utf-8", allowed ? "allow" : "deny", {
        "cache-control": "no-store",
      });
    };
  const routes: { [K in RabbitRequestKind]: (req: RabbitRequest<K>) => boolean | Promise<boolean> } = {
    user: (req) => rabbit.user(req),
    vhost: (req) => rabbit.vhost(req),
    resource: (req) => rabbit.resource(req),
    topic: (req) => rabbit.topic(req),
  };
  for (const kind of Object.keys(routes) as RabbitRequestKind[]) {
    const handler = answer(
      kind,
      routes[kind] as (req: RabbitRequest<typeof kind>) => boolean | Promise<boolean>,
    );
    router.add("GET", `${RABBIT_AUTH_BASE}/${kind}`, handler);
    router.add("POST", `${RABBIT_AUTH_BASE}/${kind}`, handler);
  }
}
