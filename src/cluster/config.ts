/**
 * Cluster mode's configuration (top-level `cluster:`), checked at boot with the rest. Off by
 * default: the single process with its embedded broker stays the default for one home
 * (docs/cluster.md).
 */
import { z } from "zod";

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
  })
  // In the schema rather than a cross-check, so it is listed with the schema's own problems.
  .refine((c) => !c.enabled || c.secret !== undefined, {
    path: ["secret"],
    message: "the RabbitMQ auth endpoints need a shared secret (32 or more characters); set one",
  });
export type RabbitAuthConfig = z.infer<typeof RabbitAuthConfig>;

export const ClusterConfig = z.strictObject({
  /** RabbitMQ's MQTT plugin takes devices; the gateway keeps authentication and authorisation. */
  rabbitmq: RabbitAuthConfig.prefault({}),
});
export type ClusterConfig = z.infer<typeof ClusterConfig>;
