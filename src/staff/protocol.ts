/**
 * The staff WebSocket protocol (documented in docs/staff-protocol.md). One zod schema per message;
 * every client command gets exactly one `reply` with its request id.
 *
 * Ordering and resume: every alert change the server sends carries `seq`, the id of the audit entry
 * that made it. Audit ids only grow, so `seq` is monotonic for each alert on every connection (across
 * alerts a rule-derived change may overtake a person's change still waiting for its fsync; see
 * StaffServer.send), and it survives a gateway restart. A client that reconnects sends the largest `seq` it saw in `hello.resumeFrom` and
 * receives every change in its scope after it, in order, then live changes; if it is too far behind
 * it gets a fresh snapshot instead (`snapshot.reason = "resume_too_old"`). A `resumeFrom` beyond
 * the newest seq was never issued by this database (restored from a backup, or replaced): the
 * client's view cannot be trusted and it gets a snapshot (`"resume_unknown"`).
 *
 * Cluster mode (docs/cluster.md): a site's alerts change on the node that owns its partition and
 * reach every node through the change feed (src/cluster/pg/change-feed.ts), whose order is one
 * sequence per partition, not one `seq`. There every `snapshot`, `alert` and `resumed` also carries
 * `cursor`, where the connection's stream stands in the feed (opaque to clients), and a client
 * resumes on any node with `hello.resumeCursor` = the last `cursor` it received. `seq` is still the
 * audit id and grows per alert; a `resumeFrom` without a cursor cannot be placed in the feed and is
 * answered with a `"resume_unknown"` snapshot, as a cursor is by a single process.
 */
import { z } from "zod";
import { type AlertView, Outcome } from "../alerts/model.js";
import type { ErrorCode } from "../errors.js";

export const PROTOCOL_VERSION = 1;
export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;

const RequestId = z.string().min(1).max(64);
const AlertId = z.string().min(1).max(64);

export const ClientMessage = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("hello"),
    id: RequestId,
    token: z.string().min(1).max(256),
    resumeFrom: z.number().int().nonnegative().optional(),
    /** Cluster mode: the last `cursor` received; its grammar is the feed's (`parseFeedCursor`). */
    resumeCursor: z
      .string()
      .max(24 * 1024)
      .optional(),
    language: z.enum(["da", "en"]).optional(),
  }),
  z.strictObject({ type: z.literal("accept"), id: RequestId, alertId: AlertId }),
  z.strictObject({
    type: z.literal("reject"),
    id: RequestId,
    alertId: AlertId,
    reason: z.string().max(500).optional(),
  }),
  z.strictObject({ type: z.literal("attend"), id: RequestId, alertId: AlertId }),
  z.strictObject({
    type: z.literal("resolve"),
    id: RequestId,
    alertId: AlertId,
    outcome: Outcome,
    note: z.string().max(2000).optional(),
  }),
  z.strictObject({
    type: z.literal("comment"),
    id: RequestId,
    alertId: AlertId,
    text: z.string().min(1).max(2000),
  }),
  /** Delivery receipt: the alert reached this person's screen. */
  z.strictObject({ type: z.literal("received"), id: RequestId, alertId: AlertId }),
  z.strictObject({ type: z.literal("ping"), id: RequestId }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type ClientCommand = Exclude<ClientMessage, { type: "hello" | "ping" }>;
/** A command without the connection's request id: what is done, whoever carries it. */
export type CommandBody = ClientCommand extends infer C
  ? C extends ClientCommand
    ? Omit<C, "id">
    : never
  : never;

/** The alert manager's staff actions, as a command runs them. */
export interface StaffActions {
  accept(id: string, staff: StaffIdentity): AlertView;
  reject(id: string, staff: StaffIdentity, reason?: string): AlertView;
  attend(id: string, staff: StaffIdentity): AlertView;
  resolve(id: string, staff: StaffIdentity, outcome: Outcome, note?: string): AlertView;
  comment(id: string, staff: StaffIdentity, text: string): AlertView;
  received(id: string, staff: StaffIdentity): AlertView;
}

/**
 * Runs a staff command on an alert manager: a console's on its own node's (src/staff/server.ts), or
 * one carried to a partition's owner on the owner's (src/cluster/pg/owner-commands.ts).
 */
export function runStaffCommand(alerts: StaffActions, staff: StaffIdentity, c: CommandBody): AlertView {
  switch (c.type) {
    case "accept":
      return alerts.accept(c.alertId, staff);
    case "reject":
      return alerts.reject(c.alertId, staff, c.reason);
    case "attend":
      return alerts.attend(c.alertId, staff);
    case "resolve":
      return alerts.resolve(c.alertId, staff, c.outcome, c.note);
    case "comment":
      return alerts.comment(c.alertId, staff, c.text);
    case "received":
      return alerts.received(c.alertId, staff);
    default:
      return c satisfies never;
  }
}
/** A command as a node hands it to the owner of the alert's partition in cluster mode: who acts, and what. */
export type StaffCommand = ClientCommand & { staff: StaffIdentity };

export interface StaffIdentity {
  id: string;
  name: string;
  role: string;
  sites: string[];
  units: string[] | null;
}

/**
 * A site in a person's scope with its display names, so screens can say "Afsnit A", not "unit-a".
 * `units` are the person's own units; `otherUnits` are the rest of the site, named because an
 * escalation to the whole site brings their alerts to this person too. `nightHours` (local, in
 * `timeZone`) switch the console to its dark theme; `residents` carries display names only where
 * the site has turned them on (otherwise empty: screens show the pseudonymous reference).
 */
export interface PlaceSite {
  id: string;
  name: string;
  timeZone: string;
  nightHours: { from: string; to: string };
  units: { id: string; name: string }[];
  otherUnits: { id: string; name: string }[];
  residents: { ref: string; name: string }[];
}

/** A configured site as placesInScope reads it (the config's SiteConfig plus its residents). */
export interface SiteCatalogueEntry {
  id: string;
  name: string;
  timeZone?: string;
  nightHours?: { from: string; to: string };
  residentNames?: boolean;
  units: readonly { id: string; name: string }[];
  residents?: readonly { ref: string; displayName?: string | undefined }[];
}

export const DEFAULT_NIGHT_HOURS = { from: "22:00", to: "07:00" } as const;

/** The sites and units a person may see, with names: their scope cut out of the configuration. */
export function placesInScope(sites: readonly SiteCatalogueEntry[], staff: StaffIdentity): PlaceSite[] {
  const own = (id: string) => staff.units === null || staff.units.includes(id);
  return sites
    .filter((s) => staff.sites.includes(s.id))
    .map((s) => ({
      id: s.id,
      name: s.name,
      timeZone: s.timeZone ?? "Europe/Copenhagen",
      nightHours: { ...(s.nightHours ?? DEFAULT_NIGHT_HOURS) },
      units: s.units.filter((u) => own(u.id)).map((u) => ({ id: u.id, name: u.name })),
      otherUnits: s.units.filter((u) => !own(u.id)).map((u) => ({ id: u.id, name: u.name })),
      residents: s.residentNames
        ? (s.residents ?? []).flatMap((r) => (r.displayName ? [{ ref: r.ref, name: r.displayName }] : []))
        : [],
    }));
}

/** Allowed resolve outcomes per alert type (src/alerts/outcomes.ts), as sent to clients. */
export interface OutcomeCatalogue {
  byType: Record<string, Outcome[]>;
  default: Outcome[];
}

export type SnapshotReason = "initial" | "resume_too_old" | "resume_unknown";

export type ServerMessage =
  | {
      type: "welcome";
      protocol: number;
      staff: StaffIdentity;
      heartbeatSec: number;
      places: PlaceSite[];
      outcomes: OutcomeCatalogue;
    }
  /** `seq` is 0 in cluster mode, where `cursor` is the resume point (header). */
  | { type: "snapshot"; seq: number; alerts: AlertView[]; reason: SnapshotReason; cursor?: string }
  /** `from` (the `resumeFrom` served) in a single process; `cursor` in cluster mode. */
  | { type: "resumed"; from?: number; replayed: number; cursor?: string }
  | {
      type: "alert";
      seq: number;
      change: string;
      alert: AlertView;
      actor: string;
      reason: string | null;
      /** Cluster mode: the stream's position after this change. */
      cursor?: string;
    }
  /** Repeat the signal for an alert nobody has accepted (not part of the ordered stream). */
  | { type: "renotify"; alertId: string; priority: string; level: number }
  | { type: "reply"; id: string; ok: true; result?: unknown }
  | {
      type: "reply";
      id: string | null;
      ok: false;
      error: { code: ErrorCode; message: string; details?: unknown };
    }
  | { type: "pong"; id: string; serverTime: string };
