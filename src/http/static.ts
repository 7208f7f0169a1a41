/**
 * Static pages: the staff console at `/`, the managers' dashboard at `/dashboard`, the printable
 * benefits report at `/report.html` (or `/report`), and their scripts and styles from `web/`.
 * Registered as an HttpServer fallback, so API routes always win.
 *
 * Plain ES modules with no build step: what is on disk is what the browser runs. HTML is never
 * cached (a stale console is a safety problem); scripts and styles are revalidated on every load
 * with an ETag, so a deploy reaches every wall screen at its next reload.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { PACKAGE_ROOT } from "../util/package-root.js";
import type { FallbackHandler } from "./server.js";

/** The package's `web/` directory, from source or compiled (src/util/package-root.ts). */
export const WEB_ROOT = join(PACKAGE_ROOT, "web");

/** Only these are served; anything else under web/ (notes, tsconfig) stays private. */
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webmanifest": "application/manifest+json",
  ".txt": "text/plain; charset=utf-8",
};

/** Clean URLs for the pages. */
const PAGES: Record<string, string> = {
  "/": "index.html",
  "/dashboard": "dashboard.html",
  "/dashboard/": "dashboard.html",
  "/report": "report.html",
};

/** A Host header we are willing to echo into the CSP; anything odd falls back to 'self' alone. */
const SAFE_HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

/**
 * Content-Security-Policy: only our own scripts and styles, no inline code, no framing. WebSocket
 * connections to this host are named explicitly: CSP3 lets 'self' cover ws:/wss: to the same host,
 * but older Safari does not, and a console that silently cannot connect is the worst failure.
 */
export function contentSecurityPolicy(host: string | undefined): string {
  const ws = host && SAFE_HOST.test(host) ? ` ws://${host} wss://${host}` : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    `connect-src 'self'${ws}`,
    "manifest-src 'self'",
    "media-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

export function securityHeaders(req: IncomingMessage): Record<string, string> {
  return {
    "content-security-policy": contentSecurityPolicy(req.headers.host),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
  };
}

/**
 * Map a request path to a file inside `root`, or null. Rejects traversal (`..`, encoded or not),
 * NUL bytes, backslashes, dotfiles and unknown extensions; the resolved path must stay in root.
 */
export function resolveStaticPath(root: string, pathname: string): string | null {
  let rel = PAGES[pathname];
  if (!rel) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return null;
    }
    if (decoded.includes("\0") || decoded.includes("\\")) return null;
    const parts = decoded.split("/").filter(Boolean);
    if (!parts.length || parts.some((p) => p.startsWith(".") || p === "..")) return null;
    rel = parts.join("/");
  }
  if (!TYPES[extname(rel)]) return null;
  const base = resolve(root);
  const full = resolve(base, rel);
  return full.startsWith(base + sep) ? full : null;
}

interface Cached {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
}

/**
 * The fallback handler serving `rootDir` (normally `<repo>/web`). Returns false for anything it
 * does not serve, so the server answers 404 from the error catalogue.
 */
export function staticFiles(rootDir: string = WEB_ROOT): FallbackHandler {
  // Files are small and few; keep them in memory, re-read when their mtime or size changes.
  const cache = new Map<string, Cached>();

  const load = async (file: string): Promise<Cached | null> => {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(file);
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const body = await readFile(file);
    const entry: Cached = {
      mtimeMs: st.mtimeMs,
      size: st.size,
      body,
      etag: `"${createHash("sha1").update(body).digest("base64url").slice(0, 20)}"`,
    };
    cache.set(file, entry);
    return entry;
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    if (pathname.startsWith("/api/")) return false;
    const file = resolveStaticPath(rootDir, pathname);
    if (!file) return false;
    const entry = await load(file);
    if (!entry) return false;
    const type = TYPES[extname(file)]!;
    const html = type.startsWith("text/html");
    const headers: Record<string, string> = {
      "content-type": type,
      "cache-control": html ? "no-store" : "no-cache",
      ...securityHeaders(req),
    };
    if (!html) headers.etag = entry.etag;
    if (!html && req.headers["if-none-match"] === entry.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    headers["content-length"] = String(entry.body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : entry.body);
    return true;
  };
}
