/**
 * ESPA 4.4.4 framing: data blocks, the block check character, the character sets, and a reader
 * that turns a byte stream into link events. Pure: no I/O, no timers.
 *
 * Sources (ESPA 4.4.4 "Serial data interface for paging equipment", Nov 1984, as annotated by
 * G. Scott, gscott.me.uk/ESPA.4.4.4; ISO 1745 basic-mode control procedures):
 * - §2.3 control characters: SOH 01, STX 02, ETX 03, EOT 04, ENQ 05, ACK 06, NAK 15; information
 *   separators RS 1E between records and US 1F between a record's type and its data.
 * - §4.1 block: `SOH <header> STX <record> (RS <record>)* ETX BCC`, record = `<type> US <data>`.
 *   The BCC is "the modulo 2 binary sum of the characters in the transmission block excluding the
 *   SOH", i.e. the XOR of every byte after SOH up to and including ETX. It can take the value of a
 *   control character and must not be read as one (Scott's note to §4.1), which is why the reader
 *   below takes the byte after ETX as the BCC whatever it is.
 * - §4.2 headers: '1' call to pager, '2' status information, '3' status request, '4' call to
 *   subscriber line, '5' other.
 * - §4.3 records: 1 call address, 2 display message, 3 beep coding, 4 call type, 5 number of
 *   transmissions, 6 priority, 7 call status, 8 pager status. Values are digits except the display
 *   message; their meanings beyond that are the paging system's, so they are configuration here.
 * - §2.2 the character set is 7-bit ISO 646; national variants put letters on [ \ ] { | }. The
 *   Danish/Norwegian variant (DS 2089 / NS 4551-1) has Æ Ø Å at 5B 5C 5D and æ ø å at 7B 7C 7D.
 *   Many current systems (Ascom, Spectralink, Mitel DECT servers) also take ISO 8859-1 over an
 *   8-bit line; which one a site has is configuration (`charset`).
 */

export const SOH = 0x01;
export const STX = 0x02;
export const ETX = 0x03;
export const EOT = 0x04;
export const ENQ = 0x05;
export const ACK = 0x06;
export const NAK = 0x15;
export const RS = 0x1e;
export const US = 0x1f;

/** §4.2 block headers. */
export const HEADER = {
  callToPager: "1",
  statusInformation: "2",
  statusRequest: "3",
  callToSubscriberLine: "4",
  other: "5",
} as const;

/** §4.3 record types. */
export const RECORD = {
  callAddress: "1",
  displayMessage: "2",
  beepCoding: "3",
  callType: "4",
  transmissions: "5",
  priority: "6",
  callStatus: "7",
  pagerStatus: "8",
} as const;

export const CHARSETS = ["iso646-dk", "latin1", "ascii"] as const;
export type Charset = (typeof CHARSETS)[number];

/** Danish/Norwegian ISO 646 (DS 2089): the six national positions. */
const DK_NATIONAL: Record<string, number> = { Æ: 0x5b, Ø: 0x5c, Å: 0x5d, æ: 0x7b, ø: 0x7c, å: 0x7d };
const DK_DECODE = new Map(Object.entries(DK_NATIONAL).map(([ch, b]) => [b, ch]));

/**
 * What a character becomes where the code page has no place for it. Neighbouring Nordic letters
 * first (a Danish reader takes Ä for Æ), then the letter without its accent, then a few signs.
 * The ASCII characters the Danish variant gives away ([ \ ] { | }) become the nearest sign left.
 */
const FALLBACK: Record<string, string> = {
  Ä: "Æ",
  Ö: "Ø",
  ä: "æ",
  ö: "ø",
  "[": "(",
  "]": ")",
  "{": "(",
  "}": ")",
  "\\": "/",
  "|": "!",
  ß: "ss",
  "€": "EUR",
  "–": "-",
  "—": "-",
  "‘": "'",
  "’": "'",
  "“": '"',
  "”": '"',
  "…": "...",
};

/**
 * The bytes one character becomes in a charset: one byte usually, several for a transliteration
 * ("ß" -> "ss"), "?" where nothing fits. Control characters become a space: inside a record they
 * would end it (RS, ETX) or corrupt the link.
 */
export function encodeChar(ch: string, charset: Charset): number[] {
  const cp = ch.codePointAt(0)!;
  if (cp < 0x20 || cp === 0x7f) return [0x20];
  if (charset === "iso646-dk") {
    const national = DK_NATIONAL[ch];
    if (national !== undefined) return [national];
    if (cp < 0x80 && !"[\\]{|}".includes(ch)) return [cp];
  } else if (charset === "latin1") {
    // 0x80-0x9f are C1 control characters in ISO 8859-1: not text.
    if (cp < 0x80 || (cp >= 0xa0 && cp <= 0xff)) return [cp];
  } else if (cp < 0x80) return [cp];
  const fb = FALLBACK[ch];
  if (fb !== undefined && fb !== ch) return [...fb].flatMap((c) => encodeChar(c, charset));
  // Strip an accent (é -> e, ü -> u) and try again.
  const base = ch.normalize("NFD").replace(/\p{M}+/gu, "");
  if (base && base !== ch) return [...base].flatMap((c) => encodeChar(c, charset));
  return [0x3f];
}

export function encodeText(text: string, charset: Charset): Buffer {
  return Buffer.from([...text].flatMap((ch) => encodeChar(ch, charset)));
}

/**
 * Encode at most `maxBytes` bytes of `text`, never cutting a character's encoding in two (an
 * "ss" for "ß" is both bytes or neither). Returns the bytes and whether anything was left out.
 */
export function encodeFitted(
  text: string,
  charset: Charset,
  maxBytes: number,
): { bytes: Buffer; cut: boolean } {
  const out: number[] = [];
  for (const ch of text) {
    const b = encodeChar(ch, charset);
    if (out.length + b.length > maxBytes) return { bytes: Buffer.from(out), cut: true };
    out.push(...b);
  }
  return { bytes: Buffer.from(out), cut: false };
}

export function decodeText(bytes: Uint8Array, charset: Charset): string {
  let s = "";
  for (const b of bytes) {
    if (charset === "iso646-dk") s += DK_DECODE.get(b) ?? String.fromCharCode(b & 0x7f);
    else if (charset === "latin1") s += String.fromCharCode(b);
    else s += String.fromCharCode(b & 0x7f);
  }
  return s;
}

/** XOR of the bytes after SOH up to and including ETX (§4.1). */
export function bcc(bytes: Uint8Array): number {
  let x = 0;
  for (const b of bytes) x ^= b;
  return x;
}

export interface EspaRecord {
  /** Record type, usually one digit (§4.3). */
  type: string;
  /** Data as bytes in the link's charset. */
  data: Buffer;
}

export interface EspaBlock {
  header: string;
  records: EspaRecord[];
}

/** `SOH header STX type US data (RS type US data)* ETX BCC`. */
export function encodeBlock(block: EspaBlock): Buffer {
  for (const r of block.records)
    if (r.data.some((b) => b < 0x20)) throw new Error(`record ${r.type} contains a control character`);
  const parts: Buffer[] = [Buffer.from(block.header, "latin1"), Buffer.from([STX])];
  block.records.forEach((r, i) => {
    if (i > 0) parts.push(Buffer.from([RS]));
    parts.push(Buffer.from(r.type, "latin1"), Buffer.from([US]), r.data);
  });
  parts.push(Buffer.from([ETX]));
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([SOH]), body, Buffer.from([bcc(body)])]);
}

/**
 * Parse the bytes between SOH and the BCC (header .. ETX inclusive). Records are split on RS and
 * each on its first US; a trailing RS before ETX (a common implementers' slip, Scott's note to
 * §4.1) gives no empty record.
 */
export function parseBody(body: Uint8Array): EspaBlock {
  const b = Buffer.from(body);
  const stx = b.indexOf(STX);
  const end = b[b.length - 1] === ETX ? b.length - 1 : b.length;
  if (stx < 0) return { header: b.subarray(0, end).toString("latin1"), records: [] };
  const header = b.subarray(0, stx).toString("latin1");
  const records: EspaRecord[] = [];
  let start = stx + 1;
  for (let i = start; i <= end; i++) {
    if (i === end || b[i] === RS) {
      const rec = b.subarray(start, i);
      if (rec.length > 0) {
        const us = rec.indexOf(US);
        records.push(
          us < 0
            ? { type: rec.toString("latin1"), data: Buffer.alloc(0) }
            : { type: rec.subarray(0, us).toString("latin1"), data: Buffer.from(rec.subarray(us + 1)) },
        );
      }
      start = i + 1;
    }
  }
  return { header, records };
}

/** A whole block (SOH .. BCC) back into header and records, with its BCC checked. */
export function decodeBlock(frame: Uint8Array): EspaBlock & { bccOk: boolean } {
  if (frame[0] !== SOH || frame.length < 3) throw new Error("not an ESPA block");
  const body = frame.subarray(1, frame.length - 1);
  return { ...parseBody(body), bccOk: bcc(body) === frame[frame.length - 1] };
}

export function recordValue(block: EspaBlock, type: string): Buffer | undefined {
  return block.records.find((r) => r.type === type)?.data;
}

/** What arrives on the link, one event per control sequence or block. */
export type LinkEvent =
  | { kind: "enq"; address: string }
  | { kind: "ack"; prefix: string }
  | { kind: "nak"; prefix: string }
  | { kind: "eot" }
  | { kind: "block"; block: EspaBlock; bccOk: boolean; raw: Buffer };

/** The longest block accepted; a runaway frame (no ETX) is dropped rather than buffered forever. */
const MAX_BLOCK = 4096;
/** Transmission-control prefixes (§2.4: an address before ENQ, an error code before NAK) are short. */
const MAX_PREFIX = 15;

/**
 * Incremental reader: feed it bytes as they arrive (TCP and serial both split and merge at will)
 * and it returns the link events completed so far. Characters outside a block that are not
 * control characters are kept as the next control character's prefix (§2.4).
 */
export class LinkReader {
  private prefix: number[] = [];
  private block: number[] | null = null;
  /** Saw ETX: the next byte is the BCC, whatever its value. */
  private wantBcc = false;
  /** Bytes dropped as noise since the last call, for diagnostics. */
  discarded = 0;

  push(chunk: Uint8Array): LinkEvent[] {
    const out: LinkEvent[] = [];
    for (const byte of chunk) {
      if (this.block) {
        if (this.wantBcc) {
          const body = Buffer.from(this.block);
          const raw = Buffer.concat([Buffer.from([SOH]), body, Buffer.from([byte])]);
          out.push({ kind: "block", block: parseBody(body), bccOk: bcc(body) === byte, raw });
          this.block = null;
          this.wantBcc = false;
        } else {
          this.block.push(byte);
          if (byte === ETX) this.wantBcc = true;
          else if (this.block.length > MAX_BLOCK) {
            this.discarded += this.block.length;
            this.block = null;
          }
        }
        continue;
      }
      const prefix = Buffer.from(this.prefix).toString("latin1");
      switch (byte) {
        case SOH:
          this.discarded += this.prefix.length;
          this.prefix = [];
          this.block = [];
          break;
        case ENQ:
          out.push({ kind: "enq", address: prefix });
          this.prefix = [];
          break;
        case ACK:
          out.push({ kind: "ack", prefix });
          this.prefix = [];
          break;
        case NAK:
          out.push({ kind: "nak", prefix });
          this.prefix = [];
          break;
        case EOT:
          this.discarded += this.prefix.length;
          out.push({ kind: "eot" });
          this.prefix = [];
          break;
        default:
          if (byte >= 0x20 && byte < 0x7f) {
            this.prefix.push(byte);
            if (this.prefix.length > MAX_PREFIX) this.discarded += this.prefix.shift() === undefined ? 0 : 1;
          } else this.discarded++;
      }
    }
    return out;
  }

  reset(): void {
    this.prefix = [];
    this.block = null;
    this.wantBcc = false;
  }
}
