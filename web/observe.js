// @ts-check
/**
 * The dashboard's observe-mode panel, for the operator (admin token) only: whether observe mode is
 * on, enrolment secrets for a device nobody has a profile for yet, what each observed device sent
 * (channels, fields, sizes) and the profile drafted from it, to copy into devices/ (docs/observe.md).
 *
 * Everything from the network goes into the page as text (textContent), never as markup: the
 * payloads are a stranger's bytes.
 */
import { $ } from "./dom.js";
import { lang } from "./i18n.js";

/** This panel's words; the panel is for operators and keeps them here rather than in i18n.js. */
const TEXT = {
  da: {
    title: "Observationstilstand",
    on: "Observationstilstand er SLÅET TIL for {where}: ukendte enheder med en tilmeldingsnøgle kan forbinde. Det de sender gemmes og giver aldrig alarmer. Slå den fra når tilmeldingen er færdig.",
    off: "Observationstilstand er slået fra (observe.enabled: false).",
    everySite: "alle steder",
    usage: "{stored} af {total} prøver gemt; {dropped} slettet af kvoterne.",
    none: "Ingen observerede enheder endnu.",
    device: "Enhed",
    place: "Sted/afsnit",
    via: "Via",
    received: "Modtaget",
    stored: "Gemt",
    dropped: "Slettet",
    last: "Sidst",
    show: "Vis",
    channel: "Kanal {channel}: {format}, {samples} prøver, {sizes} B",
    draft: "Udkast til profil (devices/*.ts)",
    copy: "Kopiér",
    copied: "Kopieret",
    enrol: "Ny tilmeldingsnøgle",
    unit: "Afsnit",
    id: "Enheds-id (valgfrit)",
    create: "Opret nøgle",
    secret: "Nøgle til {place}: {secret}",
    secretNote:
      "Vises kun én gang. Giv den til leverandøren; den første enhed der bruger den, bindes til den.",
  },
  en: {
    title: "Observe mode",
    on: "Observe mode is ON for {where}: unknown devices with an enrolment secret may connect. What they send is kept and never raises an alert. Turn it off when onboarding is done.",
    off: "Observe mode is off (observe.enabled: false).",
    everySite: "every site",
    usage: "{stored} of {total} samples kept; {dropped} deleted by the quotas.",
    none: "No observed devices yet.",
    device: "Device",
    place: "Site/unit",
    via: "Via",
    received: "Received",
    stored: "Kept",
    dropped: "Dropped",
    last: "Last",
    show: "Show",
    channel: "Channel {channel}: {format}, {samples} samples, {sizes} B",
    draft: "Drafted profile (devices/*.ts)",
    copy: "Copy",
    copied: "Copied",
    enrol: "New enrolment secret",
    unit: "Unit",
    id: "Device id (optional)",
    create: "Create secret",
    secret: "Secret for {place}: {secret}",
    secretNote: "Shown once. Give it to the vendor; the first device that uses it is bound to it.",
  },
};

/**
 * @param {keyof typeof TEXT.en} key
 * @param {Record<string, string | number>} [vars]
 */
function tr(key, vars = {}) {
  const table = lang() === "da" ? TEXT.da : TEXT.en;
  return table[key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

/**
 * @param {string} tag
 * @param {string} [cls]
 * @param {string | number | null} [text]
 */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/**
 * @typedef {{ deviceId: string; siteId: string; unitId: string; via: string; received: number; stored: number; lastAt: string; dropped: { quota: number; rate: number } }} Observed
 * @typedef {{ path: string; type: string; optional: boolean; seen: string }} Field
 * @typedef {{ channel: string; format: string; samples: number; sizes: { min: number; max: number }; fields: Field[] }} Channel
 * @typedef {{
 *   staff: () => { role: string; sites: string[] } | null;
 *   site: () => string;
 *   units: () => string[];
 *   unitName: (unit: string) => string;
 *   fetch: (path: string, init?: RequestInit) => Promise<Response>;
 *   toast: (text: string, error?: boolean) => void;
 * }} ObservePanelContext
 */

/** @param {ObservePanelContext} ctx */
export function observePanel(ctx) {
  const section = $("p-observe");
  const status = $("observe-status");
  const body = $("observe-body");
  const detail = $("observe-detail");
  const form = /** @type {HTMLFormElement} */ ($("observe-enrol"));
  const result = $("observe-secret");
  $("observe-title").textContent = tr("title");

  const fmtTime = (/** @type {string} */ iso) =>
    new Intl.DateTimeFormat(lang() === "da" ? "da-DK" : "en-GB", {
      dateStyle: "short",
      timeStyle: "medium",
    }).format(new Date(iso));

  function buildForm() {
    const unit = /** @type {HTMLSelectElement} */ (el("select"));
    unit.name = "unit";
    for (const u of ctx.units()) {
      const o = /** @type {HTMLOptionElement} */ (el("option", "", ctx.unitName(u)));
      o.value = u;
      unit.append(o);
    }
    const id = /** @type {HTMLInputElement} */ (el("input"));
    id.name = "id";
    id.maxLength = 64;
    id.autocomplete = "off";
    const unitLabel = el("label");
    unitLabel.append(el("span", "", tr("unit")), unit);
    const idLabel = el("label");
    idLabel.append(el("span", "", tr("id")), id);
    const button = /** @type {HTMLButtonElement} */ (el("button", "btn btn-primary", tr("create")));
    button.type = "submit";
    form.replaceChildren(el("h3", "", tr("enrol")), unitLabel, idLabel, button);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const unit = String(data.get("unit") ?? "");
    const id = String(data.get("id") ?? "").trim();
    try {
      const res = await ctx.fetch("/api/v1/observe/enrolments", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ site: ctx.site(), unit, ...(id ? { id } : {}) }),
      });
      const r = await res.json();
      result.replaceChildren(
        el("p", "observe-secret-value", tr("secret", { place: `${ctx.site()}/${unit}`, secret: r.secret })),
        el("p", "panel-note", `${tr("secretNote")} (${fmtTime(r.enrolment.expiresAt)})`),
      );
      result.hidden = false;
    } catch (err) {
      ctx.toast(/** @type {Error} */ (err).message, true);
    }
  });

  /** @param {string} id */
  async function show(id) {
    try {
      const path = `/api/v1/observe/${encodeURIComponent(id)}`;
      const [d, draft] = await Promise.all([
        ctx.fetch(path).then((r) => r.json()),
        ctx.fetch(`${path}/draft`).then((r) => r.json()),
      ]);
      const parts = [el("h3", "", id)];
      for (const c of /** @type {Channel[]} */ (d.channels)) {
        const sizes = c.sizes.min === c.sizes.max ? String(c.sizes.min) : `${c.sizes.min}..${c.sizes.max}`;
        parts.push(
          el("h4", "", tr("channel", { channel: c.channel, format: c.format, samples: c.samples, sizes })),
        );
        if (c.fields.length) {
          const table = el("table", "data observe-fields");
          for (const f of c.fields) {
            const tr_ = el("tr");
            tr_.append(
              el("td", "", f.path),
              el("td", "", `${f.type}${f.optional ? "?" : ""}`),
              el("td", "", f.seen),
            );
            table.append(tr_);
          }
          parts.push(table);
        }
      }
      const copy = /** @type {HTMLButtonElement} */ (el("button", "btn", tr("copy")));
      copy.type = "button";
      copy.addEventListener("click", () => {
        void navigator.clipboard?.writeText(draft.module).then(() => ctx.toast(tr("copied")));
      });
      const pre = el("pre", "observe-draft", draft.module);
      parts.push(el("h4", "", tr("draft")), copy, pre);
      detail.replaceChildren(...parts);
      detail.hidden = false;
    } catch (err) {
      ctx.toast(/** @type {Error} */ (err).message, true);
    }
  }

  /** @param {{ enabled: boolean; sites: string[] | null; usage: { stored: number; quota: { total: number }; dropped: { device: number; total: number } }; devices: Observed[] }} data */
  function render(data) {
    status.className = data.enabled ? "observe-on" : "panel-note";
    status.textContent = data.enabled
      ? tr("on", { where: data.sites ? data.sites.join(", ") : tr("everySite") })
      : tr("off");
    const u = data.usage;
    const parts = [
      el(
        "p",
        "panel-note",
        tr("usage", { stored: u.stored, total: u.quota.total, dropped: u.dropped.device + u.dropped.total }),
      ),
    ];
    if (!data.devices.length) parts.push(el("p", "panel-note", tr("none")));
    else {
      const table = el("table", "data");
      const head = el("tr");
      for (const k of /** @type {const} */ ([
        "device",
        "place",
        "via",
        "received",
        "stored",
        "dropped",
        "last",
        "show",
      ]))
        head.append(el("th", "", k === "show" ? "" : tr(k)));
      table.append(head);
      for (const d of data.devices) {
        const row = el("tr");
        const button = /** @type {HTMLButtonElement} */ (el("button", "btn btn-ghost", tr("show")));
        button.type = "button";
        button.dataset.device = d.deviceId;
        button.addEventListener("click", () => void show(d.deviceId));
        const cell = el("td");
        cell.append(button);
        row.append(
          el("td", "", d.deviceId),
          el("td", "", `${d.siteId}/${d.unitId}`),
          el("td", "", d.via),
          el("td", "num", d.received),
          el("td", "num", d.stored),
          el("td", "num", d.dropped.quota + d.dropped.rate),
          el("td", "", fmtTime(d.lastAt)),
          cell,
        );
        table.append(row);
      }
      const wrap = el("div", "table-wrap");
      wrap.append(table);
      parts.push(wrap);
    }
    body.replaceChildren(...parts);
  }

  async function load() {
    if (ctx.staff()?.role !== "admin") {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    try {
      const data = await (await ctx.fetch("/api/v1/observe")).json();
      buildForm();
      form.hidden = !data.enabled;
      render(data);
    } catch (err) {
      body.replaceChildren(el("p", "form-error", /** @type {Error} */ (err).message));
    }
  }

  function reset() {
    section.hidden = true;
    body.replaceChildren();
    detail.replaceChildren();
    detail.hidden = true;
    result.replaceChildren();
    result.hidden = true;
  }

  return { load, reset };
}
