/**
 * A paging system on 127.0.0.1, written from ESPA 4.4.4 rather than from the gateway's code: it is
 * the slave station (address '2') behind a serial device server in raw TCP mode. It answers an
 * enquiry `<2> ENQ` with ACK (ready), or, when it has status information to report, by selecting
 * the control station `<1> ENQ` (§3.2) and sending its blocks; it checks every block's framing and
 * BCC (XOR of the bytes after SOH up to ETX, §4.1) and answers NAK to a bad one (§3.5).
 *
 * Faults on demand: NAK the next N blocks, stay silent (no answers at all), drop the connection
 * when the next block arrives (before answering it), refuse connections (stop listening).
 *
 * The byte handling here is deliberately its own (no import of the gateway's framing), so a shared
 * misreading of the protocol cannot make both sides agree on something wrong.
 */
import { createServer, type Server, type Socket } from "node:net";

const SOH = 0x01;
const STX = 0x02;
const ETX = 0x03;
const EOT = 0x04;
const ENQ = 0x05;
const ACK = 0x06;
const NAK = 0x15;
const RS = 0x1e;
const US = 0x1f;

export interface ReceivedCall {
  at: number;
  header: string;
  /** Record type -> raw bytes. */
  records: Map<string, Buffer>;
  address: string;
  /** Record 2 decoded with the simulator's charset. */
  text: string;
  beep: string | undefined;
  callType: string | undefined;
  transmissions: string | undefined;
  priority: string | undefined;
  raw: Buffer;
}

export interface PagerOptions {
  /** How record 2 is read: the Danish ISO 646 variant or ISO 8859-1. */
  charset?: "iso646-dk" | "latin1";
  /** After ACKing a call, report this record 7 call status for it when next asked. */
  callStatus?: string;
}

const DK: Record<number, string> = { 91: "Æ", 92: "Ø", 93: "Å", 123: "æ", 124: "ø", 125: "å" };

export class EspaPager {
  readonly calls: ReceivedCall[] = [];
  /** Blocks whose BCC did not match (answered NAK). */
  badBcc = 0;
  /** Blocks answered NAK on purpose. */
  naked = 0;
  /** Blocks received and then cut off by a dropped connection. */
  readonly dropped: ReceivedCall[] = [];
  /** Enquiries addressed to us (polls and selections). */
  enquiries = 0;
  /** EOTs received (ends of transfers, starts of polls). */
  eots = 0;
  connections = 0;
  /** Status blocks the gateway acknowledged. */
  statusAcked = 0;

  private nakNext = 0;
  private dropNext = 0;
  private silent = false;
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  private statusQueue: Buffer[] = [];
  port = 0;
  /** Told of every call as it arrives (benchmarks time arrivals with it). */
  onCall: ((call: ReceivedCall) => void) | null = null;

  constructor(private readonly o: PagerOptions = {}) {}

  async start(port = 0): Promise<this> {
    this.server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, "127.0.0.1", () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  /** Close the listener and every connection: the device server is gone. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Come back on the same port. */
  async restart(): Promise<void> {
    await this.start(this.port);
  }

  nakNextBlocks(n: number): void {
    this.nakNext = n;
  }

  dropOnNextBlock(n = 1): void {
    this.dropNext = n;
  }

  setSilent(silent: boolean): void {
    this.silent = silent;
  }

  get connected(): number {
    return this.sockets.size;
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    let prefix = "";
    let block: number[] | null = null;
    let wantBcc = false;
    /** We selected the gateway and sent a status block: waiting for its ACK. */
    let sending: "select" | "block" | null = null;
    socket.on("data", (chunk: Buffer) => {
      for (const byte of chunk) {
        if (this.silent || socket.destroyed) return;
        if (block) {
          if (wantBcc) {
            this.onBlock(socket, Buffer.from(block), byte);
            block = null;
            wantBcc = false;
          } else {
            block.push(byte);
            if (byte === ETX) wantBcc = true;
          }
          continue;
        }
        if (byte === SOH) {
          block = [];
          prefix = "";
        } else if (byte === ENQ) {
          if (prefix === "2") {
            this.enquiries++;
            const status = this.statusQueue[0];
            if (status) {
              sending = "select";
              socket.write(Buffer.from([0x31, ENQ]));
            } else socket.write(Buffer.from([ACK]));
          }
          prefix = "";
        } else if (byte === ACK) {
          if (sending === "select") {
            sending = "block";
            socket.write(this.statusQueue[0]!);
          } else if (sending === "block") {
            this.statusQueue.shift();
            this.statusAcked++;
            if (this.statusQueue[0]) socket.write(this.statusQueue[0]);
            else {
              sending = null;
              socket.write(Buffer.from([EOT]));
            }
          }
          prefix = "";
        } else if (byte === NAK) {
          if (sending === "block") socket.write(this.statusQueue[0]!);
          prefix = "";
        } else if (byte === EOT) {
          this.eots++;
          prefix = "";
        } else if (byte >= 0x20 && byte < 0x7f) prefix += String.fromCharCode(byte);
      }
    });
  }

  private onBlock(socket: Socket, body: Buffer, bccByte: number): void {
    let x = 0;
    for (const b of body) x ^= b;
    if (x !== bccByte || body[body.length - 1] !== ETX) {
      this.badBcc++;
      socket.write(Buffer.from([NAK]));
      return;
    }
    const call = this.parse(body, bccByte);
    if (this.dropNext > 0) {
      this.dropNext--;
      this.dropped.push(call);
      socket.destroy();
      return;
    }
    if (this.nakNext > 0) {
      this.nakNext--;
      this.naked++;
      socket.write(Buffer.from([NAK]));
      return;
    }
    socket.write(Buffer.from([ACK]));
    if (call.header !== "1") return;
    this.calls.push(call);
    this.onCall?.(call);
    if (this.o.callStatus !== undefined)
      this.statusQueue.push(this.statusBlock(call.address, this.o.callStatus));
  }

  private parse(body: Buffer, bccByte: number): ReceivedCall {
    const stx = body.indexOf(STX);
    const header = body.subarray(0, stx).toString("latin1");
    const records = new Map<string, Buffer>();
    for (const rec of splitOn(body.subarray(stx + 1, body.length - 1), RS)) {
      const us = rec.indexOf(US);
      if (us > 0) records.set(rec.subarray(0, us).toString("latin1"), Buffer.from(rec.subarray(us + 1)));
    }
    const str = (t: string) => records.get(t)?.toString("latin1");
    const textBytes = records.get("2") ?? Buffer.alloc(0);
    const text =
      this.o.charset === "latin1"
        ? textBytes.toString("latin1")
        : [...textBytes].map((b) => DK[b] ?? String.fromCharCode(b)).join("");
    return {
      at: Date.now(),
      header,
      records,
      address: str("1") ?? "",
      text,
      beep: str("3"),
      callType: str("4"),
      transmissions: str("5"),
      priority: str("6"),
      raw: Buffer.concat([Buffer.from([SOH]), body, Buffer.from([bccByte])]),
    };
  }

  private statusBlock(address: string, status: string): Buffer {
    const body = Buffer.concat([
      Buffer.from("2"),
      Buffer.from([STX]),
      Buffer.from("1"),
      Buffer.from([US]),
      Buffer.from(address, "latin1"),
      Buffer.from([RS]),
      Buffer.from("7"),
      Buffer.from([US]),
      Buffer.from(status, "latin1"),
      Buffer.from([ETX]),
    ]);
    let x = 0;
    for (const b of body) x ^= b;
    return Buffer.concat([Buffer.from([SOH]), body, Buffer.from([x])]);
  }
}

function splitOn(b: Buffer, sep: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === sep) {
      out.push(b.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

export async function startPager(o: PagerOptions = {}): Promise<EspaPager> {
  return new EspaPager(o).start();
}
