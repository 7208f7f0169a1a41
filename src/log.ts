/**
 * Logging is decided at the edge: components receive a pino child logger with their name and never
 * log payload bodies or secrets at info level.
 */
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(level: string = process.env.ATA_LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { app: "ata-gateway" },
    redact: {
      paths: ["password", "secret", "token", "*.password", "*.secret", "*.token", "payload"],
      censor: "[redacted]",
    },
  });
}

/** A logger that drops everything: for tests and benchmarks that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
