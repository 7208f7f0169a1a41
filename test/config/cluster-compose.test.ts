/**
 * docker-compose.cluster.yml and the files under config/cluster/ it mounts: the gateway
 * configuration template loaded through the real loader with the environment the compose file gives
 * each gateway node, and the RabbitMQ and HAProxy settings checked against what that configuration
 * names and what docs/cluster.md says RabbitMQ needs. `docker-compose config` (scripts/test.sh)
 * checks the compose file's own syntax; this checks that its parts fit together.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { PROFILES } from "../../devices/index.js";
import { RABBIT_AUTH_BASE, RABBIT_REQUESTS } from "../../src/cluster/rabbit-auth.js";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { configuredChannels } from "../../src/config/schema.js";
import { checkTimeModelSites, loadTimeModel } from "../../src/reports/model.js";
import { checkRuleChannels, loadRuleFile } from "../../src/rules/engine.js";

const COMPOSE = "docker-compose.cluster.yml";
const TEMPLATE = "config/cluster/gateway.yaml";
const known = new Set(PROFILES.map((p) => p.id));

/** What an operator exports before `docker compose up` (scripts/test.sh validates with the same). */
const VARS: Record<string, string> = {
  ATA_ADMIN_TOKEN: "validate-only-token",
  ATA_POSTGRES_USER: "ata",
  ATA_POSTGRES_PASSWORD: "validateonly",
  ATA_RABBITMQ_COOKIE: "validateonly",
  ATA_RABBITMQ_USER: "ata-gateway",
  ATA_RABBITMQ_PASSWORD: "validateonly",
  ATA_RABBITMQ_AUTH_SECRET: "validate-only-secret-0123456789abcdef",
  ATA_TOKEN_KEY: "dmFsaWRhdGUtb25seS10b2tlbi1rZXktMDEyMzQ1Njc4OQ==",
};

const dir = mkdtempSync(join(tmpdir(), "ata-cluster-compose-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REFERENCE = /\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g;

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ for a literal $. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(REFERENCE, (all, name: string | undefined, op: string | undefined, arg: string) => {
    if (all === "$$" || name === undefined) return "$";
    const value = vars[name];
    if (op === ":?" && !value) throw new Error(`${name}: ${arg}`);
    if (op === ":-") return value || arg;
    return value ?? "";
  });
}

interface Service {
  hostname?: string;
  image?: string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
}

const composeText = readFileSync(COMPOSE, "utf8");
const compose = parseYaml(composeText, { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

/** A service's environment as the container gets it. */
function envOf(name: string): Record<string, string> {
  const raw = services[name]?.environment;
  if (!raw) throw new Error(`${name} has no environment`);
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v), VARS)]));
}

const gateways = Object.keys(services).filter((s) => s.startsWith("gateway-"));
const rabbits = Object.keys(services).filter((s) => s.startsWith("rabbitmq-"));

function gatewayConfig(service: string) {
  return loadConfig({ path: TEMPLATE, env: envOf(service), knownProfiles: known });
}

/** rabbitmq.conf's `key = value` lines. */
function confLines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([a-z0-9_.]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

describe("docker-compose.cluster.yml", () => {
  it("runs two gateway nodes and three RabbitMQ nodes, each gateway after PostgreSQL, InfluxDB and every RabbitMQ node are healthy", () => {
    expect(gateways).toEqual(["gateway-1", "gateway-2"]);
    expect(rabbits).toEqual(["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]);
    for (const g of gateways) {
      const deps = services[g]?.depends_on ?? {};
      for (const d of ["postgres", "influxdb", ...rabbits])
        expect(deps[d]).toEqual({ condition: "service_healthy" });
      // Each node its own state.
      expect(services[g]?.volumes).toContain(`${g}-data:/data`);
    }
    // The other two join the first: blank nodes started together could form clusters of their own.
    for (const r of rabbits.slice(1))
      expect(services[r]?.depends_on?.["rabbitmq-1"]).toEqual({ condition: "service_healthy" });
  });

  it("refuses to start without every value an operator must choose, naming it", () => {
    const required = new Set<string>();
    const referenced = new Set<string>();
    for (const m of composeText.matchAll(REFERENCE)) {
      if (m[1] === undefined) continue;
      referenced.add(m[1]);
      if (m[2] === ":?") required.add(m[1]);
    }
    // Every variable used without a default is required somewhere with a message.
    const defaulted = [...composeText.matchAll(/\$\{(\w+):-/g)].map((m) => m[1]);
    expect([...referenced].filter((v) => !required.has(v) && !defaulted.includes(v))).toEqual([]);
    expect([...required].sort()).toEqual(Object.keys(VARS).sort());
    for (const name of required) {
      const without = { ...VARS, [name]: "" };
      expect(() => interpolate(composeText, without)).toThrow(name);
    }
  });
});

describe("config/cluster/gateway.yaml with the environment the compose file gives each node", () => {
  it("validates as a cluster node on PostgreSQL, answering RabbitMQ and consuming from all three nodes", () => {
    const pg = envOf("postgres");
    const rabbitEnv = envOf("rabbitmq-1");
    const ids = new Set<string>();
    for (const g of gateways) {
      const config = gatewayConfig(g);
      const postgres = config.cluster.postgres;
      expect(postgres).toBeDefined();
      const url = new URL(postgres?.url ?? "");
      expect(url.hostname).toBe("postgres");
      expect(url.username).toBe(pg.POSTGRES_USER);
      expect(url.password).toBe(pg.POSTGRES_PASSWORD);
      expect(url.pathname).toBe(`/${pg.POSTGRES_DB}`);
      expect(postgres?.nodeId).toBe(g);
      ids.add(postgres?.nodeId ?? "");

      const rabbit = config.cluster.rabbitmq;
      expect(rabbit.enabled).toBe(true);
      expect(rabbit.secret).toBe(VARS.ATA_RABBITMQ_AUTH_SECRET);
      expect(rabbit.ingest?.urls.map((u) => new URL(u).hostname)).toEqual(rabbits);
      for (const u of rabbit.ingest?.urls ?? []) {
        // The operator's user RabbitMQ creates with its first node (the internal backend).
        expect(new URL(u).username).toBe(rabbitEnv.RABBITMQ_DEFAULT_USER);
        expect(new URL(u).password).toBe(rabbitEnv.RABBITMQ_DEFAULT_PASS);
        expect(new URL(u).pathname).toBe(`/${encodeURIComponent(rabbit.vhost)}`);
      }
      // More than one consuming node: per-device order needs the partitioned queues.
      expect(rabbit.ingest?.partitions).toBeGreaterThan(1);

      expect(config.dataDir).toBe("/data");
      expect(config.influx?.url).toBe("http://influxdb:8086");
      expect(config.demo.enabled).toBe(false);
      // Devices come through RabbitMQ; the embedded broker listens on loopback only.
      expect(config.mqtt.tcp.host).toBe("127.0.0.1");
      expect(config.mqtt.ws.enabled).toBe(false);
      // The rule file and time model it names load and fit it, as at a node's start.
      const rules = loadRuleFile(config.rulesFile);
      expect(() => checkRuleChannels(rules, configuredChannels(config), config.rulesFile)).not.toThrow();
      expect(
        checkTimeModelSites(
          loadTimeModel(config.timeModelFile),
          config.sites.map((s) => s.id),
        ),
      ).toEqual([]);
    }
    expect(ids.size).toBe(gateways.length);
  });

  it("does not validate without that environment, listing what is missing", () => {
    let error: unknown;
    try {
      loadConfig({ path: TEMPLATE, env: {}, knownProfiles: known });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.path).sort()).toEqual([
      "cluster.postgres.url",
      "cluster.rabbitmq.ingest.urls",
      "cluster.rabbitmq.secret",
    ]);
  });
});

describe("RabbitMQ's configuration", () => {
  const conf = confLines(readFileSync("config/cluster/rabbitmq.conf", "utf8"));
  const config = gatewayConfig("gateway-1");

  it("has the auth backends, MQTT and quorum queue settings docs/cluster.md names, for the gateway's vhost and exchange", () => {
    expect(conf.get("auth_backends.1")).toBe("cache");
    expect(conf.get("auth_cache.cached_backend")).toBe("http");
    expect(conf.get("auth_cache.cache_ttl")).toBe("60000");
    // Refusals must always reach the gateway: left at the default, false.
    expect(conf.has("auth_cache.cache_refusals")).toBe(false);
    expect(conf.get("auth_backends.2")).toBe("internal");
    expect(conf.get("auth_http.http_method")).toBe("post");
    expect(conf.get("mqtt.allow_anonymous")).toBe("false");
    expect(conf.get("mqtt.vhost")).toBe(config.cluster.rabbitmq.vhost);
    expect(conf.get("mqtt.exchange")).toBe(config.cluster.rabbitmq.exchange);
    expect(conf.get("mqtt.durable_queue_type")).toBe("quorum");
    expect(conf.get("log.console.level")).toBe("info");
  });

  it("clusters the three compose services by classic peer discovery under their node names", () => {
    expect(conf.get("cluster_formation.peer_discovery_backend")).toBe("classic_config");
    const listed = rabbits.map((_, i) => conf.get(`cluster_formation.classic_config.nodes.${i + 1}`));
    for (const r of rabbits) {
      expect(services[r]?.hostname).toBe(r);
      expect(envOf(r).RABBITMQ_NODENAME).toBe(`rabbit@${r}`);
      // One cookie for all.
      expect(envOf(r).RABBITMQ_ERLANG_COOKIE).toBe(VARS.ATA_RABBITMQ_COOKIE);
    }
    expect(listed).toEqual(rabbits.map((r) => `rabbit@${r}`));
  });

  it("enables the plugins the configuration uses", () => {
    const plugins = readFileSync("config/cluster/enabled_plugins", "utf8");
    const list = /^\[([a-z_,\s]*)\]\.\s*$/
      .exec(plugins)?.[1]
      ?.split(",")
      .map((p) => p.trim());
    expect(list?.sort()).toEqual(
      [
        "rabbitmq_auth_backend_cache",
        "rabbitmq_auth_backend_http",
        // ingest.partitions above 1
        "rabbitmq_consistent_hash_exchange",
        // device presence from RabbitMQ's connections
        "rabbitmq_event_exchange",
        "rabbitmq_mqtt",
        "rabbitmq_web_mqtt",
      ].sort(),
    );
  });

  it("is given auth URLs with the gateways' Basic user and secret, pointing at the balancer's internal port", () => {
    const r1 = services["rabbitmq-1"];
    // The entrypoint runs the script the compose file mounts.
    const script = r1?.entrypoint?.[1];
    expect(r1?.volumes).toContain(`./config/cluster/rabbitmq-auth-http.sh:${script}:ro`);
    const out = join(dir, "90-ata-auth-http.conf");
    execFileSync("sh", ["config/cluster/rabbitmq-auth-http.sh"], {
      env: { ...envOf("rabbitmq-1"), PATH: process.env.PATH, ATA_RABBITMQ_AUTH_CONF: out },
    });
    const written = confLines(readFileSync(out, "utf8"));
    const { username, secret } = config.cluster.rabbitmq;
    for (const endpoint of Object.keys(RABBIT_REQUESTS)) {
      const url = new URL(written.get(`auth_http.${endpoint}_path`) ?? "");
      expect(url.protocol).toBe("http:");
      expect(url.username).toBe(username);
      expect(url.password).toBe(secret);
      expect(url.host).toBe("lb:8081");
      expect(url.pathname).toBe(`${RABBIT_AUTH_BASE}/${endpoint}`);
    }
    expect(written.size).toBe(4);
    // Without the secret it refuses to start RabbitMQ.
    expect(() =>
      execFileSync("sh", ["config/cluster/rabbitmq-auth-http.sh", "true"], {
        env: { PATH: process.env.PATH, ATA_RABBITMQ_AUTH_CONF: join(dir, "none.conf") },
        stdio: "pipe",
      }),
    ).toThrow(/ATA_RABBITMQ_AUTH_SECRET/);
  });
});

describe("the load balancer (config/cluster/haproxy.cfg)", () => {
  const cfg = readFileSync("config/cluster/haproxy.cfg", "utf8");
  const config = gatewayConfig("gateway-1");
  /** The lines of one section (`frontend staff`, `backend gateways`). */
  const section = (name: string) => {
    const m = new RegExp(`^${name}\\n((?:[ \\t].*\\n|\\s*\\n)*)`, "m").exec(cfg);
    return (m?.[1] ?? "").split("\n").map((l) => l.trim());
  };

  it("sends staff and RabbitMQ's auth requests to every gateway node that answers /readyz", () => {
    const backend = section("backend gateways");
    expect(backend).toContain("http-check send meth GET uri /readyz");
    expect(backend).toContain("http-check expect status 200");
    for (const g of gateways) expect(backend).toContain(`server ${g} ${g}:${config.http.port}`);
    expect(section("frontend staff")).toContain("bind :8080");
    expect(section("frontend rabbitmq_auth")).toContain("bind :8081");
    expect(section("frontend rabbitmq_auth")).toContain("default_backend gateways");
    expect(services.lb?.volumes).toContain(
      "./config/cluster/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
    );
  });

  it("keeps the RabbitMQ endpoints off the published staff port", () => {
    expect(section("frontend staff")).toContain(
      `http-request deny deny_status 404 if { path_beg ${RABBIT_AUTH_BASE}/ }`,
    );
    expect(services.lb?.ports).toEqual(["8080:8080"]);
    for (const g of gateways) expect(services[g]?.ports).toBeUndefined();
  });

  it("passes the person's address on, and the gateways believe it from the balancer's fixed address only", () => {
    expect(section("frontend staff")).toContain("option forwardfor");
    const lb = (services.lb as unknown as { networks?: { default?: { ipv4_address?: string } } }).networks;
    const address = lb?.default?.ipv4_address;
    expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const g of gateways) expect(gatewayConfig(g).http.trustedProxies).toEqual([address]);
    // Inside the project's fixed range, so the address is the balancer's.
    const range = (
      parseYaml(composeText) as { networks?: { default?: { ipam?: { config?: { subnet: string }[] } } } }
    ).networks?.default?.ipam?.config?.[0]?.subnet;
    expect(range).toBe(`${address!.split(".").slice(0, 3).join(".")}.0/24`);
  });
});
