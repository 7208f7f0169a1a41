import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  checkTimeModelSites,
  loadTimeModel,
  modelView,
  parseTimeModel,
  siteModel,
  TimeModelError,
} from "../../src/reports/model.js";

interface RawFile {
  version: string;
  parameters: Record<string, Record<string, unknown>>;
  sites?: unknown;
  [key: string]: unknown;
}
const raw = () => parseYaml(readFileSync("config/time-model.yaml", "utf8")) as RawFile;

function problems(input: unknown): { path: string; message: string }[] {
  try {
    parseTimeModel(input, "test");
  } catch (err) {
    if (err instanceof TimeModelError) return err.problems;
    throw err;
  }
  return [];
}

describe("the time-saved model's parameters", () => {
  it("the shipped file has DESIGN.md's defaults and sources, and marks the unpublished values as placeholders", () => {
    const model = loadTimeModel("config/time-model.yaml");
    const p = siteModel(model, null).parameters;
    expect(model.version).toBe("2026.1");
    expect(p.nightChecksPerResident).toMatchObject({ value: 2.5, range: [2, 3], placeholder: false });
    expect(p.nightChecksPerResident.source).toContain("Kepler");
    expect(p.oneHelperTransferShare).toMatchObject({ range: [0.6, 0.74] });
    expect(p.oneHelperTransferShare.source).toMatch(/Gladsaxe.*Odense.*Slagelse.*Aarhus/s);
    expect(p.transferSecondsCeilingLift).toMatchObject({ value: 156.9 });
    expect(p.transferSecondsFloorLift).toMatchObject({ value: 273.6 });
    expect(p.transferSecondsFloorLift.source).toContain("Injury 2009;40:987");
    expect(p.liftMinutesSavedPerTransfer.value).toBeCloseTo(6.505, 10);
    for (const key of ["minutesPerNightCheck", "minutesPerFalseAlarm", "minutesPerAvoidedVisit"] as const) {
      expect(p[key].placeholder, key).toBe(true);
      expect(p[key].source, key).toContain("placeholder — measure on site");
    }
    expect(p.nightStart.value).toBe("22:00");
    expect(p.nightEnd.value).toBe("07:00");
  });

  it("collects every problem with its path", () => {
    const file = raw();
    file.version = "2026 spring";
    file.parameters.minutesPerNightCheck!.value = -1;
    file.parameters.nightStart!.value = "25:00";
    delete file.parameters.transferSecondsFloorLift!.source;
    file.parameters.bogus = { value: 1, unit: "x", source: "y" };
    file.sites = { solbakken: { minutesPerNightChek: 4 } };
    const paths = problems(file).map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "version",
        "parameters.minutesPerNightCheck.value",
        "parameters.nightStart.value",
        "parameters.transferSecondsFloorLift.source",
        "parameters",
        "sites.solbakken",
      ]),
    );
  });

  it("refuses an empty night window, for the defaults and for a site", () => {
    const file = raw();
    file.sites = { solbakken: { nightEnd: "22:00" } };
    expect(problems(file)).toEqual([
      { path: "sites.solbakken.nightEnd", message: "the night window is empty: nightStart equals nightEnd" },
    ]);
  });

  it("a site value with a source is a measurement: it replaces the placeholder label", () => {
    const model = parseTimeModel({
      ...raw(),
      sites: {
        solbakken: { minutesPerNightCheck: { value: 4, source: "timed 60 night checks, March 2026" } },
        havbo: { minutesPerNightCheck: 6 },
      },
    });
    const measured = siteModel(model, "solbakken").parameters.minutesPerNightCheck;
    expect(measured).toMatchObject({ value: 4, placeholder: false, siteOverride: true });
    expect(measured.source).toBe("timed 60 night checks, March 2026");
    const guessed = siteModel(model, "havbo").parameters.minutesPerNightCheck;
    expect(guessed).toMatchObject({ value: 6, placeholder: true, siteOverride: true });
    expect(modelView(model, ["havbo"]).parameters.minutesPerNightCheck).toMatchObject({
      label: "placeholder — measure on site",
    });
  });

  it("the model version names the values: overrides and silent edits change it, nothing else does", () => {
    const a = parseTimeModel(raw());
    const b = parseTimeModel(raw());
    expect(siteModel(a, null).modelVersion).toBe(siteModel(b, null).modelVersion);
    // A site without overrides computes with the defaults: same version.
    expect(siteModel(a, "anywhere").modelVersion).toBe(siteModel(a, null).modelVersion);
    const edited = raw();
    edited.parameters.minutesPerFalseAlarm!.value = 6;
    expect(siteModel(parseTimeModel(edited), null).modelVersion).not.toBe(siteModel(a, null).modelVersion);
    const withSite = parseTimeModel({ ...raw(), sites: { solbakken: { nightStart: "21:30" } } });
    expect(siteModel(withSite, "solbakken").modelVersion).not.toBe(siteModel(a, null).modelVersion);
    expect(siteModel(withSite, "solbakken").modelVersion.startsWith("2026.1+")).toBe(true);
  });

  it("reports overrides for sites the configuration does not have", () => {
    const model = parseTimeModel({ ...raw(), sites: { solbakken: { nightStart: "21:30" }, ghost: {} } });
    expect(checkTimeModelSites(model, ["solbakken"])).toEqual([
      { path: "sites.ghost", message: 'unknown site "ghost"' },
    ]);
  });
});
