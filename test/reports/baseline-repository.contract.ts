/**
 * The contract every BaselineRepository passes (as the time-series stores share
 * test/store/timeseries.contract.ts): the SQLite store and the PostgreSQL one run this same suite, so
 * code above the interface, and a later export from one into the other, can rely on one behaviour.
 * Each test gets a fresh, empty repository from the factory, reading time from the clock it is given.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BaselineRepository } from "../../src/reports/baseline/repository.js";
import { type BaselineInput, baselineFingerprint, parseBaseline } from "../../src/reports/baseline/schema.js";

export interface BaselineContractSubject {
  repo: BaselineRepository;
  /** Runs one SQL statement on the store's own database, past the repository; rejects as the database does. */
  raw(sql: string): Promise<void>;
  cleanup(): Promise<void>;
}

function input(over: Record<string, unknown> = {}): BaselineInput {
  return parseBaseline({
    site: "home-a",
    period: { from: "2026-09-01", to: "2026-09-30" },
    recordedBy: "Mette (leder)",
    measurements: {
      nightChecksPerResident: {
        value: 2,
        method: "counted in the care plans on 2026-09-15",
        perResident: [{ room: "r3", value: 3 }],
      },
      minutesPerNightCheck: { value: 4.5, method: "stopwatch, 40 checks" },
    },
    ...over,
  });
}

export function baselineRepositoryContract(
  name: string,
  factory: (now: () => number) => Promise<BaselineContractSubject>,
): void {
  describe(`BaselineRepository contract: ${name}`, () => {
    let subject: BaselineContractSubject;
    let repo: BaselineRepository;
    let clock = Date.parse("2026-10-01T08:00:00.123Z");

    beforeEach(async () => {
      clock = Date.parse("2026-10-01T08:00:00.123Z");
      subject = await factory(() => clock);
      repo = subject.repo;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    it("numbers versions 1, 2, 3 per site and per unit, the site-wide baseline counted apart from each unit's", async () => {
      const versions: [string, string | undefined, number][] = [];
      for (const [site, unit] of [
        ["home-a", undefined],
        ["home-a", "nord"],
        ["home-a", undefined],
        ["home-b", undefined],
        ["home-a", "nord"],
        ["home-a", "syd"],
        ["home-a", undefined],
      ] as const) {
        const b = await repo.save(input({ site, ...(unit ? { unit } : {}) }), "mette");
        versions.push([b.site, b.unit, b.version]);
      }
      expect(versions).toEqual([
        ["home-a", undefined, 1],
        ["home-a", "nord", 1],
        ["home-a", undefined, 2],
        ["home-b", undefined, 1],
        ["home-a", "nord", 2],
        ["home-a", "syd", 1],
        ["home-a", undefined, 3],
      ]);
    });

    it("gives back exactly what was saved: the input, its fingerprint, the time of the save and who saved it", async () => {
      const recorded = input({ unit: "nord", note: "nat og aften, æøå" });
      const saved = await repo.save(recorded, "staff-7");
      expect(saved).toEqual({
        ...recorded,
        id: saved.id,
        version: 1,
        fingerprint: baselineFingerprint(recorded),
        recordedAt: "2026-10-01T08:00:00.123Z",
        savedBy: "staff-7",
      });
      expect(await repo.get(saved.id)).toEqual(saved);
    });

    it("an id never saved is undefined, not an error", async () => {
      const saved = await repo.save(input(), "mette");
      expect(await repo.get(saved.id + 1000)).toBeUndefined();
      expect(await repo.get(-1)).toBeUndefined();
    });

    it("lists a site's versions newest first: all of them, the site-wide ones for null, one unit's for its name", async () => {
      const saved = [];
      for (const unit of [undefined, "nord", undefined, "syd", "nord"]) {
        clock += 60_000;
        saved.push(await repo.save(input(unit ? { unit } : {}), "mette"));
      }
      await repo.save(input({ site: "home-b" }), "mette");
      const ids = (list: { id: number }[]) => list.map((b) => b.id);
      const [s1, n1, s2, y1, n2] = saved.map((b) => b.id);
      expect(ids(await repo.list("home-a"))).toEqual([n2, y1, s2, n1, s1]);
      expect(ids(await repo.list("home-a", null))).toEqual([s2, s1]);
      expect(ids(await repo.list("home-a", "nord"))).toEqual([n2, n1]);
      expect(ids(await repo.list("home-a", "øst"))).toEqual([]);
      expect(await repo.list("home-x")).toEqual([]);
      expect((await repo.list("home-a"))[0]).toEqual(saved[4]);
    });

    it("20 saves at once for one site and unit get versions 1 to 20, none missing, none twice", async () => {
      const saves = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          repo.save(input({ unit: "nord", note: `save ${i}` }), `staff-${i}`),
        ),
      );
      expect(saves.map((b) => b.version).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      // Versions follow the order of the commits, which is the order of the ids.
      const listed = await repo.list("home-a", "nord");
      expect(listed.map((b) => b.version)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i));
      // A site-wide save alongside still starts at 1.
      expect((await repo.save(input(), "mette")).version).toBe(1);
    });

    it("the database itself refuses to change or delete a saved version", async () => {
      const saved = await repo.save(input(), "mette");
      await expect(
        subject.raw(`UPDATE baselines SET saved_by = 'someone' WHERE id = ${saved.id}`),
      ).rejects.toThrow(/append-only/);
      await expect(subject.raw(`UPDATE baselines SET version = 7`)).rejects.toThrow(/append-only/);
      await expect(subject.raw(`DELETE FROM baselines WHERE id = ${saved.id}`)).rejects.toThrow(
        /append-only/,
      );
      await expect(subject.raw("DELETE FROM baselines")).rejects.toThrow(/append-only/);
      expect(await repo.get(saved.id)).toEqual(saved);
      expect((await repo.save(input(), "mette")).version).toBe(2);
    });

    it("refuses a second row with a site, unit and version that already exist", async () => {
      const saved = await repo.save(input({ unit: "nord" }), "mette");
      await expect(
        subject.raw(
          `INSERT INTO baselines (site_id, unit_id, version, fingerprint, recorded_at, saved_by, body) VALUES ('home-a', 'nord', ${saved.version}, 'x', 0, 'x', '{}')`,
        ),
      ).rejects.toThrow();
      await subject.raw(
        "INSERT INTO baselines (site_id, unit_id, version, fingerprint, recorded_at, saved_by, body) VALUES ('home-a', NULL, 1, 'x', 0, 'x', '{}')",
      );
      await expect(
        subject.raw(
          "INSERT INTO baselines (site_id, unit_id, version, fingerprint, recorded_at, saved_by, body) VALUES ('home-a', NULL, 1, 'y', 0, 'y', '{}')",
        ),
      ).rejects.toThrow();
    });
  });
}
