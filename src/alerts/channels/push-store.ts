/**
 * The push channel's repository: phones' subscriptions, which of them were sent which alert, and
 * the keys the gateway keeps for Web Push. The only place that writes SQL for push.
 */
import { randomBytes } from "node:crypto";
import type { Db } from "../../store/db.js";
import { Statements } from "../../store/statements.js";

export interface PushSubscriptionRow {
  id: string;
  staffTokenId: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  label: string;
  userAgent: string | null;
  createdAt: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  failures: number;
}

export interface NewSubscription {
  staffTokenId: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  label: string;
  userAgent: string | null;
}

interface Row {
  id: string;
  staff_token_id: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  label: string;
  user_agent: string | null;
  created_at: number;
  last_success_at: number | null;
  last_failure_at: number | null;
  failures: number;
}

const toSubscription = (r: Row): PushSubscriptionRow => ({
  id: r.id,
  staffTokenId: r.staff_token_id,
  endpoint: r.endpoint,
  p256dh: r.p256dh,
  auth: r.auth,
  label: r.label,
  userAgent: r.user_agent,
  createdAt: r.created_at,
  lastSuccessAt: r.last_success_at,
  lastFailureAt: r.last_failure_at,
  failures: r.failures,
});

export class PushStore {
  private readonly statements: Statements;

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {
    this.statements = new Statements(db);
  }

  private stmt(sql: string) {
    return this.statements.get(sql);
  }

  /**
   * Store a phone's subscription for a person. The endpoint identifies the phone's browser: the
   * same endpoint stored again (a re-subscribe, or another person signing in on a shared phone)
   * replaces the keys and moves it to the caller, so one phone never rings for two people.
   */
  save(s: NewSubscription): { subscription: PushSubscriptionRow; created: boolean } {
    return this.db.transaction(() => {
      const existing = this.stmt("SELECT * FROM push_subscriptions WHERE endpoint = ?").get(s.endpoint) as
        | Row
        | undefined;
      if (existing) {
        this.stmt(
          `UPDATE push_subscriptions SET staff_token_id = ?, p256dh = ?, auth = ?, label = ?, user_agent = ?,
             failures = 0 WHERE id = ?`,
        ).run(s.staffTokenId, s.p256dh, s.auth, s.label, s.userAgent, existing.id);
        if (existing.staff_token_id !== s.staffTokenId)
          this.stmt("DELETE FROM push_sent WHERE subscription_id = ?").run(existing.id);
        return { subscription: this.get(existing.id)!, created: false };
      }
      const id = `ps_${randomBytes(8).toString("hex")}`;
      this.stmt(
        `INSERT INTO push_subscriptions (id, staff_token_id, endpoint, p256dh, auth, label, user_agent, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(id, s.staffTokenId, s.endpoint, s.p256dh, s.auth, s.label, s.userAgent, this.now());
      return { subscription: this.get(id)!, created: true };
    })();
  }

  get(id: string): PushSubscriptionRow | undefined {
    const r = this.stmt("SELECT * FROM push_subscriptions WHERE id = ?").get(id) as Row | undefined;
    return r ? toSubscription(r) : undefined;
  }

  /** A person's phones, oldest first. */
  ownedBy(staffTokenId: string): PushSubscriptionRow[] {
    return (
      this.stmt("SELECT * FROM push_subscriptions WHERE staff_token_id = ? ORDER BY created_at, id").all(
        staffTokenId,
      ) as Row[]
    ).map(toSubscription);
  }

  /** Subscriptions whose owner's token is not revoked: the only ones the channel may reach. */
  live(): PushSubscriptionRow[] {
    return (
      this.stmt(
        `SELECT s.* FROM push_subscriptions s JOIN staff_tokens t ON t.id = s.staff_token_id
           WHERE t.revoked_at IS NULL ORDER BY s.created_at, s.id`,
      ).all() as Row[]
    ).map(toSubscription);
  }

  /** Remove one subscription; with an owner, only if it is theirs. */
  remove(id: string, staffTokenId?: string): boolean {
    const info =
      staffTokenId === undefined
        ? this.stmt("DELETE FROM push_subscriptions WHERE id = ?").run(id)
        : this.stmt("DELETE FROM push_subscriptions WHERE id = ? AND staff_token_id = ?").run(
            id,
            staffTokenId,
          );
    return info.changes > 0;
  }

  succeeded(id: string): void {
    this.stmt("UPDATE push_subscriptions SET last_success_at = ?, failures = 0 WHERE id = ?").run(
      this.now(),
      id,
    );
  }

  failedOnce(id: string): void {
    this.stmt("UPDATE push_subscriptions SET last_failure_at = ?, failures = failures + 1 WHERE id = ?").run(
      this.now(),
      id,
    );
  }

  markSent(alertId: string, subscriptionId: string): void {
    this.stmt(
      "INSERT INTO push_sent (alert_id, subscription_id, at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET at = excluded.at",
    ).run(alertId, subscriptionId, this.now());
  }

  /** The subscriptions that were sent this alert (and still exist), forgetting the marks. */
  takeSent(alertId: string): PushSubscriptionRow[] {
    return this.db.transaction(() => {
      const rows = this.stmt(
        `SELECT s.* FROM push_sent p JOIN push_subscriptions s ON s.id = p.subscription_id
           WHERE p.alert_id = ? ORDER BY p.at`,
      ).all(alertId) as Row[];
      this.stmt("DELETE FROM push_sent WHERE alert_id = ?").run(alertId);
      return rows.map(toSubscription);
    })();
  }

  /** A key kept in the database, created by `make` the first time it is asked for. */
  key(name: string, make: () => string): string {
    return this.db.transaction(() => {
      const row = this.stmt("SELECT value FROM push_keys WHERE name = ?").get(name) as
        | { value: string }
        | undefined;
      if (row) return row.value;
      const value = make();
      this.stmt("INSERT INTO push_keys (name, value, created_at) VALUES (?, ?, ?)").run(
        name,
        value,
        this.now(),
      );
      return value;
    })();
  }
}
