// @ts-check
/**
 * The managers' dashboard: time freed for face-to-face care, and the figures around it (response
 * times, alert volume, false alarms, device coverage), read from the reports API
 * (/api/v1/reports/*). Every number shows the model version it was computed with, and the
 * assumptions panel lists every parameter with its unit and source, placeholders marked.
 *
 * Each panel loads on its own: one report failing or empty never blanks the others.
 */
import { ApiError, apiRequest, TOKEN_KEY } from "./api.js";
import { clearHeadline, showHeadline } from "./benefits.js";
import { hbars, ranges, vbars } from "./charts.js";
import { $, placeNames } from "./dom.js";
import { locale, num } from "./format.js";
import { applyStatic, has, lang, setLang, t } from "./i18n.js";
import { observePanel } from "./observe.js";
import { staffPanel } from "./staff-panel.js";

const CATEGORIES = ["night_supervision", "lift_transfers", "remote_resolution", "false_alarms"];
const MANAGER_ROLES = new Set(["manager", "admin"]);

const els = {
  signin: $("signin"),
  signinForm: /** @type {HTMLFormElement} */ ($("signin-form")),
  token: /** @type {HTMLInputElement} */ ($("token")),
  signinSubmit: /** @type {HTMLButtonElement} */ ($("signin-submit")),
  signinError: $("signin-error"),
  app: $("app"),
  who: $("who"),
  lang: /** @type {HTMLButtonElement} */ ($("lang")),
  signOut: /** @type {HTMLButtonElement} */ ($("sign-out")),
  filters: /** @type {HTMLFormElement} */ ($("filters")),
  site: /** @type {HTMLSelectElement} */ ($("f-site")),
  unit: /** @type {HTMLSelectElement} */ ($("f-unit")),
  days: /** @type {HTMLSelectElement} */ ($("f-days")),
  interval: /** @type {HTMLSelectElement} */ ($("f-interval")),
  headlineSub: $("headline-sub"),
  headlineCats: $("headline-cats"),
  headlineModel: $("headline-model"),
  reportLink: /** @type {HTMLAnchorElement} */ ($("report-link")),
  toast: $("toast"),
};

/** The benefits headline (web/benefits.js): realised first, the potential beside it, caveats under. */
const headline = {
  root: $("headline"),
  label: $("headline-label"),
  value: $("headline-value"),
  potential: $("headline-potential"),
  caveats: $("headline-caveats"),
  provenance: $("headline-provenance"),
};

/** @typedef {{ id: string; name: string; role: string; sites: string[]; units: string[] | null }} Staff */
/** @typedef {import("./dom.js").PlaceSite} PlaceSite */

const state = {
  /** @type {string | null} */
  token: null,
  /** @type {Staff | null} */
  staff: null,
  /** Display names from /api/v1/me: "site" and "site/unit" keys. */
  /** @type {Map<string, string>} */
  names: new Map(),
  /** Unit ids of the chosen site, learned from the reports. */
  /** @type {string[]} */
  units: [],
  /** Guards against an older load finishing after a newer one. */
  loadSeq: 0,
  /** The last successful reports, re-rendered on a language switch. */
  /** @type {Record<string, any>} */
  data: {},
};

// ------------------------------------------------------------------ formatting

function pct(/** @type {number | null | undefined} */ share, digits = 1) {
  return share === null || share === undefined ? "–" : t("dash.percent", { n: num(share * 100, digits) });
}

function duration(/** @type {number | null | undefined} */ sec) {
  if (sec === null || sec === undefined) return "–";
  if (sec < 90) return t("dash.seconds", { n: num(sec, 0) });
  if (sec < 90 * 60) return t("dash.minutes", { n: num(sec / 60, 1) });
  return t("dash.hours", { n: num(sec / 3600, 1) });
}

/** A length of time at the scale a reader thinks in: "3 min", "5 t", "2 dage", "4 uger". */
function span(/** @type {number} */ hours) {
  if (hours < 1.5) return t("dash.minutes", { n: num(hours * 60, 0) });
  if (hours < 48) return t("dash.hours", { n: num(hours, 0) });
  const days = Math.round(hours / 24);
  if (days < 14) return t(days === 1 ? "dash.day" : "dash.days", { n: num(days, 0) });
  const weeks = Math.round(days / 7);
  return t(weeks === 1 ? "dash.week" : "dash.weeks", { n: num(weeks, 0) });
}

/**
 * An uptime share with how much of the window it rests on: a device registered 3 minutes ago is not
 * "100 %" of four weeks. No share (nothing registered in the window): no figure at all.
 */
function uptimeText(
  /** @type {{ onlineShare: number | null, observedHours?: number, windowHours?: number }} */ x,
) {
  if (x.onlineShare === null) return t("dash.notObserved");
  const share = pct(x.onlineShare, 1);
  const { observedHours: seen, windowHours: window } = x;
  if (seen === undefined || window === undefined || seen >= window) return share;
  return `${share} (${t("dash.observedOf", { observed: span(seen), window: span(window) })})`;
}

function label(/** @type {string} */ prefix, /** @type {string} */ key) {
  return has(`${prefix}.${key}`) ? t(`${prefix}.${key}`) : key;
}

/** "2026-11-23" -> "23/11" (da) or "23 Nov" (en). */
function shortDate(/** @type {string} */ iso) {
  const d = new Date(`${iso.slice(0, 10)}T12:00:00Z`);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(), { day: "numeric", month: "short", timeZone: "UTC" }).format(d);
}

/** A local calendar date N days before today, as YYYY-MM-DD. */
function daysAgo(/** @type {number} */ n) {
  const d = new Date();
  d.setDate(d.getDate() - n);
  const p = (/** @type {number} */ x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// ------------------------------------------------------------------ DOM helpers

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
 * @typedef {{ label: string; value: (row: any) => string | Node; num?: boolean; cls?: (row: any) => string }} Column
 * @param {Column[]} columns
 * @param {any[]} rows
 * @param {string} [caption]
 */
function table(columns, rows, caption) {
  const wrap = el("div", "table-wrap");
  const tbl = el("table", "data");
  if (caption) tbl.append(el("caption", "", caption));
  const thead = el("thead");
  const hr = el("tr");
  for (const c of columns) hr.append(el("th", c.num ? "num" : "", c.label));
  thead.append(hr);
  const tbody = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const td = el("td", `${c.num ? "num" : ""} ${c.cls ? c.cls(r) : ""}`.trim());
      const v = c.value(r);
      if (typeof v === "string") td.textContent = v;
      else td.append(v);
      tr.append(td);
    }
    tbody.append(tr);
  }
  tbl.append(thead, tbody);
  wrap.append(tbl);
  return wrap;
}

/** A table folded under the chart that shows the same numbers. */
function folded(/** @type {HTMLElement} */ content) {
  const d = el("details", "folded");
  d.append(el("summary", "", t("dash.showTable")), content);
  return d;
}

function panel(/** @type {string} */ id) {
  const section = $(id);
  const body = /** @type {HTMLElement} */ (section.querySelector(".panel-body"));
  return {
    loading() {
      section.dataset.state = "loading";
      body.replaceChildren(el("p", "panel-state", t("dash.loading")));
    },
    error(/** @type {unknown} */ err) {
      section.dataset.state = "error";
      const e = /** @type {ApiError} */ (err);
      const text =
        e instanceof ApiError && e.status === 404 && e.code === "not_found"
          ? t("dash.notAvailable")
          : t("dash.error", { message: e?.message ?? String(err) });
      body.replaceChildren(el("p", "panel-state panel-error", text));
    },
    empty() {
      section.dataset.state = "empty";
      body.replaceChildren(el("p", "panel-state", t("dash.empty")));
    },
    show(/** @type {Node[]} */ ...nodes) {
      section.dataset.state = "ready";
      body.replaceChildren(...nodes);
    },
  };
}

let toastTimer = /** @type {ReturnType<typeof setTimeout> | null} */ (null);
function toast(/** @type {string} */ text, error = false) {
  els.toast.textContent = text;
  els.toast.classList.toggle("toast-error", error);
  els.toast.hidden = false;
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    els.toast.hidden = true;
  }, 5000);
}

// ------------------------------------------------------------------ API

/**
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 * @param {RequestInit & { headers?: Record<string, string> }} [init]
 * @returns {Promise<Response>}
 */
async function apiFetch(path, params, init = {}) {
  try {
    return await apiRequest(state.token, path, params, init);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signOut(t("error.unauthenticated"));
    throw err;
  }
}

/**
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 */
async function apiJson(path, params) {
  return (await apiFetch(path, params)).json();
}

/** The filters as report query parameters. */
function query() {
  return {
    site: els.site.value || undefined,
    unit: els.unit.value || undefined,
    from: daysAgo(Number(els.days.value) - 1),
  };
}

/**
 * CSV through fetch (the token travels in a header, not in the URL) and a Blob download. In Danish
 * the file is the one a Danish Excel opens by double-click (format=csv-da: ";", decimal comma,
 * BOM, Danish headings); in English the machine CSV (RFC 4180, comma, decimal point).
 * @param {string} report
 * @param {string} tableName
 */
async function downloadCsv(report, tableName) {
  const q = query();
  const format = lang() === "da" ? { format: "csv-da", lang: "da" } : { format: "csv" };
  /** @type {Record<string, string | undefined>} */
  const params =
    report === "model"
      ? { site: q.site, ...format, table: tableName }
      : {
          ...q,
          ...format,
          table: tableName,
          ...(report === "time-saved" ? { interval: els.interval.value } : {}),
        };
  try {
    const res = await apiFetch(`/api/v1/reports/${report}`, params);
    const blob = await res.blob();
    const disposition = res.headers.get("content-disposition") ?? "";
    const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? `${report}-${tableName}.csv`;
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    toast(t("dash.csvFailed", { message: /** @type {Error} */ (err).message }), true);
  }
}

/** The units of the chosen site this person may enrol people for. */
function enrolUnits() {
  const site = els.site.value;
  const own = state.staff?.units;
  const all = [...state.names.keys()]
    .filter((k) => k.startsWith(`${site}/`))
    .map((k) => k.slice(site.length + 1));
  return own ? all.filter((u) => own.includes(u)) : all;
}

const staff = staffPanel({
  token: () => state.token,
  staff: () => state.staff,
  site: () => els.site.value,
  units: enrolUnits,
  unitName: (u) => unitName(u),
  fetch: (path, init) => apiFetch(path, {}, /** @type {any} */ (init)),
  toast,
});

// The operator's observe-mode panel (admin only; web/observe.js).
const observe = observePanel({
  staff: () => state.staff,
  site: () => els.site.value,
  units: enrolUnits,
  unitName: (u) => unitName(u),
  fetch: (path, init) => apiFetch(path, {}, /** @type {any} */ (init)),
  toast,
});

// ------------------------------------------------------------------ sign-in

function init() {
  document.documentElement.lang = lang();
  applyStatic(document);
  document.title = t("app.dashboard");
  els.signinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void signIn(els.token.value.trim(), true);
  });
  els.signOut.addEventListener("click", () => signOut());
  els.lang.addEventListener("click", () => {
    setLang(lang() === "da" ? "en" : "da");
    document.title = t("app.dashboard");
    reportLink();
    fillUnitOptions();
    renderAll();
    if (state.token) staff.relabel();
  });
  els.filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void load();
  });
  els.site.addEventListener("change", () => {
    state.units = [];
    fillUnitOptions();
    void load();
  });
  for (const s of [els.unit, els.days, els.interval]) s.addEventListener("change", () => void load());
  let narrow = chartWidth();
  window.addEventListener("resize", () => {
    if (chartWidth() === narrow) return;
    narrow = chartWidth();
    renderAll();
  });
  document.addEventListener("click", (ev) => {
    const b = /** @type {HTMLElement} */ (ev.target).closest("[data-csv]");
    if (b instanceof HTMLElement) void downloadCsv(b.dataset.csv ?? "", b.dataset.table ?? "");
  });

  let saved = null;
  try {
    saved = localStorage.getItem(TOKEN_KEY);
  } catch {
    // No storage.
  }
  if (saved) void signIn(saved, false);
  else showSignIn();
}

function showSignIn(/** @type {string | null} */ error = null) {
  els.signin.hidden = false;
  els.app.hidden = true;
  els.signOut.hidden = true;
  els.signinError.hidden = !error;
  els.signinError.textContent = error ?? "";
  els.token.focus();
}

/**
 * @param {string} token
 * @param {boolean} fromForm
 */
async function signIn(token, fromForm) {
  if (!token) return;
  els.signinSubmit.disabled = true;
  els.signinSubmit.textContent = t("signin.checking");
  try {
    const res = await fetch("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 401 || res.status === 403) throw new Error(t("signin.invalid"));
    if (!res.ok) throw new Error(t("signin.unreachable"));
    const { staff, places } = /** @type {{ staff: Staff; places?: PlaceSite[] }} */ (await res.json());
    if (!MANAGER_ROLES.has(staff.role)) throw new Error(t("signin.notManager"));
    state.token = token;
    state.staff = staff;
    state.names = placeNames(places);
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // This page only.
    }
    showApp();
  } catch (err) {
    if (!fromForm) {
      try {
        localStorage.removeItem(TOKEN_KEY);
      } catch {
        // Nothing stored.
      }
    }
    showSignIn(err instanceof TypeError ? t("signin.unreachable") : /** @type {Error} */ (err).message);
  } finally {
    els.signinSubmit.disabled = false;
    els.signinSubmit.textContent = t("signin.submit");
  }
}

function signOut(/** @type {string | null} */ message = null) {
  state.token = null;
  state.staff = null;
  state.data = {};
  state.loadSeq++;
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Nothing stored.
  }
  els.who.textContent = "";
  els.token.value = "";
  staff.reset();
  observe.reset();
  showSignIn(message);
}

function showApp() {
  const staff = /** @type {Staff} */ (state.staff);
  els.signin.hidden = true;
  els.app.hidden = false;
  els.signOut.hidden = false;
  els.who.textContent = staff.name;
  const hash = new URLSearchParams(location.hash.slice(1));
  els.site.replaceChildren(
    ...staff.sites.map((s) => {
      const o = /** @type {HTMLOptionElement} */ (el("option", "", state.names.get(s) ?? s));
      o.value = s;
      return o;
    }),
  );
  const site = hash.get("site");
  if (site && staff.sites.includes(site)) els.site.value = site;
  const days = hash.get("days");
  if (days && [...els.days.options].some((o) => o.value === days)) els.days.value = days;
  else els.days.value = "28";
  const interval = hash.get("interval");
  els.interval.value = interval === "day" || interval === "week" ? interval : "week";
  state.units = staff.units ?? [];
  fillUnitOptions(hash.get("unit") ?? "");
  void load();
}

/** A unit of the chosen site by its configured name, or its id when the gateway sent none. */
function unitName(/** @type {string} */ unit) {
  return state.names.get(`${els.site.value}/${unit}`) ?? unit;
}

function fillUnitOptions(/** @type {string} */ keep = els.unit.value) {
  const all = /** @type {HTMLOptionElement} */ (el("option", "", t("dash.allUnits")));
  all.value = "";
  const opts = state.units.map((u) => {
    const o = /** @type {HTMLOptionElement} */ (el("option", "", unitName(u)));
    o.value = u;
    return o;
  });
  els.unit.replaceChildren(all, ...opts);
  els.unit.value = state.units.includes(keep) ? keep : "";
}

// ------------------------------------------------------------------ loading

async function load() {
  if (!state.token) return;
  const seq = ++state.loadSeq;
  const q = query();
  const interval = els.interval.value;
  history.replaceState(
    null,
    "",
    `#${new URLSearchParams({ site: q.site ?? "", unit: q.unit ?? "", days: els.days.value, interval })}`,
  );
  for (const id of [
    "p-units",
    "p-trend",
    "p-categories",
    "p-response",
    "p-volume",
    "p-false",
    "p-outcomes",
    "p-coverage",
    "p-model",
  ])
    panel(id).loading();
  clearHeadline(headline, t("dash.loading"));
  els.headlineSub.textContent = "";
  els.headlineCats.replaceChildren();
  reportLink();

  /**
   * @param {string} key
   * @param {() => Promise<any>} fetcher
   * @param {string[]} panels
   */
  const job = async (key, fetcher, panels) => {
    try {
      const data = await fetcher();
      if (seq !== state.loadSeq) return;
      state.data[key] = data;
    } catch (err) {
      if (seq !== state.loadSeq) return;
      delete state.data[key];
      for (const id of panels) panel(id).error(err);
      if (key === "timeDay") {
        els.headlineSub.textContent = t("dash.error", { message: /** @type {Error} */ (err).message });
      }
      if (key === "benefits")
        clearHeadline(headline, t("dash.error", { message: /** @type {Error} */ (err).message }));
      return;
    }
    render(key);
  };

  // Per-day figures give the exact number of computed days behind "per week"; the trend uses the
  // interval the manager chose.
  await Promise.all([
    job("benefits", () => apiJson("/api/v1/reports/benefits", q), []),
    job("timeDay", () => apiJson("/api/v1/reports/time-saved", { ...q, interval: "day" }), [
      "p-units",
      "p-categories",
      ...(interval === "day" ? ["p-trend"] : []),
    ]),
    interval === "day"
      ? Promise.resolve()
      : job("timeTrend", () => apiJson("/api/v1/reports/time-saved", { ...q, interval }), ["p-trend"]),
    job("response", () => apiJson("/api/v1/reports/response-times", q), ["p-response"]),
    job("volume", () => apiJson("/api/v1/reports/alert-volume", q), ["p-volume"]),
    job("falseAlarms", () => apiJson("/api/v1/reports/false-alarms", q), ["p-false"]),
    job("outcomes", () => apiJson("/api/v1/reports/outcomes", q), ["p-outcomes"]),
    job("coverage", () => apiJson("/api/v1/reports/coverage", q), ["p-coverage"]),
    staff.load(),
    observe.load(),
    job("model", () => apiJson("/api/v1/reports/model", { site: q.site }), ["p-model"]),
  ]);
}

/**
 * The printed report (web/report.html) for what the filters show: the same site, unit and days
 * (to the end of today, as the reports' default), in the page's language.
 */
function reportLink() {
  const q = query();
  els.reportLink.href = `/report.html?${new URLSearchParams({
    ...(q.site ? { site: q.site } : {}),
    ...(q.unit ? { unit: q.unit } : {}),
    from: q.from,
    to: daysAgo(-1),
    lang: lang(),
  })}`;
}

/** Chart width in SVG units: narrower on a phone, so the text in the charts stays readable. */
function chartWidth() {
  return window.innerWidth < 640 ? 400 : 640;
}

function renderAll() {
  for (const key of Object.keys(state.data)) render(key);
}

/** @param {string} key */
function render(key) {
  const data = state.data[key];
  if (!data) return;
  try {
    if (key === "benefits") showHeadline(headline, data);
    else if (key === "timeDay") {
      learnUnits(data.byUnit?.map((/** @type {any} */ u) => u.unit) ?? []);
      renderHeadline(data);
      renderUnits(data);
      renderCategories(data);
      if (els.interval.value === "day") renderTrend(data);
    } else if (key === "timeTrend") renderTrend(data);
    else if (key === "response") renderResponse(data);
    else if (key === "volume") renderVolume(data);
    else if (key === "falseAlarms") renderFalseAlarms(data);
    else if (key === "outcomes") renderOutcomes(data);
    else if (key === "coverage") {
      learnUnits(data.byUnit?.map((/** @type {any} */ u) => u.unit) ?? []);
      renderCoverage(data);
    } else if (key === "model") renderModel(data);
  } catch (err) {
    // A report whose shape changed must not take the page down: that panel says so.
    if (key === "benefits")
      clearHeadline(headline, t("dash.error", { message: /** @type {Error} */ (err).message }));
    const ids = /** @type {Record<string, string[]>} */ ({
      timeDay: ["p-units", "p-categories"],
      timeTrend: ["p-trend"],
      response: ["p-response"],
      volume: ["p-volume"],
      falseAlarms: ["p-false"],
      outcomes: ["p-outcomes"],
      coverage: ["p-coverage"],
      model: ["p-model"],
    })[key];
    for (const id of ids ?? []) panel(id).error(err);
  }
}

/** The unit picker offers the units the reports list for the site (within the token's scope). */
function learnUnits(/** @type {string[]} */ units) {
  if (els.unit.value) return;
  const next = [...new Set(units)].sort();
  if (next.length && next.join() !== state.units.join()) {
    state.units = next;
    fillUnitOptions("");
  }
}

// ------------------------------------------------------------------ panels

/** Days with computed time-saved figures in a per-day report. */
function computedDays(/** @type {any} */ report) {
  return (report.trend ?? []).filter((/** @type {any} */ p) => p.computed).length;
}

function renderHeadline(/** @type {any} */ r) {
  const days = computedDays(r);
  const range = r.ranges?.[0];
  const from = range ? shortDate(range.from) : "";
  const to = range ? shortDate(new Date(Date.parse(range.to) - 1).toISOString()) : "";
  if (!days) {
    els.headlineSub.textContent = t("dash.noComputedDays");
    els.headlineCats.replaceChildren();
  } else {
    // The chips are the potential per category; the figure above them is the benefits account's.
    const weeks = days / 7;
    els.headlineSub.textContent = t("dash.headlineSub", {
      scope: els.unit.value ? unitName(els.unit.value) : t("dash.allUnits"),
      days,
      from,
      to,
    });
    els.headlineCats.replaceChildren(
      ...CATEGORIES.map((c) => {
        const h = (r.totals.categories?.[c]?.hours ?? 0) / weeks;
        const chip = el("span", `chip${h < 0 ? " chip-neg" : ""}`);
        chip.append(el("span", "chip-label", label("dash.cat", c)), el("span", "chip-value", num(h, 1)));
        return chip;
      }),
    );
  }
  els.headlineModel.textContent = r.model
    ? t("dash.modelLine", { version: r.model.version, fingerprint: r.model.modelVersion })
    : "";
}

function renderUnits(/** @type {any} */ r) {
  const p = panel("p-units");
  const days = computedDays(r);
  const units = r.byUnit ?? [];
  if (!days || !units.length) return p.empty();
  const weeks = days / 7;
  const rows = units.map((/** @type {any} */ u) => ({ ...u, perWeek: u.hours / weeks }));
  const chart = hbars({
    width: chartWidth(),
    label: t("dash.timeSaved"),
    rows: rows.map((/** @type {any} */ u) => ({
      label: unitName(u.unit),
      value: u.perWeek,
      display: t("dash.hoursPerWeek", { n: num(u.perWeek, 1) }),
    })),
  });
  const tbl = table(
    [
      { label: t("dash.col.unitId"), value: (u) => unitName(u.unit) },
      { label: t("dash.col.perWeek"), value: (u) => num(u.perWeek, 1), num: true },
      { label: t("dash.col.hours"), value: (u) => num(u.hours, 1), num: true },
      ...CATEGORIES.map((c) => ({
        label: label("dash.cat", c),
        value: (/** @type {any} */ u) => num(u.categories?.[c]?.hours, 1),
        num: true,
      })),
    ],
    rows,
  );
  p.show(chart, folded(tbl));
}

function renderTrend(/** @type {any} */ r) {
  const p = panel("p-trend");
  const points = r.trend ?? [];
  if (!points.some((/** @type {any} */ x) => x.computed)) return p.empty();
  const chart = vbars({
    width: chartWidth(),
    label: t("dash.trend"),
    line: true,
    points: points.map((/** @type {any} */ x) => {
      const partial = periodEnd(x.start, r.interval) > Date.now();
      return {
        label: shortDate(x.period),
        value: x.computed ? x.hours : null,
        display: x.computed
          ? `${t("dash.hours", { n: num(x.hours, 1) })}${partial ? ` (${t("dash.partial")})` : ""}`
          : "–",
        className: partial ? "bar-partial" : "",
      };
    }),
  });
  const tbl = table(
    [
      { label: t("dash.col.period"), value: (x) => x.period },
      {
        label: t("dash.col.hours"),
        value: (x) =>
          x.computed
            ? `${num(x.hours, 1)}${periodEnd(x.start, r.interval) > Date.now() ? ` (${t("dash.partial")})` : ""}`
            : "–",
        num: true,
      },
      {
        label: t("dash.col.change"),
        value: (x) => (x.change === null ? "–" : num(x.change / 60, 1)),
        num: true,
      },
    ],
    points,
  );
  p.show(el("p", "panel-note", t(`dash.trendNote.${r.interval ?? "day"}`)), chart, folded(tbl));
}

/** When a trend period ends (ms): the current day or week is still running and shown lighter. */
function periodEnd(/** @type {string} */ start, /** @type {string} */ interval) {
  const t0 = Date.parse(start);
  if (interval === "week") return t0 + 7 * 86_400_000;
  if (interval === "month") {
    const d = new Date(t0);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
  }
  return t0 + 86_400_000;
}

function renderCategories(/** @type {any} */ r) {
  const p = panel("p-categories");
  const days = computedDays(r);
  if (!days) return p.empty();
  const cats = CATEGORIES.map((c) => ({ c, ...(r.totals.categories?.[c] ?? { hours: 0, count: 0 }) }));
  const chart = hbars({
    width: chartWidth(),
    label: t("dash.categories"),
    rows: [
      ...cats.map((x) => ({
        label: label("dash.cat", x.c),
        value: x.hours,
        display: t("dash.hours", { n: num(x.hours, 1) }),
      })),
      {
        label: t("dash.cat.net"),
        value: r.totals.hours,
        display: t("dash.hours", { n: num(r.totals.hours, 1) }),
        className: "bar-total",
      },
    ],
  });
  const tbl = table(
    [
      { label: t("dash.col.category"), value: (x) => label("dash.cat", x.c) },
      { label: t("dash.col.hours"), value: (x) => num(x.hours, 1), num: true },
      { label: t("dash.col.count"), value: (x) => num(x.count, 0), num: true },
    ],
    cats,
  );
  p.show(el("p", "panel-note", t("dash.categoriesNote", { days })), chart, folded(tbl));
}

function renderResponse(/** @type {any} */ r) {
  const p = panel("p-response");
  const groups = r.byPriority ?? [];
  if (!groups.length || !r.overall?.alerts) return p.empty();
  /** @type {{ label: string; p50: number | null; p90: number | null; display: string }[]} */
  const rows = [];
  /** @type {any[]} */
  const tableRows = [];
  for (const g of groups) {
    for (const m of ["toAccept", "toAttend", "toResolve"]) {
      const s = g[m];
      if (!s?.n) continue;
      rows.push({
        label: `${label("prioName", g.priority)} · ${t(`dash.rt.${m}`)}`,
        p50: s.p50Sec,
        p90: s.p90Sec,
        display: `${duration(s.p50Sec)} / ${duration(s.p90Sec)}`,
      });
      tableRows.push({ priority: g.priority, metric: m, ...s });
    }
  }
  if (!rows.length) return p.empty();
  const chart = ranges({
    width: chartWidth(),
    label: t("dash.responseTimes"),
    rows,
  });
  const tbl = table(
    [
      { label: t("dash.col.priority"), value: (x) => label("prioName", x.priority) },
      { label: t("dash.col.metric"), value: (x) => t(`dash.rt.${x.metric}`) },
      { label: "n", value: (x) => num(x.n, 0), num: true },
      { label: "p50", value: (x) => duration(x.p50Sec), num: true },
      { label: "p90", value: (x) => duration(x.p90Sec), num: true },
    ],
    tableRows,
  );
  p.show(el("p", "panel-note", t("dash.rtLegend", { n: r.overall.alerts })), chart, folded(tbl));
}

function renderVolume(/** @type {any} */ r) {
  const p = panel("p-volume");
  if (!r.total) return p.empty();
  const chart = vbars({
    width: chartWidth(),
    label: t("dash.volume"),
    tickEvery: 3,
    height: 220,
    points: (r.byHour ?? []).map((/** @type {any} */ h) => ({
      label: String(h.hour).padStart(2, "0"),
      value: h.count,
      display: num(h.count, 0),
    })),
  });
  const types = table(
    [
      { label: t("dash.col.type"), value: (x) => label("type", x.type) },
      { label: t("dash.col.count"), value: (x) => num(x.count, 0), num: true },
    ],
    r.byType ?? [],
  );
  p.show(el("p", "panel-note", t("dash.volumeTotal", { n: num(r.total, 0) })), chart, folded(types));
}

function renderFalseAlarms(/** @type {any} */ r) {
  const p = panel("p-false");
  const rooms = (r.byRoom ?? []).filter((/** @type {any} */ x) => x.alerts > 0);
  if (!rooms.length) return p.empty();
  const top = rooms.slice(0, 12);
  const chart = hbars({
    width: chartWidth(),
    label: t("dash.falseAlarms"),
    rows: top.map((/** @type {any} */ x) => ({
      label: `${x.room ?? "–"} (${unitName(x.unit)})`,
      value: x.rate === null ? null : x.rate * 100,
      display:
        x.rate === null
          ? t("dash.noneResolved")
          : `${pct(x.rate, 0)} (${num(x.falseAlarms, 0)}/${num(x.resolved, 0)})`,
    })),
  });
  const devices = table(
    [
      { label: t("dash.col.device"), value: (x) => x.device },
      { label: t("dash.col.room"), value: (x) => x.room ?? "–" },
      { label: t("dash.col.alerts"), value: (x) => num(x.alerts, 0), num: true },
      { label: t("dash.col.resolved"), value: (x) => num(x.resolved, 0), num: true },
      { label: t("dash.col.falseAlarms"), value: (x) => num(x.falseAlarms, 0), num: true },
      { label: t("dash.col.rate"), value: (x) => pct(x.rate, 0), num: true },
    ],
    r.byDevice ?? [],
  );
  const total = r.total ?? {};
  p.show(
    el(
      "p",
      "panel-note",
      t("dash.falseTotal", {
        rate: pct(total.rate, 1),
        n: num(total.falseAlarms, 0),
        of: num(total.resolved, 0),
      }),
    ),
    chart,
    folded(devices),
  );
}

/** How alerts of each type ended; a dash where the type does not allow the outcome. */
function renderOutcomes(/** @type {any} */ r) {
  const p = panel("p-outcomes");
  const rows = r.byType ?? [];
  if (!rows.length) return p.empty();
  /** @type {string[]} */
  const outcomes = r.outcomes ?? [];
  p.show(
    table(
      [
        { label: t("dash.outcomes.type"), value: (x) => label("type", x.type) },
        { label: t("dash.outcomes.alerts"), value: (x) => num(x.alerts, 0), num: true },
        { label: t("dash.outcomes.open"), value: (x) => num(x.open, 0), num: true },
        { label: t("dash.outcomes.cancelled"), value: (x) => num(x.cancelled, 0), num: true },
        ...outcomes.map((o) => ({
          label: t(`outcome.${o}`),
          value: (/** @type {any} */ x) =>
            !x.allowed.includes(o) && !x.outcomes[o] ? "–" : num(x.outcomes[o] ?? 0, 0),
          num: true,
        })),
      ],
      rows,
    ),
  );
}

function renderCoverage(/** @type {any} */ r) {
  const p = panel("p-coverage");
  const units = r.byUnit ?? [];
  const devices = r.byDevice ?? [];
  if (!units.length && !devices.length) return p.empty();
  const unitTable = table(
    [
      { label: t("dash.col.unitId"), value: (u) => unitName(u.unit) },
      { label: t("dash.col.devices"), value: (u) => num(u.devices, 0), num: true },
      { label: t("dash.col.fallSensors"), value: (u) => num(u.fallSensors, 0), num: true },
      { label: t("dash.col.uptime"), value: (u) => uptimeText(u), num: true },
      {
        label: t("dash.col.fallSensorUptime"),
        value: (u) =>
          u.fallSensorOnlineShare === null && u.fallSensors > 0
            ? t("dash.notObserved")
            : pct(u.fallSensorOnlineShare, 1),
        num: true,
      },
      {
        label: t("dash.col.residentCoverage"),
        value: (u) =>
          `${pct(u.residentCoverage, 0)} (${num(u.residentsWithFallSensor, 0)}/${num(u.residents, 0)})`,
        num: true,
      },
      {
        label: t("dash.col.roomCoverage"),
        value: (u) => (u.rooms === null ? "–" : `${num(u.roomsWithFallSensor, 0)}/${num(u.rooms, 0)}`),
        num: true,
      },
    ],
    units,
  );
  // Worst first: the devices that need attention.
  const sorted = [...devices].sort((a, b) => (a.onlineShare ?? 2) - (b.onlineShare ?? 2));
  const shown = sorted.slice(0, 20);
  const chart = hbars({
    width: chartWidth(),
    label: t("dash.coverage"),
    rows: shown.map((d) => ({
      label: d.device,
      value: d.onlineShare === null ? null : d.onlineShare * 100,
      display: uptimeText(d),
      className: d.onlineShare !== null && d.onlineShare < 0.95 ? "bar-warn" : "",
    })),
  });
  const deviceTable = table(
    [
      { label: t("dash.col.device"), value: (d) => d.device },
      { label: t("dash.col.kind"), value: (d) => d.kind ?? d.profile },
      { label: t("dash.col.room"), value: (d) => d.room ?? "–" },
      { label: t("dash.col.uptime"), value: (d) => uptimeText(d), num: true },
      { label: t("dash.col.outages"), value: (d) => num(d.outages, 0), num: true },
      {
        label: t("dash.col.longestOutage"),
        value: (d) => duration((d.longestOutageMinutes ?? 0) * 60),
        num: true,
      },
    ],
    sorted,
  );
  p.show(unitTable, el("h3", "panel-sub", t("dash.uptimeByDevice")), chart, folded(deviceTable));
}

function renderModel(/** @type {any} */ r) {
  const p = panel("p-model");
  const params = Object.entries(r.parameters ?? r.model?.parameters ?? {});
  if (!params.length) return p.empty();
  const version = el("p", "model-version");
  version.append(
    el("strong", "", t("dash.model", { version: r.version ?? r.model?.version ?? "?" })),
    el("span", "model-fingerprint", ` · ${r.model?.modelVersion ?? ""}`),
  );
  // Unit and source in the page's language: the model file gives each in English and Danish.
  const da = lang() === "da";
  const rows = params.map(([key, info]) => {
    const p = /** @type {any} */ (info);
    return { key, ...p, ...(da && p.da ? { unit: p.da.unit, source: p.da.source } : {}) };
  });
  const tbl = table(
    [
      {
        label: t("dash.col.parameter"),
        value: (x) => {
          const cell = el("div", "param");
          cell.append(el("span", "param-name", label("param", x.key)), el("code", "param-key", x.key));
          return cell;
        },
      },
      {
        label: t("dash.col.value"),
        value: (x) => {
          const cell = el("div", "param-value");
          cell.append(el("span", "", typeof x.value === "number" ? num(x.value, 3) : String(x.value)));
          if (x.range)
            cell.append(el("span", "param-range", `(${num(x.range[0], 2)}–${num(x.range[1], 2)})`));
          if (x.placeholder) cell.append(el("span", "badge badge-placeholder", t("dash.placeholder")));
          if (x.siteOverride) cell.append(el("span", "badge", t("dash.siteOverride")));
          if (x.usedFor === "plausibility")
            cell.append(el("span", "badge badge-soft", t("dash.plausibility")));
          if (x.derived) cell.append(el("span", "badge badge-soft", t("dash.derived")));
          return cell;
        },
        num: false,
      },
      { label: t("dash.col.unit"), value: (x) => x.unit ?? "" },
      { label: t("dash.col.source"), value: (x) => x.source ?? "" },
    ],
    rows,
  );
  tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
    if (rows[i]?.placeholder) tr.classList.add("row-placeholder");
  });
  const refs = (r.model?.references ?? []).map((/** @type {any} */ x) =>
    da && x.da ? { ...x, ...x.da } : x,
  );
  const nodes = [version, tbl];
  if (refs.length) {
    nodes.push(
      el("h3", "panel-sub", t("dash.references")),
      table(
        [
          { label: t("dash.col.name"), value: (x) => x.name },
          { label: t("dash.col.value"), value: (x) => `${x.value}${x.detail ? ` (${x.detail})` : ""}` },
          { label: t("dash.col.source"), value: (x) => x.source },
        ],
        refs,
      ),
    );
  }
  p.show(...nodes);
}

init();
