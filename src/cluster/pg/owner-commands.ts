/**
 * Staff commands carried to a partition's owner. In cluster mode a site's alerts change only on the
 * node holding its partition's lease (leases.ts), but a person may be connected to any node: their
 * accept, reject, attend, resolve, comment or delivery receipt for an alert of a partition another
 * node owns goes through PostgreSQL to that owner, which runs it on its alert manager and writes the
 * answer back. Both directions are a row in `owner_commands` (migration 7) and a notification that
 * carries only ids.
 *
 * The path of a command:
 *
 * 1. Send (any node): one statement inserts the row (`pending`, a `deadline` of PostgreSQL's
 *    `clock_timestamp()` plus the sender's timeout) and notifies `ata_owner_commands` with the
 *    partition. A retry with the same command id inserts nothing (the id is the primary key) and
 *    waits for the same row's answer; the same id with another command is refused (`conflict`).
 * 2. Pick-up (the owner): in a `leases.fenced` transaction with the owner's token, pending rows of the
 *    partition before their deadline become `taken` with that token (`FOR UPDATE SKIP LOCKED`, in
 *    send order), and so do rows still taken and unanswered under this or an older token (below:
 *    nothing of them committed). Only the current lease holder can commit this: a stale owner's
 *    fence fails, so a command sent while the lease moves is taken by whoever holds it then.
 * 3. Execute: the handler runs (synchronously, as the manager's methods do) only after the pick-up
 *    committed and while `leases.holds` still says the lease is this node's, inside one step of the
 *    partition's state (`step`: the alert manager's `batch`) together with its answer: its result,
 *    or the `ApiError` it threw (its own writes taken back), is recorded in that step
 *    (`PgPartitionState.answer`).
 * 4. Answer: the state's flush round that writes the step's rows also turns the command's row
 *    `answered` (only if it is still `taken` with this token) and notifies `ata_owner_answers` with
 *    the id, in its one fenced transaction (partition-state.ts `writeAnswers`); a command that
 *    changed nothing is a step with only its answer, flushed in a round of its own. So the answer is
 *    never ahead of the effects, nor they of it. The sender reads the row. NOTIFY is delivered only
 *    once its transaction commits, and never if it rolls back ("if a NOTIFY is executed inside a
 *    transaction, the notify events are not delivered until and unless the transaction is
 *    committed", PostgreSQL 15 docs, NOTIFY), so a sender is never woken for an answer it cannot
 *    read.
 *
 * Timeouts the sender can trust. At its timeout the sender itself ends a command nobody has picked
 * up: `UPDATE ... SET state = 'answered' (unavailable) WHERE id = $1 AND state = 'pending'`. The
 * pick-up's UPDATE and this one take the same row lock; whichever comes second waits for the first
 * to commit and then re-checks its WHERE against the row as the first left it (Read Committed,
 * PostgreSQL 15 docs, 13.2.1), so exactly one of them wins. If the sender's wins, the answer is
 * `unavailable` (503) and the command is never executed: no owner can take a row that is no longer
 * pending (and none takes one past its deadline even if the sender died before ending it). If the
 * owner's wins, the command is taken and the sender does not answer `unavailable`: it reads the
 * answer, or, if none has arrived by then, answers `outcome_unknown` (504: ask again with the same
 * id), and a send with the same id later returns the owner's answer once it is there.
 *
 * Exactly once. A command's effects and its answer commit in one fenced transaction (step 4), so
 * an unanswered row has no effects in PostgreSQL, and an answered one has exactly the effects its
 * answer describes. An owner lost before that commit (kill -9, its lease lost, a failed flush, a
 * drain past its bound) leaves the row `taken` with nothing of the command committed, and its fence
 * can never pass again once another token holds the partition: whoever serves the partition next
 * (the next owner, or this node taking it up again after a failed flush, under the same token)
 * takes the row again and carries it out, whatever its deadline. An owner lost after that commit
 * leaves the row answered. So whatever the sender retries (the id), the lease does (the fenced
 * pick-up) or the owner suffers, a command is carried out exactly once, unless the sender ended it
 * first, and its sender gets that one answer:
 *
 * - an answer with the alert, or with the handler's error code: executed exactly once, or refused
 *   with no effect; final (the same id gets it again);
 * - `unavailable`: nobody took it in time; never executed, and never will be; final;
 * - `outcome_unknown` (504): never from an owner, never final. The sender's own timeout came while
 *   the command was taken and not yet answered (the owner alive but slow, or lost and its partition
 *   not yet taken over): the command will be carried out once, by whoever serves the partition;
 *   or PostgreSQL or the sending node failed while it waited (whether it was even sent is then
 *   unknown). Either way, asking again with the same id gets the final answer. A person who instead repeats the action (a new id) may repeat a `comment` or a
 *   still-raised alert's `reject`, the two commands the manager does not make idempotent.
 *
 * A handover (node.ts: the partition given up voluntarily, its lease still held) `drain`s the
 * served partition instead of stopping it: no new pick-up, but the round in flight executes what it
 * took and its flush commits the answers before the lease is released; a command sent meanwhile
 * stays pending for the next owner.
 *
 * Latency: every node LISTENs on both channels on one connection it holds (never returned to the
 * pool, so nobody inherits the subscription), so a command and its answer each wait for one
 * notification, not for a poll. A slow poll (`pollMs`) covers a lost notification or a dropped
 * connection (it listens again after `reconnectMs`): each served partition picks up (rows left taken
 * included) and sweeps (a past-deadline row a dead sender left pending is ended `unavailable`), and
 * each waiting send reads its row.
 *
 * Retention: answered rows are deleted `retentionMs` after their answer (an hour by default). A send
 * with an id whose row was deleted is a new command; senders retry within seconds.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type pg from "pg";
import { z } from "zod";
import { AlertView } from "../../alerts/model.js";
import { ApiError, ERRORS, type ErrorCode } from "../../errors.js";
import {
  type ClientCommand,
  ClientMessage,
  runStaffCommand,
  type StaffActions,
  type StaffCommand,
  type StaffIdentity,
} from "../../staff/protocol.js";
import type { LostReason, PartitionLeases } from "./leases.js";
import { PgListener } from "./listener.js";
import type { PgMigration } from "./migrate.js";

export const OWNER_COMMANDS_MIGRATION: PgMigration = {
  version: 7,
  name: "owner_commands",
  sql: `
    CREATE TABLE owner_commands (
      id TEXT PRIMARY KEY,                     -- the sender's command id: a retry is this row again
      seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- pick-up order within a partition
      partition INTEGER NOT NULL CHECK (partition >= 0),
      command JSONB NOT NULL,                  -- an OwnerCommand
      state TEXT NOT NULL CHECK (state IN ('pending', 'taken', 'answered')),
      deadline TIMESTAMPTZ NOT NULL,           -- PostgreSQL's time: not taken after it
      token BIGINT,                            -- the lease's fencing token that took it
      answer JSONB,                            -- an OwnerAnswer
      created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
      taken_at TIMESTAMPTZ,
      answered_at TIMESTAMPTZ,
      CHECK ((state = 'answered') = (answer IS NOT NULL)),
      CHECK (state <> 'taken' OR token IS NOT NULL)
    );
    CREATE INDEX owner_commands_open ON owner_commands (partition, seq) WHERE state <> 'answered';
    CREATE INDEX owner_commands_answered_at ON owner_commands (answered_at) WHERE state = 'answered';
  `,
};

/** Payload: the partition a command was sent to. */
export const OWNER_COMMAND_CHANNEL = "ata_owner_commands";
/** Payload: the id of a command that was answered. */
export const OWNER_ANSWER_CHANNEL = "ata_owner_answers";

type CommandType = ClientCommand["type"];
type ProtocolMember = (typeof ClientMessage.options)[number];
type MemberOf<T extends string, M = ProtocolMember> = M extends { shape: { type: z.ZodLiteral<infer L> } }
  ? L extends T
    ? M
    : never
  : never;

/** The staff protocol's message of this type (found by its literal, not its place in the union). */
function protocolMember(type: CommandType): ProtocolMember {
  const member = ClientMessage.options.find((o) => o.shape.type.value === type);
  if (!member) throw new Error(`the staff protocol has no "${type}" command`);
  return member;
}

/**
 * What a command does: the staff protocol's own command schemas (their fields, limits and the
 * outcomes), less the request id, which is the sending connection's.
 */
export const OwnerCommandBody = z.discriminatedUnion("type", [
  (protocolMember("accept") as MemberOf<"accept">).omit({ id: true }),
  (protocolMember("reject") as MemberOf<"reject">).omit({ id: true }),
  (protocolMember("attend") as MemberOf<"attend">).omit({ id: true }),
  (protocolMember("resolve") as MemberOf<"resolve">).omit({ id: true }),
  (protocolMember("comment") as MemberOf<"comment">).omit({ id: true }),
  (protocolMember("received") as MemberOf<"received">).omit({ id: true }),
]);
export type OwnerCommandBody = z.infer<typeof OwnerCommandBody>;

/** The acting person, as the sending node verified them (src/staff/protocol.ts `StaffIdentity`). */
const Staff = z.strictObject({
  id: z.string().min(1),
  name: z.string(),
  role: z.string(),
  sites: z.array(z.string()),
  units: z.array(z.string()).nullable(),
}) satisfies z.ZodType<StaffIdentity>;

/** Unique across the cluster and across a sender's retries (e.g. node, connection and request id). */
export const CommandId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

/** A command as it crosses from the sending node to the owner (a boundary between processes). */
export const OwnerCommand = z.strictObject({
  id: CommandId,
  staff: Staff,
  command: OwnerCommandBody,
});
export type OwnerCommand = z.infer<typeof OwnerCommand>;

const ErrorCodeSchema = z.enum(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]);

/** The owner's answer as it crosses back. */
export const OwnerAnswer = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), alert: AlertView }),
  z.strictObject({
    ok: z.literal(false),
    error: z.strictObject({ code: ErrorCodeSchema, message: z.string(), details: z.unknown().optional() }),
  }),
]);
export type OwnerAnswer = z.infer<typeof OwnerAnswer>;

/** A staff connection's command (the protocol's, with the acting person) as it goes to the owner. */
export function toOwnerCommand(
  id: string,
  { id: _requestId, staff, ...command }: StaffCommand,
): OwnerCommand {
  return { id, staff, command };
}

/** Runs a command on the owner's alert manager: the handler a partition's owner serves with. */
export function applyCommand(alerts: StaffActions, { staff, command }: OwnerCommand): AlertView {
  return runStaffCommand(alerts, staff, command);
}

const MS = "* interval '1 millisecond'";

/** Inserts the command and wakes the owner, in one statement (one transaction); nothing on a retry. */
const SEND = `
  WITH ins AS (
    INSERT INTO owner_commands (id, partition, command, state, deadline)
    VALUES ($1, $2, $3::jsonb, 'pending', clock_timestamp() + $4::int ${MS})
    ON CONFLICT (id) DO NOTHING
    RETURNING partition),
  woken AS (SELECT pg_notify($5, partition::text) FROM ins)
  SELECT (SELECT count(*) FROM woken)::int AS inserted`;
const SAME = `
  SELECT partition = $2 AND command = $3::jsonb AS same FROM owner_commands WHERE id = $1`;
/** The sender's end of a command nobody took: it wins against the pick-up or loses, never both. */
const EXPIRE = `
  WITH ended AS (
    UPDATE owner_commands SET state = 'answered', answer = $2::jsonb, answered_at = clock_timestamp()
     WHERE id = $1 AND state = 'pending'
    RETURNING id),
  told AS (SELECT pg_notify($3, id) FROM ended)
  SELECT (SELECT count(*) FROM told)::int AS ended`;
const READ = "SELECT id, state, answer FROM owner_commands WHERE id = ANY($1::text[])";
/**
 * Inside the owner's fenced transaction: pending rows before their deadline, and rows left taken
 * and unanswered by an owner (of this or an older token) whose round never committed, so nothing of
 * the command is in PostgreSQL (header): those are taken again and carried out here, whatever their
 * deadline, since their sender was told to ask again.
 */
const PICK_UP = `
  UPDATE owner_commands AS o SET state = 'taken', token = $2, taken_at = clock_timestamp()
    FROM (SELECT id FROM owner_commands
           WHERE partition = $1
             AND ((state = 'pending' AND deadline > clock_timestamp()) OR (state = 'taken' AND token <= $2))
           ORDER BY seq LIMIT $3
             FOR UPDATE SKIP LOCKED) AS next
   WHERE o.id = next.id
  RETURNING o.id, o.seq, o.command`;
/** Inside the owner's flush round (fenced): only rows still taken with this token. */
const ANSWER = `
  UPDATE owner_commands AS o SET state = 'answered', answer = a.answer::jsonb, answered_at = clock_timestamp()
    FROM unnest($1::text[], $2::text[]) AS a(id, answer)
   WHERE o.id = a.id AND o.state = 'taken' AND o.token = $3
  RETURNING o.id`;
/** Inside the owner's fenced transaction: rows a dead sender left pending past their deadline. */
const SWEEP = `
  UPDATE owner_commands SET state = 'answered', answered_at = clock_timestamp(), answer = $2::jsonb
   WHERE partition = $1 AND state = 'pending' AND deadline <= clock_timestamp()
  RETURNING id`;
const TELL = "SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id";

/**
 * Writes answers in the owner's flush round (partition-state.ts, inside its fenced transaction) and
 * wakes their senders when it commits: only rows still taken with this token.
 */
export async function writeAnswers(
  c: pg.PoolClient,
  token: number,
  answers: readonly (readonly [string, OwnerAnswer])[],
): Promise<void> {
  const { rows } = await c.query<{ id: string }>(ANSWER, [
    answers.map((a) => a[0]),
    answers.map((a) => JSON.stringify(a[1])),
    token,
  ]);
  if (rows.length > 0) await c.query(TELL, [OWNER_ANSWER_CHANNEL, rows.map((r) => r.id)]);
}
const PRUNE = `
  DELETE FROM owner_commands WHERE state = 'answered' AND answered_at < now() - $1::bigint ${MS}`;

type Refusal = Extract<OwnerAnswer, { ok: false }>;

function refusal(code: ErrorCode, message: string): Refusal {
  return { ok: false, error: { code, message } };
}

const NOT_TAKEN = refusal(
  "unavailable",
  "no node owning the alert's site took the command in time; it was not carried out and never will be",
);

export interface OwnerCommandsOptions {
  pool: pg.Pool;
  /** This node's leases: needed to serve partitions (the fence), not to send. */
  leases?: PartitionLeases;
  /** Reads and sweeps even without a notification this often. */
  pollMs?: number;
  /** Wait before opening a lost listening connection again. */
  reconnectMs?: number;
  /** Commands taken per pick-up. */
  batch?: number;
  /** Answered rows are deleted this long after their answer (0: never by this node). */
  retentionMs?: number;
  pruneEveryMs?: number;
}

export interface SendOptions {
  /** How long the command may wait for an owner to take it; then `unavailable`, never executed. */
  timeoutMs: number;
}

export interface ServeOptions {
  /** The lease's fencing token, from `acquired`: the state's. */
  token: number;
  /** Runs a command on the partition's state (`applyCommand` on its alert manager); may throw ApiError. */
  handler: (command: OwnerCommand) => AlertView;
  /**
   * Runs `fn` as one outermost step of the partition (the alert manager's `batch`, so that what the
   * command announces and calls waits for that step's flush): the command and its answer.
   */
  step: <T>(fn: () => T) => T;
  /** The partition's state (`PgPartitionState`), whose flush rounds write the answers. */
  state: AnsweringState;
}

/** What the served partition needs of its state: answers written in its flush rounds. */
export interface AnsweringState {
  readonly token: number;
  /** Inside a step: the command's answer, committed with the step's effects. */
  answer(commandId: string, answer: OwnerAnswer): void;
  /** Resolves once every step so far has committed; rejects once the state is lost. */
  flushed(): Promise<void>;
}

export interface OwnerCommandsEvents {
  /** A pick-up, an answer, a read or the listening connection failed, or a handler threw a non-ApiError. */
  error: [err: Error];
}

export interface ServedPartition {
  readonly partition: number;
  readonly token: number;
  /** Takes no more commands; resolves once the round in flight (if any) has ended. */
  stop(): Promise<void>;
  /**
   * For a handover: takes no more commands, but the round in flight runs to its end, so what it took
   * is executed and answered (its flush committed); resolves then. Commands sent meanwhile stay pending,
   * for the partition's next owner to take, or `unavailable` at their sender's timeout. `stop()`
   * still ends it at once (the drain took too long, or the lease was lost).
   */
  drain(): Promise<void>;
}

interface Waiter {
  resolve(alert: AlertView): void;
  reject(err: ApiError): void;
}

/**
 * A node's end of the owner-command path: `send` on any node, `serve` for each partition it owns.
 * Constructing does nothing; `start()` listens; `stop()` undoes it.
 */
export class OwnerCommands extends EventEmitter<OwnerCommandsEvents> {
  private readonly pool: pg.Pool;
  private readonly leases: PartitionLeases | undefined;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly retentionMs: number;
  private readonly pruneEveryMs: number;
  private running = false;
  private readonly listener: PgListener;
  private pollTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  /** Command id -> the sends on this node waiting for its answer. */
  private readonly waiting = new Map<string, Set<Waiter>>();
  private readonly served = new Map<number, Served>();
  private checking: Promise<void> | null = null;
  private checkAgain = new Set<string>();

  constructor(o: OwnerCommandsOptions) {
    super();
    this.pool = o.pool;
    this.leases = o.leases;
    this.pollMs = o.pollMs ?? 1000;
    this.batch = o.batch ?? 100;
    this.retentionMs = o.retentionMs ?? 60 * 60 * 1000;
    this.pruneEveryMs = o.pruneEveryMs ?? 10 * 60 * 1000;
    this.listener = new PgListener({
      pool: this.pool,
      channels: [OWNER_COMMAND_CHANNEL, OWNER_ANSWER_CHANNEL],
      reconnectMs: o.reconnectMs ?? 1000,
      onNotification: (msg) => {
        if (!msg.payload) return;
        if (msg.channel === OWNER_COMMAND_CHANNEL) this.served.get(Number(msg.payload))?.wake(false);
        else if (msg.channel === OWNER_ANSWER_CHANNEL && this.waiting.has(msg.payload))
          this.check([msg.payload]);
      },
      // Listening again: what was announced while away is read now.
      onListening: (reconnected) => {
        if (reconnected) this.poll();
      },
      onError: (err) => this.fail(err),
    });
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.leases?.on("lost", this.onLost);
    try {
      await this.listener.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.pollTimer = setInterval(() => this.poll(), this.pollMs);
    if (this.pruneEveryMs > 0 && this.retentionMs > 0)
      this.pruneTimer = setInterval(() => void this.prune(), this.pruneEveryMs);
  }

  /** Stops serving every partition; sends still waiting are told `outcome_unknown` (ask again with the id). */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of [this.pollTimer, this.pruneTimer]) if (t) clearInterval(t);
    this.pollTimer = this.pruneTimer = null;
    this.leases?.off("lost", this.onLost);
    await Promise.all([...this.served.values()].map((s) => s.stop()));
    await this.checking?.catch(() => undefined);
    for (const [, waiters] of this.waiting)
      for (const w of waiters)
        w.reject(
          new ApiError(
            "outcome_unknown",
            "this node stopped before the answer arrived; ask again with the same id",
          ),
        );
    this.waiting.clear();
    this.listener.stop();
  }

  /**
   * Carries the command to the partition's owner and resolves with the alert as the command left
   * it; rejects with the owner's ApiError, with `unavailable` when no owner took it within the
   * timeout (it never will), or with `outcome_unknown` (header).
   */
  async send(partition: number, command: OwnerCommand, { timeoutMs }: SendOptions): Promise<AlertView> {
    if (!this.running) throw new ApiError("unavailable", "the owner-command path is not started");
    const parsed = OwnerCommand.safeParse(command);
    if (!parsed.success)
      throw new ApiError(
        "invalid_body",
        "the command is malformed",
        parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      );
    const cmd = parsed.data;
    if (!Number.isSafeInteger(partition) || partition < 0)
      throw new RangeError(`partition ${partition} is not a partition number`);
    if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1))
      throw new RangeError(`timeoutMs ${timeoutMs} is out of range`);
    const body = JSON.stringify(cmd);

    // Waiting before inserting, so an answer that comes at once is not missed.
    let waiter!: Waiter;
    const answered = new Promise<AlertView>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    answered.catch(() => undefined);
    this.wait(cmd.id, waiter);
    let timer: NodeJS.Timeout | undefined;
    try {
      const { rows } = await this.pool.query<{ inserted: number }>(SEND, [
        cmd.id,
        partition,
        body,
        Math.ceil(timeoutMs),
        OWNER_COMMAND_CHANNEL,
      ]);
      if (rows[0]?.inserted !== 1) {
        const { rows: same } = await this.pool.query<{ same: boolean }>(SAME, [cmd.id, partition, body]);
        if (same[0] && !same[0].same)
          throw new ApiError("conflict", `command id ${cmd.id} was used for another command`);
        // A retry: its row may be answered already.
        this.check([cmd.id]);
      }
      const expired = new Promise<AlertView>((resolve, reject) => {
        timer = setTimeout(() => {
          this.expire(cmd.id).then(resolve, reject);
        }, timeoutMs);
      });
      expired.catch(() => undefined);
      return await Promise.race([answered, expired]);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      // The insert or the expiry may or may not have committed: only the row knows.
      this.fail(err as Error);
      throw new ApiError(
        "outcome_unknown",
        "PostgreSQL did not answer while the command was sent; ask again with the same id",
      );
    } finally {
      clearTimeout(timer);
      this.unwait(cmd.id, waiter);
    }
  }

  /**
   * Serves a partition this node owns with this token: takes its commands, runs the handler, answers.
   * Stopped by the returned handle, by `stop()`, or when the leases report the partition lost.
   */
  serve(partition: number, options: ServeOptions): ServedPartition {
    if (!this.leases) throw new Error("serving a partition needs the node's leases");
    if (!this.running) throw new Error("the owner-command path is not started");
    if (this.served.has(partition)) throw new Error(`partition ${partition} is already served`);
    if (options.state.token !== options.token)
      throw new Error(`partition ${partition}: the state's token is not the served token`);
    const s = new Served(this, this.leases, partition, options, this.batch);
    this.served.set(partition, s);
    s.start();
    return s;
  }

  /**
   * The staff side's way to the owners (`SendToOwner`, src/cluster/staff-alerts.ts): each command
   * gets a new id, `<nodeId>:<uuid>`, unique in the cluster; the request id is the connection's own.
   */
  sender(
    nodeId: string,
    timeoutMs: number,
  ): (partition: number, command: StaffCommand) => Promise<AlertView> {
    return (partition, command) =>
      this.send(partition, toOwnerCommand(`${nodeId}:${randomUUID()}`, command), { timeoutMs });
  }

  /** Deletes answered rows past the retention; errors are reported, not thrown. */
  async prune(): Promise<number> {
    try {
      const r = await this.pool.query(PRUNE, [this.retentionMs]);
      return r.rowCount ?? 0;
    } catch (err) {
      this.fail(err as Error);
      return 0;
    }
  }

  /** @internal Served's end. */
  forget(s: Served): void {
    if (this.served.get(s.partition) === s) this.served.delete(s.partition);
  }

  /** @internal */
  fail(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  private readonly onLost = (partition: number, _reason: LostReason): void => {
    void this.served.get(partition)?.stop();
  };

  private wait(id: string, w: Waiter): void {
    const set = this.waiting.get(id) ?? new Set();
    set.add(w);
    this.waiting.set(id, set);
  }

  private unwait(id: string, w: Waiter): void {
    const set = this.waiting.get(id);
    set?.delete(w);
    if (set?.size === 0) this.waiting.delete(id);
  }

  /** The sender's timeout: end the command if nobody took it, else take what there is. */
  private async expire(id: string): Promise<AlertView> {
    const { rows } = await this.pool.query<{ ended: number }>(EXPIRE, [
      id,
      JSON.stringify(NOT_TAKEN),
      OWNER_ANSWER_CHANNEL,
    ]);
    if (rows[0]?.ended === 1) throw answerError(NOT_TAKEN);
    const { rows: row } = await this.pool.query<{ state: string; answer: unknown }>(READ, [[id]]);
    const r = row[0];
    if (r?.state === "answered") {
      const answer = OwnerAnswer.parse(r.answer);
      if (answer.ok) return answer.alert;
      throw answerError(answer);
    }
    throw new ApiError(
      "outcome_unknown",
      "the alert's owner took the command and carries it out once, but its answer has not arrived yet; the alert shows the outcome, and asking again with the same id gives the answer",
    );
  }

  /** Reads these commands' rows and settles the sends whose answer is there; one read at a time. */
  private check(ids: Iterable<string>): void {
    for (const id of ids) this.checkAgain.add(id);
    if (this.checking) return;
    this.checking = (async () => {
      while (this.checkAgain.size > 0) {
        const batch = [...this.checkAgain].filter((id) => this.waiting.has(id));
        this.checkAgain.clear();
        if (batch.length === 0) continue;
        const { rows } = await this.pool.query<{ id: string; state: string; answer: unknown }>(READ, [batch]);
        for (const r of rows) {
          if (r.state !== "answered") continue;
          const answer = OwnerAnswer.safeParse(r.answer);
          const waiters = [...(this.waiting.get(r.id) ?? [])];
          if (!answer.success) {
            const err = new Error(`owner command ${r.id}: the answer is malformed: ${answer.error.message}`);
            this.fail(err);
            for (const w of waiters) w.reject(new ApiError("internal"));
            continue;
          }
          for (const w of waiters) settle(w, answer.data);
        }
      }
    })()
      .catch((err: Error) => this.fail(err))
      .finally(() => {
        this.checking = null;
        if (this.checkAgain.size > 0) this.check([]);
      });
  }

  private poll(): void {
    if (!this.running) return;
    for (const s of this.served.values()) s.wake(true);
    if (this.waiting.size > 0) this.check(this.waiting.keys());
    this.listener.retry();
  }
}

function answerError(a: Refusal): ApiError {
  return new ApiError(a.error.code, a.error.message, a.error.details);
}

function settle(w: Waiter, a: OwnerAnswer): void {
  if (a.ok === true) w.resolve(a.alert);
  else w.reject(answerError(a));
}

/** One served partition: rounds of pick-up, execution and answer, one at a time. */
class Served implements ServedPartition {
  readonly token: number;
  private running = false;
  /** Handing over: no more pick-ups, the round in flight finishes. */
  private draining = false;
  private round: Promise<void> | null = null;
  private again = false;
  private sweep = true;

  constructor(
    private readonly owner: OwnerCommands,
    private readonly leases: PartitionLeases,
    readonly partition: number,
    private readonly options: ServeOptions,
    private readonly batch: number,
  ) {
    this.token = options.token;
  }

  start(): void {
    this.running = true;
    // A new owner looks at once: commands that waited for it, and what its predecessor left taken.
    this.wake(true);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.owner.forget(this);
    await this.round?.catch(() => undefined);
  }

  async drain(): Promise<void> {
    this.draining = true;
    await this.round?.catch(() => undefined);
    this.running = false;
    this.owner.forget(this);
  }

  /** A notification (sweep false) or the poll (sweep true): run a round, or another after this one. */
  wake(sweep: boolean): void {
    if (sweep) this.sweep = true;
    if (!this.running || this.draining) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = (async () => {
      do {
        this.again = false;
        if (!this.running) return;
        if (!this.leases.holds(this.partition, this.token)) {
          // Lost before `lost` reached this partition (or while its state loaded): a later owner
          // of the same partition on this node serves it anew.
          this.running = false;
          this.owner.forget(this);
          return;
        }
        const more = await this.once();
        if (more) this.again = true;
      } while (this.again && this.running && !this.draining);
    })()
      .catch((err: Error) => this.owner.fail(err))
      .finally(() => {
        this.round = null;
      });
  }

  /**
   * One pick-up, its executions and their answers; true when the batch was full. Each command and its
   * answer are one step of the partition's state, so its flush round commits both or neither; a
   * round that fails loses the state (partition-state.ts), and the rows stay taken for the next
   * owner, or this node's next service of the partition, to carry out.
   */
  private async once(): Promise<boolean> {
    const sweep = this.sweep;
    this.sweep = false;
    const { partition: p, token } = this;
    let taken: { id: string; seq: string; command: unknown }[];
    try {
      taken = await this.leases.fenced(p, token, async (c) => {
        if (sweep) {
          const { rows } = await c.query<{ id: string }>(SWEEP, [p, JSON.stringify(NOT_TAKEN)]);
          if (rows.length > 0) await c.query(TELL, [OWNER_ANSWER_CHANNEL, rows.map((r) => r.id)]);
        }
        const { rows } = await c.query<{ id: string; seq: string; command: unknown }>(PICK_UP, [
          p,
          token,
          this.batch,
        ]);
        return rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      });
    } catch (err) {
      if (sweep) this.sweep = true;
      throw err;
    }

    const { step, state } = this.options;
    let executed = 0;
    for (const row of taken) {
      // Taken but not run (stopped, or the lease's local deadline passed): left taken, so the next
      // owner carries it out.
      if (!this.running || !this.leases.holds(p, token)) break;
      try {
        step(() => state.answer(row.id, this.execute(row.id, row.command)));
      } catch (err) {
        // The state took no step (lost or closed, partition-state.ts): nothing of the command ran
        // here, and it stays taken for whoever serves the partition next.
        if ((err as { code?: unknown }).code !== "partition_lost") this.owner.fail(err as Error);
        break;
      }
      executed++;
    }
    if (executed === 0) return false;
    // The round that commits the effects writes the answers and wakes their senders.
    await state.flushed();
    return taken.length === this.batch;
  }

  private execute(id: string, raw: unknown): OwnerAnswer {
    const parsed = OwnerCommand.safeParse(raw);
    if (!parsed.success)
      return refusal("invalid_body", `command ${id} is malformed: ${parsed.error.message}`);
    try {
      // A step of its own inside the command's: a throw takes back all the handler did, and the
      // refusal is still answered.
      return { ok: true, alert: this.options.step(() => this.options.handler(parsed.data)) };
    } catch (err) {
      if (err instanceof ApiError)
        return {
          ok: false,
          error: {
            code: err.code,
            message: err.message,
            ...(err.details === undefined ? {} : { details: err.details }),
          },
        };
      this.owner.fail(err as Error);
      return refusal("internal", ERRORS.internal.text);
    }
  }
}
