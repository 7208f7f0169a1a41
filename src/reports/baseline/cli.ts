/**
 * `ata baseline`: record a site's baseline from a YAML file, and show its versions. `show` prints
 * the versions newest first, then `---` and the newest as YAML that `set` accepts again.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import type { CliCommand } from "../../cli/commands.js";
import { openDb } from "../../store/db.js";
import {
  type Baseline,
  BaselineError,
  type BaselineInput,
  checkBaselineScope,
  parseBaseline,
} from "./schema.js";
import { BaselineStore, residentLookup } from "./store.js";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--"))
    throw new BaselineError([{ path: `--${name}`, message: "needs a value" }], "ata baseline");
  return v;
}

/** What was recorded, without what the store assigned: the form `set` reads. */
function recorded(b: Baseline): BaselineInput {
  const { id: _id, version: _v, fingerprint: _f, recordedAt: _at, savedBy: _by, ...input } = b;
  return input;
}

export const baselineCommand: CliCommand = {
  name: "baseline",
  usage:
    "baseline show --site S [--unit U] | set --site S [--unit U] --file baseline.yaml   (docs/time-model.md)",
  run({ config, args, out }) {
    const sub = args[args.indexOf("baseline") + 1];
    const site = flag(args, "site");
    const unit = flag(args, "unit");
    if ((sub !== "show" && sub !== "set") || site === undefined)
      throw new BaselineError([{ path: "", message: `usage: ata ${baselineCommand.usage}` }], "ata baseline");
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    try {
      const store = new BaselineStore(db);
      if (sub === "show") {
        const versions = store.list(site, unit);
        if (versions.length === 0) {
          out(`no baseline recorded for ${site}${unit ? `/${unit}` : ""}`);
          return;
        }
        for (const b of versions)
          out(
            [
              `#${b.id}`,
              `${b.site}/${b.unit ?? "*"} v${b.version}`,
              `${b.period.from}..${b.period.to}`,
              `recorded by ${b.recordedBy}`,
              `saved ${b.recordedAt} by ${b.savedBy}`,
              `sha256 ${b.fingerprint.slice(0, 12)}`,
            ].join("\t"),
          );
        out("---");
        out(toYaml(recorded(versions[0]!)).trimEnd());
        return;
      }
      const file = flag(args, "file");
      if (file === undefined)
        throw new BaselineError([{ path: "--file", message: "is required" }], "ata baseline set");
      const raw = parseYaml(readFileSync(file, "utf8")) as unknown;
      if (raw === null || typeof raw !== "object" || Array.isArray(raw))
        throw new BaselineError([{ path: "", message: "the file must hold a YAML mapping" }], file);
      const doc = raw as Record<string, unknown>;
      const problems = [];
      if (doc.site !== undefined && doc.site !== site)
        problems.push({
          path: "site",
          message: `the file says "${String(doc.site)}", --site says "${site}"`,
        });
      if (unit !== undefined && doc.unit !== undefined && doc.unit !== unit)
        problems.push({
          path: "unit",
          message: `the file says "${String(doc.unit)}", --unit says "${unit}"`,
        });
      if (problems.length) throw new BaselineError(problems, file);
      const input = parseBaseline({ ...doc, site, ...(unit !== undefined ? { unit } : {}) }, file);
      const scope = checkBaselineScope(input, config.sites, residentLookup(db));
      if (scope.length) throw new BaselineError(scope, file);
      const b = store.save(input, "cli");
      out(
        `saved ${b.site}/${b.unit ?? "*"} baseline v${b.version} (#${b.id}, sha256 ${b.fingerprint.slice(0, 12)})`,
      );
    } finally {
      db.close();
    }
  },
};
