/**
 * External profile modules as a vendor would write them, as file text: a good JavaScript profile
 * (with a marker so a test can tell two versions apart) and broken ones, each broken in one way.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * `acme/button`: one message per press on `press`. `prefix` goes in front of every eventId, so the
 * version that decoded a publish shows in the event log. `expectedHeld` is what the fixture says a
 * 0.8 s press decodes to: anything but 0.8 is a fixture the decoder does not meet.
 */
export function buttonProfile(opts: { id?: string; prefix?: string; expectedHeld?: number } = {}): string {
  const id = opts.id ?? "acme/button";
  const prefix = opts.prefix ?? "";
  const held = opts.expectedHeld ?? 0.8;
  return `// A vendor's profile: plain JavaScript, no imports; the gateway passes zod and its blocks in.
export default ({ z, blocks }) => {
  const Press = z.looseObject({ id: z.string().regex(/^[a-z0-9-]+$/), ts: blocks.ClockTime.optional(), held: z.number().optional() });
  return {
    id: ${JSON.stringify(id)},
    vendor: "Acme",
    model: "Call button",
    kind: "pendant",
    description: "Wall call button; one message per press on press.",
    topics: ["press"],
    supervision: { heartbeatSec: 300, missedHeartbeats: 3 },
    scaip: { dty: "0003", stc: { "call.manual": "0010" } },
    emits: ["call.manual"],
    decode: blocks.byChannel({
      press: ({ payload, receivedAt }) => {
        const p = blocks.decodeJson(payload, Press, "press");
        return [blocks.event("call.manual", { pressDurationSec: p.held }, { eventId: ${JSON.stringify(prefix)} + p.id, occurredAt: p.ts ?? receivedAt })];
      },
    }),
    fixtures: [
      { name: "a press", topic: "press", payload: { id: "p-1", ts: 1736907185, held: 0.8 },
        expected: [{ type: "call.manual", eventId: ${JSON.stringify(`${prefix}p-1`)}, occurredAt: "2025-01-15T02:13:05.000Z", data: { pressDurationSec: ${held} } }] },
      { name: "a press without a duration", topic: "press", payload: { id: "p-2", ts: 1736907186 },
        expected: [{ type: "call.manual", eventId: ${JSON.stringify(`${prefix}p-2`)}, occurredAt: "2025-01-15T02:13:06.000Z", data: {} }] },
      { name: "a press without a device time", topic: "press", payload: { id: "p-3" },
        expected: [{ type: "call.manual", eventId: ${JSON.stringify(`${prefix}p-3`)}, occurredAt: "2025-01-15T02:14:07.250Z", data: {} }] },
      { name: "no id", topic: "press", payload: { ts: 1736907185 }, expected: [], rejects: "bad_schema" },
    ],
  };
};
`;
}

export function write(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}
