import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { api, connectDevice, eventually } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";

const ADMIN = "reload-admin-token-0123456789";
const DEVICE = { id: "reload-pendant", secret: "reload-secret-0123" };

const rule = (id: string, alert: string) => `
rules:
  - id: ${id}
    when: { event: call.manual }
    raise:
      alert: ${alert}
      priority: high
      message: { da: "Kald {room}", en: "Call {room}" }
`;

describe("the rule file is reloaded on SIGHUP", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-reload-"));
  const rulesFile = join(dir, "rules.yaml");
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a valid file replaces the running rules; an invalid one is refused and the running rules stay", async () => {
    writeFileSync(rulesFile, rule("call-v1", "call"));
    gw = await spawnGateway(
      writeConfig(dir, {
        dataDir: join(dir, "data"),
        rulesFile,
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
        http: { host: "127.0.0.1", port: 0, adminToken: ADMIN },
        sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
        devices: [{ ...DEVICE, profile: "ata/native", site: "s1", unit: "u1", room: "r1" }],
      }),
    );
    const http = `http://127.0.0.1:${gw.http}`;
    const ruleIds = async () =>
      (await api(http, "GET", "/api/v1/rules", undefined, ADMIN)).body.rules.map((r: { id: string }) => r.id);
    const alertTypes = async () =>
      (
        (await api(http, "GET", "/api/v1/alerts?state=open", undefined, ADMIN)).body.alerts as {
          type: string;
          count: number;
        }[]
      )
        .map((a) => `${a.type}:${a.count}`)
        .sort();
    const device = await connectDevice(gw.mqtt, DEVICE.id, DEVICE.secret);
    let n = 0;
    const call = () =>
      device.publishAsync(
        deviceTopic(DEVICE.id, "events"),
        JSON.stringify({ eventId: `call-${n++}`, type: "call.manual", data: {} }),
        {
          qos: 1,
        },
      );

    expect(await ruleIds()).toEqual(["call-v1"]);
    await call();
    expect(await alertTypes()).toEqual(["call:1"]);

    writeFileSync(rulesFile, rule("call-v2", "call-v2"));
    gw.child.kill("SIGHUP");
    await eventually(async () => (await ruleIds())[0] === "call-v2");
    await call();
    expect(await alertTypes()).toEqual(["call-v2:1", "call:1"]);

    writeFileSync(rulesFile, "rules:\n  - id: Bad Id\n    when: { event: fall.imagined }\n");
    gw.child.kill("SIGHUP");
    // Refused, with every problem logged by its path.
    await eventually(() =>
      gw!.stdout.some((l) => l.includes("keeping the running rules") && l.includes("rules[0].id")),
    );
    await call();
    expect(await ruleIds()).toEqual(["call-v2"]);
    expect(await alertTypes()).toEqual(["call-v2:2", "call:1"]);
    expect(gw.child.exitCode).toBeNull();
    device.end(true);
  }, 60_000);
});
