/**
 * The MQTT packet parser aedes uses (mqtt-packet) calls `debug` about ten times per packet. debug@4
 * declares its logger as `function debug(...args)`, so every call allocates an array, logging on
 * or off: under 2,000 publishes a second that was 8 % of everything the main thread allocated, and
 * young-generation garbage is what the pauses a fall can wait behind are made of.
 *
 * When the environment enables no debug output (DEBUG unset or empty, as in production), the
 * `debug` module is put into the CommonJS cache as one whose loggers take no arguments at all, before
 * aedes loads mqtt-packet. With DEBUG set (troubleshooting: `DEBUG=mqtt-packet:* npm start`), the
 * real module loads and logs as usual. Imported for its effect, first, by the broker.
 */
import { createRequire } from "node:module";

interface Quiet {
  (): void;
  enabled: boolean;
  namespace: string;
  extend(sub: string, delimiter?: string): Quiet;
  destroy(): boolean;
  log(): void;
}

function quiet(namespace: string): Quiet {
  // No parameters, no `arguments`: a call allocates nothing.
  const logger = (() => {}) as Quiet;
  logger.enabled = false;
  logger.namespace = namespace;
  logger.extend = (sub, delimiter = ":") => quiet(`${namespace}${delimiter}${sub}`);
  logger.destroy = () => false;
  logger.log = () => {};
  return logger;
}

/** What the module's users read of the factory: debug(namespace) and its switches. */
const createDebug = Object.assign(quiet, {
  enable: () => {},
  disable: () => "",
  enabled: () => false,
  coerce: (v: unknown) => v,
  formatters: {},
  names: [],
  skips: [],
  humanize: (ms: number) => `${ms}ms`,
  selectColor: () => 0,
  log: () => {},
  default: undefined as unknown,
});
createDebug.default = createDebug;

if (!process.env.DEBUG) {
  const require = createRequire(import.meta.url);
  try {
    const path = require.resolve("debug");
    if (!require.cache[path]) {
      const entry = new (require("node:module") as typeof import("node:module")).Module(path);
      entry.filename = path;
      entry.loaded = true;
      entry.exports = createDebug;
      require.cache[path] = entry;
    }
  } catch {
    // No debug module installed where aedes looks: nothing to quieten.
  }
}
