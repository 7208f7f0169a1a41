/**
 * The bytes a device sent are kept exactly: each event's raw payload in the event log and each
 * refused payload in the dead-letter store (cut at maxDeadLetterBytes), also when many publishes of
 * different sizes from several devices share one group commit and one buffer to the writer thread.
 */
import { createHash } from "node:crypto";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const MAX_DEAD = 256;

describe("raw payloads in the event log and the dead-letter store", () => {
  let t: TestGateway;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await startGateway({ overrides: { ingest: { maxDeadLetterBytes: MAX_DEAD } } });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t.stop();
  });

  it("stores every payload's own bytes, in batches mixing devices, sizes and refusals", async () => {
    const native = deviceIdFor("ata/native");
    const pendant = deviceIdFor("scaip/pendant");
    const a = await connectDevice(t.mqttPort, native, secretFor("ata/native"));
    const b = await connectDevice(t.mqttPort, pendant, secretFor("scaip/pendant"));
    clients.push(a, b);

    const good = new Map<string, Buffer>();
    const bad: Buffer[] = [];
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      // Events of growing size, published without waiting, so they group into shared commits.
      const body = Buffer.from(
        JSON.stringify({ eventId: `raw-${i}`, type: "call.manual", data: { pressDurationSec: 1 + i / 10 } }) +
          " ".repeat(i * 7),
      );
      good.set(`raw-${i}`, body);
      sends.push(publish(a, deviceTopic(native, "events"), body));
      if (i % 6 === 0) {
        // Refused payloads in between: short ones kept whole, long ones cut at MAX_DEAD.
        const junk = Buffer.from(`{"not json ${i} ${"z".repeat(i * 10)}`);
        bad.push(junk);
        sends.push(publish(a, deviceTopic(native, "events"), junk));
      }
      sends.push(
        publish(
          b,
          deviceTopic(pendant, "scaip"),
          JSON.stringify({ mty: "AL", dty: "0003", stc: "0010", ref: `A-${900 + i}`, ts: 1736907185 + i }),
        ),
      );
    }
    await Promise.all(sends);

    const logged = t.gateway.db
      .prepare("SELECT event_id, raw FROM events WHERE device_id = ? AND event_id LIKE 'raw-%'")
      .all(native) as { event_id: string; raw: Buffer }[];
    expect(logged).toHaveLength(good.size);
    for (const r of logged) expect(r.raw.equals(good.get(r.event_id)!), r.event_id).toBe(true);

    const dead = t.gateway.db
      .prepare("SELECT payload, size, sha256, truncated FROM dead_letters WHERE device_id = ? ORDER BY id")
      .all(native) as { payload: Buffer; size: number; sha256: string; truncated: number }[];
    expect(dead).toHaveLength(bad.length);
    for (const [i, d] of dead.entries()) {
      const sent = bad[i]!;
      expect(d.size).toBe(sent.length);
      expect(d.sha256).toBe(createHash("sha256").update(sent).digest("hex"));
      expect(d.truncated).toBe(sent.length > MAX_DEAD ? 1 : 0);
      expect(d.payload.equals(sent.subarray(0, MAX_DEAD))).toBe(true);
    }
    expect(dead.some((d) => d.truncated === 1)).toBe(true);
  });
});
