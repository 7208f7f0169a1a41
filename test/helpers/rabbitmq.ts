/**
 * A real RabbitMQ node (Debian's rabbitmq-server, 3.10) with its MQTT plugin, on free loopback
 * ports with everything in its own temporary directory, using a gateway as its HTTP auth backend.
 *
 * Erlang distribution needs epmd. The node would start a shared `epmd -daemon` on port 4369 that
 * outlives the test; instead the harness runs its own epmd in the foreground on a free port
 * (ERL_EPMD_PORT) as a child, the node is told not to start one (-start_epmd false), and both are
 * stopped by PID. The node's name, ports, data, logs, configuration, plugin list and Erlang cookie
 * ($HOME) are its own, so parallel runs and an installed system service do not meet.
 *
 * Stopping: SIGTERM to rabbitmq-server's script, whose trap sends SIGTERM to the Erlang VM, which
 * RabbitMQ handles as an orderly shutdown (rabbit_prelaunch_sighandler); `rabbitmqctl stop` would
 * do the same through a second Erlang VM that costs seconds of CPU on this 2-core machine. If the
 * node is not gone in time, SIGKILL to the script and to the VM's PID from its pid file.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's launcher below /usr/sbin's wrapper (which would `su rabbitmq` and cd to /var/lib/rabbitmq). */
export const RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";
export const EPMD = "/usr/bin/epmd";

const INSTALL_HINT =
  "RabbitMQ is not installed: run scripts/test.sh as root (it installs the Debian packages the tests need), " +
  "or: sudo apt-get install --no-install-recommends rabbitmq-server";

export interface RabbitNode {
  nodeName: string;
  mqttPort: number;
  amqpPort: number;
  /** From spawning rabbitmq-server to its MQTT listener accepting connections. */
  startupMs: number;
  /** The node's console log so far (for failure messages). */
  output(): string;
  /** Stop the node and its epmd by PID and remove the temporary directory. */
  stop(): Promise<void>;
}

export interface RabbitOptions {
  /**
   * The base URL of the auth endpoints, user info included: `http://user:secret@127.0.0.1:port/base`;
   * the node asks `<base>/user`, `/vhost`, `/resource` and `/topic`.
   */
  authBaseUrl: string;
  /** More rabbitmq.conf lines. */
  extraConfig?: string[];
  /** Start-up budget; a first start on a loaded machine takes 5-15 s. */
  timeoutMs?: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Lines of output kept for error messages (the node logs a few hundred lines at start). */
const KEEP_LINES = 400;

export async function startRabbitMQ(opts: RabbitOptions): Promise<RabbitNode> {
  if (!existsSync(RABBITMQ_SERVER) || !existsSync(EPMD)) throw new Error(INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), "ata-rabbitmq-"));
  const [mqttPort, amqpPort, distPort, epmdPort] = (await distinctFreePorts(4)) as [
    number,
    number,
    number,
    number,
  ];
  const nodeName = `ata-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}@localhost`;
  const out: string[] = [];
  const keep = (d: Buffer) => {
    out.push(d.toString());
    if (out.length > KEEP_LINES) out.splice(0, out.length - KEEP_LINES);
  };
  let epmd: ChildProcess | null = null;
  let server: ChildProcess | null = null;
  const pidFile = join(dir, "rabbit.pid");

  const stop = async () => {
    if (server?.pid !== undefined && server.exitCode === null && server.signalCode === null) {
      process.kill(server.pid, "SIGTERM");
      if (!(await exited(server, 20_000))) process.kill(server.pid, "SIGKILL");
      await exited(server, 5000);
    }
    // The Erlang VM is the script's child: make sure it is gone even if the script was killed.
    const vm = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : Number.NaN;
    if (Number.isInteger(vm) && vm > 0 && alive(vm)) {
      process.kill(vm, "SIGKILL");
      for (let i = 0; i < 50 && alive(vm); i++) await new Promise((r) => setTimeout(r, 100));
    }
    if (epmd?.pid !== undefined && epmd.exitCode === null && epmd.signalCode === null) {
      process.kill(epmd.pid, "SIGTERM");
      if (!(await exited(epmd, 5000))) process.kill(epmd.pid, "SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    epmd = spawn(EPMD, ["-port", String(epmdPort), "-address", "127.0.0.1"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    epmd.stdout?.on("data", keep);
    epmd.stderr?.on("data", keep);
    await waitFor(() => accepting(epmdPort), epmd, 5000, `epmd did not listen on ${epmdPort}`, out);

    const base = opts.authBaseUrl.replace(/\/$/, "");
    const conf = [
      "auth_backends.1 = http",
      "auth_http.http_method = post",
      `auth_http.user_path = ${base}/user`,
      `auth_http.vhost_path = ${base}/vhost`,
      `auth_http.resource_path = ${base}/resource`,
      `auth_http.topic_path = ${base}/topic`,
      `listeners.tcp.1 = 127.0.0.1:${amqpPort}`,
      `mqtt.listeners.tcp.1 = 127.0.0.1:${mqttPort}`,
      "mqtt.allow_anonymous = false",
      "mqtt.vhost = /",
      "mqtt.exchange = amq.topic",
      "log.console = true",
      "log.console.level = info",
      "log.file = false",
      ...(opts.extraConfig ?? []),
    ];
    writeFileSync(join(dir, "rabbitmq.conf"), `${conf.join("\n")}\n`);
    writeFileSync(join(dir, "enabled_plugins"), "[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n");
    // Empty, so that /etc/rabbitmq/rabbitmq-env.conf (a system node's settings) is not read.
    writeFileSync(join(dir, "rabbitmq-env.conf"), "");
    mkdirSync(join(dir, "mnesia"));
    mkdirSync(join(dir, "log"));

    const t0 = performance.now();
    server = spawn(RABBITMQ_SERVER, [], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LANG: "C.UTF-8",
        LC_ALL: "C.UTF-8",
        // The Erlang cookie is written to and read from $HOME/.erlang.cookie.
        HOME: dir,
        ERL_EPMD_PORT: String(epmdPort),
        ERL_EPMD_ADDRESS: "127.0.0.1",
        RABBITMQ_NODENAME: nodeName,
        RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
        RABBITMQ_NODE_PORT: String(amqpPort),
        RABBITMQ_DIST_PORT: String(distPort),
        RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
        RABBITMQ_LOG_BASE: join(dir, "log"),
        RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
        RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
        RABBITMQ_PID_FILE: pidFile,
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    server.stdout?.on("data", keep);
    server.stderr?.on("data", keep);
    await waitFor(
      () => accepting(mqttPort),
      server,
      opts.timeoutMs ?? 60_000,
      `RabbitMQ's MQTT listener did not open on ${mqttPort}`,
      out,
    );
    const startupMs = Math.round(performance.now() - t0);
    return { nodeName, mqttPort, amqpPort, startupMs, output: () => out.join(""), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitFor(
  ready: () => Promise<boolean>,
  child: ChildProcess,
  timeoutMs: number,
  message: string,
  out: string[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `${message}: exited (${child.exitCode ?? child.signalCode})\n${out.join("").slice(-4000)}`,
      );
    if (await ready()) return;
    if (Date.now() > deadline)
      throw new Error(`${message} within ${timeoutMs} ms\n${out.join("").slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
