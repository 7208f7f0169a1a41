/**
 * Fuzzing every device profile end to end: mutated payloads (from each profile's fixtures) published
 * with QoS 1 by a real MQTT client subscribed to its own error topic. Every publish is acknowledged,
 * and is either logged (event rows or duplicate traces, as many as its decoded events) or refused
 * with exactly one dead-letter row and one error-topic message carrying a catalogue code that
 * agrees with what the profile's pure decoder says. Stored events must still be valid canonical
 * events. Replay a failure with the FUZZ_SEED it prints.
 */
import { createHash } from "node:crypto";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureBytes } from "../../devices/conformance.js";
import { PROFILES } from "../../devices/index.js";
import { deviceTopic, errorTopic } from "../../src/broker/topics.js";
import { ERRORS } from "../../src/errors.js";
import { CanonicalEvent, SCHEMA_VERSION } from "../../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../../src/model/profile.js";
import {
  BAD_UTF8,
  deepNestingText,
  describeGrowth,
  fuzzSeed,
  MiB,
  memorySample,
  mutateBytes,
  mutateJson,
  mutateJsonText,
  Rng,
  replayHint,
} from "../helpers/fuzz.js";
import {
  connectDevice,
  deviceIdFor,
  eventually,
  secretFor,
  startGateway,
  type TestGateway,
} from "../helpers/gateway.js";

/** Publishes per profile (six profiles). */
const PER_PROFILE = 600;
/** QoS 1 publishes a device keeps unacknowledged at once. */
const WINDOW = 100;
/** A PUBACK must come within this even with every device's window full. */
const PUBACK_BOUND_MS = 5000;
/** The test configuration's mqtt.maxPayloadBytes (test/helpers/gateway.ts). */
const MAX_PAYLOAD = 4096;
const HEAP_BOUND = 64 * MiB;
const RSS_BOUND = 384 * MiB;

interface Input {
  channel: string;
  payload: Buffer;
  how: string;
}

type Expected =
  | { kind: "rejected"; code: string }
  /** Events: logged, or (a vendor decoder's output failing the canonical model) bad_schema. */
  | { kind: "events"; n: number; mayBeBadSchema: boolean }
  | { kind: "crash"; error: string };

const RECEIVED_AT = new Date().toISOString();

/** What the gateway must do with a publish, from the profile's pure decoder (docs/mqtt-contract.md). */
function expectedOutcome(profile: DeviceProfile, input: Input): Expected {
  if (input.payload.length > MAX_PAYLOAD) return { kind: "rejected", code: "payload_too_large" };
  if (!profile.topics.includes(input.channel)) return { kind: "rejected", code: "unknown_topic" };
  try {
    const events = profile.decode({ topic: input.channel, payload: input.payload, receivedAt: RECEIVED_AT });
    const checked = profile.canonicalChannels?.includes(input.channel) ?? false;
    return { kind: "events", n: events.length, mayBeBadSchema: !checked };
  } catch (err) {
    if (err instanceof DecodeError) return { kind: "rejected", code: err.code };
    return { kind: "crash", error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** Channels a device may publish on by the topic grammar that its profile does not declare. */
const FOREIGN_CHANNELS = [
  "nonsense",
  "x",
  "events2",
  "up-link",
  "a_b",
  "z".repeat(32),
  "heartbeat",
  "cycle",
  "scaip",
];

function generate(profile: DeviceProfile, rng: Rng, n: number): Input[] {
  const fixtures = profile.fixtures.map((f) => ({
    channel: f.topic,
    bytes: fixtureBytes(f),
    json: f.payloadHex === undefined ? f.payload : undefined,
  }));
  const donors = fixtures.flatMap((f) => (f.json === undefined ? [] : [f.json]));
  const donorBytes = fixtures.map((f) => f.bytes);
  const inputs: Input[] = [];
  for (let i = 0; i < n; i++) {
    const f = rng.pick(fixtures);
    const how = rng.weighted<string>([
      [f.json === undefined ? 0 : 50, "json"],
      [f.json === undefined ? 0 : 10, "json-text"],
      [20, "bytes"],
      [8, "fixture"],
      [4, "oversized"],
      [5, "channel"],
      [6, "generic"],
    ]);
    let payload: Buffer;
    let channel = f.channel;
    switch (how) {
      case "json":
        payload = Buffer.from(JSON.stringify(mutateJson(rng, f.json, donors)) ?? "");
        break;
      case "json-text":
        payload = Buffer.from(mutateJsonText(rng, JSON.stringify(f.json)));
        break;
      case "bytes":
        payload = mutateBytes(rng, f.bytes, donorBytes);
        break;
      case "fixture":
        payload = f.bytes;
        break;
      case "oversized": {
        // At, just over and far over the limit.
        const size = rng.pick([MAX_PAYLOAD, MAX_PAYLOAD + 1, MAX_PAYLOAD * 4, 200 * 1024]);
        const pad = Buffer.alloc(Math.max(0, size - f.bytes.length), 0x20);
        payload = Buffer.concat([f.bytes, pad]).subarray(0, size);
        break;
      }
      case "channel":
        channel = rng.pick(FOREIGN_CHANNELS.filter((c) => !profile.topics.includes(c)));
        payload = f.bytes;
        break;
      default:
        channel = rng.pick(profile.topics);
        payload = rng.pick<() => Buffer>([
          () => Buffer.alloc(0),
          () => Buffer.from("null"),
          () => Buffer.from("[]"),
          () => Buffer.from("{}"),
          () => Buffer.from('""'),
          () => Buffer.from("0"),
          () => Buffer.from("1e400"),
          () => Buffer.from(deepNestingText(rng.pick([100, 1000, 2000]))),
          () => Buffer.alloc(rng.int(1, 64), 0),
          () => rng.bytes(rng.int(1, 256)),
          () => Buffer.concat([Buffer.from('{"a":"'), rng.pick(BAD_UTF8), Buffer.from('"}')]),
          () => Buffer.from(`{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}`),
        ])();
    }
    inputs.push({ channel, payload, how });
  }
  return inputs;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("device payload fuzz, every profile", () => {
  let t: TestGateway;
  const clients: MqttClient[] = [];
  const seed = fuzzSeed();

  beforeAll(async () => {
    // Each device sends 600 publishes in a few seconds, past the per-device rate limit (a real
    // device sends a few a minute): lifted here, so every outcome is the decoder's.
    t = await startGateway({
      overrides: { ingest: { deviceRate: { perSec: 100_000, burst: 1_000_000 } } },
    });
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t?.stop();
  });

  it(`${PER_PROFILE} mutated payloads per profile: each acknowledged, logged or dead-lettered with one error message, memory bounded`, {
    timeout: 90_000,
  }, async () => {
    const root = new Rng(seed, "device-payloads");
    const db = t.gateway.db;
    const memBefore = memorySample();
    const started = performance.now();
    const failures: string[] = [];
    const summary: string[] = [];
    let maxPuback = 0;

    await Promise.all(
      PROFILES.map(async (profile) => {
        const rng = root.fork(profile.id);
        const id = deviceIdFor(profile.id);
        const inputs = generate(profile, rng, PER_PROFILE);
        const client = await connectDevice(t.mqttPort, id, secretFor(profile.id));
        clients.push(client);
        let closes = 0;
        client.on("close", () => closes++);
        const errors: { code: string; topic: string; message: string }[] = [];
        client.on("message", (_topic, payload) => errors.push(JSON.parse(payload.toString())));
        await client.subscribeAsync(errorTopic(id), { qos: 1 });
        const deadBefore = (
          db.prepare("SELECT coalesce(max(id), 0) AS m FROM dead_letters").get() as { m: number }
        ).m;

        // Pipelined: up to WINDOW unacknowledged at once, each timed to its PUBACK.
        let next = 0;
        const acked: boolean[] = new Array(inputs.length).fill(false);
        const worker = async () => {
          for (;;) {
            const i = next++;
            if (i >= inputs.length) return;
            const input = inputs[i]!;
            const t0 = performance.now();
            await new Promise<void>((resolve) => {
              client.publish(deviceTopic(id, input.channel), input.payload, { qos: 1 }, (err) => {
                const ms = performance.now() - t0;
                maxPuback = Math.max(maxPuback, ms);
                if (err)
                  failures.push(`${profile.id}: no PUBACK (${err.message}): ${replayHint(rng, i, input)}`);
                else if (ms > PUBACK_BOUND_MS)
                  failures.push(
                    `${profile.id}: PUBACK after ${ms.toFixed(0)} ms: ${replayHint(rng, i, input)}`,
                  );
                else acked[i] = true;
                resolve();
              });
            });
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, worker));

        const dead = () =>
          db
            .prepare(
              "SELECT id, topic, code, reason, size, sha256 FROM dead_letters WHERE device_id = ? AND id > ? ORDER BY id",
            )
            .all(id, deadBefore) as {
            id: number;
            topic: string;
            code: string;
            reason: string;
            size: number;
            sha256: string;
          }[];
        // Error messages follow their commits: wait until there is one per dead letter (or too many).
        await eventually(() => errors.length >= dead().length, 10_000).catch(() => {});
        const rows = dead();

        // Match dead letters to publishes by topic and bytes (the same bytes are refused alike).
        const byKey = new Map<string, (typeof rows)[number][]>();
        for (const r of rows) {
          const k = `${r.topic}|${r.sha256}`;
          byKey.set(k, [...(byKey.get(k) ?? []), r]);
        }
        let expectedEvents = 0;
        let rejected = 0;
        const counts = new Map<string, number>();
        inputs.forEach((input, i) => {
          const want = expectedOutcome(profile, input);
          const where = () =>
            `${profile.id}: ${replayHint(rng, i, { channel: input.channel, how: input.how, payload: input.payload })}`;
          if (want.kind === "crash") {
            failures.push(`decoder threw ${want.error}, not a DecodeError: ${where()}`);
            return;
          }
          const row = byKey.get(`${deviceTopic(id, input.channel)}|${sha256(input.payload)}`)?.shift();
          if (row) {
            rejected++;
            counts.set(row.code, (counts.get(row.code) ?? 0) + 1);
            if (!Object.hasOwn(ERRORS, row.code))
              failures.push(`code ${row.code} is not in the catalogue: ${where()}`);
            const agrees =
              want.kind === "rejected"
                ? row.code === want.code
                : want.mayBeBadSchema && row.code === "bad_schema";
            if (!agrees)
              failures.push(
                `dead-lettered ${row.code} (${row.reason}), decoder says ${JSON.stringify(want)}: ${where()}`,
              );
            if (row.size !== input.payload.length) failures.push(`dead letter size ${row.size}: ${where()}`);
          } else if (want.kind === "rejected") {
            failures.push(`accepted, but the decoder rejects it with ${want.code}: ${where()}`);
          } else {
            counts.set("accepted", (counts.get("accepted") ?? 0) + 1);
            expectedEvents += want.n;
          }
        });
        for (const left of byKey.values())
          for (const r of left)
            failures.push(`${profile.id}: dead letter ${r.id} (${r.code}) matches no publish`);

        // One error-topic message per dead letter, in the same order, with the same code and topic.
        if (errors.length !== rows.length)
          failures.push(`${profile.id}: ${errors.length} error messages for ${rows.length} dead letters`);
        rows.forEach((r, k) => {
          const e = errors[k];
          if (!e || e.code !== r.code || e.topic !== r.topic)
            failures.push(
              `${profile.id}: error message ${k} ${JSON.stringify(e)} for dead letter ${r.code} on ${r.topic}`,
            );
        });

        // Each accepted publish left as many event rows or duplicate traces as it decoded to.
        const logged = db
          .prepare(
            "SELECT * FROM events WHERE device_id = ? AND type NOT IN ('device.online', 'device.offline')",
          )
          .all(id) as Record<string, unknown>[];
        const dups = (
          db
            .prepare("SELECT count(*) AS n FROM duplicates WHERE device_id = ? AND topic IS NOT 'gateway'")
            .get(id) as {
            n: number;
          }
        ).n;
        if (logged.length + dups !== expectedEvents)
          failures.push(
            `${profile.id}: ${logged.length} events + ${dups} duplicates logged, the accepted publishes decode to ${expectedEvents}`,
          );
        // What was stored is still a valid canonical event (the native profile's events skip the
        // gateway's second check: this is where a gap in its own would show).
        for (const r of logged) {
          const ev = {
            eventId: r.event_id,
            schemaVersion: SCHEMA_VERSION,
            type: r.type,
            deviceId: r.device_id,
            occurredAt: new Date(r.occurred_at as number).toISOString(),
            receivedAt: new Date(r.received_at as number).toISOString(),
            phase: r.phase,
            ...(r.priority === null ? {} : { priority: r.priority }),
            ...(r.device_seq === null ? {} : { seq: r.device_seq }),
            data: JSON.parse(r.data as string),
          };
          const ok = CanonicalEvent.safeParse(ev);
          if (!ok.success)
            failures.push(
              `${profile.id}: stored event is not canonical (${ok.error.issues[0]?.message}): ${JSON.stringify(ev)}`,
            );
        }
        if (closes) failures.push(`${profile.id}: the device's connection closed ${closes} times`);
        if (acked.some((a) => !a))
          failures.push(`${profile.id}: ${acked.filter((a) => !a).length} publishes not acknowledged`);
        summary.push(
          `  ${profile.id}: ${inputs.length} publishes, ${rejected} dead-lettered, ${logged.length} events, ${dups} duplicates; ${[...counts].map(([k, v]) => `${k} ${v}`).join(", ")}`,
        );
      }),
    );
    const ms = performance.now() - started;

    const health = await fetch(`${t.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const memAfter = memorySample();
    console.log(
      [
        `device-payloads: FUZZ_SEED=${seed}, ${PER_PROFILE * PROFILES.length} publishes in ${(ms / 1000).toFixed(1)} s, slowest PUBACK ${maxPuback.toFixed(0)} ms`,
        `memory: ${describeGrowth(memBefore, memAfter)}`,
        ...summary,
      ].join("\n"),
    );
    expect(failures.slice(0, 30), `${failures.length} failures, seed ${seed}`).toEqual([]);
    expect(memAfter.heapUsed - memBefore.heapUsed, describeGrowth(memBefore, memAfter)).toBeLessThan(
      HEAP_BOUND,
    );
    expect(memAfter.rss - memBefore.rss, describeGrowth(memBefore, memAfter)).toBeLessThan(RSS_BOUND);
  });
});
