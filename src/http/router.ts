/**
 * A small router over node:http: path parameters, JSON bodies with a size limit, one reply
 * envelope, errors only from the catalogue. Handlers return data or throw ApiError; nothing else
 * reaches the client (no stack traces, no internals).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { ApiError, errorBody } from "../errors.js";
import type { Logger } from "../log.js";
import type { StaffAuth } from "../security/staff-auth.js";
import type { StaffIdentity } from "../staff/protocol.js";
import type { Durability } from "../store/durability.js";
import { ClientAddress } from "./client-address.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  url: URL;
  /** Parse and validate the JSON body with a zod schema (400 invalid_body with every problem). */
  body<T>(schema: z.ZodType<T>): Promise<T>;
  /** The body as an HTML form (application/x-www-form-urlencoded), whatever its content type says. */
  form(): Promise<URLSearchParams>;
  bearer: string | null;
  /** The peer's address (for throttling and the security log). */
  address: string;
  /**
   * Who is asking: a staff token or the operator's admin token, from the Authorization header
   * (401 unauthenticated, 429 rate_limited). Every route's authentication goes through here or
   * admin(); the route then checks what that identity may see.
   */
  staff(): StaffIdentity;
  /** The operator's admin token, or 401/403. */
  admin(): void;
}

/** A reply other than JSON (CSV, HTML, metrics text). */
export class RawReply {
  constructor(
    readonly status: number,
    readonly contentType: string,
    readonly body: string | Buffer,
    readonly headers: Record<string, string> = {},
  ) {}
}

export type Handler = (ctx: RequestContext) => Promise<unknown> | unknown;

interface Route {
  method: Method;
  parts: string[];
  handler: Handler;
}

const MAX_BODY = 256 * 1024;
/** What is read and dropped after a refused body before the connection is cut. */
const DISCARD_LIMIT = 4 * MAX_BODY;

export class Router {
  private readonly routes: Route[] = [];

  constructor(
    private readonly log: Logger,
    /** Answers to requests that may have written wait until the writes are on disk. */
    private readonly durability: Durability | null = null,
    /** Sign-in for routes that need a token; a router without it refuses them. */
    private readonly auth: StaffAuth | null = null,
    /** Where a request came from, behind a trusted load balancer too (http.trustedProxies). */
    private readonly addresses: ClientAddress = new ClientAddress(),
  ) {}

  add(method: Method, path: string, handler: Handler): this {
    this.routes.push({ method, parts: path.split("/").filter(Boolean), handler });
    return this;
  }

  /** Returns false when no route matches the path, so the caller can try static files. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const parts = url.pathname.split("/").filter(Boolean).map(safeDecode);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = match(route.parts, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method && !(req.method === "HEAD" && route.method === "GET")) continue;
      await this.run(route, params, url, req, res);
      return true;
    }
    if (pathMatched) {
      send(res, 405, errorBody("method_not_allowed"));
      return true;
    }
    return false;
  }

  private async run(
    route: Route,
    params: Record<string, string>,
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
  ) {
    const auth = req.headers.authorization;
    // Only from the header: a token in a URL ends up in proxy logs, browser history and Referer.
    const bearer = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : null;
    const address = this.addresses.of(req);
    const signIn = () => {
      if (!this.auth) throw new ApiError("forbidden", "no sign-in on this listener");
      return this.auth;
    };
    const ctx: RequestContext = {
      req,
      res,
      params,
      url,
      query: url.searchParams,
      bearer,
      address,
      staff: () => signIn().signIn(bearer, address, "http").identity,
      admin: () => signIn().admin(bearer, address),
      body: async (schema) => {
        const raw = await readBody(req, res);
        let json: unknown;
        try {
          json = raw.length ? JSON.parse(raw.toString("utf8")) : {};
        } catch {
          throw new ApiError("bad_request", "the body is not valid JSON");
        }
        const parsed = schema.safeParse(json);
        if (!parsed.success)
          throw new ApiError(
            "invalid_body",
            undefined,
            parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
          );
        return parsed.data;
      },
      form: async () => new URLSearchParams((await readBody(req, res)).toString("utf8")),
    };
    // An answer to a request that may have written (an action, or the audit entry of a refused
    // one) waits until those writes are on disk; not for staff sockets' turns (its own lane).
    const durable = async () => {
      if (this.durability && req.method !== "GET" && req.method !== "HEAD")
        await this.durability.durable("http");
    };
    try {
      const result = await route.handler(ctx);
      await durable();
      if (res.headersSent) return;
      if (result instanceof RawReply) {
        res.writeHead(result.status, { "content-type": result.contentType, ...result.headers });
        res.end(req.method === "HEAD" ? undefined : result.body);
        return;
      }
      const status =
        req.method === "POST" && result && typeof result === "object" && "created" in result ? 201 : 200;
      send(res, status, result === undefined ? { ok: true } : result);
    } catch (err) {
      await durable();
      if (err instanceof ApiError) {
        send(res, err.status, errorBody(err.code, err.message, err.details));
        return;
      }
      this.log.error({ err, method: req.method, path: url.pathname }, "request failed");
      if (!res.headersSent) send(res, 500, errorBody("internal"));
      else res.destroy();
    }
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function match(route: string[], parts: string[]): Record<string, string> | null {
  if (route.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < route.length; i++) {
    const r = route[i]!;
    if (r.startsWith(":")) params[r.slice(1)] = parts[i]!;
    else if (r !== parts[i]) return null;
  }
  return params;
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

/**
 * The body, up to MAX_BODY. Past it the request is refused with 413 and the error envelope: the
 * rest is read and dropped (a client still sending would otherwise see a reset, not the answer),
 * up to DISCARD_LIMIT, after which the connection is cut; the answer closes the connection.
 */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (refused) {
        if (size > DISCARD_LIMIT) req.destroy();
        return;
      }
      if (size > MAX_BODY) {
        refused = true;
        chunks.length = 0;
        res.setHeader("connection", "close");
        reject(new ApiError("body_too_large", `the body exceeds ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!refused) resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}
