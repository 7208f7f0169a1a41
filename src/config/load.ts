/**
 * Loading: file (YAML or JSON) -> environment overrides -> schema -> cross-references. Every
 * problem is collected and reported with its path, so an operator fixes them in one go.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Config, ConfigSchema, crossCheck, effectiveConfig, formatPath } from "./schema.js";

export const DEFAULT_CONFIG_PATH = "config/default.yaml";

export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `${source}: ${problems.length} configuration problem(s)\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** Short names for the overrides operators reach for most; anything else: ATA__path__to__key. */
const SHORTCUTS: Record<string, string[]> = {
  ATA_DATA_DIR: ["dataDir"],
  ATA_LOG_LEVEL: ["log", "level"],
  ATA_MQTT_PORT: ["mqtt", "tcp", "port"],
  ATA_MQTT_WS_PORT: ["mqtt", "ws", "port"],
  ATA_HTTP_PORT: ["http", "port"],
  ATA_HTTP_HOST: ["http", "host"],
  ATA_ADMIN_TOKEN: ["http", "adminToken"],
  ATA_METRICS_TOKEN: ["http", "metricsToken"],
  ATA_TLS_ONLY: ["tlsOnly"],
  ATA_INFLUX_URL: ["influx", "url"],
};

function coerce(value: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === "true" || value === "false") return value === "true";
  if (/^[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const shortcut = SHORTCUTS[name];
    if (shortcut) setPath(out, shortcut, coerce(value));
    else if (name.startsWith("ATA__")) setPath(out, name.slice(5).split("__").filter(Boolean), coerce(value));
  }
  return out;
}

export { formatPath } from "./schema.js";

export function validateConfig(raw: unknown, source: string, knownProfiles: ReadonlySet<string>): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      source,
      parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  }
  const problems = crossCheck(parsed.data, knownProfiles);
  if (problems.length)
    throw new ConfigError(
      source,
      problems.map((p) => ({ path: formatPath(p.path), message: p.message })),
    );
  return effectiveConfig(parsed.data);
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [{ path: "(file)", message: (err as Error).message }]);
  }
  try {
    const value = parseYaml(text) ?? {};
    if (typeof value !== "object" || Array.isArray(value)) throw new Error("the top level must be a mapping");
    return value as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(path, [{ path: "(file)", message: (err as Error).message }]);
  }
}

export function loadConfig(opts: {
  path?: string;
  env?: NodeJS.ProcessEnv;
  knownProfiles: ReadonlySet<string>;
}): Config & { configPath: string } {
  const path = resolve(opts.path ?? opts.env?.ATA_CONFIG ?? DEFAULT_CONFIG_PATH);
  const raw = applyEnv(readConfigFile(path), opts.env ?? process.env);
  return { ...validateConfig(raw, path, opts.knownProfiles), configPath: path };
}
