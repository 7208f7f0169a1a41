/**
 * Cluster mode's configuration (top-level `cluster:`), checked at boot with the rest. Off by
 * default: the single process with its embedded broker stays the default for one home
 * (docs/cluster.md).
 */
import { hostname } from "node:os";
import { z } from "zod";

function isAmqpUrl(u: unknown): boolean {
  return typeof u === "string" && URL.canParse(u) && /^amqps?:$/.test(new URL(u).protocol);
}

/**
 * AMQP 0-9-1 URL of a RabbitMQ node, `amqp://user:password@host:5672/vhost` (amqps:// for TLS). The
 * user is an operator's, not a device's: RabbitMQ authenticates it with a second backend
 * (`auth_backends.2 = internal`), since the gateway admits devices only.
 */
const AmqpUrl = z
  .string()
  .refine(isAmqpUrl, "an amqp:// or amqps:// URL")
  .refine(
    (u) => !isAmqpUrl(u) || new URL(u).username !== "",
    "name the user in the URL (amqp://user:password@host/vhost): RabbitMQ's guest may not log in from other hosts",
  );

/**
 * The ingest consumer (src/cluster/rabbit-ingest.ts): devices' publishes reach the gateway through a
 * quorum queue bound to the MQTT plugin's exchange.
 */
export const RabbitIngestConfig = z
  .strictObject({
    /** One RabbitMQ node: shorthand for `urls` with one element. */
    url: AmqpUrl.optional(),
    /**
     * The cluster's nodes, one URL each: the consumer connects to the first and, when it loses a
     * node, tries the next one round the list, so it survives the loss of the node it consumes from.
     */
    urls: z
      .array(AmqpUrl)
      .min(1, "at least one URL")
      .max(32)
      .refine((a) => new Set(a).size === a.length, "each URL once")
      .optional(),
    /** The quorum queue every gateway node consumes device publishes from. */
    queue: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "letters, digits, _ . : -")
      .refine((q) => !q.startsWith("amq."), "names starting amq. are RabbitMQ's own")
      .default("ata.ingest"),
    /**
     * Deliveries in flight to this gateway, unacknowledged: they are what one group commit can take
     * together (src/ingest/pipeline.ts), so 1 would make every message wait for its own fsync.
     */
    prefetch: z.int().min(1).max(65_535).default(500),
    /**
     * Queues the devices' publishes are spread over by a hash of the routing key, so that a device's
     * topic stays in one queue with one active consumer (src/cluster/rabbit-ingest.ts): `<queue>.0` to
     * `<queue>.<partitions - 1>` behind a consistent-hash exchange `<queue>.hash`. 1 is the single queue
     * `<queue>` bound to the MQTT exchange, with every gateway node consuming it in turn, which keeps a
     * device's order only with one gateway node. Needs the plugin rabbitmq_consistent_hash_exchange.
     */
    partitions: z.int().min(1).max(256).default(1),
    /**
     * A message's delivery from which it is committed alone rather than in a group, counted by the
     * quorum queue's `x-delivery-count`: if that commit fails for a cause of its own (not the storage
     * refusing writes), it is dead-lettered `commit_failed` and acked, so that one payload cannot
     * hold its queue for ever (src/cluster/rabbit-ingest.ts, "Poison messages").
     */
    maxDeliveries: z.int().min(1).max(1000).default(5),
    /**
     * Load spread with partitions and a cluster (src/cluster/rabbit-ingest.ts, "Load spread"): a
     * node active on a queue whose preferred node (rendezvous hashing over the live nodes) is
     * another gives it up once the live nodes have been unchanged for `stableMs`. `checkMs`: how
     * often the live nodes are read and the queues checked; `activeMs`: a queue counts as this
     * node's while a delivery came on it within that time (RabbitMQ 3.10 says nothing else).
     * Off by default: with rabbitmq_event_exchange, the node that hears a device's connections is
     * then not always the one that gets its heartbeats, and its supervision would mark the device
     * offline (docs/cluster.md, "Device presence from RabbitMQ's connections").
     */
    balance: z
      .strictObject({
        enabled: z.boolean().default(false),
        stableMs: z.int().min(0).max(600_000).default(5_000),
        checkMs: z.int().min(50).max(60_000).default(1_000),
        activeMs: z.int().min(100).max(600_000).default(3_000),
      })
      .prefault({}),
    /** Waits between reconnects: doubling from minMs up to maxMs after each round of the URLs. */
    reconnect: z
      .strictObject({
        minMs: z.int().min(10).default(500),
        maxMs: z.int().min(10).default(30_000),
      })
      .prefault({})
      .refine((r) => r.minMs <= r.maxMs, { path: ["minMs"], message: "must not exceed maxMs" }),
  })
  .refine((c) => c.url === undefined || c.urls === undefined, {
    path: ["url"],
    message: "give url (one node) or urls (the cluster's nodes), not both",
  })
  .refine((c) => c.url !== undefined || c.urls !== undefined, {
    path: ["urls"],
    message: "name RabbitMQ: url for one node, or urls with one URL per node of the cluster",
  })
  .transform(({ url, urls, ...rest }) => ({ ...rest, urls: urls ?? [url as string] }));
export type RabbitIngestConfig = z.infer<typeof RabbitIngestConfig>;

export const RabbitAuthConfig = z
  .strictObject({
    /** Answer RabbitMQ's HTTP auth backend at /api/v1/cluster/rabbitmq/{user,vhost,resource,topic}. */
    enabled: z.boolean().default(false),
    /**
     * The user name and password RabbitMQ sends as HTTP Basic authentication: written into the
     * auth_http.*_path URLs as `http://<username>:<secret>@host:port/...` (RabbitMQ 3.10's HTTP
     * client sends a URL's user info as an Authorization header). Without them every request is
     * refused, so the endpoints are no oracle for guessing device secrets.
     */
    username: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - (it goes into a URL)")
      .default("rabbitmq"),
    secret: z
      .string()
      .regex(
        /^[A-Za-z0-9_.~-]{32,256}$/,
        "at least 32 characters of A-Z a-z 0-9 _ . ~ - (it goes into a URL)",
      )
      .optional(),
    /** The virtual host devices are admitted to (RabbitMQ's mqtt.vhost). */
    vhost: z.string().min(1).default("/"),
    /** The topic exchange the MQTT plugin publishes to (RabbitMQ's mqtt.exchange). */
    exchange: z.string().min(1).default("amq.topic"),
    /** Consume device publishes from RabbitMQ (off unless given). */
    ingest: RabbitIngestConfig.optional(),
  })
  // In the schema rather than a cross-check, so it is listed with the schema's own problems.
  .refine((c) => !c.enabled || c.secret !== undefined, {
    path: ["secret"],
    message: "the RabbitMQ auth endpoints need a shared secret (32 or more characters); set one",
  })
  // The consumer takes the device from the routing key, and RabbitMQ 3.10 carries nothing else that
  // names the publisher: only the gateway's own topic checks make that key the publisher's.
  .refine((c) => !c.ingest || c.enabled, {
    path: ["enabled"],
    message:
      "the ingest consumer trusts a message's routing key only because the gateway answers RabbitMQ's topic checks; set enabled: true",
  });
export type RabbitAuthConfig = z.infer<typeof RabbitAuthConfig>;

function isPostgresUrl(u: unknown): boolean {
  return typeof u === "string" && URL.canParse(u) && /^postgres(ql)?:$/.test(new URL(u).protocol);
}

/**
 * State in PostgreSQL, shared by the gateway nodes (docs/cluster.md): partition leases, each owned
 * partition's alerts, timers and rules' position, the event log the owners read, the alert change
 * feed every node's staff sockets follow, and staff commands carried to a partition's owner.
 */
export const PostgresConfig = z
  .strictObject({
    /**
     * `postgres://user:password@host:5432/database` (libpq's URI form; `?sslmode=verify-full` and
     * the other libpq parameters node-postgres reads are passed on).
     */
    url: z.string().refine(isPostgresUrl, "a postgres:// or postgresql:// URL"),
    /**
     * This node's name among the running nodes: unique at any moment (a restart may reuse it).
     * Default: the host name, which is unique where each node runs on its own machine or container.
     */
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,100}$/, "letters, digits, _ . : -")
      .optional(),
    /**
     * Sites are divided over this many partitions (src/cluster/partitions.ts). Set once for a
     * cluster: a node configured for another count than the database's refuses to start.
     */
    partitions: z.int().min(1).max(1024).default(64),
    /**
     * How long a partition's lease lasts without renewal. A dead node's partitions are taken over
     * within leaseMs + leaseMs / 3 (13.3 s with the default); shorter costs more renewals and makes
     * a pause (a long garbage collection, a slow disk) more likely to cost the leases.
     */
    leaseMs: z.int().min(1_000).max(120_000).default(10_000),
    /** Connections this node keeps to PostgreSQL for its partitions' work (the leases have their own). */
    poolSize: z.int().min(2).max(200).default(10),
    /**
     * Connections for the managers' reports, the time-saved job and the HTTP API's alert lists and
     * history: reads that may take seconds over a month, kept off the pool a fall's flush takes its
     * connection from.
     */
    readPoolSize: z.int().min(1).max(100).default(4),
    /** Events kept in the shared log: resumes, takeovers and count conditions read within it. */
    eventRetentionDays: z.number().positive().max(3650).default(30),
    /** Alert changes kept for staff resuming on any node (at least the resume floor's hour). */
    changeFeedRetentionHours: z
      .number()
      .min(1)
      .max(24 * 365)
      .default(24),
    /** How long a staff command waits for the partition's owner before it is answered unavailable. */
    commandTimeoutMs: z.int().min(100).max(60_000).default(5_000),
  })
  .transform((c) => ({ ...c, nodeId: c.nodeId ?? hostname() }));
export type PostgresConfig = z.infer<typeof PostgresConfig>;

export const ClusterConfig = z.strictObject({
  /** RabbitMQ's MQTT plugin takes devices; the gateway keeps authentication and authorisation. */
  rabbitmq: RabbitAuthConfig.prefault({}),
  /** State shared by gateway nodes in PostgreSQL; without it the gateway is one node on SQLite. */
  postgres: PostgresConfig.optional(),
});
export type ClusterConfig = z.infer<typeof ClusterConfig>;
