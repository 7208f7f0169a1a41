/**
 * Logging is decided at the edge: components receive a pino child logger with their name and never
 * log payload bodies or secrets at info level.
 *
 * Two formats: JSON lines (the default, for log shippers and machines) and readable lines for a
 * person at a terminal (`ATA_LOG_FORMAT=pretty`, or by default when stdout is a terminal):
 * `12:04:31.201 WARN  broker  CONNECT refused  deviceId=radar-a105 reason=bad_secret`.
 */
import { pino } from "pino";

export type Logger = pino.Logger;

export type LogFormat = "json" | "pretty";

export function createLogger(
  level: string = process.env.ATA_LOG_LEVEL ?? "info",
  format: LogFormat = defaultFormat(),
): Logger {
  return pino(
    {
      level,
      base: { app: "ata-gateway" },
      redact: {
        paths: ["password", "secret", "token", "*.password", "*.secret", "*.token", "payload"],
        censor: "[redacted]",
      },
    },
    format === "pretty" ? { write: (line: string) => process.stdout.write(prettyLine(line)) } : undefined,
  );
}

/** ATA_LOG_FORMAT when set ("json" or "pretty"), else pretty on a terminal and JSON otherwise. */
export function defaultFormat(): LogFormat {
  const asked = process.env.ATA_LOG_FORMAT;
  if (asked === "json" || asked === "pretty") return asked;
  return process.stdout.isTTY ? "pretty" : "json";
}

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};
/** Fields every line has, shown in the line's head rather than as key=value. */
const HEAD = new Set(["level", "time", "pid", "hostname", "app", "component", "msg", "err"]);

/** One pino JSON line as a line for people: time, level, component, message, then the rest. */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o.time === "number" ? new Date(o.time).toISOString().slice(11, 23) : "";
  const level = LEVELS[o.level as number] ?? String(o.level);
  const component = typeof o.component === "string" ? `${o.component.padEnd(8)} ` : "";
  const rest = Object.entries(o)
    .filter(([k]) => !HEAD.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  const err = o.err as { message?: string; stack?: string } | undefined;
  const errText = err ? `\n  ${err.stack ?? err.message ?? JSON.stringify(err)}` : "";
  return `${time} ${level} ${component}${o.msg ?? ""}${rest ? `  ${rest}` : ""}${errText}\n`;
}

/** A logger that drops everything: for tests and benchmarks that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
