/**
 * The one DST table: every test of local-day arithmetic (src/time, the reports, the rule windows)
 * checks against these rows rather than keeping its own.
 *
 * Each row is a local date in a zone and what a wall clock there does that day. The instants are
 * worked out by hand from the zones' rules in tzdata (2025b), not taken from the code under test:
 * - Europe/Copenhagen and Europe/Oslo: EU summer time, last Sunday of March and October at
 *   01:00 UTC (Directive 2000/84/EC art. 2-3); CET is UTC+1, CEST UTC+2.
 * - America/New_York: second Sunday of March 02:00 EST -> 03:00 EDT, first Sunday of November
 *   02:00 EDT -> 01:00 EST (15 U.S.C. 260a); EST is UTC-5, EDT UTC-4.
 * - America/Santiago: tzdata rule "Chile 2023 max Sep Sun>=2 4:00u": at 00:00 local (UTC-4) the
 *   clocks jump to 01:00 (UTC-3), so midnight itself does not exist that day.
 * - Asia/Kolkata: UTC+5:30 all year, no DST; a day is 24 hours and hours start at :30 UTC.
 *
 * `night` is the 22:00-07:00 night that starts on the evening before `date` and ends on its
 * morning: the night that holds the change.
 */

export interface ClockSample {
  /** An instant. */
  at: string;
  /** Its local date and wall clock. */
  date: string;
  clock: string;
  /** Whether it lies in the 22:00-07:00 night window. */
  inNight: boolean;
}

export interface DstDay {
  name: string;
  zone: string;
  /** The local date, and the day before it (the evening the night starts). */
  date: string;
  eve: string;
  /** The instants `date` starts and ends (the next date's start). */
  start: string;
  end: string;
  hours: 23 | 24 | 25;
  night: { from: "22:00"; to: "07:00"; start: string; end: string; hours: number };
  samples: ClockSample[];
}

const NIGHT = { from: "22:00", to: "07:00" } as const;

export const DST_DAYS: readonly DstDay[] = [
  {
    name: "Copenhagen spring forward (02:00 CET -> 03:00 CEST)",
    zone: "Europe/Copenhagen",
    date: "2026-03-29",
    eve: "2026-03-28",
    start: "2026-03-28T23:00:00.000Z",
    end: "2026-03-29T22:00:00.000Z",
    hours: 23,
    night: { ...NIGHT, start: "2026-03-28T21:00:00.000Z", end: "2026-03-29T05:00:00.000Z", hours: 8 },
    samples: [
      { at: "2026-03-28T20:59:00Z", date: "2026-03-28", clock: "21:59", inNight: false },
      { at: "2026-03-28T21:00:00Z", date: "2026-03-28", clock: "22:00", inNight: true },
      { at: "2026-03-28T22:59:00Z", date: "2026-03-28", clock: "23:59", inNight: true },
      { at: "2026-03-28T23:00:00Z", date: "2026-03-29", clock: "00:00", inNight: true },
      { at: "2026-03-29T00:59:00Z", date: "2026-03-29", clock: "01:59", inNight: true },
      { at: "2026-03-29T01:00:00Z", date: "2026-03-29", clock: "03:00", inNight: true },
      { at: "2026-03-29T04:59:00Z", date: "2026-03-29", clock: "06:59", inNight: true },
      { at: "2026-03-29T05:00:00Z", date: "2026-03-29", clock: "07:00", inNight: false },
      { at: "2026-03-29T05:30:00Z", date: "2026-03-29", clock: "07:30", inNight: false },
    ],
  },
  {
    name: "Copenhagen fall back (03:00 CEST -> 02:00 CET)",
    zone: "Europe/Copenhagen",
    date: "2026-10-25",
    eve: "2026-10-24",
    start: "2026-10-24T22:00:00.000Z",
    end: "2026-10-25T23:00:00.000Z",
    hours: 25,
    night: { ...NIGHT, start: "2026-10-24T20:00:00.000Z", end: "2026-10-25T06:00:00.000Z", hours: 10 },
    samples: [
      { at: "2026-10-24T19:59:00Z", date: "2026-10-24", clock: "21:59", inNight: false },
      { at: "2026-10-24T20:00:00Z", date: "2026-10-24", clock: "22:00", inNight: true },
      { at: "2026-10-24T22:00:00Z", date: "2026-10-25", clock: "00:00", inNight: true },
      { at: "2026-10-25T00:30:00Z", date: "2026-10-25", clock: "02:30", inNight: true },
      { at: "2026-10-25T01:30:00Z", date: "2026-10-25", clock: "02:30", inNight: true },
      { at: "2026-10-25T05:30:00Z", date: "2026-10-25", clock: "06:30", inNight: true },
      { at: "2026-10-25T06:00:00Z", date: "2026-10-25", clock: "07:00", inNight: false },
      { at: "2026-10-25T22:59:00Z", date: "2026-10-25", clock: "23:59", inNight: true },
      { at: "2026-10-25T23:00:00Z", date: "2026-10-26", clock: "00:00", inNight: true },
    ],
  },
  {
    name: "Oslo spring forward (02:00 CET -> 03:00 CEST)",
    zone: "Europe/Oslo",
    date: "2026-03-29",
    eve: "2026-03-28",
    start: "2026-03-28T23:00:00.000Z",
    end: "2026-03-29T22:00:00.000Z",
    hours: 23,
    night: { ...NIGHT, start: "2026-03-28T21:00:00.000Z", end: "2026-03-29T05:00:00.000Z", hours: 8 },
    samples: [
      { at: "2026-03-28T22:30:00Z", date: "2026-03-28", clock: "23:30", inNight: true },
      { at: "2026-03-29T00:30:00Z", date: "2026-03-29", clock: "01:30", inNight: true },
      { at: "2026-03-29T01:30:00Z", date: "2026-03-29", clock: "03:30", inNight: true },
      { at: "2026-03-29T05:00:00Z", date: "2026-03-29", clock: "07:00", inNight: false },
      { at: "2026-03-29T20:00:00Z", date: "2026-03-29", clock: "22:00", inNight: true },
    ],
  },
  {
    name: "Oslo fall back (03:00 CEST -> 02:00 CET)",
    zone: "Europe/Oslo",
    date: "2026-10-25",
    eve: "2026-10-24",
    start: "2026-10-24T22:00:00.000Z",
    end: "2026-10-25T23:00:00.000Z",
    hours: 25,
    night: { ...NIGHT, start: "2026-10-24T20:00:00.000Z", end: "2026-10-25T06:00:00.000Z", hours: 10 },
    samples: [
      { at: "2026-10-25T00:59:00Z", date: "2026-10-25", clock: "02:59", inNight: true },
      { at: "2026-10-25T01:00:00Z", date: "2026-10-25", clock: "02:00", inNight: true },
      { at: "2026-10-25T05:59:00Z", date: "2026-10-25", clock: "06:59", inNight: true },
      { at: "2026-10-25T06:00:00Z", date: "2026-10-25", clock: "07:00", inNight: false },
      { at: "2026-10-25T21:00:00Z", date: "2026-10-25", clock: "22:00", inNight: true },
    ],
  },
  {
    name: "New York spring forward (02:00 EST -> 03:00 EDT)",
    zone: "America/New_York",
    date: "2026-03-08",
    eve: "2026-03-07",
    start: "2026-03-08T05:00:00.000Z",
    end: "2026-03-09T04:00:00.000Z",
    hours: 23,
    night: { ...NIGHT, start: "2026-03-08T03:00:00.000Z", end: "2026-03-08T11:00:00.000Z", hours: 8 },
    samples: [
      { at: "2026-03-08T06:59:00Z", date: "2026-03-08", clock: "01:59", inNight: true },
      { at: "2026-03-08T07:00:00Z", date: "2026-03-08", clock: "03:00", inNight: true },
      { at: "2026-03-08T11:00:00Z", date: "2026-03-08", clock: "07:00", inNight: false },
    ],
  },
  {
    name: "New York fall back (02:00 EDT -> 01:00 EST)",
    zone: "America/New_York",
    date: "2026-11-01",
    eve: "2026-10-31",
    start: "2026-11-01T04:00:00.000Z",
    end: "2026-11-02T05:00:00.000Z",
    hours: 25,
    night: { ...NIGHT, start: "2026-11-01T02:00:00.000Z", end: "2026-11-01T12:00:00.000Z", hours: 10 },
    samples: [
      { at: "2026-11-01T05:30:00Z", date: "2026-11-01", clock: "01:30", inNight: true },
      { at: "2026-11-01T06:30:00Z", date: "2026-11-01", clock: "01:30", inNight: true },
      { at: "2026-11-01T11:59:00Z", date: "2026-11-01", clock: "06:59", inNight: true },
      { at: "2026-11-01T12:00:00Z", date: "2026-11-01", clock: "07:00", inNight: false },
    ],
  },
  {
    name: "Santiago spring forward at midnight (00:00 -04 -> 01:00 -03): the day starts at the jump",
    zone: "America/Santiago",
    date: "2026-09-06",
    eve: "2026-09-05",
    start: "2026-09-06T04:00:00.000Z",
    end: "2026-09-07T03:00:00.000Z",
    hours: 23,
    night: { ...NIGHT, start: "2026-09-06T02:00:00.000Z", end: "2026-09-06T10:00:00.000Z", hours: 8 },
    samples: [
      { at: "2026-09-06T03:59:00Z", date: "2026-09-05", clock: "23:59", inNight: true },
      { at: "2026-09-06T04:00:00Z", date: "2026-09-06", clock: "01:00", inNight: true },
      { at: "2026-09-06T10:00:00Z", date: "2026-09-06", clock: "07:00", inNight: false },
    ],
  },
  {
    name: "Kolkata, no DST and a half-hour offset (UTC+5:30)",
    zone: "Asia/Kolkata",
    date: "2026-03-29",
    eve: "2026-03-28",
    start: "2026-03-28T18:30:00.000Z",
    end: "2026-03-29T18:30:00.000Z",
    hours: 24,
    night: { ...NIGHT, start: "2026-03-28T16:30:00.000Z", end: "2026-03-29T01:30:00.000Z", hours: 9 },
    samples: [
      { at: "2026-03-28T16:29:00Z", date: "2026-03-28", clock: "21:59", inNight: false },
      { at: "2026-03-28T18:30:00Z", date: "2026-03-29", clock: "00:00", inNight: true },
      { at: "2026-03-29T01:30:00Z", date: "2026-03-29", clock: "07:00", inNight: false },
    ],
  },
];

/** Local minutes of a clock "HH:MM". */
export const clockMinutes = (clock: string): number =>
  Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));
