// @ts-check
/**
 * The printable benefits report for one site and period (web/report.html), for a municipality's
 * business case: realised time beside potential, hours as årsværk and kroner, the comparison with
 * the baseline and the previous period, quality beside time, the baseline itself, every assumption
 * with its source, the full citations, and the method in plain words. Danish by default, English
 * with ?lang=en; the numbers in the page's language.
 *
 * Address: /report.html?site=&unit=&from=YYYY-MM-DD&to=YYYY-MM-DD&lang=da|en, `to` exclusive as in
 * the reports API. Without from/to: the last complete calendar quarter in local time.
 *
 * Everything shown comes from the reports API (benefits, quality, model); nothing is computed here
 * but formatting, so the printed figures are the API's.
 */
import { ApiError, apiRequest, storedToken, TOKEN_KEY } from "./api.js";
import { headlineParts, provenanceText, showHeadline, WEEKLY_DIGITS } from "./benefits.js";
import { $, placeNames } from "./dom.js";
import { dateText, instantText, money, num, percent } from "./format.js";
import { applyStatic, has, lang, setLang, t } from "./i18n.js";

/** @typedef {import("./benefits.js").Benefits} Benefits */

const SECTIONS = /** @type {const} */ ([
  "summary",
  "realised-potential",
  "fte-cost",
  "comparison",
  "quality",
  "baseline",
  "assumptions",
  "sources",
  "method",
]);
/** What each section is drawn from. */
const NEEDS = /** @type {Record<(typeof SECTIONS)[number], ("benefits" | "quality" | "model")[]>} */ ({
  summary: ["benefits"],
  "realised-potential": ["benefits"],
  "fte-cost": ["benefits"],
  comparison: ["benefits"],
  quality: ["quality"],
  baseline: ["benefits"],
  assumptions: ["model"],
  sources: ["model", "benefits"],
  method: ["benefits", "quality"],
});

const DATE = /^\d{4}-\d{2}-\d{2}$/;

const state = {
  /** @type {string | null} */
  token: null,
  /** @type {{ site: string; unit: string; from: string; to: string }} */
  params: { site: "", unit: "", from: "", to: "" },
  /** @type {Map<string, string>} */
  names: new Map(),
  /** @type {{ benefits?: Benefits; quality?: any; model?: any }} */
  data: {},
  /** @type {Record<string, unknown>} */
  errors: {},
};

// ------------------------------------------------------------------ small helpers

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

/**
 * A plain table; a cell is text, a node, or {text, cls, figure} (data-figure names the API field a
 * printed number comes from, for whoever checks the print against the API).
 * @typedef {string | Node | { text: string | Node; cls?: string; figure?: string }} Cell
 * @param {string[]} head
 * @param {Cell[][]} rows
 * @param {{ numeric?: number[]; cls?: string }} [opts] columns (by index) aligned as numbers
 */
function table(head, rows, opts = {}) {
  const numeric = new Set(opts.numeric ?? []);
  const tbl = el("table", `data${opts.cls ? ` ${opts.cls}` : ""}`);
  const thead = el("thead");
  const hr = el("tr");
  head.forEach((h, i) => {
    hr.append(el("th", numeric.has(i) ? "num" : "", h));
  });
  thead.append(hr);
  const tbody = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    r.forEach((c, i) => {
      const td = el("td", numeric.has(i) ? "num" : "");
      const spec = typeof c === "object" && !(c instanceof Node) ? c : { text: c };
      if (spec.cls) td.classList.add(...spec.cls.split(" "));
      if (spec.figure) td.dataset.figure = spec.figure;
      if (typeof spec.text === "string") td.textContent = spec.text;
      else td.append(spec.text);
      tr.append(td);
    });
    tbody.append(tr);
  }
  tbl.append(thead, tbody);
  return tbl;
}

/** The visible placeholder mark. */
function placeholderMark() {
  return el("span", "placeholder-mark", t("report.placeholder"));
}

/** YYYY-MM-DD of a local date. */
function isoDate(/** @type {Date} */ d) {
  const p = (/** @type {number} */ x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The day before a YYYY-MM-DD (the last day of a range whose `to` is exclusive). */
function dayBefore(/** @type {string} */ iso) {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/** The last complete calendar quarter in local time: [first day, first day of the next). */
function lastQuarter(now = new Date()) {
  const start = Math.floor(now.getMonth() / 3) * 3;
  return {
    from: isoDate(new Date(now.getFullYear(), start - 3, 1)),
    to: isoDate(new Date(now.getFullYear(), start, 1)),
  };
}

function unitName(/** @type {string} */ unit) {
  return state.names.get(`${state.params.site}/${unit}`) ?? unit;
}

function label(/** @type {string} */ key, /** @type {string} */ fallback) {
  return has(key) ? t(key) : fallback;
}

/** A model parameter's (or economic figure's) unit and source in the page's language. */
function texts(/** @type {{ unit: string; source: string; da?: { unit: string; source: string } }} */ p) {
  return lang() === "da" && p.da ? p.da : { unit: p.unit, source: p.source };
}

// ------------------------------------------------------------------ start

function init() {
  document.documentElement.lang = lang();
  applyStatic(document);
  document.title = t("app.report");
  $("print").addEventListener("click", () => window.print());
  $("lang").addEventListener("click", () => {
    setLang(lang() === "da" ? "en" : "da");
    document.title = t("app.report");
    syncAddress();
    renderAll();
  });
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = /** @type {HTMLInputElement} */ ($("token")).value.trim();
    if (token) void start(token, true);
  });

  const q = new URLSearchParams(location.search);
  const from = q.get("from") ?? "";
  const to = q.get("to") ?? "";
  const quarter = lastQuarter();
  state.params = {
    site: q.get("site") ?? "",
    unit: q.get("unit") ?? "",
    from: from || quarter.from,
    to: to || quarter.to,
  };
  const token = storedToken();
  if (token) void start(token, false);
  else showSignIn(null);
}

function showSignIn(/** @type {string | null} */ error) {
  $("signin").hidden = false;
  $("report").hidden = true;
  const e = $("signin-error");
  e.hidden = !error;
  e.textContent = error ?? "";
  document.body.dataset.state = "signin";
}

/** The address says what is printed: site, unit, period and language. */
function syncAddress() {
  const { site, unit, from, to } = state.params;
  history.replaceState(
    null,
    "",
    `?${new URLSearchParams({ site, ...(unit ? { unit } : {}), from, to, lang: lang() })}`,
  );
}

/**
 * @param {string} token
 * @param {boolean} fromForm
 */
async function start(token, fromForm) {
  try {
    const me = await (await apiRequest(token, "/api/v1/me")).json();
    if (!["manager", "admin"].includes(me.staff?.role)) throw new Error(t("signin.notManager"));
    state.token = token;
    state.names = placeNames(me.places);
    const sites = /** @type {string[]} */ (me.staff.sites);
    if (!sites.includes(state.params.site)) state.params.site = sites[0] ?? "";
    if (fromForm) {
      try {
        localStorage.setItem(TOKEN_KEY, token);
      } catch {
        // This page only.
      }
    }
  } catch (err) {
    const e = /** @type {Error} */ (err);
    const text =
      e instanceof ApiError && (e.status === 401 || e.status === 403)
        ? t("signin.invalid")
        : e instanceof TypeError
          ? t("signin.unreachable")
          : e.message;
    showSignIn(text);
    return;
  }
  $("signin").hidden = true;
  $("report").hidden = false;
  syncAddress();
  await load();
}

async function load() {
  const { site, unit, from, to } = state.params;
  const status = $("report-status");
  if (!DATE.test(from) || !DATE.test(to) || from >= to) {
    status.textContent = t("report.badParams");
    document.body.dataset.state = "error";
    return;
  }
  status.textContent = t("report.loading");
  const range = { site, unit: unit || undefined, from, to };
  /** @param {"benefits" | "quality" | "model"} key @param {string} path @param {Record<string, string | undefined>} params */
  const get = async (key, path, params) => {
    try {
      state.data[key] = await (await apiRequest(state.token, path, params)).json();
      delete state.errors[key];
    } catch (err) {
      delete state.data[key];
      state.errors[key] = err;
    }
  };
  await Promise.all([
    get("benefits", "/api/v1/reports/benefits", range),
    get("quality", "/api/v1/reports/quality", range),
    get("model", "/api/v1/reports/model", { site }),
  ]);
  renderAll();
  const failed = Object.keys(state.errors).length > 0;
  status.textContent = failed ? "" : t("report.ready");
  document.body.dataset.state = failed ? "error" : "ready";
}

// ------------------------------------------------------------------ rendering

function renderAll() {
  const { site, unit, from, to } = state.params;
  const b = state.data.benefits;
  $("report-scope").textContent = t("report.scope", {
    site: state.names.get(site) ?? site,
    unit: ` · ${unit ? unitName(unit) : t("report.allUnits")}`,
    from: dateText(from),
    to: dateText(dayBefore(to)),
    days: b ? b.observedDays : "–",
  });
  for (const name of SECTIONS) {
    const section = /** @type {HTMLElement} */ (document.querySelector(`[data-section="${name}"]`));
    const body = /** @type {HTMLElement} */ (section.querySelector(".section-body"));
    const missing = NEEDS[name].find((k) => !state.data[k]);
    if (missing) {
      const err = /** @type {Error | undefined} */ (state.errors[missing]);
      section.dataset.state = "error";
      body.replaceChildren(el("p", "section-error", t("report.error", { message: err?.message ?? missing })));
      continue;
    }
    try {
      body.replaceChildren(...RENDER[name]());
      section.dataset.state = "ready";
    } catch (err) {
      // A report whose shape changed must not take the page down: that section says so.
      section.dataset.state = "error";
      body.replaceChildren(
        el("p", "section-error", t("report.error", { message: /** @type {Error} */ (err).message })),
      );
    }
  }
  $("report-footer").textContent = b
    ? t("report.footer", {
        model: [...new Set(Object.values(b.modelVersions))].join(", "),
        baseline: b.baselines.map((x) => x.label).join(", ") || t("benefits.noBaselineShort"),
        at: instantText(new Date().toISOString()),
      })
    : "";
}

const benefits = () => /** @type {Benefits} */ (state.data.benefits);

/** @type {Record<(typeof SECTIONS)[number], () => Node[]>} */
const RENDER = {
  summary() {
    const b = benefits();
    const parts = headlineParts();
    // On paper there is no hover: every caveat in full.
    showHeadline(parts, b, { shown: Number.POSITIVE_INFINITY });
    return [
      parts.root,
      el("p", "help", t("report.summaryDays", { days: b.observedDays, weeks: b.weeksPerYear })),
    ];
  },

  "realised-potential"() {
    const b = benefits();
    const cur = b.economics.currency;
    // Without any baseline nothing was measured: say that, not "not measured" per category.
    const notMeasured = () => ({
      text: t(b.headline.realised ? "report.notMeasured" : "report.noBaselineRealised"),
      cls: "not-measured",
    });
    const rows = b.categories.map((c) => {
      const r = c.realised;
      /** @type {Cell[]} */
      const row = [
        label(`dash.cat.${c.category}`, c.category),
        t(`report.staff.${c.staff}`),
        r ? { text: num(r.hours, 2), figure: `${c.category}.realised.hours` } : notMeasured(),
        { text: num(c.potential.hours, 2), figure: `${c.category}.potential.hours` },
        r ? num(r.count, 0) : "–",
        num(c.potential.count, 0),
        r ? money(r.cost, cur) : "–",
        money(c.potential.cost, cur),
      ];
      return row;
    });
    const { realised, potential } = b.headline;
    rows.push([
      { text: t("report.total"), cls: "total" },
      "",
      realised
        ? { text: num(realised.hours, 2), cls: "total", figure: "total.realised.hours" }
        : { text: t("report.noBaselineRealised"), cls: "not-measured" },
      { text: num(potential.hours, 2), cls: "total", figure: "total.potential.hours" },
      "",
      "",
      realised ? { text: money(realised.cost, cur), cls: "total" } : "–",
      { text: money(potential.cost, cur), cls: "total" },
    ]);
    return [
      el("p", "help", t("report.realisedPotentialHelp")),
      table(
        [
          t("report.col.category"),
          t("report.col.staff"),
          t("report.col.realisedHours"),
          t("report.col.potentialHours"),
          t("report.col.realisedCount"),
          t("report.col.potentialCount"),
          t("report.col.realisedCost"),
          t("report.col.potentialCost"),
        ],
        rows,
        { numeric: [2, 3, 4, 5, 6, 7] },
      ),
    ];
  },

  "fte-cost"() {
    const b = benefits();
    const cur = b.economics.currency;
    const { realised, potential } = b.headline;
    /** @type {[string, (a: import("./benefits.js").Amounts) => string][]} */
    const figures = [
      ["hours", (a) => num(a.hours, 2)],
      ["hoursPerWeek", (a) => num(a.hoursPerWeek, WEEKLY_DIGITS)],
      ["hoursPerYear", (a) => num(a.hoursPerYear, 0)],
      ["fte", (a) => num(a.fte, 2)],
      ["cost", (a) => money(a.cost, cur)],
      ["costPerYear", (a) => money(a.costPerYear, cur)],
    ];
    const amounts = table(
      [t("report.col.figure"), t("report.col.realised"), t("report.col.potential")],
      figures.map(([k, f]) => [
        t(`report.fig.${k}`),
        realised
          ? { text: f(realised), figure: `realised.${k}` }
          : { text: t("report.noBaselineRealised"), cls: "not-measured" },
        { text: f(potential), figure: `potential.${k}` },
      ]),
      { numeric: [1, 2] },
    );
    const eco = b.economics;
    /** @param {string} name @param {any} v @param {string} value */
    const ecoRow = (name, v, value) => {
      const { unit, source } = texts(v);
      const cell = el("span", "", value);
      if (v.placeholder) cell.append(" ", placeholderMark());
      return /** @type {Cell[]} */ ([
        name,
        { text: cell, cls: v.placeholder ? "placeholder" : "" },
        unit,
        source,
      ]);
    };
    const conversion = table(
      [t("report.col.figure"), t("report.col.value"), t("report.col.unit"), t("report.col.source")],
      [
        ecoRow(t("report.eco.annualHoursPerFte"), eco.annualHoursPerFte, num(eco.annualHoursPerFte.value, 1)),
        ecoRow(t("report.eco.night"), eco.hourlyCost.night, money(eco.hourlyCost.night.value, cur)),
        ecoRow(t("report.eco.day"), eco.hourlyCost.day, money(eco.hourlyCost.day.value, cur)),
        [
          t("report.eco.weeksPerYear"),
          { text: num(b.weeksPerYear, 0), figure: "weeksPerYear" },
          t("report.eco.weeksUnit"),
          t("report.eco.weeksSource"),
        ],
      ],
      { cls: "economics" },
    );
    conversion.querySelectorAll("td.placeholder").forEach((td) => {
      td.parentElement?.classList.add("placeholder");
    });
    return [amounts, el("h3", "", t("report.economics")), conversion];
  },

  comparison() {
    const b = benefits();
    const da = lang() === "da";
    const period = (/** @type {string} */ name) =>
      b.periods.find((p) => p.site === state.params.site && p.name === name) ??
      b.periods.find((p) => p.name === name);
    const head = (/** @type {string} */ key, /** @type {string} */ name) => {
      const p = period(name);
      return p ? t(key, { from: dateText(p.from), to: dateText(p.to) }) : t(key, { from: "–", to: "–" });
    };
    const value = (/** @type {string} */ figure, /** @type {number | null} */ v) =>
      v === null ? "–" : figure.includes("share") ? percent(v, 1) : num(v, 2);
    const rows = b.comparison
      .filter((r) => r.site === state.params.site)
      .map(
        (r) =>
          /** @type {Cell[]} */ ([
            label(`report.cmp.${r.figure}`, r.figure),
            da ? r.unit.da : r.unit.en,
            r.baseline === null
              ? { text: t("report.notRecorded"), cls: "not-measured" }
              : value(r.figure, r.baseline),
            value(r.figure, r.previous),
            value(r.figure, r.current),
            r.note ? { text: da ? r.note.da : r.note.en, cls: "too-little" } : "",
          ]),
      );
    return [
      table(
        [
          t("report.col.figure"),
          t("report.col.unit"),
          head("report.col.baselinePeriod", "baseline"),
          head("report.col.previous", "previous"),
          head("report.col.current", "current"),
          t("report.col.note"),
        ],
        rows,
        { numeric: [2, 3, 4] },
      ),
    ];
  },

  quality() {
    const q = state.data.quality;
    const da = lang() === "da";
    const note = (/** @type {any} */ f) =>
      f.note ? { text: da ? f.note.da : f.note.en, cls: "too-little" } : "";
    const minutes = (/** @type {number | null} */ sec) =>
      sec === null ? "–" : t("report.q.minutes", { n: num(sec / 60, 1) });
    /** @type {Cell[][]} */
    const rows = [
      [
        t("report.q.falls"),
        { text: num(q.falls.per1000BedDays, 2), figure: "falls.per1000BedDays" },
        t("report.q.bedDays", { n: num(q.falls.n, 0), events: num(q.falls.events, 0) }),
        num(q.falls.minimum, 0),
        note(q.falls),
      ],
      [
        t("report.q.fallsWithInjury"),
        num(q.fallsWithInjury.per1000BedDays, 2),
        t("report.q.bedDays", { n: num(q.fallsWithInjury.n, 0), events: num(q.fallsWithInjury.events, 0) }),
        num(q.fallsWithInjury.minimum, 0),
        note(q.fallsWithInjury),
      ],
      [
        t("report.q.floorMedian"),
        { text: minutes(q.floorTime.medianSec), figure: "floorTime.medianSec" },
        t("report.q.falls.n", { n: num(q.floorTime.n, 0) }),
        num(q.floorTime.minimum, 0),
        note(q.floorTime),
      ],
      [
        t("report.q.floorP90"),
        minutes(q.floorTime.p90Sec),
        t("report.q.falls.n", { n: num(q.floorTime.n, 0) }),
        num(q.minimums?.floorTimeP90Falls, 0),
        q.floorTime.p90Sec === null && q.floorTime.n > 0
          ? { text: t("report.tooLittle"), cls: "too-little" }
          : note(q.floorTime),
      ],
      [
        t("report.q.falseAlarms"),
        num(q.falseAlarms.perResidentNight, 3),
        t("report.q.nights", { n: num(q.falseAlarms.n, 0), events: num(q.falseAlarms.events, 0) }),
        num(q.falseAlarms.minimum, 0),
        note(q.falseAlarms),
      ],
    ];
    if (q.lift)
      rows.push([
        t("report.q.liftShare"),
        { text: percent(q.lift.oneHelperShare, 1), figure: "lift.oneHelperShare" },
        t("report.q.cycles", { n: num(q.lift.n, 0) }),
        num(q.lift.minimum, 0),
        note(q.lift),
      ]);
    return [
      table(
        [
          t("report.col.figure"),
          t("report.col.value"),
          t("report.col.basis"),
          t("report.col.minimum"),
          t("report.col.note"),
        ],
        rows,
        { numeric: [1, 3] },
      ),
    ];
  },

  baseline() {
    const b = benefits();
    if (!b.baselines.length) return [el("p", "no-baseline", t("report.b.none"))];
    return b.baselines.map((x) => {
      const block = el("div", "baseline");
      block.dataset.fingerprint = x.fingerprint;
      const scope = x.unit ? unitName(x.unit) : t("report.b.scopeSite");
      block.append(el("h3", "", `${t("report.b.heading", { label: x.label })} · ${scope}`));
      const dl = el("dl", "facts");
      /** @param {string} k @param {string} v @param {string} [title] */
      const fact = (k, v, title) => {
        const dd = el("dd", "", v);
        if (title) dd.title = title;
        dl.append(el("dt", "", t(k)), dd);
      };
      fact("report.b.version", String(x.version));
      fact("report.b.fingerprint", x.fingerprint.slice(0, 12), x.fingerprint);
      fact("report.b.period", `${dateText(x.period.from)} – ${dateText(x.period.to)}`);
      fact("report.b.recordedBy", x.recordedBy);
      fact("report.b.recordedAt", instantText(x.recordedAt));
      fact("report.b.appliesTo", x.appliesTo.map(unitName).join(", "));
      if (x.note) fact("report.b.note", x.note);
      const rows = Object.entries(x.measurements).map(([k, m]) => {
        const v = k.endsWith("Share") ? percent(m.value, 1) : num(m.value, 2);
        const extra = m.perResident?.length
          ? ` (${t("report.b.perResident", { n: m.perResident.length })})`
          : "";
        return /** @type {Cell[]} */ ([
          label(`report.m.${k}`, k),
          { text: v + extra, figure: `baseline.${k}` },
          label(`report.mu.${k}`, m.unit),
          { text: m.method, cls: "method-text" },
        ]);
      });
      block.append(
        dl,
        table(
          [t("report.col.measurement"), t("report.col.value"), t("report.col.unit"), t("report.col.method")],
          rows,
          { numeric: [1] },
        ),
      );
      return block;
    });
  },

  assumptions() {
    const m = state.data.model;
    const params = Object.entries(m.model?.parameters ?? m.parameters ?? {});
    const numbers = citationNumbers();
    const rows = params.map(([key, raw]) => {
      const p = /** @type {any} */ (raw);
      const { unit, source } = texts(p);
      const name = el("span", "param");
      name.append(el("span", "param-name", label(`param.${key}`, key)), " ", el("code", "param-key", key));
      const value = el(
        "span",
        "param-value",
        typeof p.value === "number" ? num(p.value, 3) : String(p.value),
      );
      if (p.range) value.append(` (${num(p.range[0], 2)}–${num(p.range[1], 2)})`);
      if (p.placeholder) value.append(" ", placeholderMark());
      const src = el("span", "", source);
      for (const id of p.cites ?? []) {
        const a = /** @type {HTMLAnchorElement} */ (el("a", "cite-ref", `[${numbers.get(id) ?? "?"}]`));
        a.href = `#cite-${id}`;
        src.append(" ", a);
      }
      return /** @type {Cell[]} */ ([
        { text: name, cls: p.placeholder ? "placeholder" : "" },
        { text: value, figure: `param.${key}` },
        unit,
        src,
      ]);
    });
    const tbl = table(
      [t("report.col.parameter"), t("report.col.value"), t("report.col.unit"), t("report.col.source")],
      rows,
    );
    tbl.querySelectorAll("tbody tr").forEach((row, i) => {
      const tr = /** @type {HTMLElement} */ (row);
      const p = /** @type {any} */ (params[i]?.[1]);
      tr.dataset.param = params[i]?.[0] ?? "";
      if (p?.placeholder) tr.classList.add("placeholder");
    });
    const version = el(
      "p",
      "model-version",
      `${t("dash.model", { version: m.model?.modelVersion ?? m.version })}`,
    );
    return [el("p", "help", t("report.assumptionsHelp")), version, tbl];
  },

  sources() {
    const m = state.data.model;
    const citations = /** @type {any[]} */ (m.model?.citations ?? []);
    const list = el("ol", "citations");
    for (const c of citations) {
      const li = el("li", "citation");
      li.id = `cite-${c.id}`;
      li.dataset.citation = c.id;
      if (c.authors) li.append(el("span", "cite-authors", `${c.authors}. `));
      li.append(el("span", "cite-title", `${c.title}. `));
      li.append(el("span", "cite-publication", `${c.publication}. `));
      li.append(el("span", "cite-year", `${c.year}. `));
      const href = c.doi ? `https://doi.org/${c.doi}` : c.url;
      if (href) {
        const a = /** @type {HTMLAnchorElement} */ (el("a", "cite-link", href));
        a.href = href;
        li.append(a);
      }
      if (c.note) li.append(el("span", "cite-note", ` — ${c.note}`));
      list.append(li);
    }
    // Sources named in the model without a full citation: said so, not invented.
    const da = lang() === "da";
    /** @type {Set<string>} */
    const uncited = new Set();
    for (const raw of Object.values(m.model?.parameters ?? {})) {
      const p = /** @type {any} */ (raw);
      // A derived value is arithmetic on other parameters, whose sources are listed themselves.
      if (!p.cites?.length && !p.placeholder && !p.derived) uncited.add(texts(p).source);
    }
    for (const r of m.model?.references ?? []) if (!r.cites?.length) uncited.add(r.source);
    const eco = benefits().economics;
    for (const v of [eco.annualHoursPerFte, eco.hourlyCost.night, eco.hourlyCost.day])
      if (!v.placeholder) uncited.add(texts(v).source);
    const rest = el("ul", "uncited");
    for (const s of uncited) {
      const li = el("li", "", s);
      li.append(" ", el("span", "no-citation", `(${t("report.noCitation")})`));
      rest.append(li);
    }
    const refs = (m.model?.references ?? []).filter((/** @type {any} */ r) => r.cites?.length);
    /** @type {Node[]} */
    const nodes = [el("h3", "", t("report.citations")), list];
    if (refs.length) {
      const numbers = citationNumbers();
      nodes.push(el("h3", "", t("dash.references")));
      const ul = el("ul", "cited-references");
      for (const r of refs) {
        const name = da && r.da?.name ? r.da.name : r.name;
        const li = el("li", "", `${name}: ${da && r.da?.value ? r.da.value : r.value} — ${r.source} `);
        for (const id of r.cites) {
          const a = /** @type {HTMLAnchorElement} */ (el("a", "cite-ref", `[${numbers.get(id) ?? "?"}]`));
          a.href = `#cite-${id}`;
          li.append(a);
        }
        ul.append(li);
      }
      nodes.push(ul);
    }
    if (uncited.size) nodes.push(el("h3", "", t("report.uncited")), rest);
    return nodes;
  },

  method() {
    const b = benefits();
    const q = state.data.quality;
    const cur = b.economics.currency;
    const eco = b.economics;
    const para = (/** @type {string} */ key, /** @type {Record<string, string | number>} */ vars = {}) =>
      el("p", "", t(key, vars));
    const realised = el("ul", "method-list");
    for (const k of ["night", "lift", "remote", "false"])
      realised.append(el("li", "", t(`report.method.${k}`)));
    const current = b.periods.find((p) => p.name === "current");
    const M = q.minimums ?? {};
    return [
      para("report.method.potential"),
      para("report.method.realised"),
      realised,
      para("report.method.unmeasured"),
      para("report.method.perWeek", { weeks: b.weeksPerYear }),
      para("report.method.fte", {
        annual: num(eco.annualHoursPerFte.value, 1),
        annualSource: texts(eco.annualHoursPerFte).source,
      }),
      para("report.method.kroner", {
        night: t("report.perHour", { amount: money(eco.hourlyCost.night.value, cur) }),
        day: t("report.perHour", { amount: money(eco.hourlyCost.day.value, cur) }),
      }),
      para("report.method.economics"),
      para("report.method.provenance", {
        model: [...new Set(Object.values(b.modelVersions))].join(", "),
        baseline: b.baselines.map((x) => x.label).join(", ") || t("benefits.noBaselineShort"),
      }),
      para("report.method.tooLittle", {
        bedDays: num(M.bedDays, 0),
        nights: num(M.residentNights, 0),
        falls: num(M.floorTimeFalls, 0),
        cycles: num(M.liftCycles, 0),
      }),
      para("report.method.period", {
        from: current ? dateText(current.from) : dateText(state.params.from),
        to: current ? dateText(current.to) : dateText(dayBefore(state.params.to)),
      }),
      el("p", "benefits-provenance", provenanceText(b)),
    ];
  },
};

/** Citation ids numbered in the order the model lists them (the numbered list in Sources). */
function citationNumbers() {
  const m = state.data.model;
  return new Map(
    /** @type {any[]} */ (m?.model?.citations ?? []).map((c, i) => [/** @type {string} */ (c.id), i + 1]),
  );
}

init();
