/**
 * The profile ids a configuration file may name for its devices: the built-in catalogue plus what
 * the configured `profiles.dir` loads. Read leniently from the raw file (like main.ts finds the rule
 * file of a broken configuration), because the configuration's own cross-check needs these ids
 * before it can be validated. The modules loaded here are the ones the gateway then uses (Node
 * caches them by URL and content hash), so nothing is evaluated twice.
 */
import { PROFILES } from "../../devices/index.js";
import { applyEnv, readConfigFile } from "../config/load.js";
import { ConfigSchema } from "../config/schema.js";
import { loadProfileDir, type ProfileDirReport } from "./loader.js";

export async function configProfileIds(
  path: string,
  env: NodeJS.ProcessEnv,
): Promise<{ ids: Set<string>; report: ProfileDirReport | null }> {
  const ids = new Set(PROFILES.map((p) => p.id));
  let dir: string | undefined;
  try {
    dir = ConfigSchema.shape.profiles.safeParse(applyEnv(readConfigFile(path), env).profiles).data?.dir;
  } catch {
    // An unreadable file: loadConfig reports it; there is no directory to look in.
  }
  if (!dir) return { ids, report: null };
  const report = await loadProfileDir(dir, ids);
  for (const l of report.loaded) ids.add(l.profile.id);
  return { ids, report };
}
