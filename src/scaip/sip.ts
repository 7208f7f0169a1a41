/**
 * The little of SIP (RFC 3261) a SCAIP receiver needs: parse a request, frame requests on a stream,
 * and write a response that copies Via, From, To (with a tag), Call-ID and CSeq as RFC 3261 §8.2.6.2
 * requires. Requests only: the receiver never sends requests, so it never parses responses.
 *
 * - Header names are case-insensitive and have compact forms (§7.3.3: v i f t l c m k s e).
 * - Headers may be folded onto continuation lines (§7.3.1) and Via may hold several values.
 * - Over UDP a datagram is one request; a Content-Length larger than what arrived is a 400, a
 *   smaller one truncates the body (§18.3). Over TCP Content-Length frames the stream and is required.
 * - Limits on the header section and the body are checked before anything is buffered past them.
 */
import { createHash } from "node:crypto";

export interface SipRequest {
  method: string;
  uri: string;
  /** Lower-case canonical header name -> values in order (one per line or comma-separated Via). */
  headers: Map<string, string[]>;
  body: Buffer;
}

export class SipError extends Error {
  constructor(
    readonly status: 400 | 413 | 505,
    message: string,
  ) {
    super(message);
    this.name = "SipError";
  }
}

const COMPACT: Record<string, string> = {
  v: "via",
  i: "call-id",
  f: "from",
  t: "to",
  l: "content-length",
  c: "content-type",
  m: "contact",
  k: "supported",
  s: "subject",
  e: "content-encoding",
};
const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP\/(\d+\.\d+)$/;
const REQUIRED = ["via", "from", "to", "call-id", "cseq"] as const;

export interface SipLimits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  maxHeaders: number;
}

/** The header section (without the blank line) into a request line and headers. */
function parseHead(head: string, limits: SipLimits): Omit<SipRequest, "body"> {
  const lines = head.split("\r\n");
  const first = lines.shift() ?? "";
  const m = REQUEST_LINE.exec(first);
  if (!m) throw new SipError(400, "malformed request line");
  if (m[3] !== "2.0") throw new SipError(505, `SIP/${m[3]} is not supported`);
  const headers = new Map<string, string[]>();
  let count = 0;
  let last: { name: string; values: string[] } | null = null;
  for (const line of lines) {
    if (line.startsWith(" ") || line.startsWith("\t")) {
      // Folded continuation of the previous header's last value.
      if (!last) throw new SipError(400, "continuation line before any header");
      const i = last.values.length - 1;
      last.values[i] = `${last.values[i]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new SipError(400, "malformed header line");
    const raw = line.slice(0, colon).trim();
    if (!TOKEN.test(raw)) throw new SipError(400, "malformed header name");
    if (++count > limits.maxHeaders) throw new SipError(400, `more than ${limits.maxHeaders} headers`);
    const lower = raw.toLowerCase();
    const name = COMPACT[lower] ?? lower;
    const value = line.slice(colon + 1).trim();
    const values = headers.get(name) ?? [];
    // Via is the one header here that may carry several comma-separated values we copy one by one.
    if (name === "via") values.push(...splitComma(value));
    else values.push(value);
    headers.set(name, values);
    last = { name, values };
  }
  for (const h of REQUIRED)
    if (!headers.get(h)?.[0]) throw new SipError(400, `missing ${h === "cseq" ? "CSeq" : h} header`);
  const cseq = parseCSeq(headers.get("cseq")![0]!);
  if (!cseq || cseq.method !== m[1]) throw new SipError(400, "CSeq does not match the request method");
  return { method: m[1]!, uri: m[2]!, headers };
}

/** Commas outside quotes and angle brackets separate header values. */
function splitComma(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"' && value[i - 1] !== "\\") quoted = !quoted;
    else if (!quoted && c === "<") depth++;
    else if (!quoted && c === ">") depth--;
    else if (!quoted && depth === 0 && c === ",") {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v.length > 0);
}

export function parseCSeq(value: string): { seq: number; method: string } | null {
  const m = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/.exec(value.trim());
  if (!m) return null;
  const seq = Number(m[1]);
  return seq < 2 ** 31 ? { seq, method: m[2]! } : null;
}

function contentLength(headers: Map<string, string[]>): number | null {
  const v = headers.get("content-length")?.[0];
  if (v === undefined) return null;
  if (!/^\d{1,9}$/.test(v)) throw new SipError(400, "malformed Content-Length");
  return Number(v);
}

/** One UDP datagram as one request (RFC 3261 §18.3). */
export function parseDatagram(data: Buffer, limits: SipLimits): SipRequest {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) {
    if (data.length > limits.maxHeaderBytes) throw new SipError(400, "header section too large");
    throw new SipError(400, "no blank line after the headers");
  }
  if (end > limits.maxHeaderBytes) throw new SipError(400, "header section too large");
  const head = parseHead(data.subarray(0, end).toString("latin1"), limits);
  const rest = data.subarray(end + 4);
  const length = contentLength(head.headers) ?? rest.length;
  if (length > limits.maxBodyBytes) throw new SizeError(head, length, limits.maxBodyBytes);
  if (length > rest.length) throw new SipError(400, "Content-Length is larger than the datagram's body");
  return { ...head, body: Buffer.from(rest.subarray(0, length)) };
}

/** A body over the limit: the request's headers are known, so the 413 can be a proper response. */
export class SizeError extends SipError {
  constructor(
    readonly head: Omit<SipRequest, "body">,
    readonly length: number,
    limit: number,
  ) {
    super(413, `body of ${length} bytes; the limit is ${limit}`);
  }
}

/**
 * Frames requests on a TCP or TLS stream by Content-Length (RFC 3261 §18.3). CRLF keep-alives
 * between requests (RFC 5626 §3.5.1) are skipped. After an error the stream cannot be resynchronised:
 * the caller answers and closes.
 */
export class StreamFramer {
  private buf: Buffer = Buffer.alloc(0);
  private head: Omit<SipRequest, "body"> | null = null;
  private need = 0;

  constructor(private readonly limits: SipLimits) {}

  /** Requests complete with this chunk; throws SipError for what cannot be framed. */
  push(chunk: Buffer): SipRequest[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: SipRequest[] = [];
    for (;;) {
      if (!this.head) {
        let skip = 0;
        while (this.buf[skip] === 0x0d || this.buf[skip] === 0x0a) skip++;
        if (skip) this.buf = this.buf.subarray(skip);
        const end = this.buf.indexOf("\r\n\r\n");
        if (end < 0) {
          if (this.buf.length > this.limits.maxHeaderBytes)
            throw new SipError(400, "header section too large");
          return out;
        }
        if (end > this.limits.maxHeaderBytes) throw new SipError(400, "header section too large");
        const head = parseHead(this.buf.subarray(0, end).toString("latin1"), this.limits);
        const length = contentLength(head.headers);
        if (length === null) throw new SipError(400, "Content-Length is required over a stream");
        if (length > this.limits.maxBodyBytes) throw new SizeError(head, length, this.limits.maxBodyBytes);
        this.head = head;
        this.need = length;
        this.buf = this.buf.subarray(end + 4);
      }
      if (this.buf.length < this.need) return out;
      out.push({ ...this.head, body: Buffer.from(this.buf.subarray(0, this.need)) });
      this.buf = this.buf.subarray(this.need);
      this.head = null;
    }
  }
}

export function header(req: Pick<SipRequest, "headers">, name: string): string | undefined {
  return req.headers.get(name)?.[0];
}

/** The branch parameter of the top Via: the transaction's key with the Call-ID and CSeq. */
export function topBranch(req: Pick<SipRequest, "headers">): string {
  const via = header(req, "via") ?? "";
  return /;\s*branch=([^;\s,]+)/i.exec(via)?.[1] ?? "";
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  405: "Method Not Allowed",
  413: "Request Entity Too Large",
  415: "Unsupported Media Type",
  500: "Server Internal Error",
  503: "Service Unavailable",
  505: "Version Not Supported",
};

export interface SipResponse {
  status: number;
  /** Extra headers (WWW-Authenticate, Allow, Accept, ...). */
  headers?: [string, string][];
  contentType?: string;
  body?: Buffer;
}

/**
 * A response to `req` (RFC 3261 §8.2.6.2): every Via in order, From, Call-ID and CSeq copied, To
 * copied with a tag added when it has none. The tag is derived from the Call-ID and From tag, so a
 * retransmitted request gets a byte-identical response.
 */
export function writeResponse(req: Pick<SipRequest, "headers">, res: SipResponse, server: string): Buffer {
  const lines = [`SIP/2.0 ${res.status} ${REASONS[res.status] ?? "Error"}`];
  for (const v of req.headers.get("via") ?? []) lines.push(`Via: ${v}`);
  const from = header(req, "from") ?? "";
  lines.push(`From: ${from}`);
  const to = header(req, "to") ?? "";
  const tagged = /;\s*tag=/i.test(to) ? to : `${to};tag=${toTag(header(req, "call-id") ?? "", from)}`;
  lines.push(`To: ${tagged}`);
  lines.push(`Call-ID: ${header(req, "call-id") ?? ""}`);
  lines.push(`CSeq: ${header(req, "cseq") ?? ""}`);
  lines.push(`Server: ${server}`);
  for (const [k, v] of res.headers ?? []) lines.push(`${k}: ${v}`);
  const body = res.body ?? Buffer.alloc(0);
  if (body.length) lines.push(`Content-Type: ${res.contentType ?? "application/octet-stream"}`);
  lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

function toTag(callId: string, from: string): string {
  const fromTag = /;\s*tag=([^;\s]+)/i.exec(from)?.[1] ?? "";
  return createHash("sha256").update(callId).update("\0").update(fromTag).digest("hex").slice(0, 16);
}

/**
 * A response for a request whose headers could not be read in full: only what was read is copied.
 * RFC 3261 §16.3 lets a server that cannot parse a request drop it; over a stream the sender would
 * then wait for its timeout, so a best-effort 400 is written when Via and CSeq were found.
 */
export function bestEffortHeaders(raw: Buffer): Map<string, string[]> | null {
  const text = raw.subarray(0, Math.min(raw.length, 16_384)).toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  const lines = (end < 0 ? text : text.slice(0, end)).split("\r\n").slice(1);
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const lower = line.slice(0, colon).trim().toLowerCase();
    const name = COMPACT[lower] ?? lower;
    if (!["via", "from", "to", "call-id", "cseq"].includes(name)) continue;
    const values = headers.get(name) ?? [];
    values.push(
      ...(name === "via" ? splitComma(line.slice(colon + 1).trim()) : [line.slice(colon + 1).trim()]),
    );
    headers.set(name, values);
  }
  return headers.get("via")?.length && headers.get("cseq")?.length ? headers : null;
}
