import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkProfile, checkSamples } from "../../devices/conformance.js";
import type { DeviceProfile } from "../../src/model/profile.js";
import {
  describeChannels,
  draftProfile,
  flattenShape,
  renderZod,
  type Shape,
} from "../../src/observe/draft.js";
import type { Sample } from "../../src/observe/store.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const T0 = Date.parse("2026-11-02T10:00:00.000Z");

/** Samples as the store returns them (ids ascending here; draftProfile sorts by id itself). */
function samples(
  list: { channel: string; payload: string | Buffer; at?: number; size?: number }[],
): Sample[] {
  return list.map((s, i) => {
    const payload = typeof s.payload === "string" ? Buffer.from(s.payload) : s.payload;
    return {
      id: i + 1,
      channel: s.channel,
      receivedAt: new Date(s.at ?? T0 + i * 30_000).toISOString(),
      size: s.size ?? payload.length,
      payload,
    };
  });
}

const RADAR = samples([
  {
    channel: "events",
    payload: JSON.stringify({ id: "a1", status: "fall_detected", ts: 1762077600, conf: 0.8 }),
  },
  { channel: "events", payload: JSON.stringify({ id: "a1", status: "fall_confirmed", ts: 1762077610 }) },
  {
    channel: "events",
    payload: JSON.stringify({ id: "a2", status: "canceled", ts: 1762077700, pos: { x: 1, y: 2.5 } }),
  },
  {
    channel: "hb",
    payload: JSON.stringify({ fw: "2.1.0", rssi: -71, at: "2026-11-02T10:01:00Z", tags: [] }),
  },
  {
    channel: "hb",
    payload: JSON.stringify({ fw: "2.1.0", rssi: -68, at: "2026-11-02T10:02:00Z", tags: [] }),
  },
  { channel: "raw", payload: Buffer.from("017564ff0a", "hex") },
  { channel: "raw", payload: Buffer.from("01756500ff", "hex") },
  { channel: "status", payload: "online" },
]);

describe("drafting a profile from observed payloads", () => {
  it("infers field names, types, optional fields, status values and times from JSON samples", () => {
    const [events, hb] = describeChannels(RADAR.filter((s) => s.channel !== "raw"));
    expect(events!.format).toBe("json");
    const fields = flattenShape(events!.shape!);
    expect(fields).toEqual([
      { path: "id", type: "string", optional: false, seen: '"a1" "a2"' },
      {
        path: "status",
        type: "string",
        optional: false,
        seen: '"fall_detected" "fall_confirmed" "canceled"',
      },
      { path: "ts", type: "integer", optional: false, seen: "1762077600..1762077700 (epoch s?)" },
      { path: "conf", type: "number", optional: true, seen: "0.8" },
      { path: "pos", type: "object", optional: true, seen: "2 fields" },
      { path: "pos.x", type: "integer", optional: false, seen: "1" },
      { path: "pos.y", type: "number", optional: false, seen: "2.5" },
    ]);
    const zod = renderZod(events!.shape!, "events").code;
    expect(zod).toContain('status: z.enum(["fall_detected", "fall_confirmed", "canceled"]),');
    expect(zod).toContain("ts: ClockTime,");
    expect(zod).toContain("id: z.string(),");
    expect(zod).toMatch(/conf: z\.number\(\)\.optional\(\), \/\/ 0\.8 seen; in 1 of 3/);
    expect(renderZod(hb!.shape!, "hb").code).toContain("at: ClockTime, // ISO times seen");
    expect(renderZod(hb!.shape!, "hb").code).toContain("tags: z.array(z.unknown()),");
  });

  it("keeps a field's type union and nullability when samples disagree", () => {
    const [c] = describeChannels(
      samples([
        { channel: "up", payload: '{"v": 1, "note": null}' },
        { channel: "up", payload: '{"v": "high", "note": "x"}' },
      ]),
    );
    const code = renderZod(c!.shape as Shape, "up").code;
    expect(code).toContain("v: z.union([z.number().int(), z.string()]),");
    expect(code).toContain("note: z.string().nullable(),");
  });

  it("describes binary payloads by length and first bytes, and cut ones are not inferred", () => {
    const [raw] = describeChannels(RADAR.filter((s) => s.channel === "raw"));
    expect(raw).toMatchObject({
      format: "binary",
      sizes: { min: 5, max: 5 },
      firstBytes: ["017564ff", "01756500"],
    });
    const [cut] = describeChannels(samples([{ channel: "big", payload: '{"a":', size: 9000 }]));
    expect(cut).toMatchObject({ samples: 1, cut: 1, format: "binary", shape: null });
  });

  describe("the drafted module", () => {
    const dir = mkdtempSync(join(ROOT, "node_modules", ".observe-draft-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("compiles as a profile whose fixtures decode, and conformance lists only what the vendor must fill in", async () => {
      const draft = draftProfile("Radar_01:AB", RADAR, {
        imports: { profile: join(ROOT, "src/model/profile.js"), blocks: join(ROOT, "devices/blocks.js") },
        now: new Date(T0),
      });
      expect(draft.profileId).toBe("draft/radar-01-ab");
      // status is presence, never a profile's topic.
      expect(draft.channels.map((c) => c.channel)).toEqual(["events", "hb", "raw"]);
      const file = join(dir, "draft.ts");
      writeFileSync(file, draft.module);
      const mod = (await import(file)) as Record<string, DeviceProfile>;
      const profile = Object.values(mod)[0]!;
      expect(profile.topics).toEqual(["events", "hb", "raw"]);
      expect(profile.supervision.heartbeatSec).toBe(30);
      // Observed payloads become fixtures, the rejections come from the inferred schema.
      expect(profile.fixtures.map((f) => [f.topic, f.rejects ?? null])).toEqual([
        ["events", null],
        ["events", null],
        ["events", null],
        ["events", "bad_json"],
        ["events", "bad_schema"],
        ["hb", null],
        ["hb", null],
        ["hb", "bad_json"],
        ["hb", "bad_schema"],
        ["raw", null],
        ["raw", null],
      ]);
      expect(checkProfile(profile)).toEqual(["emits is empty", 'scaip.dty "????" is not four digits']);
      // The samples file ata conform reads: every observed payload decodes (to nothing, yet).
      const lines = draft.samplesJsonl
        .split("\n")
        .map((l) => JSON.parse(l) as { topic: string; payload?: unknown; payloadHex?: string });
      expect(lines).toHaveLength(7);
      const results = checkSamples(
        profile,
        lines.map((l) => ({
          topic: l.topic,
          payload: l.payloadHex ? Buffer.from(l.payloadHex, "hex") : Buffer.from(JSON.stringify(l.payload)),
        })),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      // A raw payload of another length is refused by the drafted length check.
      expect(() =>
        profile.decode({
          topic: "raw",
          payload: Buffer.from("01", "hex"),
          receivedAt: new Date(T0).toISOString(),
        }),
      ).toThrow(/raw: 1 bytes; every sample had 5/);
    });
  });
});
