/**
 * The staff console (web app over the staff WebSocket) as a channel. Its delivery is the change
 * stream itself: every connected screen in scope receives each alert change as it is committed
 * (src/staff/server.ts), and a screen confirms with a `received` receipt, which the alert manager
 * records against this channel's attempt. So the attempt is handed over by the commit that records
 * it, and `deliver` has nothing to send. Re-notifications sound on the screens through the
 * manager's "renotify" event, not through attempts.
 */
import type { StaffIdentity } from "../../staff/protocol.js";
import { type AlertChannel, type Audience, inAudience, type Recipient } from "./channel.js";

/** Who is connected right now: the staff server answers. */
export interface StaffDirectory {
  connected(): StaffIdentity[];
}

export class ConsoleChannel implements AlertChannel {
  readonly name = "console" as const;
  readonly renotifies = false;
  readonly handsOverOnCommit = true;

  constructor(private readonly staff: StaffDirectory) {}

  reach(audience: Audience): Recipient[] {
    return this.staff
      .connected()
      .filter((s) => inAudience(s, audience))
      .map((s) => ({ id: s.id, name: s.name, staffId: s.id }));
  }

  deliver(): void {}

  health() {
    return { ok: true };
  }
}
