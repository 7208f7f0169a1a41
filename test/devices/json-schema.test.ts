import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { FIXTURE_RECEIVED_AT } from "../../devices/blocks.js";
import { PROFILES } from "../../devices/index.js";
import { generateJsonSchema, SCHEMA_PATH } from "../../scripts/gen-json-schema.js";
import { defaultPhase, EVENT_DATA, EVENT_TYPES, SCHEMA_VERSION } from "../../src/model/event.js";
import type { DecodeErrorCode } from "../../src/model/profile.js";

describe("docs/canonical-event.schema.json", () => {
  it("is exactly what scripts/gen-json-schema.ts generates (run it after changing src/model/event.ts)", () => {
    expect(readFileSync(SCHEMA_PATH, "utf8")).toBe(generateJsonSchema());
  });

  it("accepts every event the profiles' fixtures decode to, as the gateway stores it", () => {
    const schema = z.fromJSONSchema(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
    const events = PROFILES.flatMap((p) => p.fixtures.flatMap((f) => f.expected));
    expect(events.length).toBeGreaterThan(50);
    for (const e of events) {
      const stored = {
        eventId: "d:fixture:0",
        schemaVersion: SCHEMA_VERSION,
        deviceId: "dev-1",
        occurredAt: FIXTURE_RECEIVED_AT,
        receivedAt: FIXTURE_RECEIVED_AT,
        phase: defaultPhase(e.type),
        ...e,
      };
      expect(schema.safeParse(stored).error).toBeUndefined();
    }
  });

  it("rejects what the model rejects: unknown keys, wrong data, a missing envelope field", () => {
    const schema = z.fromJSONSchema(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")));
    const ok = {
      eventId: "e-1",
      schemaVersion: 1,
      deviceId: "dev-1",
      type: "call.manual",
      occurredAt: "2025-01-15T02:13:05.000Z",
      receivedAt: "2025-01-15T02:13:05.100Z",
      phase: "point",
      data: { pressDurationSec: 1 },
    };
    expect(schema.safeParse(ok).success).toBe(true);
    expect(schema.safeParse({ ...ok, data: { pressDurationSec: -1 } }).success).toBe(false);
    expect(schema.safeParse({ ...ok, data: { button: "red" } }).success).toBe(false);
    expect(schema.safeParse({ ...ok, type: "lift.cycle" }).success).toBe(false);
    const { receivedAt: _, ...withoutReceivedAt } = ok;
    expect(schema.safeParse(withoutReceivedAt).success).toBe(false);
  });
});

describe("docs/mqtt-contract.md", () => {
  const doc = readFileSync(new URL("../../docs/mqtt-contract.md", import.meta.url), "utf8");

  it("lists every canonical type with every one of its data fields", () => {
    const rows = doc.split("\n").filter((l) => l.startsWith("| `"));
    for (const type of EVENT_TYPES) {
      const row = rows.find((r) => r.split("|")[1]?.includes(`\`${type}\``));
      expect(row, `no table row for ${type}`).toBeDefined();
      for (const field of Object.keys(EVENT_DATA[type].shape)) {
        expect(row, `${type} row lacks ${field}`).toContain(`\`${field}\``);
      }
    }
  });

  it("documents every error code a device can receive on its error topic", () => {
    // A Record so that adding a DecodeErrorCode without documenting it fails to compile here.
    const decodeErrors: Record<DecodeErrorCode, true> = {
      bad_json: true,
      bad_encoding: true,
      bad_schema: true,
      unknown_event: true,
      unknown_topic: true,
      unsupported: true,
    };
    for (const code of [...Object.keys(decodeErrors), "payload_too_large", "profile_missing"]) {
      expect(doc, code).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|`));
    }
  });

  it("states the default payload limit the gateway's config uses", async () => {
    const { ConfigSchema } = await import("../../src/config/schema.js");
    const limit = ConfigSchema.shape.mqtt.parse(undefined).maxPayloadBytes;
    expect(doc).toContain(`${limit / 1024} KiB`);
    expect(doc).toContain(`(${limit} bytes`);
  });
});
