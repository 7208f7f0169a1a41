/**
 * SIP over TLS for SCAIP, with mqtt.tls's certificate: a unit that checks the receiver's certificate
 * against the site's CA sends an alarm over TLS; and the configuration refuses SCAIP under tlsOnly
 * without a TLS listener.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type TestGateway, testConfig } from "../helpers/gateway.js";
import { mrqXml, ScaipUnit } from "../helpers/scaip.js";
import { makeCertificates, type TestCertificates } from "../helpers/tls.js";

const PENDANT = "4670002001";
const SECRET = "pendant-tls-secret";
let t: TestGateway;
let certs: TestCertificates;
let certDir: string;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), "ata-scaip-tls-"));
  certs = makeCertificates(certDir);
  t = await startGateway({
    overrides: {
      mqtt: {
        tcp: { host: "127.0.0.1", port: 0 },
        ws: { host: "127.0.0.1", port: 0 },
        tls: { certFile: certs.certFile, keyFile: certs.keyFile },
      },
      scaip: {
        enabled: true,
        udp: { enabled: false },
        tcp: { enabled: false },
        tls: { enabled: true, host: "127.0.0.1", port: 0 },
        realm: "test-realm",
      },
      devices: [
        { id: PENDANT, profile: "scaip/pendant", secret: SECRET, site: "home-a", unit: "unit-1", room: "r1" },
      ],
    },
  });
});

afterAll(async () => {
  await t?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

describe("SCAIP over TLS", () => {
  it("takes an alarm over TLS from a unit that verifies the receiver's certificate", async () => {
    const scaip = t.gateway.scaip!;
    expect(scaip.udpPort()).toBeNull();
    expect(scaip.tcpPort()).toBeNull();
    const unit = await new ScaipUnit("tls", scaip.tlsPort()!, PENDANT, certs.ca).open();
    try {
      const { reply } = await unit.message({
        body: mrqXml({ ref: "T1", cid: PENDANT, dty: "3", mty: "ME", stc: "10" }),
        password: SECRET,
      });
      expect(reply.status).toBe(200);
      expect(reply.mrs).toEqual({ ref: "T1", snu: 0 });
      const row = t.gateway.db
        .prepare("SELECT type FROM events WHERE device_id = ? AND event_id LIKE 'T1.%'")
        .get(PENDANT) as { type: string } | undefined;
      expect(row?.type).toBe("call.manual");
    } finally {
      unit.close();
    }
  });

  it("under tlsOnly, SCAIP without its TLS listener is a configuration error with its path", () => {
    const dir = mkdtempSync(join(tmpdir(), "ata-scaip-cfg-"));
    try {
      expect(() => testConfig(dir, { tlsOnly: true, scaip: { enabled: true } })).toThrow(
        /scaip\.tls\.enabled/,
      );
      expect(() => testConfig(dir, { scaip: { enabled: true, tls: { enabled: true } } })).toThrow(
        /scaip\.tls\.enabled: SIP over TLS uses mqtt\.tls's certFile and keyFile/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
