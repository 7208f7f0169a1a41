import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { applyEnv, ConfigError, loadConfig, validateConfig } from "../../src/config/load.js";
import { runGatewayExpectingFailure, spawnGateway, writeConfig } from "../helpers/process.js";

const known = new Set(PROFILES.map((p) => p.id));
const base = { sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }] };

describe("configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the shipped default configuration is valid", () => {
    const config = loadConfig({ path: "config/default.yaml", env: {}, knownProfiles: known });
    expect(config.sites[0]!.id).toBe("solhaven");
    expect(config.devices.length).toBeGreaterThan(5);
    // Every profile has a demo device, so a newcomer can try each one.
    expect(new Set(config.devices.map((d) => d.profile))).toEqual(known);
  });

  it("a config with several errors stops the boot, exits non-zero and lists each error with its path", async () => {
    const path = writeConfig(dir, {
      mqtt: { tcp: { port: 99999 }, maxPayloadBytes: "big" },
      http: { port: -1 },
      sites: [{ id: "Bad Id", name: "", timeZone: "Mars/Olympus", units: [] }],
      devices: [{ id: "d1", profile: "acme/unknown", secret: "short", site: "s1", unit: "u1" }],
      surprise: true,
    });
    const { code, stderr } = await runGatewayExpectingFailure(path);
    expect(code).toBe(2);
    for (const p of [
      "mqtt.tcp.port",
      "mqtt.maxPayloadBytes",
      "http.port",
      "sites[0].id",
      "sites[0].name",
      "sites[0].timeZone",
      "sites[0].units",
      "devices[0].secret",
      "(root)",
    ]) {
      expect(stderr).toContain(`- ${p}:`);
    }
    expect(stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace for a config error
  });

  it("an invalid rule file and time model stop the boot too, every problem listed with its path", async () => {
    const rulesFile = join(dir, "bad-rules.yaml");
    writeFileSync(
      rulesFile,
      "rules:\n  - id: x\n    when: { event: fall.imagined, time: { from: '25:00', to: '07:00' } }\n    raise: { alert: fall, priority: urgent, message: { da: a, en: b } }\n",
    );
    const timeModelFile = join(dir, "bad-model.yaml");
    writeFileSync(timeModelFile, "version: 1\nparameters: nope\n");
    const path = writeConfig(dir, { ...base, rulesFile, timeModelFile });
    const { code, stderr } = await runGatewayExpectingFailure(path);
    expect(code).toBe(2);
    expect(stderr).toContain("rules[0].when.event");
    expect(stderr).toContain("rules[0].when.time.from");
    expect(stderr).toContain("rules[0].raise.priority");
    expect(stderr).toContain(timeModelFile);
  });

  it("lists the rule file's and time model's problems even when the main file has its own", async () => {
    const rulesFile = join(dir, "bad-rules-2.yaml");
    writeFileSync(
      rulesFile,
      "rules:\n  - id: x\n    when: { event: fall.imagined }\n    raise: { alert: fall, priority: high }\n",
    );
    const timeModelFile = join(dir, "bad-model-2.yaml");
    writeFileSync(timeModelFile, "version: 1\nparameters: nope\n");
    const path = writeConfig(dir, { ...base, rulesFile, timeModelFile, mqtt: { maxPayloadBytes: 1 } });
    const { code, stderr } = await runGatewayExpectingFailure(path);
    expect(code).toBe(2);
    expect(stderr).toContain("mqtt.maxPayloadBytes");
    expect(stderr).toContain("rules[0].when.event");
    expect(stderr).toContain(timeModelFile);
  });

  it("a ladder naming a channel the configuration does not turn on stops the boot with the level's path", async () => {
    const rulesFile = join(dir, "paging-rules.yaml");
    writeFileSync(
      rulesFile,
      "escalation:\n  high:\n    - { to: [unit], via: [console, paging], after: 60s }\nrules: []\n",
    );
    const { code, stderr } = await runGatewayExpectingFailure(writeConfig(dir, { ...base, rulesFile }));
    expect(code).toBe(2);
    expect(stderr).toContain(
      '- escalation.high[0].via[1]: channel "paging" is not configured (channels.paging in the main configuration)',
    );
    expect(stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it("cross-references are checked after the schema: unknown profile, site, unit, resident, duplicates", () => {
    const raw = {
      ...base,
      residents: [{ ref: "R-1", site: "s1", unit: "nope" }],
      devices: [
        { id: "d1", profile: "acme/unknown", secret: "long-enough", site: "s2", unit: "u1" },
        { id: "d1", profile: "ata/native", secret: "long-enough", site: "s1", unit: "u1", resident: "R-404" },
      ],
    };
    try {
      validateConfig(raw, "t", known);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const paths = (err as ConfigError).problems.map((p) => p.path);
      expect(paths).toEqual(
        expect.arrayContaining([
          "residents[0].unit",
          "devices[0].profile",
          "devices[0].site",
          "devices[1].resident",
          "devices[1].id",
        ]),
      );
    }
  });

  it("duplicate staff ids and tokens are config errors with their paths, the token never in the message", () => {
    const token = "same-token-0123456789";
    const staff = (id: string) => ({ id, name: id, role: "staff", sites: ["s1"], token });
    try {
      validateConfig({ ...base, staff: [staff("anna"), staff("anna"), staff("bo")] }, "t", known);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems.map((p) => p.path)).toEqual(
        expect.arrayContaining(["staff[1].id", "staff[1].token", "staff[2].token"]),
      );
      expect(JSON.stringify(problems)).not.toContain(token);
    }
  });

  it("a configured staff token another staff token in the database already holds stops the boot with its path", async () => {
    const data = join(dir, "clash");
    const cfg = (staff: unknown[]) =>
      writeConfig(dir, {
        dataDir: data,
        mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
        http: { host: "127.0.0.1", port: 0 },
        ...base,
        staff,
      });
    const anna = { id: "anna", name: "Anna", role: "staff", sites: ["s1"], token: "clash-token-0123456789" };
    // First boot creates anna's token; the second names the same secret for someone else.
    const first = await spawnGateway(cfg([anna]));
    await first.stop();
    const { code, stderr } = await runGatewayExpectingFailure(cfg([{ ...anna, id: "bo", name: "Bo" }]));
    expect(code).toBe(2);
    expect(stderr).toContain("- staff[0].token:");
    expect(stderr).not.toContain(anna.token);
    expect(stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it("environment variables override the file: shortcuts and ATA__path__to__key", () => {
    const out = applyEnv(base, {
      ATA_MQTT_PORT: "1999",
      ATA__mqtt__maxPayloadBytes: "32768",
      ATA__ingest__keepRawPayload: "false",
    });
    const config = validateConfig(out, "env", known);
    expect(config.mqtt.tcp.port).toBe(1999);
    expect(config.mqtt.maxPayloadBytes).toBe(32768);
    expect(config.ingest.keepRawPayload).toBe(false);
  });

  it("background commit spacing defaults to 10 ms, and a value out of range is a config error with its path", () => {
    expect(validateConfig(base, "t", known).ingest.backgroundIntervalMs).toBe(10);
    for (const bad of [-1, 500, "soon"]) {
      try {
        validateConfig({ ...base, ingest: { backgroundIntervalMs: bad } }, "t", known);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).problems.map((p) => p.path)).toContain("ingest.backgroundIntervalMs");
      }
    }
  });

  it("TLS enabled without a certificate is a config error with its path", () => {
    expect(() => validateConfig({ ...base, mqtt: { tls: { enabled: true } } }, "t", known)).toThrow(
      /mqtt\.tls\.certFile/,
    );
  });
});
