/**
 * What a municipality's business case counts in besides hours: full-time equivalents (årsværk) and
 * kroner. Read from the `economics` section of config/time-model.yaml, overridable per site under
 * `sites.<id>.economics`. These values turn hours into other units at read time; they never change
 * a computed minute, so they are not part of the model version's fingerprint (a wage settlement does
 * not recompute history).
 *
 * Staff categories: night supervision is night staff's time; lift transfers, remote resolutions and
 * false alarms are priced at the day rate (docs/time-model.md "In årsværk and kroner" says why).
 */
import { z } from "zod";
import type { Category } from "./timesaved.js";

export const STAFF_CATEGORIES = ["night", "day"] as const;
export type StaffCategory = (typeof STAFF_CATEGORIES)[number];

/** Which staff's time each time-saved category is. */
export const STAFF_OF: Record<Category, StaffCategory> = {
  night_supervision: "night",
  lift_transfers: "day",
  remote_resolution: "day",
  false_alarms: "day",
};

const Danish = z.strictObject({ unit: z.string().min(1), source: z.string().min(1) }).optional();

function valueParam(min: number, max: number) {
  return z.strictObject({
    value: z.number().min(min).max(max),
    unit: z.string().min(1),
    source: z.string().min(1),
    da: Danish,
    placeholder: z.boolean().default(false),
  });
}

export const EconomicsFile = z.strictObject({
  /** ISO 4217; the report prints amounts in it. */
  currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 currency code (DKK)"),
  annualHoursPerFte: valueParam(1, 8784),
  hourlyCost: z.strictObject({ night: valueParam(0, 100_000), day: valueParam(0, 100_000) }),
});

const Override = z.union([
  z.number(),
  z.strictObject({ value: z.number(), source: z.string().min(1).optional() }),
]);

/** `sites.<id>.economics`: a number, or {value, source} for the site's own figure. */
export const EconomicsOverrides = z
  .strictObject({
    annualHoursPerFte: Override.optional(),
    hourlyCost: z.strictObject({ night: Override.optional(), day: Override.optional() }).optional(),
  })
  .optional();

export type EconomicsFile = z.output<typeof EconomicsFile>;
export type EconomicsOverrides = z.output<typeof EconomicsOverrides>;

/** One figure as the report shows it. */
export interface EconomicValue {
  value: number;
  unit: string;
  source: string;
  da?: { unit: string; source: string };
  placeholder: boolean;
  siteOverride?: boolean;
}

export interface Economics {
  currency: string;
  annualHoursPerFte: EconomicValue;
  hourlyCost: Record<StaffCategory, EconomicValue>;
}

type OverrideValue = number | { value: number; source?: string | undefined } | undefined;

function apply(base: EconomicsFile["annualHoursPerFte"], o: OverrideValue): EconomicValue {
  const { da, ...rest } = base;
  if (o === undefined) return { ...rest, ...(da ? { da } : {}) };
  const value = typeof o === "number" ? o : o.value;
  const source = typeof o === "number" ? undefined : o.source;
  // A site figure with a source is the site's own: no longer a placeholder.
  return {
    ...rest,
    value,
    source: source ?? `site value (no source given); default ${base.value}: ${base.source}`,
    ...(da
      ? {
          da: {
            unit: da.unit,
            source:
              source ??
              `stedets værdi (ingen kilde angivet); standard ${String(base.value).replace(".", ",")}: ${da.source}`,
          },
        }
      : {}),
    placeholder: source === undefined && base.placeholder,
    siteOverride: true,
  };
}

/** The economics in force for a site: the file's defaults with the site's overrides. */
export function siteEconomics(file: EconomicsFile, overrides: EconomicsOverrides): Economics {
  return {
    currency: file.currency,
    annualHoursPerFte: apply(file.annualHoursPerFte, overrides?.annualHoursPerFte),
    hourlyCost: {
      night: apply(file.hourlyCost.night, overrides?.hourlyCost?.night),
      day: apply(file.hourlyCost.day, overrides?.hourlyCost?.day),
    },
  };
}

/** Rounds to the øre (or cent): two decimals, half away from zero. */
export function toMinorUnit(amount: number): number {
  return (Math.sign(amount) * Math.round(Math.abs(amount) * 100 + Number.EPSILON * 100)) / 100;
}

// ---------------------------------------------------------------------------------------------
// Citations

/** A published source as a reviewer needs it to find the original. */
export const Citation = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9-]{1,40}$/, "lower-case letters, digits and - (max 40)"),
    authors: z.string().min(1).optional(),
    title: z.string().min(1),
    publication: z.string().min(1),
    year: z.number().int().min(1900).max(2100),
    doi: z
      .string()
      .regex(/^10\.\d{4,9}\/\S+$/, "a DOI (10.xxxx/...) without https://doi.org/")
      .optional(),
    url: z.url({ protocol: /^https?$/ }).optional(),
    /** What of it the model uses (a table, a page, a figure). */
    note: z.string().min(1).optional(),
  })
  .refine((c) => c.doi !== undefined || c.url !== undefined, "give a doi or a url, so it can be found");
export type Citation = z.output<typeof Citation>;
