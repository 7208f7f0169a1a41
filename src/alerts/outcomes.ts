/**
 * Which resolve outcomes each alert type allows, in the order staff are offered them. One table,
 * read by the alert manager (which refuses anything else, over WebSocket and HTTP alike), sent to
 * the console in `welcome` so the resolve dialog shows only these, and used by the outcome report.
 *
 * Why per type: an outcome is a clinical record. A pendant call resolved as "fall without injury"
 * would count a fall that no sensor saw and hide a call in the fall figures, so the choices follow
 * what the alert can have been. Falls come first where a fall is what staff most likely found.
 */
import type { Outcome } from "./model.js";

export const OUTCOMES_BY_TYPE: Readonly<Record<string, readonly Outcome[]>> = {
  fall: ["fall-without-injury", "fall-with-injury", "false-alarm", "assistance-given", "no-action"],
  // A pendant call is a person asking; if they had fallen, the fall sensor's alert records it.
  call: ["assistance-given", "false-alarm", "no-action"],
  // A fall-risk resident out of bed at night may be found on the floor.
  "bed-exit": ["assistance-given", "no-action", "fall-without-injury", "fall-with-injury", "false-alarm"],
  // A review prompt for the nurse, not an event in a room.
  "repeated-falls": ["assistance-given", "no-action"],
  "device-offline": ["no-action", "false-alarm"],
  "battery-low": ["no-action", "false-alarm"],
  tamper: ["no-action", "false-alarm"],
  "lift-fault": ["no-action", "assistance-given", "false-alarm"],
};

/** For alert types a rule file adds that this table does not know: every outcome, falls last. */
export const DEFAULT_OUTCOMES: readonly Outcome[] = [
  "assistance-given",
  "no-action",
  "false-alarm",
  "fall-without-injury",
  "fall-with-injury",
];

export function allowedOutcomes(type: string): readonly Outcome[] {
  return Object.hasOwn(OUTCOMES_BY_TYPE, type) ? OUTCOMES_BY_TYPE[type]! : DEFAULT_OUTCOMES;
}

export function outcomeAllowed(type: string, outcome: Outcome): boolean {
  return allowedOutcomes(type).includes(outcome);
}

/** What clients are told (welcome, /api/v1/me): the table and the default for other types. */
export function outcomeCatalogue(): { byType: Record<string, Outcome[]>; default: Outcome[] } {
  return {
    byType: Object.fromEntries(Object.entries(OUTCOMES_BY_TYPE).map(([k, v]) => [k, [...v]])),
    default: [...DEFAULT_OUTCOMES],
  };
}
