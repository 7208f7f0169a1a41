/**
 * The threads a fall's way to staff crosses (the main thread, the event-log writer) run at the
 * raised priority `priority.fallPathNice` asks for (default nice -10), each set on the thread itself;
 * a gateway embedded in another program leaves its host's thread alone; where the system refuses,
 * the gateway says so and runs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import { PushSender } from "../../src/alerts/channels/push-sender.js";
import { ConfigError, validateConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { currentThreadId, setThreadNice } from "../../src/util/threads.js";
import { startGateway } from "../helpers/gateway.js";
import { spawnGateway, writeConfig } from "../helpers/process.js";

/** A thread's nice value, from /proc/<pid>/task/<tid>/stat (field 19). */
function niceOf(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

/** Whether this process may raise a thread's priority at all (root, CAP_SYS_NICE or RLIMIT_NICE), tried on a thread of its own. */
function mayRaise(): Promise<boolean> {
  const w = new Worker(
    "const { parentPort } = require('node:worker_threads'); const os = require('node:os'); try { os.setPriority(-1); parentPort.postMessage(true); } catch { parentPort.postMessage(false); }",
    { eval: true },
  );
  return new Promise((resolve) =>
    w.once("message", (ok: boolean) => void w.terminate().then(() => resolve(ok))),
  );
}

async function until<T>(what: string, get: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The gateway's named threads' Linux ids, from its /metrics. */
async function threadIds(http: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^ata_thread_info\{([^}]*)\} 1$/gm)) {
    const thread = /thread="([^"]+)"/.exec(m[1]!)?.[1];
    const tid = /tid="(\d+)"/.exec(m[1]!)?.[1];
    if (thread && tid) out.set(thread, Number(tid));
  }
  return out;
}

const siteConfig = (dir: string, extra: Record<string, unknown> = {}) =>
  writeConfig(dir, {
    dataDir: join(dir, "data"),
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
    http: { host: "127.0.0.1", port: 0 },
    sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
    ...extra,
  });

describe("the fall path's priority", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), "ata-priority-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("an embedded gateway raises its event-log writer, and leaves its host's thread alone", async () => {
    const permitted = await mayRaise();
    const host = currentThreadId()!;
    const hostNice = niceOf(process.pid, host);
    const gw = await startGateway();
    try {
      const metrics = gw.gateway.metrics;
      const writerNice = await until("the writer's nice", async () => {
        const v = (await metrics.threadNice.get()).values.find((x) => x.labels.thread === "event-log-writer");
        return v?.value;
      });
      const tid = Number(
        (await metrics.threads.get()).values.find((x) => x.labels.thread === "event-log-writer")!.labels.tid,
      );
      expect(niceOf(process.pid, tid)).toBe(writerNice);
      expect(writerNice).toBe(permitted ? -10 : hostNice);
      expect(niceOf(process.pid, host)).toBe(hostNice);
      expect((await metrics.threadNice.get()).values.some((x) => x.labels.thread === "main")).toBe(false);
    } finally {
      await gw.stop();
    }
  });

  it("a fallPathNice outside -20..0 or not whole is a configuration error naming its path", () => {
    for (const fallPathNice of [5, -21, -2.5, "high"]) {
      let err: unknown;
      try {
        validateConfig(
          {
            sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
            priority: { fallPathNice },
          },
          "test",
          new Set(),
        );
      } catch (e) {
        err = e;
      }
      expect(err, String(fallPathNice)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.path)).toContain("priority.fallPathNice");
    }
  });

  it("priority.fallPathNice 0 leaves every thread as it is", async () => {
    const gw = await startGateway({ overrides: { priority: { fallPathNice: 0 } } });
    try {
      const tid = await until("the writer's thread id", async () => {
        const v = (await gw.gateway.metrics.threads.get()).values.find(
          (x) => x.labels.thread === "event-log-writer",
        );
        return v ? Number(v.labels.tid) : undefined;
      });
      expect(niceOf(process.pid, tid)).toBe(niceOf(process.pid, currentThreadId()!));
      expect((await gw.gateway.metrics.threadNice.get()).values).toEqual([]);
    } finally {
      await gw.stop();
    }
  });

  it("the gateway process runs its main thread and its writer at nice -10, and says so", async () => {
    const permitted = await mayRaise();
    const dir = tempDir();
    const gw = await spawnGateway(siteConfig(dir), { ATA_LOG_LEVEL: "info" });
    try {
      const pid = gw.child.pid!;
      const ids = await until("the writer's thread id", async () => {
        const m = await threadIds(gw.http);
        return m.has("event-log-writer") ? m : undefined;
      });
      // The writer sets its own priority once its database is open, and says so either way.
      const reported = (thread: string) => gw.stdout.find((l) => l.includes(`"thread":"${thread}"`));
      await until("the writer's report", async () => reported("event-log-writer"));
      const raised = (thread: string) =>
        reported(thread)?.includes("fall-path thread runs at raised priority");
      expect(raised("main")).toBe(permitted);
      expect(raised("event-log-writer")).toBe(permitted);
      const want = permitted ? -10 : 0;
      expect(niceOf(pid, pid)).toBe(want);
      expect(ids.get("main")).toBe(pid);
      expect(niceOf(pid, ids.get("event-log-writer")!)).toBe(want);
      // Only those two: the sink keeps its own background priority, the rest stay as they were.
      if (ids.has("sink")) expect(niceOf(pid, ids.get("sink")!)).toBe(10);
      if (ids.has("checkpointer")) expect(niceOf(pid, ids.get("checkpointer")!)).toBe(0);
    } finally {
      await gw.stop();
    }
  });

  it("a push sender thread started by a raised thread goes back to the priority its sender was built at", async () => {
    // A thread inherits its starter's nice value; encrypting pushes is not on a fall's way to the screen.
    if (!(await mayRaise())) return;
    const host = currentThreadId()!;
    const base = niceOf(process.pid, host);
    let tid = 0;
    const sender = new PushSender({ log: silentLogger(), onThread: (t) => (tid = t) });
    expect(setThreadNice(base - 5)).toBeNull();
    try {
      await sender.start();
      expect(tid).toBeGreaterThan(0);
      expect(niceOf(process.pid, tid)).toBe(base);
    } finally {
      expect(setThreadNice(base)).toBeNull();
      await sender.stop();
    }
    expect(niceOf(process.pid, host)).toBe(base);
  });

  it.runIf(process.getuid?.() === 0 && existsSync("/usr/bin/setpriv"))(
    "refused (no CAP_SYS_NICE, no RLIMIT_NICE): the gateway warns once per thread, with the reason, and runs at normal priority",
    async () => {
      const dir = tempDir();
      const gw = await spawnGateway(siteConfig(dir), { ATA_LOG_LEVEL: "warn" }, 20_000, [
        "setpriv",
        "--inh-caps=-sys_nice",
        "--bounding-set=-sys_nice",
        "--",
      ]);
      try {
        const pid = gw.child.pid!;
        const ids = await until("the writer's thread id", async () => {
          const m = await threadIds(gw.http);
          return m.has("event-log-writer") ? m : undefined;
        });
        const warned = (thread: string) =>
          gw.stdout.filter(
            (l) =>
              l.includes(`"thread":"${thread}"`) &&
              l.includes('"refusal":"EACCES"') &&
              l.includes("could not be raised"),
          ).length;
        await until("the writer's warning", async () => (warned("event-log-writer") ? true : undefined));
        expect(warned("main")).toBe(1);
        expect(warned("event-log-writer")).toBe(1);
        expect(niceOf(pid, pid)).toBe(0);
        expect(niceOf(pid, ids.get("event-log-writer")!)).toBe(0);
        // It runs and serves, and its metrics say the priority it has.
        const text = await (await fetch(`http://127.0.0.1:${gw.http}/metrics`)).text();
        expect(text).toMatch(/^ata_thread_nice\{thread="main"\} 0$/m);
      } finally {
        await gw.stop();
      }
    },
  );
});
