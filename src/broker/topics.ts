/**
 * The topic grammar. This module owns every topic string the gateway reads or writes; nothing else
 * builds or parses topics. Documented for vendors in docs/mqtt-contract.md.
 *
 *   ata/v1/<deviceId>/<channel>      device -> gateway (channel declared by the device's profile)
 *   ata/v1/<deviceId>/status         device -> gateway, retained, also the last will ("online"/"offline")
 *   ata/v1/<deviceId>/errors         gateway -> device: why a publish was rejected
 *   ata/v1/<deviceId>/commands       gateway -> device
 *
 * On RabbitMQ (cluster mode) the same topics are routing keys on the MQTT plugin's topic exchange,
 * with "/" written as "." (`ata.v1.<deviceId>.<channel>`); see topicFromRoutingKey.
 */

export const ROOT = "ata/v1";
export const STATUS = "status";
export const ERRORS = "errors";
export const COMMANDS = "commands";
/** Reserved names a device id may not take, and channels a device may not publish on. */
const GATEWAY_CHANNELS = new Set([ERRORS, COMMANDS]);

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID.test(id) && !id.startsWith("$");
}

export function deviceTopic(deviceId: string, channel: string): string {
  return `${ROOT}/${deviceId}/${channel}`;
}
export const errorTopic = (deviceId: string) => deviceTopic(deviceId, ERRORS);
export const commandTopic = (deviceId: string) => deviceTopic(deviceId, COMMANDS);
export const statusTopic = (deviceId: string) => deviceTopic(deviceId, STATUS);

export interface ParsedDeviceTopic {
  deviceId: string;
  channel: string;
}

const PREFIX = `${ROOT}/`;
const CHANNEL = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * Parse `ata/v1/<deviceId>/<channel>`; anything else (deeper, shallower, wildcards) is null. Runs
 * for every publish: two slices and the result are all it allocates.
 */
export function parseDeviceTopic(topic: string): ParsedDeviceTopic | null {
  if (!topic.startsWith(PREFIX)) return null;
  const slash = topic.indexOf("/", PREFIX.length);
  if (slash <= PREFIX.length) return null;
  const deviceId = topic.slice(PREFIX.length, slash);
  const channel = topic.slice(slash + 1);
  if (!isValidDeviceId(deviceId) || !CHANNEL.test(channel)) return null;
  return { deviceId, channel };
}

/** A device may publish on its own topics only, and never on the channels the gateway writes. */
export function mayPublish(deviceId: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== null && mayPublishOn(deviceId, parsed);
}

/** mayPublish for a topic already parsed. */
export function mayPublishOn(deviceId: string, parsed: ParsedDeviceTopic): boolean {
  return parsed.deviceId === deviceId && !GATEWAY_CHANNELS.has(parsed.channel);
}

/** A device may subscribe to its own error and command topics only (no wildcards). */
export function maySubscribe(deviceId: string, topic: string): boolean {
  return topic === errorTopic(deviceId) || topic === commandTopic(deviceId);
}

/**
 * The binding pattern on RabbitMQ's topic exchange that takes every device topic (`ata.v1.#`): "#"
 * and not `ata.v1.*.*`, because a device id may contain "." and so span several words. It also
 * matches the gateway's own errors and commands topics, which the ingest consumer passes over.
 */
export function deviceRoutingKeyPattern(): string {
  return `${ROOT.replaceAll("/", ".")}.#`;
}

/**
 * The device topic a RabbitMQ routing key stands for, or null when it is none. RabbitMQ's MQTT
 * plugin (3.10, rabbit_mqtt_util:to_amqp/1) turns "/" into "." and "+" into "*" and leaves "." as
 * it is, so `ata/v1/a.b/events` and `ata/v1/a/b/events` are both `ata.v1.a.b.events`. A channel has
 * no ".", so the last word is the channel and everything between `ata.v1.` and it the device id:
 * the key reads as exactly one device topic, and the rules above decide on that.
 */
export function topicFromRoutingKey(routingKey: string): string | null {
  const prefix = `${ROOT.replaceAll("/", ".")}.`;
  if (!routingKey.startsWith(prefix)) return null;
  const rest = routingKey.slice(prefix.length);
  const dot = rest.lastIndexOf(".");
  if (dot <= 0) return null;
  const topic = deviceTopic(rest.slice(0, dot), rest.slice(dot + 1));
  return parseDeviceTopic(topic) ? topic : null;
}
