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

/** @typedef {{ id: string; name: string; units: { id: string; name: string }[] }} PlaceSite */

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
    for (const u of site.units) names.set(`${site.id}/${u.id}`, u.name);
  }
  return names;
}
