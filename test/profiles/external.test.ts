import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { connectDevice, eventually, publish, startGateway, type TestGateway } from "../helpers/gateway.js";
import { buttonProfile, write } from "./fixtures.js";

const SECRET = "acme-secret-0123456789";

interface Check {
  name: string;
  ok: boolean;
  detail: {
    dir: string;
    loaded: { id: string; file: string; kept: boolean }[];
    refused: { file: string; id: string | null; problems: string[] }[];
  };
}

describe("external profiles in a running gateway", () => {
  let t: TestGateway | undefined;
  let dir: string | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    await t?.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const register = (g: TestGateway, id: string, profile: string) =>
    g.gateway.registry.add({ id, profile, siteId: "home-a", unitId: "unit-1", roomId: "r2", secret: SECRET });
  const events = (g: TestGateway, deviceId: string) =>
    g.gateway.db
      .prepare(
        "SELECT event_id, type, profile, data FROM events WHERE device_id = ? AND type NOT IN ('device.online', 'device.offline') ORDER BY seq",
      )
      .all(deviceId) as { event_id: string; type: string; profile: string; data: string }[];
  const deadLetters = (g: TestGateway, deviceId: string) =>
    g.gateway.db
      .prepare("SELECT code, reason FROM dead_letters WHERE device_id = ? ORDER BY id")
      .all(deviceId) as {
      code: string;
      reason: string;
    }[];
  const press = async (g: TestGateway, deviceId: string, id: string) => {
    const client = await connectDevice(g.mqttPort, deviceId, SECRET);
    clients.push(client);
    // QoS 1 resolves on PUBACK, which the gateway sends after the commit (or the dead letter).
    await publish(client, deviceTopic(deviceId, "press"), JSON.stringify({ id, ts: 1736907185, held: 1.5 }));
    client.end(true);
  };
  const profilesCheck = async (g: TestGateway): Promise<Check> => {
    const res = await fetch(`${g.httpUrl}/readyz`);
    const body = (await res.json()) as { status: string; checks: Check[] };
    expect(body.status).toBe("ready");
    return body.checks.find((c) => c.name === "profiles")!;
  };

  it("loads a checked JavaScript profile at start, commits its device's events, and refuses bad ones with every reason", async () => {
    dir = mkdtempSync(join(tmpdir(), "ata-profiles-"));
    const good = write(dir, "acme-button.mjs", buttonProfile());
    const wrongFixture = write(dir, "acme-buzzer.mjs", buttonProfile({ id: "acme/buzzer", expectedHeld: 2 }));
    const clash = write(dir, "vayyar-clone.mjs", buttonProfile({ id: "vayyar/care" }));
    const broken = write(dir, "broken.js", "export default {{ not javascript");
    t = await startGateway({ overrides: { profiles: { dir } } });

    register(t, "acme-b1", "acme/button");
    await press(t, "acme-b1", "p-77");
    expect(events(t, "acme-b1")).toEqual([
      {
        event_id: "p-77",
        type: "call.manual",
        profile: "acme/button",
        data: JSON.stringify({ pressDurationSec: 1.5 }),
      },
    ]);

    const check = await profilesCheck(t);
    expect(check.ok).toBe(true);
    expect(check.detail.loaded.map((l) => [l.id, l.file])).toEqual([["acme/button", good]]);
    const refused = Object.fromEntries(check.detail.refused.map((r) => [r.file, r]));
    expect(Object.keys(refused).sort()).toEqual([broken, wrongFixture, clash].sort());
    expect(refused[wrongFixture]!.id).toBe("acme/buzzer");
    expect(refused[wrongFixture]!.problems).toEqual([
      expect.stringMatching(
        /^fixture "a press": decoded to .*"pressDurationSec":0\.8.*; expected .*"pressDurationSec":2/,
      ),
    ]);
    expect(refused[clash]!.problems).toEqual([
      'id "vayyar/care" is a built-in profile\'s; an external profile needs its own id',
    ]);
    // (Under vitest the module goes through vite's transform, whose message differs from Node's
    // SyntaxError; the CLI test sees Node's own.)
    expect(refused[broken]!.problems).toEqual([
      expect.stringMatching(/^the module does not load: .*(SyntaxError|invalid JS syntax)/),
    ]);

    // Refused profiles are unknown: no device can be registered with one; the built-in keeps its own.
    expect(() => register(t!, "acme-z1", "acme/buzzer")).toThrow(/unknown profile "acme\/buzzer"/);
    expect(t.gateway.profiles.get("vayyar/care")?.vendor).toBe("Vayyar");
  });

  it("on reload, a changed profile decodes new publishes, a removed one's device stays registered and dead-letters profile_missing", async () => {
    dir = mkdtempSync(join(tmpdir(), "ata-profiles-"));
    const button = write(dir, "acme-button.mjs", buttonProfile({ prefix: "v1-" }));
    const cord = write(dir, "acme-cord.mjs", buttonProfile({ id: "acme/pull-cord" }));
    t = await startGateway({ overrides: { profiles: { dir } } });
    register(t, "acme-b1", "acme/button");
    register(t, "acme-c1", "acme/pull-cord");
    await press(t, "acme-b1", "p-1");
    await press(t, "acme-c1", "c-1");
    expect(events(t, "acme-b1").map((e) => e.event_id)).toEqual(["v1-p-1"]);
    expect(events(t, "acme-c1").map((e) => e.event_id)).toEqual(["c-1"]);

    write(dir, "acme-button.mjs", buttonProfile({ prefix: "v2-" }));
    unlinkSync(cord);
    write(dir, "acme-bell.mjs", buttonProfile({ id: "acme/bell" }));
    const status = await t.gateway.reloadProfiles();
    expect(status.loaded.map((l) => l.id).sort()).toEqual(["acme/bell", "acme/button"]);
    expect(status.refused).toEqual([]);

    await press(t, "acme-b1", "p-2");
    expect(events(t, "acme-b1").map((e) => e.event_id)).toEqual(["v1-p-1", "v2-p-2"]);

    await press(t, "acme-c1", "c-2");
    await eventually(() => deadLetters(t!, "acme-c1").length === 1);
    expect(deadLetters(t, "acme-c1")[0]!.code).toBe("profile_missing");
    expect(events(t, "acme-c1").map((e) => e.event_id)).toEqual(["c-1"]);
    expect(t.gateway.registry.get("acme-c1")?.profile).toBe("acme/pull-cord");
    // New registrations follow the reload: the removed profile is gone, the added one is there.
    expect(() => register(t!, "acme-c2", "acme/pull-cord")).toThrow(/unknown profile/);
    register(t, "acme-bell-1", "acme/bell");
    await press(t, "acme-bell-1", "b-1");
    expect(events(t, "acme-bell-1").map((e) => e.event_id)).toEqual(["b-1"]);

    // A version that fails the checks is refused, and the running one stays.
    write(dir, "acme-button.mjs", buttonProfile({ prefix: "v3-", expectedHeld: 9 }));
    const after = await t.gateway.reloadProfiles();
    expect(after.refused.map((r) => [r.file, r.id])).toEqual([[button, "acme/button"]]);
    expect(after.loaded.find((l) => l.id === "acme/button")?.kept).toBe(true);
    await press(t, "acme-b1", "p-3");
    expect(events(t, "acme-b1").map((e) => e.event_id)).toEqual(["v1-p-1", "v2-p-2", "v2-p-3"]);
    const check = await profilesCheck(t);
    expect(check.detail.refused[0]!.problems[0]).toMatch(/^fixture "a press": decoded to/);
  });
});
