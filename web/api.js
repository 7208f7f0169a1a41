// @ts-check
/**
 * The reports API as the dashboard and the printed report call it: the manager's token travels in
 * the Authorization header (never in the URL), and an error answer becomes an ApiError with the
 * catalogue's code and message (src/errors.ts).
 */

/** Where the dashboard keeps the manager's token; the printed report reads the same one. */
export const TOKEN_KEY = "ata.dashboard.token";

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 */
export function apiUrl(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
  const qs = q.toString();
  return `${path}${qs ? `?${qs}` : ""}`;
}

/**
 * @param {string | null} token
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 * @param {RequestInit & { headers?: Record<string, string> }} [init]
 * @returns {Promise<Response>} an ok response; anything else throws ApiError
 */
export async function apiRequest(token, path, params, init = {}) {
  const res = await fetch(apiUrl(path, params), {
    ...init,
    headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}` },
  });
  if (res.ok) return res;
  let code = "internal";
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? message;
  } catch {
    // Not JSON: keep the status line.
  }
  throw new ApiError(res.status, code, message);
}

/** The stored token, or null (no storage, or nobody signed in on this browser). */
export function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}
