/**
 * The dead-letter store stays bounded under a flood of refused publishes: per device and in total
 * (rows and bytes), oldest first, every deletion counted durably and in /metrics, and a stored
 * payload never larger than the largest accepted one. Real gateway, real MQTT.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { deadLetterUsage } from "../../src/store/dead-letter-quota.js";
import {
  api,
  connectDevice,
  deviceIdFor,
  publish,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

const A = deviceIdFor("ata/native");
const B = deviceIdFor("scaip/pendant");
/** The test configuration's mqtt section, with its 4 KiB payload limit. */
const MQTT = {
  tcp: { host: "127.0.0.1", port: 0 },
  ws: { host: "127.0.0.1", port: 0 },
  maxPayloadBytes: 4096,
};

/** Refused (not JSON), numbered so the test can tell which were kept. */
const junk = (n: number, pad = 0) => Buffer.from(`{"not json ${n} ${"z".repeat(pad)}`);

async function flood(client: MqttClient, deviceId: string, payloads: Buffer[]): Promise<void> {
  const topic = deviceTopic(deviceId, deviceId === A ? "events" : "scaip");
  // Pipelined on one connection: they arrive, and are logged, in order.
  await Promise.all(payloads.map((p) => publish(client, topic, p)));
}

function kept(t: TestGateway, deviceId: string): string[] {
  return (
    t.gateway.db
      .prepare("SELECT payload FROM dead_letters WHERE device_id = ? ORDER BY id")
      .all(deviceId) as {
      payload: Buffer;
    }[]
  ).map((r) => r.payload.toString());
}

async function droppedMetric(t: TestGateway): Promise<Record<string, number>> {
  const m = await t.gateway.metrics.registry.getSingleMetric("ata_dead_letters_dropped_total")!.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.reason), v.value]));
}

/** What the triggers keep, checked against the table itself. */
function counted(t: TestGateway): { letters: number; bytes: number } {
  return t.gateway.db
    .prepare(
      "SELECT count(*) AS letters, coalesce(sum(length(payload) + octet_length(reason) + octet_length(topic)), 0) AS bytes FROM dead_letters",
    )
    .get() as { letters: number; bytes: number };
}

describe("dead-letter quotas", () => {
  const clients: MqttClient[] = [];
  const gateways: TestGateway[] = [];
  const dirs: string[] = [];
  const start = async (ingest: Record<string, unknown>, dir?: string) => {
    const t = await startGateway({
      ...(dir ? { dir, keepDir: true } : {}),
      overrides: { mqtt: MQTT, ingest },
    });
    gateways.push(t);
    return t;
  };
  const connect = async (t: TestGateway, deviceId: string, profile: string) => {
    const c = await connectDevice(t.mqttPort, deviceId, secretFor(profile));
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    for (const t of gateways.splice(0)) await t.stop();
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it.each(["worker", "inline"])(
    "a device flooding refused publishes keeps only its newest perDevice rows; the others' stay (%s writer)",
    async (writer) => {
      const t = await start({ writer, deadLetters: { perDevice: 50, total: 10_000 } });
      const a = await connect(t, A, "ata/native");
      const b = await connect(t, B, "scaip/pendant");
      await flood(
        b,
        B,
        Array.from({ length: 5 }, (_, i) => junk(i)),
      );
      await flood(
        a,
        A,
        Array.from({ length: 120 }, (_, i) => junk(i)),
      );

      expect(kept(t, A)).toEqual(Array.from({ length: 50 }, (_, i) => junk(70 + i).toString()));
      expect(kept(t, B)).toHaveLength(5);
      const usage = deadLetterUsage(t.gateway.db);
      expect(usage.dropped).toEqual({ device: 70, total: 0 });
      expect(await droppedMetric(t)).toEqual({ device_quota: 70, total_quota: 0 });
      expect({ letters: usage.letters, bytes: usage.bytes }).toEqual(counted(t));

      const res = await api(t.httpUrl, "GET", `/api/v1/dead-letters?device=${A}&limit=5`);
      expect(res.status).toBe(200);
      expect(res.body.deadLetters).toHaveLength(5);
      expect(res.body.usage).toMatchObject({
        quota: { perDevice: 50, total: 10_000, totalBytes: 268_435_456 },
        letters: 55,
        dropped: { device: 70, total: 0 },
        device: { id: A, letters: 50 },
      });
      const metrics = await t.gateway.metrics.registry.metrics();
      expect(metrics).toMatch(/^ata_dead_letters_stored 55$/m);
      expect(metrics).toMatch(new RegExp(`^ata_dead_letters_stored_bytes ${usage.bytes}$`, "m"));
    },
  );

  it("the total quota deletes the oldest of anyone's, by rows and by bytes", async () => {
    const t = await start({ deadLetters: { perDevice: 1000, total: 60 } });
    const a = await connect(t, A, "ata/native");
    const b = await connect(t, B, "scaip/pendant");
    await flood(
      a,
      A,
      Array.from({ length: 40 }, (_, i) => junk(i)),
    );
    await flood(
      b,
      B,
      Array.from({ length: 40 }, (_, i) => junk(i)),
    );
    expect(kept(t, A)).toEqual(Array.from({ length: 20 }, (_, i) => junk(20 + i).toString()));
    expect(kept(t, B)).toHaveLength(40);
    expect(deadLetterUsage(t.gateway.db).dropped).toEqual({ device: 0, total: 20 });
    expect(await droppedMetric(t)).toEqual({ device_quota: 0, total_quota: 20 });
    await t.stop();
    gateways.pop();

    // 1 MiB in all; each payload is over the 4 KiB limit and stored cut to 4096 bytes.
    const budget = 1_048_576;
    const u = await start({ deadLetters: { perDevice: 1000, total: 10_000, totalBytes: budget } });
    const c = await connect(u, A, "ata/native");
    await flood(
      c,
      A,
      Array.from({ length: 400 }, (_, i) => junk(i, 5000)),
    );
    const usage = deadLetterUsage(u.gateway.db);
    expect({ letters: usage.letters, bytes: usage.bytes }).toEqual(counted(u));
    const rowBytes = usage.bytes / usage.letters;
    expect(usage.bytes).toBeLessThanOrEqual(budget);
    // Full: one more row would not fit, so nothing was deleted that did not have to be.
    expect(usage.bytes + rowBytes).toBeGreaterThan(budget - 64);
    expect(usage.dropped).toEqual({ device: 0, total: 400 - usage.letters });
    expect(kept(u, A).at(-1)!.startsWith(junk(399).toString())).toBe(true);
  });

  it("a refused payload is stored cut to maxPayloadBytes, with its whole size and SHA-256", async () => {
    // maxDeadLetterBytes above the payload limit does not let more in.
    const t = await start({ maxDeadLetterBytes: 65_536 });
    const a = await connect(t, A, "ata/native");
    const big = junk(1, 20_000);
    await flood(a, A, [big]);
    const row = t.gateway.db
      .prepare("SELECT code, size, sha256, truncated, length(payload) AS stored, payload FROM dead_letters")
      .get() as {
      code: string;
      size: number;
      sha256: string;
      truncated: number;
      stored: number;
      payload: Buffer;
    };
    expect(row).toMatchObject({ code: "payload_too_large", size: big.length, truncated: 1, stored: 4096 });
    expect(row.sha256).toBe(createHash("sha256").update(big).digest("hex"));
    expect(row.payload.equals(big.subarray(0, 4096))).toBe(true);
  });

  it("after a restart the counts carry on, and a lowered quota is applied at start, counted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ata-dlq-"));
    dirs.push(dir);
    let t = await start({ deadLetters: { perDevice: 30 } }, dir);
    let a = await connect(t, A, "ata/native");
    await flood(
      a,
      A,
      Array.from({ length: 50 }, (_, i) => junk(i)),
    );
    a.end(true);
    await t.stop();
    gateways.pop();

    t = await start({ deadLetters: { perDevice: 30 } }, dir);
    expect(await droppedMetric(t)).toEqual({ device_quota: 20, total_quota: 0 });
    a = await connect(t, A, "ata/native");
    await flood(
      a,
      A,
      Array.from({ length: 10 }, (_, i) => junk(50 + i)),
    );
    expect(kept(t, A)).toEqual(Array.from({ length: 30 }, (_, i) => junk(30 + i).toString()));
    expect(deadLetterUsage(t.gateway.db).dropped).toEqual({ device: 30, total: 0 });
    expect(await droppedMetric(t)).toEqual({ device_quota: 30, total_quota: 0 });
    a.end(true);
    await t.stop();
    gateways.pop();

    // Lowered while the gateway was down: the store is trimmed before the first publish.
    t = await start({ deadLetters: { perDevice: 10 } }, dir);
    expect(kept(t, A)).toEqual(Array.from({ length: 10 }, (_, i) => junk(50 + i).toString()));
    const usage = deadLetterUsage(t.gateway.db);
    expect(usage.dropped).toEqual({ device: 50, total: 0 });
    expect({ letters: usage.letters, bytes: usage.bytes }).toEqual(counted(t));
    expect(await droppedMetric(t)).toEqual({ device_quota: 50, total_quota: 0 });
  });
});
