// @ts-check
/**
 * Small SVG charts for the dashboard, written by hand (no library, no build step). Every chart is
 * an <svg role="img"> with a <title>; the numbers are also in a table next to it. Colours come from
 * classes in dashboard.css (the page's CSP allows no inline styles).
 */

const NS = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 * @returns {SVGElement}
 */
function s(tag, attrs = {}, text) {
  const e = /** @type {SVGElement} */ (document.createElementNS(NS, tag));
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * @param {number} width
 * @param {number} height
 * @param {string} label
 */
function frame(width, height, label) {
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    class: "chart",
    "aria-label": label,
  });
  svg.append(s("title", {}, label));
  return svg;
}

/** A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten. */
export function niceMax(/** @type {number} */ v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * Horizontal bars, one row per item; negative values extend left of a zero line (a cost).
 * @param {{
 *   rows: { label: string; value: number | null; display: string; className?: string }[];
 *   label: string;
 *   width?: number;
 *   labelWidth?: number;
 * }} o
 */
export function hbars(o) {
  const width = o.width ?? 640;
  const rows = layout(width, o.labelWidth ?? Math.round(width * 0.3), Math.round(Math.max(80, width * 0.15)));
  const { labelW, valueW, rowH, barTop } = rows;
  const top = 6;
  const height = top + o.rows.length * rowH + 6;
  const svg = frame(width, height, o.label);
  const values = o.rows.map((r) => r.value ?? 0);
  const maxPos = Math.max(0, ...values);
  const maxNeg = Math.max(0, ...values.map((v) => -v));
  const span = niceMax(maxPos + maxNeg) || 1;
  const plotW = width - labelW - valueW;
  const x0 = labelW + (maxNeg / (maxPos + maxNeg || 1)) * plotW;
  const scale = plotW / Math.max(span, maxPos + maxNeg || 1);
  svg.append(s("line", { x1: x0, x2: x0, y1: top - 4, y2: height - 2, class: "axis" }));
  o.rows.forEach((r, i) => {
    const y = top + i * rowH;
    svg.append(rows.labelText(y, r.label));
    const v = r.value ?? 0;
    const w = Math.abs(v) * scale;
    const x = v >= 0 ? x0 : x0 - w;
    const cls = `bar ${v < 0 ? "bar-neg" : ""} ${r.className ?? ""}`.trim();
    if (r.value !== null)
      svg.append(s("rect", { x, y: y + barTop, width: Math.max(w, 1), height: BAR_H, rx: 3, class: cls }));
    const tx = v >= 0 ? x0 + w + 6 : x0 + 6;
    svg.append(
      s("text", { x: Math.min(tx, width - valueW + 4), y: y + barTop + BAR_H - 5, class: "val" }, r.display),
    );
  });
  return svg;
}

/**
 * Vertical bars over an ordered axis (hours of the day, periods), with an optional line through
 * the tops; null is a gap (not computed), drawn as a small grey mark, never as zero.
 * @param {{
 *   points: { label: string; value: number | null; display: string; className?: string }[];
 *   label: string;
 *   width?: number;
 *   height?: number;
 *   tickEvery?: number;
 *   line?: boolean;
 *   unit?: string;
 * }} o
 */
export function vbars(o) {
  const width = o.width ?? 640;
  const height = o.height ?? 240;
  const left = 48;
  const right = 8;
  const top = 14;
  const bottom = 28;
  const svg = frame(width, height, o.label);
  const vals = o.points.map((p) => p.value).filter((v) => v !== null);
  const max = niceMax(Math.max(0, ...vals));
  const minRaw = Math.min(0, ...vals);
  const min = minRaw < 0 ? -niceMax(-minRaw) : 0;
  const plotH = height - top - bottom;
  const y = (/** @type {number} */ v) => top + ((max - v) / (max - min || 1)) * plotH;
  const n = Math.max(1, o.points.length);
  const step = (width - left - right) / n;
  const barW = Math.max(2, Math.min(40, step * 0.7));
  // Grid and axis labels at 0, max/2, max (and min when negative).
  for (const g of [min, 0, max / 2, max].filter((v, i, a) => a.indexOf(v) === i)) {
    svg.append(
      s("line", { x1: left, x2: width - right, y1: y(g), y2: y(g), class: g === 0 ? "axis" : "gridline" }),
    );
    svg.append(s("text", { x: left - 6, y: y(g) + 4, "text-anchor": "end", class: "tick" }, formatTick(g)));
  }
  const every = o.tickEvery ?? Math.max(1, Math.ceil(n / 12));
  /** @type {[number, number][]} */
  const linePts = [];
  o.points.forEach((p, i) => {
    const cx = left + step * i + step / 2;
    if (p.value === null) {
      svg.append(s("rect", { x: cx - barW / 2, y: y(0) - 2, width: barW, height: 2, class: "bar-missing" }));
    } else {
      const y1 = y(Math.max(0, p.value));
      const y2 = y(Math.min(0, p.value));
      const bar = s("rect", {
        x: cx - barW / 2,
        y: y1,
        width: barW,
        height: Math.max(1, y2 - y1),
        rx: 2,
        class: `bar${p.value < 0 ? " bar-neg" : ""}${p.className ? ` ${p.className}` : ""}`,
      });
      bar.append(s("title", {}, `${p.label}: ${p.display}`));
      svg.append(bar);
      // A period still running would pull the line down; its bar is shown, lighter, on its own.
      if (p.className !== "bar-partial") linePts.push([cx, y(p.value)]);
    }
    if (i % every === 0)
      svg.append(s("text", { x: cx, y: height - 8, "text-anchor": "middle", class: "tick" }, p.label));
  });
  if (o.line && linePts.length > 1)
    svg.append(
      s("polyline", { points: linePts.map(([a, b]) => `${a},${b}`).join(" "), class: "trend-line" }),
    );
  return svg;
}

/**
 * Ranges: a bar to the median and a whisker to the 90th percentile, per row.
 * @param {{
 *   rows: { label: string; p50: number | null; p90: number | null; display: string }[];
 *   label: string;
 *   width?: number;
 * }} o
 */
export function ranges(o) {
  const width = o.width ?? 640;
  const rows = layout(width, Math.round(width * 0.27), Math.round(Math.max(165, width * 0.26)));
  const { labelW, valueW, rowH, barTop } = rows;
  const height = 8 + o.rows.length * rowH;
  const svg = frame(width, height, o.label);
  const max = niceMax(Math.max(0, ...o.rows.map((r) => r.p90 ?? r.p50 ?? 0)));
  const plotW = width - labelW - valueW;
  const x = (/** @type {number} */ v) => labelW + (v / max) * plotW;
  svg.append(s("line", { x1: labelW, x2: labelW, y1: 2, y2: height - 2, class: "axis" }));
  o.rows.forEach((r, i) => {
    const y = 4 + i * rowH;
    const mid = y + barTop + BAR_H / 2;
    svg.append(rows.labelText(y, r.label));
    if (r.p50 !== null)
      svg.append(
        s("rect", {
          x: labelW,
          y: y + barTop,
          width: Math.max(1, x(r.p50) - labelW),
          height: BAR_H,
          rx: 3,
          class: "bar",
        }),
      );
    if (r.p90 !== null) {
      svg.append(s("line", { x1: x(r.p50 ?? 0), x2: x(r.p90), y1: mid, y2: mid, class: "whisker" }));
      svg.append(
        s("line", { x1: x(r.p90), x2: x(r.p90), y1: y + barTop, y2: y + barTop + BAR_H, class: "whisker" }),
      );
    }
    svg.append(s("text", { x: width - valueW + 8, y: mid + 5, class: "val" }, r.display));
  });
  return svg;
}

const BAR_H = 18;

/**
 * Row geometry for the horizontal charts: labels left of the bars on a wide chart; on a narrow one
 * (a phone) each label gets its own line above its bar, so long labels are not cut off.
 * @param {number} width
 * @param {number} labelW
 * @param {number} valueW
 */
function layout(width, labelW, valueW) {
  const stacked = width < 500;
  return {
    labelW: stacked ? 4 : labelW,
    valueW,
    rowH: stacked ? 44 : 30,
    barTop: stacked ? 20 : 6,
    labelText: (/** @type {number} */ y, /** @type {string} */ text) =>
      stacked
        ? s("text", { x: 4, y: y + 15, class: "lbl" }, text)
        : s("text", { x: labelW - 8, y: y + 20, "text-anchor": "end", class: "lbl" }, text),
  };
}

function formatTick(/** @type {number} */ v) {
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Math.round(v * 10) / 10);
}
