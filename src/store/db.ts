/**
 * The embedded operational database (SQLite via better-sqlite3): devices, credentials, alerts,
 * audit, timers, outbox cursors in the main file; the durable event log and the dead letters in a
 * second file attached as schema `log` (see EVENT_LOG_SCHEMA for why). Versioned migrations run at
 * open, the log's first; each migration is applied once, in order, in its own transaction.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Append only: never edit a migration that has shipped; add a new one. Times are integer
 * milliseconds since the epoch (UTC) unless a column name says otherwise.
 */
const EVENT_COLUMNS =
  "seq, event_id, device_id, type, phase, priority, occurred_at, received_at, device_seq, site_id, unit_id, room_id, resident_ref, profile, data, raw, topic";
const DEAD_LETTER_COLUMNS =
  "id, received_at, device_id, topic, code, reason, size, sha256, payload, truncated";

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "registry, event log, dead letters",
    sql: `
      CREATE TABLE residents (
        ref TEXT PRIMARY KEY,            -- pseudonymous reference, never a name
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        room_id TEXT,
        flags TEXT NOT NULL DEFAULT '[]' -- JSON array, e.g. ["fall-risk"]
      );
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        profile TEXT NOT NULL,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        room_id TEXT,
        resident_ref TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        secret_hash TEXT NOT NULL,       -- scrypt$N$r$p$salt$hash
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE device_state (
        device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        online INTEGER NOT NULL DEFAULT 0,
        changed_at INTEGER,
        last_seen_at INTEGER,
        last_event_at INTEGER,
        battery REAL,
        rssi REAL,
        firmware TEXT
      );
      -- The durable event log. seq is the outbox order for downstream sinks. No AUTOINCREMENT:
      -- events are never deleted, so rowids only grow, without a sqlite_sequence write per insert.
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        type TEXT NOT NULL,
        phase TEXT NOT NULL,
        priority TEXT,
        occurred_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        device_seq INTEGER,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        room_id TEXT,
        resident_ref TEXT,
        profile TEXT NOT NULL,
        data TEXT NOT NULL,              -- JSON of the canonical event's data
        raw BLOB,                        -- the payload as received, for audit
        topic TEXT
      );
      CREATE UNIQUE INDEX events_dedupe ON events(device_id, event_id);
      CREATE INDEX events_site_time ON events(site_id, occurred_at);
      CREATE INDEX events_device_type_time ON events(device_id, type, occurred_at);
      CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        device_id TEXT,
        topic TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        payload BLOB NOT NULL,           -- the bytes, or the first max_dead_letter_bytes of them
        truncated INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX dead_letters_device ON dead_letters(device_id, received_at);
      -- Persisted positions of readers of append-only tables (time-series sink, exporters).
      CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "staff tokens, alerts, audit, durable timers, maintenance, webhook deliveries",
    sql: `
      CREATE TABLE staff_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,              -- staff | nurse | manager | admin
        sites TEXT NOT NULL,             -- JSON array of site ids
        units TEXT,                      -- JSON array of unit ids, NULL = every unit of the sites
        token_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        dedupe_key TEXT NOT NULL,
        open INTEGER NOT NULL,
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
        count INTEGER NOT NULL DEFAULT 1,
        first_event_seq INTEGER,
        last_event_seq INTEGER,
        last_event_type TEXT NOT NULL,
        raised_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        accepted_by TEXT,
        accepted_by_name TEXT,
        accepted_at INTEGER,
        attending_at INTEGER,
        resolved_at INTEGER,
        outcome TEXT,
        level INTEGER NOT NULL DEFAULT 0,
        undelivered INTEGER NOT NULL DEFAULT 1,
        delivered_to TEXT NOT NULL DEFAULT '[]',
        rejected_by TEXT NOT NULL DEFAULT '[]',
        ladder TEXT NOT NULL              -- JSON: the escalation ladder fixed at raise time
      );
      -- One open alert per (type, device, resident): re-triggers update it.
      CREATE UNIQUE INDEX alerts_open_key ON alerts(dedupe_key) WHERE open = 1;
      CREATE INDEX alerts_site_time ON alerts(site_id, raised_at);
      CREATE INDEX alerts_open ON alerts(open, site_id);
      CREATE TABLE alert_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        actor_name TEXT NOT NULL,
        reason TEXT,
        state_after TEXT NOT NULL,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        data TEXT
      );
      CREATE INDEX alert_audit_alert ON alert_audit(alert_id, id);
      CREATE INDEX alert_audit_site ON alert_audit(site_id, id);
      CREATE TRIGGER alert_audit_append_only_u BEFORE UPDATE ON alert_audit
        BEGIN SELECT RAISE(ABORT, 'alert_audit is append-only'); END;
      CREATE TRIGGER alert_audit_append_only_d BEFORE DELETE ON alert_audit
        BEGIN SELECT RAISE(ABORT, 'alert_audit is append-only'); END;
      -- Every pending duration: absence windows, escalation steps, re-notifications, webhook retries.
      CREATE TABLE timers (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX timers_due ON timers(due_at);
      CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site_id TEXT NOT NULL,
        device_id TEXT,
        room_id TEXT,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE webhook_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        audit_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at INTEGER NOT NULL,
        status INTEGER,
        ok INTEGER NOT NULL,
        error TEXT
      );
      CREATE INDEX events_resident_type_time ON events(resident_ref, type, occurred_at);
    `,
  },
  {
    version: 3,
    name: "registry change counter",
    sql: `
      -- Bumped by every change to devices or residents, whoever makes it (the gateway or the ata
      -- CLI), so the gateway's in-memory registry reloads only when the registry changed, not on
      -- every commit to the database.
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta (key, value) VALUES ('registry_version', 0);
      CREATE TRIGGER devices_version_i AFTER INSERT ON devices BEGIN UPDATE meta SET value = value + 1 WHERE key = 'registry_version'; END;
      CREATE TRIGGER devices_version_u AFTER UPDATE ON devices BEGIN UPDATE meta SET value = value + 1 WHERE key = 'registry_version'; END;
      CREATE TRIGGER devices_version_d AFTER DELETE ON devices BEGIN UPDATE meta SET value = value + 1 WHERE key = 'registry_version'; END;
      CREATE TRIGGER residents_version_i AFTER INSERT ON residents BEGIN UPDATE meta SET value = value + 1 WHERE key = 'registry_version'; END;
      CREATE TRIGGER residents_version_u AFTER UPDATE ON residents BEGIN UPDATE meta SET value = value + 1 WHERE key = 'registry_version'; END;
    `,
  },
  {
    version: 4,
    name: "event log and dead letters move to their own file",
    sql: `
      INSERT OR IGNORE INTO log.events (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS} FROM main.events;
      INSERT OR IGNORE INTO log.dead_letters (${DEAD_LETTER_COLUMNS}) SELECT ${DEAD_LETTER_COLUMNS} FROM main.dead_letters;
      DROP TABLE main.events;
      DROP TABLE main.dead_letters;
    `,
  },
  {
    version: 5,
    name: "channel attempts",
    sql: `
      -- One row per attempt of one channel to reach one recipient, written in the same transaction
      -- as the escalation step that makes it and before the channel is called: an attempt still
      -- 'pending' after a crash had an unknown outcome, and is made again at start.
      CREATE TABLE channel_attempts (
        id INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL,
        channel TEXT NOT NULL,          -- console | push | paging | webhook
        recipient_id TEXT NOT NULL,
        recipient_name TEXT NOT NULL,
        staff_id TEXT,
        level INTEGER NOT NULL,
        reason TEXT NOT NULL,           -- level | renotify | retry
        status TEXT NOT NULL,           -- pending | sent | delivered | failed
        tries INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        detail TEXT
      );
      CREATE INDEX channel_attempts_alert ON channel_attempts(alert_id);
      CREATE INDEX channel_attempts_pending ON channel_attempts(status) WHERE status = 'pending';
    `,
  },
  // Staff enrolment. Numbered 6 on its branch while 7 landed first: migrate() applies whatever
  // is missing in version order, so a database that has 7 still gets 6.
  {
    version: 6,
    name: "staff enrolment by one-time code, tokens bound to a person and a device",
    sql: `
      -- A one-time code that an admin or manager hands a person (read aloud or as a QR code) and
      -- that their phone exchanges for a staff token. Only a SHA-256 of the normalised code is kept.
      CREATE TABLE staff_enrolments (
        id TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL,
        person_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        sites TEXT NOT NULL,             -- JSON array of site ids
        units TEXT,                      -- JSON array of unit ids, NULL = every unit of the sites
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        token_id TEXT                    -- the token the code was exchanged for
      );
      CREATE UNIQUE INDEX staff_enrolments_code ON staff_enrolments(code_hash);
      CREATE INDEX staff_enrolments_pending ON staff_enrolments(expires_at) WHERE used_at IS NULL;
      -- A person's tokens share person_id (one per phone), so alerts show one person whichever
      -- phone they use; a token made before enrolment is its own person (person_id NULL).
      ALTER TABLE staff_tokens ADD COLUMN person_id TEXT;
      ALTER TABLE staff_tokens ADD COLUMN device_label TEXT;
      ALTER TABLE staff_tokens ADD COLUMN last_used_at INTEGER;
      CREATE INDEX staff_tokens_person ON staff_tokens(person_id);
    `,
  },
  {
    version: 7,
    name: "web push subscriptions and keys",
    sql: `
      -- A phone's push subscription (W3C Push API; RFC 8030 endpoint, RFC 8291 keys), owned by
      -- the staff token that stored it. The endpoint is a capability URL: never logged at info.
      CREATE TABLE push_subscriptions (
        id TEXT PRIMARY KEY,
        staff_token_id TEXT NOT NULL REFERENCES staff_tokens(id) ON DELETE CASCADE,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,              -- the browser's P-256 public key, base64url (RFC 8291 ua_public)
        auth TEXT NOT NULL,                -- the 16-byte authentication secret, base64url
        label TEXT NOT NULL,               -- "Android (Chrome)", chosen by the phone, for people
        user_agent TEXT,
        created_at INTEGER NOT NULL,
        last_success_at INTEGER,
        last_failure_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0   -- consecutive failures of this subscription
      );
      CREATE INDEX push_subscriptions_owner ON push_subscriptions(staff_token_id);
      -- Which subscriptions were sent an alert, so that settling it replaces exactly those
      -- notifications ("taken by Anna") and nobody else's.
      CREATE TABLE push_sent (
        alert_id TEXT NOT NULL,
        subscription_id TEXT NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        PRIMARY KEY (alert_id, subscription_id)
      );
      -- Keys the gateway generated for itself (the VAPID key pair when configuration gives none,
      -- the secret that signs notification capabilities): kept so subscriptions survive restarts.
      CREATE TABLE push_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at INTEGER NOT NULL);
    `,
  },
  {
    version: 8,
    name: "rules cursor over the event log",
    sql: `
      -- Every event up to this log seq has had its rule effects committed, in the same transaction
      -- as the cursor (src/rules/engine.ts). A new database starts at 0, so nothing logged before
      -- the first rule transaction is missed; an existing one starts at the head of its log, so an
      -- upgrade does not raise the whole history again.
      INSERT OR IGNORE INTO main.cursors (name, position, updated_at)
        SELECT 'rules:events', coalesce(max(seq), 0), CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM log.events;
    `,
  },
  {
    version: 9,
    name: "security log",
    sql: `
      -- Refused connects, throttling, session takeovers, token and admin actions (src/security/log.ts).
      -- Append-only: no row is ever changed, and none is deleted before it is 400 days old.
      -- Never a secret: a token appears only as its id, a device secret never.
      CREATE TABLE security_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,              -- ms since the epoch; the first of count occurrences
        last_at INTEGER NOT NULL,         -- the last of them
        kind TEXT NOT NULL,
        actor TEXT,                       -- who acted: a staff token id, "admin", "cli", a device id
        address TEXT,                     -- the remote address, when there is one
        subject TEXT,                     -- what it was about: a device id, a token id
        count INTEGER NOT NULL DEFAULT 1, -- occurrences folded into this row
        detail TEXT NOT NULL DEFAULT '{}' -- JSON
      );
      CREATE INDEX security_log_at ON security_log(at);
      CREATE INDEX security_log_kind_at ON security_log(kind, at);
      CREATE TRIGGER security_log_append_only BEFORE UPDATE ON security_log
        BEGIN SELECT RAISE(ABORT, 'the security log is append-only'); END;
      CREATE TRIGGER security_log_retention BEFORE DELETE ON security_log
        WHEN old.at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - 400 * 86400000
        BEGIN SELECT RAISE(ABORT, 'security log rows are kept for 400 days'); END;
    `,
  },
  {
    version: 10,
    name: "demo credentials",
    sql: `
      -- Devices and staff tokens seeded by demo mode, whose secrets are public (src/security/
      -- demo-credentials.ts). disabled_at: when a start with demo mode off disabled or revoked it,
      -- so that turning the demo on again brings back exactly those.
      CREATE TABLE demo_credentials (
        kind TEXT NOT NULL,               -- device | staff_token
        id TEXT NOT NULL,
        disabled_at INTEGER,
        PRIMARY KEY (kind, id)
      );
    `,
  },
  {
    version: 11,
    name: "observe mode",
    sql: `
      -- Observe mode (src/observe/, docs/observe.md). Enrolment secrets are kept as their SHA-256
      -- only (generated, 192 random bits); device_id is bound at first use (or given at creation).
      CREATE TABLE observe_enrolments (
        id TEXT PRIMARY KEY,               -- public, for listing and revoking; not the secret
        secret_hash TEXT NOT NULL UNIQUE,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        device_id TEXT,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        revoked_at INTEGER
      );
      -- One row per observed device with running counts, so quotas never count the samples table.
      CREATE TABLE observe_devices (
        device_id TEXT PRIMARY KEY,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        via TEXT NOT NULL,                 -- enrolment | registered
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        stored INTEGER NOT NULL DEFAULT 0,
        dropped_quota INTEGER NOT NULL DEFAULT 0,  -- deleted to stay within perDevice or total
        dropped_rate INTEGER NOT NULL DEFAULT 0    -- never kept: over observe.ratePerSec
      );
      -- What observed devices sent, never decoded, never in the event log or the rules.
      CREATE TABLE observe_samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        size INTEGER NOT NULL,             -- the payload's full size; payload may be cut
        payload BLOB NOT NULL
      );
      CREATE INDEX observe_samples_device ON observe_samples(device_id, id);
      CREATE TABLE observe_totals (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        stored INTEGER NOT NULL DEFAULT 0,
        dropped_device INTEGER NOT NULL DEFAULT 0,
        dropped_total INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO observe_totals (one) VALUES (1);
    `,
  },
  {
    version: 12,
    name: "baselines",
    sql: `
      -- A site's (or unit's) measured baseline before the technology (src/reports/baseline/). Every
      -- save is a new version; a version is never changed, so a figure computed against it can
      -- always be traced back to it.
      CREATE TABLE baselines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site_id TEXT NOT NULL,
        unit_id TEXT,                      -- NULL: the whole site
        version INTEGER NOT NULL,          -- 1, 2, 3... per site and unit
        fingerprint TEXT NOT NULL,         -- sha256 hex of body
        recorded_at INTEGER NOT NULL,
        saved_by TEXT NOT NULL,            -- staff id, "admin" or "cli"
        body TEXT NOT NULL                 -- canonical JSON of what was recorded
      );
      CREATE UNIQUE INDEX baselines_version ON baselines(site_id, ifnull(unit_id, ''), version);
      CREATE TRIGGER baselines_append_only BEFORE UPDATE ON baselines
        BEGIN SELECT RAISE(ABORT, 'baselines are append-only: save a new version'); END;
    `,
  },
  {
    version: 13,
    name: "baselines-no-delete",
    sql: `
      -- A deleted version breaks the trace from a figure to its baseline as surely as a changed one;
      -- PostgreSQL's table (cluster mode) refuses both, and both stores pass one contract.
      CREATE TRIGGER baselines_no_delete BEFORE DELETE ON baselines
        BEGIN SELECT RAISE(ABORT, 'baselines are append-only: save a new version'); END;
    `,
  },
];

/**
 * The event log and the dead letters live in a file of their own (`<name>-events.db` beside the
 * main database), attached to every main connection as schema \`log\`. Unqualified \`events\` and
 * \`dead_letters\` resolve there, so queries are written as if it were one database.
 *
 * Why a second file: SQLite has one write lock per database file, held through the commit's
 * fsync. The ingest writer thread commits to the event log continuously; in one file, every write
 * of the main thread (an alert raised, a timer armed, a cursor moved) could queue behind that
 * fsync in SQLite's busy handler, which sleeps in steps of 1 to 100 ms and holds the event loop
 * meanwhile. With two files the writer thread and the main thread never wait for each other.
 */
export const EVENT_LOG_SCHEMA = "log";

/** The size a WAL is cut back to after a burst (PRAGMA journal_size_limit), bytes. */
export const WAL_SIZE_LIMIT = 16 * 1024 * 1024;

/**
 * The condition of the partial indexes on the event log. A query can use them only when its WHERE
 * contains this very term (SQLite's rule for partial indexes), so queries for non-heartbeat types
 * add it even though their type condition already implies it.
 */
export const NOT_HEARTBEAT = "type <> 'device.heartbeat'";

export const EVENT_LOG_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "event log, dead letters",
    sql: `
      -- The durable event log. seq is the outbox order for downstream sinks. No AUTOINCREMENT:
      -- events are never deleted, so rowids only grow, without a sqlite_sequence write per insert.
      CREATE TABLE log.events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        type TEXT NOT NULL,
        phase TEXT NOT NULL,
        priority TEXT,
        occurred_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        device_seq INTEGER,
        site_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        room_id TEXT,
        resident_ref TEXT,
        profile TEXT NOT NULL,
        data TEXT NOT NULL,              -- JSON of the canonical event's data
        raw BLOB,                        -- the payload as received, for audit
        topic TEXT
      );
      CREATE UNIQUE INDEX log.events_dedupe ON events(device_id, event_id);
      CREATE INDEX log.events_site_time ON events(site_id, occurred_at);
      CREATE INDEX log.events_device_type_time ON events(device_id, type, occurred_at);
      CREATE INDEX log.events_resident_type_time ON events(resident_ref, type, occurred_at);
      CREATE TABLE log.dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        device_id TEXT,
        topic TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        payload BLOB NOT NULL,           -- the bytes, or the first max_dead_letter_bytes of them
        truncated INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX log.dead_letters_device ON dead_letters(device_id, received_at);
    `,
  },
  {
    version: 2,
    name: "per-device and per-resident indexes without heartbeats",
    sql: `
      -- Heartbeats are most of the traffic and no query looks them up by device and type or by
      -- resident; leaving them out of these two indexes halves the pages each group commit dirties
      -- (about 2x the writer's throughput). Queries that use them say ${NOT_HEARTBEAT}.
      DROP INDEX log.events_device_type_time;
      DROP INDEX log.events_resident_type_time;
      CREATE INDEX log.events_device_type_time ON events(device_id, type, occurred_at) WHERE ${NOT_HEARTBEAT};
      CREATE INDEX log.events_resident_type_time ON events(resident_ref, type, occurred_at) WHERE ${NOT_HEARTBEAT};
    `,
  },
  {
    version: 3,
    name: "dropped duplicates",
    sql: `
      -- Every publish event dropped as a duplicate leaves a row here, written in the same group
      -- commit that acknowledged it: nothing is dropped without a trace. reason: event_id (the
      -- device's own id was already logged) or redelivery (the same bytes, without an id, within
      -- the redelivery window).
      CREATE TABLE log.duplicates (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        topic TEXT,
        reason TEXT NOT NULL
      );
      CREATE INDEX log.duplicates_device ON duplicates(device_id, received_at);
    `,
  },
  {
    version: 4,
    name: "dead-letter quotas",
    sql: `
      -- The dead-letter store is bounded per device and in total (src/store/dead-letter-quota.ts):
      -- the oldest rows go first, in the transaction that inserts the new one. What it holds is
      -- counted here by triggers, so no insert counts the table and every connection that inserts
      -- or deletes (the writer thread, the ata CLI, a migration) keeps the counts right.
      -- bytes: the stored payload (already cut to the largest accepted one), its reason and topic.
      CREATE TABLE log.dead_letter_usage (
        device_id TEXT PRIMARY KEY,      -- '' for dead letters without a device
        letters INTEGER NOT NULL,
        bytes INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- One row: the quotas the gateway applies (set at each start from ingest.deadLetters; NULL
      -- means none yet), what the store holds, and how many rows each quota deleted, ever.
      CREATE TABLE log.dead_letter_quota (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        per_device_max INTEGER,
        total_max INTEGER,
        bytes_max INTEGER,
        letters INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        dropped_device INTEGER NOT NULL DEFAULT 0,
        dropped_total INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER
      );
      INSERT INTO log.dead_letter_usage (device_id, letters, bytes)
        SELECT coalesce(device_id, ''), count(*), sum(length(payload) + octet_length(reason) + octet_length(topic))
        FROM log.dead_letters GROUP BY 1;
      INSERT INTO log.dead_letter_quota (id, letters, bytes)
        SELECT 1, count(*), coalesce(sum(length(payload) + octet_length(reason) + octet_length(topic)), 0)
        FROM log.dead_letters;
      CREATE TRIGGER log.dead_letters_count_i AFTER INSERT ON dead_letters BEGIN
        INSERT INTO dead_letter_usage (device_id, letters, bytes)
          VALUES (coalesce(NEW.device_id, ''), 1, length(NEW.payload) + octet_length(NEW.reason) + octet_length(NEW.topic))
          ON CONFLICT (device_id) DO UPDATE SET letters = letters + 1, bytes = bytes + excluded.bytes;
        UPDATE dead_letter_quota
          SET letters = letters + 1, bytes = bytes + length(NEW.payload) + octet_length(NEW.reason) + octet_length(NEW.topic);
      END;
      CREATE TRIGGER log.dead_letters_count_d AFTER DELETE ON dead_letters BEGIN
        UPDATE dead_letter_usage
          SET letters = letters - 1, bytes = bytes - (length(OLD.payload) + octet_length(OLD.reason) + octet_length(OLD.topic))
          WHERE device_id = coalesce(OLD.device_id, '');
        DELETE FROM dead_letter_usage WHERE device_id = coalesce(OLD.device_id, '') AND letters = 0;
        UPDATE dead_letter_quota
          SET letters = letters - 1, bytes = bytes - (length(OLD.payload) + octet_length(OLD.reason) + octet_length(OLD.topic));
      END;
      -- A device's oldest first: (device_id) carries the rowid, so it serves "WHERE device_id = ?
      -- ORDER BY id" (the quota's delete, the newest-first listing) without a sort; nothing looks a
      -- device's dead letters up by time.
      DROP INDEX log.dead_letters_device;
      CREATE INDEX log.dead_letters_device ON dead_letters(device_id);
    `,
  },
  {
    version: 5,
    name: "writer state",
    sql: `
      -- The event log's writer thread shows a group to the rest of the gateway once it is written
      -- and fsyncs it just after (store/sqlite-writer-worker.js). A power loss in between can take
      -- back rows the rules or the sink had already seen; their positions must never be handed out
      -- again. clean = 0 while a writer runs, 1 once it stopped with everything on disk; a start
      -- that finds 0 numbers the next event past a gap as large as what can be in between.
      CREATE TABLE log.writer_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        clean INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
];

/** The event log's file for a main database file (":memory:" stays in memory). */
export function eventLogPath(path: string): string {
  if (path === ":memory:") return path;
  return path.endsWith(".db") ? `${path.slice(0, -3)}-events.db` : `${path}-events.db`;
}

export interface OpenOptions {
  /** File path, or ":memory:". */
  path: string;
  migrations?: Migration[];
  /**
   * "NORMAL" only for a connection whose visible effects wait for a Durability (store/durability.ts):
   * the gateway's own. Everything else (the CLI, tools) commits with an fsync.
   */
  synchronous?: "FULL" | "NORMAL";
  /** false when a Checkpointer thread checkpoints this connection's databases instead. */
  autoCheckpoint?: boolean;
}

export function openDb({
  path,
  migrations = MIGRATIONS,
  synchronous = "FULL",
  autoCheckpoint = true,
}: OpenOptions): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // WAL with synchronous=NORMAL alone would lose the last commits on power loss; an acknowledged
  // fall must survive that. So FULL, or NORMAL with every visible effect held until a Durability
  // has fsynced the WAL. The event log (written by its own thread) is always FULL.
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  db.prepare(`ATTACH DATABASE ? AS ${EVENT_LOG_SCHEMA}`).run(eventLogPath(path));
  db.pragma(`${EVENT_LOG_SCHEMA}.journal_mode = WAL`);
  db.pragma(`${EVENT_LOG_SCHEMA}.synchronous = FULL`);
  try {
    migrate(db, EVENT_LOG_MIGRATIONS, EVENT_LOG_SCHEMA);
    migrate(db, migrations);
  } catch (err) {
    db.close(); // a refused database (SchemaTooNewError) is not left open
    throw err;
  }
  // Per connection, for every database on it (main and the attached log).
  if (!autoCheckpoint) db.pragma("wal_autocheckpoint = 0");
  // A burst grows a WAL past the checkpoint threshold; SQLite cuts it back to this when it next
  // starts the WAL over, instead of keeping the high-water mark on disk for good.
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
  db.pragma(`${EVENT_LOG_SCHEMA}.journal_size_limit = ${WAL_SIZE_LIMIT}`);
  writeLockFirst(db);
  return db;
}

/**
 * Every transaction on the connection takes the main database's write lock as its first statement,
 * waiting (busy_timeout) while another connection holds it.
 *
 * better-sqlite3 begins with a plain BEGIN (deferred): the lock is taken at the first write. A
 * transaction that reads before it writes (an alert step looks the alert up first) then holds a
 * read snapshot, and SQLite does not wait for a lock held elsewhere in that case: the write fails at
 * once with SQLITE_BUSY, whatever busy_timeout says. The checkpointer thread holds that lock while a
 * RESTART checkpoint copies the WAL, so a fall's rule step, a carer's accept or an escalation timer
 * meeting one failed (the rules fell behind and raised the fall a second later). Measured here: the
 * read-then-write fails after 0.4 ms with the lock held elsewhere; with the lock taken first it
 * waits for it.
 *
 * BEGIN IMMEDIATE would lock every attached database too, the event log included, whose writer
 * thread commits continuously: a no-op UPDATE of `meta` locks the main database alone. Nested
 * transactions (savepoints) already hold it. A database without `meta` (a schema older than
 * migration 3, opened only to be upgraded) keeps plain transactions.
 */
function writeLockFirst(db: Db): void {
  const hasMeta = db.prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) return;
  const lock = db.prepare("UPDATE main.meta SET value = value WHERE key = 'write-lock'");
  const transaction = db.transaction.bind(db);
  let depth = 0;
  db.transaction = (<F extends (...args: never[]) => unknown>(fn: F) =>
    transaction(function (this: unknown, ...args: Parameters<F>) {
      try {
        if (depth++ === 0) lock.run();
        return fn.apply(this, args);
      } finally {
        depth--;
      }
    } as unknown as F)) as Db["transaction"];
}

/** A database that has migrations this gateway does not know: written by a newer version. */
export class SchemaTooNewError extends Error {}

export function migrate(db: Db, migrations: Migration[], schema = "main"): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)`,
  );
  const applied = new Set(
    db
      .prepare(`SELECT version FROM ${schema}.schema_migrations`)
      .all()
      .map((r) => (r as { version: number }).version),
  );
  // Migrations are forward-only. An older gateway on a newer database would read and write tables
  // whose columns, triggers and data migrations it has never heard of, and nothing would say so:
  // refuse at open, naming both versions (a downgrade is restoring the backup taken before the
  // upgrade). Compared by set, not by the highest number: versions can land out of order (6, 7).
  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v)).sort((a, b) => a - b);
  if (unknown.length) {
    const file =
      (db.pragma("database_list") as { name: string; file: string }[]).find((d) => d.name === schema)?.file ||
      schema;
    throw new SchemaTooNewError(
      `${file} has schema version ${Math.max(...applied)} (migrations ${unknown.join(", ")} unknown here); ` +
        `this ATA Gateway knows versions up to ${Math.max(0, ...known)}. It was written by a newer gateway: ` +
        "run that version, or restore the backup taken before the upgrade (docs/operations.md).",
    );
  }
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  for (const m of sorted) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`).run(
        m.version,
        m.name,
        Date.now(),
      );
    })();
  }
}

export function getCursor(db: Db, name: string): number {
  const row = db.prepare("SELECT position FROM cursors WHERE name = ?").get(name) as
    | { position: number }
    | undefined;
  return row?.position ?? 0;
}

export function setCursor(db: Db, name: string, position: number): void {
  db.prepare(
    "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
  ).run(name, position, Date.now());
}
