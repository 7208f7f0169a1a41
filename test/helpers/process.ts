/**
 * Runs the gateway as a real child process (`src/main.ts` through tsx), as an operator would, so
 * that tests can kill -9 it and restart it on the same data directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface GatewayProcess {
  child: ChildProcess;
  http: number;
  mqtt: number;
  stderr: string[];
  /** Log lines (pino JSON) the gateway printed after it was ready. */
  stdout: string[];
  /** SIGKILL: no drain, no flush, no goodbye. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

/** Whether a process with this pid still exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function writeConfig(dir: string, config: unknown): string {
  const path = join(dir, "config.json");
  // JSON is YAML, so the loader reads it as is.
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

export function spawnGateway(
  configPath: string,
  env: Record<string, string> = {},
  timeoutMs = 20_000,
  /** A command the gateway runs under, with its arguments (setpriv ... to drop a capability). */
  wrapper: string[] = [],
): Promise<GatewayProcess> {
  const command = [process.execPath, "--import", "tsx", join(ROOT, "src/main.ts"), "--config", configPath];
  const [bin, ...args] = [...wrapper, ...command];
  const child = spawn(bin!, args, {
    cwd: ROOT,
    env: { ...process.env, ATA_READY_LINE: "1", ATA_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stderr: string[] = [];
  const stdout: string[] = [];
  child.stderr!.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not become ready in ${timeoutMs} ms: ${stderr.join("")}`));
    }, timeoutMs);
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before ready: ${stderr.join("")}`));
    };
    child.once("exit", early);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      stdout.push(line);
      if (!line.includes('"ready":true')) return;
      const ready = JSON.parse(line) as { http: number; mqtt: number };
      clearTimeout(timer);
      child.off("exit", early);
      resolve({
        child,
        http: ready.http,
        mqtt: ready.mqtt,
        stderr,
        stdout,
        kill9: async () => {
          child.kill("SIGKILL");
          await exited;
        },
        stop: async () => {
          child.kill("SIGTERM");
          return exited;
        },
      });
    });
  });
}

/** Run the gateway expecting it to fail at boot; returns exit code and stderr. */
export function runGatewayExpectingFailure(
  configPath: string,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "src/main.ts"), "--config", configPath],
    {
      cwd: ROOT,
      env: { ...process.env, ATA_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}
