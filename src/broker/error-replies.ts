/**
 * What a device hears when a publish of its is refused, for both ways devices reach the gateway:
 * the embedded broker (broker.ts) and, in cluster mode, RabbitMQ (src/cluster/rabbit-ingest.ts).
 * The reason goes to the device's `errors` topic (docs/mqtt-contract.md) as
 * `{code, message, topic, receivedAt}`, the code from the one error catalogue (src/errors.ts); the
 * payload itself is in the dead-letter store, which the rejection names.
 *
 * How often: a device past its publish rate hears so once a second, not once a publish, since
 * telling it must not cost what refusing it saves; every other refusal is told. The log gets one
 * line per device per 10 s at info and the rest at debug: a device sending garbage fast must not
 * flood it (dead letters and metrics count every one). Never the payload.
 */
import type { ErrorCode } from "../errors.js";
import type { Rejection } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import { FailureWindows } from "../security/throttle.js";

export interface ErrorReply {
  code: ErrorCode;
  message: string;
  topic: string;
  receivedAt: string;
}

export class ErrorReplies {
  /** Devices told they are past their publish rate (once a second). */
  private readonly rateTold = new FailureWindows("rate-told", () => ({ max: 1, windowSec: 1 }));
  /** Refused publishes logged at info per device (one per 10 s). */
  private readonly logged = new FailureWindows("rejections", () => ({ max: 1, windowSec: 10 }));

  constructor(
    private readonly log: Logger,
    /** Puts the reply on the device's errors topic; best effort, as an MQTT publish to it is. */
    private readonly send: (deviceId: string, reply: ErrorReply) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** A publish on `topic` was refused (and, unless past the rate, dead-lettered). */
  refused(deviceId: string, topic: string, rejection: Rejection): void {
    const quiet = this.logged.count(deviceId) > 0;
    if (!quiet) this.logged.record(deviceId);
    this.log[quiet ? "debug" : "info"](
      { deviceId, topic, code: rejection.code, deadLetterId: rejection.deadLetterId },
      quiet
        ? "publish rejected and dead-lettered"
        : "publish rejected and dead-lettered (further ones within 10 s at debug)",
    );
    if (rejection.code === "rate_limited") {
      if (this.rateTold.count(deviceId) > 0) return;
      this.rateTold.record(deviceId);
    }
    this.send(deviceId, {
      code: rejection.code,
      message: rejection.message,
      topic,
      receivedAt: new Date(this.now()).toISOString(),
    });
  }
}
