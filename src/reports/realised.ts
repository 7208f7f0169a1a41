/**
 * Realised time saved: only what changed against the site's own baseline (src/reports/baseline/)
 * and was observed. The potential figure (timesaved.ts) asks what the technology makes possible
 * with the model's published figures; the realised figure asks what the site actually stopped doing:
 *
 *   night_supervision   per qualified resident-night: max(0, the resident's checks in the baseline
 *                       - visits made) x the baseline's minutes per check. A resident whose care
 *                       plan had no night checks earns nothing.
 *   lift_transfers      per one-helper cycle: the baseline's two-helper share for that resident (or
 *                       room, or the site's) x (the baseline's staff-minutes per two-helper transfer
 *                       - one helper's ceiling-lift minutes). A resident moved by one helper before
 *                       earns nothing.
 *   remote_resolution   care alerts resolved without a visit x the baseline's minutes per alarm.
 *   false_alarms        attended false alarms x -(the baseline's minutes per alarm): a cost.
 *
 * A category whose baseline measurement is missing has no realised figure (not zero: unknown), and
 * a minute that rests on a model placeholder rather than the site's measurement is named as such.
 * docs/time-model.md "Realised and potential" works an example.
 */
import type { Baseline, PerResidentEntry } from "./baseline/schema.js";
import type { SiteModel } from "./model.js";
import type { Category } from "./timesaved.js";

/** What a realised category needs from the baseline; without it the category is not measured. */
export const REALISED_NEEDS: Record<Category, keyof Baseline["measurements"]> = {
  night_supervision: "nightChecksPerResident",
  lift_transfers: "twoHelperTransferShare",
  remote_resolution: "minutesPerAlarm",
  false_alarms: "minutesPerAlarm",
};

/** Where a realised category's minutes per item come from. */
export interface RealisedRates {
  /** Staff-minutes per night check: the baseline's, else the model's. */
  minutesPerNightCheck: number;
  /** True when that is the model's and the model's is a placeholder. */
  nightCheckPlaceholder: boolean;
  /** Staff-minutes saved per one-helper cycle where the baseline had two helpers. */
  liftMinutesSaved: number;
  /** Staff-minutes per alarm handled in the room (remote resolution saves it; a false alarm costs it). */
  minutesPerAlarm: number | null;
  /** Minutes per attended false alarm: the baseline's per alarm, else the model's. */
  minutesPerFalseAlarm: number;
  falseAlarmPlaceholder: boolean;
}

/** The rates a unit's realised figures use: the baseline's measurements, else the site's model. */
export function realisedRates(b: Baseline, sm: SiteModel): RealisedRates {
  const m = b.measurements;
  const p = sm.params;
  const ceilingMinutes = p.transferSecondsCeilingLift / 60;
  return {
    minutesPerNightCheck: m.minutesPerNightCheck?.value ?? p.minutesPerNightCheck,
    nightCheckPlaceholder:
      m.minutesPerNightCheck === undefined && sm.parameters.minutesPerNightCheck.placeholder,
    liftMinutesSaved:
      m.minutesPerTwoHelperTransfer !== undefined
        ? Math.max(0, m.minutesPerTwoHelperTransfer.value - ceilingMinutes)
        : p.liftMinutesSavedPerTransfer,
    minutesPerAlarm: m.minutesPerAlarm?.value ?? null,
    minutesPerFalseAlarm: m.minutesPerAlarm?.value ?? p.minutesPerFalseAlarm,
    falseAlarmPlaceholder: m.minutesPerAlarm === undefined && sm.parameters.minutesPerFalseAlarm.placeholder,
  };
}

/**
 * A resident's own value from a per-resident list: by ref first, then by room, else the
 * measurement's site value; undefined when the baseline lacks the measurement.
 */
export function perResidentValue(
  measurement: { value: number; perResident?: PerResidentEntry[] | undefined } | undefined,
  resident: string | null,
  room: string | null,
): number | undefined {
  if (!measurement) return undefined;
  const { byResident, byRoom } = indexed(measurement.perResident ?? []);
  return (
    (resident !== null ? byResident.get(resident) : undefined) ??
    (room !== null ? byRoom.get(room) : undefined) ??
    measurement.value
  );
}

const indexes = new WeakMap<
  readonly PerResidentEntry[],
  { byResident: Map<string, number>; byRoom: Map<string, number> }
>();

/** A list as two lookups, built once per baseline (a site's day asks for every resident). */
function indexed(list: readonly PerResidentEntry[]) {
  let ix = indexes.get(list);
  if (!ix) {
    ix = { byResident: new Map(), byRoom: new Map() };
    for (const e of list) {
      if (e.resident !== undefined) ix.byResident.set(e.resident, e.value);
      if (e.room !== undefined) ix.byRoom.set(e.room, e.value);
    }
    indexes.set(list, ix);
  }
  return ix;
}
