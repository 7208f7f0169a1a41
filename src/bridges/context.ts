/** What a bridge needs from the gateway: narrow views, so a bridge reaches into nothing else. */
import type { ErrorCode } from "../errors.js";
import type { IngestResult } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { BridgeMetrics } from "./metrics.js";

export interface BridgeContext {
  /** Whether a device id is registered (the id is how the other network addresses the device). */
  isRegistered(deviceId: string): boolean;
  submit(deviceId: string, topic: string, channel: string, payload: Buffer): Promise<IngestResult>;
  refuse(
    deviceId: string | null,
    topic: string,
    code: ErrorCode,
    message: string,
    payload: Buffer,
  ): Promise<IngestResult>;
  /** A sign of life from the other network (an uplink, a state message, availability online). */
  seen(deviceId: string, reason: string): void;
  /** The other network says the device is gone. */
  gone(deviceId: string, reason: string): void;
  log: Logger;
  metrics: BridgeMetrics;
}

/**
 * Messages for devices nobody registered here: every one is counted, and one per device per window
 * is dead-lettered with the reason, so an operator sees which ids to register without a network
 * server's whole application (street lights, parking sensors) filling the dead-letter store.
 */
export class UnknownDevices {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly bridge: string,
    private readonly everyMs: number,
    private readonly ctx: BridgeContext,
  ) {}

  /** `deviceId` null: the message names the device only in a way the registry never uses (a name). */
  async record(
    key: string,
    deviceId: string | null,
    topic: string,
    what: string,
    payload: Buffer,
  ): Promise<void> {
    this.ctx.metrics.unknownDevices.inc({ bridge: this.bridge });
    if (this.everyMs === 0) return;
    const now = Date.now();
    const at = this.last.get(key);
    if (at !== undefined && now - at < this.everyMs) return;
    this.last.set(key, now);
    if (this.last.size > 10_000) this.last.delete(this.last.keys().next().value as string);
    this.ctx.log.info(
      { device: key, bridge: this.bridge },
      "message for an unregistered device dead-lettered",
    );
    await this.ctx.refuse(
      deviceId,
      topic,
      "unknown_device",
      `no device is registered with ${what} ${key} (bridge ${this.bridge}); register it with ` +
        `${deviceId === null ? "its id" : "that id"} to take its messages. Further messages from it are counted, and dead-lettered again at most every ${Math.round(this.everyMs / 1000)} s`,
      payload,
    );
  }
}
