/**
 * `ata simulate`: plays the nursing-home model (or, with --rate, a fixed event rate) against a running
 * gateway over MQTT, as the demo configuration's devices or as N devices it registers itself through
 * the HTTP admin API, so it serves both as a demo feed and as a load generator.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { CliContext } from "../cli/ata.js";
import type { CliCommand } from "../cli/commands.js";
import type { Config } from "../config/schema.js";
import { ENCODERS } from "./encoders.js";
import {
  type DeviceSpec,
  type EventSource,
  NursingHomeModel,
  populationFromConfig,
  RateModel,
} from "./model.js";
import { type RunnerDevice, type RunnerStats, SimRunner } from "./runner.js";

const USAGE =
  "simulate [--url mqtt://127.0.0.1:1883] [--devices N] [--rate EVENTS_PER_SEC] [--speed X|max] [--duration SEC]\n" +
  "           [--register --admin-token T --http URL] [--profiles p1,p2] [--seed S] [--start ISO]\n" +
  "           [--heartbeat-every K] [--in-flight N]";

const HELP = `usage: ata ${USAGE}

Plays simulated care devices against a running gateway over MQTT (QoS 1, one client per device).
  --url URL             broker (default mqtt://127.0.0.1:<mqtt.tcp.port of the config>)
  --devices N           the first N devices of the config, or with --register N new simulated devices
  --register            register the devices over the HTTP admin API (POST /api/v1/devices);
                        existing ones get a new secret
  --admin-token T       admin token for --register (default: http.adminToken / ATA_ADMIN_TOKEN)
  --http URL            gateway HTTP API for --register (default http://127.0.0.1:<http.port>)
  --profiles LIST       profiles of registered devices, round robin (default: all)
  --rate E              load mode: E events per real second across the devices, mixed by profile
  --speed X|max         simulated seconds per real second (default 1; max = as fast as PUBACKs come)
  --duration SEC        simulated seconds to run (default: forever at speed 1, else one week)
  --start ISO           simulated start (default: now, or one duration ago when faster than real time,
                        so that a simulated week ends now)
  --seed S              PRNG seed (default 1): the same seed and start give the same events
  --heartbeat-every K   send 1 heartbeat in K (thins heartbeats for fast runs; presence is then not realistic)
  --in-flight N         unacknowledged publishes per device (default 32)`;

class SimUsageError extends Error {}

interface Registered {
  device: RunnerDevice;
  spec: DeviceSpec;
}

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new SimUsageError(`--${name} must be a positive number`);
  return n;
}

async function request(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(path, base), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json: json as Record<string, unknown> | null };
}

/**
 * Register `count` devices named `sim-00001`... over the admin API, profiles round robin, one of each
 * profile per room (`sim-room-<k>`), units round robin over the first site. A device that already
 * exists keeps its registration and gets a new secret, so reruns reuse the same ids.
 */
async function register(
  config: Config,
  opts: { count: number; http: string; token: string; profiles: string[]; out: (l: string) => void },
): Promise<Registered[]> {
  const site = config.sites[0]!;
  const concurrency = 8;
  const result: Registered[] = new Array(opts.count);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < opts.count) {
      const i = next++;
      const id = `sim-${String(i + 1).padStart(5, "0")}`;
      let profile = opts.profiles[i % opts.profiles.length]!;
      const unit = site.units[Math.floor(i / opts.profiles.length) % site.units.length]!;
      const room = `sim-room-${Math.floor(i / opts.profiles.length) + 1}`;
      let secret = randomBytes(18).toString("base64url");
      const body = { id, profile, site: site.id, unit: unit.id, room, secret };
      const created = await request(opts.http, opts.token, "POST", "/api/v1/devices", body);
      let placed = { siteId: site.id, unitId: unit.id, roomId: room as string | null };
      if (created.status === 409) {
        const existing = await request(opts.http, opts.token, "GET", `/api/v1/devices/${id}`);
        const device = existing.json?.device as
          | { profile: string; siteId: string; unitId: string; roomId: string | null }
          | undefined;
        const rotated = await request(opts.http, opts.token, "POST", `/api/v1/devices/${id}/rotate-secret`);
        if (!device || typeof rotated.json?.secret !== "string") {
          throw new Error(
            `${id} exists but could not be taken over (HTTP ${existing.status}/${rotated.status})`,
          );
        }
        profile = device.profile;
        placed = { siteId: device.siteId, unitId: device.unitId, roomId: device.roomId };
        secret = rotated.json.secret;
      } else if (created.status >= 300) {
        const error = (created.json?.error ?? {}) as { code?: string; message?: string };
        throw new Error(
          `registering ${id}: HTTP ${created.status} ${error.code ?? ""} ${error.message ?? ""}`.trim(),
        );
      }
      result[i] = {
        device: { id, profile, secret, timeZone: site.timeZone },
        spec: { id, profile, ...placed, residentRef: null },
      };
      if (++done % 500 === 0) opts.out(`registered ${done}/${opts.count}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, opts.count) }, worker));
  return result;
}

function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return "until interrupted";
  if (sec >= 86400) return `${+(sec / 86400).toFixed(2)} d`;
  if (sec >= 3600) return `${+(sec / 3600).toFixed(2)} h`;
  return `${sec} s`;
}

export function formatProgress(s: RunnerStats): string {
  const sim = new Date(s.simTime).toISOString().slice(0, 16).replace("T", " ");
  const extra = [
    s.failed ? `failed ${s.failed}` : "",
    s.backlog ? `backlog ${s.backlog}` : "",
    s.connected < s.devices ? `connected ${s.connected}/${s.devices}` : "",
  ].filter(Boolean);
  return [
    `sim ${sim}Z`,
    `sent ${s.sent}`,
    `acked ${s.acknowledged}`,
    `rejected ${s.rejected}`,
    `${Math.round(s.ackRate)}/s`,
    `p99 ${s.latencyMs.p99.toFixed(1)} ms`,
    ...extra,
  ].join(" | ");
}

async function run(ctx: CliContext): Promise<void> {
  const { values } = parseArgs({
    args: ctx.args.filter((a) => a !== "simulate"),
    options: {
      url: { type: "string" },
      devices: { type: "string" },
      rate: { type: "string" },
      speed: { type: "string" },
      duration: { type: "string" },
      register: { type: "boolean" },
      "admin-token": { type: "string" },
      http: { type: "string" },
      profiles: { type: "string" },
      seed: { type: "string" },
      start: { type: "string" },
      "heartbeat-every": { type: "string" },
      "in-flight": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    ctx.out(HELP);
    return;
  }
  const { config } = ctx;
  const url = values.url ?? `mqtt://127.0.0.1:${config.mqtt.tcp.port}`;
  const speed =
    values.speed === "max" ? Number.POSITIVE_INFINITY : (positiveNumber(values.speed, "speed") ?? 1);
  const rate = positiveNumber(values.rate, "rate");
  const count = positiveNumber(values.devices, "devices");
  const heartbeatEvery = positiveNumber(values["heartbeat-every"], "heartbeat-every") ?? 1;
  const inFlight = positiveNumber(values["in-flight"], "in-flight");
  const seed = values.seed ?? "1";
  const durationSec =
    positiveNumber(values.duration, "duration") ??
    (rate ? 60 * (Number.isFinite(speed) ? speed : 1) : speed === 1 ? Number.POSITIVE_INFINITY : 7 * 86400);
  if (rate && !Number.isFinite(speed))
    throw new SimUsageError("--rate paces events in real time: give a finite --speed");
  let start = Date.now();
  if (values.start) {
    start = Date.parse(values.start);
    if (Number.isNaN(start)) throw new SimUsageError("--start must be an ISO 8601 time");
  } else if (speed > 1 && Number.isFinite(durationSec)) {
    start = Date.now() - durationSec * 1000;
  }

  // Devices: registered over HTTP, or the configuration's own (with their secrets).
  const tz = new Map(config.sites.map((s) => [s.id, s.timeZone]));
  let runnerDevices: RunnerDevice[];
  let specs: DeviceSpec[];
  const population = populationFromConfig(config);
  if (values.register) {
    if (!count) throw new SimUsageError("--register needs --devices N");
    const token = values["admin-token"] ?? config.http.adminToken;
    if (!token)
      throw new SimUsageError("--register needs --admin-token (or http.adminToken / ATA_ADMIN_TOKEN)");
    const profiles = values.profiles ? values.profiles.split(",").map((p) => p.trim()) : [...ENCODERS.keys()];
    const unknown = profiles.filter((p) => !ENCODERS.has(p));
    if (unknown.length) throw new SimUsageError(`no simulator for profile(s) ${unknown.join(", ")}`);
    const http = values.http ?? `http://127.0.0.1:${config.http.port}`;
    ctx.out(`registering ${count} devices at ${http} ...`);
    const registered = await register(config, { count, http, token, profiles, out: ctx.out });
    runnerDevices = registered.map((r) => r.device);
    specs = registered.map((r) => r.spec);
  } else {
    const seeded = config.devices.filter((d) => ENCODERS.has(d.profile));
    if (count !== undefined && count > seeded.length) {
      throw new SimUsageError(`the configuration has ${seeded.length} devices; use --register for more`);
    }
    const chosen = seeded.slice(0, count ?? seeded.length);
    if (chosen.length === 0)
      throw new SimUsageError("the configuration has no devices; use --devices N --register");
    runnerDevices = chosen.map((d) => ({
      id: d.id,
      profile: d.profile,
      secret: d.secret,
      timeZone: tz.get(d.site),
    }));
    const ids = new Set(chosen.map((d) => d.id));
    specs = population.devices.filter((d) => ids.has(d.id));
  }

  const source: EventSource = rate
    ? new RateModel({ devices: runnerDevices, eventsPerSec: rate, speed, start, durationSec, seed })
    : new NursingHomeModel({
        ...population,
        devices: specs,
        seed,
        start,
        durationSec,
        params: { heartbeatKeepEvery: heartbeatEvery },
      });

  const mode = rate ? `${rate} events/s` : "nursing-home model";
  ctx.out(
    `simulating ${runnerDevices.length} devices (${mode}) from ${new Date(start).toISOString()} for ` +
      `${formatDuration(durationSec)} at ${Number.isFinite(speed) ? `x${speed}` : "max speed"} against ${url}; seed ${seed}`,
  );
  if (heartbeatEvery > 1 && !rate) {
    ctx.out(
      `heartbeats thinned: 1 in ${heartbeatEvery} sent (device presence and supervision will not look realistic)`,
    );
  }

  const tty = process.stdout.isTTY === true;
  let lastLine = 0;
  const runner = new SimRunner({
    url,
    devices: runnerDevices,
    source,
    speed,
    ...(inFlight ? { inFlight } : {}),
    progressIntervalMs: tty ? 500 : 1000,
    progress: (s) => {
      const line = formatProgress(s);
      if (tty) process.stdout.write(`\r${line}\x1b[K`);
      else if (s.done || performance.now() - lastLine >= 5000) {
        lastLine = performance.now();
        ctx.out(line);
      }
    },
  });
  await runner.start();
  let onSigint = () => {};
  const interrupted = new Promise<"interrupted">((resolve) => {
    onSigint = () => resolve("interrupted");
    process.once("SIGINT", onSigint);
  });
  const how = await Promise.race([runner.done.then(() => "done" as const), interrupted]);
  process.off("SIGINT", onSigint);
  const final = await runner.stop();
  if (tty) process.stdout.write("\n");
  ctx.out(`${how === "done" ? "finished" : "interrupted"}: ${formatProgress(final)}`);
  const kinds = Object.entries(final.sentByKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  if (kinds) ctx.out(`sent by kind: ${kinds}`);
  if (final.rejected > 0) {
    ctx.out(`rejected by code: ${JSON.stringify(final.rejectedByCode)} (see \`ata dead-letters\`)`);
    process.exitCode = 1;
  }
}

export const simulateCommand: CliCommand = {
  name: "simulate",
  usage: USAGE,
  async run(ctx: CliContext) {
    try {
      await run(ctx);
    } catch (err) {
      if (!(err instanceof SimUsageError) && !(err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))
        throw err;
      process.stderr.write(
        `${(err as Error).message}\n\nusage: ata ${USAGE}\n(ata simulate --help explains each option)\n`,
      );
      process.exitCode = 2;
    }
  },
};
