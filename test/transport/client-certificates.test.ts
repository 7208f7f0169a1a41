/**
 * Mutual TLS (mqtt.tls.clientCertificates: required): a device needs a certificate from the
 * configured CA naming it, and its id and secret; either alone does not connect.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";
import { makeCertificates, makeClientCertificate, type TestCertificates } from "../helpers/tls.js";

const NATIVE = deviceIdFor("ata/native");
const LIFT = deviceIdFor("generic/ceiling-lift");

describe("client certificates", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-mtls-"));
  let certs: TestCertificates;
  let t: TestGateway;
  let port = 0;

  beforeAll(async () => {
    certs = makeCertificates(dir);
    t = await startGateway({
      overrides: {
        mqtt: {
          tcp: { host: "127.0.0.1", port: 0 },
          ws: { enabled: false, port: 0 },
          tls: {
            enabled: true,
            host: "127.0.0.1",
            port: 0,
            certFile: certs.certFile,
            keyFile: certs.keyFile,
            caFile: certs.caFile,
            clientCertificates: "required",
          },
        },
      },
    });
    port = t.gateway.broker.addresses.find((a) => a.name === "tls")!.port;
  });
  afterAll(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** 0 when connected (then closed), the CONNACK code when refused, or the TLS error. */
  function attempt(id: string, secret: string, extra: Partial<IClientOptions>): Promise<number | string> {
    return new Promise((resolve) => {
      const c = mqtt.connect({
        protocol: "mqtts",
        host: "127.0.0.1",
        port,
        ca: certs.ca,
        rejectUnauthorized: true,
        clientId: id,
        username: id,
        password: secret,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...extra,
      });
      c.once("connect", () => {
        c.end(true);
        resolve(0);
      });
      c.once("error", (err) => {
        c.end(true);
        resolve((err as { code?: number | string }).code ?? err.message);
      });
      c.once("close", () => resolve("closed"));
    });
  }

  it("connects a device with its own certificate and secret", async () => {
    const own = makeClientCertificate(dir, NATIVE);
    expect(await attempt(NATIVE, secretFor("ata/native"), own)).toBe(0);
  });

  it("refuses a TLS client without a certificate in the handshake, whatever its secret", async () => {
    const before = t.gateway.registry.authStats.verifications;
    const outcome = await attempt(NATIVE, secretFor("ata/native"), {});
    // The handshake fails (a TLS alert or a closed socket), before any CONNACK.
    expect(typeof outcome).toBe("string");
    // The secret was never checked: nothing reached CONNECT.
    expect(t.gateway.registry.authStats.verifications).toBe(before);
  });

  it("refuses another device's certificate with CONNACK 5, even with the right secret", async () => {
    const other = makeClientCertificate(dir, LIFT);
    expect(await attempt(NATIVE, secretFor("ata/native"), other)).toBe(5);
    t.gateway.security.flush(true);
    const [row] = t.gateway.security.list({ kinds: ["connect_refused"], limit: 5 });
    expect(row).toMatchObject({ subject: NATIVE, detail: { reason: "certificate_mismatch" } });
  });

  it("still needs the secret with the right certificate", async () => {
    const own = makeClientCertificate(dir, NATIVE);
    expect(await attempt(NATIVE, "wrong-secret-0123456789", own)).toBe(4);
  });

  it("is a configuration problem without the CA", async () => {
    await expect(
      startGateway({
        overrides: {
          mqtt: { tls: { enabled: true, certFile: "x", keyFile: "y", clientCertificates: "required" } },
        },
      }),
    ).rejects.toThrow(/mqtt\.tls\.caFile: client certificates need caFile/);
  });
});
