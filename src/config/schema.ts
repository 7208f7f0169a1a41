/**
 * The configuration file's schema. Every option has a default so that `npm start` runs on the
 * demo site with nothing else; operators override by file (`--config`) and environment.
 */
import { z } from "zod";
import type { ChannelName } from "../alerts/channels/channel.js";
import { PagingOptions, pagingProblems } from "../alerts/channels/paging.js";
import { PushOptions } from "../alerts/channels/push.js";
import { BridgesConfig, bridgeProblems } from "../bridges/config.js";
import { ClusterConfig } from "../cluster/config.js";
import { isAddressOrRange } from "../http/client-address.js";
import { ObserveConfig, observeProblems } from "../observe/config.js";
import { BaselineInput, checkBaselineScope } from "../reports/baseline/schema.js";
import { ScaipConfig, scaipProblems } from "../scaip/config.js";
import { isTimeZone } from "../time/zone.js";

const Id = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, - and _ (max 64)");
const Port = z.number().int().min(0).max(65535);
const TimeZone = z.string().refine(isTimeZone, "unknown IANA time zone");

export const UnitConfig = z.strictObject({
  id: Id,
  name: z.string().min(1),
  rooms: z.array(z.string().min(1).max(64)).default([]),
});

const ClockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "a local time HH:MM");

export const SiteConfig = z.strictObject({
  id: Id,
  name: z.string().min(1),
  timeZone: TimeZone.default("Europe/Copenhagen"),
  units: z.array(UnitConfig).min(1),
  /**
   * The night shift, in the site's time zone: staff consoles switch to the dark theme then (a
   * person may choose light or dark on their own device instead). May span midnight.
   */
  nightHours: z
    .strictObject({ from: ClockTime, to: ClockTime })
    .refine((n) => n.from !== n.to, { message: "from and to must differ", path: ["to"] })
    .default({ from: "22:00", to: "07:00" }),
  /**
   * Show residents' display names (residents[].displayName) on staff screens. Off by default:
   * screens then show only the pseudonymous reference, and names never leave the configuration.
   */
  residentNames: z.boolean().default(false),
});

export const ResidentConfig = z.strictObject({
  /** Pseudonymous reference; never a name or a national id number. */
  ref: z.string().regex(/^[A-Za-z0-9-]{2,32}$/, "a pseudonymous reference such as R-7F3A"),
  site: Id,
  unit: Id,
  room: z.string().max(64).optional(),
  flags: z.array(z.string().regex(/^[a-z][a-z0-9-]*$/)).default([]),
  /** The name staff know the resident by; shown only where the site sets residentNames. */
  displayName: z.string().min(1).max(80).optional(),
});

/** Devices registered at boot when missing (demo and first-run seeding). */
export const SeedDeviceConfig = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  profile: z.string().min(3),
  secret: z.string().min(8, "device secrets need at least 8 characters"),
  site: Id,
  unit: Id,
  room: z.string().max(64).optional(),
  resident: z.string().optional(),
});

/** Staff tokens created at boot when missing. */
export const SeedStaffConfig = z.strictObject({
  id: z.string().regex(/^[a-z0-9-]{2,40}$/),
  name: z.string().min(1),
  role: z.enum(["staff", "nurse", "manager", "admin"]),
  sites: z.array(Id).min(1),
  units: z.array(Id).optional(),
  token: z.string().min(16, "tokens need at least 16 characters"),
});

const Listener = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().default("0.0.0.0"),
  port: Port,
});

/**
 * The oldest TLS version a listener accepts. TLS 1.0 and 1.1 are deprecated (RFC 8996) and not
 * offered at all; node's own default is TLSv1.2 too, but a node flag (--tls-min-v1.0) or an OpenSSL
 * configuration can lower it, so the gateway always sets it.
 */
const TlsMinVersion = z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2");

export const ConfigSchema = z.strictObject({
  dataDir: z.string().default("data"),
  /**
   * Only encrypted transports: plain MQTT (mqtt.tcp), plain MQTT over WebSocket (mqtt.ws) and plain
   * HTTP are not opened at all, whatever their own settings say. Needs mqtt.tls and http.tls.
   */
  tlsOnly: z.boolean().default(false),
  log: z
    .strictObject({
      level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
    })
    .prefault({}),
  mqtt: z
    .strictObject({
      tcp: Listener.prefault({ port: 1883 }),
      ws: Listener.prefault({ port: 8083 }),
      tls: z
        .strictObject({
          enabled: z.boolean().default(false),
          host: z.string().default("0.0.0.0"),
          port: Port.default(8883),
          certFile: z.string().optional(),
          keyFile: z.string().optional(),
          /** The CA that signs devices' client certificates (with clientCertificates: required). */
          caFile: z.string().optional(),
          minVersion: TlsMinVersion,
          /**
           * "required": mutual TLS on the TLS and WSS listeners. A device must present a certificate
           * signed by caFile whose subject CN is its device id, and still its id and secret in
           * CONNECT (a copied secret alone, or a copied certificate alone, is not enough).
           */
          clientCertificates: z.enum(["off", "required"]).default("off"),
        })
        .prefault({})
        .refine((t) => !t.enabled || (t.certFile && t.keyFile), {
          message: "TLS needs certFile and keyFile",
          path: ["certFile"],
        })
        .refine((t) => t.clientCertificates === "off" || t.caFile, {
          message: "client certificates need caFile, the CA that signs them",
          path: ["caFile"],
        }),
      /**
       * MQTT over WebSocket with TLS (wss://host:port/mqtt), with mqtt.tls's certificate, key, CA and
       * minVersion; off by default. Its own listener beside the plain one, so a site can move its
       * devices over before it turns tlsOnly on.
       */
      wss: z
        .strictObject({
          enabled: z.boolean().default(false),
          host: z.string().default("0.0.0.0"),
          port: Port.default(8084),
        })
        .prefault({}),
      /** Payloads above this are dead-lettered and the device is told why. */
      maxPayloadBytes: z.number().int().min(256).max(1_048_576).default(16_384),
      /** MQTT frames above this are not even buffered: the connection is closed with a logged reason. */
      maxFrameBytes: z.number().int().min(1024).max(16_777_216).default(262_144),
      /**
       * Frames above this before CONNECT has succeeded close the connection: a CONNECT carries an id,
       * a secret and perhaps a will, and nobody unauthenticated gets maxFrameBytes of our memory.
       */
      maxConnectFrameBytes: z.number().int().min(256).max(1_048_576).default(8192),
      /** A connection that has not sent CONNECT (or a whole first packet) by then is closed. */
      connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
      /**
       * Open MQTT connections on all listeners together; past it new ones are closed at once. Below
       * the process's file limit (ulimit -n), with room for the database, HTTP and staff sockets.
       */
      maxConnections: z.number().int().min(1).max(1_000_000).default(15_000),
      /** Connections from one address that have not completed CONNECT yet (idle sockets held open). */
      maxPendingPerAddress: z.number().int().min(1).max(100_000).default(100),
      /**
       * A device id taken over by a new connection this many times within the window raises a
       * tamper alert: two holders of one secret (a stolen secret) fight over the session.
       */
      takeovers: z
        .strictObject({
          alertAfter: z.number().int().min(2).max(1000).default(5),
          windowSec: z.number().int().min(10).max(86_400).default(600),
        })
        .prefault({}),
      /** Failed CONNECTs allowed per remote address per window before refusing outright. */
      authFailures: z
        .strictObject({
          max: z.number().int().min(1).default(10),
          windowSec: z.number().int().min(1).default(60),
          /**
           * scrypt checks per second for all addresses together (person-chosen secrets and unknown
           * ids; generated secrets are a hash and do not count). Each is tens of milliseconds of
           * CPU on libuv's pool; past the ceiling a CONNECT gets CONNACK 3 and retries later.
           */
          kdfPerSec: z.number().int().min(1).default(40),
        })
        .prefault({}),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: z.string().default("0.0.0.0"),
      port: Port.default(8080),
      /** Operator token for device administration over HTTP; none disables the admin API. */
      adminToken: z.string().min(16).optional(),
      /**
       * Load balancers in front of the gateway (addresses or CIDR ranges): for requests from them,
       * the client's address is read from X-Forwarded-For, so that the per-address throttles count
       * each person, not the balancer (src/http/client-address.ts). Only the balancers' own
       * addresses: anyone listed here can make the gateway believe any client address.
       */
      trustedProxies: z
        .array(z.string().refine(isAddressOrRange, "an IP address or a CIDR range such as 172.28.0.0/24"))
        .default([]),
      /**
       * A bearer token Prometheus sends to read /metrics (which shows device counts, channel health
       * and traffic); without it /metrics is open, as /healthz and /readyz always are.
       */
      metricsToken: z.string().min(16).optional(),
      tls: z
        .strictObject({ certFile: z.string(), keyFile: z.string(), minVersion: TlsMinVersion })
        .optional(),
      /**
       * /metrics on its own address (and then not on the main port); /healthz and /readyz stay on
       * the main port. Plain HTTP unless tls (with http.tls's certificate and key); with tlsOnly a
       * plain metrics listener must be on a loopback address. metricsToken applies here too.
       */
      metrics: z
        .strictObject({
          host: z.string().default("127.0.0.1"),
          port: Port.default(9464),
          tls: z.boolean().default(false),
        })
        .optional(),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      /**
       * Group commit: how long a publish waits for companions. 0 commits on the next turn of the
       * event loop, which already gathers everything that arrived during the previous commit.
       */
      commitMaxDelayMs: z.number().min(0).max(100).default(0),
      commitMaxEvents: z.number().int().min(1).max(100_000).default(2000),
      /**
       * Least time between the starts of two background group commits (heartbeats, telemetry).
       * Spacing them leaves the event-log writer idle when a fall or a call arrives, so its commit
       * does not wait behind a background fsync; a heartbeat's PUBACK waits up to this much longer.
       * 0 commits background groups back to back.
       */
      backgroundIntervalMs: z.number().min(0).max(100).default(10),
      /** Commit on a writer thread (default) or on the main thread. */
      writer: z.enum(["worker", "inline"]).default("worker"),
      keepRawPayload: z.boolean().default(true),
      /**
       * The most of a refused payload the dead-letter store keeps (its size and SHA-256 are of the
       * whole). Never more than mqtt.maxPayloadBytes, which is also the default: a refused payload
       * takes no more room than the largest accepted one. Lower keeps less of each.
       */
      maxDeadLetterBytes: z.number().int().min(256).optional(),
      /**
       * Bounds of the dead-letter store. A new dead letter over a quota deletes the oldest rows
       * (the device's own for perDevice, anyone's for the totals) in the same transaction, counted
       * in ata_dead_letters_dropped_total and kept across restarts. A lowered quota applies at
       * start. On disk the store takes about totalBytes plus 500 bytes per row (row headers,
       * indexes, page slack; 4,653 bytes a row for 4,162 counted, measured).
       */
      deadLetters: z
        .strictObject({
          /** Rows per device: a device flooding refused publishes cannot push others' out. */
          perDevice: z.number().int().min(1).default(1000),
          /** Rows in all. */
          total: z.number().int().min(1).default(100_000),
          /** Bytes in all (stored payloads, reasons, topics): 256 MiB. */
          totalBytes: z.number().int().min(1_048_576).default(268_435_456),
        })
        .prefault({}),
      /**
       * A payload without an eventId gets one derived from its bytes; the same bytes again within
       * this many seconds are a redelivery (dropped, with a trace), later ones a new event. See
       * docs/mqtt-contract.md for why 120 s.
       */
      redeliveryWindowSec: z.number().int().min(1).max(86_400).default(120),
      /**
       * Publishes per device per second, sustained (perSec) and at once (burst). Past it a publish
       * is dead-lettered with rate_limited and the device told why, unless it carries an event that
       * can raise a high-priority alert. Real care devices send a few a minute; this bounds what a
       * runaway or hostile one costs the others (the event log, the rules, the disk).
       */
      deviceRate: z
        .strictObject({
          perSec: z.number().min(0.1).max(100_000).default(50),
          burst: z.number().int().min(1).max(1_000_000).default(500),
        })
        .prefault({}),
    })
    .prefault({}),
  /**
   * The scheduling priority (Linux nice, -20..0) of the two threads a fall's way to staff crosses:
   * the main thread (devices, rules, staff sockets) and the event-log writer (its commit). On a busy
   * host a thread woken by a fall otherwise waits behind whatever holds the cores (docs/operations.md,
   * "Sizing for a fall's latency"). Raising it needs CAP_SYS_NICE or an RLIMIT_NICE that allows it
   * (systemd LimitNICE=, docker --ulimit nice=); where it is refused the gateway says so at start
   * and runs at normal priority. 0 leaves both as they are.
   */
  priority: z.strictObject({ fallPathNice: z.number().int().min(-20).max(0).default(-10) }).prefault({}),
  influx: z
    .strictObject({
      url: z.url(),
      database: z.string().default("ata"),
      retentionPolicy: z.string().default("ata_default"),
      retentionDuration: z.string().default("0s"),
      /** Create the database and retention policy at start (InfluxDB 1.x); false on 2.x and 3.x. */
      manageDatabase: z.boolean().default(true),
      username: z.string().optional(),
      password: z.string().optional(),
    })
    .optional(),
  /** The rule file, relative to the working directory. */
  rulesFile: z.string().default("config/rules.yaml"),
  /** The time-saved model's parameters with their sources. */
  timeModelFile: z.string().default("config/time-model.yaml"),
  alarms: z
    .strictObject({
      /** The last rung of every escalation ladder: a signed POST to an alarm receiving centre or bridge. */
      fallbackWebhook: z
        .strictObject({
          url: z.url(),
          secret: z.string().min(16, "the signing secret needs at least 16 characters"),
          timeoutMs: z.number().int().min(100).max(60_000).default(5000),
          maxAttempts: z.number().int().min(1).max(50).default(8),
          backoffMs: z.number().int().min(10).default(2000),
          maxBackoffMs: z.number().int().min(10).default(300_000),
        })
        .optional(),
    })
    .prefault({}),
  /** Signing phones in with a one-time code or QR code (src/staff/enrolment.ts). */
  enrolment: z
    .strictObject({
      /** The console's address as staff phones reach it, for the QR code; default the request's Host. */
      publicUrl: z.url().optional(),
      /** How long a code can be exchanged. */
      codeTtlMinutes: z
        .number()
        .int()
        .min(1)
        .max(24 * 60)
        .default(15),
      /** Wrong codes one address may try per window before it must wait. */
      maxFailures: z.number().int().min(1).max(1000).default(5),
      failureWindowSec: z.number().int().min(1).max(86_400).default(600),
    })
    .prefault({}),
  /**
   * Delivery channels beyond the console and the fallback webhook (docs/channels.md): Web Push to
   * staff phones and paging to DECT handsets (ESPA 4.4.4). Escalation ladders may name only the
   * channels configured here.
   */
  channels: z
    .strictObject({
      push: PushOptions.optional(),
      paging: PagingOptions.optional(),
    })
    .prefault({}),
  /**
   * Staff and operator sign-in (HTTP bearer tokens and the staff WebSocket's hello): failed tokens
   * allowed per address, and per token prefix, per window before further attempts are refused
   * unchecked (429 rate_limited). A token that has signed in from an address before still gets in.
   */
  staffAuth: z
    .strictObject({
      maxFailures: z.number().int().min(1).max(10_000).default(20),
      windowSec: z.number().int().min(1).max(86_400).default(60),
    })
    .prefault({}),
  /** Staff tokens created at boot when missing (demo and first run); use `ata tokens create` otherwise. */
  staff: z.array(SeedStaffConfig).default([]),
  /**
   * Demo mode: a simulated nursing home plays the configured devices against this gateway over MQTT
   * (a week of history first, then live with boosted rates) and a simulated colleague answers
   * alerts nobody takes. For trying the product; never on a real site.
   */
  demo: z
    .strictObject({
      enabled: z.boolean().default(false),
      historyDays: z.number().min(0).max(60).default(7),
      liveBoost: z.number().min(1).max(500).default(60),
      staffBot: z.boolean().default(true),
      botAcceptAfterSec: z.tuple([z.number().min(0), z.number().min(0)]).default([45, 90]),
      /**
       * The demo's devices and staff tokens. Their secrets are public (they ship in this project),
       * so they exist only while demo mode is on: seeded then, disabled and revoked at the next
       * start with demo mode off (src/security/demo-credentials.ts). Real devices and people go in
       * the top-level devices and staff, or better in the database (`ata devices add`, `ata tokens create`).
       */
      devices: z.array(SeedDeviceConfig).default([]),
      staff: z.array(SeedStaffConfig).default([]),
      /**
       * Baselines the demo records for its site when the site has none yet, so the dashboard can
       * show realised time beside potential. Illustrative figures, said so in their note; a real
       * site measures its own (`ata baseline set`, docs/time-model.md).
       */
      baselines: z.array(BaselineInput).default([]),
    })
    .prefault({}),
  /** Observe mode for unknown devices (src/observe/, docs/observe.md): off unless turned on. */
  observe: ObserveConfig.prefault({}),
  /** Brokers of LoRaWAN network servers and zigbee2mqtt that devices reach the gateway through (docs/bridges.md). */
  bridges: BridgesConfig.prefault({}),
  /** The SCAIP receiver (SIP MESSAGE from social-alarm units, src/scaip/, docs/scaip.md): off by default. */
  scaip: ScaipConfig.prefault({}),
  /**
   * External device profiles (src/profiles/, docs/vendor-guide.md): every .js/.mjs module in `dir`
   * (and .ts under tsx) is checked like a built-in profile and loaded at start and on SIGHUP.
   * Relative to the working directory.
   */
  profiles: z.strictObject({ dir: z.string().min(1).optional() }).prefault({}),
  /** Cluster mode (src/cluster/, docs/cluster.md): off by default. */
  cluster: ClusterConfig.prefault({}),
  sites: z.array(SiteConfig).min(1),
  residents: z.array(ResidentConfig).default([]),
  devices: z.array(SeedDeviceConfig).default([]),
});

export type Config = z.infer<typeof ConfigSchema>;
export type SiteConfig = z.infer<typeof SiteConfig>;

/**
 * The delivery channels this configuration turns on (the console always). The gateway builds the
 * same set from what it started; main.ts checks the rule file's ladders against it before start.
 */
export function configuredChannels(config: Config): Set<ChannelName> {
  const out = new Set<ChannelName>(["console"]);
  if (config.alarms.fallbackWebhook) out.add("webhook");
  if (config.channels.push) out.add("push");
  if (config.channels.paging) out.add("paging");
  return out;
}

/** The operator's seeds, then the demo's, each with its path in the file. */
function seeds<K extends "devices" | "staff">(
  config: Config,
  key: K,
): [Config[K][number], (string | number)[]][] {
  return [
    ...config[key].map((x, i): [Config[K][number], (string | number)[]] => [x, [key, i]]),
    ...config.demo[key].map((x, i): [Config[K][number], (string | number)[]] => [x, ["demo", key, i]]),
  ];
}

/** `rules[0].when.event`: one way to print a path in every configuration problem. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

/**
 * The configuration the gateway runs on: with demo mode on, the demo's devices and staff tokens
 * join the operator's seeds; with it off they are not seeded at all.
 */
export function effectiveConfig(config: Config): Config {
  if (!config.demo.enabled) return config;
  return {
    ...config,
    devices: [...config.devices, ...config.demo.devices],
    staff: [...config.staff, ...config.demo.staff],
  };
}

/** Cross-references the schema cannot express: returned as issues with paths, like zod's. */
export function crossCheck(
  config: Config,
  knownProfiles: ReadonlySet<string>,
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const units = new Map<string, Set<string>>();
  const seenSites = new Set<string>();
  config.sites.forEach((s, i) => {
    if (seenSites.has(s.id))
      problems.push({ path: ["sites", i, "id"], message: `duplicate site id "${s.id}"` });
    seenSites.add(s.id);
    const ids = new Set<string>();
    s.units.forEach((u, j) => {
      if (ids.has(u.id))
        problems.push({ path: ["sites", i, "units", j, "id"], message: `duplicate unit id "${u.id}"` });
      ids.add(u.id);
    });
    units.set(s.id, ids);
  });
  const placeOk = (site: string, unit: string, path: (string | number)[]) => {
    const u = units.get(site);
    if (!u) problems.push({ path: [...path, "site"], message: `unknown site "${site}"` });
    else if (!u.has(unit))
      problems.push({ path: [...path, "unit"], message: `unknown unit "${unit}" in site "${site}"` });
  };
  // The operator's seeds and the demo's are checked together: one id or token in both is a clash.
  const name = formatPath;
  const staffIds = new Map<string, (string | number)[]>();
  const staffTokens = new Map<string, (string | number)[]>();
  seeds(config, "staff").forEach(([t, at]) => {
    const sameId = staffIds.get(t.id);
    if (sameId !== undefined)
      problems.push({ path: [...at, "id"], message: `duplicate staff id "${t.id}" (also ${name(sameId)})` });
    else staffIds.set(t.id, at);
    // Named by position only: the token itself is a secret and never goes into a message.
    const sameToken = staffTokens.get(t.token);
    if (sameToken !== undefined)
      problems.push({
        path: [...at, "token"],
        message: `the same token as ${name(sameToken)}; each needs its own`,
      });
    else staffTokens.set(t.token, at);
    t.sites.forEach((site, j) => {
      if (!units.has(site)) problems.push({ path: [...at, "sites", j], message: `unknown site "${site}"` });
    });
    t.units?.forEach((unit, j) => {
      if (!t.sites.some((site) => units.get(site)?.has(unit)))
        problems.push({ path: [...at, "units", j], message: `unit "${unit}" is not in the token's sites` });
    });
  });
  const refs = new Set<string>();
  config.residents.forEach((r, i) => {
    placeOk(r.site, r.unit, ["residents", i]);
    if (refs.has(r.ref))
      problems.push({ path: ["residents", i, "ref"], message: `duplicate resident "${r.ref}"` });
    refs.add(r.ref);
  });
  const deviceIds = new Set<string>();
  seeds(config, "devices").forEach(([d, at]) => {
    placeOk(d.site, d.unit, at);
    if (!knownProfiles.has(d.profile))
      problems.push({ path: [...at, "profile"], message: `unknown profile "${d.profile}"` });
    if (d.resident && !refs.has(d.resident))
      problems.push({ path: [...at, "resident"], message: `unknown resident "${d.resident}"` });
    if (deviceIds.has(d.id)) problems.push({ path: [...at, "id"], message: `duplicate device id "${d.id}"` });
    deviceIds.add(d.id);
  });
  if (config.channels.paging)
    for (const p of pagingProblems(config.channels.paging, config.sites))
      problems.push({ path: ["channels", "paging", ...p.path], message: p.message });
  problems.push(...transportProblems(config));
  problems.push(...scaipProblems(config.scaip, config.tlsOnly, config.mqtt.tls));
  const siteIds = config.sites.map((s) => s.id);
  problems.push(...observeProblems(config.observe, siteIds));
  problems.push(...bridgeProblems(config.bridges));
  const residentOf = (ref: string) => {
    const r = config.residents.find((x) => x.ref === ref);
    return r ? { site: r.site, unit: r.unit } : undefined;
  };
  config.demo.baselines.forEach((b, i) => {
    for (const p of checkBaselineScope(b, config.sites, residentOf))
      problems.push({ path: ["demo", "baselines", i, ...p.path.split(".")], message: p.message });
  });
  return problems;
}

/** Listeners that need a certificate configured elsewhere, and what tlsOnly requires. */
function transportProblems(config: Config): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const { mqtt, http } = config;
  if (mqtt.wss.enabled && !(mqtt.tls.certFile && mqtt.tls.keyFile))
    problems.push({
      path: ["mqtt", "wss", "enabled"],
      message: "MQTT over secure WebSocket uses mqtt.tls.certFile and mqtt.tls.keyFile; set them",
    });
  if (http.metrics?.tls && !http.tls)
    problems.push({
      path: ["http", "metrics", "tls"],
      message: "the metrics listener uses http.tls's certificate and key; set http.tls",
    });
  if (!config.tlsOnly) return problems;
  if (!mqtt.tls.enabled)
    problems.push({
      path: ["mqtt", "tls", "enabled"],
      message:
        "tlsOnly closes plain MQTT, so devices need MQTT over TLS: enable it with certFile and keyFile",
    });
  if (!http.tls)
    problems.push({
      path: ["http", "tls"],
      message: "tlsOnly closes plain HTTP, so the console and API need HTTPS: set certFile and keyFile",
    });
  if (http.metrics && !http.metrics.tls && !isLoopback(http.metrics.host))
    problems.push({
      path: ["http", "metrics", "host"],
      message: `tlsOnly allows a plain-HTTP metrics listener on a loopback address only, not "${http.metrics.host}": bind it to 127.0.0.1 or ::1, or set http.metrics.tls`,
    });
  if (config.demo.enabled)
    problems.push({
      path: ["demo", "enabled"],
      message:
        "the demo's simulated devices connect over plain MQTT, which tlsOnly closes: turn the demo off",
    });
  return problems;
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) or "localhost": reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}
