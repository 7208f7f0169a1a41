import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveStaticPath, staticFiles, WEB_ROOT } from "../../src/http/static.js";
import { startGateway, type TestGateway } from "../helpers/gateway.js";

/** A raw GET that keeps the path exactly as written (fetch would normalise `..` away). */
function rawGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("static pages", () => {
  let t: TestGateway;
  let port: number;

  beforeAll(async () => {
    t = await startGateway();
    t.gateway.http.fallback(staticFiles(WEB_ROOT));
    port = t.gateway.http.port;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("serves the console at / and the dashboard at /dashboard as never-cached HTML with a strict CSP", async () => {
    for (const [path, marker] of [
      ["/", "/console.js"],
      ["/dashboard", "/dashboard.js"],
    ] as const) {
      const res = await rawGet(port, path, { host: `127.0.0.1:${port}` });
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.headers["cache-control"]).toBe("no-store");
      expect(res.body).toContain(marker);
      const csp = String(res.headers["content-security-policy"]);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${port} wss://127.0.0.1:${port}`);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
    }
  });

  it("serves scripts and styles with their types, revalidated by ETag", async () => {
    const js = await rawGet(port, "/console.js");
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("no-cache");
    const etag = String(js.headers.etag);
    expect(etag).toMatch(/^".+"$/);
    const again = await rawGet(port, "/console.js", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.body).toBe("");
    const css = await rawGet(port, "/console.css");
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    const svg = await rawGet(port, "/favicon.svg");
    expect(svg.headers["content-type"]).toBe("image/svg+xml");
    const head = await rawGet(port, "/console.js", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("refuses traversal, dotfiles and unlisted file types with the catalogue's 404", async () => {
    for (const path of [
      "/../package.json",
      "/%2e%2e/package.json",
      "/..%2fsrc%2fgateway.ts",
      "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "/..\\package.json",
      "/tsconfig.json",
      "/.hidden.js",
      "/console.js%00.html",
      "/nope.js",
      "/web/console.js",
    ]) {
      const res = await rawGet(port, path);
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.body), path).toEqual({
        error: { code: "not_found", message: "No such resource" },
      });
    }
    expect(resolveStaticPath(WEB_ROOT, "/../package.json")).toBeNull();
    expect(resolveStaticPath(WEB_ROOT, "/%2e%2e/%2e%2e/etc/passwd.txt")).toBeNull();
  });

  it("leaves API paths and non-GET methods to the router", async () => {
    const api = await rawGet(port, "/api/v1/nothing-here.js");
    expect(api.status).toBe(404);
    const post = await rawGet(port, "/console.js", {}, "POST");
    expect(post.status).toBe(404);
    // A real route still answers as before.
    const me = await rawGet(port, "/api/v1/me");
    expect(me.status).toBe(401);
  });

  it("does not echo a hostile Host header into the CSP", async () => {
    const res = await rawGet(port, "/", { host: "evil.example; script-src *" });
    const csp = String(res.headers["content-security-policy"]);
    expect(csp).toContain("connect-src 'self';");
    expect(csp).not.toContain("evil");
  });
});
