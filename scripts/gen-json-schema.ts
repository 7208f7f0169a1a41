/**
 * Writes docs/canonical-event.schema.json, the vendor-facing JSON Schema of a canonical event, from
 * the zod schema in src/model/event.ts (the single source). test/devices/json-schema.test.ts fails
 * when the committed file differs from what this script generates, so it cannot go stale.
 *
 *   npx tsx scripts/gen-json-schema.ts
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { CanonicalEvent, EVENT_DATA, Phase, Priority, SCHEMA_VERSION } from "../src/model/event.js";

export const SCHEMA_PATH = fileURLToPath(new URL("../docs/canonical-event.schema.json", import.meta.url));

/**
 * Names for the shared parts, so that the generated $defs read as documentation, not __schema0.
 * scripts/gen-asyncapi.ts uses the same names for its components.
 */
export function registry() {
  const reg = z.registry<{ id: string; description?: string }>();
  const envelope = CanonicalEvent.options[0].shape;
  reg.add(envelope.eventId, {
    id: "EventId",
    description: "Idempotency key: the device's own id for the event, or one the gateway derives.",
  });
  reg.add(envelope.occurredAt, { id: "OccurredAt", description: "Device clock, ISO 8601 with offset." });
  reg.add(envelope.receivedAt, { id: "ReceivedAt", description: "Gateway clock, ISO 8601 with offset." });
  reg.add(Priority, { id: "Priority" });
  reg.add(Phase, { id: "Phase" });
  const names: Record<string, string> = {
    "fall.detected": "FallData",
    "bed.exit": "DwellData",
    "door.open": "DoorData",
    "presence.dwell": "PresenceData",
    "call.manual": "CallData",
    "staff.presence": "StaffData",
    "lift.cycle": "LiftData",
    "device.heartbeat": "DeviceData",
  };
  for (const [type, id] of Object.entries(names))
    reg.add(EVENT_DATA[type as keyof typeof EVENT_DATA], { id });
  return reg;
}

/**
 * JSON laid out the way Biome formats JSON (objects one key per line, arrays of scalars on one line
 * when they fit in the 110-column line width), so that `biome check docs` passes on the generated file
 * without running the formatter here.
 */
export function formatJson(value: unknown, indent = 0, prefix = 0): string {
  const pad = " ".repeat(indent + 2);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    if (value.every((v) => v === null || typeof v !== "object")) {
      const flat = `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
      // +1 for the comma that may follow on the same line.
      if (prefix + flat.length + 1 <= LINE_WIDTH) return flat;
    }
    const items = value.map((v) => `${pad}${formatJson(v, indent + 2, pad.length)}`);
    return `[\n${items.join(",\n")}\n${" ".repeat(indent)}]`;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return "{}";
    const lines = entries.map(([k, v]) => {
      const head = `${pad}${JSON.stringify(k)}: `;
      return `${head}${formatJson(v, indent + 2, head.length)}`;
    });
    return `{\n${lines.join(",\n")}\n${" ".repeat(indent)}}`;
  }
  return JSON.stringify(value);
}
const LINE_WIDTH = 110;

/** The file content: the schema with a title and id, laid out as Biome would, with a final newline. */
export function generateJsonSchema(): string {
  const schema = z.toJSONSchema(CanonicalEvent, { target: "draft-2020-12", metadata: registry() });
  const doc = {
    $schema: schema.$schema,
    $id: `https://ata-gateway.invalid/schemas/canonical-event.v${SCHEMA_VERSION}.json`,
    title: "ATA Gateway canonical event",
    description:
      "Generated from src/model/event.ts by scripts/gen-json-schema.ts; do not edit. One canonical event " +
      "as the gateway stores and publishes it (placement and raw payload are kept beside it).",
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$schema")),
  };
  return `${formatJson(doc)}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SCHEMA_PATH, generateJsonSchema());
  console.log(`wrote ${SCHEMA_PATH}`);
}
