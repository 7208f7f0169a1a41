/**
 * The broker parses each connection's frames into fresh packet objects (see `parseIntoYoungPackets`
 * in src/broker/broker.ts): between frames a parser holds one shared, idle placeholder. These cases
 * put frames on the wire the ways TCP may deliver them (several in one read, one split over reads,
 * one ending mid-way through the next) on two connections at once, so a placeholder written to, or
 * a packet handed from one frame to the next, shows as a lost, doubled or wrong event.
 */
import { connect, type Socket } from "node:net";
import mqttPacket from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { connectFrame } from "../helpers/mqtt-frames.js";

const A = "frame-a";
const B = "frame-b";
const SECRET = "frame-secret-0123456789";
const device = (id: string, room: string, resident: string) => ({
  id,
  profile: "ata/native",
  secret: SECRET,
  site: "home-a",
  unit: "unit-1",
  room,
  resident,
});

interface Wire {
  socket: Socket;
  acks: number[];
}

/** A raw MQTT 3.1.1 connection: CONNECT sent and CONNACK read; PUBACK ids collected in order. */
async function open(port: number, id: string, secret: string): Promise<Wire> {
  const socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  const acks: number[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const connack = new Promise<number>((resolve) =>
    parser.on("packet", (p) => {
      if (p.cmd === "connack") resolve(p.returnCode ?? -1);
      if (p.cmd === "puback") acks.push(p.messageId!);
    }),
  );
  socket.on("data", (b) => parser.parse(b));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.write(connectFrame(id, secret));
  expect(await connack).toBe(0);
  return { socket, acks };
}

const fall = (id: string, messageId: number) =>
  mqttPacket.generate({
    cmd: "publish",
    topic: deviceTopic(id, "events"),
    payload: JSON.stringify({
      eventId: `frame-${messageId}`,
      type: "fall.detected",
      data: { confidence: 0.9 },
    }),
    qos: 1,
    messageId,
    retain: false,
    dup: false,
  });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Write each piece as its own segment (no Nagle), pausing so the gateway reads them apart. */
async function writeApart(w: Wire, pieces: Buffer[]): Promise<void> {
  for (const p of pieces) {
    w.socket.write(p);
    await pause(25);
  }
}

describe("MQTT frames however TCP delivers them", () => {
  let t: TestGateway;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
        devices: [device(A, "r1", "R-0001"), device(B, "r2", "R-0002")],
      },
    });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await t.stop();
  });

  it("logs every publish once, with its own payload, from whole, batched, split and straddling frames on two connections", async () => {
    const a = await open(t.mqttPort, A, SECRET);
    const b = await open(t.mqttPort, B, SECRET);
    sockets.push(a.socket, b.socket);

    // Three frames in one read.
    a.socket.write(Buffer.concat([fall(A, 1), fall(A, 2), fall(A, 3)]));
    await eventually(() => a.acks.length === 3);
    expect(a.acks).toEqual([1, 2, 3]);

    // One frame split into its fixed header, part of the topic, and the rest.
    const four = fall(A, 4);
    await writeApart(a, [four.subarray(0, 1), four.subarray(1, 9), four.subarray(9)]);
    await eventually(() => a.acks.length === 4);
    expect(a.acks).toEqual([1, 2, 3, 4]);

    // A whole frame and the first half of the next in one read, then the second half, while the
    // other connection does the same out of step: each parser holds a half-built packet while the
    // other finishes one and goes idle.
    const [a5, a6, b1, b2] = [fall(A, 5), fall(A, 6), fall(B, 1), fall(B, 2)];
    const half = (f: Buffer) => Math.floor(f.length / 2);
    a.socket.write(Buffer.concat([a5, a6.subarray(0, half(a6))]));
    await pause(25);
    b.socket.write(Buffer.concat([b1, b2.subarray(0, half(b2))]));
    await pause(25);
    a.socket.write(a6.subarray(half(a6)));
    await pause(25);
    b.socket.write(b2.subarray(half(b2)));
    await eventually(() => a.acks.length === 6 && b.acks.length === 2);
    expect(a.acks).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.acks).toEqual([1, 2]);

    const logged = (id: string) =>
      t.gateway.db
        .prepare(
          "SELECT event_id, type FROM events WHERE device_id = ? AND event_id LIKE 'frame-%' ORDER BY seq",
        )
        .all(id);
    const expected = (...n: number[]) => n.map((i) => ({ event_id: `frame-${i}`, type: "fall.detected" }));
    expect(logged(A)).toEqual(expected(1, 2, 3, 4, 5, 6));
    expect(logged(B)).toEqual(expected(1, 2));
  });
});
