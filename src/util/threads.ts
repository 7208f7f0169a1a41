/**
 * The Linux thread id of the calling thread (main or a worker), from /proc/thread-self; null
 * elsewhere. With it, per-thread CPU time can be read from /proc/<pid>/task/<tid>/stat, so a
 * benchmark shows work moved between threads as such.
 */
import { readlinkSync } from "node:fs";

export function currentThreadId(): number | null {
  try {
    const m = /\/task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
