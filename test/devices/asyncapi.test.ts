import { readFileSync } from "node:fs";
import {
  type AsyncAPIDocumentInterface,
  DiagnosticSeverity,
  type OperationInterface,
  Parser,
} from "@asyncapi/parser";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { PROFILES } from "../../devices/index.js";
import {
  ASYNCAPI_PATH,
  bridgeInputs,
  DEVICE_ERROR_CODES,
  EXAMPLE_DEVICE_ID,
  generateAsyncApi,
  profileKey,
  REGENERATE,
} from "../../scripts/gen-asyncapi.js";
import { deviceTopic, errorTopic, mayPublish, maySubscribe } from "../../src/broker/topics.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  publish,
  secretFor,
  startGateway,
} from "../helpers/gateway.js";

const committed = readFileSync(ASYNCAPI_PATH, "utf8");
let doc: AsyncAPIDocumentInterface;
const GATEWAY_SERVERS = ["mqtt", "mqtts", "ws", "wss"];
const inputs = bridgeInputs();

/** Where a profile channel's payloads travel: the gateway's own topic, or other networks' brokers. */
function routes(channel: string): { id: string; address: string; servers: string[] }[] {
  const via = inputs.filter((i) => i.channel === channel);
  if (via.length === 0) {
    return [{ id: channel, address: deviceTopic("{deviceId}", channel), servers: GATEWAY_SERVERS }];
  }
  return via.map((i) => ({ id: i.id, address: i.address, servers: [i.server] }));
}

/** A message's payload schema as the parser resolved it (every $ref followed), as a zod schema. */
function payloadSchema(messageId: string): z.ZodType {
  const message = doc.components().messages().get(messageId);
  expect(message, `no message ${messageId}`).toBeDefined();
  const json = message!.payload()?.json();
  expect(json, `${messageId} has no payload schema`).toBeDefined();
  return z.fromJSONSchema(json as Parameters<typeof z.fromJSONSchema>[0]);
}

beforeAll(async () => {
  const { document, diagnostics } = await new Parser().parse(committed);
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (errors.length > 0 || !document) {
    const lines = errors.map((d) => `  ${d.code} at ${d.path.join(".")}: ${d.message}`);
    throw new Error(
      `@asyncapi/parser finds ${errors.length} errors in docs/asyncapi.yaml:\n${lines.join("\n")}`,
    );
  }
  doc = document;
}, 30_000);

describe("docs/asyncapi.yaml", () => {
  it(`is exactly what scripts/gen-asyncapi.ts generates (run ${REGENERATE} after changing a profile, the topic module or the event model)`, () => {
    expect(committed === generateAsyncApi(), `docs/asyncapi.yaml is stale: run ${REGENERATE}`).toBe(true);
  });

  it("is a valid AsyncAPI 3.0 document with a send operation per profile and channel, on the server that carries it", () => {
    expect(doc.version()).toBe("3.0.0");
    const servers = doc
      .servers()
      .all()
      .map((s) => s.id());
    expect(servers).toEqual(expect.arrayContaining([...GATEWAY_SERVERS, ...inputs.map((i) => i.server)]));
    let operations = 0;
    for (const p of PROFILES) {
      for (const channel of p.topics) {
        for (const route of routes(channel)) {
          const op = doc.operations().get(`${profileKey(p.id)}.${route.id}`);
          expect(op, `${p.id} ${route.id}`).toBeDefined();
          expect(op!.isSend()).toBe(true);
          const ch = op!.channels().all()[0]!;
          expect(ch.address()).toBe(route.address);
          expect(
            ch
              .servers()
              .all()
              .map((s) => s.id()),
          ).toEqual(route.servers);
          expect(
            op!
              .messages()
              .all()
              .map((m) => m.name()),
          ).toEqual([`${profileKey(p.id)}.${route.id}`]);
          operations++;
        }
      }
    }
    // Besides the profiles' operations: status, errors and commands.
    expect(doc.operations().all().length).toBe(operations + 3);
  });

  it("gives every fixture a profile accepts as an example of its message", () => {
    for (const p of PROFILES) {
      for (const channel of p.topics) {
        for (const route of routes(channel)) {
          const message = doc
            .components()
            .messages()
            .get(`${profileKey(p.id)}.${route.id}`)!;
          const via = inputs.find((i) => i.id === route.id);
          const accepted = p.fixtures.filter(
            (f) =>
              f.topic === channel && f.rejects === undefined && (!via || via.wire(f.payload) !== undefined),
          );
          const examples = message.examples().all();
          expect(
            examples.map((e) => e.summary()),
            `${p.id} ${route.id}`,
          ).toEqual(accepted.map((f) => (f.payloadHex === undefined ? f.name : `${f.name} (bytes as hex)`)));
          for (const [i, f] of accepted.entries()) {
            expect(examples[i]!.payload()).toEqual(f.payloadHex ?? (via ? via.wire(f.payload) : f.payload));
          }
        }
      }
    }
  });

  it("has the topic module's rules: a device may publish where it sends and subscribe where it receives, and nowhere else", () => {
    const onGateway = (o: OperationInterface) =>
      o
        .channels()
        .all()[0]!
        .servers()
        .all()
        .every((s) => GATEWAY_SERVERS.includes(s.id()));
    const ops = doc.operations().all().filter(onGateway);
    expect(ops.filter((o) => o.isReceive()).length).toBe(2);
    for (const op of ops) {
      const address = op.channels().all()[0]?.address();
      expect(address).toContain("{deviceId}");
      const topic = address!.replace("{deviceId}", EXAMPLE_DEVICE_ID);
      expect(mayPublish(EXAMPLE_DEVICE_ID, topic), `${op.id()} ${topic}`).toBe(op.isSend());
      expect(maySubscribe(EXAMPLE_DEVICE_ID, topic), `${op.id()} ${topic}`).toBe(op.isReceive());
      expect(mayPublish("another-device", topic)).toBe(false);
    }
    // What arrives through another network's broker is not a gateway topic at all.
    for (const op of doc
      .operations()
      .all()
      .filter((o) => !onGateway(o))) {
      const topic = op.channels().all()[0]!.address()!;
      expect(mayPublish(EXAMPLE_DEVICE_ID, topic), topic).toBe(false);
    }
  });

  it("gives every channel with JSON payloads a schema: the profile's, or for LoRaWAN the bridge's", () => {
    const missing: string[] = [];
    for (const p of PROFILES) {
      for (const channel of p.topics) {
        const json = p.fixtures.some((f) => f.topic === channel && f.payloadHex === undefined);
        for (const route of routes(channel)) {
          const via = inputs.find((i) => i.id === route.id);
          const described = via?.schema ?? (p.payloads?.[channel] && (!via || via.schemaIsWire));
          if (json && !described) missing.push(`${p.id} ${channel} (add it to the profile's \`payloads\`)`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("describes every fixture payload a profile accepts with that profile's schema for the channel", () => {
    let checked = 0;
    for (const p of PROFILES) {
      for (const channel of p.topics) {
        for (const route of routes(channel)) {
          const via = inputs.find((i) => i.id === route.id);
          const described = via?.schema ?? (p.payloads?.[channel] && (!via || via.schemaIsWire));
          if (!described) continue;
          const schema = payloadSchema(`${profileKey(p.id)}.${route.id}`);
          for (const f of p.fixtures.filter((f) => f.topic === channel && f.rejects === undefined)) {
            const payload = via ? via.wire(f.payload) : f.payload;
            if (payload === undefined) continue;
            expect(schema.safeParse(payload).error, `${p.id} fixture "${f.name}"`).toBeUndefined();
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(60);
  });

  it("rejects with the schema what the decoders reject as bad_schema where JSON Schema can say it", () => {
    const native = payloadSchema("ata-native.events");
    expect(
      native.safeParse({ type: "call.manual", data: { pressDurationSec: 2, button: "red" } }).success,
    ).toBe(false);
    expect(native.safeParse({ type: "device.offline", data: {} }).success).toBe(false);
    expect(native.safeParse([{ type: "bed.exit", data: {} }]).success).toBe(true);
    const lift = payloadSchema("generic-ceiling-lift.cycle");
    expect(lift.safeParse({ start: 1736926930, end: "2025-01-15T07:44:36Z", helpers: 1 }).success).toBe(true);
    expect(lift.safeParse({ start: 1736926930, end: 1736927076 }).success).toBe(false);
    const vs373 = payloadSchema("milesight-vs373.up");
    expect(vs373.safeParse({ "device info": { "trigger data": { event: 0, status: 1 } } }).success).toBe(
      true,
    );
    expect(vs373.safeParse({ device_info: { trigger_data: { event: "fall", status: 1 } } }).success).toBe(
      false,
    );
  });

  it("lists every error code a device can receive, each documented in docs/mqtt-contract.md", () => {
    const contract = readFileSync(new URL("../../docs/mqtt-contract.md", import.meta.url), "utf8");
    const schema = payloadSchema("error");
    for (const code of DEVICE_ERROR_CODES) {
      expect(contract, code).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|`));
      const message = {
        code,
        message: "m",
        topic: "ata/v1/d/events",
        receivedAt: "2025-01-15T02:14:07.250Z",
      };
      expect(schema.safeParse(message).success, code).toBe(true);
    }
    const unknown = { code: "not_found", message: "m", topic: "t", receivedAt: "2025-01-15T02:14:07.250Z" };
    expect(schema.safeParse(unknown).success).toBe(false);
  });
});

describe("docs/asyncapi.yaml against a running gateway", () => {
  let gw: Awaited<ReturnType<typeof startGateway>>;
  let client: MqttClient | undefined;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    client?.end(true);
    await gw.stop();
  });

  it("the error message a rejected publish gets matches the document's error schema", async () => {
    const id = deviceIdFor("ata/native");
    client = await connectDevice(gw.mqttPort, id, secretFor("ata/native"));
    const received: Buffer[] = [];
    client.on("message", (_topic, payload) => received.push(payload));
    await new Promise<void>((resolve, reject) =>
      client!.subscribe(errorTopic(id), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );
    const bad = [
      ["events", "{not json"],
      ["events", JSON.stringify({ type: "fall.maybe", data: {} })],
      ["heartbeat", JSON.stringify({ battery: 140 })],
      ["nowhere", "{}"],
    ] as const;
    for (const [channel, payload] of bad) await publish(client, deviceTopic(id, channel), payload);
    await eventually(() => received.length === bad.length);

    const schema = payloadSchema("error");
    const messages = received.map((b) => JSON.parse(b.toString("utf8")));
    for (const m of messages) expect(schema.safeParse(m).error, JSON.stringify(m)).toBeUndefined();
    expect(messages.map((m) => m.code)).toEqual(["bad_json", "unknown_event", "bad_schema", "unknown_topic"]);
  });
});
