/**
 * LoRaWAN bridges against a real mosquitto standing in for the network servers' brokers: uplinks
 * built from ChirpStack v4's and The Things Stack v3's published formats around Milesight's payload
 * examples are published with mqtt.js, and the gateway's event log, alerts, dead letters and /readyz
 * are read back.
 */
import { rmSync } from "node:fs";
import type { MqttClient } from "mqtt";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, eventually, noDelay, publish, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type Mosquitto, startMosquitto } from "../helpers/mosquitto.js";

const RADAR = "24e124713d070131";
const DOOR = "24e124141c147125";
const STRANGER = "a84041000181c0de";
const APP = "17c82e96-be03-4f38-aef3-f83d48582d97";

let broker: Mosquitto;
let gw: TestGateway;
let ns: MqttClient;

function chirpstackUp(devEui: string, dedup: string, fCnt: number, hex: string): string {
  return JSON.stringify({
    deduplicationId: dedup,
    time: new Date().toISOString(),
    deviceInfo: { applicationId: APP, applicationName: "care", deviceName: "radar", devEui },
    devAddr: "01fa3b2c",
    fCnt,
    fPort: 85,
    data: Buffer.from(hex, "hex").toString("base64"),
    rxInfo: [{ gatewayId: "24e124fffef0a1b2", rssi: -87, snr: 7.5 }],
  });
}
const csTopic = (devEui: string) => `application/${APP}/device/${devEui}/event/up`;

function ttsUp(devEui: string, corr: string, fCnt: number, hex: string): string {
  return JSON.stringify({
    end_device_ids: {
      device_id: "door-room-12",
      application_ids: { application_id: "care-doors" },
      dev_eui: devEui.toUpperCase(),
    },
    correlation_ids: [`as:up:${corr}`],
    received_at: new Date().toISOString(),
    uplink_message: {
      f_port: 85,
      f_cnt: fCnt,
      frm_payload: Buffer.from(hex, "hex").toString("base64"),
      rx_metadata: [{ rssi: -104 }],
    },
  });
}

const events = (deviceId: string) =>
  gw.gateway.db
    .prepare("SELECT event_id, type, phase FROM events WHERE device_id = ? ORDER BY seq")
    .all(deviceId) as { event_id: string; type: string; phase: string }[];
const eventsOf = (deviceId: string, type: string) => events(deviceId).filter((e) => e.type === type);
const deadLetters = () =>
  gw.gateway.db.prepare("SELECT device_id, topic, code, reason FROM dead_letters ORDER BY id").all() as {
    device_id: string | null;
    topic: string;
    code: string;
    reason: string;
  }[];
const duplicates = (deviceId: string) =>
  (
    gw.gateway.db.prepare("SELECT event_id FROM duplicates WHERE device_id = ?").all(deviceId) as {
      event_id: string;
    }[]
  ).map((d) => d.event_id);
const metricsText = () => gw.gateway.metrics.registry.metrics();
const alerts = (deviceId: string) =>
  gw.gateway.db.prepare("SELECT type, priority, open FROM alerts WHERE device_id = ?").all(deviceId) as {
    type: string;
    priority: string;
    open: number;
  }[];
async function bridgeCheck(name: string) {
  const r = await api(gw.httpUrl, "GET", "/readyz", undefined, null);
  return r.body.checks.find((c: { name: string }) => c.name === `bridge:${name}`);
}

const device = (id: string, profile: string) => ({
  id,
  profile,
  secret: "lorawan-unused-secret",
  site: "home-a",
  unit: "unit-1",
  room: "r1",
  resident: "R-0001",
});
const gatewayOptions = () => ({
  keepDir: true,
  overrides: {
    devices: [device(RADAR, "milesight/vs373-lorawan"), device(DOOR, "milesight/ws301")],
    bridges: {
      lorawan: [
        { name: "chirpstack", kind: "chirpstack", url: broker.url, reconnect: { minMs: 100, maxMs: 400 } },
        {
          name: "tts",
          kind: "tts",
          url: broker.url,
          applications: ["care-doors@home"],
          reconnect: { minMs: 100, maxMs: 400 },
        },
      ],
    },
  },
});

beforeAll(async () => {
  broker = await startMosquitto();
  gw = await startGateway(gatewayOptions());
  await eventually(async () => (await bridgeCheck("chirpstack"))?.detail.connected, 5000);
  await eventually(async () => (await bridgeCheck("tts"))?.detail.connected, 5000);
  ns = mqtt.connect(broker.url, { clientId: "network-server", reconnectPeriod: 200, protocolVersion: 4 });
  noDelay(ns);
  await new Promise((r) => ns.once("connect", r));
}, 20_000);

afterAll(async () => {
  ns?.end(true);
  await gw?.stop();
  if (gw) rmSync(gw.dir, { recursive: true, force: true });
  await broker?.close();
});

describe("LoRaWAN through ChirpStack v4 and The Things Stack v3", () => {
  it("a VS373 fall uplink through ChirpStack becomes fall.detected and a high alert", async () => {
    await publish(
      ns,
      csTopic(RADAR),
      chirpstackUp(RADAR, "3ac7e3c4-4401-4b8d-9386-a5c902f9202d", 10, "06fb0a01000100"),
    );
    const [fall] = (await eventually(() => {
      const found = eventsOf(RADAR, "fall.detected");
      return found.length ? found : null;
    }))!;
    expect(fall!.event_id).toBe("lw:3ac7e3c4-4401-4b8d-9386-a5c902f9202d");
    // The uplink is a sign of life: the device came online through the bridge.
    expect(eventsOf(RADAR, "device.online")).toHaveLength(1);
    const alert = await eventually(() => alerts(RADAR).find((a) => a.type === "fall"));
    expect(alert).toMatchObject({ priority: "high", open: 1 });
  });

  it("a redelivered uplink (same deduplicationId) is one event", async () => {
    const up = chirpstackUp(RADAR, "6e0b3a53-61a3-4c0c-a2c6-1b0bcd3a1e40", 11, "06fb0b00030102");
    await publish(ns, csTopic(RADAR), up);
    await publish(ns, csTopic(RADAR), up);
    await eventually(() => eventsOf(RADAR, "bed.exit").length === 1);
    // The second copy was handled too (recorded as a duplicate), not merely not yet arrived.
    await eventually(() => duplicates(RADAR).includes("lw:6e0b3a53-61a3-4c0c-a2c6-1b0bcd3a1e40"));
    expect(eventsOf(RADAR, "bed.exit")).toHaveLength(1);
  });

  it("a WS301 tamper through The Things Stack raises the tamper alert; open/close are phases of door.open", async () => {
    await publish(
      ns,
      "v3/care-doors@home/devices/door-room-12/up",
      ttsUp(DOOR, "01JHF9A0000000000000000001", 7, "017564030001040001"),
    );
    await eventually(() => alerts(DOOR).some((a) => a.type === "tamper" && a.priority === "medium"));
    expect(eventsOf(DOOR, "door.open").map((e) => e.phase)).toEqual(["start"]);
    await publish(
      ns,
      "v3/care-doors@home/devices/door-room-12/up",
      ttsUp(DOOR, "01JHF9A0000000000000000002", 8, "030000"),
    );
    await eventually(() => eventsOf(DOOR, "door.open").length === 2);
    expect(eventsOf(DOOR, "door.open").map((e) => e.phase)).toEqual(["start", "end"]);
    // Another application's uplinks are not subscribed to.
    await publish(
      ns,
      "v3/other-app@home/devices/door-room-12/up",
      ttsUp(DOOR, "01JHF9A0000000000000000003", 9, "030001"),
    );
    // At QoS 0, as The Things Stack's MQTT server delivers (it offers no QoS 1).
    await publish(
      ns,
      "v3/care-doors@home/devices/door-room-12/up",
      ttsUp(DOOR, "01JHF9A0000000000000000004", 10, "030000"),
      0,
    );
    await eventually(() => events(DOOR).some((e) => e.event_id === "lw:as:up:01JHF9A0000000000000000004"));
    expect(events(DOOR).some((e) => e.event_id.includes("0000000003"))).toBe(false);
  });

  it("undecodable uplinks are dead letters with reasons; an unregistered DevEUI is one dead letter, then counted", async () => {
    await publish(
      ns,
      csTopic(RADAR),
      chirpstackUp(RADAR, "f1f2f3f4-0000-4000-8000-000000000100", 12, "20ce0050876711000100"),
    );
    await publish(ns, csTopic(RADAR), "not json at all");
    await publish(
      ns,
      csTopic(STRANGER),
      chirpstackUp(STRANGER, "0b0b0b0b-0000-4000-8000-000000000001", 1, "0175640300"),
    );
    await publish(
      ns,
      csTopic(STRANGER),
      chirpstackUp(STRANGER, "0b0b0b0b-0000-4000-8000-000000000002", 2, "0175640300"),
    );
    await publish(ns, "v3/care-doors@home/devices/x/up", '{"end_device_ids": {}}');
    const letters = (await eventually(() => {
      const d = deadLetters();
      return d.some((x) => x.device_id === STRANGER) && d.some((x) => x.device_id === null) ? d : null;
    }))!;
    expect(letters.find((d) => d.device_id === RADAR && d.code === "unsupported")?.reason).toMatch(
      /history record/,
    );
    expect(letters.find((d) => d.device_id === RADAR && d.code === "bad_json")).toBeDefined();
    const stranger = letters.filter((d) => d.device_id === STRANGER);
    expect(stranger).toHaveLength(1);
    expect(stranger[0]).toMatchObject({ code: "unknown_device", topic: csTopic(STRANGER) });
    expect(letters.find((d) => d.device_id === null)?.reason).toMatch(/no DevEUI/);
    await eventually(async () =>
      /ata_bridge_unknown_device_messages_total\{bridge="chirpstack"\} 2/.test(await metricsText()),
    );
    expect(deadLetters().filter((d) => d.device_id === STRANGER)).toHaveLength(1);
  });

  it("survives its broker going away: /readyz shows it, it reconnects, and a replay after that is no duplicate", async () => {
    const before = eventsOf(RADAR, "fall.ended").length;
    const up = chirpstackUp(RADAR, "a1d2b3c4-0000-4000-8000-00000000000f", 20, "06fb0a01000200");
    await publish(ns, csTopic(RADAR), up);
    await eventually(() => eventsOf(RADAR, "fall.ended").length === before + 1);

    await broker.stop();
    const down = await eventually(async () => {
      const c = await bridgeCheck("chirpstack");
      return c && !c.detail.connected ? c : null;
    });
    // The gateway stays ready: its own devices still work while a network server is away.
    expect(down.ok).toBe(true);
    expect(down.detail.lastMessageAt).not.toBeNull();

    await broker.restart();
    await eventually(async () => (await bridgeCheck("chirpstack"))?.detail.connected, 10_000);
    await eventually(() => ns.connected, 5000);
    // The network server replays what it is unsure was delivered, then a new uplink follows.
    await publish(ns, csTopic(RADAR), up);
    await publish(
      ns,
      csTopic(RADAR),
      chirpstackUp(RADAR, "a1d2b3c4-0000-4000-8000-000000000010", 21, "06fb0c00010100"),
    );
    await eventually(() => eventsOf(RADAR, "presence.motionless").length === 1);
    expect(eventsOf(RADAR, "fall.ended")).toHaveLength(before + 1);
    const check = await bridgeCheck("chirpstack");
    expect(check.detail.reconnects).toBeGreaterThanOrEqual(1);
    expect(check.detail.url).toBe(`${broker.url}`.replace(/\/?$/, ""));
  }, 30_000);

  it("uplinks sent while the gateway restarts wait in its broker session and arrive after it", async () => {
    const dir = gw.dir;
    await gw.gateway.stop();
    // The gateway is gone; the network server goes on publishing at QoS 1.
    await publish(
      ns,
      csTopic(RADAR),
      chirpstackUp(RADAR, "c0c0c0c0-0000-4000-8000-000000000001", 30, "06fb0d00010100"),
    );
    await publish(
      ns,
      csTopic(RADAR),
      chirpstackUp(RADAR, "c0c0c0c0-0000-4000-8000-000000000002", 31, "06fb0d00010200"),
    );
    gw = await startGateway({ ...gatewayOptions(), dir });
    await eventually(() => eventsOf(RADAR, "presence.motionless").length === 3, 10_000);
    expect(eventsOf(RADAR, "presence.motionless").map((e) => e.phase)).toEqual(["start", "start", "end"]);
  }, 20_000);
});
