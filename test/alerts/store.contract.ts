/**
 * The contract every AlertStore passes (as the time-series stores share
 * test/store/timeseries.contract.ts and the baseline repositories
 * test/reports/baseline-repository.contract.ts): the SQLite store runs it now, and a PostgreSQL one
 * (a partition owner's working set, flushed per step in a fenced transaction) must run it too, so the
 * alert lifecycle above the interface sees one behaviour. Each test gets a fresh, empty store.
 * The HTTP API's history (AlertHistory) has its own suite below, reading what a store wrote.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  AlertHistory,
  AlertRow,
  AlertStore,
  NewAttempt,
  NewAuditEntry,
} from "../../src/alerts/store.js";

export interface AlertStoreContractSubject {
  store: AlertStore;
  cleanup(): Promise<void>;
}

const T0 = Date.parse("2026-11-02T21:14:05.250Z");

/** An alert row as a rule raises it (other contract suites write alerts too). */
export function alertRow(over: Partial<AlertRow> = {}): AlertRow {
  const id = over.id ?? "al_1";
  return {
    id,
    dedupe_key: "fall|dev-1|res-7",
    open: 1,
    type: "fall",
    priority: "high",
    state: "raised",
    message_da: "Fald i stue 12",
    message_en: "Fall in room 12",
    rule_id: "fall-detected",
    site_id: "home-a",
    unit_id: "nord",
    room_id: "r12",
    resident_ref: "res-7",
    device_id: "dev-1",
    count: 1,
    first_event_seq: 41,
    last_event_seq: 41,
    last_event_type: "fall.detected",
    raised_at: T0,
    updated_at: T0,
    accepted_by: null,
    accepted_by_name: null,
    accepted_at: null,
    attending_at: null,
    resolved_at: null,
    outcome: null,
    level: 0,
    undelivered: 1,
    delivered_to: "[]",
    rejected_by: "[]",
    ladder: JSON.stringify([{ to: ["unit"], after: 60_000 }]),
    ...over,
  };
}

/** The audit entry of an alert's raise (or of `over`), as its rule would write it. */
export function audit(row: AlertRow, over: Partial<NewAuditEntry> = {}): NewAuditEntry {
  return {
    alertId: row.id,
    at: T0,
    action: "raised",
    actor: { id: `rule:${row.rule_id}`, name: `rule ${row.rule_id}` },
    reason: null,
    stateAfter: row.state,
    siteId: row.site_id,
    unitId: row.unit_id,
    data: null,
    ...over,
  };
}

/** A pending channel attempt for an alert (or `over`). */
export function attempt(alertId: string, over: Partial<NewAttempt> = {}): NewAttempt {
  return {
    alertId,
    channel: "push",
    recipientId: "phone-1",
    recipientName: "Mette",
    staffId: "s1",
    level: 0,
    reason: "level",
    status: "pending",
    at: T0,
    ...over,
  };
}

export function alertStoreContract(name: string, factory: () => Promise<AlertStoreContractSubject>): void {
  describe(`AlertStore contract: ${name}`, () => {
    let subject: AlertStoreContractSubject;
    let store: AlertStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    it("gives back an inserted alert exactly, and applies an update's columns with its time", () => {
      const row = alertRow();
      store.step(() => store.insert(row));
      expect(store.alert(row.id)).toEqual(row);
      expect(store.alert("al_none")).toBeUndefined();

      store.step(() =>
        store.update(row.id, { state: "accepted", accepted_by: "s1", accepted_at: T0 + 5 }, T0 + 5),
      );
      expect(store.alert(row.id)).toEqual({
        ...row,
        state: "accepted",
        accepted_by: "s1",
        accepted_at: T0 + 5,
        updated_at: T0 + 5,
      });
      // No columns: only the time moves.
      store.step(() => store.update(row.id, {}, T0 + 9));
      expect(store.alert(row.id)?.updated_at).toBe(T0 + 9);
      expect(store.alert(row.id)?.state).toBe("accepted");
    });

    it("finds by dedupe key only the open alert: a closed one with the same key is not found, a new open one is", () => {
      const first = alertRow({ id: "al_1" });
      store.step(() => store.insert(first));
      expect(store.openByDedupeKey(first.dedupe_key)?.id).toBe("al_1");

      store.step(() => store.update("al_1", { state: "resolved", open: 0, resolved_at: T0 + 1 }, T0 + 1));
      expect(store.openByDedupeKey(first.dedupe_key)).toBeUndefined();
      expect(store.alert("al_1")?.state).toBe("resolved");

      store.step(() => store.insert(alertRow({ id: "al_2", raised_at: T0 + 2, updated_at: T0 + 2 })));
      expect(store.openByDedupeKey(first.dedupe_key)?.id).toBe("al_2");
      // Suppressed (raised in maintenance) is closed from the start.
      store.step(() =>
        store.insert(alertRow({ id: "al_3", dedupe_key: "fall|dev-2|", open: 0, state: "suppressed" })),
      );
      expect(store.openByDedupeKey("fall|dev-2|")).toBeUndefined();
      expect(store.openByDedupeKey("fall|dev-9|")).toBeUndefined();
    });

    it("lists open alerts oldest raise first, those awaiting acceptance, and those a person in the room attends", () => {
      store.step(() => {
        store.insert(alertRow({ id: "al_b", dedupe_key: "b", raised_at: T0 + 20, room_id: "r12" }));
        store.insert(
          alertRow({ id: "al_a", dedupe_key: "a", raised_at: T0 + 10, room_id: "r12", state: "accepted" }),
        );
        store.insert(
          alertRow({ id: "al_c", dedupe_key: "c", raised_at: T0 + 30, room_id: "r12", state: "attending" }),
        );
        store.insert(alertRow({ id: "al_d", dedupe_key: "d", raised_at: T0 + 5, room_id: "r14" }));
        store.insert(
          alertRow({ id: "al_e", dedupe_key: "e", raised_at: T0 + 1, open: 0, state: "cancelled" }),
        );
        store.insert(
          alertRow({ id: "al_f", dedupe_key: "f", raised_at: T0 + 2, site_id: "home-b", room_id: "r12" }),
        );
      });
      expect(store.openAlerts().map((r) => r.id)).toEqual(["al_f", "al_d", "al_a", "al_b", "al_c"]);
      expect(
        store
          .awaitingAcceptance()
          .map((r) => r.id)
          .sort(),
      ).toEqual(["al_b", "al_d", "al_f"]);
      expect(
        store
          .awaitingPresence("home-a", "r12")
          .map((r) => r.id)
          .sort(),
      ).toEqual(["al_a", "al_b"]);
      expect(store.awaitingPresence("home-a", "r99")).toEqual([]);
    });

    it("numbers audit entries in increasing order and gives an alert's audit back in that order, as it was written", () => {
      const a = alertRow({ id: "al_a", dedupe_key: "a" });
      const b = alertRow({ id: "al_b", dedupe_key: "b", site_id: "home-b", unit_id: "syd" });
      expect(store.head()).toBe(0);
      const ids: number[] = [];
      store.step(() => {
        store.insert(a);
        store.insert(b);
        ids.push(store.appendAudit(audit(a)));
        ids.push(store.appendAudit(audit(b)));
      });
      store.step(() => {
        ids.push(
          store.appendAudit(
            audit(a, {
              at: T0 + 1500,
              action: "notified",
              actor: { id: "channel:push", name: "push" },
              reason: "level 0: Mette",
              data: { channel: "push", level: 0, attempts: [1, 2] },
            }),
          ),
        );
      });
      store.step(() => {
        ids.push(store.appendAudit(audit(a, { at: T0 + 9000, action: "accepted", stateAfter: "accepted" })));
      });
      for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
      expect(store.head()).toBe(ids[3]);

      expect(store.auditOf("al_a")).toEqual([
        {
          id: ids[0],
          alertId: "al_a",
          at: "2026-11-02T21:14:05.250Z",
          action: "raised",
          actor: { id: "rule:fall-detected", name: "rule fall-detected" },
          reason: null,
          stateAfter: "raised",
          data: null,
        },
        {
          id: ids[2],
          alertId: "al_a",
          at: "2026-11-02T21:14:06.750Z",
          action: "notified",
          actor: { id: "channel:push", name: "push" },
          reason: "level 0: Mette",
          stateAfter: "raised",
          data: { channel: "push", level: 0, attempts: [1, 2] },
        },
        {
          id: ids[3],
          alertId: "al_a",
          at: "2026-11-02T21:14:14.250Z",
          action: "accepted",
          actor: { id: "rule:fall-detected", name: "rule fall-detected" },
          reason: null,
          stateAfter: "accepted",
          data: null,
        },
      ]);
      expect(store.auditOf("al_none")).toEqual([]);

      // Resume: after a seq, for the client's sites, in order, at most the limit.
      expect(store.auditAfter(0, ["home-a"], 10).map((e) => e.id)).toEqual([ids[0], ids[2], ids[3]]);
      expect(store.auditAfter(ids[0]!, ["home-a", "home-b"], 10)).toEqual([
        { id: ids[1], alert_id: "al_b", action: "raised", actor_name: "rule fall-detected", reason: null },
        { id: ids[2], alert_id: "al_a", action: "notified", actor_name: "push", reason: "level 0: Mette" },
        { id: ids[3], alert_id: "al_a", action: "accepted", actor_name: "rule fall-detected", reason: null },
      ]);
      expect(store.auditAfter(0, ["home-a", "home-b"], 2).map((e) => e.id)).toEqual([ids[0], ids[1]]);
      expect(store.auditAfter(ids[3]!, ["home-a"], 10)).toEqual([]);
      expect(store.auditAfter(0, [], 10)).toEqual([]);
    });

    it("keeps nothing of a step that throws, throws its error on, and goes on working", () => {
      const row = alertRow();
      const boom = new Error("disk full at commit");
      expect(() =>
        store.step(() => {
          store.insert(row);
          store.appendAudit(audit(row));
          store.recordAttempt(attempt(row.id));
          throw boom;
        }),
      ).toThrow(boom);
      expect(store.alert(row.id)).toBeUndefined();
      expect(store.openByDedupeKey(row.dedupe_key)).toBeUndefined();
      expect(store.openAlerts()).toEqual([]);
      expect(store.auditOf(row.id)).toEqual([]);
      expect(store.head()).toBe(0);
      expect(store.pendingAttempts()).toEqual([]);

      const seq = store.step(() => {
        store.insert(row);
        return store.appendAudit(audit(row));
      });
      expect(store.alert(row.id)).toEqual(row);
      expect(store.head()).toBe(seq);
    });

    it("takes back a nested step that throws and keeps the outer step's writes, before and after it", () => {
      const a = alertRow({ id: "al_a", dedupe_key: "a" });
      const b = alertRow({ id: "al_b", dedupe_key: "b" });
      const result = store.step(() => {
        store.insert(a);
        const first = store.appendAudit(audit(a));
        try {
          store.step(() => {
            store.insert(b);
            store.appendAudit(audit(b));
            store.update("al_a", { level: 1 }, T0 + 1);
            store.recordAttempt(attempt("al_a"));
            throw new Error("a channel could not say whom it reaches");
          });
        } catch {
          // the outer step goes on
        }
        // Inside the outer step the nested writes are already gone.
        expect(store.alert("al_b")).toBeUndefined();
        expect(store.alert("al_a")?.level).toBe(0);
        const second = store.step(() => store.appendAudit(audit(a, { action: "escalated", at: T0 + 2 })));
        return [first, second];
      });
      expect(result[1]).toBeGreaterThan(result[0]!);
      expect(store.alert("al_a")).toEqual(a);
      expect(store.alert("al_b")).toBeUndefined();
      expect(store.auditOf("al_a").map((e) => [e.id, e.action])).toEqual([
        [result[0], "raised"],
        [result[1], "escalated"],
      ]);
      expect(store.auditOf("al_b")).toEqual([]);
      expect(store.pendingAttempts()).toEqual([]);
      expect(store.head()).toBe(result[1]);
    });

    it("gives the attempts due again: pending ones of alerts still awaiting acceptance, in the order recorded", () => {
      const waiting = alertRow({ id: "al_w", dedupe_key: "w" });
      const taken = alertRow({ id: "al_t", dedupe_key: "t", state: "accepted" });
      const closed = alertRow({ id: "al_c", dedupe_key: "c", state: "cancelled", open: 0 });
      const ids: Record<string, number> = {};
      store.step(() => {
        store.insert(waiting);
        store.insert(taken);
        store.insert(closed);
        ids.first = store.recordAttempt(attempt("al_w", { at: T0 + 10 }));
        ids.sent = store.recordAttempt(
          attempt("al_w", { channel: "paging", recipientId: "dect-4", status: "sent" }),
        );
        ids.taken = store.recordAttempt(attempt("al_t"));
        ids.closed = store.recordAttempt(attempt("al_c"));
        ids.second = store.recordAttempt(
          attempt("al_w", { channel: "webhook", recipientId: "webhook", staffId: null, at: T0 + 20 }),
        );
        ids.answered = store.recordAttempt(attempt("al_w", { recipientId: "phone-2", at: T0 + 30 }));
      });
      expect(ids.second).toBeGreaterThan(ids.first!);
      store.step(() => store.setAttemptStatus(ids.answered!, "delivered", "receipt from the phone", T0 + 40));

      const due = store.pendingAttempts();
      expect(due.map((a) => a.id)).toEqual([ids.first, ids.second]);
      expect(due[0]).toMatchObject({
        id: ids.first,
        alert_id: "al_w",
        channel: "push",
        recipient_id: "phone-1",
        recipient_name: "Mette",
        staff_id: "s1",
        level: 0,
        reason: "level",
        status: "pending",
        tries: 1,
      });
      expect(due[1]).toMatchObject({ channel: "webhook", staff_id: null });

      // Made once more: counted, still due until a channel answers.
      store.step(() => store.countRetry(ids.first!, T0 + 50));
      expect(store.attempt(ids.first!)).toMatchObject({ tries: 2, status: "pending" });
      store.step(() => store.setAttemptStatus(ids.first!, "failed", "410 gone", T0 + 60));
      expect(store.pendingAttempts().map((a) => a.id)).toEqual([ids.second]);
      // A channel that retries puts it back to pending.
      store.step(() => store.setAttemptStatus(ids.first!, "pending", "retrying in 30 s", T0 + 70));
      expect(store.pendingAttempts().map((a) => a.id)).toEqual([ids.first, ids.second]);
      // Accepted: nothing of it is due any more.
      store.step(() => store.update("al_w", { state: "accepted" }, T0 + 80));
      expect(store.pendingAttempts()).toEqual([]);
      expect(store.attempt(999_999)).toBeUndefined();
    });

    it("marks a person's console attempts delivered on their screen's receipt, once", () => {
      const row = alertRow();
      const ids: number[] = [];
      store.step(() => {
        store.insert(row);
        ids.push(
          store.recordAttempt(attempt(row.id, { channel: "console", recipientId: "s1", staffId: "s1" })),
        );
        ids.push(
          store.recordAttempt(attempt(row.id, { channel: "console", recipientId: "s2", staffId: "s2" })),
        );
        ids.push(store.recordAttempt(attempt(row.id, { channel: "push", staffId: "s1" })));
        ids.push(
          store.recordAttempt(
            attempt(row.id, {
              channel: "console",
              recipientId: "s1",
              staffId: "s1",
              reason: "renotify",
              status: "sent",
            }),
          ),
        );
      });
      expect(store.step(() => store.confirmScreenReceipt(row.id, "s1", T0 + 5))).toBe(2);
      expect(ids.map((id) => store.attempt(id)?.status)).toEqual([
        "delivered",
        "pending",
        "pending",
        "delivered",
      ]);
      expect(store.step(() => store.confirmScreenReceipt(row.id, "s1", T0 + 6))).toBe(0);
      expect(store.confirmScreenReceipt("al_none", "s1", T0 + 7)).toBe(0);
    });

    it("is available while open", () => {
      expect(store.available()).toBe(true);
    });
  });
}

export interface AlertHistoryContractSubject {
  /** Writes what the history then reads: the same database. */
  store: AlertStore;
  history: AlertHistory;
  cleanup(): Promise<void>;
}

/** The HTTP API's reads (AlertHistory), over what an AlertStore on the same database wrote. */
export function alertHistoryContract(
  name: string,
  factory: () => Promise<AlertHistoryContractSubject>,
): void {
  describe(`AlertHistory contract: ${name}`, () => {
    let subject: AlertHistoryContractSubject;
    let store: AlertStore;
    let history: AlertHistory;

    beforeEach(async () => {
      subject = await factory();
      ({ store, history } = subject);
      store.step(() => {
        store.insert(alertRow({ id: "al_1", dedupe_key: "1", raised_at: T0 + 1 }));
        store.insert(
          alertRow({ id: "al_2", dedupe_key: "2", raised_at: T0 + 2, unit_id: "syd", priority: "medium" }),
        );
        store.insert(
          alertRow({
            id: "al_3",
            dedupe_key: "3",
            raised_at: T0 + 3,
            open: 0,
            state: "resolved",
            type: "bed-exit",
          }),
        );
        store.insert(alertRow({ id: "al_4", dedupe_key: "4", raised_at: T0 + 4, state: "accepted" }));
        store.insert(alertRow({ id: "al_5", dedupe_key: "5", raised_at: T0 + 5, site_id: "home-b" }));
      });
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    const ids = (rows: AlertRow[]) => rows.map((r) => r.id);

    it("finds a site's alerts newest raise first, filtered, at most the limit", async () => {
      expect(ids(await history.find({ siteIds: ["home-a"], limit: 10 }))).toEqual([
        "al_4",
        "al_3",
        "al_2",
        "al_1",
      ]);
      expect(ids(await history.find({ siteIds: ["home-a", "home-b"], limit: 2 }))).toEqual(["al_5", "al_4"]);
      expect(ids(await history.find({ siteIds: ["home-a"], state: "open", limit: 10 }))).toEqual([
        "al_4",
        "al_2",
        "al_1",
      ]);
      expect(ids(await history.find({ siteIds: ["home-a"], state: "closed", limit: 10 }))).toEqual(["al_3"]);
      expect(ids(await history.find({ siteIds: ["home-a"], state: "accepted", limit: 10 }))).toEqual([
        "al_4",
      ]);
      expect(ids(await history.find({ siteIds: ["home-a"], unitId: "syd", limit: 10 }))).toEqual(["al_2"]);
      expect(ids(await history.find({ siteIds: ["home-a"], priority: "medium", limit: 10 }))).toEqual([
        "al_2",
      ]);
      expect(ids(await history.find({ siteIds: ["home-a"], type: "bed-exit", limit: 10 }))).toEqual(["al_3"]);
      // From inclusive, to exclusive.
      expect(ids(await history.find({ siteIds: ["home-a"], from: T0 + 2, to: T0 + 4, limit: 10 }))).toEqual([
        "al_3",
        "al_2",
      ]);
      expect(await history.find({ siteIds: ["home-c"], limit: 10 })).toEqual([]);
    });

    it("gives an alert, closed ones too, with its audit oldest first, and the head of the audit", async () => {
      expect(await history.head()).toBe(0);
      const row = store.alert("al_3")!;
      const [first, second] = store.step(() => [
        store.appendAudit(audit(row)),
        store.appendAudit(
          audit(row, { action: "resolved", stateAfter: "resolved", data: { outcome: "no-action" } }),
        ),
      ]);
      const found = await history.withAudit("al_3");
      expect(found?.alert).toEqual(row);
      expect(found?.audit.map((e) => [e.id, e.action, e.data])).toEqual([
        [first, "raised", null],
        [second, "resolved", { outcome: "no-action" }],
      ]);
      expect(found?.audit).toEqual(store.auditOf("al_3"));
      expect((await history.withAudit("al_1"))?.audit).toEqual([]);
      expect(await history.withAudit("al_none")).toBeUndefined();
      expect(await history.head()).toBe(second);
    });
  });
}
