/**
 * End to end: a fall published over MQTT becomes a page at a paging-system simulator over real TCP,
 * with the receipt in the alert's audit; a paging system that goes away shows on /readyz.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PagingOptions } from "../../src/alerts/channels/paging.js";
import { deviceTopic } from "../../src/broker/topics.js";
import { type EspaPager, startPager } from "../helpers/espa-pager.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const DEVICE = deviceIdFor("ata/native");

describe("paging in the gateway", () => {
  let t: TestGateway;
  let sim: EspaPager;
  let device: MqttClient;

  beforeAll(async () => {
    sim = await startPager();
    t = await startGateway({
      gatewayOptions: {
        paging: PagingOptions.parse({
          transport: { kind: "tcp", host: "127.0.0.1", port: sim.port },
          responseTimeoutMs: 300,
          pollIntervalMs: 200,
          reconnectMinMs: 50,
          reconnectMaxMs: 200,
          addresses: [
            { call: "2301", name: "Unit 1 handset", site: "home-a", units: ["unit-1"] },
            { call: "2901", name: "Home B handset", site: "home-b" },
          ],
        }),
      },
    });
    device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
  });

  afterAll(async () => {
    device?.end(true);
    await t?.stop();
    await sim?.stop();
  });

  const history = async (id: string) =>
    (await api(t.httpUrl, "GET", `/api/v1/alerts/${id}`)).body.history as {
      action: string;
      reason: string | null;
    }[];

  it("a fall published over MQTT pages the unit's handset; the audit has the paging system's receipt, and no person is recorded as having it", async () => {
    await eventually(() => t.gateway.channels.get("paging")?.health().ok);
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "pg-1", type: "fall.detected", data: {} }),
    );
    const call = (await eventually(() => sim.calls[0], 5000))!;
    expect(call.address).toBe("2301");
    expect(call.text).toMatch(/^!!! .*r1.* - Unit 1$/);
    expect(call.text).toContain("R-0001");
    expect(sim.calls.some((c) => c.address === "2901")).toBe(false);
    const alert = (await api(t.httpUrl, "GET", "/api/v1/alerts?type=fall")).body.alerts[0] as { id: string };
    const h = (await eventually(async () => {
      const x = await history(alert.id);
      return x.some((e) => e.action === "delivered") ? x : null;
    }))!;
    const receipt = h.find((e) => e.action === "delivered")!;
    expect(receipt.reason).toMatch(/acknowledged by paging system/);
    expect(h.some((e) => e.action === "notified" && /DECT 2301/.test(e.reason ?? ""))).toBe(true);
    // A receipt from a system: nobody is named as having it, and nobody has taken the alert.
    const view = (await api(t.httpUrl, "GET", `/api/v1/alerts/${alert.id}`)).body.alert;
    expect(view.deliveredTo).toEqual([]);
    expect(view.state).toBe("raised");
  });

  it("a paging system that goes away shows on /readyz, the ladder skips paging at once, and it is healthy again when the system returns", async () => {
    const paging = () => t.gateway.channels.get("paging")!.health().ok;
    await eventually(paging);
    await sim.stop();
    await eventually(() => !paging(), 2000);
    const ready = (await api(t.httpUrl, "GET", "/readyz")).body as {
      checks: { name: string; detail?: Record<string, { ok: boolean; detail?: string }> }[];
    };
    const paged = ready.checks.find((c) => c.name === "channels")!.detail!.paging!;
    expect(paged.ok).toBe(false);
    expect(paged.detail).toMatch(/paging link \(tcp 127\.0\.0\.1:\d+\)/);
    // A pendant call now: the ladder does not wait on the dead paging link, it moves on at once.
    const before = sim.calls.length;
    await publish(
      device,
      deviceTopic(DEVICE, "events"),
      JSON.stringify({ eventId: "pg-2", type: "call.manual", data: {} }),
    );
    const call = (await api(t.httpUrl, "GET", "/api/v1/alerts?type=call")).body.alerts[0] as { id: string };
    const h = (await eventually(async () => {
      const x = await history(call.id);
      return x.some((e) => e.reason === "no recipient reachable at level 0") ? x : null;
    }))!;
    expect(h.some((e) => e.action === "notified")).toBe(false);
    expect(sim.calls.length).toBe(before);
    await sim.restart();
    await eventually(paging, 3000);
  });
});
