/**
 * The contract every TimeSeriesStore passes (in the manner of aedes-persistence's abstract.js): the
 * InfluxDB store and the embedded store run this same suite, so code above the interface can rely on
 * one behaviour. Each test gets a fresh, empty store from the factory.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type AggregateQuery,
  InvalidInputError,
  PartialWriteError,
  type Point,
  type TimeSeriesStore,
} from "../../src/store/timeseries.js";

export interface ContractSubject {
  store: TimeSeriesStore;
  cleanup(): Promise<void>;
}

const ms = (iso: string): number => Date.parse(iso);
const ns = (iso: string, extraNs = 0n): bigint => BigInt(ms(iso)) * 1_000_000n + extraNs;
const HOUR = 3_600_000;

function point(iso: string, fields: Point["fields"], tags: Point["tags"] = {}, measurement = "m"): Point {
  return { measurement, tags, fields, timeNs: ns(iso) };
}

/** Hourly points with v=1 over [fromIso, toIso). */
function hourly(fromIso: string, toIso: string, tags: Point["tags"] = { device: "d1" }): Point[] {
  const out: Point[] = [];
  for (let t = ms(fromIso); t < ms(toIso); t += HOUR) {
    out.push({ measurement: "m", tags, fields: { v: 1 }, timeNs: BigInt(t) * 1_000_000n });
  }
  return out;
}

export function timeSeriesContract(name: string, factory: () => Promise<ContractSubject>): void {
  describe(`TimeSeriesStore contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: TimeSeriesStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    const DAY_FROM = new Date("2026-05-01T00:00:00Z");
    const DAY_TO = new Date("2026-05-02T00:00:00Z");
    const q = (extra: Partial<AggregateQuery>): AggregateQuery => ({
      measurement: "m",
      field: "v",
      fn: "count",
      from: DAY_FROM,
      to: DAY_TO,
      ...extra,
    });
    const values = async (extra: Partial<AggregateQuery>) =>
      (await store.aggregate(q(extra))).map((r) => r.value);

    it("answers ping once started", async () => {
      expect(await store.ping()).toBe(true);
    });

    it("stores a written point, and writing the same point again leaves one point with the new value", async () => {
      const p = point("2026-05-01T10:00:00Z", { v: 5 }, { device: "d1" });
      await store.write([p]);
      await store.write([{ ...p, fields: { v: 7 } }]);
      await store.write([{ ...p, fields: { v: 7 } }]);
      expect(await values({ fn: "count" })).toEqual([1]);
      expect(await values({ fn: "sum" })).toEqual([7]);
    });

    it("merges the fields of a rewritten point, keeping fields the rewrite does not carry", async () => {
      const p = point("2026-05-01T10:00:00Z", { v: 1, w: 2 }, { device: "d1" });
      await store.write([p]);
      await store.write([{ ...p, fields: { v: 3 } }]);
      expect(await values({ fn: "sum", field: "v" })).toEqual([3]);
      expect(await values({ fn: "sum", field: "w" })).toEqual([2]);
    });

    it("keeps points apart that differ only in a tag, or by one nanosecond", async () => {
      const t = ns("2026-05-01T10:00:00Z");
      await store.write([
        { measurement: "m", tags: { device: "d1" }, fields: { v: 1 }, timeNs: t },
        { measurement: "m", tags: { device: "d2" }, fields: { v: 1 }, timeNs: t },
        { measurement: "m", tags: { device: "d1" }, fields: { v: 1 }, timeNs: t + 1n },
        { measurement: "m", tags: { device: "d1", room: "r1" }, fields: { v: 1 }, timeNs: t },
      ]);
      expect(await values({})).toEqual([4]);
    });

    it("treats a tag with an empty value as absent", async () => {
      const t = ns("2026-05-01T10:00:00Z");
      await store.write([
        { measurement: "m", tags: { device: "d1", room: "" }, fields: { v: 1 }, timeNs: t },
      ]);
      await store.write([{ measurement: "m", tags: { device: "d1" }, fields: { v: 2 }, timeNs: t }]);
      expect(await store.aggregate(q({ fn: "sum", groupBy: ["room"] }))).toEqual([
        { tags: { room: "" }, value: 2 },
      ]);
    });

    it("computes count, sum, mean, min and max over [from, to)", async () => {
      await store.write([
        point("2026-05-01T00:00:00Z", { v: 2 }),
        point("2026-05-01T06:00:00Z", { v: 4.5 }),
        point("2026-05-01T12:00:00Z", { v: -1 }),
        point("2026-05-01T23:59:59.999Z", { v: 10.5 }),
        point("2026-05-02T00:00:00Z", { v: 1000 }), // at `to`: excluded
        point("2026-04-30T23:59:59.999Z", { v: 1000 }), // before `from`: excluded
      ]);
      expect(await values({ fn: "count" })).toEqual([4]);
      expect(await values({ fn: "sum" })).toEqual([16]);
      expect(await values({ fn: "mean" })).toEqual([4]);
      expect(await values({ fn: "min" })).toEqual([-1]);
      expect(await values({ fn: "max" })).toEqual([10.5]);
      const rows = await store.aggregate(q({ fn: "sum" }));
      expect(rows).toEqual([{ tags: {}, value: 16 }]);
    });

    it("returns no rows when nothing matches", async () => {
      expect(await store.aggregate(q({}))).toEqual([]);
      await store.write([point("2026-05-01T10:00:00Z", { v: 1 })]);
      expect(await store.aggregate(q({ field: "other" }))).toEqual([]);
      expect(await store.aggregate(q({ measurement: "other" }))).toEqual([]);
      expect(await store.aggregate(q({ where: { device: [] } }))).toEqual([]);
      expect(await store.aggregate(q({ from: DAY_TO, to: DAY_FROM }))).toEqual([]);
    });

    it("counts a field only on the points that carry it", async () => {
      await store.write([
        point("2026-05-01T01:00:00Z", { v: 1, battery: 80 }),
        point("2026-05-01T02:00:00Z", { v: 1 }),
        point("2026-05-01T03:00:00Z", { v: 1, battery: 70 }),
      ]);
      expect(await values({ field: "battery" })).toEqual([2]);
      expect(await values({ field: "battery", fn: "mean" })).toEqual([75]);
    });

    it("filters with where on one value and on several values", async () => {
      await store.write([
        point("2026-05-01T01:00:00Z", { v: 1 }, { site: "s1", device: "a" }),
        point("2026-05-01T02:00:00Z", { v: 10 }, { site: "s1", device: "b" }),
        point("2026-05-01T03:00:00Z", { v: 100 }, { site: "s2", device: "c" }),
        point("2026-05-01T04:00:00Z", { v: 1000 }, { site: "s2", device: "d" }),
      ]);
      expect(await values({ fn: "sum", where: { site: "s1" } })).toEqual([11]);
      expect(await values({ fn: "sum", where: { device: ["a", "c", "zz"] } })).toEqual([101]);
      expect(await values({ fn: "sum", where: { site: "s2", device: ["b", "c"] } })).toEqual([100]);
      expect(await values({ fn: "sum", where: { site: "nowhere" } })).toEqual([]);
    });

    it('groups by tags, giving "" for a tag a point lacks, sorted by the tag values', async () => {
      await store.write([
        point("2026-05-01T01:00:00Z", { v: 1 }, { unit: "u2", room: "r1" }),
        point("2026-05-01T02:00:00Z", { v: 2 }, { unit: "u1", room: "r2" }),
        point("2026-05-01T03:00:00Z", { v: 4 }, { unit: "u1", room: "r1" }),
        point("2026-05-01T04:00:00Z", { v: 8 }, { unit: "u1", room: "r1" }),
        point("2026-05-01T05:00:00Z", { v: 16 }, { unit: "u1" }),
      ]);
      expect(await store.aggregate(q({ fn: "sum", groupBy: ["unit"] }))).toEqual([
        { tags: { unit: "u1" }, value: 30 },
        { tags: { unit: "u2" }, value: 1 },
      ]);
      expect(await store.aggregate(q({ fn: "sum", groupBy: ["unit", "room"] }))).toEqual([
        { tags: { unit: "u1", room: "" }, value: 16 },
        { tags: { unit: "u1", room: "r1" }, value: 12 },
        { tags: { unit: "u1", room: "r2" }, value: 2 },
        { tags: { unit: "u2", room: "r1" }, value: 1 },
      ]);
    });

    it("buckets by hour, omitting empty hours and reporting the start of a bucket that begins before from", async () => {
      await store.write([
        point("2026-05-01T10:15:00Z", { v: 1 }, { unit: "u1" }),
        point("2026-05-01T10:45:00Z", { v: 2 }, { unit: "u1" }),
        point("2026-05-01T11:59:59.999Z", { v: 4 }, { unit: "u2" }),
        point("2026-05-01T14:00:00Z", { v: 8 }, { unit: "u1" }),
      ]);
      const rows = await store.aggregate(
        q({
          fn: "sum",
          interval: "1h",
          from: new Date("2026-05-01T10:30:00Z"),
          to: new Date("2026-05-01T15:00:00Z"),
        }),
      );
      expect(rows).toEqual([
        { time: new Date("2026-05-01T10:00:00Z"), tags: {}, value: 2 },
        { time: new Date("2026-05-01T11:00:00Z"), tags: {}, value: 4 },
        { time: new Date("2026-05-01T14:00:00Z"), tags: {}, value: 8 },
      ]);
      const grouped = await store.aggregate(
        q({ fn: "count", interval: "1h", groupBy: ["unit"], to: new Date("2026-05-01T12:00:00Z") }),
      );
      expect(grouped).toEqual([
        { time: new Date("2026-05-01T10:00:00Z"), tags: { unit: "u1" }, value: 2 },
        { time: new Date("2026-05-01T11:00:00Z"), tags: { unit: "u2" }, value: 1 },
      ]);
    });

    it("buckets by UTC day without a time zone", async () => {
      await store.write(hourly("2026-05-01T00:00:00Z", "2026-05-03T06:00:00Z"));
      const rows = await store.aggregate(
        q({ interval: "1d", from: new Date("2026-05-01T00:00:00Z"), to: new Date("2026-05-04T00:00:00Z") }),
      );
      expect(rows.map((r) => [r.time?.toISOString(), r.value])).toEqual([
        ["2026-05-01T00:00:00.000Z", 24],
        ["2026-05-02T00:00:00.000Z", 24],
        ["2026-05-03T00:00:00.000Z", 6],
      ]);
    });

    it("buckets by local day in Europe/Copenhagen: 29 March 2026 has 23 hours and 25 October 2026 has 25", async () => {
      await store.write([
        ...hourly("2026-03-27T00:00:00Z", "2026-04-01T00:00:00Z"),
        ...hourly("2026-10-23T00:00:00Z", "2026-10-28T00:00:00Z"),
      ]);
      const spring = await store.aggregate(
        q({
          interval: "1d",
          timeZone: "Europe/Copenhagen",
          from: new Date("2026-03-27T23:00:00Z"), // 28 March 00:00 CET
          to: new Date("2026-03-30T22:00:00Z"), // 31 March 00:00 CEST
        }),
      );
      expect(spring.map((r) => [r.time?.toISOString(), r.value])).toEqual([
        ["2026-03-27T23:00:00.000Z", 24], // 28 March, CET
        ["2026-03-28T23:00:00.000Z", 23], // 29 March: 02:00 CET -> 03:00 CEST
        ["2026-03-29T22:00:00.000Z", 24], // 30 March, CEST
      ]);
      const autumn = await store.aggregate(
        q({
          interval: "1d",
          timeZone: "Europe/Copenhagen",
          from: new Date("2026-10-23T22:00:00Z"), // 24 October 00:00 CEST
          to: new Date("2026-10-26T23:00:00Z"), // 27 October 00:00 CET
        }),
      );
      expect(autumn.map((r) => [r.time?.toISOString(), r.value])).toEqual([
        ["2026-10-23T22:00:00.000Z", 24], // 24 October, CEST
        ["2026-10-24T22:00:00.000Z", 25], // 25 October: 03:00 CEST -> 02:00 CET
        ["2026-10-25T23:00:00.000Z", 24], // 26 October, CET
      ]);
    });

    it("buckets by local hour in Europe/Copenhagen, keeping the repeated hour of 25 October apart", async () => {
      await store.write(hourly("2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"));
      const rows = await store.aggregate(
        q({
          interval: "1h",
          timeZone: "Europe/Copenhagen",
          from: new Date("2026-10-24T23:00:00Z"),
          to: new Date("2026-10-25T03:00:00Z"),
        }),
      );
      // 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET
      expect(rows.map((r) => [r.time?.toISOString(), r.value])).toEqual([
        ["2026-10-24T23:00:00.000Z", 1],
        ["2026-10-25T00:00:00.000Z", 1],
        ["2026-10-25T01:00:00.000Z", 1],
        ["2026-10-25T02:00:00.000Z", 1],
      ]);
    });

    it("buckets by calendar week starting Monday 00:00 local time, across both DST changes", async () => {
      await store.write([
        ...hourly("2026-03-16T00:00:00Z", "2026-04-13T00:00:00Z"),
        ...hourly("2026-10-12T00:00:00Z", "2026-11-09T00:00:00Z"),
      ]);
      const week = (extra: Partial<AggregateQuery>) =>
        store
          .aggregate(q({ interval: "7d", timeZone: "Europe/Copenhagen", ...extra }))
          .then((rows) => rows.map((r) => [r.time?.toISOString(), r.value]));
      expect(
        await week({ from: new Date("2026-03-22T23:00:00Z"), to: new Date("2026-04-12T22:00:00Z") }),
      ).toEqual([
        ["2026-03-22T23:00:00.000Z", 167], // Monday 23 March CET; the week holds 29 March
        ["2026-03-29T22:00:00.000Z", 168], // Monday 30 March CEST
        ["2026-04-05T22:00:00.000Z", 168],
      ]);
      expect(
        await week({ from: new Date("2026-10-18T22:00:00Z"), to: new Date("2026-11-08T23:00:00Z") }),
      ).toEqual([
        ["2026-10-18T22:00:00.000Z", 169], // Monday 19 October CEST; the week holds 25 October
        ["2026-10-25T23:00:00.000Z", 168], // Monday 26 October CET
        ["2026-11-01T23:00:00.000Z", 168],
      ]);
      // Weekly mean, min and max roll up exactly.
      await store.write([point("2026-03-31T10:00:00Z", { v: 3 }, { device: "d2" })]);
      const stats = async (fn: AggregateQuery["fn"]) =>
        week({ fn, from: new Date("2026-03-29T22:00:00Z"), to: new Date("2026-04-05T22:00:00Z") });
      expect(await stats("mean")).toEqual([["2026-03-29T22:00:00.000Z", 171 / 169]]);
      expect(await stats("max")).toEqual([["2026-03-29T22:00:00.000Z", 3]]);
      expect(await stats("min")).toEqual([["2026-03-29T22:00:00.000Z", 1]]);
      expect(await stats("sum")).toEqual([["2026-03-29T22:00:00.000Z", 171]]);
    });

    it("round-trips tag values with spaces, commas, quotes and equals signs", async () => {
      const odd = [
        "Room 1, east",
        'say "hi"',
        "it's",
        "a=b",
        "x,y=z w",
        "Æblegården ✓",
        " leading and trailing ",
        "#--",
      ];
      await store.write(odd.map((room, i) => point(`2026-05-01T0${i}:00:00Z`, { v: i + 1 }, { room })));
      const rows = await store.aggregate(q({ fn: "sum", groupBy: ["room"] }));
      expect(rows.map((r) => r.tags.room).sort()).toEqual([...odd].sort());
      for (const [i, room] of odd.entries()) {
        expect(await values({ fn: "sum", where: { room } })).toEqual([i + 1]);
      }
      expect(await values({ fn: "sum", where: { room: odd } })).toEqual([36]);
    });

    it("round-trips string and boolean fields and counts them", async () => {
      await store.write([
        point("2026-05-01T01:00:00Z", { id: 'e-1 "quoted" \\ back', ok: true }),
        point("2026-05-01T02:00:00Z", { id: "e-2", ok: false }),
      ]);
      expect(await values({ field: "id" })).toEqual([2]);
      expect(await values({ field: "ok" })).toEqual([2]);
    });

    it("writes fields named in ints as integers, summed exactly", async () => {
      const big = 2 ** 52 + 1;
      await store.write([
        { ...point("2026-05-01T01:00:00Z", { n: big }), ints: ["n"] },
        { ...point("2026-05-01T02:00:00Z", { n: 2 }), ints: ["n"] },
      ]);
      expect(await values({ fn: "sum", field: "n" })).toEqual([big + 2]);
      expect(await values({ fn: "max", field: "n" })).toEqual([big]);
    });

    it("refuses a point that changes a field's type, and writes the rest of its batch", async () => {
      await store.write([point("2026-05-01T01:00:00Z", { v: 1.5 })]);
      await expect(
        store.write([point("2026-05-01T02:00:00Z", { v: "text" }), point("2026-05-01T03:00:00Z", { v: 2 })]),
      ).rejects.toBeInstanceOf(PartialWriteError);
      expect(await values({ fn: "sum" })).toEqual([3.5]);
    });

    it("refuses names that could inject, before writing or querying anything", async () => {
      const t = ns("2026-05-01T01:00:00Z");
      const bad = [
        'm" WHERE 1=1; DROP DATABASE "x',
        "m'; DROP TABLE series_points; --",
        "a b",
        "a,b",
        "a=b",
        "time",
        "",
        "_measurement",
        "x".repeat(65),
      ];
      for (const name of bad) {
        await expect(
          store.write([{ measurement: name, tags: {}, fields: { v: 1 }, timeNs: t }]),
        ).rejects.toBeInstanceOf(InvalidInputError);
        await expect(
          store.write([{ measurement: "m", tags: { [name]: "x" }, fields: { v: 1 }, timeNs: t }]),
        ).rejects.toBeInstanceOf(InvalidInputError);
        await expect(
          store.write([{ measurement: "m", tags: {}, fields: { [name]: 1 }, timeNs: t }]),
        ).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.aggregate(q({ measurement: name }))).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.aggregate(q({ field: name }))).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.aggregate(q({ groupBy: [name] }))).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.aggregate(q({ where: { [name]: "x" } }))).rejects.toBeInstanceOf(
          InvalidInputError,
        );
      }
      await expect(store.aggregate(q({ timeZone: "Europe/Copenhagen') DROP" }))).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(store.aggregate(q({ timeZone: "Mars/Olympus_Mons" }))).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      // A refused batch writes nothing, not even its valid points.
      await expect(
        store.write([
          point("2026-05-01T01:00:00Z", { v: 1 }),
          point("2026-05-01T02:00:00Z", { v: Number.NaN }),
        ]),
      ).rejects.toBeInstanceOf(InvalidInputError);
      expect(await store.aggregate(q({}))).toEqual([]);
    });

    it("treats a where value as a literal, however it is quoted", async () => {
      await store.write([point("2026-05-01T01:00:00Z", { v: 1 }, { device: "d1" })]);
      for (const value of [
        "' OR '1'='1",
        "d1' OR device =~ /.*/ OR device = '",
        "\\' OR 1=1 --",
        "d1\\",
        "d1\n",
      ]) {
        expect(await store.aggregate(q({ where: { device: value } }))).toEqual([]);
      }
      expect(await values({ where: { device: "d1" } })).toEqual([1]);
    });

    it("refuses tag values it cannot store faithfully", async () => {
      const t = ns("2026-05-01T01:00:00Z");
      for (const value of ["back\\slash", "line\nbreak", "tab\there", "x".repeat(257)]) {
        await expect(
          store.write([{ measurement: "m", tags: { room: value }, fields: { v: 1 }, timeNs: t }]),
        ).rejects.toBeInstanceOf(InvalidInputError);
      }
    });
  });
}
