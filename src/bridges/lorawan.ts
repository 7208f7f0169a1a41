/**
 * LoRaWAN through a network server: the gateway subscribes to the uplink topics of ChirpStack v4's MQTT
 * integration or The Things Stack v3's MQTT server, finds the registered device by its DevEUI (the
 * device id, 16 lowercase hex digits) and hands the network server's JSON, unchanged, to ingest on the
 * device profile's `lorawan` channel. The profile decodes it (src/bridges/envelope.ts): event ids come
 * from the network server's uplink id, so a redelivery is a duplicate.
 *
 * Topics: ChirpStack `application/<applicationId>/device/<devEui>/event/up`; The Things Stack
 * `v3/<app-id>@<tenant>/devices/<device-id>/up` (its device id is a name; the DevEUI is in the JSON).
 */
import { DecodeError, parseJson } from "../model/profile.js";
import type { LorawanBridgeConfig } from "./config.js";
import { BridgeConnection, type ConnectionHealth } from "./connection.js";
import { type BridgeContext, UnknownDevices } from "./context.js";
import { LORAWAN_CHANNEL, normaliseDevEui } from "./envelope.js";

export function uplinkTopics(c: LorawanBridgeConfig): string[] {
  if (c.topics) return c.topics;
  const apps = c.applications ?? ["+"];
  return c.kind === "chirpstack"
    ? apps.map((a) => `application/${a}/device/+/event/up`)
    : apps.map((a) => `v3/${a}/devices/+/up`);
}

export class LorawanBridge {
  readonly name: string;
  private readonly connection: BridgeConnection;
  private readonly unknown: UnknownDevices;

  constructor(
    private readonly config: LorawanBridgeConfig,
    private readonly ctx: BridgeContext,
  ) {
    this.name = config.name;
    this.unknown = new UnknownDevices(config.name, config.unknownDeviceEverySec * 1000, ctx);
    this.connection = new BridgeConnection(
      {
        ...config,
        clientId: config.clientId ?? `ata-gateway-${config.name}`,
        topics: uplinkTopics(config),
      },
      (topic, payload) => this.onUplink(topic, payload),
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

  health(): ConnectionHealth & { kind: string } {
    return { kind: this.config.kind, ...this.connection.status() };
  }

  /** Resolves once the uplink's outcome is durable; rejects only when it is not (storage refused). */
  private async onUplink(topic: string, payload: Buffer): Promise<void> {
    const devEui = this.devEuiOf(topic, payload);
    if (typeof devEui !== "string") {
      this.ctx.metrics.refused.inc({ bridge: this.name, reason: devEui.code });
      await this.ctx.refuse(null, topic, devEui.code, `bridge ${this.name}: ${devEui.message}`, payload);
      return;
    }
    if (!this.ctx.isRegistered(devEui)) {
      await this.unknown.record(devEui, devEui, topic, "DevEUI", payload);
      return;
    }
    // Every uplink is a sign of life, also one that decodes to nothing or does not decode.
    this.ctx.seen(devEui, `uplink via ${this.name}`);
    await this.ctx.submit(devEui, topic, LORAWAN_CHANNEL, payload);
  }

  /** The DevEUI from the topic (ChirpStack) or the JSON (The Things Stack), or why there is none. */
  private devEuiOf(topic: string, payload: Buffer): string | DecodeError {
    const parts = topic.split("/");
    if (parts[0] === "application" && parts[2] === "device" && parts[3]) {
      return normaliseDevEui(parts[3]) ?? new DecodeError("bad_schema", `topic ${topic} has no DevEUI`);
    }
    let json: unknown;
    try {
      json = parseJson(payload);
    } catch (err) {
      return err as DecodeError;
    }
    const j = json as { end_device_ids?: { dev_eui?: unknown }; deviceInfo?: { devEui?: unknown } } | null;
    const raw = j?.end_device_ids?.dev_eui ?? j?.deviceInfo?.devEui;
    const devEui = typeof raw === "string" ? normaliseDevEui(raw) : null;
    return (
      devEui ??
      new DecodeError("bad_schema", "uplink has no DevEUI (end_device_ids.dev_eui or deviceInfo.devEui)")
    );
  }
}
