/**
 * The time-saved (ATA) model's parameters: explicit, versioned, each with a unit and a source
 * (DESIGN.md "Time-saved (ATA) model"), read from config/time-model.yaml and validated here. A site
 * may override any value, ideally with the source of its own measurement.
 *
 * Every computed point carries `modelVersion`: the file's `version` plus a fingerprint of the exact
 * values in force for the site ("2026.1+3f2a9c1d"). Two sites with different overrides, or a value
 * edited without bumping the version, never share a tag, so a stored number always traces back to
 * the assumptions that produced it.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { Citation, type Economics, EconomicsFile, EconomicsOverrides, siteEconomics } from "./economics.js";

export const DEFAULT_TIME_MODEL_PATH = "config/time-model.yaml";

const NUMERIC_KEYS = [
  "nightChecksPerResident",
  "minutesPerNightCheck",
  "oneHelperTransferShare",
  "transferSecondsCeilingLift",
  "transferSecondsFloorLift",
  "minutesPerFalseAlarm",
  "minutesPerAvoidedVisit",
  "visitMergeMinutes",
] as const;
const CLOCK_KEYS = ["nightStart", "nightEnd"] as const;
type NumericKey = (typeof NUMERIC_KEYS)[number];
type ClockKey = (typeof CLOCK_KEYS)[number];
/** Parameters set in the file (and overridable per site). */
export type BaseKey = NumericKey | ClockKey;
export const BASE_KEYS: readonly BaseKey[] = [...NUMERIC_KEYS, ...CLOCK_KEYS];
/** Parameters computed from others. */
export const DERIVED_KEYS = ["liftMinutesSavedPerTransfer"] as const;
export type ParameterKey = BaseKey | (typeof DERIVED_KEYS)[number];

/** The values the arithmetic uses. */
export interface Params {
  nightChecksPerResident: number;
  minutesPerNightCheck: number;
  oneHelperTransferShare: number;
  transferSecondsCeilingLift: number;
  transferSecondsFloorLift: number;
  /** Derived: (2 x floor-lift seconds - 1 x ceiling-lift seconds) / 60. */
  liftMinutesSavedPerTransfer: number;
  minutesPerFalseAlarm: number;
  minutesPerAvoidedVisit: number;
  visitMergeMinutes: number;
  /** "HH:MM", site-local. */
  nightStart: string;
  nightEnd: string;
}

/**
 * A parameter's unit and source in Danish. `unit` and `source` themselves are English (the API's
 * language); the dashboard shows these when its language is Danish. Citations stay as published.
 */
export interface DanishTexts {
  unit: string;
  source: string;
}

/** One parameter as the assumptions panel shows it. */
export interface ParameterInfo {
  value: number | string;
  unit: string;
  source: string;
  da?: DanishTexts;
  range?: [number, number];
  /** No published figure: the value is a stand-in until the site measures its own. */
  placeholder: boolean;
  /** "arithmetic": used in the minutes; "plausibility": shown beside an observed figure only. */
  usedFor: "arithmetic" | "plausibility";
  derived?: string;
  /** Set when a site override replaced the file's default. */
  siteOverride?: boolean;
  /** Ids of `citations` the source rests on. */
  cites?: string[];
}

export interface Reference {
  name: string;
  value: string;
  detail?: string;
  source: string;
  /** Danish texts; the source's citation is kept as published. */
  da?: { name: string; value?: string; detail?: string };
  cites?: string[];
}

export interface TimeModel {
  version: string;
  parameters: Record<BaseKey, ParameterInfo>;
  references: Reference[];
  /** siteId -> overrides. */
  sites: Record<string, Partial<Record<BaseKey, { value: number | string; source?: string }>>>;
  /** Årsværk and kroner (src/reports/economics.ts); not part of the fingerprint. */
  economics: EconomicsFile;
  /** siteId -> its economics overrides. */
  siteEconomics: Record<string, EconomicsOverrides>;
  /** Published sources in full, referred to by `cites` of parameters and references. */
  citations: Citation[];
  /** Where it was read from (for messages). */
  source: string;
}

/** The model in force for one site: defaults plus that site's overrides. */
export interface SiteModel {
  siteId: string | null;
  /** The file's version, e.g. "2026.1". */
  version: string;
  /** Version + fingerprint of the exact values: the `model_version` tag of every point. */
  modelVersion: string;
  params: Params;
  parameters: Record<ParameterKey, ParameterInfo>;
}

export interface TimeModelProblem {
  path: string;
  message: string;
}

export class TimeModelError extends Error {
  constructor(
    readonly source: string,
    readonly problems: TimeModelProblem[],
  ) {
    super(
      `${source}: ${problems.length} time-model problem(s)\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n")}`,
    );
    this.name = "TimeModelError";
  }
}

const CLOCK = /^([01]\d|2[0-3]):[0-5]\d$/;
const Danish = z.strictObject({ unit: z.string().min(1), source: z.string().min(1) }).optional();
const Clock = z.string().regex(CLOCK, 'a local time "HH:MM" (00:00-23:59)');

function numberParam(min: number, max: number) {
  return z.strictObject({
    value: z.number().min(min).max(max),
    unit: z.string().min(1),
    source: z.string().min(1),
    da: Danish,
    range: z.tuple([z.number(), z.number()]).optional(),
    placeholder: z.boolean().default(false),
    usedFor: z.enum(["arithmetic", "plausibility"]).default("arithmetic"),
    cites: z.array(z.string()).optional(),
  });
}
const clockParam = z.strictObject({
  value: Clock,
  unit: z.string().min(1),
  source: z.string().min(1),
  da: Danish,
  placeholder: z.boolean().default(false),
  usedFor: z.enum(["arithmetic", "plausibility"]).default("arithmetic"),
  cites: z.array(z.string()).optional(),
});

const NUMBER_LIMITS: Record<NumericKey, [number, number]> = {
  nightChecksPerResident: [0, 24],
  minutesPerNightCheck: [0, 240],
  oneHelperTransferShare: [0, 1],
  transferSecondsCeilingLift: [1, 3600],
  transferSecondsFloorLift: [1, 3600],
  minutesPerFalseAlarm: [0, 240],
  minutesPerAvoidedVisit: [0, 240],
  visitMergeMinutes: [0, 240],
};

const Parameters = z.strictObject({
  ...Object.fromEntries(NUMERIC_KEYS.map((k) => [k, numberParam(...NUMBER_LIMITS[k])])),
  nightStart: clockParam,
  nightEnd: clockParam,
} as Record<NumericKey, ReturnType<typeof numberParam>> & Record<ClockKey, typeof clockParam>);

function overrideOf<T extends z.ZodType>(value: T) {
  return z.union([value, z.strictObject({ value, source: z.string().min(1).optional() })]);
}

const SiteOverrides = z.strictObject({
  ...Object.fromEntries(
    NUMERIC_KEYS.map((k) => [
      k,
      overrideOf(z.number().min(NUMBER_LIMITS[k][0]).max(NUMBER_LIMITS[k][1])).optional(),
    ]),
  ),
  nightStart: overrideOf(Clock).optional(),
  nightEnd: overrideOf(Clock).optional(),
  economics: EconomicsOverrides,
});

const TimeModelFile = z.strictObject({
  // A tag value in both stores: keep it to safe characters.
  version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, "letters, digits, . _ - (max 32)"),
  parameters: Parameters,
  references: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        value: z.union([z.string(), z.number()]).transform(String),
        detail: z.string().optional(),
        source: z.string().min(1),
        cites: z.array(z.string()).optional(),
        da: z
          .strictObject({
            name: z.string().min(1),
            value: z.string().min(1).optional(),
            detail: z.string().min(1).optional(),
          })
          .optional(),
      }),
    )
    .default([]),
  economics: EconomicsFile,
  citations: z.array(Citation).default([]),
  sites: z.record(z.string(), SiteOverrides).nullable().default({}),
});

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

/** Validates a parsed file; every problem is collected with its path. */
export function parseTimeModel(raw: unknown, source = "time model"): TimeModel {
  const parsed = TimeModelFile.safeParse(raw);
  if (!parsed.success) {
    throw new TimeModelError(
      source,
      parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  }
  const file = parsed.data;
  const problems: TimeModelProblem[] = [];
  const parameters = file.parameters as unknown as Record<BaseKey, ParameterInfo>;
  for (const key of BASE_KEYS) {
    const range = parameters[key].range;
    if (range && range[0] > range[1])
      problems.push({
        path: `parameters.${key}.range`,
        message: "the range's low end is above its high end",
      });
  }
  const citationIds = new Set<string>();
  file.citations.forEach((c, i) => {
    if (citationIds.has(c.id))
      problems.push({ path: `citations[${i}].id`, message: `"${c.id}" is listed twice` });
    citationIds.add(c.id);
  });
  const checkCites = (cites: readonly string[] | undefined, path: string): void => {
    for (const [i, id] of (cites ?? []).entries())
      if (!citationIds.has(id))
        problems.push({ path: `${path}.cites[${i}]`, message: `no citation "${id}"` });
  };
  for (const key of BASE_KEYS) checkCites(parameters[key].cites, `parameters.${key}`);
  for (const [i, r] of file.references.entries()) checkCites(r.cites, `references[${i}]`);
  const sites: TimeModel["sites"] = {};
  const siteEconomics: TimeModel["siteEconomics"] = {};
  for (const [siteId, overrides] of Object.entries(file.sites ?? {})) {
    if (overrides.economics) siteEconomics[siteId] = overrides.economics;
    const out: TimeModel["sites"][string] = {};
    for (const key of BASE_KEYS) {
      const o = (overrides as Record<string, unknown>)[key];
      if (o === undefined) continue;
      out[key] =
        typeof o === "object" && o !== null
          ? (o as { value: number | string; source?: string })
          : { value: o as number | string };
    }
    sites[siteId] = out;
  }
  const model: TimeModel = {
    version: file.version,
    parameters,
    references: file.references.map((r) => ({
      name: r.name,
      value: r.value,
      ...(r.detail === undefined ? {} : { detail: r.detail }),
      source: r.source,
      ...(r.cites === undefined ? {} : { cites: r.cites }),
      ...(r.da === undefined
        ? {}
        : {
            da: {
              name: r.da.name,
              ...(r.da.value === undefined ? {} : { value: r.da.value }),
              ...(r.da.detail === undefined ? {} : { detail: r.da.detail }),
            },
          }),
    })),
    sites,
    economics: file.economics,
    siteEconomics,
    citations: file.citations,
    source,
  };
  // Night windows must have a length, for the defaults and for every site.
  for (const siteId of [null, ...Object.keys(sites)]) {
    const p = siteModel(model, siteId).params;
    if (p.nightStart === p.nightEnd) {
      problems.push({
        path: siteId === null ? "parameters.nightEnd" : `sites.${siteId}.nightEnd`,
        message: "the night window is empty: nightStart equals nightEnd",
      });
    }
  }
  if (problems.length > 0) throw new TimeModelError(source, problems);
  return model;
}

export function loadTimeModel(path: string = DEFAULT_TIME_MODEL_PATH): TimeModel {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (err) {
    throw new TimeModelError(path, [{ path: "(file)", message: (err as Error).message }]);
  }
  return parseTimeModel(raw, path);
}

/** Site overrides naming a site the configuration does not have: returned like config problems. */
export function checkTimeModelSites(model: TimeModel, siteIds: readonly string[]): TimeModelProblem[] {
  const known = new Set(siteIds);
  return Object.keys(model.sites)
    .filter((s) => !known.has(s))
    .map((s) => ({ path: `sites.${s}`, message: `unknown site "${s}"` }));
}

const cache = new WeakMap<TimeModel, Map<string, SiteModel>>();

/** A number in Danish text: decimal comma. */
const comma = (v: number | string) => String(v).replace(".", ",");

/** The parameters in force for a site (null: the file's defaults). */
export function siteModel(model: TimeModel, siteId: string | null): SiteModel {
  let perModel = cache.get(model);
  if (!perModel) {
    perModel = new Map();
    cache.set(model, perModel);
  }
  const key = siteId ?? "\u0000";
  const hit = perModel.get(key);
  if (hit) return hit;

  const overrides = (siteId !== null ? model.sites[siteId] : undefined) ?? {};
  const parameters = {} as Record<ParameterKey, ParameterInfo>;
  for (const k of BASE_KEYS) {
    const base = model.parameters[k];
    const o = overrides[k];
    if (o === undefined) {
      parameters[k] = { ...base };
      continue;
    }
    // A site value with a source is a measurement: it is no longer a placeholder. Its source is the
    // site's own text, in whatever language the site wrote it.
    const { da, cites, ...rest } = base;
    const info: ParameterInfo = {
      ...rest,
      // A site's own measurement rests on the site's source, not the default's publications.
      ...(cites && o.source === undefined ? { cites } : {}),
      value: o.value,
      source: o.source ?? `site value (no source given); default ${base.value}: ${base.source}`,
      placeholder: o.source === undefined && base.placeholder,
      siteOverride: true,
    };
    if (da)
      info.da = {
        unit: da.unit,
        source:
          o.source ?? `stedets værdi (ingen kilde angivet); standard ${comma(base.value)}: ${da.source}`,
      };
    parameters[k] = info;
  }
  const floor = parameters.transferSecondsFloorLift.value as number;
  const ceiling = parameters.transferSecondsCeilingLift.value as number;
  parameters.liftMinutesSavedPerTransfer = {
    value: (2 * floor - 1 * ceiling) / 60,
    unit: "staff-minutes per transfer",
    source: `derived: (2 helpers x ${floor} s floor lift - 1 helper x ${ceiling} s ceiling lift) / 60`,
    da: {
      unit: "personaleminutter pr. forflytning",
      source: `afledt: (2 hjælpere x ${comma(floor)} s gulvlift - 1 hjælper x ${comma(ceiling)} s loftlift) / 60`,
    },
    derived: "(2 * transferSecondsFloorLift - 1 * transferSecondsCeilingLift) / 60",
    placeholder: false,
    usedFor: "arithmetic",
  };
  const params = Object.fromEntries(
    (Object.keys(parameters) as ParameterKey[]).map((k) => [k, parameters[k].value]),
  ) as unknown as Params;
  const fingerprint = createHash("sha256")
    .update(JSON.stringify([...BASE_KEYS].sort().map((k) => [k, params[k]])))
    .digest("hex")
    .slice(0, 8);
  const result: SiteModel = {
    siteId,
    version: model.version,
    modelVersion: `${model.version}+${fingerprint}`,
    params,
    parameters,
  };
  perModel.set(key, result);
  return result;
}

/** The JSON every report carries: the model it used, for the assumptions panel. */
export function modelView(model: TimeModel, siteIds: readonly string[]) {
  const defaults = siteModel(model, null);
  const single = siteIds.length === 1 ? siteModel(model, siteIds[0]!) : undefined;
  const view = single ?? defaults;
  return {
    version: model.version,
    modelVersion: view.modelVersion,
    parameters: parameterView(view),
    sites: Object.fromEntries(
      siteIds.map((s) => {
        const m = siteModel(model, s);
        const overridden = (Object.keys(m.parameters) as ParameterKey[]).filter(
          (k) => m.parameters[k].siteOverride,
        );
        return [
          s,
          {
            modelVersion: m.modelVersion,
            overrides: Object.fromEntries(overridden.map((k) => [k, m.parameters[k].value])),
          },
        ];
      }),
    ),
    references: model.references,
    citations: model.citations,
  };
}

export type ModelView = ReturnType<typeof modelView>;

/** The årsværk and kroner figures in force for a site (null: the file's defaults). */
export function economicsOf(model: TimeModel, siteId: string | null): Economics {
  return siteEconomics(model.economics, siteId !== null ? model.siteEconomics[siteId] : undefined);
}

function parameterView(m: SiteModel) {
  return Object.fromEntries(
    (Object.keys(m.parameters) as ParameterKey[]).map((k) => {
      const p = m.parameters[k];
      return [
        k,
        {
          value: p.value,
          unit: p.unit,
          source: p.source,
          ...(p.da ? { da: p.da } : {}),
          ...(p.range ? { range: p.range } : {}),
          placeholder: p.placeholder,
          // What the dashboard prints next to a placeholder value.
          ...(p.placeholder ? { label: "placeholder — measure on site" } : {}),
          usedFor: p.usedFor,
          ...(p.derived ? { derived: p.derived } : {}),
          ...(p.siteOverride ? { siteOverride: true } : {}),
          ...(p.cites ? { cites: p.cites } : {}),
        },
      ];
    }),
  );
}
