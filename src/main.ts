/**
 * `npm start`: load configuration (every problem reported at once, exit 2), start the gateway,
 * stop gracefully on SIGTERM/SIGINT.
 */

// First: before aedes loads its MQTT parser (see the module).
import "./util/quiet-debug.js";
import { getPriority } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { applyEnv, ConfigError, DEFAULT_CONFIG_PATH, loadConfig, readConfigFile } from "./config/load.js";
import { ConfigSchema, configuredChannels } from "./config/schema.js";
import { Gateway } from "./gateway.js";
import { createLogger } from "./log.js";
import { configProfileIds } from "./profiles/config.js";
import { formatRefusals } from "./profiles/loader.js";
import { checkTimeModelSites, loadTimeModel, TimeModelError } from "./reports/model.js";
import { checkRuleChannels, loadRuleFile } from "./rules/engine.js";
import { reportFallPathNice, setThreadNice } from "./util/threads.js";

const { values } = parseArgs({
  options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
  strict: true,
});
if (values.help) {
  process.stdout.write("usage: ata-gateway [--config path/to/config.yaml]\n");
  process.exit(0);
}

let config: ReturnType<typeof loadConfig> | undefined;
let rules: ReturnType<typeof loadRuleFile> | undefined;
let timeModel: ReturnType<typeof loadTimeModel> | undefined;
{
  // The main file, the rule file and the time model are all configuration: every problem in all
  // three is listed before the process stops (exit 2), even when the main file itself has some.
  const failures: string[] = [];
  const configPath = resolve(values.config ?? process.env.ATA_CONFIG ?? DEFAULT_CONFIG_PATH);
  // Devices in the file may name an external profile (profiles.dir) as well as a built-in one.
  const external = await configProfileIds(configPath, process.env);
  try {
    config = loadConfig({ path: configPath, env: process.env, knownProfiles: external.ids });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    failures.push(err.message);
    // An "unknown profile" may be one that was refused: say why beside it.
    const refused = external.report ? formatRefusals(external.report) : [];
    if (refused.length)
      failures.push(`external profiles refused:\n${refused.map((r) => `  - ${r}`).join("\n")}`);
  }
  // Where the other two are: from the configuration, or as far as a broken one says.
  const files = config ?? companionFiles(configPath);
  try {
    rules = loadRuleFile(files.rulesFile);
    if (config) checkRuleChannels(rules, configuredChannels(config), files.rulesFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    failures.push(err.message);
  }
  try {
    timeModel = loadTimeModel(files.timeModelFile);
    const problems = config
      ? checkTimeModelSites(
          timeModel,
          config.sites.map((s) => s.id),
        )
      : [];
    if (problems.length) throw new TimeModelError(files.timeModelFile, problems);
  } catch (err) {
    if (!(err instanceof TimeModelError)) throw err;
    failures.push(err.message);
  }
  if (failures.length || !config) {
    process.stderr.write(`${failures.join("\n")}\n`);
    process.exit(2);
  }
}

/** The rule file and time model a configuration names, read leniently from a file that failed validation. */
function companionFiles(path: string): { rulesFile: string; timeModelFile: string } {
  let raw: Record<string, unknown> = {};
  try {
    raw = applyEnv(readConfigFile(path), process.env);
  } catch {
    // Unreadable: the defaults, as the schema would give them.
  }
  // The schema's own defaults for a missing or malformed value.
  const { rulesFile, timeModelFile } = ConfigSchema.shape;
  return {
    rulesFile: rulesFile.safeParse(raw.rulesFile).data ?? rulesFile.parse(undefined),
    timeModelFile: timeModelFile.safeParse(raw.timeModelFile).data ?? timeModelFile.parse(undefined),
  };
}

const log = createLogger(config.log.level);
const gateway = new Gateway({ config, log, rules: rules!, timeModel: timeModel! });

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutting down");
  const force = setTimeout(() => {
    log.error("shutdown took longer than 10 s; exiting");
    process.exit(1);
  }, 10_000);
  force.unref();
  try {
    await gateway.stop();
    process.exit(0);
  } catch (err) {
    log.error({ err }, "error during shutdown");
    process.exit(1);
  }
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGHUP", () => {
  const result = gateway.reloadRules();
  if (!result.ok) log.error(result.error.message);
  // Each refused profile is logged with its reasons by the catalogue; the others keep running.
  gateway
    .reloadProfiles()
    .catch((err: Error) => log.error({ err: err.message }, "external profiles could not be reloaded"));
});
process.on("uncaughtException", (err) => {
  log.fatal({ err }, "uncaught exception");
  void shutdown("uncaughtException");
});

try {
  await gateway.start();
  // The main thread takes a fall from its socket to the rules and to staff: it runs at the raised
  // priority the configuration asks for (the event-log writer raises its own). Only now, once the
  // gateway's other threads are started: a thread inherits the priority of the one that starts it.
  // Here and not in the Gateway, because the thread is the process's: a gateway embedded in another
  // program (the tests) leaves its host's thread alone.
  if (config.priority.fallPathNice !== 0) {
    const refusal = setThreadNice(config.priority.fallPathNice);
    gateway.metrics.threadNice.set({ thread: "main" }, getPriority());
    reportFallPathNice(log, "main", config.priority.fallPathNice, refusal);
  }
  const host = config.http.host === "0.0.0.0" ? "localhost" : config.http.host;
  const scheme = config.http.tls ? "https" : "http";
  const mqtt = gateway.listeners().filter((l) => l.service === "mqtt");
  log.info(
    `ATA Gateway is running: open ${scheme}://${host}:${gateway.http.port}/ (MQTT: ${mqtt.map((l) => `${l.scheme} on port ${l.port}`).join(", ") || "no listener"})`,
  );
  // For process supervisors and tests: one machine-readable line on stdout when ready. mqtt is the
  // plain TCP port, null with tlsOnly.
  if (process.env.ATA_READY_LINE)
    process.stdout.write(
      `${JSON.stringify({ ready: true, http: gateway.http.port, mqtt: mqtt.find((l) => l.scheme === "mqtt")?.port ?? null })}\n`,
    );
} catch (err) {
  // Problems only the database can show (a configured staff token another one already holds, a
  // paging address naming an unknown handset) are configuration errors too: listed, exit 2.
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, "gateway failed to start");
  process.exit(1);
}
