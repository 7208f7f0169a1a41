/**
 * Starts a real InfluxDB 1.x server (`influxd`) for tests and benchmarks: its own temp directory
 * (meta, data, wal), loopback-only HTTP and RPC ports picked free by the OS, no usage reporting and
 * quiet logs. Stopped by PID; the temp directory is removed on stop().
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "./ports.js";

export interface Influxd {
  /** http://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  /** PID of the running influxd (changes on restart). */
  readonly pid: number;
  /** The temp directory holding config, meta, data and wal. */
  dir: string;
  /** SIGTERM, then SIGKILL after a timeout; removes the temp directory. */
  stop(): Promise<void>;
  /** SIGKILL now, keeping the data directory: an outage that flushes nothing. */
  kill(): void;
  /** Starts influxd again on the same data directory and the same ports; waits for /ping. */
  restart(): Promise<void>;
}

export interface StartInfluxdOptions {
  /** How long to wait for GET /ping to answer 204. */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
}

const INSTALL_HINT =
  "influxd (InfluxDB 1.x) is not installed or not on PATH: install it with `apt-get install influxdb` " +
  "(Debian/Ubuntu), which provides /usr/bin/influxd";

/** Every influxd this process started and has not yet stopped: killed if the process exits early. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  });
}

export function findInfluxd(): string {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const dir of [...dirs, "/usr/bin", "/usr/local/bin"]) {
    const candidate = join(dir, "influxd");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(INSTALL_HINT);
}

function configToml(dir: string, httpPort: number, rpcPort: number): string {
  // Upstream 1.x reads `reporting-disabled`; Debian's 1.6 build reads `reporting-enabled`. Unknown keys
  // are ignored by both, so both are written.
  return `reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, "meta")}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "${join(dir, "data")}"
  wal-dir = "${join(dir, "wal")}"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  auth-enabled = false
  log-enabled = false
  suppress-write-log = true
  write-tracing = false
  pprof-enabled = false
  max-body-size = 0

[logging]
  level = "error"
  suppress-logo = true
`;
}

async function waitForPing(url: string, child: ChildProcess, timeoutMs: number, stderr: () => string) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `influxd exited (${child.exitCode ?? child.signalCode}) before answering /ping: ${stderr().slice(-2000)}`,
      );
    }
    try {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 204) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`influxd did not answer /ping within ${timeoutMs} ms: ${stderr().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // already gone
  }
}

export async function startInfluxd(options: StartInfluxdOptions = {}): Promise<Influxd> {
  const binary = findInfluxd();
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), "ata-influxd-"));
  const host = "127.0.0.1";
  let port: number;
  let rpcPort: number;
  do {
    port = await freePort();
    rpcPort = await freePort();
  } while (port === rpcPort);
  const configPath = join(dir, "influxdb.conf");
  writeFileSync(configPath, configToml(dir, port, rpcPort));
  const url = `http://${host}:${port}`;
  installExitHook();

  let child: ChildProcess | undefined;
  let stderrTail = "";

  const spawnOnce = async (): Promise<void> => {
    stderrTail = "";
    const proc = spawn(binary, ["-config", configPath], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, INFLUXDB_REPORTING_DISABLED: "true" },
    });
    child = proc;
    live.add(proc);
    proc.once("exit", () => live.delete(proc));
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-8000);
    });
    const spawnError = new Promise<never>((_, reject) => proc.once("error", reject));
    try {
      await Promise.race([waitForPing(url, proc, readyTimeoutMs, () => stderrTail), spawnError]);
    } catch (err) {
      signal(proc, "SIGKILL");
      throw err;
    }
  };

  const terminate = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined) return;
    signal(proc, "SIGTERM");
    if (!(await waitForExit(proc, stopTimeoutMs))) {
      signal(proc, "SIGKILL");
      await waitForExit(proc, 5_000);
    }
  };

  try {
    await spawnOnce();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    host,
    port,
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    async stop() {
      await terminate();
      rmSync(dir, { recursive: true, force: true });
    },
    kill() {
      if (child !== undefined) signal(child, "SIGKILL");
    },
    async restart() {
      const proc = child;
      if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
        await terminate();
      } else if (proc !== undefined) {
        await waitForExit(proc, 5_000);
      }
      await spawnOnce();
    },
  };
}
