import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

const run = promisify(execFile);
// Each ata run is a fresh process (about 2 s here): the tests allow for a busy machine.
const ROOT = new URL("../..", import.meta.url).pathname;

const FILE = `# How night checks and transfers were done before, September 2026
recordedBy: Mette (leder)
period:
  from: 2026-09-01
  to: 2026-09-30
measurements:
  nightChecksPerResident:
    value: 2
    method: counted in the care plans on 2026-09-15
    perResident:
      - { room: r2, value: 0 }   # no night checks in the care plan
  minutesPerNightCheck:
    value: 4.5
    unit: staff-minutes per check
    method: stopwatch, 40 checks over 5 nights
  twoHelperTransferShare:
    value: 0.4
    method: transfer log, September
`;

describe("ata baseline", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-cli-baseline-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: join(dir, "data"),
      sites: [
        { id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1", rooms: ["r1", "r2"] }] },
      ],
    }),
  );
  const ata = (...args: string[]) =>
    run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], { cwd: ROOT });
  const fails = async (...args: string[]): Promise<{ code: number; stderr: string }> => {
    try {
      await ata(...args);
    } catch (err) {
      return err as { code: number; stderr: string };
    }
    throw new Error(`ata ${args.join(" ")} succeeded`);
  };

  it("set saves versions from a YAML file and show prints them newest first, then the newest as YAML set reads", async () => {
    const file = join(dir, "baseline.yaml");
    writeFileSync(file, FILE);
    expect((await ata("baseline", "show", "--site", "home-a")).stdout).toBe(
      "no baseline recorded for home-a\n",
    );
    const first = await ata("baseline", "set", "--site", "home-a", "--file", file);
    expect(first.stdout).toMatch(/^saved home-a\/\* baseline v1 \(#1, sha256 [0-9a-f]{12}\)\n$/);

    const shown = (await ata("baseline", "show", "--site", "home-a")).stdout;
    const [list, yaml] = shown.split("\n---\n");
    expect(list).toMatch(
      /^#1\thome-a\/\* v1\t2026-09-01\.\.2026-09-30\trecorded by Mette \(leder\)\tsaved \S+ by cli\tsha256 [0-9a-f]{12}$/,
    );
    const back = parseYaml(yaml!) as Record<string, unknown>;
    expect(back).toEqual({
      ...parseYaml(FILE),
      site: "home-a",
      measurements: {
        ...parseYaml(FILE).measurements,
        nightChecksPerResident: {
          ...parseYaml(FILE).measurements.nightChecksPerResident,
          unit: "checks per resident per night",
        },
        twoHelperTransferShare: {
          ...parseYaml(FILE).measurements.twoHelperTransferShare,
          unit: "share of transfers done by two helpers",
        },
      },
    });

    // The printed YAML saved again is the same content: a new version with the same fingerprint.
    const roundTrip = join(dir, "round-trip.yaml");
    writeFileSync(roundTrip, yaml!);
    const second = await ata("baseline", "set", "--site", "home-a", "--file", roundTrip);
    expect(second.stdout).toMatch(/baseline v2 \(#2, /);
    expect(/sha256 (\w+)/.exec(second.stdout)![1]).toBe(/sha256 (\w+)/.exec(first.stdout)![1]);
    const versions = (await ata("baseline", "show", "--site", "home-a")).stdout
      .split("\n---\n")[0]!
      .split("\n");
    expect(versions.map((l) => l.split("\t")[1])).toEqual(["home-a/* v2", "home-a/* v1"]);
  }, 60_000);

  it("refuses a file with problems, listing each with its path, and saves nothing", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      FILE.replace("value: 4.5", "value: -1").replace("{ room: r2, value: 0 }", "{ room: r9, value: 0 }"),
    );
    const bad = await fails("baseline", "set", "--site", "home-a", "--file", file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("measurements.minutesPerNightCheck.value:");
    writeFileSync(file, FILE.replace("{ room: r2, value: 0 }", "{ room: r9, value: 0 }"));
    const scope = await fails("baseline", "set", "--site", "home-a", "--file", file);
    expect(scope.stderr).toContain(
      'measurements.nightChecksPerResident.perResident.0.room: no room "r9" in site "home-a"',
    );
    writeFileSync(file, `site: home-b\n${FILE}`);
    expect((await fails("baseline", "set", "--site", "home-a", "--file", file)).stderr).toContain(
      'site: the file says "home-b", --site says "home-a"',
    );
    const versions = (await ata("baseline", "show", "--site", "home-a")).stdout
      .split("\n---\n")[0]!
      .split("\n");
    expect(versions).toHaveLength(2);
  }, 60_000);
});
