/** Raw MQTT 3.1.1 frames for the tests that write the wire themselves (framing, fuzzing, presence). */
import mqttPacket from "mqtt-packet";

/** A CONNECT for a device (username = client id, the secret as password; null: none), keepalive 30 s. */
export function connectFrame(id: string, secret: string | null, extra: Record<string, unknown> = {}): Buffer {
  return mqttPacket.generate({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    clientId: id,
    keepalive: 30,
    ...(secret === null ? {} : { username: id, password: Buffer.from(secret) }),
    ...extra,
  } as unknown as mqttPacket.Packet);
}
