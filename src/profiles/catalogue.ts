/**
 * The profiles a running gateway knows: the built-in catalogue (devices/index.ts) plus the external
 * directory's, in one map that ingest, presence, rules and reports look profiles up in by id, and one
 * id set the registry checks new devices against. Both are updated in place on reload, so every
 * component sees a reloaded profile at its next lookup without being rewired.
 *
 * Reload (SIGHUP): a changed file replaces its previous version for new publishes; a removed file's
 * profile is dropped (devices registered with it keep their registration, and their publishes are
 * dead-lettered `profile_missing` by ingest); a file that now fails the checks is refused and, when
 * it ran before under the same id, its previous version keeps running, as an invalid rule file keeps
 * the running rules.
 */
import { basename } from "node:path";
import type { Logger } from "../log.js";
import type { DeviceProfile } from "../model/profile.js";
import { formatRefusals, type LoadedProfile, loadProfileDir, type ProfileDirReport } from "./loader.js";

export interface ProfileStatus {
  dir: string | null;
  /** External profiles running now: id, file, version, and whether it is a kept previous version. */
  loaded: { id: string; file: string; version: string; kept: boolean }[];
  refused: { file: string; id: string | null; problems: string[] }[];
  error: string | null;
  loadedAt: string | null;
}

export class ProfileCatalogue {
  /** Id -> profile, built-in and external: shared by reference with every component. */
  readonly map: Map<string, DeviceProfile>;
  /** The ids in `map`, for the registry's check of new devices. */
  readonly ids: Set<string>;
  private readonly builtIn: ReadonlySet<string>;
  private external = new Map<string, LoadedProfile & { kept: boolean }>();
  private last: ProfileDirReport | null = null;

  constructor(
    private readonly opts: { builtIn: readonly DeviceProfile[]; dir: string | undefined; log: Logger },
  ) {
    this.map = new Map(opts.builtIn.map((p) => [p.id, p]));
    this.ids = new Set(this.map.keys());
    this.builtIn = new Set(this.ids);
  }

  /** Load (or reload) the directory and apply it. Without a configured directory, nothing to do. */
  async load(): Promise<ProfileStatus> {
    const { dir, log } = this.opts;
    if (!dir) return this.status();
    const report = await loadProfileDir(dir, this.builtIn);
    this.last = report;
    if (report.error) {
      // An unreadable directory is not an instruction to drop every profile that was running.
      log.error(
        { dir: report.dir, err: report.error },
        "external profile directory not readable; profiles unchanged",
      );
      return this.status();
    }
    const next = new Map<string, LoadedProfile & { kept: boolean }>();
    for (const l of report.loaded) next.set(l.profile.id, { ...l, kept: false });
    for (const r of report.refused) {
      log.error(
        { dir: report.dir, file: r.file, profile: r.id, problems: r.problems },
        `external profile ${basename(r.file)} refused: ${r.problems.join("; ")}`,
      );
      const before = r.id === null ? undefined : this.external.get(r.id);
      if (before && before.file === r.file && !next.has(before.profile.id)) {
        next.set(before.profile.id, { ...before, kept: true });
        log.error(
          { profile: before.profile.id, file: before.file, version: before.version },
          "the previous version of this profile keeps running",
        );
      }
    }
    for (const [id, old] of this.external) {
      if (next.has(id)) continue;
      this.map.delete(id);
      this.ids.delete(id);
      log.warn(
        { profile: id, file: old.file },
        "external profile removed: devices registered with it keep their registration; their publishes are dead-lettered (profile_missing)",
      );
    }
    for (const [id, l] of next) {
      const old = this.external.get(id);
      this.map.set(id, l.profile);
      this.ids.add(id);
      if (!old || old.version !== l.version || old.file !== l.file)
        log.info(
          { profile: id, file: l.file, version: l.version },
          old ? "external profile replaced" : "external profile loaded",
        );
    }
    this.external = next;
    return this.status();
  }

  /** For /readyz and the admin endpoint: what runs, what was refused and why. */
  status(): ProfileStatus {
    const r = this.last;
    return {
      dir: r?.dir ?? this.opts.dir ?? null,
      loaded: [...this.external.values()].map((l) => ({
        id: l.profile.id,
        file: l.file,
        version: l.version,
        kept: l.kept,
      })),
      refused: r?.refused.map((x) => ({ file: x.file, id: x.id, problems: x.problems })) ?? [],
      error: r?.error ?? null,
      loadedAt: r?.at ?? null,
    };
  }

  /** Every refusal as one line each (for a SIGHUP's log line and the CLI). */
  refusals(): string[] {
    return this.last ? formatRefusals(this.last) : [];
  }
}
