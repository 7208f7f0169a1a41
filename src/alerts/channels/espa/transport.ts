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
import { closeSync, constants, createReadStream, createWriteStream, open } from "node:fs";
import { connect } from "node:net";
import { Duplex } from "node:stream";
import { isatty, ReadStream, WriteStream } from "node:tty";

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
      // O_NOCTTY: a serial port must never become the gateway's controlling terminal. One
      // descriptor per direction, so each stream closes its own.
      const rfd = await openFd(o.path, constants.O_RDONLY | constants.O_NOCTTY);
      let wfd: number;
      try {
        wfd = await openFd(o.path, constants.O_WRONLY | constants.O_NOCTTY);
      } catch (err) {
        closeSync(rfd);
        throw err;
      }
      // A tty is read through libuv's tty handle (non-blocking, polled): a file read stream would
      // park a thread-pool thread in read(2) until the paging system next sends a byte, and keep
      // it there after the link is closed.
      const readable = isatty(rfd) ? new ReadStream(rfd) : createReadStream("", { fd: rfd });
      const writable = isatty(wfd) ? new WriteStream(wfd) : createWriteStream("", { fd: wfd });
      const stream = Duplex.from({ readable, writable });
      stream.once("close", () => {
        readable.destroy();
        writable.destroy();
      });
      readable.once("end", () => stream.destroy());
      readable.once("error", (err: Error) => stream.destroy(err));
      writable.once("error", (err: Error) => stream.destroy(err));
      return stream;
    },
  };
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}
