/**
 * The zigbee2mqtt bridge against a real mosquitto standing in for zigbee2mqtt's broker: the device
 * list, state and availability messages are published with mqtt.js in zigbee2mqtt's documented
 * shapes (zigbee2mqtt.io, "MQTT Topics and Messages" and the device pages), and the gateway's event
 * log, alerts, presence and dead letters are read back.
 */
import type { MqttClient } from "mqtt";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, eventually, noDelay, publish, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type Mosquitto, startMosquitto } from "../helpers/mosquitto.js";

const BASE = "z2m-home";
const DOOR = "0x00158d0001a2b3c4";
const RADAR = "0xa4c138f1e2d3c4b5";
const BUTTON = "0x00158d0002c3d4e5";
const LAMP = "0x000b57fffe8a9b0c";
const CALL = "0x00158d0002c3d4e6";

let broker: Mosquitto;
let gw: TestGateway;
let z2m: MqttClient;

const DEVICES = [
  { ieee_address: "0x00124b0001020304", type: "Coordinator", friendly_name: "Coordinator", definition: null },
  {
    ieee_address: DOOR,
    type: "EndDevice",
    friendly_name: "room-12/door",
    definition: { model: "MCCGQ11LM", vendor: "Aqara", description: "Door and window sensor" },
  },
  {
    ieee_address: RADAR,
    type: "Router",
    friendly_name: "room-12/radar",
    definition: {
      model: "MIR-HE200-TY_fall",
      vendor: "Tuya",
      description: "Human presence sensor with fall function",
    },
  },
  {
    ieee_address: BUTTON,
    type: "EndDevice",
    friendly_name: "room-12/button",
    // Registered here as a door sensor by mistake: zigbee2mqtt's model says otherwise.
    definition: { model: "WXKG11LM", vendor: "Aqara", description: "Wireless mini switch" },
  },
  {
    ieee_address: CALL,
    type: "EndDevice",
    friendly_name: "room-12/call",
    definition: { model: "WXKG11LM", vendor: "Aqara", description: "Wireless mini switch" },
  },
  {
    ieee_address: LAMP,
    type: "Router",
    friendly_name: "hall-lamp",
    definition: { model: "LED1545G12", vendor: "IKEA", description: "TRADFRI bulb" },
  },
];

const events = (deviceId: string) =>
  gw.gateway.db.prepare("SELECT type, phase FROM events WHERE device_id = ? ORDER BY seq").all(deviceId) as {
    type: string;
    phase: string;
  }[];
const typesOf = (deviceId: string) => events(deviceId).map((e) => e.type);
const deadLetters = (deviceId: string) =>
  gw.gateway.db
    .prepare("SELECT code, reason FROM dead_letters WHERE device_id = ? ORDER BY id")
    .all(deviceId) as {
    code: string;
    reason: string;
  }[];
const alerts = (deviceId: string) =>
  gw.gateway.db.prepare("SELECT type, priority FROM alerts WHERE device_id = ?").all(deviceId) as {
    type: string;
    priority: string;
  }[];
async function bridge() {
  const r = await api(gw.httpUrl, "GET", "/readyz", undefined, null);
  return r.body.checks.find((x: { name: string }) => x.name === "bridge:home-z2m");
}
const state = (topic: string, body: object) => publish(z2m, `${BASE}/${topic}`, JSON.stringify(body));

beforeAll(async () => {
  broker = await startMosquitto();
  z2m = mqtt.connect(broker.url, { clientId: "zigbee2mqtt", protocolVersion: 4, reconnectPeriod: 200 });
  noDelay(z2m);
  await new Promise((r) => z2m.once("connect", r));
  // zigbee2mqtt publishes its device list retained, so a bridge connecting later still gets it.
  await new Promise<void>((resolve, reject) =>
    z2m.publish(`${BASE}/bridge/devices`, JSON.stringify(DEVICES), { qos: 1, retain: true }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  const device = (id: string, profile: string) => ({
    id,
    profile,
    secret: "zigbee-unused-secret",
    site: "home-a",
    unit: "unit-1",
    room: "r1",
    resident: "R-0001",
  });
  gw = await startGateway({
    overrides: {
      devices: [
        device(DOOR, "aqara/mccgq11lm"),
        device(RADAR, "tuya/mir-he200-ty-fall"),
        device(BUTTON, "aqara/mccgq11lm"),
        device(CALL, "aqara/wxkg11lm"),
      ],
      bridges: {
        zigbee2mqtt: [
          { name: "home-z2m", url: broker.url, baseTopic: BASE, reconnect: { minMs: 100, maxMs: 400 } },
        ],
      },
    },
  });
  await eventually(async () => {
    const c = await bridge();
    return c?.detail.connected && c.detail.devicesKnown === DEVICES.length;
  });
}, 20_000);

afterAll(async () => {
  z2m?.end(true);
  await gw?.stop();
  await broker?.close();
});

describe("zigbee2mqtt bridge", () => {
  it("a radar's fall raises a high alert once, however often zigbee2mqtt repeats the status", async () => {
    await state("room-12/radar", {
      fall_down_status: "none",
      presence: true,
      illuminance_lux: 31,
      linkquality: 120,
    });
    await state("room-12/radar", { fall_down_status: "maybe_fall", presence: true, illuminance_lux: 31 });
    await state("room-12/radar", { fall_down_status: "fall", presence: true, illuminance_lux: 31 });
    await state("room-12/radar", { fall_down_status: "fall", presence: true, illuminance_lux: 29 });
    await state("room-12/radar", { fall_down_status: "fall", presence: true, illuminance_lux: 28 });
    await eventually(() => typesOf(RADAR).filter((t) => t === "device.heartbeat").length === 3);
    expect(typesOf(RADAR).filter((t) => t.startsWith("fall."))).toEqual(["fall.suspected", "fall.detected"]);
    const fall = await eventually(() => alerts(RADAR).find((a) => a.type === "fall"));
    expect(fall?.priority).toBe("high");
    expect(alerts(RADAR).filter((a) => a.type === "fall")).toHaveLength(1);
  });

  it("contact open and close (friendly names with /) are phases of door.open; availability drives online/offline", async () => {
    await state("room-12/door", { battery: 91, contact: true, voltage: 3005, linkquality: 150 });
    await state("room-12/door", { battery: 91, contact: false, voltage: 3005, linkquality: 144 });
    await state("room-12/door", { battery: 91, contact: true, voltage: 3005, linkquality: 147 });
    await eventually(() => typesOf(DOOR).filter((t) => t === "door.open").length === 2);
    expect(
      events(DOOR)
        .filter((e) => e.type === "door.open")
        .map((e) => e.phase),
    ).toEqual(["start", "end"]);
    expect(gw.gateway.presence.status(DOOR).online).toBe(true);

    await state("room-12/door/availability", { state: "offline" });
    await eventually(() => typesOf(DOOR).includes("device.offline"));
    expect(gw.gateway.presence.status(DOOR).online).toBe(false);
    await state("room-12/door/availability", { state: "online" });
    await eventually(() => typesOf(DOOR).filter((t) => t === "device.online").length === 2);
  });

  it("a device registered with a profile for another model, a non-JSON state and an unregistered device are dead letters", async () => {
    await state("room-12/button", { action: "single", battery: 100 });
    await publish(z2m, `${BASE}/room-12/door`, "contact=false");
    await state("hall-lamp", { state: "ON", brightness: 215 });
    await state("hall-lamp", { state: "OFF", brightness: 215 });
    const [wrong] = (await eventually(() => {
      const d = deadLetters(BUTTON);
      return d.length ? d : null;
    }))!;
    expect(wrong).toMatchObject({ code: "unsupported" });
    expect(wrong!.reason).toMatch(/WXKG11LM/);
    await eventually(() => deadLetters(DOOR).some((d) => d.code === "bad_json"));
    await eventually(() => deadLetters(LAMP).length === 1);
    expect(deadLetters(LAMP)[0]!.code).toBe("unknown_device");
    // Commands to zigbee2mqtt and the bridge's own topics are not device state.
    await state("room-12/door/set", { contact: false });
    await state("bridge/state", { state: "online" });
    const heartbeats = () => typesOf(DOOR).filter((t) => t === "device.heartbeat").length;
    const before = heartbeats();
    await state("room-12/door", { battery: 90, contact: true });
    await eventually(() => heartbeats() === before + 1);
    expect(typesOf(DOOR).filter((t) => t === "door.open")).toHaveLength(2);
  });

  it("each button press is a call, also the same action twice; a retained state is not replayed on reconnect", async () => {
    await state("room-12/call", { action: "single", battery: 100, linkquality: 87 });
    await state("room-12/call", { action: "single", battery: 100, linkquality: 87 });
    await eventually(() => typesOf(CALL).filter((t) => t === "call.manual").length === 2);
    expect(alerts(CALL).find((a) => a.type === "call")?.priority).toBe("high");
    // Published retained (zigbee2mqtt's per-device retain option) while the bridge listens: a live press.
    await new Promise<void>((resolve, reject) =>
      z2m.publish(
        `${BASE}/room-12/call`,
        JSON.stringify({ action: "double", battery: 99 }),
        { qos: 1, retain: true },
        (e) => (e ? reject(e) : resolve()),
      ),
    );
    await eventually(() => typesOf(CALL).filter((t) => t === "call.manual").length === 3);
    // Take the bridge's session away (same client id), so that it reconnects and subscribes again:
    // the broker then sends the retained press once more, flagged as retained.
    const reconnectsBefore = (await bridge()).detail.reconnects;
    const intruder = mqtt.connect(broker.url, {
      clientId: "ata-gateway-home-z2m",
      clean: false,
      reconnectPeriod: 0,
    });
    await new Promise((r) => intruder.once("connect", r));
    await new Promise<void>((r) => intruder.end(false, {}, () => r()));
    await eventually(async () => {
      const c = await bridge();
      return c.detail.connected && c.detail.reconnects > reconnectsBefore;
    });
    await state("room-12/call", { battery: 99, linkquality: 80 });
    await eventually(() => typesOf(CALL).includes("device.heartbeat"));
    expect(typesOf(CALL).filter((t) => t === "call.manual")).toHaveLength(3);
  });
});
