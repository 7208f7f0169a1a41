import { describe, expect, it } from "vitest";
import { fixtureBytes } from "../../devices/conformance.js";
import { PROFILES } from "../../devices/index.js";
import { canonicalise } from "../../src/ingest/pipeline.js";
import { CanonicalEvent } from "../../src/model/event.js";

const DEVICE = { id: "dev-1", siteId: "s", unitId: "u", roomId: "r", residentRef: "R-1" };
const AT = "2026-12-02T10:00:00.000Z";
const AT_MS = Date.parse(AT);

/**
 * A profile's `canonicalChannels` spare the events of those channels a second zod parse. Sound only
 * if the decoder's output on them is what the parse would have made of it: checked on every fixture.
 */
describe("canonicalChannels: events a decoder already checked with the canonical schemas", () => {
  const cases = PROFILES.flatMap((p) =>
    (p.canonicalChannels ?? []).flatMap((channel) =>
      p.fixtures
        .filter((f) => f.topic === channel && !f.rejects)
        .map((f) => ({ profile: p, channel, fixture: f })),
    ),
  );

  it("at least the native profile declares one, with fixtures on it", () => {
    expect(cases.some((c) => c.profile.id === "ata/native")).toBe(true);
  });

  for (const { profile, channel, fixture } of cases)
    it(`${profile.id} ${channel}: "${fixture.name}" comes out the same unchecked as checked`, () => {
      const decoded = profile.decode({ topic: channel, payload: fixtureBytes(fixture), receivedAt: AT });
      const unchecked = canonicalise(DEVICE, "k", decoded, AT, AT_MS, true);
      const checked = canonicalise(DEVICE, "k", decoded, AT, AT_MS, false);
      expect(typeof checked).not.toBe("string");
      expect(unchecked).toEqual(checked);
      for (const { placement: _, ...e } of unchecked as { placement: unknown }[])
        expect(CanonicalEvent.safeParse(e).success).toBe(true);
    });

  it("a vendor profile's output is still checked: a bad event is refused", () => {
    const bad = [{ type: "fall.detected", data: { confidence: 7 } }] as never;
    expect(canonicalise(DEVICE, "k", bad, AT, AT_MS, false)).toMatch(
      /event 0 \(fall.detected\): data.confidence/,
    );
  });
});
