/**
 * A cluster node's staff alerts (`FeedStaffAlerts`, src/staff/server.ts): what this node's staff
 * sockets see of alerts whose partitions other nodes own. Live changes and renotifies come from the
 * node's `ChangeFeed` (pg/change-feed.ts), a resume from the feed's vector cursor (`readSince`), a
 * snapshot from PostgreSQL's `alerts` table, and commands go to the partition's owner through an
 * injected `send`.
 *
 * One stream per connection, and nothing lost or doubled between its first read and live changes.
 * The single process replays and registers in one synchronous turn; here the read is asynchronous,
 * so a stream is registered first and holds the live changes that arrive meanwhile, the read is
 * made, and then the read's changes go out, followed by the held ones that the read did not cover,
 * judged by (partition, position). Per partition the feed's positions are dense and in commit order,
 * so a stream's position is one number per partition of its person's sites: a live change at or below
 * it is covered, the next one extends it, and one further on means changes were missed (the node's
 * feed skipped rows: its `gap`), for which the stream takes a fresh snapshot. Everything runs through
 * one queue, so a stream's deliveries keep the feed's order.
 *
 * Snapshots: the person's sites' open alerts and the feed heads of their partitions, read in one
 * REPEATABLE READ transaction (the owner writes an alert's row and its feed entry in one commit, so
 * the snapshot's alerts are exactly what the heads cover), mapped as the single process maps them
 * (`view`, `alertVisibleTo` of src/alerts/manager.ts).
 *
 * Visibility: a change carries the alert's view, which does not say how far its ladder reached
 * beyond the person's units (partition-state.ts). For a person whose units do not include the
 * alert's, the alert's row is read from PostgreSQL (its ladder) before the change is handed on, and
 * kept while its priority stays (a priority upgrade brings another ladder); the level is the
 * change's. If that read fails, the streams that needed it take a fresh snapshot rather than guess.
 *
 * Not here (docs/cluster.md, "Not built yet"): `recheckUndelivered` and the console channel's "who
 * is connected" stay the local node's; the owner does not learn of staff connected to other nodes.
 */
import type pg from "pg";
import { type AlertChange, alertVisibleTo, view } from "../alerts/manager.js";
import type { AlertView } from "../alerts/model.js";
import type { AlertRow } from "../alerts/store.js";
import { ApiError } from "../errors.js";
import type { AlertActions } from "../http/alerts.js";
import type { Logger } from "../log.js";
import type { ClientCommand, SnapshotReason, StaffCommand, StaffIdentity } from "../staff/protocol.js";
import type { FeedStaffAlerts, StaffStart, StaffStream } from "../staff/server.js";
import { partitionOf } from "./partitions.js";
import {
  type ChangeFeed,
  encodeFeedCursor,
  type FeedChange,
  type FeedPosition,
  parseFeedCursor,
  readSince,
} from "./pg/change-feed.js";
import { rows } from "./pg/partition-schema.js";

/** Hands a command to the owner of the partition and resolves with the alert as the owner left it. */
export type SendToOwner = (partition: number, command: StaffCommand) => Promise<AlertView>;

export interface ClusterStaffAlertsOptions {
  /** Reads: snapshots, resumes, ladders, an alert's site. */
  pool: pg.Pool;
  /** This node's follower of the feed, started and stopped by its owner. */
  feed: ChangeFeed;
  /** The cluster's partition count (`cluster.partitions`). */
  partitions: number;
  send: SendToOwner;
  log: Logger;
  /** Alert rows kept for their ladders; 10,000 by default. */
  keepRows?: number;
}

interface Stream {
  staff: StaffIdentity;
  sites: ReadonlySet<string>;
  partitions: readonly number[];
  to: StaffStream;
  /** Partition -> the last feed position this stream has covered. */
  position: Map<number, number>;
  /** Live changes arriving while a read is in flight; null once the stream is live. */
  held: FeedChange[] | null;
  /** The latest read started for it: an earlier one still in flight is superseded. */
  opening: number;
  closed: boolean;
}

type Opening =
  | { kind: "snapshot"; reason: SnapshotReason; alerts: AlertView[]; position: Map<number, number> }
  | { kind: "replay"; changes: FeedChange[]; from: Map<number, number>; position: Map<number, number> };

const SNAPSHOT_HEADS = "SELECT partition, head FROM change_feed_heads WHERE partition = ANY($1::int[])";
const SNAPSHOT_ALERTS =
  "SELECT * FROM alerts WHERE open = 1 AND site_id = ANY($1::text[]) ORDER BY raised_at, id";

export class ClusterStaffAlerts implements FeedStaffAlerts {
  private readonly streams = new Set<Stream>();
  /** Deliveries, one after another, in the feed's order. */
  private queue: Promise<void> = Promise.resolve();
  /** Alert id -> its row as last read (for the ladder and the site), oldest first. */
  private readonly rowsById = new Map<string, AlertRow>();
  private readonly keepRows: number;

  constructor(private readonly o: ClusterStaffAlertsOptions) {
    this.keepRows = o.keepRows ?? 10_000;
  }

  /** Listens to the feed (which its owner starts). */
  start(): void {
    this.o.feed.off("changes", this.onChanges);
    this.o.feed.off("gap", this.onGap);
    this.o.feed.on("changes", this.onChanges);
    this.o.feed.on("gap", this.onGap);
  }

  /** Stops listening; every stream ends (its server closes the sockets). */
  async stop(): Promise<void> {
    this.o.feed.off("changes", this.onChanges);
    this.o.feed.off("gap", this.onGap);
    for (const s of this.streams) s.closed = true;
    this.streams.clear();
    await this.queue;
  }

  follow(staff: StaffIdentity, start: StaffStart, to: StaffStream, maxReplay: number): { close(): void } {
    // A malformed cursor is refused before anything else (ApiError invalid_body).
    const from = start && "cursor" in start ? parseFeedCursor(start.cursor) : null;
    const partitions = [...new Set(staff.sites.map((site) => partitionOf(site, this.o.partitions)))].sort(
      (a, b) => a - b,
    );
    const stream: Stream = {
      staff,
      sites: new Set(staff.sites),
      partitions,
      to,
      position: new Map(),
      held: [],
      opening: 0,
      closed: false,
    };
    // Registered before the read: what the feed hands over from now on is held, not missed.
    this.streams.add(stream);
    const read = (): Promise<Opening> => {
      if (start === null) return this.snapshot(stream, "initial");
      // A single process's seq says nothing about where the feed stands.
      if (from === null) return this.snapshot(stream, "resume_unknown");
      return this.replay(stream, from, maxReplay);
    };
    this.open(stream, read);
    return { close: () => this.close(stream) };
  }

  async command(staff: StaffIdentity, command: ClientCommand): Promise<AlertView> {
    const site = await this.siteOf(command.alertId);
    // As the owner's manager answers for an alert outside the person's scope: not found.
    if (site === null || !staff.sites.includes(site))
      throw new ApiError("alert_not_found", `no alert "${command.alertId}" in your scope`);
    return this.o.send(partitionOf(site, this.o.partitions), { ...command, staff });
  }

  /**
   * The HTTP API's and the phone notifications' actions on an alert (src/http/alerts.ts), carried
   * to the owner like a console's commands.
   */
  actions(): AlertActions {
    const run = (staff: StaffIdentity, command: ClientCommand) => this.command(staff, command);
    const id = "http";
    return {
      accept: (alertId, staff) => run(staff, { type: "accept", id, alertId }),
      received: (alertId, staff) => run(staff, { type: "received", id, alertId }),
      attend: (alertId, staff) => run(staff, { type: "attend", id, alertId }),
      reject: (alertId, staff, reason) =>
        run(staff, { type: "reject", id, alertId, ...(reason === undefined ? {} : { reason }) }),
      resolve: (alertId, staff, outcome, note) =>
        run(staff, { type: "resolve", id, alertId, outcome, ...(note === undefined ? {} : { note }) }),
      comment: (alertId, staff, text) => run(staff, { type: "comment", id, alertId, text }),
    };
  }

  /** How many streams are registered (for status and tests). */
  get size(): number {
    return this.streams.size;
  }

  // ---------------------------------------------------------------- opening a stream

  /**
   * Reads, then (in the queue) delivers the read and the changes held meanwhile. Changes held from
   * before this read began are covered by it: they committed before it.
   */
  private open(stream: Stream, read: () => Promise<Opening>): void {
    const opening = ++stream.opening;
    const current = () => !stream.closed && stream.opening === opening;
    stream.held = [];
    read().then(
      (answer) =>
        this.enqueue(async () => {
          if (!current()) return;
          const changes = answer.kind === "replay" ? answer.changes : [];
          if (!(await this.readRows(changes, [stream]))) return this.reopen([stream]);
          if (!current()) return;
          if (answer.kind === "snapshot")
            stream.to.snapshot(answer.alerts, answer.reason, encodeFeedCursor(answer.position));
          else {
            // Each replayed change carries the position right after it: a client cut off mid-replay
            // resumes from there.
            const at = new Map(answer.from);
            let replayed = 0;
            for (const c of answer.changes) {
              at.set(c.partition, c.position);
              if (c.change.kind === "renotify" || !this.visible(stream, c)) continue;
              stream.to.change(alertChange(c), encodeFeedCursor(at));
              replayed++;
            }
            stream.to.resumed(replayed, encodeFeedCursor(answer.position));
          }
          stream.position = answer.position;
          const held = stream.held ?? [];
          stream.held = null;
          for (const c of held) this.deliver(stream, c);
        }),
      (err: Error) => {
        if (!current()) return;
        this.close(stream);
        stream.to.failed(err);
      },
    );
  }

  /** The person's open alerts and the heads they stand at, in one snapshot of the database. */
  private async snapshot(stream: Stream, reason: SnapshotReason): Promise<Opening> {
    const c = await this.o.pool.connect();
    let heads: { partition: number; head: number }[];
    let alerts: AlertRow[];
    try {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      heads = await rows(c, SNAPSHOT_HEADS, [stream.partitions]);
      alerts = await rows<AlertRow>(c, SNAPSHOT_ALERTS, [[...stream.sites]]);
      await c.query("COMMIT");
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
    for (const row of alerts) this.keep(row);
    const position = new Map(stream.partitions.map((p) => [p, 0]));
    for (const h of heads) position.set(h.partition, h.head);
    return {
      kind: "snapshot",
      reason,
      alerts: alerts.filter((r) => alertVisibleTo(r, stream.staff)).map(view),
      position,
    };
  }

  /** The changes after the client's cursor, or the snapshot that replaces them. */
  private async replay(stream: Stream, from: FeedPosition, maxReplay: number): Promise<Opening> {
    const answer = await readSince(this.o.pool, from, { partitions: stream.partitions, limit: maxReplay });
    if (answer.kind === "too_old") return this.snapshot(stream, "resume_too_old");
    if (answer.kind === "unknown") return this.snapshot(stream, "resume_unknown");
    const at = (p: FeedPosition, partition: number) => p.get(partition) ?? 0;
    return {
      kind: "replay",
      changes: answer.changes,
      from: new Map(stream.partitions.map((p) => [p, at(from, p)])),
      position: new Map(stream.partitions.map((p) => [p, at(answer.position, p)])),
    };
  }

  /**
   * Fresh snapshots for streams that can no longer be followed change by change (a read in flight
   * is superseded): `resume_too_old` (replace what you hold), or `resume_unknown` when the feed was
   * past anything this database issued (restored or replaced).
   */
  private reopen(streams: Iterable<Stream>, reason: SnapshotReason = "resume_too_old"): void {
    for (const s of streams) if (!s.closed) this.open(s, () => this.snapshot(s, reason));
  }

  private close(stream: Stream): void {
    stream.closed = true;
    this.streams.delete(stream);
  }

  // ---------------------------------------------------------------- live changes

  private readonly onChanges = (changes: FeedChange[]): void => {
    this.enqueue(async () => {
      const streams = [...this.streams];
      if (!(await this.readRows(changes, streams))) {
        // Without the ladders some streams cannot judge what they may show: they start over.
        const needing = streams.filter((s) => changes.some((c) => needsRow(s, c.change.alert)));
        this.reopen(needing);
        for (const s of streams) if (!needing.includes(s)) for (const c of changes) this.deliver(s, c);
        return;
      }
      for (const s of streams) for (const c of changes) this.deliver(s, c);
    });
  };

  /** The node's feed skipped rows of these partitions (pruned before it read them, or unknown). */
  private readonly onGap = (partitions: number[], reason: "pruned" | "unknown"): void => {
    this.enqueue(async () => {
      const hit = [...this.streams].filter((s) => s.partitions.some((p) => partitions.includes(p)));
      this.o.log.warn(
        { partitions, reason, streams: hit.length },
        "change feed gap: staff streams take a snapshot",
      );
      this.reopen(hit, reason === "unknown" ? "resume_unknown" : "resume_too_old");
    });
  };

  /**
   * A change for one stream: held while a read is in flight (also one a hole just started, so the
   * rest of a batch waits for the new snapshot), handed on otherwise.
   */
  private deliver(stream: Stream, c: FeedChange): void {
    if (stream.closed || !stream.partitions.includes(c.partition)) return;
    if (stream.held) {
      stream.held.push(c);
      return;
    }
    const at = stream.position.get(c.partition) ?? 0;
    if (c.position <= at) return; // covered by the stream's read
    if (c.position !== at + 1) return this.reopen([stream]);
    stream.position.set(c.partition, c.position);
    if (!this.visible(stream, c)) return;
    if (c.change.kind === "renotify") {
      if (stream.staff.role !== "manager") stream.to.renotify(c.change.alert);
      return;
    }
    stream.to.change(alertChange(c), encodeFeedCursor(stream.position));
  }

  private visible(stream: Stream, c: FeedChange): boolean {
    const alert = c.change.alert;
    if (!stream.sites.has(alert.site)) return false;
    if (!needsRow(stream, alert)) return true;
    const row = this.rowsById.get(alert.id);
    // Read before delivery (readRows); absent only for an alert PostgreSQL does not have. The level
    // is the change's: how far the ladder had reached when it was made.
    return row ? alertVisibleTo({ ...row, level: alert.level }, stream.staff) : false;
  }

  // ---------------------------------------------------------------- rows

  /**
   * Reads the rows of the changes' alerts that these streams need and that are not held with the
   * change's priority. False if the read failed.
   */
  private async readRows(changes: readonly FeedChange[], streams: readonly Stream[]): Promise<boolean> {
    const ids = new Set<string>();
    for (const c of changes) {
      const a = c.change.alert;
      if (this.rowsById.get(a.id)?.priority === a.priority) continue;
      if (streams.some((s) => s.sites.has(a.site) && needsRow(s, a))) ids.add(a.id);
    }
    if (ids.size === 0) return true;
    try {
      const found = await rows<AlertRow>(this.o.pool, "SELECT * FROM alerts WHERE id = ANY($1::text[])", [
        [...ids],
      ]);
      for (const row of found) this.keep(row);
      return true;
    } catch (err) {
      this.o.log.warn({ err }, "could not read alert rows for staff visibility");
      return false;
    }
  }

  private keep(row: AlertRow): void {
    this.rowsById.delete(row.id);
    this.rowsById.set(row.id, row);
    if (this.rowsById.size > this.keepRows) {
      const oldest = this.rowsById.keys().next().value;
      if (oldest !== undefined) this.rowsById.delete(oldest);
    }
  }

  private async siteOf(alertId: string): Promise<string | null> {
    const held = this.rowsById.get(alertId);
    if (held) return held.site_id;
    try {
      const [row] = await rows<{ site_id: string }>(this.o.pool, "SELECT site_id FROM alerts WHERE id = $1", [
        alertId,
      ]);
      return row?.site_id ?? null;
    } catch (err) {
      this.o.log.warn({ err, alertId }, "could not read an alert's site for a staff command");
      throw new ApiError("unavailable", "alerts cannot be read now; try again");
    }
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((err: Error) => {
      this.o.log.error({ err }, "staff stream delivery failed");
    });
  }
}

/**
 * Whether judging the alert for this person needs its ladder: not for a manager or admin, nor
 * within their own units, where `alertVisibleTo` answers yes for an alert of their sites.
 */
function needsRow(stream: Stream, alert: AlertView): boolean {
  const s = stream.staff;
  return s.role !== "manager" && s.role !== "admin" && s.units !== null && !s.units.includes(alert.unit);
}

/** The protocol's change (the feed's message without its kind). */
function alertChange(c: FeedChange): AlertChange {
  const { seq, change, alert, actor, reason } = c.change;
  return { seq, change, alert, actor, reason };
}
