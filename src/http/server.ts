/**
 * The HTTP listener: API routes, static pages, and WebSocket upgrades handed to whoever registered
 * the path (the staff channel).
 */
import { readFileSync } from "node:fs";
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttps } from "node:https";
import type { Duplex } from "node:stream";
import type { SecureVersion } from "node:tls";
import { errorBody } from "../errors.js";
import type { Logger } from "../log.js";
import { type Router, send } from "./router.js";

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
export type FallbackHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface HttpOptions {
  host: string;
  port: number;
  /** Node's default cipher list is kept; minVersion is set even though node's default is the same. */
  tls?: { certFile: string; keyFile: string; minVersion?: SecureVersion } | undefined;
}

export class HttpServer {
  private server: Server | null = null;
  private readonly upgrades = new Map<string, UpgradeHandler>();
  private readonly fallbacks: FallbackHandler[] = [];
  port = 0;

  constructor(
    private readonly router: Router,
    private readonly log: Logger,
    private readonly options: HttpOptions,
  ) {}

  onUpgrade(path: string, handler: UpgradeHandler): void {
    this.upgrades.set(path, handler);
  }

  /** Tried in order when no API route matches (static files). */
  fallback(handler: FallbackHandler): void {
    this.fallbacks.push(handler);
  }

  async start(): Promise<void> {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.dispatch(req, res).catch((err) => {
        this.log.error({ err }, "unhandled request error");
        if (!res.headersSent) send(res, 500, errorBody("internal"));
      });
    };
    const tls = this.options.tls;
    this.server = tls
      ? createHttps(
          {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            minVersion: tls.minVersion ?? "TLSv1.2",
          },
          onRequest,
        )
      : createHttp(onRequest);
    this.server.on("upgrade", (req, socket, head) => {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      const handler = this.upgrades.get(path);
      if (!handler) {
        socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
        return;
      }
      handler(req, socket, head);
    });
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.options.port, this.options.host, () => resolve());
    });
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : this.options.port;
    this.log.info({ host: this.options.host, port: this.port, tls: Boolean(tls) }, "HTTP listener ready");
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await this.router.handle(req, res)) return;
    for (const f of this.fallbacks) if (await f(req, res)) return;
    send(res, 404, errorBody("not_found"));
  }
}
