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
 * Always enabled besides MQTT and the HTTP auth backend: the consistent-hash exchange (the ingest
 * consumer's partitions). Optional: MQTT over WebSocket (rabbitmq_web_mqtt, path /ws) on a free loopback port, RabbitMQ's
 * auth cache (rabbitmq_auth_backend_cache) in front of the HTTP backend, and the event exchange
 * (rabbitmq_event_exchange: connection events for device presence).
 *
 * Stopping: SIGTERM to rabbitmq-server's script, whose trap sends SIGTERM to the Erlang VM, which
 * RabbitMQ handles as an orderly shutdown (rabbit_prelaunch_sighandler); `rabbitmqctl stop` would
 * do the same through a second Erlang VM that costs seconds of CPU on this 2-core machine. If the
 * node is not gone in time, SIGKILL to the script and to the VM's PID from its pid file.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accepting, freePort } from "./ports.js";

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
  /** Web MQTT's port (`ws://127.0.0.1:<port>/ws`) when asked for with `webMqtt`. */
  webMqttPort: number | null;
  /** From spawning rabbitmq-server to its MQTT listeners (TCP, and Web MQTT when enabled) accepting. */
  startupMs: number;
  /** The node's console log so far (for failure messages). */
  output(): string;
  /** Run one of RabbitMQ's CLI tools against the node; each call starts an Erlang VM (seconds of CPU). */
  cli(tool: RabbitTool, args: string[]): Promise<string>;
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
  /** Enable rabbitmq_web_mqtt on a free loopback port (path /ws, RabbitMQ's default). */
  webMqtt?: boolean;
  /**
   * Put rabbitmq_auth_backend_cache in front of the HTTP backend (`auth_backends.1 = cache`,
   * `auth_cache.cached_backend = http`), keeping positive answers `ttlMs`.
   */
  authCache?: { ttlMs: number };
  /**
   * Enable rabbitmq_event_exchange: connection.created / connection.closed and RabbitMQ's other
   * events published to `amq.rabbitmq.event` (device presence from RabbitMQ's connections).
   */
  eventExchange?: boolean;
  /** Start-up budget; a first start on a loaded machine takes 5-15 s. */
  timeoutMs?: number;
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

/** A line buffer of a process's output, for failure messages. */
function outputBuffer(): { keep: (d: Buffer) => void; text: () => string; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    keep: (d: Buffer) => {
      lines.push(d.toString());
      if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
    },
    text: () => lines.join(""),
  };
}

async function stopChild(child: ChildProcess | null, graceMs: number): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  process.kill(child.pid, "SIGTERM");
  if (!(await exited(child, graceMs))) process.kill(child.pid, "SIGKILL");
  await exited(child, 5000);
}

/** An epmd of its own, in the foreground on a free loopback port, so it can be stopped by PID. */
async function startEpmd(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const out = outputBuffer();
  const epmd = spawn(EPMD, ["-port", String(port), "-address", "127.0.0.1"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  epmd.stdout?.on("data", out.keep);
  epmd.stderr?.on("data", out.keep);
  const stop = () => stopChild(epmd, 5000);
  try {
    await waitFor(() => accepting(port), epmd, 5000, `epmd did not listen on ${port}`, out.lines);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, stop };
}

interface NodePlan {
  dir: string;
  nodeName: string;
  mqttPort: number;
  amqpPort: number;
  distPort: number;
  webMqttPort: number | null;
}

/** Ports and a name for one node, its files in `dir`. */
async function planNode(dir: string, label: string, webMqtt: boolean): Promise<NodePlan> {
  const [mqttPort, amqpPort, distPort, wsPort] = (await distinctFreePorts(4)) as [
    number,
    number,
    number,
    number,
  ];
  const nodeName = `ata-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}@localhost`;
  return { dir, nodeName, mqttPort, amqpPort, distPort, webMqttPort: webMqtt ? wsPort : null };
}

/** Whether a node's device listeners (MQTT, and Web MQTT when enabled) accept connections. */
async function listenersOpen(plan: NodePlan): Promise<boolean> {
  return (
    (await accepting(plan.mqttPort)) && (plan.webMqttPort === null || (await accepting(plan.webMqttPort)))
  );
}

/** The environment a node's scripts (rabbitmq-server and the CLI tools) run with. */
function nodeEnv(plan: NodePlan, home: string, epmdPort: number): NodeJS.ProcessEnv {
  const { dir } = plan;
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    // The Erlang cookie is written to and read from $HOME/.erlang.cookie.
    HOME: home,
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_NODENAME: plan.nodeName,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(plan.amqpPort),
    RABBITMQ_DIST_PORT: String(plan.distPort),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_PID_FILE: join(dir, "rabbit.pid"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
  };
}

function writeNodeFiles(plan: NodePlan, opts: RabbitOptions, extra: string[]): void {
  const { dir } = plan;
  mkdirSync(dir, { recursive: true });
  const base = opts.authBaseUrl.replace(/\/$/, "");
  // The consistent-hash exchange for the ingest consumer's partitions (cluster.rabbitmq.ingest.partitions).
  const plugins = ["rabbitmq_mqtt", "rabbitmq_auth_backend_http", "rabbitmq_consistent_hash_exchange"];
  const cache = opts.authCache
    ? [
        "auth_backends.1 = cache",
        "auth_cache.cached_backend = http",
        `auth_cache.cache_ttl = ${opts.authCache.ttlMs}`,
      ]
    : ["auth_backends.1 = http"];
  if (opts.authCache) plugins.push("rabbitmq_auth_backend_cache");
  const webMqtt =
    plan.webMqttPort === null
      ? []
      : ["web_mqtt.tcp.ip = 127.0.0.1", `web_mqtt.tcp.port = ${plan.webMqttPort}`];
  if (plan.webMqttPort !== null) plugins.push("rabbitmq_web_mqtt");
  if (opts.eventExchange) plugins.push("rabbitmq_event_exchange");
  const conf = [
    ...cache,
    "auth_http.http_method = post",
    `auth_http.user_path = ${base}/user`,
    `auth_http.vhost_path = ${base}/vhost`,
    `auth_http.resource_path = ${base}/resource`,
    `auth_http.topic_path = ${base}/topic`,
    `listeners.tcp.1 = 127.0.0.1:${plan.amqpPort}`,
    `mqtt.listeners.tcp.1 = 127.0.0.1:${plan.mqttPort}`,
    "mqtt.allow_anonymous = false",
    "mqtt.vhost = /",
    "mqtt.exchange = amq.topic",
    ...webMqtt,
    "log.console = true",
    "log.console.level = info",
    "log.file = false",
    ...extra,
    ...(opts.extraConfig ?? []),
  ];
  writeFileSync(join(dir, "rabbitmq.conf"), `${conf.join("\n")}\n`);
  writeFileSync(join(dir, "enabled_plugins"), `[${plugins.join(",")}].\n`);
  // Empty, so that /etc/rabbitmq/rabbitmq-env.conf (a system node's settings) is not read.
  writeFileSync(join(dir, "rabbitmq-env.conf"), "");
  mkdirSync(join(dir, "mnesia"));
  mkdirSync(join(dir, "log"));
}

/** One node's running processes: rabbitmq-server's script and the Erlang VM it starts. */
interface Launched {
  server: ChildProcess;
  out: ReturnType<typeof outputBuffer>;
  t0: number;
  /** SIGKILL to the VM and the script: no shutdown, no goodbye to the other nodes. */
  kill9(): Promise<void>;
  /** SIGTERM (an orderly shutdown), SIGKILL if it takes too long. */
  stop(): Promise<void>;
}

function launchNode(plan: NodePlan, env: NodeJS.ProcessEnv): Launched {
  const out = outputBuffer();
  const pidFile = join(plan.dir, "rabbit.pid");
  const t0 = performance.now();
  const server = spawn(RABBITMQ_SERVER, [], { cwd: plan.dir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout?.on("data", out.keep);
  server.stderr?.on("data", out.keep);
  const vmPid = () => {
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : Number.NaN;
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  };
  // The Erlang VM is the script's child: make sure it is gone even if the script was killed.
  const killVm = async () => {
    const vm = vmPid();
    if (vm !== null && alive(vm)) {
      process.kill(vm, "SIGKILL");
      for (let i = 0; i < 50 && alive(vm); i++) await new Promise((r) => setTimeout(r, 100));
    }
  };
  return {
    server,
    out,
    t0,
    kill9: async () => {
      await killVm();
      if (server.pid !== undefined && server.exitCode === null && server.signalCode === null) {
        process.kill(server.pid, "SIGKILL");
        await exited(server, 5000);
      }
    },
    stop: async () => {
      await stopChild(server, 20_000);
      await killVm();
    },
  };
}

export async function startRabbitMQ(opts: RabbitOptions): Promise<RabbitNode> {
  if (!existsSync(RABBITMQ_SERVER) || !existsSync(EPMD)) throw new Error(INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), "ata-rabbitmq-"));
  let epmd: Awaited<ReturnType<typeof startEpmd>> | null = null;
  let node: Launched | null = null;
  const stop = async () => {
    await node?.stop();
    await epmd?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    epmd = await startEpmd();
    const plan = await planNode(dir, "test", opts.webMqtt ?? false);
    writeNodeFiles(plan, opts, []);
    node = launchNode(plan, nodeEnv(plan, dir, epmd.port));
    const { server, out, t0 } = node;
    await waitFor(
      () => listenersOpen(plan),
      server,
      opts.timeoutMs ?? 60_000,
      `RabbitMQ's MQTT listeners did not open on ${plan.mqttPort}${plan.webMqttPort ? ` and ${plan.webMqttPort}` : ""}`,
      out.lines,
    );
    const startupMs = Math.round(performance.now() - t0);
    const { nodeName, mqttPort, amqpPort, webMqttPort } = plan;
    const epmdPort = epmd.port;
    const cli = (tool: RabbitTool, args: string[]) => runCli(plan, dir, epmdPort, tool, args);
    return { nodeName, mqttPort, amqpPort, webMqttPort, startupMs, output: out.text, cli, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface RabbitClusterNode {
  nodeName: string;
  mqttPort: number;
  amqpPort: number;
  /** Web MQTT's port when asked for with `webMqtt`. */
  webMqttPort: number | null;
  /** From spawning this node to its MQTT listeners (TCP, and Web MQTT when enabled) accepting. */
  startupMs: number;
  /** Whether its Erlang VM has not been stopped or killed. */
  running(): boolean;
  output(): string;
  /** SIGKILL to the node's Erlang VM and its script: the others see the node vanish, as in a crash. */
  kill9(): Promise<void>;
  /** An orderly stop of this node alone. */
  stop(): Promise<void>;
}

export interface RabbitCluster {
  nodes: RabbitClusterNode[];
  /** From spawning the seed to every node having joined it. */
  startupMs: number;
  /** Run one of RabbitMQ's CLI tools (`rabbitmq-queues`, `rabbitmqctl`) against a node; each call starts an Erlang VM. */
  cli(node: RabbitClusterNode, tool: RabbitTool, args: string[]): Promise<string>;
  /** Stop every node that still runs, then epmd, by PID; remove the temporary directory. */
  stop(): Promise<void>;
}

export interface RabbitClusterOptions extends RabbitOptions {
  nodes: number;
}

const RABBIT_BIN = "/usr/lib/rabbitmq/bin";

export type RabbitTool = "rabbitmq-queues" | "rabbitmqctl";

/** One of RabbitMQ's CLI tools against a node, with the node's environment (cookie, epmd). */
function runCli(plan: NodePlan, home: string, epmdPort: number, tool: RabbitTool, args: string[]) {
  return new Promise<string>((resolve, reject) => {
    execFile(
      join(RABBIT_BIN, tool),
      ["-n", plan.nodeName, ...args],
      { env: nodeEnv(plan, home, epmdPort), timeout: 60_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${tool} ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

/**
 * RabbitMQ nodes clustered at boot by configuration (peer discovery with `classic_config`), sharing
 * one epmd of their own and one Erlang cookie.
 *
 * The first node is the seed: it boots as a blank node. The others list the seed and themselves and
 * join it by peer discovery, started together once the seed's MQTT listener is open; their
 * peer-discovery lock (`global:set_lock` over the listed nodes) is taken on the seed, so they join
 * one at a time. Every node listing every node is what production does, but blank nodes starting at
 * the same moment may each find no peer ready, give up after their retries and boot alone: two
 * clusters.
 *
 * Why the others wait for the seed's MQTT listener: 3.10's MQTT plugin tracks client ids in a Raft
 * cluster of its own (`mqtt_node`). A node whose plugin starts with no peer waits 3-6 s for some,
 * then forms it alone (`mqtt_node:start/0`); a node that joins the RabbitMQ cluster during that wait
 * is taken for a peer before its own Raft server runs, and the client-id cluster can come out split:
 * on the node left out, MQTT connections get no CONNACK (seen in about one start in three when all
 * nodes started at once, devices then taking 5 s timeouts to move to another node). Once the seed's
 * listener is open its client-id cluster exists, and the others join it.
 *
 * Resolves once every node's MQTT listener accepts and the seed's console has logged each other
 * node's `rabbit` application up.
 */
export async function startRabbitCluster(opts: RabbitClusterOptions): Promise<RabbitCluster> {
  if (!existsSync(RABBITMQ_SERVER) || !existsSync(EPMD)) throw new Error(INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), "ata-rabbit-cluster-"));
  // One cookie for every node (and the CLI tools): Erlang wants it readable by its owner only.
  writeFileSync(join(dir, ".erlang.cookie"), randomBytes(20).toString("hex").toUpperCase(), { mode: 0o400 });
  let epmd: Awaited<ReturnType<typeof startEpmd>> | null = null;
  const launched: Launched[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(launched.map((n) => n.stop()));
    await epmd?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    epmd = await startEpmd();
    const epmdPort = epmd.port;
    const labels = Array.from({ length: opts.nodes }, (_, i) => String.fromCharCode(97 + i));
    const plans: NodePlan[] = [];
    for (const label of labels) plans.push(await planNode(join(dir, label), label, opts.webMqtt ?? false));
    const seed = plans[0]!;
    for (const plan of plans)
      writeNodeFiles(
        plan,
        opts,
        plan === seed
          ? []
          : [
              "cluster_formation.peer_discovery_backend = classic_config",
              `cluster_formation.classic_config.nodes.1 = ${seed.nodeName}`,
              `cluster_formation.classic_config.nodes.2 = ${plan.nodeName}`,
              // Should the seed's database not answer at once: up to a minute.
              "cluster_formation.discovery_retry_limit = 300",
              "cluster_formation.discovery_retry_interval = 200",
            ],
      );
    const t0 = performance.now();
    const timeoutMs = opts.timeoutMs ?? 90_000;
    const startupMs: number[] = [];
    const listening = async (plan: NodePlan, i: number) => {
      const node = launched[i]!;
      await waitFor(
        () => listenersOpen(plan),
        node.server,
        timeoutMs,
        `RabbitMQ node ${plan.nodeName}: MQTT listeners did not open on ${plan.mqttPort}${plan.webMqttPort ? ` and ${plan.webMqttPort}` : ""}`,
        node.out.lines,
      );
      startupMs[i] = Math.round(performance.now() - node.t0);
    };
    launched.push(launchNode(seed, nodeEnv(seed, dir, epmdPort)));
    await listening(seed, 0);
    // The others one at a time: each joins the seed's database and the MQTT plugin's client-id
    // cluster (a Ra cluster) while no other node is joining. Two started at once left one of them
    // without its MQTT listener for the whole 90 s in a CI run.
    for (const [i, plan] of plans.slice(1).entries()) {
      launched.push(launchNode(plan, nodeEnv(plan, dir, epmdPort)));
      await listening(plan, i + 1);
    }
    // The seed logs "rabbit on node '<name>' up" for each node that joined it (rabbit_node_monitor).
    const seedOut = launched[0]!;
    await waitFor(
      async () =>
        plans.slice(1).every((p) => seedOut.out.text().includes(`rabbit on node '${p.nodeName}' up`)),
      seedOut.server,
      timeoutMs,
      "the nodes did not all join the seed",
      seedOut.out.lines,
    );
    const clusterMs = Math.round(performance.now() - t0);
    const nodes: RabbitClusterNode[] = plans.map((plan, i) => {
      const node = launched[i]!;
      let running = true;
      return {
        nodeName: plan.nodeName,
        mqttPort: plan.mqttPort,
        amqpPort: plan.amqpPort,
        webMqttPort: plan.webMqttPort,
        startupMs: startupMs[i]!,
        running: () => running,
        output: node.out.text,
        kill9: async () => {
          running = false;
          await node.kill9();
        },
        stop: async () => {
          running = false;
          await node.stop();
        },
      };
    });
    const cli = (node: RabbitClusterNode, tool: RabbitTool, args: string[]) =>
      runCli(plans[nodes.indexOf(node)]!, dir, epmdPort, tool, args);
    return { nodes, startupMs: clusterMs, cli, stop };
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
