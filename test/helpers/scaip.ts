/**
 * A SCAIP social-alarm unit for tests: SIP MESSAGE requests with `<mrq>` bodies over real UDP and TCP
 * sockets, answering digest challenges (RFC 3261 §22 / RFC 2617, qop=auth) the way a unit does.
 * Written here from the RFCs and the element names in src/scaip/mrq.ts; nothing shared with the
 * receiver's code, so that the two can disagree and a test can catch it.
 */
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";

export interface SipReply {
  status: number;
  reason: string;
  headers: [string, string][];
  body: string;
  raw: Buffer;
  /** `<ref>` and `<snu>` of an mrs body, when there is one. */
  mrs?: { ref: string; snu: number; ste?: string };
}

export function replyHeader(r: SipReply, name: string): string | undefined {
  return r.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}

export function parseReply(raw: Buffer): SipReply {
  const text = raw.toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  const [first, ...lines] = text.slice(0, end).split("\r\n");
  const m = /^SIP\/2\.0 (\d{3}) (.*)$/.exec(first ?? "");
  if (!m) throw new Error(`not a SIP response: ${first}`);
  const headers = lines.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
  });
  const body = text.slice(end + 4);
  const reply: SipReply = { status: Number(m[1]), reason: m[2]!, headers, body, raw };
  const ref = /<ref>([^<]*)<\/ref>/.exec(body);
  const snu = /<snu>(\d+)<\/snu>/.exec(body);
  if (ref && snu) {
    const ste = /<ste>([^<]*)<\/ste>/.exec(body)?.[1];
    reply.mrs = { ref: ref[1]!, snu: Number(snu[1]), ...(ste ? { ste } : {}) };
  }
  return reply;
}

/** An `<mrq>` body from element name -> value, in the given order. */
export function mrqXml(elements: Record<string, string>): string {
  const inner = Object.entries(elements)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<mrq>${inner}</mrq>`;
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

export interface MessageOptions {
  body: string | Buffer;
  contentType?: string;
  callId?: string;
  /** Compact header names (i, f, t, v, c, l) as some units send them. */
  compact?: boolean;
  /** Credentials to answer a 401 with; without them the 401 is returned. */
  password?: string;
  username?: string;
}

/** Request bytes, kept so that a test can retransmit exactly what was sent. */
export interface Sent {
  bytes: Buffer;
  reply: SipReply;
}

export class ScaipUnit {
  private udp: UdpSocket | null = null;
  private tcp: Socket | null = null;
  private tcpBuf = Buffer.alloc(0);
  private readonly waiting: ((b: Buffer) => void)[] = [];
  private readonly queued: Buffer[] = [];
  private cseq = 1;

  constructor(
    readonly transport: "udp" | "tcp" | "tls",
    readonly port: number,
    readonly cid: string,
    /** For TLS: the CA the receiver's certificate is checked against (verification on). */
    readonly ca?: Buffer,
  ) {}

  async open(): Promise<this> {
    if (this.transport === "udp") {
      const s = createSocket("udp4");
      s.on("message", (m) => this.deliver(m));
      await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
      this.udp = s;
    } else {
      const tls = this.transport === "tls";
      const s = tls
        ? connectTls({ port: this.port, host: "127.0.0.1", ...(this.ca ? { ca: this.ca } : {}) })
        : connect(this.port, "127.0.0.1");
      s.setNoDelay(true);
      s.on("data", (c: Buffer) => this.onTcp(c));
      await new Promise<void>((r, j) => {
        s.once(tls ? "secureConnect" : "connect", () => r());
        s.once("error", j);
      });
      s.on("error", () => {});
      this.tcp = s;
    }
    return this;
  }

  close(): void {
    this.udp?.close();
    this.tcp?.destroy();
  }

  private deliver(b: Buffer): void {
    const w = this.waiting.shift();
    if (w) w(b);
    else this.queued.push(b);
  }

  private onTcp(chunk: Buffer): void {
    this.tcpBuf = Buffer.concat([this.tcpBuf, chunk]);
    for (;;) {
      const end = this.tcpBuf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.tcpBuf.subarray(0, end).toString("latin1");
      const len = Number(/\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.tcpBuf.length < end + 4 + len) return;
      this.deliver(Buffer.from(this.tcpBuf.subarray(0, end + 4 + len)));
      this.tcpBuf = this.tcpBuf.subarray(end + 4 + len);
    }
  }

  /** The next response, or null when none comes within `ms`. */
  next(ms = 3000): Promise<Buffer | null> {
    const q = this.queued.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.waiting.indexOf(done);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      }, ms);
      const done = (b: Buffer) => {
        clearTimeout(t);
        resolve(b);
      };
      this.waiting.push(done);
    });
  }

  /** Send bytes as they are and read one response. */
  async raw(bytes: Buffer, ms = 3000): Promise<SipReply | null> {
    if (this.udp) this.udp.send(bytes, this.port, "127.0.0.1");
    else this.tcp!.write(bytes);
    const b = await this.next(ms);
    return b ? parseReply(b) : null;
  }

  request(opts: MessageOptions & { authorization?: string; cseq?: number }): Buffer {
    const body = Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    const callId = opts.callId ?? `${randomBytes(8).toString("hex")}@unit`;
    const proto = this.transport.toUpperCase();
    const n = opts.compact
      ? { via: "v", from: "f", to: "t", callId: "i", type: "c", length: "l" }
      : {
          via: "Via",
          from: "From",
          to: "To",
          callId: "Call-ID",
          type: "Content-Type",
          length: "Content-Length",
        };
    const lines = [
      `MESSAGE sip:arc@127.0.0.1:${this.port} SIP/2.0`,
      `${n.via}: SIP/2.0/${proto} 127.0.0.1:5099;branch=z9hG4bK${randomBytes(6).toString("hex")};rport`,
      "Max-Forwards: 70",
      `${n.from}: <sip:${this.cid}@127.0.0.1>;tag=${randomBytes(4).toString("hex")}`,
      `${n.to}: <sip:arc@127.0.0.1>`,
      `${n.callId}: ${callId}`,
      `CSeq: ${opts.cseq ?? this.cseq++} MESSAGE`,
      ...(opts.authorization ? [`Authorization: ${opts.authorization}`] : []),
      `${n.type}: ${opts.contentType ?? "application/scaip+xml"}`,
      `${n.length}: ${body.length}`,
    ];
    return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body]);
  }

  /**
   * A MESSAGE, answering the 401 challenge with digest credentials when a password is given.
   * Returns the last request sent and its reply.
   */
  async message(opts: MessageOptions): Promise<Sent> {
    const callId = opts.callId ?? `${randomBytes(8).toString("hex")}@unit`;
    let bytes = this.request({ ...opts, callId });
    let reply = await this.raw(bytes);
    if (!reply) throw new Error("no response");
    if (reply.status === 401 && opts.password !== undefined) {
      const challenge = replyHeader(reply, "WWW-Authenticate") ?? "";
      const nonce = /nonce="([^"]+)"/.exec(challenge)?.[1] ?? "";
      const realm = /realm="([^"]+)"/.exec(challenge)?.[1] ?? "";
      const username = opts.username ?? this.cid;
      const uri = `sip:arc@127.0.0.1:${this.port}`;
      const cnonce = randomBytes(6).toString("hex");
      const nc = "00000001";
      const ha1 = md5(`${username}:${realm}:${opts.password}`);
      const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${md5(`MESSAGE:${uri}`)}`);
      const authorization = `Digest username="${username}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
      bytes = this.request({ ...opts, callId, authorization });
      reply = await this.raw(bytes);
      if (!reply) throw new Error("no response to the authenticated request");
    }
    return { bytes, reply };
  }
}
