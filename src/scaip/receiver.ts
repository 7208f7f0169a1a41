/**
 * The SCAIP receiver: a MESSAGE-only SIP user agent server (RFC 3261, RFC 3428) on UDP, TCP and TLS that
 * takes `<mrq>` requests from social-alarm units (SS 91100 / CLC/TS 50134-9; sources in mrq.ts and
 * docs/scaip.md) and answers each with a 200 OK carrying an `<mrs>`, after the message is durable.
 *
 * One request, in order: SIP framing and limits (400, 413) -> method (OPTIONS answered, others 405)
 * -> Content-Type (415) -> digest authentication (401 challenge, 403 refused) -> the controller is a
 * registered, enabled device with a SCAIP profile (403) -> the mrq is read (malformed: dead letter,
 * 200 with an error snu) -> its cid is the authenticated controller (403) -> the gateway's ingest, as
 * the profile's `scaip` JSON channel (mrq.ts toScaipJson) -> 200 with the mrs.
 *
 * Retransmissions: a request with the same top Via branch, Call-ID and CSeq gets the same response
 * bytes, also while the first is still being committed (the server transaction, RFC 3261 §17.2.2),
 * for 32 s (64*T1); after that the eventId (ref + Call-ID) dedupes in the event log.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Ingest, IngestResult } from "../ingest/pipeline.js";
import type { Logger } from "../log.js";
import type { DeviceProfile } from "../model/profile.js";
import type { Registry } from "../registry/registry.js";
import type { SecurityLog } from "../security/log.js";
import type { ScaipConfig } from "./config.js";
import { DigestAuth, ha1 } from "./digest.js";
import { MrqError, mrs, parseMrq, SNU, type Snu, toScaipJson } from "./mrq.js";
import {
  bestEffortHeaders,
  header,
  parseDatagram,
  SipError,
  type SipRequest,
  type SipResponse,
  SizeError,
  StreamFramer,
  topBranch,
  writeResponse,
} from "./sip.js";

const SERVER = "ATA-Gateway SCAIP";
const CONTENT_TYPE = "application/scaip+xml";
/** The profiles' channel that SCAIP messages become (devices/blocks.ts ScaipMessage). */
export const SCAIP_CHANNEL = "scaip";
/** Timer J for a non-INVITE server transaction over UDP: 64 * T1 (RFC 3261 §17.2.2). */
const TRANSACTION_MS = 32_000;
const MAX_TRANSACTIONS = 20_000;

export interface ScaipReceiverOptions {
  config: ScaipConfig;
  /** Under tlsOnly the plain UDP and TCP listeners are not opened, whatever their settings say. */
  tlsOnly: boolean;
  /** mqtt.tls: the certificate, key and minimum version SIP over TLS uses. */
  tls: { certFile?: string | undefined; keyFile?: string | undefined; minVersion: "TLSv1.2" | "TLSv1.3" };
  /** The configuration's device seeds: SCAIP controllers among them get digest credentials. */
  seeds: readonly { id: string; profile: string; secret?: string | undefined }[];
  registry: Registry;
  profiles: ReadonlyMap<string, DeviceProfile>;
  ingest: Pick<Ingest, "submit" | "refuse">;
  security: Pick<SecurityLog, "record">;
  log: Logger;
}

type Transport = "udp" | "tcp" | "tls";

/** snu for a refusal from the ingest pipeline. */
function snuFor(result: IngestResult): { snu: Snu; ste?: string } {
  if (result.ok) return { snu: SNU.ok };
  const { code, message } = result.rejection;
  if (code === "payload_too_large") return { snu: SNU.messageTooLong, ste: message };
  if (code === "rate_limited") return { snu: SNU.busy, ste: message };
  if (code === "bad_schema") return { snu: SNU.wrongDataContent, ste: message };
  // unknown_event, unsupported, profile_missing: understood, kept as a dead letter, not treated here.
  return { snu: SNU.notTreated, ste: `${code}: ${message}` };
}

export class ScaipReceiver {
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private tls: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly transactions = new Map<string, { at: number; response: Promise<Buffer> }>();
  private readonly ha1s = new Map<string, string>();
  private readonly digest: DigestAuth;
  readonly counters = { requests: 0, accepted: 0, refused: 0, malformed: 0, retransmissions: 0 };

  constructor(private readonly o: ScaipReceiverOptions) {
    const { config } = o;
    for (const d of o.seeds) {
      const profile = o.profiles.get(d.profile);
      if (d.secret && profile?.topics.includes(SCAIP_CHANNEL))
        this.ha1s.set(d.id, ha1(d.id, config.realm, d.secret));
    }
    for (const c of config.credentials) this.ha1s.set(c.controller, c.ha1);
    this.digest = new DigestAuth({
      realm: config.realm,
      nonceTtlSec: config.nonceTtlSec,
      ha1For: (u) => this.ha1s.get(u),
    });
  }

  private get limits() {
    const c = this.o.config;
    return { maxBodyBytes: c.maxBodyBytes, maxHeaderBytes: c.maxHeaderBytes, maxHeaders: c.maxHeaders };
  }

  async start(): Promise<void> {
    const { config, log } = this.o;
    const listen = (server: Server, at: { host: string; port: number }) =>
      new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(at.port, at.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    if (config.udp.enabled && !this.o.tlsOnly) {
      const udp = createSocket({ type: config.udp.host.includes(":") ? "udp6" : "udp4" });
      udp.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo));
      udp.on("error", (err) => log.error({ err: err.message }, "SCAIP UDP socket error"));
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(config.udp.port, config.udp.host, () => {
          udp.off("error", reject);
          resolve();
        });
      });
      this.udp = udp;
    }
    if (config.tcp.enabled && !this.o.tlsOnly) {
      const tcp = createServer((s) => this.onConnection(s, "tcp"));
      await listen(tcp, config.tcp);
      this.tcp = tcp;
    }
    if (config.tls.enabled) {
      const { certFile, keyFile, minVersion } = this.o.tls;
      const tls = createTlsServer(
        { cert: readFileSync(certFile!), key: readFileSync(keyFile!), minVersion },
        (s) => this.onConnection(s, "tls"),
      );
      tls.on("tlsClientError", (err) => log.debug({ err: err.message }, "SCAIP TLS handshake failed"));
      await listen(tls, config.tls);
      this.tls = tls;
    }
    log.info(
      { udp: this.udpPort(), tcp: this.tcpPort(), tls: this.tlsPort(), controllers: this.ha1s.size },
      "SCAIP receiver listening",
    );
  }

  async stop(): Promise<void> {
    const udp = this.udp;
    this.udp = null;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    const servers = [this.tcp, this.tls];
    this.tcp = null;
    this.tls = null;
    for (const s of this.sockets) s.destroy();
    for (const server of servers) if (server) await new Promise<void>((r) => server.close(() => r()));
    // What is being committed finishes in the ingest's own drain; nothing more is answered.
    this.transactions.clear();
  }

  udpPort(): number | null {
    const a = this.udp?.address();
    return a ? a.port : null;
  }

  tcpPort(): number | null {
    const a = this.tcp?.address();
    return a && typeof a === "object" ? a.port : null;
  }

  tlsPort(): number | null {
    const a = this.tls?.address();
    return a && typeof a === "object" ? a.port : null;
  }

  readiness(): { ok: boolean; detail: Record<string, unknown> } {
    const { config } = this.o;
    const plain = !this.o.tlsOnly;
    const ok =
      (!config.udp.enabled || !plain || this.udp !== null) &&
      (!config.tcp.enabled || !plain || this.tcp !== null) &&
      (!config.tls.enabled || this.tls !== null);
    return {
      ok,
      detail: {
        enabled: true,
        udp: this.udpPort(),
        tcp: this.tcpPort(),
        tls: this.tlsPort(),
        tcpConnections: this.sockets.size,
        controllersWithCredentials: this.ha1s.size,
        ...this.counters,
      },
    };
  }

  // ------------------------------------------------------------------------------------------------
  // Transports

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const send = (b: Buffer) => this.udp?.send(b, rinfo.port, rinfo.address);
    let req: SipRequest;
    try {
      req = parseDatagram(msg, this.limits);
    } catch (err) {
      const answer = this.answerUnparsed(err, msg);
      if (answer) send(answer);
      return;
    }
    // Responses go back to the datagram's source (as with rport, RFC 3581): units sit behind NAT.
    void this.transact(req, "udp", rinfo.address).then(send);
  }

  private onConnection(socket: Socket, transport: "tcp" | "tls"): void {
    const { config, log } = this.o;
    if (this.sockets.size >= config.maxConnections) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(config.tcpIdleSec * 1000, () => socket.destroy());
    const framer = new StreamFramer(this.limits);
    const address = socket.remoteAddress ?? "unknown";
    // Responses on one connection go out in request order, whatever order their commits finish.
    let chain = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      let reqs: SipRequest[];
      try {
        reqs = framer.push(chunk);
      } catch (err) {
        socket.pause();
        // The stream cannot be resynchronised: answer what can be answered, then close.
        const answer = this.answerUnparsed(err, chunk);
        chain = chain.then(() => void (answer ? socket.end(answer) : socket.destroy()));
        return;
      }
      for (const req of reqs) {
        const answer = this.transact(req, transport, address);
        chain = chain.then(async () => {
          const b = await answer;
          if (!socket.destroyed) socket.write(b);
        });
      }
    });
    socket.on("error", (err) => log.debug({ err: err.message, address }, "SCAIP TCP connection error"));
    socket.on("close", () => this.sockets.delete(socket));
  }

  /** A request whose SIP could not be read: a 400/413/505 where its Via and CSeq were found. */
  private answerUnparsed(err: unknown, raw: Buffer): Buffer | null {
    this.counters.malformed++;
    if (!(err instanceof SipError)) {
      this.o.log.error({ err: (err as Error).message }, "SCAIP request handling failed");
      return null;
    }
    this.o.log.debug({ status: err.status, reason: err.message }, "SCAIP request refused at the SIP layer");
    const headers = err instanceof SizeError ? err.head.headers : bestEffortHeaders(raw);
    if (!headers) return null;
    return writeResponse(
      { headers },
      { status: err.status, headers: [["Warning", `399 ata "${err.message}"`]] },
      SERVER,
    );
  }

  /** The server transaction: one response per (branch, Call-ID, CSeq), however often it is sent. */
  private transact(req: SipRequest, transport: Transport, address: string): Promise<Buffer> {
    this.counters.requests++;
    const now = Date.now();
    const key = `${topBranch(req)}\0${header(req, "call-id")}\0${header(req, "cseq")}\0${address}`;
    const known = this.transactions.get(key);
    if (known && now - known.at < TRANSACTION_MS) {
      this.counters.retransmissions++;
      return known.response;
    }
    const response = this.handle(req, transport, address).then(
      (res) => writeResponse(req, res, SERVER),
      (err: Error) => {
        this.o.log.error({ err: err.message }, "SCAIP request could not be committed");
        // Not committed: the unit must try again (or its other receiver), so no cached answer.
        this.transactions.delete(key);
        return writeResponse(req, { status: 500, headers: [["Retry-After", "5"]] }, SERVER);
      },
    );
    this.transactions.set(key, { at: now, response });
    this.prune(now);
    return response;
  }

  private prune(now: number): void {
    for (const [k, t] of this.transactions) {
      if (now - t.at < TRANSACTION_MS && this.transactions.size <= MAX_TRANSACTIONS) break;
      this.transactions.delete(k);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // The request

  private refuse(address: string, subject: string | null, reason: string, status: 403 = 403): SipResponse {
    this.counters.refused++;
    this.o.security.record({
      kind: "connect_refused",
      address,
      subject,
      detail: { transport: "scaip", reason },
    });
    return { status, headers: [["Warning", `399 ata "${reason}"`]] };
  }

  private async handle(req: SipRequest, transport: Transport, address: string): Promise<SipResponse> {
    const allow: [string, string] = ["Allow", "MESSAGE, OPTIONS"];
    if (req.method === "OPTIONS") return { status: 200, headers: [allow, ["Accept", CONTENT_TYPE]] };
    if (req.method !== "MESSAGE") return { status: 405, headers: [allow] };
    const type = (header(req, "content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== CONTENT_TYPE) return { status: 415, headers: [["Accept", CONTENT_TYPE]] };

    const auth = this.digest.verify(req.method, header(req, "authorization"));
    if (!auth.ok) {
      if (auth.reason === "missing" || auth.reason === "stale")
        return {
          status: 401,
          headers: [["WWW-Authenticate", this.digest.challenge(auth.reason === "stale")]],
        };
      const who = "username" in auth ? (auth.username ?? null) : null;
      const reason =
        auth.reason === "unknown_user"
          ? "unknown controller (no SCAIP credentials)"
          : `digest ${auth.reason}`;
      return this.refuse(address, who, reason);
    }
    const controller = auth.username;
    const device = this.o.registry.peek(controller);
    if (!device) return this.refuse(address, controller, "unknown controller (not registered)");
    if (!device.enabled) return this.refuse(address, controller, "controller disabled");
    if (!this.o.profiles.get(device.profile)?.topics.includes(SCAIP_CHANNEL))
      return this.refuse(address, controller, `profile ${device.profile} does not take SCAIP`);

    const topic = `sip/${transport}`;
    let mrq: ReturnType<typeof parseMrq>;
    try {
      mrq = parseMrq(req.body);
    } catch (err) {
      if (!(err instanceof MrqError)) throw err;
      this.counters.malformed++;
      const code = err.snu === SNU.invalidFormat ? "bad_xml" : "bad_schema";
      await this.o.ingest.refuse(controller, topic, code, `SCAIP mrq: ${err.message}`, req.body);
      return this.answer(err.ref, err.snu, err.message);
    }
    if (mrq.cid !== controller)
      return this.refuse(
        address,
        controller,
        `mrq cid ${JSON.stringify(mrq.cid.slice(0, 32))} is not the authenticated controller`,
      );

    const result = await this.o.ingest.submit(
      controller,
      topic,
      SCAIP_CHANNEL,
      toScaipJson(mrq, header(req, "call-id") ?? ""),
    );
    const { snu, ste } = snuFor(result);
    if (snu === SNU.ok) this.counters.accepted++;
    else
      this.o.log.info(
        { deviceId: controller, snu, ref: mrq.ref },
        "SCAIP message not treated; kept as a dead letter",
      );
    return this.answer(mrq.ref, snu, ste);
  }

  private answer(ref: string | null, snu: Snu, ste?: string): SipResponse {
    return { status: 200, contentType: CONTENT_TYPE, body: mrs(ref, snu, ste) };
  }
}
