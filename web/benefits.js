// @ts-check
/**
 * The benefits headline, shared by the dashboard and the printed report: realised time freed per
 * week first (what the site stopped doing against its own baseline), the potential beside it and
 * labelled as such, and the caveats in words directly under it. Without a baseline there is no
 * realised figure: the headline says so and shows the potential, labelled as potential.
 * Figures come from GET /api/v1/reports/benefits (src/reports/benefits.ts).
 */
import { num } from "./format.js";
import { lang, t } from "./i18n.js";

/**
 * @typedef {{ minutes: number; hours: number; hoursPerWeek: number; hoursPerYear: number; fte: number;
 *   cost: number; costPerYear: number }} Amounts
 * @typedef {{ code: string; da: string; en: string }} Caveat
 * @typedef {{ site: string; unit?: string; version: number; fingerprint: string; label: string;
 *   period: { from: string; to: string }; recordedBy: string; recordedAt: string; note?: string;
 *   measurements: Record<string, { value: number; unit: string; method: string; perResident?: unknown[] }>;
 *   appliesTo: string[] }} BaselineView
 * @typedef {{
 *   headline: { realised: Amounts | null; potential: Amounts; caveats: Caveat[] };
 *   categories: { category: string; staff: "night" | "day";
 *     potential: { minutes: number; hours: number; count: number; cost: number };
 *     realised: { minutes: number; hours: number; count: number; cost: number } | null }[];
 *   economics: any;
 *   baselines: BaselineView[];
 *   periods: { site: string; name: "previous" | "current" | "baseline"; from: string; to: string }[];
 *   comparison: { site: string; figure: string; unit: { da: string; en: string }; baseline: number | null;
 *     previous: number | null; current: number | null; note: { da: string; en: string } | null }[];
 *   observedDays: number;
 *   modelVersions: Record<string, string>;
 *   weeksPerYear: number;
 * }} Benefits
 */

/** Decimals of hours per week wherever the headline is shown (dashboard and report alike). */
export const WEEKLY_DIGITS = 1;

/**
 * The elements a headline fills: the dashboard's are in its HTML, the report makes its own.
 * @typedef {{ root: HTMLElement; label: HTMLElement; value: HTMLElement; potential: HTMLElement;
 *   caveats: HTMLElement; provenance: HTMLElement }} HeadlineParts
 */

/**
 * @param {string} tag
 * @param {string} [cls]
 * @param {string | null} [text]
 */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

/** A caveat in the page's language. */
export function caveatText(/** @type {Caveat} */ c) {
  return lang() === "da" ? c.da : c.en;
}

/**
 * The caveats as a list: the first `shown` in full, the rest folded (all of them on hover, too).
 * @param {Caveat[]} caveats
 * @param {number} [shown]
 */
export function caveatList(caveats, shown = 2) {
  const list = el("ul", "caveats");
  list.title = caveats.map(caveatText).join("\n");
  const item = (/** @type {Caveat} */ c) => {
    const li = el("li", "caveat", caveatText(c));
    li.dataset.code = c.code;
    return li;
  };
  list.append(...caveats.slice(0, shown).map(item));
  const rest = caveats.slice(shown);
  if (rest.length) {
    const more = el("li", "caveats-more");
    const details = el("details");
    const inner = el("ul", "caveats");
    inner.append(...rest.map(item));
    details.append(el("summary", "", t("benefits.moreCaveats", { n: rest.length })), inner);
    more.append(details);
    list.append(more);
  }
  return list;
}

/** "Tidsmodel 2026.1+e0bf74f1 · baseline v1+fc4f2d60": what every figure was computed with. */
export function provenanceText(/** @type {Benefits} */ b) {
  const models = [...new Set(Object.values(b.modelVersions ?? {}))].join(", ");
  const baselines = (b.baselines ?? []).map((x) => x.label).join(", ") || t("benefits.noBaselineShort");
  return t("benefits.provenance", { model: models || "–", baseline: baselines });
}

/** Fresh headline elements for a page that has none in its HTML (the printed report). */
export function headlineParts() {
  const root = el("div", "benefits-headline");
  const main = el("div", "benefits-main");
  const label = el("span", "benefits-label");
  const figure = el("span", "benefits-figure");
  const value = el("span", "benefits-value");
  figure.append(value, " ", el("span", "benefits-unit", t("benefits.unit")));
  main.append(label, figure);
  const potential = el("span", "benefits-potential");
  const caveats = el("div", "benefits-caveats");
  const provenance = el("p", "benefits-provenance");
  root.append(main, potential, caveats, provenance);
  return { root, label, value, potential, caveats, provenance };
}

/**
 * Fill a headline from the benefits account.
 * @param {HeadlineParts} parts
 * @param {Benefits} b
 * @param {{ shown?: number }} [opts] how many caveats before the fold
 */
export function showHeadline(parts, b, opts = {}) {
  const { realised, potential, caveats } = b.headline;
  const basis = realised ? "realised" : "potential";
  parts.root.dataset.basis = basis;
  parts.label.textContent = t(realised ? "benefits.realised" : "benefits.potentialOnly");
  parts.value.textContent = num((realised ?? potential).hoursPerWeek, WEEKLY_DIGITS);
  parts.potential.hidden = !realised;
  parts.potential.textContent = realised
    ? t("benefits.potentialBeside", { n: num(potential.hoursPerWeek, WEEKLY_DIGITS) })
    : "";
  parts.caveats.replaceChildren(caveatList(caveats, opts.shown ?? 2));
  parts.provenance.textContent = provenanceText(b);
}

/** The headline while loading or after a failure: no figure, and the reason in words. */
export function clearHeadline(/** @type {HeadlineParts} */ parts, /** @type {string} */ message) {
  delete parts.root.dataset.basis;
  parts.value.textContent = "–";
  parts.potential.hidden = true;
  parts.caveats.replaceChildren(el("p", "benefits-state", message));
  parts.provenance.textContent = "";
}
