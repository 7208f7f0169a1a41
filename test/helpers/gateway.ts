/**
 * Starts a real gateway in this process on free ports with a temporary data directory, and real
 * MQTT clients against it (TCP, TCP_NODELAY on).
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { PROFILES } from "../../devices/index.js";
import { validateConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { Gateway, type GatewayOptions } from "../../src/gateway.js";
import { silentLogger } from "../../src/log.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** A small site: two units, residents, one device of each profile with a known secret. */
export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): Config {
  const raw = {
    dataDir,
    log: { level: "silent" },
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { host: "127.0.0.1", port: 0 }, maxPayloadBytes: 4096 },
    http: { host: "127.0.0.1", port: 0, adminToken: ADMIN_TOKEN },
    sites: [
      {
        id: "home-a",
        name: "Home A",
        timeZone: "Europe/Copenhagen",
        units: [
          { id: "unit-1", name: "Unit 1", rooms: ["r1", "r2", "r3"] },
          { id: "unit-2", name: "Unit 2", rooms: ["r4", "r5"] },
        ],
      },
      { id: "home-b", name: "Home B", units: [{ id: "unit-9", name: "Unit 9", rooms: ["r9"] }] },
    ],
    residents: [
      { ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1", flags: ["fall-risk"] },
      { ref: "R-0002", site: "home-a", unit: "unit-1", room: "r2", flags: [] },
      { ref: "R-0009", site: "home-b", unit: "unit-9", room: "r9", flags: ["fall-risk"] },
    ],
    devices: PROFILES.map((p, i) => ({
      id: deviceIdFor(p.id),
      profile: p.id,
      secret: `secret-${i}-0123456789`,
      site: "home-a",
      unit: "unit-1",
      room: "r1",
      resident: "R-0001",
    })),
    ...overrides,
  };
  return validateConfig(raw, "test", new Set(PROFILES.map((p) => p.id)));
}

/** The test device id for a profile: `t-<vendor>-<model>`. */
export function deviceIdFor(profileId: string): string {
  return `t-${profileId.replace(/[^a-z0-9]+/g, "-")}`;
}
export function secretFor(profileId: string): string {
  return `secret-${PROFILES.findIndex((p) => p.id === profileId)}-0123456789`;
}

export interface TestGateway {
  gateway: Gateway;
  dir: string;
  /** The plain MQTT TCP port; 0 when there is none (tlsOnly). */
  mqttPort: number;
  /** http:// or, with http.tls, https:// */
  httpUrl: string;
  stop(): Promise<void>;
}

export async function startGateway(
  opts: {
    dir?: string;
    overrides?: Record<string, unknown>;
    keepDir?: boolean;
    /** Gateway options beyond the configuration (a push agent for the local push service, say). */
    gatewayOptions?: Partial<Omit<GatewayOptions, "config" | "log">>;
  } = {},
): Promise<TestGateway> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "ata-test-"));
  const config = testConfig(dir, opts.overrides);
  const gateway = new Gateway({ ...opts.gatewayOptions, config, log: silentLogger(), defaultMetrics: false });
  await gateway.start();
  return {
    gateway,
    dir,
    mqttPort: gateway.broker.addresses.find((a) => a.name === "tcp")?.port ?? 0,
    httpUrl: `${config.http.tls ? "https" : "http"}://127.0.0.1:${gateway.http.port}`,
    stop: async () => {
      await gateway.stop();
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An mqtt.js client with Nagle off, connected (or rejected) before it resolves. */
export function connectDevice(
  port: number,
  deviceId: string,
  secret: string,
  extra: IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: "127.0.0.1",
      port,
      clientId: deviceId,
      username: deviceId,
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...extra,
    });
    noDelay(client);
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
}

export function noDelay(client: MqttClient): void {
  const set = () => (client.stream as unknown as Socket | undefined)?.setNoDelay?.(true);
  set();
  client.on("connect", set);
}

export function publish(
  client: MqttClient,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1 = 1,
): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve()));
  });
}

export async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = ADMIN_TOKEN,
  // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies by path; the API's zod schemas are tested elsewhere
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

/** Poll until `fn` returns a truthy value or the time runs out (for effects across processes). */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
