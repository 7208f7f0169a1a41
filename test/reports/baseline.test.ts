import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  BaselineError,
  type BaselineInput,
  baselineFingerprint,
  checkBaselineScope,
  MEASUREMENT_KEYS,
  parseBaseline,
} from "../../src/reports/baseline/schema.js";
import { BaselineStore, residentLookup } from "../../src/reports/baseline/store.js";
import { tempDbs } from "../helpers/tempdb.js";

const dbs = tempDbs("ata-baseline-");
afterEach(() => dbs.cleanup());

/** A baseline as a site would write it (docs/time-model.md has the same shape). */
function example(): Record<string, unknown> {
  return {
    site: "home-a",
    period: { from: "2026-09-01", to: "2026-09-30" },
    recordedBy: "Mette (leder)",
    measurements: {
      nightChecksPerResident: {
        value: 2,
        method: "counted in the care plans on 2026-09-15",
        perResident: [
          { room: "r3", value: 3 },
          { resident: "R-0002", value: 0 },
        ],
      },
      minutesPerNightCheck: { value: 4.5, unit: "staff-minutes per check", method: "stopwatch, 40 checks" },
      twoHelperTransferShare: { value: 0.35, method: "transfer log, September" },
      minutesPerTwoHelperTransfer: { value: 9, method: "stopwatch, 12 transfers" },
      alarmsPerNight: { value: 6, method: "call system export" },
      minutesPerAlarm: { value: 7, method: "night staff's tally" },
    },
  };
}

function problemsOf(raw: unknown): { path: string; message: string }[] {
  try {
    parseBaseline(raw);
  } catch (err) {
    if (err instanceof BaselineError) return err.problems;
    throw err;
  }
  throw new Error("parsed without problems");
}

const SITES = [
  {
    id: "home-a",
    units: [
      { id: "unit-1", rooms: ["r1", "r2", "r3"] },
      { id: "unit-2", rooms: ["r4"] },
    ],
  },
];

describe("baseline schema", () => {
  it("accepts a site's baseline, fills in each measurement's unit and sorts per-resident lists", () => {
    const b = parseBaseline(example());
    expect(b.measurements.twoHelperTransferShare?.unit).toBe("share of transfers done by two helpers");
    expect(b.measurements.alarmsPerNight?.unit).toBe("alarms per night");
    // A resident with no night checks in the care plan is expressible: value 0.
    expect(b.measurements.nightChecksPerResident?.perResident).toEqual([
      { resident: "R-0002", value: 0 },
      { room: "r3", value: 3 },
    ]);
  });

  it("reports every problem at once, each with its path", () => {
    const raw = example();
    const m = raw.measurements as Record<string, Record<string, unknown>>;
    raw.period = { from: "2026-10-01", to: "2026-09-30" };
    delete raw.recordedBy;
    m.minutesPerNightCheck!.value = -1;
    m.minutesPerAlarm!.unit = "hours";
    m.twoHelperTransferShare!.value = 1.4;
    m.nightChecksPerResident!.perResident = [
      { resident: "R-0001", room: "r1", value: 1 },
      { room: "r3", value: 2 },
      { room: "r3", value: 1 },
    ];
    m.alarmsPerNight = { value: 3 };
    raw.residentName = "Jens Hansen";
    const paths = problemsOf(raw).map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "period.to",
        "recordedBy",
        "measurements.minutesPerNightCheck.value",
        "measurements.minutesPerAlarm.unit",
        "measurements.twoHelperTransferShare.value",
        "measurements.nightChecksPerResident.perResident.0",
        "measurements.nightChecksPerResident.perResident.2",
        "measurements.alarmsPerNight.method",
        "",
      ]),
    );
    // An unknown key (a resident's name, say) is refused, not stored.
    expect(problemsOf(raw).find((p) => p.path === "")?.message).toMatch(/residentName/);
    expect(problemsOf(raw).find((p) => p.path === "measurements.minutesPerAlarm.unit")?.message).toBe(
      'the unit is "staff-minutes per attended alarm"',
    );
  });

  it("needs at least one measurement and real dates", () => {
    const raw = { ...example(), measurements: {}, period: { from: "2026-02-30", to: "2026-03-01" } };
    expect(problemsOf(raw)).toEqual(
      expect.arrayContaining([
        { path: "measurements", message: "record at least one measurement" },
        { path: "period.from", message: "a date YYYY-MM-DD" },
      ]),
    );
  });

  it("the example in docs/time-model.md is a valid baseline for the shipped configuration's site", () => {
    const doc = readFileSync(new URL("../../docs/time-model.md", import.meta.url), "utf8");
    const section = doc.slice(doc.indexOf("## Baseline: how it was before"));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const b = parseBaseline(parseYaml(yaml));
    const config = parseYaml(readFileSync(new URL("../../config/default.yaml", import.meta.url), "utf8")) as {
      sites: { id: string; units: { id: string; rooms?: string[] }[] }[];
      residents: { ref: string; site: string; unit: string }[];
    };
    const residentOf = (ref: string) => config.residents.find((r) => r.ref === ref);
    expect(checkBaselineScope(b, config.sites, residentOf)).toEqual([]);
    // The example shows every measurement there is.
    expect(Object.keys(b.measurements).sort()).toEqual([...MEASUREMENT_KEYS].sort());
  });

  it("checks the site, unit, rooms and resident refs against the configuration and registry", () => {
    const t = dbs.open();
    t.db
      .prepare("INSERT INTO residents (ref, site_id, unit_id, room_id) VALUES (?, ?, ?, ?)")
      .run("R-0002", "home-a", "unit-1", "r2");
    const lookup = residentLookup(t.db);
    expect(checkBaselineScope(parseBaseline(example()), SITES, lookup)).toEqual([]);
    // As unit-2's baseline, neither room r3 nor resident R-0002 (unit-1) belongs to it.
    expect(checkBaselineScope(parseBaseline({ ...example(), unit: "unit-2" }), SITES, lookup)).toEqual([
      {
        path: "measurements.nightChecksPerResident.perResident.0.resident",
        message: 'no resident "R-0002" in unit "unit-2"',
      },
      {
        path: "measurements.nightChecksPerResident.perResident.1.room",
        message: 'no room "r3" in unit "unit-2"',
      },
    ]);
    expect(checkBaselineScope(parseBaseline({ ...example(), unit: "unit-9" }), SITES, lookup)[0]).toEqual({
      path: "unit",
      message: 'unknown unit "unit-9" in site "home-a"',
    });
    expect(checkBaselineScope(parseBaseline({ ...example(), site: "home-x" }), SITES, lookup)).toEqual([
      { path: "site", message: 'unknown site "home-x"' },
    ]);
  });
});

describe("baseline versions", () => {
  it("every save is a new version; the same content has the same fingerprint, other content another", () => {
    const t = dbs.open();
    let now = Date.parse("2026-10-02T08:00:00Z");
    const store = new BaselineStore(t.db, () => now);
    const first = store.save(parseBaseline(example()), "mette");
    now += 60_000;
    // Same content, keys and per-resident entries in another order: same fingerprint, new version.
    const reordered = example();
    const m = reordered.measurements as { nightChecksPerResident: { perResident: unknown[] } };
    m.nightChecksPerResident.perResident.reverse();
    const again = store.save(parseBaseline(Object.fromEntries(Object.entries(reordered).reverse())), "admin");
    const changed = example();
    (changed.measurements as { minutesPerNightCheck: { value: number } }).minutesPerNightCheck.value = 5;
    now += 60_000;
    const third = store.save(parseBaseline(changed), "mette");
    const unitOne = store.save(parseBaseline({ ...example(), unit: "unit-1" }), "mette");

    expect([first.version, again.version, third.version]).toEqual([1, 2, 3]);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(third.fingerprint).not.toBe(first.fingerprint);
    expect(first.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(first.fingerprint).toBe(baselineFingerprint(parseBaseline(example())));
    // A unit's versions are numbered on their own.
    expect(unitOne.version).toBe(1);
    expect(again.recordedAt).toBe("2026-10-02T08:01:00.000Z");
    expect(again.savedBy).toBe("admin");

    expect(store.list("home-a").map((b) => b.id)).toEqual([unitOne.id, third.id, again.id, first.id]);
    expect(store.list("home-a", null).map((b) => b.version)).toEqual([3, 2, 1]);
    expect(store.list("home-a", "unit-1").map((b) => b.id)).toEqual([unitOne.id]);
    const read = store.get(first.id)!;
    expect(read).toEqual(first);
    const { id: _i, version: _v, fingerprint, recordedAt: _r, savedBy: _s, ...input } = read;
    expect(baselineFingerprint(input as BaselineInput)).toBe(fingerprint);
  });

  it("a saved version is never changed: the table refuses updates", () => {
    const t = dbs.open();
    const store = new BaselineStore(t.db);
    const b = store.save(parseBaseline(example()), "mette");
    expect(() => t.db.prepare("UPDATE baselines SET body = '{}' WHERE id = ?").run(b.id)).toThrow(
      /append-only/,
    );
    expect(store.get(b.id)).toEqual(b);
  });
});
