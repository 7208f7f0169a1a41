/**
 * A partition's state on PostgreSQL, held by the node that owns the partition's lease: the design of
 * src/rules/partition.ts ("what a PostgreSQL one looks like"), built.
 *
 * Load. `PgPartitionState.load` reads the partition's working set in one fenced transaction (so it
 * is what the previous owner committed, and this node still holds the lease with this token): its
 * open alerts with their audit and channel attempts (alert-store.ts), its durable timers, the rules'
 * cursor and audit head (`partition_state`), its sites' maintenance windows, and a first block of
 * audit and attempt ids (unit-of-work.ts `IdBlocks`). Rows carried from a single process by the
 * export are picked up where they lack what a partition needs (partition-schema.ts).
 *
 * Steps. `step(fn)` runs on memory, synchronously: every store changes its rows at once (a step
 * reads its writes), a step that throws is taken back (nested steps are savepoints), and when the
 * outermost step returns, the rows it changed are queued for the flush as they now are. A step is
 * refused (it throws before running) once the state is lost or closed, or when this node's local
 * deadline for the lease has passed.
 *
 * Flush. The queue is written in order, in one `leases.fenced` transaction per round: every step
 * queued while the previous round was in flight goes in the next, so under load one transaction
 * carries many steps. `flushed()` resolves once everything stepped so far has committed: what a
 * step did may be seen outside (a staff socket, a channel call, an HTTP answer) only then, as the
 * single process waits for its fsync (src/store/durability.ts). A round that fails (the lease lost,
 * PostgreSQL gone) is not retried: the state is lost, `flushed()` rejects, further steps throw, and
 * `lost` is emitted; the owner drops the state and gives the partition up, and the next owner loads
 * what committed (the steps after it, if replayable, are made again there). The lease lost by the
 * leases component (`lost` for this partition) makes the state lost at once.
 *
 * Staff commands' answers (owner-commands.ts). A step that carries out a command a node sent to this
 * partition's owner records the command's answer in the step (`answer`), and the round that writes
 * the step's rows turns the command's row `answered` (only if it is still taken with this token) and
 * notifies its sender, in the same fenced transaction. So a command's effects and its answer commit
 * together or not at all: an owner lost before that commit leaves the row taken with nothing of the
 * command in PostgreSQL (the next owner carries it out), one lost after it leaves the row answered.
 * A command that changes nothing (refused, or `accept` of an alert the person already has) is a
 * step with only its answer, and makes a round of its own.
 *
 * The change feed (`feed: true`; change-feed.ts). Each audit entry is one alert change, and a round
 * appends the changes of the entries it writes with `appendChanges`, on the same client, as the fenced
 * transaction's last statements, in audit-id order. So a change is in the feed exactly when its audit
 * entry is in PostgreSQL: a step taken back has no entry, and a round that fails (the fence refusing
 * it, PostgreSQL gone) rolls its append back with its rows. Audit ids grow with the rounds (blocks
 * drawn from one sequence, a new owner's after the old one's), and a partition's feed positions
 * follow its commits, so per partition the feed's order is audit-id order, and each alert's `seq`
 * grows along it.
 *
 * A feed entry is the alert change as the staff server sends it (the `alert` message without its
 * type: seq = audit id, change = the action, the alert's view, actor, reason), built by the owner
 * with the manager's own builders (`alertChange`, `view`), and not the audit and alert rows for
 * each node to build it from. A node that does not own the partition then sends to its staff
 * sockets what it reads, with no read of alerts it does not hold; the view is about 1 kB, stored in
 * a row (the notification carries only the partition and its head, so NOTIFY's 8000 bytes do not
 * bound it); and a resume from the feed hands out the same message the live path did. The view is
 * the alert as the entry found it (its row when the entry was appended, which the store keeps until
 * the flush), as the single process announces each transition, not as the round ended. Two things
 * a node does not get from an entry: whether an escalated alert has reached a person outside its
 * units (`AlertManager.visibleTo` reads the row's ladder, which the view does not carry), and the
 * staff `renotify` message, which is no audit entry; both are the wiring's to carry.
 *
 * Not here: the rules' reads of the event log, which are every node's (see partition.ts).
 */
import { EventEmitter } from "node:events";
import type pg from "pg";
import { type AlertChange, alertChange, view } from "../../alerts/manager.js";
import type { AlertRow } from "../../alerts/store.js";
import { RULES_CURSOR } from "../../rules/cursor.js";
import type { MaintenanceRow } from "../../rules/maintenance.js";
import type { PartitionState } from "../../rules/partition.js";
import { partitionOf } from "../partitions.js";
import { type AttemptTableRow, type AuditTableRow, PgAlertStore } from "./alert-store.js";
import { appendChanges } from "./change-feed.js";
import { positionAtSeq } from "./event-log.js";
import type { LostReason, PartitionLeases } from "./leases.js";
import { type OwnerAnswer, writeAnswers } from "./owner-commands.js";
import { ALERT_COLUMNS, ATTEMPT_COLUMNS, rows, upsertJson } from "./partition-schema.js";
import { PgMaintenanceWindows, PgRulesCursor, PgTimerStore, type TimerTableRow } from "./partition-stores.js";
import { type Changed, IdBlocks, UnitOfWork } from "./unit-of-work.js";

export interface PgPartitionStateOptions {
  pool: pg.Pool;
  /** This node's leases; the partition's count is theirs. */
  leases: PartitionLeases;
  partition: number;
  /** The lease's fencing token, from `acquired`. */
  token: number;
  /** Ids reserved ahead per sequence (audit, attempts); a refill starts at half. */
  blockSize?: number;
  /** Closed alerts kept in the working set (least recently used go first); 1000 by default. */
  keepClosed?: number;
  /** Append each alert change a round commits to the change feed, in that round (header). */
  feed?: boolean;
}

/** The state may take no more steps: its partition is to be given up (or it was closed). */
export class PartitionStateLostError extends Error {
  readonly code = "partition_lost";
  constructor(
    readonly partition: number,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`partition ${partition}: ${reason}; its state takes no more steps`, options);
    this.name = "PartitionStateLostError";
  }
}

export interface PgPartitionStateEvents {
  /** Nothing more is flushed: drop the state and give the partition up. */
  lost: [err: PartitionStateLostError];
}

/** The rows one or more finished steps changed, as they ended. */
interface Batch {
  alerts: Map<string, AlertRow>;
  audit: AuditTableRow[];
  attempts: Map<number, AttemptTableRow>;
  /** null: deleted. */
  timers: Map<string, TimerTableRow | null>;
  meta: { rules_position: number; rules_updated_at: number; audit_head: number } | null;
  /** The alert change of each audit entry, for the change feed (empty when it is off). */
  changes: AlertChange[];
  /** Staff command id -> its answer, written with the round (owner-commands.ts). */
  answers: Map<string, OwnerAnswer>;
}

const ADOPT_TIMERS = `
  UPDATE timers AS t SET partition = $1
   WHERE t.partition IS NULL
     AND ata_partition_of(coalesce(
           (SELECT a.site_id FROM alerts a WHERE a.id = t.payload::json->>'alertId'),
           (SELECT e.site_id FROM events e
             WHERE (t.payload::json->>'eventSeq') ~ '^[0-9]{1,18}$'
               AND e.seq = (t.payload::json->>'eventSeq')::bigint)), $2) = $1`;
const MAINTENANCE_OF = "SELECT * FROM maintenance WHERE ata_partition_of(site_id, $2) = $1 ORDER BY id";
const RESERVE = "SELECT nextval(pg_get_serial_sequence($1, 'id')) AS id FROM generate_series(1, $2::int)";

export class PgPartitionState extends EventEmitter<PgPartitionStateEvents> implements PartitionState {
  readonly partition: number;
  readonly token: number;
  readonly alerts: PgAlertStore;
  readonly timers: PgTimerStore;
  readonly cursor: PgRulesCursor;
  readonly maintenance: PgMaintenanceWindows;
  private readonly pool: pg.Pool;
  private readonly leases: PartitionLeases;
  private readonly count: number;
  private readonly keepClosed: number;
  private readonly feed: boolean;
  private readonly uow: UnitOfWork;
  private readonly auditIds: IdBlocks;
  private readonly attemptIds: IdBlocks;
  private readonly queue: Batch[] = [];
  /** Outermost steps with writes, queued so far and committed so far. */
  private enqueued = 0;
  private committed = 0;
  private draining = false;
  private readonly waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private lostError: PartitionStateLostError | null = null;
  private closed = false;
  private refreshing: Promise<void> = Promise.resolve();
  /** Answers recorded by the step now open, until it returns. */
  private readonly stepAnswers = new Map<string, OwnerAnswer>();

  /** Loads the partition's working set; rejects with LeaseLostError if the lease is not this node's. */
  static async load(o: PgPartitionStateOptions): Promise<PgPartitionState> {
    const state = new PgPartitionState(o);
    await state.loadWorkingSet(o.blockSize ?? 1000);
    state.leases.on("lost", state.onLeaseLost);
    // Lost while loading: the state is born lost rather than acting on a partition not its own.
    if (!state.leases.holds(state.partition, state.token)) state.lose("the lease was lost while loading");
    return state;
  }

  private constructor(o: PgPartitionStateOptions) {
    super();
    this.pool = o.pool;
    this.leases = o.leases;
    this.partition = o.partition;
    this.token = o.token;
    this.count = o.leases.partitions;
    this.keepClosed = o.keepClosed ?? 1000;
    this.feed = o.feed ?? false;
    if (!Number.isSafeInteger(o.partition) || o.partition < 0 || o.partition >= this.count)
      throw new RangeError(`partition ${o.partition} is not one of 0 .. ${this.count - 1}`);
    this.uow = new UnitOfWork({ begin: () => this.begin(), commit: (changed) => this.commit(changed) });
    const blockSize = o.blockSize ?? 1000;
    const reserve = (table: string) => async (n: number) =>
      (await rows<{ id: number }>(this.pool, RESERVE, [table, n])).map((r) => r.id);
    this.auditIds = new IdBlocks("audit ids", blockSize, reserve("alert_audit"), this.uow);
    this.attemptIds = new IdBlocks("attempt ids", blockSize, reserve("channel_attempts"), this.uow);
    const available = () => !this.closed && !this.lostError;
    this.alerts = new PgAlertStore({
      uow: this.uow,
      auditIds: this.auditIds,
      attemptIds: this.attemptIds,
      checkSite: (siteId) => {
        const p = partitionOf(siteId, this.count);
        if (p !== this.partition)
          throw new Error(`site ${siteId} is in partition ${p}, not in this state's ${this.partition}`);
      },
      headMoved: () => this.uow.changed("partition_state", this.partition, () => {}),
      available,
    });
    this.timers = new PgTimerStore(this.uow, this.partition);
    this.cursor = new PgRulesCursor(this.uow, this.partition, available);
    this.maintenance = new PgMaintenanceWindows();
  }

  step<T>(fn: () => T): T {
    return this.uow.step(fn);
  }

  /**
   * Inside a step: the answer to the staff command this step carries out, written by the flush round
   * that writes the step's rows, in its transaction (header). Taken back with the step.
   */
  answer(commandId: string, answer: OwnerAnswer): void {
    const before = this.stepAnswers.get(commandId);
    this.stepAnswers.set(commandId, answer);
    this.uow.changed("owner_commands", commandId, () => {
      if (before === undefined) this.stepAnswers.delete(commandId);
      else this.stepAnswers.set(commandId, before);
    });
  }

  /** Resolves once every step so far has committed in PostgreSQL; rejects once the state is lost. */
  flushed(): Promise<void> {
    if (this.lostError) return Promise.reject(this.lostError);
    if (this.committed >= this.enqueued) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ upTo: this.enqueued, resolve, reject }));
  }

  /** Why the state takes no more steps, or null while it does. */
  lost(): PartitionStateLostError | null {
    return this.lostError;
  }

  /** Takes no more steps (what is queued is still flushed; await `flushed()` first to know it was). */
  close(): void {
    this.closed = true;
    this.leases.off("lost", this.onLeaseLost);
  }

  /**
   * Brings a closed alert of this partition, with its audit and attempts, into the working set before
   * a step that needs it (a comment, a channel's late answer). False if there is no such alert in
   * this partition. Between steps: the rows are held, not written.
   */
  async loadAlert(id: string): Promise<boolean> {
    if (this.alerts.has(id)) return true;
    const [alert] = await rows<AlertRow>(this.pool, "SELECT * FROM alerts WHERE id = $1", [id]);
    if (!alert || partitionOf(alert.site_id, this.count) !== this.partition) return false;
    const audit = await rows<AuditTableRow>(
      this.pool,
      "SELECT * FROM alert_audit WHERE alert_id = $1 ORDER BY id",
      [id],
    );
    const attempts = await rows<AttemptTableRow>(
      this.pool,
      "SELECT * FROM channel_attempts WHERE alert_id = $1 ORDER BY id",
      [id],
    );
    this.alerts.hold([alert], audit, attempts);
    return true;
  }

  /** As loadAlert, for the alert a channel attempt is for. */
  async loadAttempt(id: number): Promise<boolean> {
    if (this.alerts.hasAttempt(id)) return true;
    const [a] = await rows<{ alert_id: string }>(
      this.pool,
      "SELECT alert_id FROM channel_attempts WHERE id = $1",
      [id],
    );
    return a ? (await this.loadAlert(a.alert_id)) && this.alerts.hasAttempt(id) : false;
  }

  /**
   * Reads the partition's maintenance windows again: after a window of one of its sites was opened or
   * ended (`PgMaintenanceSchedule`'s `changed`, or its notification from another node). Refreshes run
   * one after another, so the last one started is the one that stays.
   */
  refreshMaintenance(): Promise<void> {
    const run = this.refreshing
      .catch(() => undefined)
      .then(async () => {
        this.maintenance.hold(
          await rows<MaintenanceRow>(this.pool, MAINTENANCE_OF, [this.partition, this.count]),
        );
      });
    this.refreshing = run;
    return run;
  }

  /** Resolves when no id block is being reserved (tests, and a caller that wants headroom). */
  async idsReserved(): Promise<void> {
    await Promise.all([this.auditIds.settled(), this.attemptIds.settled()]);
  }

  // ---------------------------------------------------------------- inside

  private async loadWorkingSet(blockSize: number): Promise<void> {
    const p = this.partition;
    await this.leases.fenced(p, this.token, async (c) => {
      await c.query(ADOPT_TIMERS, [p, this.count]);
      const [known] = await rows<{ partition: number }>(
        c,
        "SELECT partition FROM partition_state WHERE partition = $1",
        [p],
      );
      // First owner since the export (or ever): what the single process numbered by its log's seq
      // is numbered by the partition's positions from now on (event-log.ts), once, in this
      // transaction: absence timers' events here, the rules' cursor below.
      if (!known) await c.query(ABSENCE_EVENTS_TO_POSITIONS, [p]);
      const timers = await rows<TimerTableRow>(c, "SELECT * FROM timers WHERE partition = $1", [p]);
      const alerts = await rows<AlertRow>(
        c,
        "SELECT * FROM alerts WHERE open = 1 AND ata_partition_of(site_id, $2) = $1",
        [p, this.count],
      );
      const ids = alerts.map((a) => a.id);
      const audit = await rows<AuditTableRow>(
        c,
        "SELECT * FROM alert_audit WHERE alert_id = ANY($1::text[]) ORDER BY id",
        [ids],
      );
      const attempts = await rows<AttemptTableRow>(
        c,
        "SELECT * FROM channel_attempts WHERE alert_id = ANY($1::text[]) ORDER BY id",
        [ids],
      );
      let [meta] = await rows<{ rules_position: number; rules_updated_at: number; audit_head: number }>(
        c,
        "SELECT rules_position, rules_updated_at, audit_head FROM partition_state WHERE partition = $1",
        [p],
      );
      if (!meta) {
        // First owner since the export (or ever): the single process's cursor, and the audit's head.
        const [cursor] = await rows<{ position: number; updated_at: number }>(
          c,
          "SELECT position, updated_at FROM cursors WHERE name = $1",
          [RULES_CURSOR],
        );
        const [head] = await rows<{ head: number }>(
          c,
          "SELECT coalesce(max(id), 0) AS head FROM alert_audit WHERE ata_partition_of(site_id, $2) = $1",
          [p, this.count],
        );
        meta = {
          rules_position: cursor ? await positionAtSeq(c, p, cursor.position) : 0,
          rules_updated_at: cursor?.updated_at ?? 0,
          audit_head: head?.head ?? 0,
        };
        // Written now, so the numbering above is never done twice.
        await c.query(UPSERT_META, [p, meta.rules_position, meta.rules_updated_at, meta.audit_head]);
      }
      const windows = await rows<MaintenanceRow>(c, MAINTENANCE_OF, [p, this.count]);
      const reserve = async (table: string) =>
        (await rows<{ id: number }>(c, RESERVE, [table, blockSize])).map((r) => r.id);
      this.auditIds.add(await reserve("alert_audit"));
      this.attemptIds.add(await reserve("channel_attempts"));

      this.timers.hold(timers);
      this.alerts.hold(alerts, audit, attempts);
      this.alerts.setHead(meta.audit_head);
      this.cursor.hold(meta.rules_position, meta.rules_updated_at);
      this.maintenance.hold(windows);
    });
  }

  private begin(): void {
    if (this.closed) throw new PartitionStateLostError(this.partition, "the state is closed");
    if (!this.lostError && !this.leases.holds(this.partition, this.token))
      this.lose("this node no longer holds the lease");
    if (this.lostError) throw this.lostError;
  }

  /** An outermost step returned: the rows it changed, as they now are, join the flush queue. */
  private commit(changed: Changed): void {
    const b = emptyBatch();
    for (const id of changed.get("alerts") ?? []) {
      const r = this.alerts.rowOf(id as string);
      if (r) b.alerts.set(r.id, r);
    }
    for (const id of changed.get("alert_audit") ?? []) {
      const r = this.alerts.auditRowOf(id as number);
      const alert = this.alerts.takeAlertAtAudit(id as number);
      if (!r) continue;
      b.audit.push(r);
      if (this.feed) b.changes.push(alertChange(r, view(alert ?? this.alerts.rowOf(r.alert_id)!)));
    }
    for (const id of changed.get("channel_attempts") ?? []) {
      const r = this.alerts.attemptRowOf(id as number);
      if (r) b.attempts.set(r.id, r);
    }
    for (const id of changed.get("timers") ?? [])
      b.timers.set(id as string, this.timers.rowOf(id as string) ?? null);
    for (const id of changed.get("owner_commands") ?? []) {
      const a = this.stepAnswers.get(id as string);
      if (a) b.answers.set(id as string, a);
      this.stepAnswers.delete(id as string);
    }
    if (changed.has("partition_state"))
      b.meta = {
        rules_position: this.cursor.position(),
        rules_updated_at: this.cursor.updatedAt(),
        audit_head: this.alerts.head(),
      };
    this.queue.push(b);
    this.enqueued++;
    this.drain();
  }

  private drain(): void {
    if (this.draining || this.lostError) return;
    this.draining = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.lostError) {
          const batches = this.queue.splice(0);
          const upTo = this.enqueued;
          try {
            await this.leases.fenced(this.partition, this.token, (c) =>
              write(c, this.partition, this.token, merge(batches)),
            );
          } catch (err) {
            this.lose(`a flush failed (${(err as Error).message})`, err);
            return;
          }
          this.committed = upTo;
          for (let i = this.waiters.length - 1; i >= 0; i--) {
            const w = this.waiters[i]!;
            if (w.upTo <= upTo) {
              this.waiters.splice(i, 1);
              w.resolve();
            }
          }
          if (this.queue.length === 0) this.alerts.evictClosed(this.keepClosed);
        }
      } finally {
        this.draining = false;
      }
    })();
  }

  private readonly onLeaseLost = (partition: number, reason: LostReason): void => {
    if (partition === this.partition) this.lose(`the lease was lost (${reason})`);
  };

  private lose(reason: string, cause?: unknown): void {
    if (this.lostError) return;
    const err = new PartitionStateLostError(this.partition, reason, { cause });
    this.lostError = err;
    this.queue.length = 0;
    this.leases.off("lost", this.onLeaseLost);
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.emit("lost", err);
  }
}

function emptyBatch(): Batch {
  return {
    alerts: new Map(),
    audit: [],
    attempts: new Map(),
    timers: new Map(),
    meta: null,
    changes: [],
    answers: new Map(),
  };
}

/** Several finished steps as one: each row as the last of them left it; every audit entry. */
function merge(batches: readonly Batch[]): Batch {
  if (batches.length === 1) return batches[0]!;
  const out = emptyBatch();
  for (const b of batches) {
    for (const [k, v] of b.alerts) out.alerts.set(k, v);
    out.audit.push(...b.audit);
    out.changes.push(...b.changes);
    for (const [k, v] of b.attempts) out.attempts.set(k, v);
    for (const [k, v] of b.timers) out.timers.set(k, v);
    if (b.meta) out.meta = b.meta;
    for (const [k, v] of b.answers) out.answers.set(k, v);
  }
  return out;
}

const UPSERT_ALERTS = upsertJson("alerts", "id", ALERT_COLUMNS);
const INSERT_AUDIT = upsertJson("alert_audit", "id", null);
const UPSERT_ATTEMPTS = upsertJson("channel_attempts", "id", ATTEMPT_COLUMNS);
const UPSERT_TIMERS = upsertJson("timers", "id", ["kind", "due_at", "payload", "partition"]);
/**
 * An absence timer keeps its event's place in the log (src/rules/engine.ts). A single process's
 * timer names a SQLite seq, which the export kept as the row's `seq`; a partition's owner reads its
 * events by position. Timers whose event has no position (exported before the log had them) keep
 * what they had, and raise nothing when they fire (the event is not found), as for a pruned event.
 */
const ABSENCE_EVENTS_TO_POSITIONS = `
  UPDATE timers AS t
     SET payload = jsonb_set(t.payload::jsonb, '{eventSeq}', to_jsonb(e.position))::text
    FROM events AS e
   WHERE t.partition = $1 AND t.kind = 'absence' AND e.position IS NOT NULL
     AND e.seq = (t.payload::jsonb ->> 'eventSeq')::bigint`;
const UPSERT_META = `
  INSERT INTO partition_state (partition, rules_position, rules_updated_at, audit_head) VALUES ($1, $2, $3, $4)
  ON CONFLICT (partition) DO UPDATE SET rules_position = excluded.rules_position,
    rules_updated_at = excluded.rules_updated_at, audit_head = excluded.audit_head`;

/** One flush round's statements, inside the fenced transaction. */
async function write(c: pg.PoolClient, partition: number, token: number, b: Batch): Promise<void> {
  const alerts = [...b.alerts.values()];
  // Closing rows first: an alert closed and another opened with its dedupe key in the same round
  // would otherwise meet the one-open-per-key index halfway.
  const closing = alerts.filter((a) => a.open !== 1);
  const open = alerts.filter((a) => a.open === 1);
  if (closing.length > 0) await c.query(UPSERT_ALERTS, [JSON.stringify(closing)]);
  if (open.length > 0) await c.query(UPSERT_ALERTS, [JSON.stringify(open)]);
  if (b.audit.length > 0) await c.query(INSERT_AUDIT, [JSON.stringify(b.audit)]);
  if (b.attempts.size > 0) await c.query(UPSERT_ATTEMPTS, [JSON.stringify([...b.attempts.values()])]);
  const upserts: TimerTableRow[] = [];
  const deletes: string[] = [];
  for (const [id, t] of b.timers)
    if (t) upserts.push(t);
    else deletes.push(id);
  if (upserts.length > 0) await c.query(UPSERT_TIMERS, [JSON.stringify(upserts)]);
  if (deletes.length > 0) await c.query("DELETE FROM timers WHERE id = ANY($1::text[])", [deletes]);
  if (b.meta)
    await c.query(UPSERT_META, [
      partition,
      b.meta.rules_position,
      b.meta.rules_updated_at,
      b.meta.audit_head,
    ]);
  // With the effects above, so a command's answer commits exactly when they do (header).
  if (b.answers.size > 0) await writeAnswers(c, token, [...b.answers]);
  // Last: the append locks the partition's feed head until the commit (change-feed.ts, "Use").
  if (b.changes.length > 0)
    await appendChanges(
      c,
      partition,
      [...b.changes].sort((x, y) => x.seq - y.seq),
    );
}
