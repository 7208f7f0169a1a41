/**
 * Mapping RabbitMQ's connection events to devices (src/cluster/rabbit-connections.ts), with headers
 * as RabbitMQ 3.10.8's event exchange sends them for an MQTT connection (read from a real node).
 */
import { describe, expect, it } from "vitest";
import { ConnectionEvents } from "../../src/cluster/rabbit-connections.js";

const created = (pid: string, user: string, protocol = "{'MQTT',\"3.1.1\"}") => ({
  pid,
  user,
  protocol,
  type: "direct",
  vhost: "/",
  name: "127.0.0.1:40000 -> 127.0.0.1:43723",
  node: "rabbit@a",
  variable_map: `#{<<"client_id">> => <<"${user}">>}`,
});
const closed = (pid: string) => ({ pid, name: "127.0.0.1:40000 -> 127.0.0.1:43723", node: "rabbit@a" });

function follower(registered = ["radar-1"]) {
  const calls: string[] = [];
  const events = new ConnectionEvents({
    admits: (id) => registered.includes(id),
    connected: (id) => calls.push(`+${id}`),
    disconnected: (id) => calls.push(`-${id}`),
  });
  return { events, calls };
}

describe("connection events to device presence", () => {
  it("a device's MQTT connection connects it; its close, which names only the pid, disconnects it", () => {
    const { events, calls } = follower();
    events.handle("connection.created", created("<a.1>", "radar-1"));
    events.handle("connection.closed", closed("<a.1>"));
    expect(calls).toEqual(["+radar-1", "-radar-1"]);
    expect(events.size).toBe(0);
  });

  it("a reconnect's new session before the old one's close gives two connects and one disconnect, in that order", () => {
    const { events, calls } = follower();
    events.handle("connection.created", created("<a.1>", "radar-1"));
    events.handle("connection.created", created("<a.2>", "radar-1"));
    events.handle("connection.closed", closed("<a.1>"));
    expect(calls).toEqual(["+radar-1", "+radar-1", "-radar-1"]);
  });

  it("a created event delivered twice counts once, and a close whose create was not seen is passed over", () => {
    const { events, calls } = follower();
    events.handle("connection.created", created("<a.1>", "radar-1"));
    events.handle("connection.created", created("<a.1>", "radar-1"));
    events.handle("connection.closed", closed("<a.9>"));
    expect(calls).toEqual(["+radar-1"]);
  });

  it("AMQP connections (the gateway's own) and unregistered users are not devices", () => {
    const { events, calls } = follower();
    events.handle("connection.created", created("<a.1>", "guest", "{0,9,1}"));
    events.handle("connection.created", created("<a.2>", "stranger"));
    events.handle("connection.closed", closed("<a.1>"));
    events.handle("connection.closed", closed("<a.2>"));
    expect(calls).toEqual([]);
  });

  it("headers given as Buffers are read as text", () => {
    const { events, calls } = follower();
    events.handle("connection.created", {
      pid: Buffer.from("<a.1>"),
      user: Buffer.from("radar-1"),
      protocol: Buffer.from("{'Web MQTT',\"3.1.1\"}"),
    });
    events.handle("connection.closed", { pid: Buffer.from("<a.1>") });
    expect(calls).toEqual(["+radar-1", "-radar-1"]);
  });
});
