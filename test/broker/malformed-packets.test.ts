import { connect } from "node:net";
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
import { connectFrame } from "../helpers/mqtt-frames.js";

const ID = deviceIdFor("ata/native");
const SECRET = secretFor("ata/native");

/** Write bytes on a raw TCP connection and resolve when the gateway closes it. */
function sendRaw(port: number, chunks: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.resume();
    socket.once("close", () => resolve());
    socket.once("connect", () => {
      for (const c of chunks) socket.write(c);
    });
    setTimeout(() => reject(new Error("the gateway kept a broken connection open")), 10_000).unref();
  });
}

describe("broken MQTT packets never take the gateway down", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 }, connectTimeoutMs: 500 },
      },
    });
  });
  afterAll(async () => {
    await t.stop();
  });

  const connectPacket = () => connectFrame(ID, SECRET);

  it("closes connections that send garbage, a reserved packet type, a bad protocol name or a truncated length", async () => {
    await sendRaw(t.mqttPort, [Buffer.from([0x00, 0x02, 0xde, 0xad])]); // packet type 0 is reserved
    await sendRaw(t.mqttPort, [
      Buffer.from([0x10, 0x0a, 0x00, 0x04, 0x4d, 0x51, 0x58, 0x58, 0x04, 0x02, 0x00, 0x1e]),
    ]); // "MQXX"
    await sendRaw(t.mqttPort, [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])]); // remaining length over 4 bytes
    // A valid CONNECT, then a PUBLISH whose topic length runs past the packet.
    await sendRaw(t.mqttPort, [connectPacket(), Buffer.from([0x32, 0x05, 0x00, 0x40, 0x61, 0x62, 0x63])]);
  });

  it("a connection that never completes a CONNECT is closed after the connect timeout", async () => {
    await sendRaw(t.mqttPort, []); // silent
    await sendRaw(t.mqttPort, [Buffer.from([0x10, 0xff, 0x13])]); // a CONNECT that announces 2,559 bytes and stops
  });

  it("a second CONNECT on the same connection is a protocol violation and closes it", async () => {
    await sendRaw(t.mqttPort, [connectPacket(), connectPacket()]);
  });

  it("the gateway still serves well-behaved devices afterwards", async () => {
    const client = await connectDevice(t.mqttPort, ID, SECRET);
    await publish(
      client,
      deviceTopic(ID, "events"),
      JSON.stringify({ eventId: "after-garbage", type: "call.manual", data: {} }),
    );
    client.end(true);
    const row = t.gateway.db.prepare("SELECT type FROM events WHERE event_id = 'after-garbage'").get() as {
      type: string;
    };
    expect(row.type).toBe("call.manual");
  });
});
