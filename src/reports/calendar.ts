/**
 * Local calendar arithmetic for reports: dates, day and night windows and months in a site's time
 * zone. A "date" is a local calendar date "YYYY-MM-DD"; instants are epoch milliseconds.
 *
 * Wall times that do not exist (a spring-forward gap) resolve as if the earlier offset continued, and
 * wall times that exist twice (fall-back) resolve to the earlier instant: the "compatible" choice of
 * Temporal and of most calendars. Midnight in a gap is therefore the instant the clocks jump, which
 * is also where the time-series stores start a "1d" bucket.
 */
import { zoneOffsetMs } from "../time/zone.js";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export function isDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

function parts(date: string): [number, number, number] {
  const m = DATE.exec(date);
  if (!m) throw new Error(`not a date: ${date}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function fmt(y: number, m: number, d: number): string {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.toISOString().slice(0, 10);
}

export function addDays(date: string, n: number): string {
  const [y, m, d] = parts(date);
  return fmt(y, m, d + n);
}

export function addMonths(date: string, n: number): string {
  const [y, m] = parts(date);
  return fmt(y, m + n, 1);
}

/** The local calendar date of an instant. */
export function localDate(ms: number, tz: string): string {
  return new Date(ms + zoneOffsetMs(ms, tz)).toISOString().slice(0, 10);
}

/** Local hour of day (0-23) of an instant. */
export function localHour(ms: number, tz: string): number {
  const local = ms + zoneOffsetMs(ms, tz);
  return Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
}

/** The instant a local wall time occurs on a local date ("HH:MM"). */
export function wallTime(date: string, clock: string, tz: string): number {
  const [y, m, d] = parts(date);
  const [hh, mm] = clock.split(":").map(Number) as [number, number];
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  const before = zoneOffsetMs(wall - DAY, tz);
  const after = zoneOffsetMs(wall + DAY, tz);
  const candidates = [wall - before, wall - after].sort((a, b) => a - b);
  for (const c of candidates) if (zoneOffsetMs(c, tz) === wall - c) return c;
  return wall - before;
}

/** [start, end) of a local calendar day. */
export function dayWindow(date: string, tz: string): [number, number] {
  return [wallTime(date, "00:00", tz), wallTime(addDays(date, 1), "00:00", tz)];
}

/**
 * [start, end) of the night that starts on `date` (it belongs to that date). When the end clock is
 * after the start clock (e.g. 00:00-06:00) the night lies within the date.
 */
export function nightWindow(date: string, start: string, end: string, tz: string): [number, number] {
  const endDate = end > start ? date : addDays(date, 1);
  return [wallTime(date, start, tz), wallTime(endDate, end, tz)];
}

/** The local dates whose day starts in [fromMs, toMs). */
export function datesBetween(fromMs: number, toMs: number, tz: string): string[] {
  const out: string[] = [];
  let date = localDate(fromMs, tz);
  if (dayWindow(date, tz)[0] < fromMs) date = addDays(date, 1);
  while (dayWindow(date, tz)[0] < toMs) {
    out.push(date);
    date = addDays(date, 1);
  }
  return out;
}

/** Start of the local calendar month holding an instant. */
export function monthStart(ms: number, tz: string): number {
  return wallTime(`${localDate(ms, tz).slice(0, 8)}01`, "00:00", tz);
}

/** Month starts covering [fromMs, toMs); the first may lie before fromMs. */
export function monthStarts(fromMs: number, toMs: number, tz: string): number[] {
  const out: number[] = [];
  let date = `${localDate(fromMs, tz).slice(0, 8)}01`;
  for (;;) {
    const start = wallTime(date, "00:00", tz);
    if (start >= toMs) break;
    out.push(start);
    date = addMonths(date, 1);
  }
  return out;
}
