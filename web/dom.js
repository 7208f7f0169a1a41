// Small DOM helpers shared by the console and the dashboard.

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
