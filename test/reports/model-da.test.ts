import { describe, expect, it } from "vitest";
import { loadTimeModel, modelView, type ParameterKey, siteModel } from "../../src/reports/model.js";
import { shippedModel } from "./fixtures.js";

/** Words only one of the two languages uses in these texts: a text in the wrong language shows one. */
const ENGLISH = /\b(per|staff|minutes|local time|placeholder|measure|derived|helpers?|site value)\b/;

describe("the time model's units and sources in Danish and English", () => {
  it("every parameter of the shipped file has a Danish unit and source beside the English ones", () => {
    const p = siteModel(loadTimeModel(), null).parameters;
    for (const key of Object.keys(p) as ParameterKey[]) {
      const { unit, source, da } = p[key];
      expect(da, key).toBeDefined();
      expect(da!.unit, key).not.toBe(unit);
      expect(da!.source, key).not.toBe(source);
      expect(da!.unit, key).not.toMatch(ENGLISH);
      expect(da!.source, key).not.toMatch(ENGLISH);
    }
    expect(p.minutesPerNightCheck.da).toEqual({
      unit: "personaleminutter pr. tilsyn",
      source: "pladsholder – mål selv (intet offentliggjort tal fundet)",
    });
  });

  it("a citation stays as published in both languages; only the words around it are Danish", () => {
    const p = siteModel(loadTimeModel(), null).parameters;
    for (const key of ["transferSecondsCeilingLift", "transferSecondsFloorLift"] as const) {
      expect(p[key].source).toMatch(/^Injury 2009;40:987 /);
      expect(p[key].da!.source).toMatch(/^Injury 2009;40:987 /);
    }
    expect(p.transferSecondsCeilingLift.da!.source).toBe("Injury 2009;40:987 (loftlift, én hjælper)");
    expect(p.nightChecksPerResident.da!.source).toContain("Kepler Night Nurse (metronieuws.nl)");
    expect(p.oneHelperTransferShare.da!.source).toContain("(denoffentlige.dk)");
  });

  it("the derived lift saving names its inputs in Danish with decimal commas", () => {
    const p = siteModel(loadTimeModel(), null).parameters.liftMinutesSavedPerTransfer;
    expect(p.da).toEqual({
      unit: "personaleminutter pr. forflytning",
      source: "afledt: (2 hjælpere x 273,6 s gulvlift - 1 hjælper x 156,9 s loftlift) / 60",
    });
  });

  it("a site value without a source says so in Danish; a site's own source is shown as the site wrote it", () => {
    const model = shippedModel({
      solbakken: {
        minutesPerNightCheck: 4,
        minutesPerFalseAlarm: { value: 6, source: "tidtaget 40 falske alarmer, Solbakken, marts 2026" },
      },
    });
    const p = siteModel(model, "solbakken").parameters;
    expect(p.minutesPerNightCheck.da!.source).toBe(
      "stedets værdi (ingen kilde angivet); standard 5: pladsholder – mål selv (intet offentliggjort tal fundet)",
    );
    expect(p.minutesPerFalseAlarm.source).toBe("tidtaget 40 falske alarmer, Solbakken, marts 2026");
    expect(p.minutesPerFalseAlarm.da!.source).toBe("tidtaget 40 falske alarmer, Solbakken, marts 2026");
    expect(p.minutesPerFalseAlarm.da!.unit).toBe("personaleminutter pr. falsk alarm med fremmøde");
  });

  it("the reports' model view carries the Danish texts of parameters and references", () => {
    const view = modelView(loadTimeModel(), ["solbakken"]);
    const parameters = view.parameters as Record<string, { da?: { unit: string; source: string } }>;
    expect(Object.values(parameters).every((x) => x.da !== undefined)).toBe(true);
    expect(view.references.length).toBeGreaterThan(0);
    for (const r of view.references) {
      expect(r.da?.name, r.name).toBeTruthy();
      expect(r.da!.name).not.toBe(r.name);
    }
    expect(view.references.find((r) => r.source === "SINTEF, Bergen")?.da?.detail).toBe(
      "20,9 -> 1,9 pr. uge",
    );
  });
});
