/**
 * `ata`: the operator's command line. It works on the gateway's database directly (the running
 * gateway notices changes within two seconds), so it needs no token and works while the gateway is
 * down.
 *
 *   ata devices list [--site S]
 *   ata devices add --id ID --profile P --site S --unit U [--room R] [--resident REF] [--secret S]
 *   ata devices disable ID | enable ID | rotate-secret ID
 *   ata dead-letters [--device ID] [--limit N] | --usage [--device ID]
 *   ata duplicates [--device ID] [--limit N]
 *   ata profiles [check DIR]
 *   ata conform --profile P --file samples.jsonl [--dir DIR]
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { checkSamples, formatSampleResults } from "../../devices/conformance.js";
import { PROFILES } from "../../devices/index.js";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { silentLogger } from "../log.js";
import { OBSERVE_PROFILE } from "../observe/config.js";
import { ObserveError } from "../observe/mode.js";
import { checkProfileDir, listProfiles } from "../profiles/cli.js";
import { configProfileIds } from "../profiles/config.js";
import { loadProfileDir } from "../profiles/loader.js";
import { Registry, RegistryError } from "../registry/registry.js";
import { BaselineError } from "../reports/baseline/schema.js";
import { SecurityLog } from "../security/log.js";
import { BackupError } from "../store/backup.js";
import { openDb, SchemaTooNewError } from "../store/db.js";
import { deadLetterUsage, deviceDeadLetterUsage } from "../store/dead-letter-quota.js";
import { latestRefused } from "../store/diagnostics.js";
import { extraCommands } from "./commands.js";

export interface CliContext {
  config: Config;
  args: string[];
  out: (line: string) => void;
  openRegistry(): { registry: Registry; close(): void };
}

const USAGE = `usage: ata [--config FILE] <command>
  devices list [--site S]
  devices add --id ID --profile P --site S --unit U [--room R] [--resident REF] [--secret S]
  devices disable ID | enable ID | rotate-secret ID
  dead-letters [--device ID] [--limit N]
  dead-letters --usage [--device ID]       (the store's quotas, what it holds, what the quotas deleted)
  duplicates [--device ID] [--limit N]      (events dropped as redeliveries or repeated eventIds)
  profiles                                  (built-in and the configured profiles.dir's)
  profiles check DIR                        (the checks the gateway runs on external profiles; exit 1 if any fails)
  conform --profile P --file samples.jsonl [--dir DIR]   (one {"topic": "...", "payload": <json> | "payloadHex": "..."} per line)
${extraCommands.map((c) => `  ${c.usage}`).join("\n")}`;

class UsageError extends Error {}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new UsageError(`--${name} needs a value`);
  return v;
}

function required(args: string[], name: string): string {
  const v = option(args, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

export async function runCli(
  argv: string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: "string", short: "c" } },
    strict: false,
    allowPositionals: true,
  });
  // Devices may name external profiles (profiles.dir) as well as built-in ones.
  const configPath = resolve(
    (values.config as string | undefined) ?? process.env.ATA_CONFIG ?? DEFAULT_CONFIG_PATH,
  );
  const known = await configProfileIds(configPath, process.env);
  const config = loadConfig({ path: configPath, env: process.env, knownProfiles: known.ids });
  const args = argv.filter(
    (a, i) => a !== "--config" && argv[i - 1] !== "--config" && a !== "-c" && argv[i - 1] !== "-c",
  );
  const [cmd, sub, ...rest] = positionals as string[];
  const openRegistry = () => {
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    const units = new Set(config.sites.flatMap((s) => s.units.map((u) => `${s.id}/${u.id}`)));
    const registry = new Registry(db, new Set([...PROFILES.map((p) => p.id), OBSERVE_PROFILE]), {
      hasUnit: (site, unit) => units.has(`${site}/${unit}`),
    });
    registry.syncResidents(
      config.residents.map((r) => ({
        ref: r.ref,
        siteId: r.site,
        unitId: r.unit,
        roomId: r.room ?? null,
        flags: r.flags,
      })),
    );
    registry.updateProfiles({ added: known.ids, removed: [] });
    const security = new SecurityLog(db, silentLogger());
    const audit = (action: string, device: string) =>
      security.record({ kind: "admin_action", actor: "cli", subject: device, detail: { action } });
    return { registry, audit, close: () => db.close() };
  };

  switch (cmd) {
    case "devices": {
      const { registry, audit, close } = openRegistry();
      try {
        if (sub === "list") {
          const site = option(args, "site");
          for (const d of registry.list(site ? { siteIds: [site] } : {}))
            out(
              [
                d.id,
                d.profile,
                `${d.siteId}/${d.unitId}`,
                d.roomId ?? "-",
                d.residentRef ?? "-",
                d.enabled ? "enabled" : "DISABLED",
              ].join("\t"),
            );
        } else if (sub === "add") {
          const secret = option(args, "secret");
          const { device, secret: generated } = registry.add({
            id: required(args, "id"),
            profile: required(args, "profile"),
            siteId: required(args, "site"),
            unitId: required(args, "unit"),
            roomId: option(args, "room") ?? null,
            residentRef: option(args, "resident") ?? null,
            ...(secret ? { secret } : {}),
          });
          audit("device_added", device.id);
          out(`added ${device.id} (${device.profile}) in ${device.siteId}/${device.unitId}`);
          if (generated) out(`secret: ${generated}\n(shown once; the gateway keeps only a hash)`);
        } else if (sub === "disable" || sub === "enable") {
          const id = rest[0] ?? "";
          registry.setEnabled(id, sub === "enable");
          audit(`device_${sub}d`, id);
          out(`${id} ${sub}d`);
        } else if (sub === "rotate-secret") {
          const id = rest[0] ?? "";
          const secret = registry.rotateSecret(id);
          audit("device_secret_rotated", id);
          out(`secret: ${secret}\n(shown once; the old secret no longer works)`);
        } else throw new UsageError(`unknown devices command "${sub ?? ""}"`);
      } finally {
        close();
      }
      return;
    }
    case "dead-letters":
    case "duplicates": {
      const db = openDb({ path: join(config.dataDir, "ata.db") });
      try {
        const kind = cmd === "dead-letters" ? "dead_letters" : "duplicates";
        if (kind === "dead_letters" && args.includes("--usage")) {
          const u = deadLetterUsage(db);
          const max = (n: number | null, unit: string) => (n === null ? "none" : `${n} ${unit}`);
          out(
            `quota\tper device ${max(u.quota.perDevice, "rows")}\ttotal ${max(u.quota.total, "rows")}, ${max(u.quota.totalBytes, "B")}`,
          );
          out(`stored\t${u.letters} rows\t${u.bytes} B`);
          out(`dropped\tdevice_quota ${u.dropped.device}\ttotal_quota ${u.dropped.total}`);
          const device = option(args, "device");
          if (device) {
            const d = deviceDeadLetterUsage(db, device);
            out(`device\t${device}\t${d.letters} rows\t${d.bytes} B`);
          }
          return;
        }
        const rows = latestRefused(db, kind, {
          device: option(args, "device") ?? null,
          limit: Number(option(args, "limit") ?? 20),
        });
        for (const r of rows)
          out(
            (kind === "dead_letters"
              ? [r.id, r.received_at, r.device_id, r.topic, r.code, `${r.size} B`, r.reason]
              : [r.id, r.received_at, r.device_id, r.topic ?? "", r.event_id, r.reason]
            ).join("\t"),
          );
      } finally {
        db.close();
      }
      return;
    }
    case "profiles": {
      if (sub === "check") {
        const dir = rest[0];
        if (!dir) throw new UsageError("profiles check needs a directory");
        if (!(await checkProfileDir(dir, out))) process.exitCode = 1;
      } else if (sub === undefined) listProfiles(known.report, out);
      else throw new UsageError(`unknown profiles command "${sub}"`);
      return;
    }
    case "conform": {
      // A vendor's profile before it is installed: --dir names the directory it is in.
      const dir = option(args, "dir");
      const fromDir = dir ? (await loadProfileDir(dir, new Set(PROFILES.map((p) => p.id)))).loaded : [];
      const candidates = [...PROFILES, ...(known.report?.loaded ?? []), ...fromDir].map((l) =>
        "profile" in l ? l.profile : l,
      );
      const profile = candidates.find((p) => p.id === required(args, "profile"));
      if (!profile)
        throw new UsageError(
          `unknown profile (one that fails "ata profiles check" is not loaded); known: ${candidates.map((p) => p.id).join(", ")}`,
        );
      const lines = readFileSync(required(args, "file"), "utf8")
        .split("\n")
        .filter((l) => l.trim());
      const samples = lines.map((l, i) => {
        let s: { topic?: string; payload?: unknown; payloadHex?: string };
        try {
          s = JSON.parse(l);
        } catch {
          throw new UsageError(`line ${i + 1} is not JSON`);
        }
        const payload =
          s.payloadHex !== undefined
            ? Buffer.from(s.payloadHex, "hex")
            : Buffer.from(typeof s.payload === "string" ? s.payload : JSON.stringify(s.payload));
        return { topic: s.topic ?? profile.topics[0] ?? "events", payload };
      });
      const results = checkSamples(profile, samples);
      for (const line of formatSampleResults(results)) out(line);
      const failed = results.filter((r) => !r.ok).length;
      out(`${results.length - failed} of ${results.length} samples conform to ${profile.id}`);
      if (failed) process.exitCode = 1;
      return;
    }
    default: {
      const extra = extraCommands.find((c) => c.name === cmd);
      if (extra) return extra.run({ config, args, out, openRegistry });
      throw new UsageError(cmd ? `unknown command "${cmd}"` : "a command is required");
    }
  }
}

/** Entry point with the exit codes operators script against: 0 ok, 1 check failed, 2 usage/config error. */
export async function main(argv: string[]): Promise<void> {
  try {
    await runCli(argv);
  } catch (err) {
    if (err instanceof UsageError) process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    else if (
      err instanceof ConfigError ||
      err instanceof RegistryError ||
      err instanceof ObserveError ||
      err instanceof BackupError ||
      err instanceof BaselineError ||
      err instanceof SchemaTooNewError
    )
      process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 2;
  }
}

if (process.argv[1]?.endsWith("src/cli/ata.ts")) await main(process.argv.slice(2));
