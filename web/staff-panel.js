// @ts-check
/**
 * The dashboard's "Staff and phones" panel: a manager (or admin) creates a one-time enrolment code
 * for a person, shown as a QR code to scan with the phone's camera and as a short code to read
 * aloud; below, each person's enrolled devices with their last use and a button to revoke one
 * (its open console is signed out within seconds).
 *
 * The QR code is an SVG made by the gateway, shown through an <img> from a data: URL: markup from
 * the network is never put into the page's DOM, and the page's CSP allows data: images.
 */
import { $ } from "./dom.js";
import { lang, t } from "./i18n.js";

/** Roles a manager may give; an admin may also make admins (the gateway checks this too). */
const ROLES = ["staff", "nurse", "manager"];

/**
 * @typedef {{ id: string; name: string; role: string; sites: string[]; units: string[] | null }} Staff
 * @typedef {{ tokenId: string; deviceLabel: string | null; createdAt: string; lastUsedAt: string | null; revoked: boolean }} Device
 * @typedef {{ person: string; name: string; role: string; sites: string[]; units: string[] | null; devices: Device[] }} Person
 * @typedef {{
 *   token: () => string | null;
 *   staff: () => Staff | null;
 *   site: () => string;
 *   units: () => string[];
 *   unitName: (unit: string) => string;
 *   fetch: (path: string, init?: RequestInit) => Promise<Response>;
 *   toast: (text: string, error?: boolean) => void;
 * }} StaffPanelContext
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

/** @param {StaffPanelContext} ctx */
export function staffPanel(ctx) {
  const els = {
    section: $("p-staff"),
    form: /** @type {HTMLFormElement} */ ($("enrol-form")),
    name: /** @type {HTMLInputElement} */ ($("enrol-name")),
    role: /** @type {HTMLSelectElement} */ ($("enrol-role")),
    unit: /** @type {HTMLSelectElement} */ ($("enrol-unit")),
    create: /** @type {HTMLButtonElement} */ ($("enrol-create")),
    result: $("enrol-result"),
    qr: /** @type {HTMLImageElement} */ ($("enrol-qr")),
    forWhom: $("enrol-for"),
    code: $("enrol-code"),
    expires: $("enrol-expires"),
    // Text, not a link: opening it here would sign this (the manager's) browser in as that person.
    url: $("enrol-url"),
  };
  const body = /** @type {HTMLElement} */ (els.section.querySelector(".panel-body"));
  /** @type {{ name: string; person?: string } | null} */
  let pending = null;

  const fmtTime = (/** @type {string} */ iso) =>
    new Intl.DateTimeFormat(lang() === "da" ? "da-DK" : "en-GB", {
      dateStyle: "short",
      timeStyle: "short",
    }).format(new Date(iso));

  function fillOptions() {
    const staff = ctx.staff();
    const roles = staff?.role === "admin" ? [...ROLES, "admin"] : ROLES;
    const keepRole = els.role.value || "staff";
    els.role.replaceChildren(
      ...roles.map((r) => {
        const o = /** @type {HTMLOptionElement} */ (el("option", "", t(`dash.role.${r}`)));
        o.value = r;
        return o;
      }),
    );
    els.role.value = roles.includes(keepRole) ? keepRole : "staff";
    // A manager of some units enrols people for one of them; a whole-site manager may also enrol
    // for the whole site.
    const keepUnit = els.unit.value;
    const options = ctx.units().map((u) => {
      const o = /** @type {HTMLOptionElement} */ (el("option", "", ctx.unitName(u)));
      o.value = u;
      return o;
    });
    if (staff && staff.units === null) {
      const all = /** @type {HTMLOptionElement} */ (el("option", "", t("dash.allUnits")));
      all.value = "";
      options.unshift(all);
    }
    els.unit.replaceChildren(...options);
    if ([...els.unit.options].some((o) => o.value === keepUnit)) els.unit.value = keepUnit;
  }

  /** @param {{ name: string; role: string; units: string[] | null; person?: string }} who */
  async function create(who) {
    els.create.disabled = true;
    try {
      const res = await ctx.fetch("/api/v1/enrolments", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          name: who.name,
          role: who.role,
          sites: [ctx.site()],
          ...(who.units ? { units: who.units } : {}),
          ...(who.person ? { person: who.person } : {}),
        }),
      });
      const r = await res.json();
      pending = { name: who.name };
      els.qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(r.qrSvg)}`;
      els.qr.alt = t("dash.enrol.codeFor", { name: who.name });
      els.forWhom.textContent = t("dash.enrol.codeFor", { name: who.name });
      els.code.textContent = r.enrolment.code;
      els.expires.textContent = t("dash.enrol.expires", { time: fmtTime(r.enrolment.expiresAt) });
      els.url.textContent = r.url;
      els.result.hidden = false;
      els.name.value = "";
    } catch (err) {
      ctx.toast(t("dash.error", { message: /** @type {Error} */ (err).message }), true);
    } finally {
      els.create.disabled = false;
    }
  }

  async function revoke(/** @type {string} */ tokenId) {
    try {
      await ctx.fetch(`/api/v1/staff-devices/${encodeURIComponent(tokenId)}`, { method: "DELETE" });
      await load();
    } catch (err) {
      ctx.toast(t("dash.error", { message: /** @type {Error} */ (err).message }), true);
    }
  }

  async function load() {
    fillOptions();
    try {
      const res = await ctx.fetch("/api/v1/staff-devices");
      const { people } = /** @type {{ people: Person[] }} */ (await res.json());
      const site = ctx.site();
      render(people.filter((p) => p.sites.includes(site)));
    } catch (err) {
      body.replaceChildren(
        el("p", "panel-state panel-error", t("dash.error", { message: /** @type {Error} */ (err).message })),
      );
    }
  }

  function render(/** @type {Person[]} */ people) {
    if (!people.length) {
      body.replaceChildren(el("p", "panel-state", t("dash.enrol.none")));
      return;
    }
    const list = el("ul", "people");
    for (const p of people) {
      const li = el("li", "person");
      li.dataset.person = p.person;
      const head = el("div", "person-head");
      const units = p.units ? p.units.map((u) => ctx.unitName(u)).join(", ") : t("dash.allUnits");
      head.append(
        el("strong", "person-name", p.name),
        el("span", "person-meta", `${t(`dash.role.${p.role}`)} · ${units}`),
      );
      const add = /** @type {HTMLButtonElement} */ (
        el("button", "btn btn-ghost-dark btn-small", t("dash.enrol.addDevice"))
      );
      add.type = "button";
      add.dataset.action = "add-device";
      add.addEventListener(
        "click",
        () => void create({ name: p.name, role: p.role, units: p.units, person: p.person }),
      );
      head.append(add);
      const devices = el("ul", "devices");
      for (const d of p.devices) {
        const row = el("li", `device${d.revoked ? " revoked" : ""}`);
        row.dataset.token = d.tokenId;
        row.append(
          el("span", "device-label", d.deviceLabel ?? t("dash.enrol.unnamedDevice")),
          el(
            "span",
            "device-used",
            `${t("dash.enrol.lastUsed")}: ${d.lastUsedAt ? fmtTime(d.lastUsedAt) : t("dash.enrol.never")}`,
          ),
        );
        if (d.revoked) row.append(el("span", "device-revoked", t("dash.enrol.revoked")));
        else {
          const b = /** @type {HTMLButtonElement} */ (
            el("button", "btn btn-ghost-dark btn-small", t("dash.enrol.revoke"))
          );
          b.type = "button";
          b.dataset.action = "revoke";
          b.addEventListener("click", () => void revoke(d.tokenId));
          row.append(b);
        }
        devices.append(row);
      }
      li.append(head, devices);
      list.append(li);
    }
    body.replaceChildren(list);
  }

  els.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = els.name.value.trim();
    if (!name) return;
    void create({ name, role: els.role.value, units: els.unit.value ? [els.unit.value] : null });
  });

  return {
    load,
    /** The language changed: options and list again; an open code keeps its text until the next one. */
    relabel() {
      if (pending) els.forWhom.textContent = t("dash.enrol.codeFor", { name: pending.name });
      void load();
    },
    reset() {
      pending = null;
      els.result.hidden = true;
      els.qr.removeAttribute("src");
      body.replaceChildren();
    },
  };
}
