/**
 * Local time in a site's time zone: the one place the gateway turns instants into local dates and
 * clock times and back. Reports, the time-saved job, the time-series stores and rule windows all
 * use it, and test/time/dst-table.ts is the one DST table they are all tested against.
 *
 * A "date" is a local calendar date "YYYY-MM-DD", a "clock" a local wall time "HH:MM", and an
 * instant epoch milliseconds. `Intl.DateTimeFormat` supplies the zone's rules (tzdata of the Node
 * build); nothing here knows a zone's DST dates.
 *
 * Wall times that do not exist (a spring-forward gap) resolve as if the earlier offset continued,
 * and wall times that exist twice (fall-back) resolve to the earlier instant: the "compatible"
 * choice of Temporal and of most calendars. Midnight in a gap is therefore the instant the clocks
 * jump, which is also where the time-series stores start a "1d" bucket.
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Whether the runtime knows the IANA zone `tz`. */
export function isTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

export interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The local wall-clock reading of an instant. */
export function localParts(ms: number, tz: string): LocalParts {
  const out: LocalParts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(tz).formatToParts(ms)) {
    if (part.type in out) out[part.type as keyof LocalParts] = Number(part.value);
  }
  return out;
}

/**
 * Offsets by zone and 15-minute slot of UTC. Every transition in today's tz database falls on a
 * quarter hour, so an offset holds for its whole slot; the cache saves a formatToParts (a dozen
 * small objects) per call on paths that run for every event: the rule windows, the series buckets.
 * Instants before 1970 are not cached (local mean times changed at odd seconds).
 */
const SLOT_MS = 15 * MINUTE;
const offsets = new Map<string, Map<number, number>>();
const MAX_CACHED_SLOTS = 20_000;

/** The zone's offset from UTC at an instant, in ms (positive east of Greenwich). */
export function zoneOffsetMs(ms: number, tz: string): number {
  if (tz === "UTC") return 0;
  if (ms < 0) return computeOffset(ms, tz);
  const slot = Math.floor(ms / SLOT_MS);
  let byZone = offsets.get(tz);
  if (!byZone) {
    byZone = new Map();
    offsets.set(tz, byZone);
  }
  let offset = byZone.get(slot);
  if (offset === undefined) {
    offset = computeOffset(slot * SLOT_MS, tz);
    if (byZone.size >= MAX_CACHED_SLOTS) byZone.clear();
    byZone.set(slot, offset);
  }
  return offset;
}

function computeOffset(ms: number, tz: string): number {
  const l = localParts(ms, tz);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/** The local calendar date of an instant. */
export function localDate(ms: number, tz: string): string {
  return new Date(ms + zoneOffsetMs(ms, tz)).toISOString().slice(0, 10);
}

/** Local hour of day (0-23) of an instant. */
export function localHour(ms: number, tz: string): number {
  return Math.floor(localTimeOfDay(ms, tz) / 60);
}

/** Minutes after local midnight by the wall clock (the repeated autumn hour reads the same twice). */
export function localTimeOfDay(ms: number, tz: string): number {
  const local = ms + zoneOffsetMs(ms, tz);
  return Math.floor((((local % DAY) + DAY) % DAY) / MINUTE);
}

const minutesOf = (clock: string) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));

/** Whether the wall clock at `ms` is in [from, to); from > to spans midnight. */
export function isWithinLocalWindow(ms: number, window: { from: string; to: string }, tz: string): boolean {
  const t = localTimeOfDay(ms, tz);
  const from = minutesOf(window.from);
  const to = minutesOf(window.to);
  return from <= to ? t >= from && t < to : t >= from || t < to;
}

// ---------------------------------------------------------------------------------------------
// Dates: plain calendar arithmetic, no zone involved.

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
  return new Date(Date.UTC(y, m - 1, d)).toISOString().slice(0, 10);
}

export function addDays(date: string, n: number): string {
  const [y, m, d] = parts(date);
  return fmt(y, m, d + n);
}

/** The first of the month `n` months after the month of `date`. */
export function addMonths(date: string, n: number): string {
  const [y, m] = parts(date);
  return fmt(y, m + n, 1);
}

/** ISO weekday of a date: Monday 1 ... Sunday 7. */
export function isoWeekday(date: string): number {
  const [y, m, d] = parts(date);
  return ((new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7) + 1;
}

// ---------------------------------------------------------------------------------------------
// From local dates and clocks back to instants.

/** The instant a local wall time ("HH:MM") occurs on a local date. */
export function wallTime(date: string, clock: string, tz: string): number {
  const [y, m, d] = parts(date);
  const [hh, mm] = clock.split(":").map(Number) as [number, number];
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  const before = zoneOffsetMs(wall - DAY, tz);
  const after = zoneOffsetMs(wall + DAY, tz);
  const candidates = [wall - before, wall - after].sort((a, b) => a - b);
  for (const c of candidates) if (zoneOffsetMs(c, tz) === wall - c) return c;
  // The wall time does not exist (the clocks jump over it): the earlier offset continues.
  return wall - before;
}

/** The instant a local date starts: its midnight, or the end of a DST gap that swallows it. */
export function startOfLocalDay(date: string, tz: string): number {
  return wallTime(date, "00:00", tz);
}

/** [start, end) of a local calendar day: 23, 24 or 25 hours long. */
export function dayWindow(date: string, tz: string): [number, number] {
  return [startOfLocalDay(date, tz), startOfLocalDay(addDays(date, 1), tz)];
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
export function localDays(fromMs: number, toMs: number, tz: string): string[] {
  const out: string[] = [];
  let date = localDate(fromMs, tz);
  if (startOfLocalDay(date, tz) < fromMs) date = addDays(date, 1);
  while (startOfLocalDay(date, tz) < toMs) {
    out.push(date);
    date = addDays(date, 1);
  }
  return out;
}

/** Start of the local hour holding an instant (a half-hour zone's hours start at :30 UTC). */
export function startOfLocalHour(ms: number, tz: string): number {
  const local = ms + zoneOffsetMs(ms, tz);
  return ms - (((local % HOUR) + HOUR) % HOUR);
}

/** Start of the local ISO week (Monday 00:00) holding an instant. */
export function startOfLocalWeek(ms: number, tz: string): number {
  const date = localDate(ms, tz);
  return startOfLocalDay(addDays(date, 1 - isoWeekday(date)), tz);
}

/** Start of the local calendar month holding an instant. */
export function monthStart(ms: number, tz: string): number {
  return startOfLocalDay(`${localDate(ms, tz).slice(0, 8)}01`, tz);
}

/** Month starts covering [fromMs, toMs); the first may lie before fromMs. */
export function monthStarts(fromMs: number, toMs: number, tz: string): number[] {
  const out: number[] = [];
  let date = `${localDate(fromMs, tz).slice(0, 8)}01`;
  for (;;) {
    const start = startOfLocalDay(date, tz);
    if (start >= toMs) break;
    out.push(start);
    date = addMonths(date, 1);
  }
  return out;
}
