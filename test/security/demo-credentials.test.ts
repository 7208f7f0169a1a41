/**
 * No known credentials outside the demo: the demo's devices and staff tokens exist only while demo
 * mode is on, and a gateway in demo mode that other machines can reach says so. Real gateways on
 * one data directory, restarted with demo mode on and off; real MQTT and HTTP.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { shippedDemoSeeds } from "../../src/security/demo-credentials.js";
import { connectDevice, deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";

const DEMO_DEVICE = {
  id: "demo-radar-x",
  profile: "vayyar/care",
  secret: "demo-secret-radar-x",
  site: "home-a",
  unit: "unit-1",
  room: "r2",
};
const DEMO_STAFF = {
  id: "demo-anna",
  name: "Anna (demo)",
  role: "staff",
  sites: ["home-a"],
  token: "demo-staff-token-0123456789",
};
const demo = (enabled: boolean, extra: Record<string, unknown> = {}) => ({
  demo: {
    enabled,
    historyDays: 0,
    liveBoost: 1,
    staffBot: false,
    devices: [DEMO_DEVICE],
    staff: [DEMO_STAFF],
    ...extra,
  },
});

const dir = mkdtempSync(join(tmpdir(), "ata-demo-creds-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function connack(t: TestGateway, id: string, secret: string): Promise<number> {
  try {
    const c: MqttClient = await connectDevice(t.mqttPort, id, secret);
    c.end(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}
const me = async (t: TestGateway, token: string) =>
  (await fetch(`${t.httpUrl}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status;

describe("demo credentials", () => {
  it("exist while demo mode is on, are disabled and revoked when it is off, and come back with it", async () => {
    let t = await startGateway({ dir, keepDir: true, overrides: demo(true) });
    try {
      expect(await connack(t, DEMO_DEVICE.id, DEMO_DEVICE.secret)).toBe(0);
      expect(await me(t, DEMO_STAFF.token)).toBe(200);
    } finally {
      await t.stop();
    }

    t = await startGateway({ dir, keepDir: true, overrides: demo(false) });
    try {
      // CONNACK 5: the secret is right and the device is disabled.
      expect(await connack(t, DEMO_DEVICE.id, DEMO_DEVICE.secret)).toBe(5);
      expect(await me(t, DEMO_STAFF.token)).toBe(401);
      // The operator's own devices are untouched.
      expect(await connack(t, deviceIdFor("ata/native"), secretFor("ata/native"))).toBe(0);
      const [row] = t.gateway.security.list({ kinds: ["demo_credentials_disabled"], limit: 5 });
      expect(row?.detail).toEqual({ devices: [DEMO_DEVICE.id], tokens: [DEMO_STAFF.id] });
      expect(JSON.stringify(row)).not.toContain(DEMO_STAFF.token);
    } finally {
      await t.stop();
    }

    t = await startGateway({ dir, keepDir: true, overrides: demo(true) });
    try {
      expect(await connack(t, DEMO_DEVICE.id, DEMO_DEVICE.secret)).toBe(0);
      expect(await me(t, DEMO_STAFF.token)).toBe(200);
    } finally {
      await t.stop();
    }
  });

  it("with demo mode off, disables a device that still has a secret this project ships, not one whose secret was changed", async () => {
    const shipped = shippedDemoSeeds();
    expect(shipped.devices.length).toBeGreaterThan(5);
    expect(shipped.staff.length).toBeGreaterThan(2);
    const [a, b] = shipped.devices;
    const own = mkdtempSync(join(tmpdir(), "ata-demo-shipped-"));
    try {
      // An install in demo mode that listed the demo's devices among its own; one secret is changed.
      const seeded = (d: { id: string; secret: string }) => ({
        id: d.id,
        profile: "ata/native",
        secret: d.secret,
        site: "home-a",
        unit: "unit-1",
      });
      let t = await startGateway({
        dir: own,
        keepDir: true,
        overrides: { devices: [seeded(a!), seeded(b!)], ...demo(true, { devices: [], staff: [] }) },
      });
      const rotated = t.gateway.registry.rotateSecret(b!.id);
      await t.stop();
      t = await startGateway({ dir: own, keepDir: true, overrides: { demo: { enabled: false } } });
      try {
        expect(t.gateway.registry.get(a!.id)?.enabled).toBe(false);
        expect(t.gateway.registry.get(b!.id)?.enabled).toBe(true);
        expect(await connack(t, b!.id, rotated)).toBe(0);
      } finally {
        await t.stop();
      }
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("says so in /readyz and for the sign-in page when the demo listens beyond loopback", async () => {
    const exposed = await startGateway({
      overrides: { ...demo(true), http: { host: "0.0.0.0", port: 0 } },
    });
    try {
      const ready = (await (await fetch(`${exposed.httpUrl}/readyz`)).json()) as { warnings: string[] };
      expect(ready.warnings.join(" ")).toMatch(/demo mode on a network address/);
      expect(await (await fetch(`${exposed.httpUrl}/api/v1/about`)).json()).toEqual({
        demo: true,
        demoExposed: true,
      });
    } finally {
      await exposed.stop();
    }
    const local = await startGateway({ overrides: demo(true) });
    try {
      const ready = (await (await fetch(`${local.httpUrl}/readyz`)).json()) as { warnings: string[] };
      expect(ready.warnings).toEqual([]);
      expect(await (await fetch(`${local.httpUrl}/api/v1/about`)).json()).toEqual({
        demo: true,
        demoExposed: false,
      });
    } finally {
      await local.stop();
    }
  });
});
