/**
 * TLS for transport tests: a private CA and a server certificate it signed for 127.0.0.1 and
 * localhost, made with the openssl command line (as an operator would), so tests verify the
 * gateway's certificate the way a device does (against the CA, rejectUnauthorized on); and clients
 * that say which TLS version they got.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { type ConnectionOptions, connect, type TLSSocket } from "node:tls";

export interface TestCertificates {
  /** The CA's certificate (PEM), for clients' `ca`. */
  ca: Buffer;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function makeCertificates(dir: string): TestCertificates {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  // P-256 keys: generated in milliseconds, and every TLS version a test tries can use them.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-days",
    "2",
    "-subj",
    "/CN=ATA test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    path("ca.key"),
    "-out",
    path("ca.pem"),
  );
  openssl("req", ...ec, "-subj", "/CN=127.0.0.1", "-keyout", path("server.key"), "-out", path("server.csr"));
  writeFileSync(
    path("server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    path("server.csr"),
    "-CA",
    path("ca.pem"),
    "-CAkey",
    path("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    path("server.ext"),
    "-out",
    path("server.pem"),
  );
  return {
    ca: readFileSync(path("ca.pem")),
    caFile: path("ca.pem"),
    certFile: path("server.pem"),
    keyFile: path("server.key"),
  };
}

/** A device's client certificate, signed by the test CA, with this subject CN (mutual TLS). */
export function makeClientCertificate(dir: string, cn: string): { cert: Buffer; key: Buffer } {
  const path = (name: string) => join(dir, `client-${cn}.${name}`);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    `/CN=${cn}`,
    "-keyout",
    path("key"),
    "-out",
    path("csr"),
  );
  writeFileSync(path("ext"), "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  openssl(
    "x509",
    "-req",
    "-in",
    path("csr"),
    "-CA",
    join(dir, "ca.pem"),
    "-CAkey",
    join(dir, "ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    path("ext"),
    "-out",
    path("pem"),
  );
  return { cert: readFileSync(path("pem")), key: readFileSync(path("key")) };
}

/**
 * A client that offers TLS 1.1 at most. Node's client offers nothing below TLS 1.2 unless asked,
 * and OpenSSL 3 allows TLS 1.0/1.1 (SHA-1 handshake signatures) only at security level 0.
 */
export const TLS_1_1_ONLY = {
  minVersion: "TLSv1",
  maxVersion: "TLSv1.1",
  ciphers: "DEFAULT@SECLEVEL=0",
} as const satisfies ConnectionOptions;

/** The TLS version limits mqtt.js hands to node's tls.connect, which its option type leaves out. */
export type TlsLimits = Pick<ConnectionOptions, "minVersion" | "maxVersion" | "ciphers">;

/** A TLS handshake with 127.0.0.1:port: the version agreed, or the handshake's error. */
export function handshake(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ...options }, () => {
      const protocol = socket.getProtocol();
      socket.destroy();
      resolve(protocol ?? "unknown");
    });
    socket.once("error", reject);
  });
}

/** GET over HTTPS with these TLS options and no pooled connection: status, body, TLS version. */
export function httpsGet(
  url: string,
  options: ConnectionOptions & { headers?: Record<string, string> },
): Promise<{ status: number; body: string; protocol: string | null; contentType: string }> {
  return new Promise((resolve, reject) => {
    request(url, { ...options, agent: false }, (res) => {
      const protocol = (res.socket as TLSSocket).getProtocol();
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          protocol,
          contentType: String(res.headers["content-type"] ?? ""),
        }),
      );
    })
      .on("error", reject)
      .end();
  });
}
