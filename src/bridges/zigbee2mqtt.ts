/**
 * zigbee2mqtt: the gateway subscribes to a zigbee2mqtt broker's base topic and takes, for every
 * registered Zigbee device (device id = its IEEE address, `0x` and 16 lowercase hex digits):
 * - `<base>/<friendly_name>`: the device's state, JSON. Submitted on the profile's `zigbee2mqtt`
 *   channel wrapped with its zigbee2mqtt model and the previous state seen (src/bridges/envelope.ts),
 *   because every message repeats all cached attributes.
 * - `<base>/<friendly_name>/availability`: `{"state":"online"|"offline"}` (or the legacy plain text):
 *   online is a sign of life, offline marks the device offline at once.
 * - `<base>/bridge/devices` (retained): `ieee_address`, `friendly_name`, `definition.model` per device:
 *   friendly names are how topics name devices, so this map is how a topic finds its device.
 * Topics and payloads: zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html.
 *
 * A retained state message is old news (zigbee2mqtt's per-device `retain` option): it becomes the
 * previous state and gives no events, so a reconnect does not replay a button press or a fall.
 */

import type { Zigbee2mqttBridgeConfig } from "./config.js";
import type { ConnectionHealth } from "./connection.js";
import { BridgeConnection } from "./connection.js";
import { type BridgeContext, UnknownDevices } from "./context.js";
import { ZIGBEE2MQTT_CHANNEL, z2mEnvelope } from "./envelope.js";

const IEEE = /^0x[0-9a-f]{16}$/;
/** Suffixes zigbee2mqtt and its clients use below a device's topic that carry no state. */
const NOT_STATE = new Set(["set", "get"]);

interface Known {
  ieee: string;
  model: string | null;
}

function readJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString("utf8"));
  } catch {
    return undefined;
  }
}

export class Zigbee2mqttBridge {
  readonly name: string;
  private readonly base: string;
  private readonly connection: BridgeConnection;
  private readonly unknown: UnknownDevices;
  private byName = new Map<string, Known>();
  private readonly previous = new Map<string, object>();
  private devicesAt: string | null = null;

  constructor(
    config: Zigbee2mqttBridgeConfig,
    private readonly ctx: BridgeContext,
  ) {
    this.name = config.name;
    this.base = config.baseTopic.replace(/\/+$/, "");
    this.unknown = new UnknownDevices(config.name, config.unknownDeviceEverySec * 1000, ctx);
    this.connection = new BridgeConnection(
      { ...config, clientId: config.clientId ?? `ata-gateway-${config.name}`, topics: [`${this.base}/#`] },
      (topic, payload, retained) => this.onMessage(topic, payload, retained),
      ctx.log,
      ctx.metrics,
    );
  }

  start(): void {
    this.connection.start();
  }

  stop(): Promise<void> {
    return this.connection.stop();
  }

  health(): ConnectionHealth & { kind: string; devicesKnown: number; devicesListAt: string | null } {
    return {
      kind: "zigbee2mqtt",
      ...this.connection.status(),
      devicesKnown: this.byName.size,
      devicesListAt: this.devicesAt,
    };
  }

  private async onMessage(topic: string, payload: Buffer, retained: boolean): Promise<void> {
    if (!topic.startsWith(`${this.base}/`)) return;
    const rest = topic.slice(this.base.length + 1);
    if (rest === "bridge/devices") return this.onDevices(payload);
    if (rest.startsWith("bridge/")) return;
    // Friendly names may contain "/": the longest known name (or an IEEE address) that the topic
    // starts with names the device, and what follows it is the suffix.
    const { device, suffix } = this.resolve(rest);
    if (suffix === "availability") return this.onAvailability(device, rest, topic, payload);
    if (suffix !== null) return; // set, get, or a sub-topic some other client uses
    if (!device) return this.unknown.record(rest, null, topic, "zigbee2mqtt friendly name", payload);
    if (!this.ctx.isRegistered(device.ieee))
      return this.unknown.record(device.ieee, device.ieee, topic, "IEEE address", payload);
    const state = readJson(payload);
    if (state === null || typeof state !== "object" || Array.isArray(state)) {
      await this.ctx.refuse(
        device.ieee,
        topic,
        "bad_json",
        "zigbee2mqtt state is not a JSON object",
        payload,
      );
      return;
    }
    const previous = this.previous.get(device.ieee) ?? null;
    this.previous.set(device.ieee, state);
    this.ctx.seen(device.ieee, `state via ${this.name}`);
    if (retained) return;
    await this.ctx.submit(
      device.ieee,
      topic,
      ZIGBEE2MQTT_CHANNEL,
      z2mEnvelope(device.model, state, previous),
    );
  }

  private resolve(rest: string): { device: Known | null; suffix: string | null } {
    const exact = this.byName.get(rest) ?? (IEEE.test(rest) ? { ieee: rest, model: null } : undefined);
    if (exact) return { device: exact, suffix: null };
    const cut = rest.lastIndexOf("/");
    if (cut > 0) {
      const name = rest.slice(0, cut);
      const suffix = rest.slice(cut + 1);
      const device = this.byName.get(name) ?? (IEEE.test(name) ? { ieee: name, model: null } : null);
      if (device || suffix === "availability" || NOT_STATE.has(suffix)) return { device, suffix };
    }
    return { device: null, suffix: null };
  }

  private onAvailability(
    device: Known | null,
    rest: string,
    topic: string,
    payload: Buffer,
  ): Promise<void> | void {
    if (!device || !this.ctx.isRegistered(device.ieee)) return;
    const json = readJson(payload) as { state?: unknown } | undefined;
    const state = typeof json === "object" && json !== null ? json.state : payload.toString("utf8").trim();
    if (state === "online") this.ctx.seen(device.ieee, `zigbee2mqtt availability online (${this.name})`);
    else if (state === "offline")
      this.ctx.gone(device.ieee, `zigbee2mqtt availability offline (${this.name})`);
    else
      return this.ctx
        .refuse(
          device.ieee,
          topic,
          "bad_schema",
          `availability of ${rest} is neither online nor offline`,
          payload,
        )
        .then(() => undefined);
  }

  private onDevices(payload: Buffer): void {
    const list = readJson(payload);
    if (!Array.isArray(list)) {
      this.ctx.log.warn(
        { bridge: this.name },
        "zigbee2mqtt bridge/devices is not a JSON array; kept the last list",
      );
      return;
    }
    const next = new Map<string, Known>();
    for (const d of list as {
      ieee_address?: unknown;
      friendly_name?: unknown;
      definition?: { model?: unknown } | null;
    }[]) {
      if (typeof d?.ieee_address !== "string" || typeof d.friendly_name !== "string") continue;
      const ieee = d.ieee_address.toLowerCase();
      if (!IEEE.test(ieee)) continue;
      const model = typeof d.definition?.model === "string" ? d.definition.model : null;
      next.set(d.friendly_name, { ieee, model });
    }
    this.byName = next;
    this.devicesAt = new Date().toISOString();
  }
}
