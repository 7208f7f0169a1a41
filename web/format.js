// @ts-check
/**
 * Numbers, amounts and dates in the page's language, shared by the dashboard and the printed
 * report: Danish has a decimal comma, a thousands dot and "kr." after the amount; English the
 * reverse, with the currency code before it.
 */
import { lang } from "./i18n.js";

export function locale() {
  return lang() === "da" ? "da-DK" : "en-GB";
}

/**
 * A number with at most `digits` decimals (at least `min`), or "–" when there is none.
 * @param {number | null | undefined} n
 * @param {number} [digits]
 * @param {number} [min]
 */
export function num(n, digits = 1, min = 0) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  return new Intl.NumberFormat(locale(), {
    maximumFractionDigits: digits,
    minimumFractionDigits: min,
  }).format(n);
}

/**
 * An amount to the øre (cent), in the currency the model gives (ISO 4217): "3.698,33 kr." in
 * Danish, "DKK 3,698.33" in English.
 * @param {number | null | undefined} n
 * @param {string} currency
 */
export function money(n, currency) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  return new Intl.NumberFormat(locale(), {
    style: "currency",
    currency,
    currencyDisplay: lang() === "da" ? "symbol" : "code",
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(n);
}

/**
 * A share (0..1) as a percentage.
 * @param {number | null | undefined} share
 * @param {number} [digits]
 */
export function percent(share, digits = 1) {
  if (share === null || share === undefined || !Number.isFinite(share)) return "–";
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: digits }).format(share);
}

/**
 * A local calendar date (YYYY-MM-DD) as a reader writes it: "1. okt. 2026" / "1 Oct 2026".
 * @param {string} iso
 */
export function dateText(iso) {
  const d = new Date(`${iso.slice(0, 10)}T12:00:00Z`);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(), {
    day: "numeric",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  }).format(d);
}

/**
 * An instant in the reader's time zone, to the minute.
 * @param {string} iso
 */
export function instantText(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(d);
}
