/**
 * The staff console (web app over the staff WebSocket) as a channel. Its delivery is the change
 * stream itself: every connected screen in scope receives each alert change as it is committed
 * (src/staff/server.ts), and a screen confirms with a `received` receipt, which the alert manager
 * records against this channel's attempt. So `deliver` has nothing to send; it only marks the
 * attempt as handed over. Re-notifications sound on the screens through the manager's "renotify"
 * event, not through attempts.
 */
import type { StaffIdentity } from "../../staff/protocol.js";
import {
  type AlertChannel,
  type Audience,
  type ChannelReporter,
  type Delivery,
  inAudience,
  type Recipient,
} from "./channel.js";

/** Who is connected right now: the staff server answers. */
export interface StaffDirectory {
  connected(): StaffIdentity[];
}

export class ConsoleChannel implements AlertChannel {
  readonly name = "console" as const;
  readonly renotifies = false;
  private reporter: ChannelReporter | null = null;

  constructor(private readonly staff: StaffDirectory) {}

  start(reporter: ChannelReporter): void {
    this.reporter = reporter;
  }

  stop(): void {
    this.reporter = null;
  }

  reach(audience: Audience): Recipient[] {
    return this.staff
      .connected()
      .filter((s) => inAudience(s, audience))
      .map((s) => ({ id: s.id, name: s.name, staffId: s.id }));
  }

  deliver(d: Delivery): void {
    this.reporter?.sent(d.attemptId, "on the screen's change stream");
  }

  health() {
    return { ok: true };
  }
}
