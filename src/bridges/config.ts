/**
 * The `bridges:` section: MQTT brokers of other networks whose devices reach the gateway through
 * them (docs/bridges.md). Checked at boot with the rest of the configuration; every problem carries
 * its path.
 */
import { z } from "zod";

const Name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "lowercase letters, digits, - and _ (max 32)");

const Url = z
  .string()
  .url()
  .refine((u) => ["mqtt:", "mqtts:", "ws:", "wss:"].includes(new URL(u).protocol), {
    message: "the broker URL must be mqtt://, mqtts://, ws:// or wss://",
  });

const Tls = z.strictObject({
  /** CA certificate (PEM) for a broker with a private CA. */
  caFile: z.string().optional(),
  /** Off only for a test broker; a bridge carries residents' alarms. */
  rejectUnauthorized: z.boolean().default(true),
});

const Backoff = z
  .strictObject({
    /** First wait after the broker goes away. */
    minMs: z.number().int().min(100).max(60_000).default(1000),
    /** The wait doubles up to this. */
    maxMs: z.number().int().min(100).max(600_000).default(30_000),
  })
  .refine((b) => b.minMs <= b.maxMs, { message: "minMs must not exceed maxMs", path: ["maxMs"] });

const Common = {
  name: Name,
  url: Url,
  username: z.string().min(1).optional(),
  /** For The Things Stack an API key; never logged. */
  password: z.string().min(1).optional(),
  /**
   * MQTT client id; stable by default so that the broker keeps the session (and queues QoS 1
   * messages) while the gateway restarts.
   */
  clientId: z.string().min(1).max(128).optional(),
  tls: Tls.optional(),
  reconnect: Backoff.prefault({}),
  /** Messages for devices the registry does not know are dead-lettered once per device per this. */
  unknownDeviceEverySec: z.number().int().min(0).max(86_400).default(3600),
};

export const LorawanBridgeConfig = z.strictObject({
  ...Common,
  kind: z.enum(["chirpstack", "tts"]),
  /**
   * ChirpStack application ids (UUIDs) or The Things Stack application ids (`app@tenant` on
   * multi-tenant deployments); each becomes one uplink subscription. None: every application the
   * credentials can see.
   */
  applications: z
    .array(z.string().regex(/^[A-Za-z0-9@._-]{1,128}$/))
    .min(1)
    .optional(),
  /** Uplink topic filters instead of the ones `applications` gives (for a rewritten topic tree). */
  topics: z.array(z.string().min(1)).min(1).optional(),
});
export type LorawanBridgeConfig = z.infer<typeof LorawanBridgeConfig>;

export const Zigbee2mqttBridgeConfig = z.strictObject({
  ...Common,
  /** zigbee2mqtt's `mqtt.base_topic`. */
  baseTopic: z
    .string()
    .regex(/^[^#+]+$/, "a topic without wildcards")
    .default("zigbee2mqtt"),
});
export type Zigbee2mqttBridgeConfig = z.infer<typeof Zigbee2mqttBridgeConfig>;

export const BridgesConfig = z.strictObject({
  lorawan: z.array(LorawanBridgeConfig).default([]),
  zigbee2mqtt: z.array(Zigbee2mqttBridgeConfig).default([]),
});
export type BridgesConfig = z.infer<typeof BridgesConfig>;

type Problem = { path: (string | number)[]; message: string };

/** What the schema alone cannot see: duplicate names, credentials in URLs, contradicting options. */
export function bridgeProblems(bridges: BridgesConfig): Problem[] {
  const problems: Problem[] = [];
  const names = new Map<string, string>();
  const all = [
    ...bridges.lorawan.map((b, i) => ({ b, at: ["bridges", "lorawan", i] as (string | number)[] })),
    ...bridges.zigbee2mqtt.map((b, i) => ({ b, at: ["bridges", "zigbee2mqtt", i] as (string | number)[] })),
  ];
  for (const { b, at } of all) {
    const where = at.slice(1).join(".");
    const first = names.get(b.name);
    if (first !== undefined)
      problems.push({ path: [...at, "name"], message: `bridge name "${b.name}" is also used by ${first}` });
    else names.set(b.name, where);
    const url = new URL(b.url);
    if (url.username || url.password)
      problems.push({
        path: [...at, "url"],
        message: "put credentials in username and password, not in the URL (URLs are shown in /readyz)",
      });
    if (b.password && !b.username)
      problems.push({ path: [...at, "username"], message: "a password needs a username" });
    if (b.tls && !["mqtts:", "wss:"].includes(url.protocol))
      problems.push({ path: [...at, "tls"], message: "tls options need an mqtts:// or wss:// URL" });
  }
  bridges.lorawan.forEach((b, i) => {
    if (b.applications && b.topics)
      problems.push({
        path: ["bridges", "lorawan", i, "topics"],
        message: "give applications or topics, not both",
      });
  });
  return problems;
}
