/**
 * Writes docs/asyncapi.yaml: the device contract of docs/mqtt-contract.md as an AsyncAPI 3.0.0
 * document (asyncapi.com/docs/reference/specification/v3.0.0), from the code that enforces it:
 *
 * - servers: the gateway's four MQTT listeners with their default ports (src/config/schema.ts);
 * - channels: every topic a device uses, built with the topic module (src/broker/topics.ts);
 * - operations, from the device's side: it sends events on each profile's channels and its status,
 *   and receives its error topic and command topic;
 * - messages: each profile's payload schema per channel (`payloads` in devices/*.ts, zod -> JSON
 *   Schema draft-07, the dialect AsyncAPI schemas extend), with the profile's accepted fixtures as
 *   examples; the error message with the codes the gateway sends (src/errors.ts); the canonical
 *   event (src/model/event.ts) under the same names as docs/canonical-event.schema.json;
 * - MQTT bindings (github.com/asyncapi/bindings, mqtt 0.2.0) for QoS, retain and the last will.
 *
 * test/devices/asyncapi.test.ts fails when the committed file differs from what this script writes,
 * and validates it with @asyncapi/parser.
 *
 *   npx tsx scripts/gen-asyncapi.ts      (or: npm run gen:asyncapi)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { stringify } from "yaml";
import { z } from "zod";
import { FIXTURE_RECEIVED_AT } from "../devices/blocks.js";
import { PROFILES } from "../devices/index.js";
import { Zigbee2mqttBridgeConfig } from "../src/bridges/config.js";
import { ChirpStackUp, LORAWAN_CHANNEL, TtsUp, ZIGBEE2MQTT_CHANNEL } from "../src/bridges/envelope.js";
import { uplinkTopics } from "../src/bridges/lorawan.js";
import type { Broker } from "../src/broker/broker.js";
import { COMMANDS, deviceTopic, ERRORS as ERRORS_CHANNEL, STATUS } from "../src/broker/topics.js";
import { ConfigSchema } from "../src/config/schema.js";
import { ERRORS, type ErrorCode } from "../src/errors.js";
import { CanonicalEvent, SCHEMA_VERSION } from "../src/model/event.js";
import type { DecodeErrorCode, DeviceProfile, Fixture } from "../src/model/profile.js";
import { registry } from "./gen-json-schema.js";

export const ASYNCAPI_PATH = fileURLToPath(new URL("../docs/asyncapi.yaml", import.meta.url));
export const REGENERATE = "npx tsx scripts/gen-asyncapi.ts (npm run gen:asyncapi)";

/** The device id the document's examples use (the one docs/mqtt-contract.md uses). */
export const EXAMPLE_DEVICE_ID = "radar-0142";

// ---------------------------------------------------------------------------------------------------
// The error message

/**
 * Every code a device can find on its error topic: a decoder's (the Record makes a new
 * DecodeErrorCode fail to compile here until it is listed) and the ingest pipeline's own.
 */
const DECODE_ERRORS: Record<DecodeErrorCode, true> = {
  bad_encoding: true,
  bad_json: true,
  bad_schema: true,
  unknown_event: true,
  unknown_topic: true,
  unsupported: true,
};
export const DEVICE_ERROR_CODES: readonly ErrorCode[] = [
  ...(Object.keys(DECODE_ERRORS) as DecodeErrorCode[]),
  "payload_too_large",
  "profile_missing",
  "rate_limited",
  // Cluster mode only: a publish through RabbitMQ whose commit failed alone, past its delivery limit.
  "commit_failed",
];

/** What the broker publishes on `ata/v1/<deviceId>/errors` (Broker.publishError). */
export const DeviceErrorMessage = z.strictObject({
  code: z
    .enum(DEVICE_ERROR_CODES as [ErrorCode, ...ErrorCode[]])
    .describe(
      `Machine-readable; branch on it. ${DEVICE_ERROR_CODES.map((c) => `${c}: ${ERRORS[c].text}.`).join(" ")}`,
    ),
  message: z.string().describe("For people; names the failing path where there is one. May change."),
  topic: z.string().describe("The topic of the rejected publish."),
  receivedAt: z.iso.datetime({ offset: true }).describe("Gateway clock when the publish arrived."),
});
// The schema describes what the broker sends: this fails to compile when the two part.
type BrokerErrorBody = Parameters<Broker["publishError"]>[1];
type DeviceError = z.output<typeof DeviceErrorMessage>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const ERROR_FIELDS_MATCH_BROKER: Same<keyof BrokerErrorBody, keyof DeviceError> = true;
export const ERROR_TYPES_MATCH_BROKER = (e: DeviceError): BrokerErrorBody => e;

// ---------------------------------------------------------------------------------------------------
// Names

/** `ata/native` -> `ata-native`: a profile's key in component, message and operation ids. */
export function profileKey(profileId: string): string {
  return profileId.replace(/[^A-Za-z0-9_-]+/g, "-");
}
const ref = (path: string) => ({ $ref: `#/${path}` });
const schemaRef = (id: string) => ref(`components/schemas/${id}`);
/** A topic address with the `{deviceId}` parameter, built by the topic module itself. */
const address = (channel: string) => deviceTopic("{deviceId}", channel);

/** Device channels in the order profiles first declare them. */
function deviceChannels(profiles: readonly DeviceProfile[]): string[] {
  return [...new Set(profiles.flatMap((p) => p.topics))];
}

/** A fixture's name as an example name: lowercase words joined by dashes. */
function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 64);
}

// ---------------------------------------------------------------------------------------------------
// Schemas

/**
 * Every JSON Schema the document holds, from one zod registry: the payloads under `<profile>.<channel>`
 * (a clone each, so that two profiles sharing one schema still get one name each), the
 * canonical event and its parts under docs/canonical-event.schema.json's names, the error message.
 */
function schemas(payloads: ReadonlyMap<string, z.ZodType>): Record<string, unknown> {
  const reg = registry();
  reg.add(CanonicalEvent, {
    id: "CanonicalEvent",
    description:
      "What every accepted payload becomes (zero or more of them), as the gateway stores it; placement " +
      "and the raw payload are kept beside it. The same schema as docs/canonical-event.schema.json.",
  });
  reg.add(DeviceErrorMessage, {
    id: "DeviceError",
    description:
      "Why a publish was rejected. The payload is kept as a dead letter; do not resend it unchanged.",
  });
  reg.add(z.enum(["online", "offline"]), {
    id: "DeviceStatus",
    description: "Plain text, not JSON. `offline` only as the last will.",
  });
  for (const [id, schema] of payloads) reg.add(schema.clone(), { id });
  const out = z.toJSONSchema(reg, {
    target: "draft-7",
    // A payload as the device sends it: the input side of transforms (epoch or ISO times).
    io: "input",
    uri: (id) => `#/components/schemas/${id}`,
  });
  return Object.fromEntries(
    Object.entries(out.schemas).map(([id, s]) => {
      const { $schema: _s, $id: _i, ...rest } = s as Record<string, unknown>;
      return [id, rest];
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Messages

const isAccepted = (f: Fixture) => f.rejects === undefined;

/** The accepted fixtures on a channel as examples; `wire` gives the payload as it travels (or skips one). */
function examples(p: DeviceProfile, channel: string, wire: (payload: unknown) => unknown = (v) => v) {
  return p.fixtures
    .filter((f) => f.topic === channel && isAccepted(f))
    .flatMap((f) => {
      const payload = f.payloadHex ?? wire(f.payload);
      if (payload === undefined) return [];
      const summary = f.payloadHex === undefined ? f.name : `${f.name} (bytes as hex)`;
      return [{ name: slug(f.name), summary, payload }];
    });
}

/**
 * A profile's message on one channel (`via` names a bridge input, for channels other brokers carry).
 * `schemaId` is the payload schema's component, when the profile declares one that describes it.
 */
function profileMessage(p: DeviceProfile, channel: string, schemaId: string | undefined, via?: BridgeInput) {
  const binary = p.fixtures.some((f) => f.topic === channel && f.payloadHex !== undefined);
  return {
    name: `${profileKey(p.id)}.${via?.id ?? channel}`,
    title: `${p.vendor} ${p.model}: ${via ? via.title : channel}`,
    summary: p.description,
    contentType: binary ? "application/octet-stream" : "application/json",
    payload: schemaId
      ? schemaRef(schemaId)
      : {
          description:
            `The profile ${p.id} declares no schema for \`${channel}\`${via ? " as it travels here" : ""} ` +
            "(`payloads` in its file in devices/); the examples are its fixtures.",
        },
    examples: examples(p, channel, via?.wire),
    "x-ata-profile": p.id,
    "x-ata-emits": [...p.emits],
  };
}

// ---------------------------------------------------------------------------------------------------
// Bridges: other networks' brokers the gateway subscribes to (src/bridges/)

/**
 * One topic of another network's broker that a bridge subscribes to and hands to ingest on a profile
 * channel. `wire` picks the fixtures that arrive this way and gives the payload as it is on that
 * broker (the LoRaWAN bridges pass it on unchanged; the zigbee2mqtt bridge wraps it).
 */
export interface BridgeInput {
  id: string;
  server: string;
  /** The profile channel the bridge submits on. */
  channel: string;
  address: string;
  parameters: Record<string, { description: string; examples?: string[] }>;
  title: string;
  description: string;
  wire(payload: unknown): unknown;
  /** The payload as the network's broker carries it, when the bridge knows it for every device. */
  schema?: { id: string; zod: z.ZodType };
  /** Otherwise: whether the profile's `payloads` schema for the channel describes the wire payload. */
  schemaIsWire: boolean;
}

const has = (value: unknown, ...keys: string[]) =>
  value !== null && typeof value === "object" && keys.some((k) => Object.hasOwn(value, k));

/** A bridge's subscription with its `+` wildcards named as parameters, in order. */
function named(filter: string, names: string[]): string {
  let i = 0;
  return filter.replace(/\+/g, () => `{${names[i++]}}`);
}

export function bridgeInputs(): BridgeInput[] {
  const chirpstack = uplinkTopics({ kind: "chirpstack" } as Parameters<typeof uplinkTopics>[0])[0]!;
  const tts = uplinkTopics({ kind: "tts" } as Parameters<typeof uplinkTopics>[0])[0]!;
  const base = Zigbee2mqttBridgeConfig.shape.baseTopic.parse(undefined);
  return [
    {
      id: "chirpstack-up",
      server: "chirpstack",
      channel: LORAWAN_CHANNEL,
      address: named(chirpstack, ["applicationId", "devEui"]),
      parameters: {
        applicationId: { description: "ChirpStack application id (UUID); `bridges.lorawan[].applications`." },
        devEui: {
          description: "The device's DevEUI, 16 hex digits: its registered device id (lowercase).",
          examples: ["24e124538c147125"],
        },
      },
      title: "ChirpStack v4 uplink event",
      description:
        "ChirpStack v4 MQTT integration, JSON marshaler: an `integration.UplinkEvent` " +
        "(chirpstack/api proto/integration/integration.proto). The bridge hands it unchanged to the " +
        `profile's \`${LORAWAN_CHANNEL}\` channel; \`deduplicationId\` becomes the events' id.`,
      wire: (payload) => (has(payload, "deduplicationId", "deviceInfo") ? payload : undefined),
      schema: { id: "ChirpStackUplinkEvent", zod: ChirpStackUp },
      schemaIsWire: false,
    },
    {
      id: "tts-up",
      server: "the-things-stack",
      channel: LORAWAN_CHANNEL,
      address: named(tts, ["applicationId", "endDeviceId"]),
      parameters: {
        applicationId: {
          description: "The Things Stack application id, `app@tenant` on multi-tenant deployments.",
        },
        endDeviceId: {
          description:
            "The Things Stack's own name for the device; the DevEUI in the JSON is what is registered.",
        },
      },
      title: "The Things Stack v3 uplink message",
      description:
        "The Things Stack v3 MQTT server, `up` message (thethingsindustries.com/docs/integrations/data-formats). " +
        `The bridge hands it unchanged to the profile's \`${LORAWAN_CHANNEL}\` channel; \`end_device_ids.dev_eui\` ` +
        "finds the device, the `as:up:` correlation id becomes the events' id.",
      wire: (payload) => (has(payload, "end_device_ids", "uplink_message") ? payload : undefined),
      schema: { id: "TtsUplinkMessage", zod: TtsUp },
      schemaIsWire: false,
    },
    {
      id: "zigbee2mqtt-state",
      server: "zigbee2mqtt",
      channel: ZIGBEE2MQTT_CHANNEL,
      address: `${base}/{friendlyName}`,
      parameters: {
        friendlyName: {
          description:
            `The device's zigbee2mqtt friendly name (below \`bridges.zigbee2mqtt[].baseTopic\`, default \`${base}\`), ` +
            "found through the retained `bridge/devices` list; the device is registered under its IEEE address.",
          examples: ["0x00158d0001a2b3c4"],
        },
      },
      title: "zigbee2mqtt device state",
      description:
        "The device's whole state as zigbee2mqtt publishes it (zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages). " +
        `The bridge submits it on the profile's \`${ZIGBEE2MQTT_CHANNEL}\` channel wrapped as ` +
        "`{model, state, previous}` with the model from `bridge/devices` and the state it saw before; a retained " +
        "state only becomes that previous state.",
      wire: (payload) => (has(payload, "state") ? (payload as { state: unknown }).state : undefined),
      schemaIsWire: true,
    },
  ];
}

const BRIDGE_SESSION =
  "The gateway subscribes at QoS 1 in a persistent session and acknowledges a QoS 1 message only once it " +
  "is durably logged or dead-lettered, so what is published at QoS 1 waits at the broker while the gateway " +
  "is away. The bridge's `url` may be `mqtt://`, `mqtts://`, `ws://` or `wss://`.";

function bridgeServers() {
  const host = (what: string) => ({
    host: { default: "localhost:1883", description: `host:port of ${what} (the bridge's \`url\`).` },
  });
  const security = [ref("components/securitySchemes/bridgeCredentials")];
  return {
    chirpstack: {
      host: "{host}",
      protocol: "mqtt",
      title: "ChirpStack v4 MQTT integration (not the gateway)",
      description:
        "The broker of a ChirpStack v4 network server's MQTT integration. The gateway is a client here " +
        "(`bridges.lorawan[]` with `kind: chirpstack`). " +
        BRIDGE_SESSION,
      variables: host("the ChirpStack MQTT broker"),
      security,
    },
    "the-things-stack": {
      host: "{host}",
      protocol: "mqtt",
      title: "The Things Stack v3 MQTT server (not the gateway)",
      description:
        "The Things Stack v3's MQTT server (`bridges.lorawan[]` with `kind: tts`); the gateway subscribes " +
        "to the uplink topic. Username: the application id; password: an API key. That server publishes " +
        "at QoS 0 only: an uplink sent while the gateway is away is not kept for it.",
      variables: host("The Things Stack's MQTT server"),
      security,
    },
    zigbee2mqtt: {
      host: "{host}",
      protocol: "mqtt",
      title: "zigbee2mqtt's broker (not the gateway)",
      description:
        "The broker zigbee2mqtt publishes to (`bridges.zigbee2mqtt[]`); the gateway subscribes to the base " +
        "topic: device states, `<friendly name>/availability` and the retained `bridge/devices` list. " +
        BRIDGE_SESSION,
      variables: host("the broker zigbee2mqtt publishes to"),
      security,
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The document

const MQTT_BINDING = "0.2.0";
const qos1 = (retain: boolean) => ({ mqtt: { qos: 1, retain, bindingVersion: MQTT_BINDING } });

function servers() {
  const mqtt = ConfigSchema.shape.mqtt.parse(undefined);
  const host = {
    default: "localhost",
    description: "The gateway's host name or address, as the site gives it.",
  };
  const bindings = {
    mqtt: {
      lastWill: { topic: address(STATUS), qos: 1, message: "offline", retain: true },
      bindingVersion: MQTT_BINDING,
    },
  };
  const secret = [ref("components/securitySchemes/deviceSecret")];
  const withCert = {
    security: secret,
    "x-ata-additional-security": [ref("components/securitySchemes/clientCertificate")],
  };
  return {
    mqtt: {
      host: `{host}:${mqtt.tcp.port}`,
      protocol: "mqtt",
      protocolVersion: "3.1.1",
      title: "MQTT over TCP",
      description: "On by default (`mqtt.tcp`); not opened in TLS-only mode (`tlsOnly`).",
      variables: { host },
      security: secret,
      bindings,
    },
    mqtts: {
      host: `{host}:${mqtt.tls.port}`,
      protocol: "secure-mqtt",
      protocolVersion: "3.1.1",
      title: "MQTT over TLS",
      description:
        "TLS 1.2 or 1.3 (`mqtt.tls.minVersion`), off until the site configures a certificate (`mqtt.tls`). " +
        "Verify the gateway's certificate against the site's CA.",
      variables: { host },
      ...withCert,
      bindings,
    },
    ws: {
      host: `{host}:${mqtt.ws.port}`,
      pathname: "/mqtt",
      protocol: "ws",
      title: "MQTT over WebSocket",
      description:
        "MQTT 3.1.1 in WebSocket binary frames (subprotocol `mqtt`). On by default (`mqtt.ws`); not " +
        "opened in TLS-only mode.",
      variables: { host },
      security: secret,
      bindings,
    },
    wss: {
      host: `{host}:${mqtt.wss.port}`,
      pathname: "/mqtt",
      protocol: "wss",
      title: "MQTT over secure WebSocket",
      description:
        "As `ws`, over TLS with `mqtt.tls`'s certificate and minimum version; off until configured (`mqtt.wss`).",
      variables: { host },
      ...withCert,
      bindings,
    },
  };
}

const GATEWAY_SERVERS = ["mqtt", "mqtts", "ws", "wss"].map((s) => ref(`servers/${s}`));

/** The document as a plain object. */
export function buildAsyncApi(profiles: readonly DeviceProfile[] = PROFILES): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
    license: string;
  };
  const inputs = bridgeInputs();
  const bridged = new Set(inputs.map((i) => i.channel));
  const channelNames = deviceChannels(profiles).filter((c) => !bridged.has(c));
  const usedInputs = inputs.filter((i) => profiles.some((p) => p.topics.includes(i.channel)));
  const deviceId = ref("components/parameters/deviceId");

  const channels: Record<string, unknown> = {};
  for (const channel of channelNames) {
    const users = profiles.filter((p) => p.topics.includes(channel));
    channels[channel] = {
      address: address(channel),
      title: channel,
      description: `Events, on the channel \`${channel}\` of the profiles ${users.map((p) => `\`${p.id}\``).join(", ")}. QoS 1: the PUBACK means the event is durably logged. The payload's shape depends on the device's profile.`,
      servers: GATEWAY_SERVERS,
      parameters: { deviceId },
      messages: Object.fromEntries(
        users.map((p) => [profileKey(p.id), ref(`components/messages/${profileKey(p.id)}.${channel}`)]),
      ),
    };
  }
  channels[STATUS] = {
    address: address(STATUS),
    title: STATUS,
    description:
      "`online` after connecting and `offline` as the last will, both retained, QoS 1. The gateway derives " +
      "device.online and device.offline from it and from the profile's supervision.",
    servers: GATEWAY_SERVERS,
    parameters: { deviceId },
    messages: { status: ref("components/messages/status") },
  };
  channels[ERRORS_CHANNEL] = {
    address: address(ERRORS_CHANNEL),
    title: ERRORS_CHANNEL,
    description:
      "One message per rejected publish, QoS 1, not retained. A device may subscribe to its own error " +
      "topic only, without wildcards.",
    servers: GATEWAY_SERVERS,
    parameters: { deviceId },
    messages: { error: ref("components/messages/error") },
  };
  channels[COMMANDS] = {
    address: address(COMMANDS),
    title: COMMANDS,
    description:
      "Reserved for commands to the device: subscribe to it. The gateway publishes no command in this " +
      `version of the contract (schemaVersion ${SCHEMA_VERSION}), so no message is defined yet.`,
    servers: GATEWAY_SERVERS,
    parameters: { deviceId },
  };

  for (const input of usedInputs) {
    const users = profiles.filter((p) => p.topics.includes(input.channel));
    channels[input.id] = {
      address: input.address,
      title: input.title,
      description: `${input.description} For the profiles ${users.map((p) => `\`${p.id}\``).join(", ")}.`,
      servers: [ref(`servers/${input.server}`)],
      parameters: input.parameters,
      messages: Object.fromEntries(
        users.map((p) => [profileKey(p.id), ref(`components/messages/${profileKey(p.id)}.${input.id}`)]),
      ),
    };
  }

  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const payloads = new Map<string, z.ZodType>();
  const reply = {
    channel: ref(`channels/${ERRORS_CHANNEL}`),
    messages: [ref(`channels/${ERRORS_CHANNEL}/messages/error`)],
  };
  for (const p of profiles) {
    const key = profileKey(p.id);
    const { heartbeatSec, missedHeartbeats } = p.supervision;
    for (const channel of p.topics.filter((c) => bridged.has(c))) {
      const schema = p.payloads?.[channel];
      for (const input of inputs.filter((i) => i.channel === channel)) {
        let schemaId: string | undefined;
        if (input.schema) {
          schemaId = input.schema.id;
          payloads.set(schemaId, input.schema.zod);
        } else if (schema && input.schemaIsWire) {
          schemaId = `${key}.${channel}`;
          payloads.set(schemaId, schema);
        }
        messages[`${key}.${input.id}`] = profileMessage(p, channel, schemaId, input);
        operations[`${key}.${input.id}`] = {
          action: "send",
          channel: ref(`channels/${input.id}`),
          title: `${p.id} through ${input.server}`,
          description:
            `The network publishes for a device registered with \`${p.id}\` (${p.kind}); the gateway's ` +
            `bridge takes it to ingest. It may emit ${p.emits.map((t) => `\`${t}\``).join(", ")}. A ` +
            "payload the profile rejects is kept as a dead letter; nothing is sent back to that broker.",
          tags: [{ name: p.id }],
          messages: [ref(`channels/${input.id}/messages/${key}`)],
        };
      }
    }
    for (const channel of p.topics.filter((c) => !bridged.has(c))) {
      const schema = p.payloads?.[channel];
      if (schema) payloads.set(`${key}.${channel}`, schema);
      messages[`${key}.${channel}`] = profileMessage(p, channel, schema && `${key}.${channel}`);
      operations[`${key}.${channel}`] = {
        action: "send",
        channel: ref(`channels/${channel}`),
        title: `${p.id} publishes on ${channel}`,
        description:
          `A device registered with the profile \`${p.id}\` (${p.kind}) publishes here. It may emit ` +
          `${p.emits.map((t) => `\`${t}\``).join(", ")}. Silent for ${heartbeatSec} s x ${missedHeartbeats} ` +
          "it is offline. A rejected payload is answered on the error topic.",
        tags: [{ name: p.id }],
        bindings: qos1(false),
        messages: [ref(`channels/${channel}/messages/${key}`)],
        reply,
      };
    }
  }
  messages.status = {
    name: "status",
    title: "Device status",
    contentType: "text/plain",
    payload: schemaRef("DeviceStatus"),
    examples: [{ name: "online", payload: "online" }],
  };
  messages.error = {
    name: "error",
    title: "Rejected publish",
    contentType: "application/json",
    payload: schemaRef("DeviceError"),
    examples: [
      {
        name: "bad-schema",
        summary: "A radar event without its fall status",
        payload: {
          code: "bad_schema",
          message: "fall event: fallStatus: Invalid input: expected string, received undefined",
          topic: deviceTopic(EXAMPLE_DEVICE_ID, "events"),
          receivedAt: FIXTURE_RECEIVED_AT,
        },
      },
    ],
  };
  operations.status = {
    action: "send",
    channel: ref(`channels/${STATUS}`),
    title: "The device reports itself online (and, as its last will, offline)",
    bindings: qos1(true),
    messages: [ref(`channels/${STATUS}/messages/status`)],
  };
  operations.errors = {
    action: "receive",
    channel: ref(`channels/${ERRORS_CHANNEL}`),
    title: "The device learns why a publish was rejected",
    bindings: qos1(false),
    messages: [ref(`channels/${ERRORS_CHANNEL}/messages/error`)],
  };
  operations.commands = {
    action: "receive",
    channel: ref(`channels/${COMMANDS}`),
    title: "The device receives commands (reserved)",
    bindings: qos1(false),
  };

  return {
    asyncapi: "3.0.0",
    id: "urn:ata-gateway:device-contract",
    info: {
      title: "ATA Gateway device contract (MQTT)",
      version: pkg.version,
      description: [
        "How a care device (fall sensor, bed mat, pendant, ceiling lift) delivers events to ATA Gateway " +
          "and what it gets back, from the device's side: `send` is what the device publishes, `receive` " +
          "what it subscribes to. The prose contract, with the rules this document cannot say (CONNACK " +
          "codes, deduplication of redeliveries, the dead-letter store, limits), is docs/mqtt-contract.md.",
        "A device is registered with one profile (devices/*.ts); the operations tagged with that profile " +
          "are its channels, and each message's examples are the profile's fixtures. Every accepted payload " +
          "becomes canonical events (`CanonicalEvent`, also docs/canonical-event.schema.json).",
        "Devices on other networks (LoRaWAN network servers, zigbee2mqtt) do not connect to the gateway: " +
          "the gateway's bridges subscribe to those networks' brokers, the servers `chirpstack`, " +
          "`the-things-stack` and `zigbee2mqtt` here, and such a device is registered under its network " +
          "address (DevEUI, IEEE address). Social-alarm units that speak SCAIP over SIP reach the gateway's " +
          "SCAIP receiver instead (docs/scaip.md), which is not MQTT and not described here.",
        `Generated from the code by scripts/gen-asyncapi.ts; do not edit. Regenerate: ${REGENERATE}.`,
      ].join("\n\n"),
      license: { name: pkg.license, url: `https://spdx.org/licenses/${pkg.license}.html` },
      tags: profiles.map((p) => ({ name: p.id, description: p.description })),
    },
    defaultContentType: "application/json",
    servers: { ...servers(), ...(usedInputs.length > 0 ? bridgeServers() : {}) },
    channels,
    operations,
    components: {
      schemas: schemas(payloads),
      messages,
      parameters: {
        deviceId: {
          description:
            "The registered device id: also the MQTT client id and username. 1-64 characters " +
            "`A-Z a-z 0-9 _ . -`, starting with a letter or digit. A device that another network " +
            "addresses is registered under that address (a LoRaWAN DevEUI, a zigbee IEEE address).",
          examples: [EXAMPLE_DEVICE_ID],
        },
      },
      securitySchemes: {
        deviceSecret: {
          type: "userPassword",
          description:
            "Username: the device id, which must also be the client id (else CONNACK 2). Password: the " +
            "device secret issued at registration (else CONNACK 4). The same on every transport.",
        },
        clientCertificate: {
          type: "X509",
          description:
            "Mutual TLS, on `mqtts` and `wss` when the site sets `mqtt.tls.clientCertificates: required`: a " +
            "certificate signed by the site's CA whose subject CN is the device id, in addition to " +
            "`deviceSecret`, never instead of it. (AsyncAPI's `security` lists alternatives, so the servers " +
            "name it in `x-ata-additional-security`.)",
        },
        ...(usedInputs.length > 0
          ? {
              bridgeCredentials: {
                type: "userPassword",
                description:
                  "The gateway's own account at another network's broker (`username`, `password` in the " +
                  "bridge's configuration; for The Things Stack an API key). Never logged.",
              },
            }
          : {}),
      },
    },
  };
}

/** The file content: a comment, then the document as YAML. */
export function generateAsyncApi(profiles: readonly DeviceProfile[] = PROFILES): string {
  const doc = buildAsyncApi(profiles);
  const yaml = stringify(doc, { aliasDuplicateObjects: false, lineWidth: 110 });
  return `# Generated by scripts/gen-asyncapi.ts; do not edit. Regenerate: ${REGENERATE}\n${yaml}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(ASYNCAPI_PATH, generateAsyncApi());
  console.log(`wrote ${ASYNCAPI_PATH}`);
}
