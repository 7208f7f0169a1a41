/**
 * Imported first by src/main.ts, before aedes loads its MQTT parser.
 *
 * mqtt-packet (aedes' parser and writer) calls its `debug` loggers 58 times in its code, several
 * times per frame. A disabled logger of the `debug` package still gathers each call's arguments
 * into a fresh array (`function debug(...args)`) and asks a getter whether it is enabled: under the
 * alert-latency benchmark's load (10k devices, 2k events/s), V8's sampling heap profiler put 8 % of
 * every byte the gateway allocated there, the largest single site, and each allocated byte brings
 * the next scavenge (the pause every fall waits behind) closer.
 *
 * Unless DEBUG names one of mqtt-packet's namespaces when the process starts, its loggers are one
 * shared function that takes no arguments and does nothing. Every other user of `debug` gets the
 * package's own loggers, and `DEBUG=mqtt-packet:*` still shows the parser's trace.
 */
import { createRequire } from "node:module";

type Debug = ((...args: unknown[]) => void) & { enabled: boolean };
type DebugFactory = ((namespace: string) => Debug) & { enabled(namespace: string): boolean };

const QUIET_PREFIX = "mqtt-packet:";

const silent = Object.assign(() => {}, { enabled: false, namespace: "", extend: () => silent }) as Debug;

/** `debug`'s factory, answering the shared silent logger for mqtt-packet's disabled namespaces. */
export function quietFactory(real: DebugFactory): DebugFactory {
  const quiet = (namespace: string) =>
    namespace.startsWith(QUIET_PREFIX) && !real.enabled(namespace) ? silent : real(namespace);
  // The package's own functions and settings (enable, disable, formatters ...) for everyone else.
  return Object.assign(quiet, real);
}

/** Put `quietFactory` in the module cache where mqtt-packet's `require("debug")` will find it. */
export function installQuietDebug(): boolean {
  const here = createRequire(import.meta.url);
  let fromPacket: NodeJS.Require;
  try {
    fromPacket = createRequire(here.resolve("mqtt-packet"));
  } catch {
    return false; // no mqtt-packet where aedes would find it: nothing to quieten
  }
  const path = fromPacket.resolve("debug");
  const real = fromPacket("debug") as DebugFactory;
  const cached = fromPacket.cache[path];
  if (!cached || cached.exports !== real) return false;
  cached.exports = quietFactory(real);
  return true;
}

installQuietDebug();
