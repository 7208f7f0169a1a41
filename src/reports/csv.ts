/**
 * CSV export in two dialects.
 *
 * Machine CSV (format=csv; RFC 4180: comma separated, CRLF line ends, fields quoted when they hold a
 * comma, quote or line break). A report has several tables: one table alone is a plain CSV; all of
 * them are sections separated by an empty line, each starting with its own header row whose first
 * column is `table`, so every row says which table it belongs to.
 *
 * Spreadsheet CSV (format=csv-da), for a Danish Excel opened by double-click: Excel reads a CSV
 * with the list separator and decimal mark of the Windows region, which for Danish are ";" and ",",
 * and reads it as UTF-8 only after a byte order mark (without it "æøå" turn into "Ã¦Ã¸Ã¥"). So:
 * UTF-8 with BOM, ";" between fields (quoted per RFC 4180 with ";" in place of ","), decimal comma
 * and no thousands separator, headings in the chosen language, one table per file. Dates stay ISO
 * (2026-10-12), which Excel reads as a date in every region; an instant becomes the site's local
 * wall time "2026-10-12 00:00", also read as a date and time. Booleans are words (ja/nej). A table
 * with Danish texts (the model's units and sources) gives them in Danish.
 */
import { localParts } from "../time/zone.js";
import { heading, type Lang } from "./columns.js";
import type { Cell, Table } from "./queries.js";

const NEEDS_QUOTES = /[",\r\n]/;
// A text cell starting like a formula would run as one in a spreadsheet (CSV injection, OWASP).
const FORMULA = /^[=+\-@\t\r]/;

export function csvCell(value: Cell): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
  if (typeof value === "boolean") return value ? "true" : "false";
  let text = FORMULA.test(value) ? `'${value}` : value;
  if (NEEDS_QUOTES.test(text)) text = `"${text.replace(/"/g, '""')}"`;
  return text;
}

const line = (cells: readonly Cell[]) => `${cells.map(csvCell).join(",")}\r\n`;

export function tableCsv(table: Table): string {
  return line(table.columns) + table.rows.map(line).join("");
}

export function tablesCsv(tables: readonly Table[]): string {
  return tables
    .map((t) => line(["table", ...t.columns]) + t.rows.map((r) => line([t.name, ...r])).join(""))
    .join("\r\n");
}

const BOM = "\uFEFF";
const NEEDS_QUOTES_SEMI = /[";\r\n]/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z$/;

export interface SpreadsheetOptions {
  lang: Lang;
  /** The time zone a row's instants are shown in: the zone of the row's site. */
  timeZoneOf: (site: string | undefined) => string;
}

/** "yyyy-mm-dd hh:mm" on the wall clock of the zone. */
function wallClock(ms: number, timeZone: string): string {
  const p = localParts(ms, timeZone);
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${p.year}-${p2(p.month)}-${p2(p.day)} ${p2(p.hour)}:${p2(p.minute)}`;
}

export function spreadsheetCell(value: Cell, lang: Lang, timeZone: string): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return "";
    // Never exponent notation, never grouping: Excel would read "1.234" as text or a thousand.
    return value.toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 20 }).replace(".", ",");
  }
  if (typeof value === "boolean") return lang === "da" ? (value ? "ja" : "nej") : value ? "yes" : "no";
  let text = INSTANT.test(value) ? wallClock(Date.parse(value), timeZone) : value;
  if (FORMULA.test(text)) text = `'${text}`;
  if (NEEDS_QUOTES_SEMI.test(text)) text = `"${text.replace(/"/g, '""')}"`;
  return text;
}

/** One table as a Danish spreadsheet opens it: BOM, ";", decimal comma, headings in `lang`. */
export function spreadsheetCsv(table: Table, opts: SpreadsheetOptions): string {
  const site = table.columns.indexOf("site");
  const head = table.columns.map((c) => spreadsheetCell(heading(table.name, c, opts.lang), opts.lang, "UTC"));
  const rows = ((opts.lang === "da" && table.da) || table.rows).map((r) => {
    const zone = opts.timeZoneOf(site >= 0 ? String(r[site]) : undefined);
    return r.map((c) => spreadsheetCell(c, opts.lang, zone));
  });
  return BOM + [head, ...rows].map((cells) => `${cells.join(";")}\r\n`).join("");
}
