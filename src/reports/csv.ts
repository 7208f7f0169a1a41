/**
 * CSV export (RFC 4180: comma separated, CRLF line ends, fields quoted when they hold a comma, quote
 * or line break). A report has several tables: one table alone is a plain CSV; all of them are
 * sections separated by an empty line, each starting with its own header row whose first column is
 * `table`, so every row says which table it belongs to.
 */
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
