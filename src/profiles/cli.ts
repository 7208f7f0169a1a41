/**
 * `ata profiles` and `ata profiles check DIR`: list the profiles this gateway would know, and run the
 * catalogue checks on a directory of external profiles the way the gateway will at start, so that a
 * vendor sees every reason a profile would be refused before shipping it.
 */
import { basename } from "node:path";
import { PROFILES } from "../../devices/index.js";
import type { DeviceProfile } from "../model/profile.js";
import { formatRefusals, loadProfileDir, type ProfileDirReport } from "./loader.js";

const BUILT_IN = new Set(PROFILES.map((p) => p.id));

function row(p: DeviceProfile, where: string): string {
  return [p.id, p.kind, p.topics.join(","), p.emits.join(","), where].join("\t");
}

/** Every profile: built-in, then the configured directory's (refusals said on stderr-like lines). */
export function listProfiles(external: ProfileDirReport | null, out: (line: string) => void): void {
  for (const p of PROFILES) out(row(p, "built-in"));
  for (const l of external?.loaded ?? []) out(row(l.profile, l.file));
  if (external) for (const line of formatRefusals(external)) out(`REFUSED ${line}`);
}

/** Check a directory; returns false when anything in it would be refused. */
export async function checkProfileDir(dir: string, out: (line: string) => void): Promise<boolean> {
  const report = await loadProfileDir(dir, BUILT_IN);
  if (report.error) {
    out(`FAIL ${report.dir}: ${report.error}`);
    return false;
  }
  for (const l of report.loaded) out(`ok   ${basename(l.file)} (${l.profile.id})`);
  for (const line of formatRefusals(report)) out(`FAIL ${line}`);
  const total = report.loaded.length + report.refused.length;
  out(`${report.loaded.length} of ${total} profile(s) in ${report.dir} pass the checks`);
  if (total === 0) out("no profile modules (.js, .mjs; .ts under tsx) in the directory");
  return report.refused.length === 0 && total > 0;
}
