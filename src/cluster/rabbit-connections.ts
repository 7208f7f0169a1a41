/**
 * Device presence from RabbitMQ's connections: the `rabbitmq_event_exchange` plugin publishes
 * RabbitMQ's internal events to the topic exchange `amq.rabbitmq.event` in the default vhost, with
 * the event's properties as message headers and an empty body
 * (https://www.rabbitmq.com/docs/event-exchange). The ingest consumer (rabbit-ingest.ts) binds a
 * queue to `connection.created` and `connection.closed`; this maps them to devices.
 *
 * What 3.10.8 puts on an MQTT connection's events (read from a real node,
 * test/cluster/rabbit-presence.test.ts): `connection.created` carries `protocol` ("{'MQTT',\"3.1.1\"}"),
 * `type` ("direct": the MQTT plugin's connection into the broker), `user` (the MQTT username, which
 * for a device is its id: rabbit-auth.ts), `variable_map` (its client id), `vhost`, `node`, `name`
 * and `pid`. `connection.closed` carries only `name`, `node`, `pid` and `timestamp_in_ms`: no user.
 * So the device of a close is the one its pid was created for, remembered from the created event;
 * a close whose create this process did not see (it happened before the queue was consumed here) is
 * passed over, and that device is left to heartbeat supervision, as without the plugin.
 *
 * Pure: no I/O, the caller feeds it each event's routing key and headers.
 */

export interface ConnectionEventsContext {
  /** The device named `user` may count as connected (registered and enabled). */
  admits(deviceId: string): boolean;
  connected(deviceId: string): void;
  disconnected(deviceId: string, reason: string): void;
}

/** The routing keys bound: what the plugin publishes for a connection opened and one closed. */
export const CONNECTION_CREATED = "connection.created";
export const CONNECTION_CLOSED = "connection.closed";

/** Open connections remembered at most: a bound on memory if closes were ever lost. */
const MAX_OPEN = 200_000;

export class ConnectionEvents {
  /** Open MQTT connections of devices: RabbitMQ's connection pid to the device id. */
  private readonly open = new Map<string, string>();

  constructor(private readonly ctx: ConnectionEventsContext) {}

  /** How many device connections are known open. */
  get size(): number {
    return this.open.size;
  }

  handle(routingKey: string, headers: Readonly<Record<string, unknown>> | undefined): void {
    const h = headers ?? {};
    const pid = text(h.pid);
    if (pid === null) return;
    if (routingKey === CONNECTION_CREATED) {
      const user = text(h.user);
      const protocol = text(h.protocol) ?? "";
      // MQTT's protocol names MQTT (Web MQTT's too, by its name; not read from a node); the
      // gateway's own AMQP connections ("{0,9,1}") and others are not devices.
      if (user === null || !protocol.includes("MQTT") || !this.ctx.admits(user)) return;
      if (this.open.has(pid)) return; // delivered again: counted once
      if (this.open.size >= MAX_OPEN) this.open.delete(this.open.keys().next().value as string);
      this.open.set(pid, user);
      this.ctx.connected(user);
    } else if (routingKey === CONNECTION_CLOSED) {
      const deviceId = this.open.get(pid);
      if (deviceId === undefined) return;
      this.open.delete(pid);
      this.ctx.disconnected(deviceId, "connection closed (RabbitMQ)");
    }
  }
}

/** A header's value as text: amqplib gives AMQP long strings as strings, some as Buffers. */
function text(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  return null;
}
