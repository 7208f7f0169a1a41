/**
 * The Linux thread id of the calling thread (main or a worker), from /proc/thread-self; null
 * elsewhere. With it, per-thread CPU time can be read from /proc/<pid>/task/<tid>/stat, so a
 * benchmark shows work moved between threads as such.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import type { Logger } from "../log.js";

export function currentThreadId(): number | null {
  try {
    const m = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Sets the calling thread's nice value: Linux keeps one per thread, so this changes no other
 * thread of the process. Returns null, or the reason it was refused (EACCES without CAP_SYS_NICE
 * or an RLIMIT_NICE that allows it).
 */
export function setThreadNice(nice: number): string | null {
  try {
    setPriority(nice);
    return null;
  } catch (err) {
    return refusalCode(err);
  }
}

/** What became of a fall-path thread's priority (config `priority.fallPathNice`), said once at start. */
export function reportFallPathNice(log: Logger, thread: string, nice: number, refusal: string | null): void {
  if (refusal === null) log.info({ thread, nice }, "fall-path thread runs at raised priority");
  else
    log.warn(
      { thread, nice, refusal },
      "the fall path's priority could not be raised; on a busy host a fall may wait for a CPU behind other work (allow it with CAP_SYS_NICE, systemd LimitNICE= or docker --ulimit nice=, docs/operations.md)",
    );
}

/** os.setPriority throws a SystemError whose code is ERR_SYSTEM_ERROR; the errno's name is in `info`. */
function refusalCode(err: unknown): string {
  const e = err as { info?: { code?: string }; code?: string };
  return e.info?.code ?? e.code ?? String(err);
}
