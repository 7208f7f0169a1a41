/**
 * How the ESPA link reaches the paging system: a byte stream, opened afresh after every loss.
 *
 * - TCP: the usual path. The paging system's serial ESPA port sits behind a serial device server
 *   (Moxa NPort, Lantronix, Digi; or the DECT system's own LAN ESPA port) in "TCP server" / raw
 *   socket mode; the device server holds baud rate and parity.
 * - Serial: a local port (/dev/ttyUSB0, /dev/ttyS0) opened as a file. Node has no portable way to
 *   set line parameters without a native module, so baud rate, parity and raw mode are set outside
 *   the gateway with stty (see docs/channels.md), e.g. ESPA's 7 data bits, even parity, 1 stop bit
 *   (ESPA 4.4.4 §2.1) at 9600 baud: `stty -F /dev/ttyUSB0 9600 cs7 parenb -parodd -cstopb raw -echo`.
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { connect } from "node:net";
import { Duplex } from "node:stream";

export interface EspaTransport {
  /** Open a fresh stream; rejects when the far end cannot be reached. */
  open(): Promise<Duplex>;
  /** For logs and health details: "tcp 10.0.0.5:4001", "serial /dev/ttyUSB0". */
  readonly description: string;
}

export function tcpTransport(o: { host: string; port: number; connectTimeoutMs: number }): EspaTransport {
  return {
    description: `tcp ${o.host}:${o.port}`,
    open: () =>
      new Promise<Duplex>((resolve, reject) => {
        const socket = connect({ host: o.host, port: o.port, noDelay: true });
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error(`connect timeout after ${o.connectTimeoutMs} ms`));
        }, o.connectTimeoutMs);
        socket.once("connect", () => {
          clearTimeout(timer);
          socket.removeListener("error", reject);
          // A device server that loses power sends no FIN: keepalive lets the kernel notice in
          // the background, while the link's own polls notice sooner.
          socket.setKeepAlive(true, 10_000);
          resolve(socket);
        });
        socket.once("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
      }),
  };
}

export function serialTransport(o: { path: string }): EspaTransport {
  return {
    description: `serial ${o.path}`,
    open: async () => {
      // O_NOCTTY: a serial port must never become the gateway's controlling terminal.
      const fh = await open(o.path, constants.O_RDWR | constants.O_NOCTTY);
      const readable = fh.createReadStream({ autoClose: false });
      const writable = fh.createWriteStream({ autoClose: false });
      const stream = Duplex.from({ readable, writable });
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        readable.destroy();
        writable.destroy();
        fh.close().catch(() => undefined);
      };
      stream.once("close", close);
      readable.once("end", () => stream.destroy());
      readable.once("error", (err) => stream.destroy(err));
      return stream;
    },
  };
}
