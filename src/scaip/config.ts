/**
 * The top-level `scaip:` configuration section: the SCAIP receiver (SIP MESSAGE over UDP and TCP,
 * docs/scaip.md). Off by default.
 */
import { z } from "zod";

const Port = z.number().int().min(0).max(65535);
const SipListener = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().default("0.0.0.0"),
  port: Port.default(5060),
});

export const ScaipConfig = z.strictObject({
  enabled: z.boolean().default(false),
  udp: SipListener.prefault({}),
  tcp: SipListener.prefault({}),
  /**
   * SIP over TLS (RFC 3261 §26.2, port 5061) with mqtt.tls's certificate, key and minVersion; off by
   * default. Under tlsOnly it is the only SCAIP listener: udp and tcp are not opened.
   */
  tls: z
    .strictObject({
      enabled: z.boolean().default(false),
      host: z.string().default("0.0.0.0"),
      port: Port.default(5061),
    })
    .prefault({}),
  /** The digest realm units are configured with (RFC 3261 §22.1). */
  realm: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^"\\]+$/, "no quotes or backslashes")
    .default("ata-gateway"),
  /** A challenge's nonce is fresh this long; after it the unit is asked again with stale=true. */
  nonceTtlSec: z.number().int().min(10).max(86_400).default(300),
  /**
   * Digest credentials of controllers registered outside the configuration (`ata devices add`, the
   * HTTP API): HA1 = MD5(controller id ":" realm ":" password), hex, as in an htdigest file. Controllers
   * in the configuration's `devices` with a SCAIP profile get theirs from their `secret`.
   */
  credentials: z
    .array(
      z.strictObject({
        controller: z.string().min(1).max(64),
        ha1: z.string().regex(/^[0-9a-f]{32}$/, "32 lowercase hex digits"),
      }),
    )
    .default([]),
  /** SCAIP requests are a few hundred bytes; larger bodies are refused with 413. */
  maxBodyBytes: z.number().int().min(512).max(65_536).default(4096),
  maxHeaderBytes: z.number().int().min(1024).max(65_536).default(8192),
  maxHeaders: z.number().int().min(8).max(256).default(64),
  /** TCP connections silent this long are closed (units reconnect for their next message). */
  tcpIdleSec: z.number().int().min(5).max(3600).default(300),
  /** Open TCP connections; past it new ones are closed at once. */
  maxConnections: z.number().int().min(1).max(100_000).default(2000),
});
export type ScaipConfig = z.output<typeof ScaipConfig>;

/** Cross-checks with the rest of the configuration, each with its path. */
export function scaipProblems(
  scaip: ScaipConfig,
  tlsOnly: boolean,
  mqttTls: { certFile?: string | undefined; keyFile?: string | undefined },
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  if (!scaip.enabled) return problems;
  if (tlsOnly && !scaip.tls.enabled)
    problems.push({
      path: ["scaip", "tls", "enabled"],
      message: "tlsOnly opens no plain SIP listener: SCAIP needs scaip.tls.enabled (or turn scaip off)",
    });
  if (scaip.tls.enabled && !(mqttTls.certFile && mqttTls.keyFile))
    problems.push({
      path: ["scaip", "tls", "enabled"],
      message: "SIP over TLS uses mqtt.tls's certFile and keyFile; set them",
    });
  if (!scaip.udp.enabled && !scaip.tcp.enabled && !scaip.tls.enabled)
    problems.push({
      path: ["scaip", "enabled"],
      message: "SCAIP is enabled but none of udp, tcp and tls is",
    });
  const seen = new Set<string>();
  scaip.credentials.forEach((c, i) => {
    if (seen.has(c.controller))
      problems.push({
        path: ["scaip", "credentials", i, "controller"],
        message: `duplicate controller "${c.controller}"`,
      });
    seen.add(c.controller);
  });
  return problems;
}
