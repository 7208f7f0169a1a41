/**
 * Commands beyond device administration, each contributed by its feature (tokens by the staff
 * channel, simulate by the simulator). Listed explicitly, not discovered from the filesystem.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { clusterCommand } from "../cluster/cli.js";
import { silentLogger } from "../log.js";
import { observeCommand } from "../observe/cli.js";
import { baselineCommand } from "../reports/baseline/cli.js";
import { SECURITY_EVENT_KINDS, SecurityLog } from "../security/log.js";
import { simulateCommand } from "../sim/cli.js";
import { EnrolmentStore, enrolmentUrl } from "../staff/enrolment.js";
import { Role, TokenStore } from "../staff/tokens.js";
import { backupDataDir } from "../store/backup.js";
import { openDb } from "../store/db.js";
import type { CliContext } from "./ata.js";

export interface CliCommand {
  name: string;
  usage: string;
  run(ctx: CliContext): Promise<void> | void;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
}

/** --name, --role, --sites and --units of a person (tokens create, enrol), every problem listed at once. */
function personFlags(
  args: string[],
  config: CliContext["config"],
): { name: string; role: Role; sites: string[]; units: string[] | undefined } {
  const name = flag(args, "name");
  const role = Role.safeParse(flag(args, "role"));
  const sites = flag(args, "sites")?.split(",").filter(Boolean) ?? [];
  const units = flag(args, "units")?.split(",").filter(Boolean);
  const known = new Map(config.sites.map((s) => [s.id, new Set(s.units.map((u) => u.id))]));
  const problems: string[] = [];
  if (!name) problems.push("--name is required");
  if (!role.success) problems.push("--role must be staff, nurse, manager or admin");
  if (!sites.length) problems.push("--sites is required");
  for (const s of sites) if (!known.has(s)) problems.push(`unknown site "${s}"`);
  for (const u of units ?? [])
    if (!sites.some((s) => known.get(s)?.has(u))) problems.push(`unit "${u}" is not in the given sites`);
  if (problems.length) throw new Error(problems.join("\n"));
  return { name: name!, role: role.data!, sites, units };
}

const tokens: CliCommand = {
  name: "tokens",
  usage:
    "tokens create --name NAME --role staff|nurse|manager|admin --sites S1[,S2] [--units U1,U2] | list | revoke ID",
  run({ config, args, out }) {
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    try {
      const store = new TokenStore(db);
      const security = new SecurityLog(db, silentLogger());
      store.onAudit = (e) => security.record(e);
      const sub = args.find((a) => ["create", "list", "revoke"].includes(a));
      if (sub === "list") {
        for (const t of store.list())
          out(
            [
              t.id,
              t.name,
              t.role,
              t.sites.join(","),
              t.units?.join(",") ?? "*",
              t.revoked ? "REVOKED" : "active",
            ].join("\t"),
          );
        return;
      }
      if (sub === "revoke") {
        const id = args[args.indexOf("revoke") + 1] ?? "";
        if (!store.revoke(id, "cli")) throw new Error(`no active token "${id}"`);
        out(`revoked ${id}`);
        return;
      }
      if (sub !== "create") throw new Error(`usage: ata ${tokens.usage}`);
      const { name, role, sites, units } = personFlags(args, config);
      const { identity, token } = store.create({
        name,
        role,
        sites,
        units: units ?? null,
        actor: "cli",
      });
      out(
        `created ${identity.id} for ${identity.name} (${identity.role}) on ${sites.join(",")}${units ? ` units ${units.join(",")}` : ""}`,
      );
      out(`token: ${token}\n(shown once; the gateway keeps only a hash)`);
    } finally {
      db.close();
    }
  },
};

/** The console's address for the QR code when neither --url nor enrolment.publicUrl says it. */
function defaultBaseUrl(config: CliContext["config"]): string {
  const host = ["0.0.0.0", "::", ""].includes(config.http.host) ? hostname() : config.http.host;
  return `${config.http.tls ? "https" : "http"}://${host}:${config.http.port}`;
}

const enrol: CliCommand = {
  name: "enrol",
  usage:
    "enrol --name NAME --role staff|nurse|manager|admin --sites S1[,S2] [--units U1,U2] [--person ID] [--url BASE]",
  async run({ config, args, out }) {
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    try {
      const { name, role, sites, units } = personFlags(args, config);
      const tokenStore = new TokenStore(db);
      const store = new EnrolmentStore(db, tokenStore, { ttlMs: config.enrolment.codeTtlMinutes * 60_000 });
      const person = flag(args, "person");
      if (person && !tokenStore.records().some((t) => t.id === person))
        throw new Error(`no person "${person}"; see ata tokens list`);
      const e = store.create({
        name,
        role,
        sites,
        units: units ?? null,
        personId: person,
        createdBy: "cli",
      });
      const url = enrolmentUrl(
        flag(args, "url") ?? config.enrolment.publicUrl ?? defaultBaseUrl(config),
        e.code,
      );
      out(
        `enrolment for ${e.name} (${e.role}) on ${sites.join(",")}${units ? ` units ${units.join(",")}` : ""}`,
      );
      out(`person: ${e.personId}`);
      out(`code: ${e.code}`);
      out(`url: ${url}`);
      out(`valid until ${e.expiresAt}, once (scan the code below with the phone's camera, or type the code)`);
      // Loaded here: every other ata command starts faster without it.
      const { default: QRCode } = await import("qrcode");
      out(await QRCode.toString(url, { type: "terminal", small: true, errorCorrectionLevel: "M" }));
    } finally {
      db.close();
    }
  },
};

/** Restoring is stopping the gateway and putting the files back: docs/operations.md. */
const backup: CliCommand = {
  name: "backup",
  usage: "backup DIR                               (an online, consistent copy of the data directory)",
  async run({ config, args, out }) {
    const target = args[args.indexOf("backup") + 1];
    if (!target || target.startsWith("--")) throw new Error(`usage: ata ${backup.usage}`);
    const files = await backupDataDir({ dataDir: config.dataDir, targetDir: target });
    for (const f of files)
      out(
        [
          f.path,
          `${f.bytes} B`,
          f.kind === "sqlite" ? "SQLite online backup" : "copied",
          f.schemaVersion === null ? "" : `schema version ${f.schemaVersion}`,
        ]
          .filter(Boolean)
          .join("\t"),
      );
    out(`backed up ${files.length} files of ${config.dataDir} to ${target}`);
  },
};

const securityLog: CliCommand = {
  name: "security-log",
  usage: "security-log [--since 24h|ISO-TIME] [--kind K1,K2] [--limit N]   (newest first)",
  run({ config, args, out }) {
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    try {
      const since = flag(args, "since");
      const hours = since?.match(/^(\d+)h$/);
      const from = hours ? Date.now() - Number(hours[1]) * 3_600_000 : since ? Date.parse(since) : undefined;
      if (from !== undefined && Number.isNaN(from)) throw new Error("--since takes 24h or an ISO time");
      const kinds = flag(args, "kind")?.split(",");
      const unknown = kinds?.filter((k) => !(SECURITY_EVENT_KINDS as readonly string[]).includes(k));
      if (unknown?.length)
        throw new Error(`unknown kind ${unknown.join(", ")}; kinds: ${SECURITY_EVENT_KINDS.join(", ")}`);
      const rows = new SecurityLog(db, silentLogger()).list({
        ...(from !== undefined ? { since: from } : {}),
        ...(kinds ? { kinds } : {}),
        limit: Number(flag(args, "limit") ?? 100),
      });
      for (const r of rows)
        out(
          [
            r.at,
            r.kind,
            r.count > 1 ? `x${r.count} until ${r.lastAt}` : "",
            r.actor ? `by ${r.actor}` : "",
            r.address ? `from ${r.address}` : "",
            r.subject ? `on ${r.subject}` : "",
            Object.keys(r.detail).length ? JSON.stringify(r.detail) : "",
          ]
            .filter(Boolean)
            .join("\t"),
        );
    } finally {
      db.close();
    }
  },
};

export const extraCommands: CliCommand[] = [
  tokens,
  enrol,
  simulateCommand,
  backup,
  securityLog,
  observeCommand,
  baselineCommand,
  clusterCommand,
];
