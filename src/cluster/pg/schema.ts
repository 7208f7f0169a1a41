/**
 * The gateway's state in PostgreSQL (cluster mode): every state table of the embedded SQLite
 * database (src/store/db.ts, main and event-log migrations) mirrored column for column, with the
 * same names and meanings, so that `ata cluster export-to-postgres` (export.ts) copies rows
 * verbatim and the repositories on either database read the same values.
 *
 * Types: SQLite INTEGER is BIGINT (times stay epoch milliseconds; 0/1 flags stay integers, as the
 * SQL that reads them says `open = 1`), REAL is DOUBLE PRECISION, TEXT is TEXT (JSON included: not
 * jsonb, which would reorder keys and normalise numbers, so the text stays byte for byte what was
 * written), BLOB is BYTEA. An INTEGER PRIMARY KEY the database assigns is an identity column
 * (BY DEFAULT, so an import can keep the ids; the import sets each sequence past the largest id).
 * Unique and partial indexes are SQLite's own; the append-only and counting triggers are SQLite's
 * translated to PL/pgSQL, and the append-only tables also refuse TRUNCATE, which skips row triggers.
 *
 * Table by table (test/cluster/pg/export.test.ts fails when SQLite gains a table or column that is
 * neither here nor in NOT_MIRRORED):
 *
 * | SQLite table          | in PostgreSQL | why                                                                                   |
 * | --------------------- | ------------- | ------------------------------------------------------------------------------------- |
 * | residents, devices    | replicated    | the registry. In cluster mode PostgreSQL's copy is the order of record and every     |
 * |                       |               | node's SQLite a replica (replication-log.ts, ../replicated-tables.ts)                 |
 * | device_state          | mirrored      | presence, battery, last seen: what supervision reads (each node keeps its own)        |
 * | staff_tokens          | replicated    | token hashes: staff keep their phones' logins across the move, and a revocation      |
 * |                       |               | reaches every node (last_used_at stays each node's)                                   |
 * | staff_enrolments      | replicated    | codes handed out and not yet used stay valid, and are used once on any node           |
 * | push_subscriptions    | replicated    | phones' push endpoints and keys: the partition's owner pushes to every phone          |
 * |                       |               | (the delivery counters stay each node's)                                              |
 * | push_sent             | mirrored      | which notifications to replace when an alert is settled                               |
 * | push_keys             | agreed        | the VAPID pair the subscriptions were made against; new keys would orphan every phone.|
 * |                       |               | A cluster node offers its own at start and takes the cluster's (the first one kept)   |
 * | alerts, alert_audit   | mirrored      | open alerts and their whole history (audit append-only)                               |
 * | timers                | mirrored      | pending escalations, absence windows, retries: what is due after the move             |
 * | maintenance           | mirrored      | suppression windows                                                                   |
 * | webhook_deliveries    | mirrored      | delivery history                                                                      |
 * | channel_attempts      | mirrored      | a 'pending' attempt is made again at start; it must not be forgotten                  |
 * | security_log          | mirrored      | append-only, 400-day retention                                                        |
 * | baselines             | migration 1   | already mirrored (baselines.ts)                                                       |
 * | demo_credentials      | mirrored      | the only record of which devices and tokens have published secrets                    |
 * | cursors               | mirrored      | positions in the event log (rules, time-series sink); seqs are carried unchanged, so  |
 * |                       |               | they stay true, and without them the rules would start at 0 and raise history again   |
 * | events, duplicates    | mirrored      | the event log and what was dropped from it                                            |
 * | dead_letters          | mirrored      | refused payloads, with the usage counts their triggers keep                           |
 * | dead_letter_usage     | mirrored      | counted by triggers on dead_letters, as in SQLite                                     |
 * | dead_letter_quota     | mirrored      | one row: quotas and totals                                                            |
 * | meta                  | not mirrored  | registry_version: a change signal for one process's in-memory registry, bumped by     |
 * |                       |               | triggers; nodes sharing PostgreSQL need a notification, not a counter copied once     |
 * | observe_enrolments,   | not mirrored  | observe mode: onboarding captures on one gateway's embedded broker, switched on for   |
 * | observe_devices,      |               | the onboarding and off after (docs/observe.md); bounded and disposable by design      |
 * | observe_samples,      |               |                                                                                       |
 * | observe_totals        |               |                                                                                       |
 * | schema_migrations     | not mirrored  | each database's own migration record                                                  |
 * | writer_state          | not mirrored  | whether this file's event-log writer stopped with everything on disk (its numbering   |
 * |                       |               | resumes past a gap otherwise); PostgreSQL's log numbers its own rows                  |
 * | replication_outbox,   | not mirrored  | a cluster node's own: changes to the replicated tables on their way to PostgreSQL,    |
 * | replication_applying, |               | the guard that keeps applied changes from being captured again, its origin id         |
 * | replication_meta      |               | (made at a cluster node's start, ../replicated-tables.ts)                             |
 * | sqlite_sequence       | not mirrored  | SQLite's AUTOINCREMENT bookkeeping; identity sequences take its place                 |
 * | series_points,        | not mirrored  | the embedded time-series store (its own file, not these migrations); cluster mode     |
 * | series_fields         |               | writes time series to InfluxDB                                                        |
 */

/** SQLite tables that are deliberately not in PostgreSQL, with the reason (the table above). */
export const NOT_MIRRORED: Readonly<Record<string, string>> = {
  meta: "a change signal for one process's in-memory registry",
  observe_enrolments: "observe mode: onboarding on one gateway's embedded broker",
  observe_devices: "observe mode: onboarding on one gateway's embedded broker",
  observe_samples: "observe mode: onboarding on one gateway's embedded broker",
  observe_totals: "observe mode: onboarding on one gateway's embedded broker",
  schema_migrations: "each database's own migration record",
  writer_state: "whether this file's event-log writer stopped cleanly",
  replication_outbox: "a cluster node's changes on their way to PostgreSQL",
  replication_applying: "a cluster node's guard against capturing applied changes",
  replication_meta: "a cluster node's origin id in the replication",
  sqlite_sequence: "SQLite's AUTOINCREMENT bookkeeping",
  series_points: "embedded time series; cluster mode uses InfluxDB",
  series_fields: "embedded time series; cluster mode uses InfluxDB",
};

export interface MirroredTable {
  name: string;
  /** SQLite schema the table is in: the main file or the attached event log. */
  sqliteSchema: "main" | "log";
  /** The primary key's columns, in order: the order the export reads and verifies rows in. */
  key: readonly string[];
  /** The identity column, when PostgreSQL assigns the key (its sequence is set after an import). */
  identity?: string;
  /** Triggers that would count an imported row twice: disabled for the import's transaction only. */
  importTriggers?: readonly string[];
}

/**
 * Every mirrored table in dependency order (a table after those its foreign keys name): the order
 * an import inserts in.
 */
export const MIRRORED_TABLES: readonly MirroredTable[] = [
  { name: "residents", sqliteSchema: "main", key: ["ref"] },
  { name: "devices", sqliteSchema: "main", key: ["id"] },
  { name: "device_state", sqliteSchema: "main", key: ["device_id"] },
  { name: "staff_tokens", sqliteSchema: "main", key: ["id"] },
  { name: "staff_enrolments", sqliteSchema: "main", key: ["id"] },
  { name: "push_subscriptions", sqliteSchema: "main", key: ["id"] },
  { name: "push_sent", sqliteSchema: "main", key: ["alert_id", "subscription_id"] },
  { name: "push_keys", sqliteSchema: "main", key: ["name"] },
  { name: "alerts", sqliteSchema: "main", key: ["id"] },
  { name: "alert_audit", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "timers", sqliteSchema: "main", key: ["id"] },
  { name: "maintenance", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "webhook_deliveries", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "channel_attempts", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "security_log", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "baselines", sqliteSchema: "main", key: ["id"], identity: "id" },
  { name: "demo_credentials", sqliteSchema: "main", key: ["kind", "id"] },
  { name: "cursors", sqliteSchema: "main", key: ["name"] },
  { name: "events", sqliteSchema: "log", key: ["seq"], identity: "seq" },
  { name: "duplicates", sqliteSchema: "log", key: ["id"], identity: "id" },
  {
    name: "dead_letters",
    sqliteSchema: "log",
    key: ["id"],
    identity: "id",
    // The usage rows and the quota row are copied as they are; counting the copied letters again
    // on insert would double them.
    importTriggers: ["dead_letters_count_i"],
  },
  { name: "dead_letter_usage", sqliteSchema: "log", key: ["device_id"] },
  { name: "dead_letter_quota", sqliteSchema: "log", key: ["id"] },
];

export const STATE_MIGRATION = {
  version: 2,
  name: "state",
  sql: `
    -- Mirrors SQLite's main migrations 1 to 11 and event-log migrations 1 to 4 (src/store/db.ts).
    CREATE TABLE residents (
      ref TEXT PRIMARY KEY,
      site_id TEXT NOT NULL,
      unit_id TEXT NOT NULL,
      room_id TEXT,
      flags TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE devices (
      id TEXT PRIMARY KEY,
      profile TEXT NOT NULL,
      site_id TEXT NOT NULL,
      unit_id TEXT NOT NULL,
      room_id TEXT,
      resident_ref TEXT,
      enabled BIGINT NOT NULL DEFAULT 1,
      secret_hash TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE device_state (
      device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
      online BIGINT NOT NULL DEFAULT 0,
      changed_at BIGINT,
      last_seen_at BIGINT,
      last_event_at BIGINT,
      battery DOUBLE PRECISION,
      rssi DOUBLE PRECISION,
      firmware TEXT
    );

    CREATE TABLE staff_tokens (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      sites TEXT NOT NULL,
      units TEXT,
      token_hash TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      revoked_at BIGINT,
      person_id TEXT,
      device_label TEXT,
      last_used_at BIGINT
    );
    CREATE INDEX staff_tokens_person ON staff_tokens (person_id);
    -- SQLite's is created by the token store at open (src/staff/tokens.ts), not by a migration.
    CREATE UNIQUE INDEX staff_tokens_hash ON staff_tokens (token_hash);
    CREATE TABLE staff_enrolments (
      id TEXT PRIMARY KEY,
      code_hash TEXT NOT NULL,
      person_id TEXT NOT NULL,
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      sites TEXT NOT NULL,
      units TEXT,
      created_by TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      used_at BIGINT,
      token_id TEXT
    );
    CREATE UNIQUE INDEX staff_enrolments_code ON staff_enrolments (code_hash);
    CREATE INDEX staff_enrolments_pending ON staff_enrolments (expires_at) WHERE used_at IS NULL;

    CREATE TABLE push_subscriptions (
      id TEXT PRIMARY KEY,
      staff_token_id TEXT NOT NULL REFERENCES staff_tokens(id) ON DELETE CASCADE,
      endpoint TEXT NOT NULL UNIQUE,
      p256dh TEXT NOT NULL,
      auth TEXT NOT NULL,
      label TEXT NOT NULL,
      user_agent TEXT,
      created_at BIGINT NOT NULL,
      last_success_at BIGINT,
      last_failure_at BIGINT,
      failures BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX push_subscriptions_owner ON push_subscriptions (staff_token_id);
    CREATE TABLE push_sent (
      alert_id TEXT NOT NULL,
      subscription_id TEXT NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
      at BIGINT NOT NULL,
      PRIMARY KEY (alert_id, subscription_id)
    );
    CREATE TABLE push_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL);

    CREATE TABLE alerts (
      id TEXT PRIMARY KEY,
      dedupe_key TEXT NOT NULL,
      open BIGINT NOT NULL,
      type TEXT NOT NULL,
      priority TEXT NOT NULL,
      state TEXT NOT NULL,
      message_da TEXT NOT NULL,
      message_en TEXT NOT NULL,
      rule_id TEXT NOT NULL,
      site_id TEXT NOT NULL,
      unit_id TEXT NOT NULL,
      room_id TEXT,
      resident_ref TEXT,
      device_id TEXT NOT NULL,
      count BIGINT NOT NULL DEFAULT 1,
      first_event_seq BIGINT,
      last_event_seq BIGINT,
      last_event_type TEXT NOT NULL,
      raised_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      accepted_by TEXT,
      accepted_by_name TEXT,
      accepted_at BIGINT,
      attending_at BIGINT,
      resolved_at BIGINT,
      outcome TEXT,
      level BIGINT NOT NULL DEFAULT 0,
      undelivered BIGINT NOT NULL DEFAULT 1,
      delivered_to TEXT NOT NULL DEFAULT '[]',
      rejected_by TEXT NOT NULL DEFAULT '[]',
      ladder TEXT NOT NULL
    );
    -- One open alert per (type, device, resident): re-triggers update it.
    CREATE UNIQUE INDEX alerts_open_key ON alerts (dedupe_key) WHERE open = 1;
    CREATE INDEX alerts_site_time ON alerts (site_id, raised_at);
    CREATE INDEX alerts_open ON alerts (open, site_id);
    CREATE TABLE alert_audit (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      alert_id TEXT NOT NULL REFERENCES alerts(id),
      at BIGINT NOT NULL,
      action TEXT NOT NULL,
      actor_id TEXT NOT NULL,
      actor_name TEXT NOT NULL,
      reason TEXT,
      state_after TEXT NOT NULL,
      site_id TEXT NOT NULL,
      unit_id TEXT NOT NULL,
      data TEXT
    );
    CREATE INDEX alert_audit_alert ON alert_audit (alert_id, id);
    CREATE INDEX alert_audit_site ON alert_audit (site_id, id);
    CREATE FUNCTION alert_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'alert_audit is append-only' USING ERRCODE = 'restrict_violation';
      END
    $$;
    CREATE TRIGGER alert_audit_no_change BEFORE UPDATE OR DELETE ON alert_audit
      FOR EACH ROW EXECUTE FUNCTION alert_audit_append_only();
    CREATE TRIGGER alert_audit_no_truncate BEFORE TRUNCATE ON alert_audit
      FOR EACH STATEMENT EXECUTE FUNCTION alert_audit_append_only();

    CREATE TABLE timers (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      due_at BIGINT NOT NULL,
      payload TEXT NOT NULL,
      created_at BIGINT NOT NULL
    );
    CREATE INDEX timers_due ON timers (due_at);
    CREATE TABLE maintenance (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      site_id TEXT NOT NULL,
      device_id TEXT,
      room_id TEXT,
      starts_at BIGINT NOT NULL,
      ends_at BIGINT NOT NULL,
      reason TEXT NOT NULL,
      created_by TEXT NOT NULL,
      created_at BIGINT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      alert_id TEXT NOT NULL,
      audit_id BIGINT NOT NULL,
      attempt BIGINT NOT NULL,
      at BIGINT NOT NULL,
      status BIGINT,
      ok BIGINT NOT NULL,
      error TEXT
    );
    CREATE TABLE channel_attempts (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      alert_id TEXT NOT NULL,
      channel TEXT NOT NULL,
      recipient_id TEXT NOT NULL,
      recipient_name TEXT NOT NULL,
      staff_id TEXT,
      level BIGINT NOT NULL,
      reason TEXT NOT NULL,
      status TEXT NOT NULL,
      tries BIGINT NOT NULL DEFAULT 1,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      detail TEXT
    );
    CREATE INDEX channel_attempts_alert ON channel_attempts (alert_id);
    CREATE INDEX channel_attempts_pending ON channel_attempts (status) WHERE status = 'pending';

    CREATE TABLE security_log (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      at BIGINT NOT NULL,
      last_at BIGINT NOT NULL,
      kind TEXT NOT NULL,
      actor TEXT,
      address TEXT,
      subject TEXT,
      count BIGINT NOT NULL DEFAULT 1,
      detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX security_log_at ON security_log (at);
    CREATE INDEX security_log_kind_at ON security_log (kind, at);
    -- SQLite's security_log_append_only and security_log_retention: no change ever, no delete of a
    -- row younger than 400 days; TRUNCATE would skip both.
    CREATE FUNCTION security_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          IF OLD.at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 400::bigint * 86400000 THEN
            RAISE EXCEPTION 'security log rows are kept for 400 days' USING ERRCODE = 'restrict_violation';
          END IF;
          RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the security log is append-only' USING ERRCODE = 'restrict_violation';
      END
    $$;
    CREATE TRIGGER security_log_no_change BEFORE UPDATE OR DELETE ON security_log
      FOR EACH ROW EXECUTE FUNCTION security_log_append_only();
    CREATE TRIGGER security_log_no_truncate BEFORE TRUNCATE ON security_log
      FOR EACH STATEMENT EXECUTE FUNCTION security_log_append_only();

    CREATE TABLE demo_credentials (
      kind TEXT NOT NULL,
      id TEXT NOT NULL,
      disabled_at BIGINT,
      PRIMARY KEY (kind, id)
    );
    CREATE TABLE cursors (
      name TEXT PRIMARY KEY,
      position BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    );

    -- The event log (SQLite's attached log file). seq: the outbox order for downstream sinks.
    CREATE TABLE events (
      seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      event_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      type TEXT NOT NULL,
      phase TEXT NOT NULL,
      priority TEXT,
      occurred_at BIGINT NOT NULL,
      received_at BIGINT NOT NULL,
      device_seq BIGINT,
      site_id TEXT NOT NULL,
      unit_id TEXT NOT NULL,
      room_id TEXT,
      resident_ref TEXT,
      profile TEXT NOT NULL,
      data TEXT NOT NULL,
      raw BYTEA,
      topic TEXT
    );
    CREATE UNIQUE INDEX events_dedupe ON events (device_id, event_id);
    CREATE INDEX events_site_time ON events (site_id, occurred_at);
    CREATE INDEX events_device_type_time ON events (device_id, type, occurred_at) WHERE type <> 'device.heartbeat';
    CREATE INDEX events_resident_type_time ON events (resident_ref, type, occurred_at) WHERE type <> 'device.heartbeat';
    CREATE TABLE duplicates (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      received_at BIGINT NOT NULL,
      device_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      topic TEXT,
      reason TEXT NOT NULL
    );
    CREATE INDEX duplicates_device ON duplicates (device_id, received_at);

    CREATE TABLE dead_letters (
      id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      received_at BIGINT NOT NULL,
      device_id TEXT,
      topic TEXT NOT NULL,
      code TEXT NOT NULL,
      reason TEXT NOT NULL,
      size BIGINT NOT NULL,
      sha256 TEXT NOT NULL,
      payload BYTEA NOT NULL,
      truncated BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX dead_letters_device ON dead_letters (device_id);
    CREATE TABLE dead_letter_usage (
      device_id TEXT PRIMARY KEY,        -- '' for dead letters without a device
      letters BIGINT NOT NULL,
      bytes BIGINT NOT NULL
    );
    CREATE TABLE dead_letter_quota (
      id BIGINT PRIMARY KEY CHECK (id = 1),
      per_device_max BIGINT,
      total_max BIGINT,
      bytes_max BIGINT,
      letters BIGINT NOT NULL,
      bytes BIGINT NOT NULL,
      dropped_device BIGINT NOT NULL DEFAULT 0,
      dropped_total BIGINT NOT NULL DEFAULT 0,
      updated_at BIGINT
    );
    -- SQLite's dead_letters_count_i and _d: whoever inserts or deletes keeps the counts right.
    -- bytes: the stored payload, its reason and topic, in bytes (UTF-8).
    CREATE FUNCTION dead_letters_count() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        b BIGINT;
      BEGIN
        IF TG_OP = 'INSERT' THEN
          b := octet_length(NEW.payload) + octet_length(NEW.reason) + octet_length(NEW.topic);
          INSERT INTO dead_letter_usage (device_id, letters, bytes) VALUES (coalesce(NEW.device_id, ''), 1, b)
            ON CONFLICT (device_id) DO UPDATE
            SET letters = dead_letter_usage.letters + 1, bytes = dead_letter_usage.bytes + excluded.bytes;
          UPDATE dead_letter_quota SET letters = letters + 1, bytes = bytes + b;
          RETURN NEW;
        END IF;
        b := octet_length(OLD.payload) + octet_length(OLD.reason) + octet_length(OLD.topic);
        UPDATE dead_letter_usage SET letters = letters - 1, bytes = bytes - b
          WHERE device_id = coalesce(OLD.device_id, '');
        DELETE FROM dead_letter_usage WHERE device_id = coalesce(OLD.device_id, '') AND letters = 0;
        UPDATE dead_letter_quota SET letters = letters - 1, bytes = bytes - b;
        RETURN OLD;
      END
    $$;
    CREATE TRIGGER dead_letters_count_i AFTER INSERT ON dead_letters
      FOR EACH ROW EXECUTE FUNCTION dead_letters_count();
    CREATE TRIGGER dead_letters_count_d AFTER DELETE ON dead_letters
      FOR EACH ROW EXECUTE FUNCTION dead_letters_count();
  `,
};
