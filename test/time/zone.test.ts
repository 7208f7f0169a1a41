import { describe, expect, it } from "vitest";
import {
  addDays,
  dayWindow,
  HOUR,
  isoWeekday,
  isTimeZone,
  isWithinLocalWindow,
  localDate,
  localDays,
  localHour,
  localTimeOfDay,
  MINUTE,
  monthStart,
  monthStarts,
  nightWindow,
  startOfLocalDay,
  startOfLocalHour,
  startOfLocalWeek,
  wallTime,
} from "../../src/time/zone.js";
import { clockMinutes, DST_DAYS } from "./dst-table.js";

const ms = (iso: string) => Date.parse(iso);
const iso = (t: number) => new Date(t).toISOString();

describe.each(DST_DAYS)("$name", (d) => {
  it(`the day starts at ${d.start} and lasts ${d.hours} hours`, () => {
    expect(iso(startOfLocalDay(d.date, d.zone))).toBe(d.start);
    const [start, end] = dayWindow(d.date, d.zone);
    expect([iso(start), iso(end)]).toEqual([d.start, d.end]);
    expect((end - start) / HOUR).toBe(d.hours);
    expect(dayWindow(d.eve, d.zone)[1]).toBe(start);
  });

  it("the local date changes exactly at the day's start and end", () => {
    expect(localDate(ms(d.start) - 1, d.zone)).toBe(d.eve);
    expect(localDate(ms(d.start), d.zone)).toBe(d.date);
    expect(localDate(ms(d.end) - 1, d.zone)).toBe(d.date);
    expect(localDate(ms(d.end), d.zone)).toBe(addDays(d.date, 1));
  });

  it(`the 22:00-07:00 night before it lasts ${d.night.hours} hours`, () => {
    const [start, end] = nightWindow(d.eve, d.night.from, d.night.to, d.zone);
    expect([iso(start), iso(end)]).toEqual([d.night.start, d.night.end]);
    expect((end - start) / HOUR).toBe(d.night.hours);
  });

  it("minute by minute, the window holds exactly from the night's start to its end", () => {
    const window = { from: d.night.from, to: d.night.to };
    let inside = 0;
    let first: number | undefined;
    let last: number | undefined;
    for (let t = ms(d.start) - 6 * HOUR; t < ms(d.end); t += MINUTE) {
      if (!isWithinLocalWindow(t, window, d.zone)) continue;
      // Only the night before the date: the evening of the date itself starts another.
      if (t >= ms(d.night.end)) break;
      inside++;
      first ??= t;
      last = t;
    }
    expect(iso(first!)).toBe(d.night.start);
    expect(iso(last! + MINUTE)).toBe(d.night.end);
    expect(inside).toBe(d.night.hours * 60);
  });

  it.each(d.samples)("$at reads $date $clock (night: $inNight)", (s) => {
    const t = ms(s.at);
    expect(localDate(t, d.zone)).toBe(s.date);
    expect(localTimeOfDay(t, d.zone)).toBe(clockMinutes(s.clock));
    expect(localHour(t, d.zone)).toBe(Number(s.clock.slice(0, 2)));
    expect(isWithinLocalWindow(t, { from: d.night.from, to: d.night.to }, d.zone)).toBe(s.inNight);
  });

  it("the local days of the two days around it are found once each", () => {
    expect(localDays(ms(d.start) - HOUR, ms(d.end), d.zone)).toEqual([d.date]);
    expect(localDays(ms(d.start) + 1, ms(d.end) + 1, d.zone)).toEqual([addDays(d.date, 1)]);
    expect(localDays(dayWindow(d.eve, d.zone)[0], ms(d.end) + 1, d.zone)).toEqual([
      d.eve,
      d.date,
      addDays(d.date, 1),
    ]);
  });

  it("a week starts on Monday at local midnight, the month on the 1st", () => {
    const monday = addDays(d.date, 1 - isoWeekday(d.date));
    expect(startOfLocalWeek(ms(d.start) + 12 * HOUR, d.zone)).toBe(startOfLocalDay(monday, d.zone));
    expect(localDate(startOfLocalWeek(ms(d.start), d.zone), d.zone)).toBe(monday);
    const first = `${d.date.slice(0, 8)}01`;
    expect(monthStart(ms(d.start), d.zone)).toBe(startOfLocalDay(first, d.zone));
  });

  it("every local hour of the day starts on the local clock", () => {
    for (let t = ms(d.start); t < ms(d.end); t += 7 * MINUTE) {
      const h = startOfLocalHour(t, d.zone);
      expect(t - h).toBeLessThan(HOUR);
      expect(localTimeOfDay(h, d.zone) % 60).toBe(0);
    }
  });
});

describe("wall times", () => {
  it("a wall time in the spring gap continues the earlier offset; a repeated one is the earlier instant", () => {
    // 02:30 does not exist in Copenhagen on 29 March 2026: 02:30 CET would be 01:30Z.
    expect(iso(wallTime("2026-03-29", "02:30", "Europe/Copenhagen"))).toBe("2026-03-29T01:30:00.000Z");
    // 02:30 happens twice on 25 October 2026: first in CEST.
    expect(iso(wallTime("2026-10-25", "02:30", "Europe/Copenhagen"))).toBe("2026-10-25T00:30:00.000Z");
  });

  it("ISO weekdays run Monday 1 to Sunday 7", () => {
    expect(isoWeekday("2026-03-29")).toBe(7);
    expect(isoWeekday("2026-03-30")).toBe(1);
    expect(isoWeekday("2026-10-24")).toBe(6);
  });

  it("months start at local midnight and step across year ends", () => {
    const starts = monthStarts(ms("2026-11-15T00:00:00Z"), ms("2027-02-01T00:00:00Z"), "Europe/Copenhagen");
    expect(starts.map(iso)).toEqual([
      "2026-10-31T23:00:00.000Z",
      "2026-11-30T23:00:00.000Z",
      "2026-12-31T23:00:00.000Z",
      "2027-01-31T23:00:00.000Z",
    ]);
  });

  it("knows IANA zones and refuses others", () => {
    expect(isTimeZone("Europe/Oslo")).toBe(true);
    expect(isTimeZone("UTC")).toBe(true);
    expect(isTimeZone("Europe/Atlantis")).toBe(false);
  });
});
