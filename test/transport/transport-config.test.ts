/**
 * Transport settings: their defaults, and every combination that cannot be served safely is a
 * configuration problem with its path, all of them listed at once.
 */
import { describe, expect, it } from "vitest";
import { applyEnv, ConfigError } from "../../src/config/load.js";
import { isLoopback } from "../../src/config/schema.js";
import { ADMIN_TOKEN, testConfig } from "../helpers/gateway.js";

const FILES = { certFile: "/etc/ata/server.pem", keyFile: "/etc/ata/server.key" };
const HOSTS = { tcp: { host: "127.0.0.1", port: 0 }, ws: { host: "127.0.0.1", port: 0 } };

function problems(overrides: Record<string, unknown>): { path: string; message: string }[] {
  try {
    testConfig("/nonexistent", overrides);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("transport configuration", () => {
  it("defaults: TLS 1.2 floor, no wss, /metrics on the main port, plain listeners allowed", () => {
    const c = testConfig("/nonexistent");
    expect(c.tlsOnly).toBe(false);
    expect(c.mqtt.tls.minVersion).toBe("TLSv1.2");
    expect(c.mqtt.wss).toEqual({ enabled: false, host: "0.0.0.0", port: 8084 });
    expect(c.http.metrics).toBeUndefined();
    const withMetrics = testConfig("/nonexistent", {
      http: { port: 0, tls: FILES, metrics: {} },
    });
    expect(withMetrics.http.tls?.minVersion).toBe("TLSv1.2");
    expect(withMetrics.http.metrics).toEqual({ host: "127.0.0.1", port: 9464, tls: false });
  });

  it("tlsOnly without MQTT over TLS or HTTPS lists both missing pieces with their paths", () => {
    expect(problems({ tlsOnly: true })).toEqual([
      { path: "mqtt.tls.enabled", message: expect.stringContaining("tlsOnly closes plain MQTT") },
      { path: "http.tls", message: expect.stringContaining("tlsOnly closes plain HTTP") },
    ]);
  });

  it("tlsOnly with MQTT over TLS and HTTPS is accepted, with or without a loopback plain metrics listener", () => {
    const secure = {
      tlsOnly: true,
      mqtt: { ...HOSTS, tls: { enabled: true, ...FILES } },
      http: { port: 0, adminToken: ADMIN_TOKEN, tls: FILES },
    };
    expect(problems(secure)).toEqual([]);
    for (const host of ["127.0.0.1", "::1", "localhost"])
      expect(problems({ ...secure, http: { ...secure.http, metrics: { host } } }), host).toEqual([]);
    expect(
      problems({ ...secure, http: { ...secure.http, metrics: { host: "0.0.0.0", tls: true } } }),
    ).toEqual([]);
  });

  it("tlsOnly refuses a plain metrics listener on a non-loopback address, and the demo", () => {
    expect(
      problems({
        tlsOnly: true,
        mqtt: { ...HOSTS, tls: { enabled: true, ...FILES } },
        http: { port: 0, tls: FILES, metrics: { host: "10.0.0.5" } },
        demo: { enabled: true },
      }),
    ).toEqual([
      {
        path: "http.metrics.host",
        message: expect.stringContaining('loopback address only, not "10.0.0.5"'),
      },
      { path: "demo.enabled", message: expect.stringContaining("plain MQTT") },
    ]);
  });

  it("wss and an HTTPS metrics listener need the certificate they borrow", () => {
    expect(
      problems({ mqtt: { ...HOSTS, wss: { enabled: true } }, http: { port: 0, metrics: { tls: true } } }),
    ).toEqual([
      { path: "mqtt.wss.enabled", message: expect.stringContaining("mqtt.tls.certFile") },
      { path: "http.metrics.tls", message: expect.stringContaining("http.tls") },
    ]);
  });

  it("TLS 1.1 is not a minVersion one can choose", () => {
    const found = problems({
      mqtt: { ...HOSTS, tls: { enabled: true, ...FILES, minVersion: "TLSv1.1" } },
      http: { port: 0, tls: { ...FILES, minVersion: "TLSv1" } },
    });
    expect(found.map((p) => p.path)).toEqual(["mqtt.tls.minVersion", "http.tls.minVersion"]);
  });

  it("ATA_TLS_ONLY=true turns tlsOnly on", () => {
    expect(applyEnv({}, { ATA_TLS_ONLY: "true" })).toEqual({ tlsOnly: true });
  });

  it("loopback means 127.0.0.0/8, ::1 or localhost", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "localhost.example.org", "1270.0.0.1"])
      expect(isLoopback(h), h).toBe(false);
  });
});
