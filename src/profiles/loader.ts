/**
 * External device profiles: modules in a directory the operator configures (`profiles.dir`), loaded
 * at start and again on SIGHUP, so a vendor's device needs no rebuild of the gateway.
 *
 * Each `.js` / `.mjs` file (and `.mts` / `.ts` when the gateway runs under tsx, `npm start`) is one
 * profile: its default export is a `DeviceProfile`, or a function that receives the ProfileKit
 * (src/profiles/kit.ts) and returns one. Every profile must pass the catalogue checks the built-in
 * profiles pass (devices/conformance.ts `checkProfile`: fixtures decode to their expected events, a
 * rejection fixture, every emitted type shown, garbage answered with a DecodeError) and must not
 * reuse the id of a built-in profile or of another file. A profile that fails is refused with every
 * reason; the others load.
 *
 * The compiled build (`npm run start:prod`, plain node 20) loads `.js` and `.mjs` only: a `.ts` file
 * there is refused with a reason saying to compile it. The `ata` command registers tsx's ES module
 * hook only (its CommonJS hook triples the command's start-up time), so there a `.ts` file outside a
 * `"type": "module"` package is read as CommonJS and fails: `.mts` works everywhere tsx runs. Node caches modules by URL, so each file is
 * imported with its content hash in the URL: an unchanged file is the same module, a changed one is
 * evaluated afresh (a file read as CommonJS is cached by name instead, so its entry is dropped first). Old versions stay in memory until the process restarts (Node cannot unload an ES
 * module); that is a few kilobytes per edit of a profile.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { checkProfile } from "../../devices/conformance.js";
import type { DeviceProfile } from "../model/profile.js";
import { PROFILE_KIT } from "./kit.js";

export const PROFILE_EXTENSIONS = [".js", ".mjs", ".ts", ".mts"] as const;
const TYPESCRIPT = new Set([".ts", ".mts"]);
const requireCache = createRequire(import.meta.url).cache;

export interface LoadedProfile {
  profile: DeviceProfile;
  /** Absolute path of the module. */
  file: string;
  /** sha256 of the file's bytes (first 16 hex digits): which version is running. */
  version: string;
}

export interface RefusedProfile {
  file: string;
  /** The id the module declares, when it got that far. */
  id: string | null;
  problems: string[];
}

export interface ProfileDirReport {
  dir: string;
  loaded: LoadedProfile[];
  refused: RefusedProfile[];
  /** A problem with the directory itself (missing, unreadable); nothing was loaded then. */
  error: string | null;
  at: string;
}

/** Enough of the DeviceProfile shape for checkProfile to run without tripping over a missing field. */
const ProfileShape = z.looseObject({
  id: z.string(),
  vendor: z.string(),
  model: z.string(),
  kind: z.string(),
  description: z.string(),
  topics: z.array(z.string()),
  supervision: z.looseObject({ heartbeatSec: z.number(), missedHeartbeats: z.number() }),
  scaip: z.looseObject({ dty: z.string(), stc: z.record(z.string(), z.string()).optional() }),
  emits: z.array(z.string()),
  decode: z.custom<DeviceProfile["decode"]>((v) => typeof v === "function", "must be a function"),
  canonicalChannels: z.array(z.string()).optional(),
  fixtures: z.array(
    z.looseObject({
      name: z.string(),
      topic: z.string(),
      expected: z.array(z.unknown()),
      payloadHex: z.string().optional(),
      receivedAt: z.string().optional(),
      rejects: z.string().optional(),
    }),
  ),
});

/** One line: a transform error's message spans several. */
function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** The profile files in a directory, sorted by name (type declarations and hidden files skipped). */
export function profileFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => !name.startsWith(".") && !name.endsWith(".d.ts") && !name.endsWith(".d.mts"))
    .filter((name) => (PROFILE_EXTENSIONS as readonly string[]).includes(extname(name)))
    .map((name) => join(dir, name))
    .filter((file) => statSync(file).isFile())
    .sort();
}

/** Import one module and take its profile out, or say why not. Never throws. */
async function importProfile(
  file: string,
): Promise<{ profile: DeviceProfile; version: string } | { id: string | null; problems: string[] }> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    return { id: null, problems: [`cannot read the file: ${errorText(err)}`] };
  }
  const version = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  // A file Node reads as CommonJS (a .ts outside a "type": "module" package, under tsx) is cached
  // by file name whatever the URL says: forget it, or a reload would get the old version back.
  delete requireCache[file];
  let mod: { default?: unknown };
  try {
    mod = (await import(`${pathToFileURL(file).href}?v=${version}`)) as { default?: unknown };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (TYPESCRIPT.has(extname(file)) && code === "ERR_UNKNOWN_FILE_EXTENSION")
      return {
        id: null,
        problems: [
          "TypeScript profiles load only when the gateway runs under tsx (npm start); for the compiled build (npm run start:prod) compile it to .js or .mjs",
        ],
      };
    const hint =
      extname(file) === ".ts" && err instanceof SyntaxError
        ? ' (a .ts file outside a "type": "module" package is read as CommonJS where only the ESM hook is registered, as in the ata command: name it .mts)'
        : "";
    return { id: null, problems: [`the module does not load: ${errorText(err)}${hint}`] };
  }
  let value = mod.default;
  if (value === undefined)
    return {
      id: null,
      problems: ["no default export: export the profile, or a function of the profile kit returning it"],
    };
  if (typeof value === "function") {
    try {
      value = (value as (kit: typeof PROFILE_KIT) => unknown)(PROFILE_KIT);
    } catch (err) {
      return {
        id: null,
        problems: [`the default export threw when called with the profile kit: ${errorText(err)}`],
      };
    }
  }
  const shape = ProfileShape.safeParse(value);
  const id = typeof (value as { id?: unknown } | null)?.id === "string" ? (value as { id: string }).id : null;
  if (!shape.success)
    return {
      id,
      problems: shape.error.issues.map(
        (i) => `${i.path.length ? i.path.join(".") : "default export"}: ${i.message}`,
      ),
    };
  const profile = value as DeviceProfile;
  let problems: string[];
  try {
    problems = checkProfile(profile);
  } catch (err) {
    problems = [`the catalogue checks could not run on it: ${errorText(err)}`];
  }
  return problems.length ? { id, problems } : { profile, version };
}

/**
 * Load and check every profile in `dir`. `builtIn` are the ids compiled into the gateway, which an
 * external profile may not take. Refusals carry every reason; a missing directory is `error`.
 */
export async function loadProfileDir(dir: string, builtIn: ReadonlySet<string>): Promise<ProfileDirReport> {
  const at = new Date().toISOString();
  const abs = resolve(dir);
  let files: string[];
  try {
    files = profileFiles(abs);
  } catch (err) {
    return { dir: abs, loaded: [], refused: [], error: `cannot read the directory: ${errorText(err)}`, at };
  }
  const outcomes = [];
  for (const file of files) outcomes.push({ file, outcome: await importProfile(file) });

  // Ids taken by more than one file: which should win is not ours to guess, so none does.
  const files_by_id = new Map<string, string[]>();
  for (const { file, outcome } of outcomes) {
    const id = "profile" in outcome ? outcome.profile.id : outcome.id;
    if (id !== null) files_by_id.set(id, [...(files_by_id.get(id) ?? []), basename(file)]);
  }
  const loaded: LoadedProfile[] = [];
  const refused: RefusedProfile[] = [];
  for (const { file, outcome } of outcomes) {
    const id = "profile" in outcome ? outcome.profile.id : outcome.id;
    const problems = "problems" in outcome ? [...outcome.problems] : [];
    if (id !== null && builtIn.has(id))
      problems.push(`id "${id}" is a built-in profile's; an external profile needs its own id`);
    const others = id === null ? [] : (files_by_id.get(id) ?? []).filter((f) => f !== basename(file));
    if (others.length) problems.push(`id "${id}" is also declared by ${others.join(", ")}`);
    if (problems.length || !("profile" in outcome)) refused.push({ file, id, problems });
    else loaded.push({ profile: outcome.profile, file, version: outcome.version });
  }
  return { dir: abs, loaded, refused, error: null, at };
}

/** One line per problem, for people and logs: "acme-button.mjs (acme/button): reason". */
export function formatRefusals(report: ProfileDirReport): string[] {
  if (report.error) return [`${report.dir}: ${report.error}`];
  return report.refused.flatMap((r) =>
    r.problems.map((p) => `${basename(r.file)}${r.id ? ` (${r.id})` : ""}: ${p}`),
  );
}
