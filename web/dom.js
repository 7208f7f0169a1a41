// Small helpers shared by the console and the dashboard.

/**
 * The element with this id; a missing one is a bug in the page, so it throws.
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return /** @type {T} */ (el);
}

/**
 * @typedef {{
 *   id: string;
 *   name: string;
 *   timeZone: string;
 *   nightHours?: { from: string; to: string };
 *   units: { id: string; name: string }[];
 *   otherUnits?: { id: string; name: string }[];
 *   residents?: { ref: string; name: string }[];
 * }} PlaceSite
 */

/**
 * Display names of the sites and units a person may see (`places` from the gateway), keyed by site
 * id and by "site/unit".
 * @param {PlaceSite[] | undefined} places
 * @returns {Map<string, string>}
 */
export function placeNames(places) {
  const names = new Map();
  for (const site of places ?? []) {
    names.set(site.id, site.name);
    // Other units of the site too: an alert escalated to the whole site comes from one of them.
    for (const u of [...site.units, ...(site.otherUnits ?? [])]) names.set(`${site.id}/${u.id}`, u.name);
  }
  return names;
}

/**
 * Residents' display names by reference, where a site shows them (empty otherwise).
 * @param {PlaceSite[] | undefined} places
 * @returns {Map<string, string>}
 */
export function residentNames(places) {
  const names = new Map();
  for (const site of places ?? []) for (const r of site.residents ?? []) names.set(r.ref, r.name);
  return names;
}
