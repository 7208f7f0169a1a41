/** Prometheus metrics of the bridges, on the gateway's own registry. */
import { Counter, Gauge } from "prom-client";
import type { Metrics } from "../metrics.js";

export class BridgeMetrics {
  readonly connected: Gauge<"bridge">;
  readonly messages: Counter<"bridge">;
  readonly reconnects: Counter<"bridge">;
  readonly unknownDevices: Counter<"bridge">;
  readonly refused: Counter<"bridge" | "reason">;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.connected = new Gauge({
      name: "ata_bridge_connected",
      help: "1 while the bridge is connected to its network server's or zigbee2mqtt's broker",
      labelNames: ["bridge"] as const,
      registers,
    });
    this.messages = new Counter({
      name: "ata_bridge_messages_total",
      help: "Messages received from the bridge's broker",
      labelNames: ["bridge"] as const,
      registers,
    });
    this.reconnects = new Counter({
      name: "ata_bridge_reconnects_total",
      help: "Reconnect attempts to the bridge's broker",
      labelNames: ["bridge"] as const,
      registers,
    });
    this.unknownDevices = new Counter({
      name: "ata_bridge_unknown_device_messages_total",
      help: "Messages for devices the registry does not know (dead-lettered once per device per bridges.*.unknownDeviceEverySec)",
      labelNames: ["bridge"] as const,
      registers,
    });
    this.refused = new Counter({
      name: "ata_bridge_refused_total",
      help: "Messages the bridge itself could not read (no device id in them), by reason; dead-lettered",
      labelNames: ["bridge", "reason"] as const,
      registers,
    });
  }
}
