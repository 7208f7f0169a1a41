/**
 * Fuzzing the MQTT listener with broken and mutated frames on raw TCP sockets, before and after a
 * valid CONNECT, while a well-behaved device keeps publishing QoS 1 events beside them. The gateway
 * must stay up, keep acknowledging that device within a bound, close what breaks the protocol, and
 * not grow its memory. Replay a failure with the FUZZ_SEED it prints.
 */
import { connect as tcpConnect } from "node:net";
import type { MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { deviceTopic } from "../../src/broker/topics.js";
import {
  describeGrowth,
  fuzzSeed,
  MiB,
  memorySample,
  mutateBytes,
  pool,
  Rng,
  replayHint,
} from "../helpers/fuzz.js";
import { connectDevice, deviceIdFor, secretFor, startGateway, type TestGateway } from "../helpers/gateway.js";
import { connectFrame } from "../helpers/mqtt-frames.js";

const CASES = 3000;
/** Raw sockets open at once. */
const PARALLEL = 24;
/** A PUBACK for the well-behaved device must come within this, however busy the fuzz keeps the broker. */
const PUBACK_BOUND_MS = 2000;
/** Heap growth after a forced GC, and RSS growth, across the whole fuzz. */
const HEAP_BOUND = 48 * MiB;
const RSS_BOUND = 256 * MiB;
/** How long a raw socket the gateway leaves open is kept before the test closes it. */
const LINGER_MS = 150;
/** How long a frame that must close the connection may take to do so. */
const MUST_CLOSE_MS = 2000;

const GOOD = deviceIdFor("ata/native");
const GOOD_SECRET = secretFor("ata/native");
/** The raw sessions sign in as the other profiles' devices, never as the well-behaved device. */
const OTHERS = PROFILES.filter((p) => p.id !== "ata/native").map((p) => ({
  id: deviceIdFor(p.id),
  secret: secretFor(p.id),
  channel: p.topics[0]!,
}));

const gen = (packet: Record<string, unknown>): Buffer =>
  mqttPacket.generate(packet as unknown as mqttPacket.Packet);

/** Remaining-length bytes (MQTT 3.1.1 section 2.2.3) for hand-built frames. */
function varLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** A PUBLISH built by hand: any first byte, any topic bytes, a packet id when asked. */
function rawPublish(first: number, topic: Buffer, payload: Buffer, packetId: number | null): Buffer {
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]),
    topic,
    packetId === null ? Buffer.alloc(0) : Buffer.from([packetId >> 8, packetId & 0xff]),
    payload,
  ]);
  return Buffer.concat([Buffer.from([first]), varLength(body.length), body]);
}

type Phase = "before-connect" | "after-connect";
interface Case {
  phase: Phase;
  kind: string;
  /** Written in order, each chunk in its own write, with a short pause between some. */
  chunks: Buffer[];
  /** The gateway must close the connection by itself (a protocol violation it can see whole). */
  mustClose: boolean;
}

/** Well-formed frames of every type a client could send (and some only a server may), as seeds. */
function seedFrames(dev: { id: string; secret: string; channel: string }, rng: Rng): Buffer[] {
  const own = deviceTopic(dev.id, dev.channel);
  const payload = Buffer.from(JSON.stringify({ type: "call.manual", data: {} }));
  return [
    gen({
      cmd: "publish",
      topic: own,
      payload,
      qos: 1,
      messageId: rng.int(1, 65535),
      retain: false,
      dup: false,
    }),
    gen({ cmd: "publish", topic: own, payload, qos: 0, retain: false, dup: false }),
    gen({
      cmd: "publish",
      topic: own,
      payload,
      qos: 2,
      messageId: rng.int(1, 65535),
      retain: true,
      dup: true,
    }),
    gen({
      cmd: "publish",
      topic: deviceTopic(dev.id, "status"),
      payload: "online",
      qos: 1,
      messageId: 7,
      retain: true,
    }),
    gen({ cmd: "publish", topic: deviceTopic(GOOD, "events"), payload, qos: 1, messageId: 9 }),
    gen({ cmd: "publish", topic: deviceTopic(dev.id, "errors"), payload, qos: 1, messageId: 10 }),
    gen({
      cmd: "subscribe",
      messageId: 3,
      subscriptions: [{ topic: deviceTopic(dev.id, "errors"), qos: 1 }],
    }),
    gen({
      cmd: "subscribe",
      messageId: 4,
      subscriptions: [
        { topic: "#", qos: 2 },
        { topic: "$SYS/#", qos: 0 },
      ],
    }),
    gen({ cmd: "unsubscribe", messageId: 5, unsubscriptions: [deviceTopic(dev.id, "errors"), "#"] }),
    gen({ cmd: "puback", messageId: rng.int(0, 65535) }),
    gen({ cmd: "pubrec", messageId: rng.int(0, 65535) }),
    gen({ cmd: "pubrel", messageId: rng.int(0, 65535) }),
    gen({ cmd: "pubcomp", messageId: rng.int(0, 65535) }),
    gen({ cmd: "pingreq" }),
    gen({ cmd: "connack", returnCode: 0, sessionPresent: false }),
    gen({ cmd: "suback", messageId: 3, granted: [1] }),
    connectFrame(dev.id, dev.secret),
    Buffer.from([0xe0, 0x00]), // DISCONNECT
  ];
}

function beforeConnectCase(rng: Rng): Case {
  const dev = rng.pick(OTHERS);
  const connects = [
    connectFrame(dev.id, dev.secret),
    connectFrame(dev.id, `${dev.secret}x`),
    connectFrame(dev.id, null),
    connectFrame(`unknown-${rng.int(0, 9)}`, "nope"),
    connectFrame("", null, { clean: true }),
    connectFrame(dev.id, dev.secret, { protocolId: "MQIsdp", protocolVersion: 3 }),
    connectFrame(dev.id, dev.secret, { protocolVersion: 5 }),
    connectFrame(dev.id, dev.secret, {
      will: { topic: deviceTopic(dev.id, "status"), payload: Buffer.from("offline"), qos: 1, retain: true },
    }),
    connectFrame(dev.id, dev.secret, { keepalive: 0 }),
    connectFrame(dev.id, dev.secret, { keepalive: 65535, clean: false }),
  ];
  const kind = rng.weighted<string>([
    [4, "mutated-connect"],
    [2, "garbage"],
    [2, "other-packet-first"],
    [1, "reserved-type"],
    [1, "oversized-length"],
    [1, "bad-length-encoding"],
    [2, "partial-then-close"],
    [1, "connect-split-bytewise"],
  ]);
  switch (kind) {
    case "mutated-connect":
      return {
        phase: "before-connect",
        kind,
        chunks: [mutateBytes(rng, rng.pick(connects), connects)],
        mustClose: false,
      };
    case "garbage":
      return { phase: "before-connect", kind, chunks: [rng.bytes(rng.int(1, 512))], mustClose: false };
    case "other-packet-first": {
      // [MQTT-3.1.0-1]: the first packet must be a CONNECT; a complete other one closes.
      const frames = seedFrames(dev, rng).filter((f) => f[0]! >> 4 !== 1);
      return { phase: "before-connect", kind, chunks: [rng.pick(frames)], mustClose: true };
    }
    case "reserved-type":
      return {
        phase: "before-connect",
        kind,
        chunks: [
          Buffer.concat([Buffer.from([rng.pick([0x00, 0x0f, 0xf0, 0xff])]), Buffer.from([0x02, 0xde, 0xad])]),
        ],
        mustClose: true,
      };
    case "oversized-length": {
      // Declared beyond mqtt.maxFrameBytes (256 KiB), up to the 4-byte maximum: closed unread.
      const declared = rng.pick([256 * 1024 + 1, 1 << 20, 268_435_455]);
      const first = rng.pick([0x10, 0x30, 0x32, 0x82]);
      return {
        phase: "before-connect",
        kind,
        chunks: [Buffer.concat([Buffer.from([first]), varLength(declared), rng.bytes(rng.int(0, 64))])],
        mustClose: true,
      };
    }
    case "bad-length-encoding":
      // Five continuation bytes: a malformed remaining length (section 2.2.3 allows four).
      return {
        phase: "before-connect",
        kind,
        chunks: [Buffer.from([rng.pick([0x10, 0x30, 0xc0]), 0xff, 0xff, 0xff, 0xff, 0x7f])],
        mustClose: true,
      };
    case "partial-then-close": {
      const whole = rng.pick(connects);
      return {
        phase: "before-connect",
        kind,
        chunks: [whole.subarray(0, rng.int(1, whole.length - 1))],
        mustClose: false,
      };
    }
    default: {
      const whole = rng.pick(connects);
      return {
        phase: "before-connect",
        kind,
        chunks: [...whole].map((b) => Buffer.from([b])),
        mustClose: false,
      };
    }
  }
}

function afterConnectCase(rng: Rng): Case {
  const dev = rng.pick(OTHERS);
  const own = Buffer.from(deviceTopic(dev.id, dev.channel));
  const seeds = seedFrames(dev, rng);
  const kind = rng.weighted<string>([
    [4, "mutated-frames"],
    [1, "publish-bad-topic-utf8"],
    [1, "publish-qos3"],
    [1, "publish-length-mismatch"],
    [1, "publish-qos1-id-0"],
    [1, "second-connect"],
    [1, "oversized-length"],
    [1, "reserved-type"],
    [1, "split-frames"],
  ]);
  const frames: Buffer[] = [];
  let mustClose = false;
  switch (kind) {
    case "mutated-frames":
      for (let i = rng.int(1, 4); i > 0; i--) frames.push(mutateBytes(rng, rng.pick(seeds), seeds));
      break;
    case "publish-bad-topic-utf8": {
      // [MQTT-1.5.3-1]: a topic that is not well-formed UTF-8 (or holds U+0000) is a protocol error.
      const bad = rng.pick([
        Buffer.from([0xff, 0xfe]),
        Buffer.from([0xc0, 0x80]),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from([0x00]),
      ]);
      const topic = Buffer.concat([own.subarray(0, rng.int(0, own.length)), bad]);
      frames.push(rawPublish(0x32, topic, Buffer.from("{}"), rng.int(1, 65535)));
      mustClose = true;
      break;
    }
    case "publish-qos3":
      // [MQTT-3.3.1-4]: QoS bits 11 are malformed.
      frames.push(rawPublish(rng.pick([0x36, 0x37, 0x3e, 0x3f]), own, Buffer.from("{}"), 1));
      mustClose = true;
      break;
    case "publish-length-mismatch": {
      // The topic length runs past the frame, or the frame is shorter than its header says.
      const f = rawPublish(0x32, own, Buffer.from('{"type":"call.manual","data":{}}'), 11);
      if (rng.chance(0.5)) f.writeUInt16BE(rng.int(f.length, 0xffff), 2);
      else f[1] = Math.min(127, f[1]! + rng.int(1, 40));
      frames.push(f);
      break;
    }
    case "publish-qos1-id-0":
      frames.push(rawPublish(0x32, own, Buffer.from('{"type":"call.manual","data":{}}'), 0));
      break;
    case "second-connect":
      // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
      frames.push(connectFrame(dev.id, dev.secret));
      mustClose = true;
      break;
    case "oversized-length":
      frames.push(Buffer.concat([Buffer.from([0x32]), varLength(rng.pick([262_145, 10 << 20])), own]));
      mustClose = true;
      break;
    case "reserved-type":
      frames.push(Buffer.from([rng.pick([0x00, 0xf0]), 0x00]));
      mustClose = true;
      break;
    default: {
      // Valid and mutated frames cut at random points across writes.
      const all = Buffer.concat([rng.pick(seeds), mutateBytes(rng, rng.pick(seeds)), rng.pick(seeds)]);
      let at = 0;
      while (at < all.length) {
        const n = rng.int(1, 24);
        frames.push(all.subarray(at, at + n));
        at += n;
      }
    }
  }
  return { phase: "after-connect", kind, chunks: [connectFrame(dev.id, dev.secret), ...frames], mustClose };
}

/** What happened to one raw socket. */
interface Outcome {
  closedByGateway: boolean;
  ms: number;
}

function runCase(port: number, c: Case, rng: Rng): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = tcpConnect(port, "127.0.0.1");
    socket.setNoDelay(true);
    socket.on("error", () => {});
    socket.resume();
    let settled = false;
    let lingering: NodeJS.Timeout | null = null;
    const finish = (closedByGateway: boolean) => {
      if (settled) return;
      settled = true;
      if (lingering) clearTimeout(lingering);
      socket.destroy();
      resolve({ closedByGateway, ms: performance.now() - t0 });
    };
    socket.once("close", () => finish(true));
    socket.once("connect", async () => {
      for (const chunk of c.chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        // Some pauses so frames arrive in separate reads, not always coalesced.
        if (rng.chance(0.1)) await new Promise((r) => setTimeout(r, 2));
      }
      // After a valid CONNECT, give the gateway time to answer it before judging the rest.
      lingering = setTimeout(() => finish(false), c.mustClose ? MUST_CLOSE_MS : LINGER_MS);
    });
  });
}

describe("MQTT packet fuzz", () => {
  let t: TestGateway;
  let good: MqttClient;
  const seed = fuzzSeed();

  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, connectTimeoutMs: 500 },
      },
    });
    // Each raw session's device connects once first: a known pair is not held back by the CONNECT
    // throttle the fuzz's bad credentials trip for 127.0.0.1 (docs/mqtt-contract.md, Connecting).
    for (const d of OTHERS) (await connectDevice(t.mqttPort, d.id, d.secret)).end(true);
    good = await connectDevice(t.mqttPort, GOOD, GOOD_SECRET);
  }, 30_000);
  afterAll(async () => {
    good?.end(true);
    await t?.stop();
  });

  it(`${CASES} broken frames keep the gateway up, the good device acknowledged within ${PUBACK_BOUND_MS} ms and memory bounded`, {
    timeout: 90_000,
  }, async () => {
    const rng = new Rng(seed, "mqtt-packets");
    const cases: Case[] = Array.from({ length: CASES }, (_, i) =>
      (i % 2 === 0 ? beforeConnectCase : afterConnectCase)(rng.fork(`case-${i}`)),
    );
    const memBefore = memorySample();
    const started = performance.now();

    // The well-behaved device: a QoS 1 event every 20 ms, each timed to its PUBACK.
    let goodClosed = 0;
    good.on("close", () => goodClosed++);
    const latencies: number[] = [];
    const goodErrors: string[] = [];
    let sent = 0;
    let stopGood = false;
    const goodLoop = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (!stopGood) {
        const n = ++sent;
        const t0 = performance.now();
        const body = JSON.stringify({
          eventId: `good-${n}`,
          type: "device.heartbeat",
          data: { battery: 80 },
        });
        const p = new Promise<void>((resolve) => {
          good.publish(deviceTopic(GOOD, "events"), body, { qos: 1 }, (err) => {
            if (err) goodErrors.push(`good-${n}: ${err.message}`);
            else latencies.push(performance.now() - t0);
            resolve();
          });
        });
        inFlight.add(p);
        void p.then(() => inFlight.delete(p));
        await new Promise((r) => setTimeout(r, 20));
      }
      await Promise.all(inFlight);
    })();

    const outcomes: (Outcome | undefined)[] = new Array(CASES);
    const failures: string[] = [];
    await pool(cases, PARALLEL, async (c, i) => {
      const o = await runCase(t.mqttPort, c, rng.fork(`run-${i}`));
      outcomes[i] = o;
      if (c.mustClose && !o.closedByGateway)
        failures.push(`${c.phase}/${c.kind} left open: ${replayHint(rng, i, Buffer.concat(c.chunks))}`);
    });
    stopGood = true;
    await goodLoop;
    const fuzzMs = performance.now() - started;

    // Still serving: a fresh connection is accepted and /healthz answers ok.
    const fresh = await connectDevice(t.mqttPort, OTHERS[0]!.id, OTHERS[0]!.secret);
    expect(fresh.connected).toBe(true);
    fresh.end(true);
    const health = await fetch(`${t.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok" });

    const memAfter = memorySample();
    const byKind = new Map<string, { n: number; closed: number }>();
    cases.forEach((c, i) => {
      const k = `${c.phase}/${c.kind}`;
      const e = byKind.get(k) ?? { n: 0, closed: 0 };
      e.n++;
      if (outcomes[i]?.closedByGateway) e.closed++;
      byKind.set(k, e);
    });
    const sorted = [...latencies].sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    console.log(
      [
        `mqtt-packets: FUZZ_SEED=${seed}, ${CASES} cases in ${(fuzzMs / 1000).toFixed(1)} s`,
        `good device: ${latencies.length}/${sent} PUBACKs, p50 ${p(0.5).toFixed(1)} ms, p99 ${p(0.99).toFixed(1)} ms, max ${p(1).toFixed(1)} ms`,
        `memory: ${describeGrowth(memBefore, memAfter)}`,
        ...[...byKind].map(([k, v]) => `  ${k}: ${v.n} cases, ${v.closed} closed by the gateway`),
      ].join("\n"),
    );

    expect(failures, `seed ${seed}`).toEqual([]);
    expect(goodErrors, `seed ${seed}`).toEqual([]);
    expect(goodClosed, `the good device was disconnected (seed ${seed})`).toBe(0);
    expect(latencies.length, `seed ${seed}`).toBe(sent);
    expect(p(1), `slowest PUBACK (seed ${seed})`).toBeLessThan(PUBACK_BOUND_MS);
    const logged = t.gateway.db
      .prepare("SELECT count(*) AS n FROM events WHERE device_id = ? AND event_id LIKE 'good-%'")
      .get(GOOD) as { n: number };
    expect(logged.n).toBe(sent);
    expect(memAfter.heapUsed - memBefore.heapUsed, describeGrowth(memBefore, memAfter)).toBeLessThan(
      HEAP_BOUND,
    );
    expect(memAfter.rss - memBefore.rss, describeGrowth(memBefore, memAfter)).toBeLessThan(RSS_BOUND);
  });
});
