/**
 * Two weeks of a small home's history, written straight into the database as the gateway would
 * have left it, for the page tests that need figures to show (dashboard, printed report).
 */
import type { Db } from "../../src/store/db.js";

export const SITE = "home-a";

/** A small home: five rooms over two units, a fall sensor in most, a lift, a pendant, a bed mat. */
export const DEVICES = [
  { id: "radar-r1", profile: "vayyar/care", unit: "unit-1", room: "r1", resident: "R-0001" },
  { id: "radar-r2", profile: "milesight/vs373", unit: "unit-1", room: "r2", resident: "R-0002" },
  { id: "mat-r3", profile: "scaip/bed-mat", unit: "unit-1", room: "r3", resident: "R-0003" },
  { id: "lift-r1", profile: "generic/ceiling-lift", unit: "unit-1", room: "r1", resident: null },
  { id: "radar-r4", profile: "vayyar/care", unit: "unit-2", room: "r4", resident: "R-0004" },
  { id: "pendant-r5", profile: "scaip/pendant", unit: "unit-2", room: "r5", resident: "R-0005" },
  { id: "radar-r5", profile: "milesight/vs373", unit: "unit-2", room: "r5", resident: "R-0005" },
];
export const RESIDENTS = [
  { ref: "R-0001", site: SITE, unit: "unit-1", room: "r1", flags: ["fall-risk", "lift-dependent"] },
  { ref: "R-0002", site: SITE, unit: "unit-1", room: "r2", flags: [] },
  { ref: "R-0003", site: SITE, unit: "unit-1", room: "r3", flags: ["fall-risk"] },
  { ref: "R-0004", site: SITE, unit: "unit-2", room: "r4", flags: [] },
  { ref: "R-0005", site: SITE, unit: "unit-2", room: "r5", flags: ["fall-risk"] },
];

export const DAY = 86_400_000;
export const HOUR = 3_600_000;

/** Seeded PRNG (mulberry32): the same history on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Two weeks of history written as the gateway would have left it: devices online since before
 * the range (one with an outage), lift cycles, and alerts with their audit trail, response times
 * and outcomes (falls, calls, bed exits, a battery).
 */
export function seedHistory(db: Db, now: number): void {
  const rand = rng(20261123);
  const between = (a: number, b: number) => a + rand() * (b - a);
  const start = now - 15 * DAY;
  const ev = db.prepare(
    `INSERT INTO events (event_id, device_id, type, phase, priority, occurred_at, received_at, site_id, unit_id,
       room_id, resident_ref, profile, data)
     VALUES (?, ?, ?, 'point', NULL, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  let n = 0;
  const event = (d: (typeof DEVICES)[number], type: string, at: number, data: object = {}) =>
    ev.run(
      `seed-${++n}`,
      d.id,
      type,
      Math.round(at),
      Math.round(at) + 5,
      SITE,
      d.unit,
      d.room,
      d.resident,
      d.profile,
      JSON.stringify(data),
    );
  const alert = db.prepare(
    `INSERT INTO alerts (id, dedupe_key, open, type, priority, state, message_da, message_en, rule_id, site_id, unit_id,
       room_id, resident_ref, device_id, last_event_type, raised_at, updated_at, accepted_by, accepted_by_name,
       accepted_at, attending_at, resolved_at, outcome, level, undelivered, delivered_to, ladder)
     VALUES (?, ?, 0, ?, ?, 'resolved', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'anna', 'Anna', ?, ?, ?, ?, 0, 0, '["Anna"]', '[]')`,
  );
  const audit = db.prepare(
    `INSERT INTO alert_audit (alert_id, at, action, actor_id, actor_name, state_after, site_id, unit_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  db.transaction(() => {
    // Registered 15 days ago: half of the dashboard's 28 days counts for uptime.
    db.prepare("UPDATE devices SET created_at = ? WHERE site_id = ?").run(start, SITE);
    for (const d of DEVICES) event(d, "device.online", start);
    const flaky = DEVICES[1]!;
    event(flaky, "device.offline", now - 5 * DAY);
    event(flaky, "device.online", now - 5 * DAY + 3 * HOUR);

    const lift = DEVICES[3]!;
    const kinds = [
      { type: "fall", priority: "high", ruleId: "fall", da: "Fald i {room}", en: "Fall in {room}", w: 3 },
      { type: "call", priority: "high", ruleId: "call", da: "Kald fra {room}", en: "Call from {room}", w: 4 },
      {
        type: "bed-exit",
        priority: "medium",
        ruleId: "bed-exit",
        da: "Ude af sengen",
        en: "Out of bed",
        w: 2,
      },
      {
        type: "battery-low",
        priority: "low",
        ruleId: "battery",
        da: "Lavt batteri",
        en: "Battery low",
        w: 1,
      },
    ];
    let id = 0;
    for (let day = 14; day >= 1; day--) {
      const dayStart = now - day * DAY;
      // Lift transfers by day: mostly one helper, some two.
      for (let i = 0; i < 5; i++) {
        const at = dayStart + between(7, 21) * HOUR;
        event(lift, "lift.cycle", at, {
          startedAt: new Date(at - 157_000).toISOString(),
          endedAt: new Date(at).toISOString(),
          helpers: rand() < 0.7 ? 1 : 2,
          transfer: "bed-chair",
        });
      }
      const count = 4 + Math.floor(rand() * 5);
      for (let i = 0; i < count; i++) {
        const pick = rand() * 10;
        let acc = 0;
        const kind =
          kinds.find((k) => {
            acc += k.w;
            return pick < acc;
          }) ?? kinds[0]!;
        const d = DEVICES.filter((x) => x.id !== lift.id)[Math.floor(rand() * (DEVICES.length - 1))]!;
        // More at night and in the morning.
        const hour = rand() < 0.4 ? between(22, 31) % 24 : between(7, 22);
        const raised = dayStart + hour * HOUR;
        const accepted = raised + between(15, 150) * 1000;
        const remote = kind.type !== "fall" && rand() < 0.45;
        const attending = remote ? null : accepted + between(40, 240) * 1000;
        const resolved = (attending ?? accepted) + between(60, 900) * 1000;
        const outcome = remote
          ? kind.type === "call"
            ? "assistance-given"
            : "no-action"
          : kind.type === "fall"
            ? rand() < 0.25
              ? "false-alarm"
              : rand() < 0.15
                ? "fall-with-injury"
                : "fall-without-injury"
            : rand() < 0.15
              ? "false-alarm"
              : "assistance-given";
        const alertId = `al_seed_${++id}`;
        alert.run(
          alertId,
          `${kind.type}|${d.id}|${alertId}`,
          kind.type,
          kind.priority,
          kind.da.replace("{room}", d.room),
          kind.en.replace("{room}", d.room),
          kind.ruleId,
          SITE,
          d.unit,
          d.room,
          d.resident,
          d.id,
          kind.type,
          Math.round(raised),
          Math.round(resolved),
          Math.round(accepted),
          attending === null ? null : Math.round(attending),
          Math.round(resolved),
          outcome,
        );
        const log = (at: number, action: string, actor: string, name: string, after: string) =>
          audit.run(alertId, Math.round(at), action, actor, name, after, SITE, d.unit);
        log(raised, "raised", `rule:${kind.ruleId}`, `rule ${kind.ruleId}`, "raised");
        log(raised + 300, "delivered", "staff:anna", "Anna", "raised");
        log(accepted, "accepted", "staff:anna", "Anna", "accepted");
        if (attending !== null) log(attending, "attending", "staff:anna", "Anna", "attending");
        log(resolved, "resolved", "staff:anna", "Anna", "resolved");
      }
    }
  })();
}
