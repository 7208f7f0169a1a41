/**
 * The configured bridges (`bridges:` in the configuration): each connects to another network's MQTT
 * broker and feeds ingest like a device publish would. Started after ingest, rules and presence are
 * up (like the broker), stopped before ingest drains. A bridge whose broker is away does not make the
 * gateway unready: devices on the gateway's own broker still work, so /readyz shows the bridge's
 * state (connected, last message, last error) with ok: true, and ata_bridge_connected is 0.
 */
import type { ReadinessCheck } from "../http/operations.js";
import type { BridgesConfig } from "./config.js";
import type { BridgeContext } from "./context.js";
import { LorawanBridge } from "./lorawan.js";
import { Zigbee2mqttBridge } from "./zigbee2mqtt.js";

export type Bridge = LorawanBridge | Zigbee2mqttBridge;

export class Bridges {
  readonly all: Bridge[];

  constructor(config: BridgesConfig, ctx: Omit<BridgeContext, "log"> & { log: BridgeContext["log"] }) {
    this.all = [
      ...config.lorawan.map(
        (c) => new LorawanBridge(c, { ...ctx, log: ctx.log.child({ component: "bridge", bridge: c.name }) }),
      ),
      ...config.zigbee2mqtt.map(
        (c) =>
          new Zigbee2mqttBridge(c, { ...ctx, log: ctx.log.child({ component: "bridge", bridge: c.name }) }),
      ),
    ];
  }

  start(): void {
    for (const b of this.all) b.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((b) => b.stop()));
  }

  /** One readiness check per bridge, named `bridge:<name>`. */
  readiness(): ReadinessCheck[] {
    return this.all.map((b) => ({
      name: `bridge:${b.name}`,
      check: () => ({ ok: true, detail: b.health() }),
    }));
  }
}
