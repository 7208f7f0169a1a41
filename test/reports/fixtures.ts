/**
 * Rows written straight into a temp database with SQL, the way ingest, presence and the alert
 * manager would leave them, so report tests state their scenario exactly.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { parseTimeModel, type TimeModel } from "../../src/reports/model.js";
import { type Db, openDb } from "../../src/store/db.js";

/** Profile kinds the tests use (the real catalogue is not needed to classify devices). */
export const PROFILES = new Map([
  ["acme/radar", { kind: "fall-sensor" }],
  ["acme/button", { kind: "presence-button" }],
  ["acme/lift", { kind: "ceiling-lift" }],
  ["acme/pendant", { kind: "pendant" }],
]);

export function tempDb(): { db: Db; dir: string; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), "ata-reports-"));
  const db = openDb({ path: join(dir, "ata.db") });
  return {
    db,
    dir,
    close() {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The shipped config/time-model.yaml with site overrides added. */
export function shippedModel(sites: Record<string, Record<string, unknown>> = {}): TimeModel {
  const raw = parseYaml(readFileSync("config/time-model.yaml", "utf8")) as Record<string, unknown>;
  return parseTimeModel({ ...raw, sites }, "config/time-model.yaml (test)");
}

export const ms = (iso: string) => Date.parse(iso);

export function addResident(db: Db, ref: string, site: string, unit: string, room: string | null): void {
  db.prepare("INSERT INTO residents (ref, site_id, unit_id, room_id, flags) VALUES (?, ?, ?, ?, '[]')").run(
    ref,
    site,
    unit,
    room,
  );
}

export function addDevice(
  db: Db,
  d: {
    id: string;
    profile: string;
    site: string;
    unit: string;
    room?: string | null;
    resident?: string | null;
    createdAt?: number;
  },
): void {
  db.prepare(
    `INSERT INTO devices (id, profile, site_id, unit_id, room_id, resident_ref, enabled, secret_hash, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, 1, 'scrypt$test', ?, ?)`,
  ).run(
    d.id,
    d.profile,
    d.site,
    d.unit,
    d.room ?? null,
    d.resident ?? null,
    d.createdAt ?? 0,
    d.createdAt ?? 0,
  );
}

let eventCounter = 0;

export interface EventInput {
  device: string;
  type: string;
  at: number;
  site: string;
  unit: string;
  room?: string | null;
  resident?: string | null;
  profile?: string;
  data?: Record<string, unknown>;
  priority?: string | null;
}

export function prepareEventInsert(db: Db) {
  const stmt = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, site_id, unit_id,
       room_id, resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  return (e: EventInput) =>
    stmt.run(
      `ev-${++eventCounter}`,
      e.device,
      e.type,
      e.priority ?? null,
      e.at,
      e.at + 3,
      e.site,
      e.unit,
      e.room ?? null,
      e.resident ?? null,
      e.profile ?? "acme/radar",
      JSON.stringify(e.data ?? {}),
    );
}

export function addEvent(db: Db, e: EventInput): void {
  prepareEventInsert(db)(e);
}

export interface AlertInput {
  id: string;
  type?: string;
  priority?: "high" | "medium" | "low" | "info";
  site: string;
  unit: string;
  room?: string | null;
  resident?: string | null;
  device: string;
  raisedAt: number;
  /** Staff id that accepted (audit actor staff:<id>). */
  acceptedAt?: number;
  attendingAt?: number;
  /** Who made it attending: a staff action or the presence button. */
  attendingBy?: "staff" | "button";
  resolvedAt?: number;
  outcome?: "fall-with-injury" | "fall-without-injury" | "false-alarm" | "assistance-given" | "no-action";
  /** Who resolved: staff (default) or a rule. */
  resolvedBy?: "staff" | "rule";
  cancelledAt?: number;
}

export function prepareAlertInsert(db: Db) {
  const alert = db.prepare(
    `INSERT INTO alerts (id, dedupe_key, open, type, priority, state, message_da, message_en, rule_id, site_id, unit_id,
       room_id, resident_ref, device_id, last_event_type, raised_at, updated_at, accepted_by, accepted_at, attending_at,
       resolved_at, outcome, ladder)
     VALUES (?, ?, ?, ?, ?, ?, 'besked', 'message', 'test', ?, ?, ?, ?, ?, 'test', ?, ?, ?, ?, ?, ?, ?, '[]')`,
  );
  const audit = db.prepare(
    `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id)
     VALUES (?, ?, ?, ?, 'test', ?, ?, ?)`,
  );
  return (a: AlertInput) => {
    const state =
      a.cancelledAt !== undefined
        ? "cancelled"
        : a.resolvedAt !== undefined
          ? "resolved"
          : a.attendingAt !== undefined
            ? "attending"
            : a.acceptedAt !== undefined
              ? "accepted"
              : "raised";
    const closedAt = a.cancelledAt ?? a.resolvedAt ?? null;
    alert.run(
      a.id,
      `${a.type ?? "call"}|${a.device}|${a.id}`,
      closedAt === null ? 1 : 0,
      a.type ?? "call",
      a.priority ?? "high",
      state,
      a.site,
      a.unit,
      a.room ?? null,
      a.resident ?? null,
      a.device,
      a.raisedAt,
      closedAt ?? a.attendingAt ?? a.acceptedAt ?? a.raisedAt,
      a.acceptedAt !== undefined ? "nurse-1" : null,
      a.acceptedAt ?? null,
      a.attendingAt ?? null,
      closedAt,
      a.resolvedAt !== undefined ? (a.outcome ?? "no-action") : null,
    );
    const log = (at: number, action: string, actor: string, after: string) =>
      audit.run(a.id, at, action, actor, after, a.site, a.unit);
    log(a.raisedAt, "raised", `device:${a.device}`, "raised");
    if (a.acceptedAt !== undefined) log(a.acceptedAt, "accepted", "staff:nurse-1", "accepted");
    if (a.attendingAt !== undefined)
      log(
        a.attendingAt,
        "attending",
        a.attendingBy === "button" ? `device:button-${a.room ?? ""}` : "staff:nurse-1",
        "attending",
      );
    if (a.resolvedAt !== undefined)
      log(
        a.resolvedAt,
        "resolved",
        a.resolvedBy === "rule" ? "rule:bed-return" : "staff:nurse-1",
        "resolved",
      );
    if (a.cancelledAt !== undefined) log(a.cancelledAt, "cancelled", `device:${a.device}`, "cancelled");
  };
}

export function addAlert(db: Db, a: AlertInput): void {
  prepareAlertInsert(db)(a);
}
