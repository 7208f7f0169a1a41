/**
 * The `bridges:` configuration: every mistake is reported at boot with its path, together with the
 * others, and a bridge whose broker is not there yet does not hold up the gateway.
 */
import { afterAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { ConfigError, validateConfig } from "../../src/config/load.js";
import { api, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type Mosquitto, startMosquitto } from "../helpers/mosquitto.js";

const known = new Set(PROFILES.map((p) => p.id));
const base = { sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }] };

function problems(bridges: unknown): { path: string; message: string }[] {
  try {
    validateConfig({ ...base, bridges }, "test", known);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("bridges configuration", () => {
  it("is empty by default and takes a ChirpStack, a The Things Stack and a zigbee2mqtt bridge", () => {
    expect(validateConfig(base, "test", known).bridges).toEqual({ lorawan: [], zigbee2mqtt: [] });
    const config = validateConfig(
      {
        ...base,
        bridges: {
          lorawan: [
            { name: "cs", kind: "chirpstack", url: "mqtt://ns.example:1883", applications: ["app-1"] },
            {
              name: "ttn",
              kind: "tts",
              url: "mqtts://eu1.cloud.thethings.network:8883",
              username: "a@ttn",
              password: "NNSXS.x",
            },
          ],
          zigbee2mqtt: [{ name: "home", url: "mqtt://192.168.1.20:1883" }],
        },
      },
      "test",
      known,
    );
    expect(config.bridges.lorawan[0]).toMatchObject({
      reconnect: { minMs: 1000, maxMs: 30_000 },
      unknownDeviceEverySec: 3600,
    });
    expect(config.bridges.zigbee2mqtt[0]!.baseTopic).toBe("zigbee2mqtt");
  });

  it("lists every mistake with its path in one go", () => {
    const found = problems({
      lorawan: [
        {
          name: "ns",
          kind: "chirpstack",
          url: "mqtt://user:secret@ns.example",
          applications: ["a"],
          topics: ["x/#"],
        },
        { name: "ns", kind: "loriot", url: "http://ns.example" },
        { name: "tts", kind: "tts", url: "mqtt://tts.example", password: "key", tls: { caFile: "/ca.pem" } },
      ],
      zigbee2mqtt: [
        { name: "z", url: "mqtt://h", baseTopic: "zigbee2mqtt/#", reconnect: { minMs: 5000, maxMs: 1000 } },
      ],
    });
    const paths = found.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "bridges.lorawan[1].kind",
        "bridges.lorawan[1].url",
        "bridges.zigbee2mqtt[0].baseTopic",
        "bridges.zigbee2mqtt[0].reconnect.maxMs",
      ]),
    );
    // Cross-checks run once the schema holds: the rest of the list without the schema errors.
    const cross = problems({
      lorawan: [
        {
          name: "ns",
          kind: "chirpstack",
          url: "mqtt://user:secret@ns.example",
          applications: ["a"],
          topics: ["x/#"],
        },
        { name: "tts", kind: "tts", url: "mqtt://tts.example", password: "key", tls: { caFile: "/ca.pem" } },
      ],
      zigbee2mqtt: [{ name: "ns", url: "mqtt://h" }],
    });
    expect(cross).toEqual(
      expect.arrayContaining([
        { path: "bridges.lorawan[0].url", message: expect.stringMatching(/credentials/) },
        { path: "bridges.lorawan[0].topics", message: "give applications or topics, not both" },
        { path: "bridges.lorawan[1].username", message: "a password needs a username" },
        { path: "bridges.lorawan[1].tls", message: expect.stringMatching(/mqtts/) },
        { path: "bridges.zigbee2mqtt[0].name", message: expect.stringMatching(/also used by lorawan\.0/) },
      ]),
    );
    // The secret in the URL is never repeated in a message.
    expect(JSON.stringify(cross)).not.toContain("secret");
  });
});

describe("a bridge whose broker is not there yet", () => {
  let broker: Mosquitto | undefined;
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.stop();
    await broker?.close();
  });

  it("does not hold up the gateway, shows the error in /readyz and connects once the broker is up", async () => {
    broker = await startMosquitto();
    await broker.stop();
    gw = await startGateway({
      overrides: {
        bridges: { zigbee2mqtt: [{ name: "late", url: broker.url, reconnect: { minMs: 100, maxMs: 200 } }] },
      },
    });
    const check = async () => {
      const r = await api(gw!.httpUrl, "GET", "/readyz", undefined, null);
      expect(r.status).toBe(200);
      return r.body.checks.find((c: { name: string }) => c.name === "bridge:late");
    };
    const down = await eventually(async () => {
      const c = await check();
      return c.detail.lastError ? c : null;
    });
    expect(down).toMatchObject({ ok: true, detail: { connected: false } });
    expect(down!.detail.lastError).toMatch(/ECONNREFUSED/);
    await broker.restart();
    await eventually(async () => (await check()).detail.connected, 5000);
  });
});
