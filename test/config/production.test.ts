import { describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import { readConfigFile, validateConfig } from "../../src/config/load.js";
import { configuredChannels } from "../../src/config/schema.js";
import { checkTimeModelSites, loadTimeModel } from "../../src/reports/model.js";
import { checkRuleChannels, loadRuleFile } from "../../src/rules/engine.js";

const PATH = "config/production.yaml";
const known = new Set(PROFILES.map((p) => p.id));

/** Every key in a parsed YAML tree with its dotted path. */
function keys(value: unknown, path = ""): string[] {
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [`${path}${k}`, ...keys(v, `${path}${k}.`)]);
}

describe("the production configuration template", () => {
  it("is valid as it stands, with the shipped rule file and time model", () => {
    // No environment applied: the file alone must pass the schema and the cross-checks.
    const config = validateConfig(readConfigFile(PATH), PATH, known);
    const rules = loadRuleFile(config.rulesFile);
    expect(() => checkRuleChannels(rules, configuredChannels(config), config.rulesFile)).not.toThrow();
    expect(
      checkTimeModelSites(
        loadTimeModel(config.timeModelFile),
        config.sites.map((s) => s.id),
      ),
    ).toEqual([]);
    expect(config.sites.map((s) => s.id)).toEqual(["example-home"]);
    // TLS material is named under /certs, where docker-compose.yml mounts ./certs.
    expect(config.mqtt.tls.certFile).toMatch(/^\/certs\//);
    expect(config.mqtt.tls.keyFile).toMatch(/^\/certs\//);
  });

  it("holds no credentials and no demo: devices, staff tokens and the admin token come from elsewhere", () => {
    const config = validateConfig(readConfigFile(PATH), PATH, known);
    expect(config.demo.enabled).toBe(false);
    expect(config.devices).toEqual([]);
    expect(config.staff).toEqual([]);
    expect(config.http.adminToken).toBeUndefined();
    expect(config.http.metricsToken).toBeUndefined();
    expect(config.alarms.fallbackWebhook).toBeUndefined();
    expect(config.channels.push?.vapid).toBeUndefined();
    // Nothing that looks like a credential anywhere in what the file sets (comments aside).
    const set = keys(readConfigFile(PATH));
    expect(set.filter((k) => /secret|token|password|privatekey|vapid/i.test(k))).toEqual([]);
  });
});
