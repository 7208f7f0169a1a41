/**
 * A site's (or unit's) baseline: how night supervision, transfers and alarm handling were done
 * before the welfare technology, measured by the site over a stated period (issue 11). The time-saved
 * model's defaults are published figures; a baseline is the site's own, and the realised time saved
 * is measured against it.
 *
 * Names follow config/time-model.yaml where the quantity is the same (`nightChecksPerResident`,
 * `minutesPerNightCheck`); the rest say what was counted before the technology (a two-helper share,
 * not the model's one-helper share after ceiling lifts). Each measurement has one fixed unit, so a
 * stored value never needs a conversion to be read; a file may omit `unit`, and one that names
 * another unit is refused rather than guessed at.
 *
 * No resident data: residents are named by their pseudonymous ref (or their room), the person who
 * recorded it by name or staff id.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { isDate } from "../../time/zone.js";

/** Each measurement's unit (English; Danish beside it for the dashboard). */
export const BASELINE_UNITS = {
  nightChecksPerResident: { en: "checks per resident per night", da: "tilsyn pr. borger pr. nat" },
  minutesPerNightCheck: { en: "staff-minutes per check", da: "personaleminutter pr. tilsyn" },
  twoHelperTransferShare: {
    en: "share of transfers done by two helpers",
    da: "andel af forflytninger med to hjælpere",
  },
  minutesPerTwoHelperTransfer: {
    en: "staff-minutes per two-helper transfer",
    da: "personaleminutter pr. forflytning med to hjælpere",
  },
  alarmsPerNight: { en: "alarms per night", da: "alarmer pr. nat" },
  minutesPerAlarm: { en: "staff-minutes per attended alarm", da: "personaleminutter pr. alarm med fremmøde" },
} as const;
export type MeasurementKey = keyof typeof BASELINE_UNITS;
export const MEASUREMENT_KEYS = Object.keys(BASELINE_UNITS) as MeasurementKey[];

const Ref = z.string().trim().min(1).max(64);

/**
 * A resident's (or a room's) own value where it differs from the site's: 0 night checks says the
 * care plan has none, so that resident earns no night-supervision time.
 */
const PerResident = (max: number) =>
  z
    .strictObject({ resident: Ref.optional(), room: Ref.optional(), value: z.number().min(0).max(max) })
    .superRefine((e, ctx) => {
      if ((e.resident === undefined) === (e.room === undefined))
        ctx.addIssue({ code: "custom", message: "name exactly one of resident (a ref) or room" });
    });

function measurement(key: MeasurementKey, value: z.ZodNumber) {
  const unit = BASELINE_UNITS[key].en;
  return z.strictObject({
    value,
    unit: z
      .string()
      .optional()
      .refine((u) => u === undefined || u === unit, `the unit is "${unit}"`)
      .transform(() => unit),
    /** How it was measured, or the document it comes from ("care plans counted 2026-09-15"). */
    method: z.string().trim().min(1).max(2000),
  });
}

/** A measurement that may differ per resident or room (from their care plans). */
function perResidentMeasurement(key: MeasurementKey, max: number) {
  return measurement(key, z.number().min(0).max(max)).extend({
    perResident: z
      .array(PerResident(max))
      .max(2000)
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((e, i) => {
          const k = e.resident !== undefined ? `resident ${e.resident}` : `room ${e.room}`;
          if (seen.has(k)) ctx.addIssue({ code: "custom", path: [i], message: `${k} is listed twice` });
          seen.add(k);
        });
      })
      .optional(),
  });
}

const Minutes = z.number().positive().max(240);

export const Measurements = z
  .strictObject({
    nightChecksPerResident: perResidentMeasurement("nightChecksPerResident", 48).optional(),
    minutesPerNightCheck: measurement("minutesPerNightCheck", Minutes).optional(),
    twoHelperTransferShare: perResidentMeasurement("twoHelperTransferShare", 1).optional(),
    minutesPerTwoHelperTransfer: measurement("minutesPerTwoHelperTransfer", Minutes).optional(),
    alarmsPerNight: measurement("alarmsPerNight", z.number().min(0).max(1000)).optional(),
    minutesPerAlarm: measurement("minutesPerAlarm", Minutes).optional(),
  })
  .refine((m) => Object.values(m).some((v) => v !== undefined), "record at least one measurement");

const LocalDate = z.string().refine(isDate, "a date YYYY-MM-DD");

/** What a person records: a file for `ata baseline set`, or the body of POST /api/v1/baselines. */
export const BaselineInput = z.strictObject({
  site: Ref,
  /** Absent: the whole site. */
  unit: Ref.optional(),
  /** The dates the measurements were taken over, inclusive. */
  period: z
    .strictObject({ from: LocalDate, to: LocalDate })
    .refine((p) => p.from <= p.to, { message: "from must not be after to", path: ["to"] }),
  /** A name or staff id; never a resident's. */
  recordedBy: z.string().trim().min(1).max(120),
  note: z.string().trim().max(2000).optional(),
  measurements: Measurements,
});
export type BaselineInput = z.output<typeof BaselineInput>;

/** A saved version: what was recorded plus what the store assigned. */
export interface Baseline extends BaselineInput {
  id: number;
  /** 1, 2, 3... per site and unit; every save is a new version. */
  version: number;
  /** sha256 (hex) of the canonical JSON of what was recorded: same content, same fingerprint. */
  fingerprint: string;
  /** ISO 8601 instant of the save. */
  recordedAt: string;
  /** The token (staff id, "admin" or "cli") that saved it. */
  savedBy: string;
}

export interface BaselineProblem {
  path: string;
  message: string;
}

export class BaselineError extends Error {
  constructor(
    readonly problems: BaselineProblem[],
    source = "baseline",
  ) {
    super(`${source}:\n${problems.map((p) => `  ${p.path || "(root)"}: ${p.message}`).join("\n")}`);
    this.name = "BaselineError";
  }
}

/** Parses a baseline, every problem with its path ("measurements.minutesPerNightCheck.value"). */
export function parseBaseline(raw: unknown, source?: string): BaselineInput {
  const r = BaselineInput.safeParse(raw);
  if (!r.success)
    throw new BaselineError(
      r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      source,
    );
  return canonicalOrder(r.data);
}

/** Per-resident lists sorted (residents, then rooms), so their order never changes the fingerprint. */
function canonicalOrder(b: BaselineInput): BaselineInput {
  const key = (e: PerResidentEntry) => (e.resident !== undefined ? `0${e.resident}` : `1${e.room}`);
  const sorted = <M extends { perResident?: PerResidentEntry[] | undefined }>(m: M | undefined) =>
    m?.perResident ? { ...m, perResident: [...m.perResident].sort((a, c) => (key(a) < key(c) ? -1 : 1)) } : m;
  const measurements = { ...b.measurements };
  if (measurements.nightChecksPerResident)
    measurements.nightChecksPerResident = sorted(measurements.nightChecksPerResident);
  if (measurements.twoHelperTransferShare)
    measurements.twoHelperTransferShare = sorted(measurements.twoHelperTransferShare);
  return { ...b, measurements };
}

/** A resident's or room's own value. */
export type PerResidentEntry = { resident?: string | undefined; room?: string | undefined; value: number };

/** The measurements that may list residents and rooms, with their lists. */
export function perResidentLists(b: BaselineInput): [MeasurementKey, PerResidentEntry[]][] {
  const out: [MeasurementKey, PerResidentEntry[]][] = [];
  const m = b.measurements;
  if (m.nightChecksPerResident?.perResident)
    out.push(["nightChecksPerResident", m.nightChecksPerResident.perResident]);
  if (m.twoHelperTransferShare?.perResident)
    out.push(["twoHelperTransferShare", m.twoHelperTransferShare.perResident]);
  return out;
}

/** JSON with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

/** The fingerprint covers everything recorded, not when or by which token it was saved. */
export function baselineFingerprint(b: BaselineInput): string {
  return createHash("sha256").update(canonicalJson(b)).digest("hex");
}

/** A site as the checks below need it: its units and their rooms (the configuration's). */
export interface BaselineSite {
  id: string;
  units: readonly { id: string; rooms?: readonly string[] | undefined }[];
}

/**
 * What the schema cannot know: the site, unit and rooms exist, and every resident ref is a resident
 * of that site (of that unit, when the baseline is a unit's).
 */
export function checkBaselineScope(
  b: BaselineInput,
  sites: readonly BaselineSite[],
  residentOf: (ref: string) => { site: string; unit: string } | undefined,
): BaselineProblem[] {
  const site = sites.find((s) => s.id === b.site);
  if (!site) return [{ path: "site", message: `unknown site "${b.site}"` }];
  const problems: BaselineProblem[] = [];
  if (b.unit !== undefined && !site.units.some((u) => u.id === b.unit))
    problems.push({ path: "unit", message: `unknown unit "${b.unit}" in site "${b.site}"` });
  const units = site.units.filter((u) => b.unit === undefined || u.id === b.unit);
  const rooms = new Set(units.flatMap((u) => u.rooms ?? []));
  const where = b.unit !== undefined ? `unit "${b.unit}"` : `site "${b.site}"`;
  for (const [k, list] of perResidentLists(b)) {
    list.forEach((e, i) => {
      const path = `measurements.${k}.perResident.${i}`;
      if (e.room !== undefined && !rooms.has(e.room))
        problems.push({ path: `${path}.room`, message: `no room "${e.room}" in ${where}` });
      if (e.resident !== undefined) {
        const r = residentOf(e.resident);
        if (!r || r.site !== b.site || (b.unit !== undefined && r.unit !== b.unit))
          problems.push({ path: `${path}.resident`, message: `no resident "${e.resident}" in ${where}` });
      }
    });
  }
  return problems;
}
