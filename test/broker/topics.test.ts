/** The topic grammar (src/broker/topics.ts) on the shapes a device or an attacker may send. */
import { describe, expect, it } from "vitest";
import { mayPublish, parseDeviceTopic } from "../../src/broker/topics.js";

describe("parseDeviceTopic", () => {
  it("reads ata/v1/<deviceId>/<channel> and nothing else", () => {
    expect(parseDeviceTopic("ata/v1/radar-1/events")).toEqual({ deviceId: "radar-1", channel: "events" });
    expect(parseDeviceTopic("ata/v1/a.b_c-9/heartbeat")).toEqual({
      deviceId: "a.b_c-9",
      channel: "heartbeat",
    });
    for (const topic of [
      "ata/v1//events",
      "ata/v1/radar-1",
      "ata/v1/radar-1/",
      "ata/v1/radar-1/events/more",
      "ata/v1/radar-1/Events",
      "ata/v1/$radar/events",
      "ata/v1/-radar/events",
      "ata/v2/radar-1/events",
      "ata/v1radar-1/events",
      "xata/v1/radar-1/events",
      `ata/v1/${"r".repeat(65)}/events`,
      `ata/v1/radar-1/${"e".repeat(33)}`,
    ])
      expect(parseDeviceTopic(topic), topic).toBeNull();
  });

  it("lets a device publish on its own channels only, never on the gateway's", () => {
    expect(mayPublish("radar-1", "ata/v1/radar-1/events")).toBe(true);
    expect(mayPublish("radar-1", "ata/v1/radar-2/events")).toBe(false);
    expect(mayPublish("radar-1", "ata/v1/radar-1/errors")).toBe(false);
    expect(mayPublish("radar-1", "ata/v1/radar-1/commands")).toBe(false);
    expect(mayPublish("radar-1", "ata/v1/radar-1")).toBe(false);
  });
});
