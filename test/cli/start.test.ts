import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { isAlive } from "../helpers/process.js";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The processes whose parent is `pid` (Linux /proc). */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const line of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/))
    if (line) out.push(Number(line));
  return out;
}

function gatewayBelow(pid: number): number | null {
  for (const child of children(pid)) {
    const argv = readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0");
    if (/(^|\/)node$/.test(argv[0]!) && argv.some((a) => a.endsWith("src/main.ts"))) return child;
    const deeper = gatewayBelow(child);
    if (deeper !== null) return deeper;
  }
  return null;
}

describe("npm start", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-start-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("SIGTERM to npm stops the gateway too: no orphan keeps the ports and the database", async () => {
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ATA_READY_LINE: "1",
        ATA_LOG_LEVEL: "warn",
        ATA_DATA_DIR: join(dir, "data"),
        ATA_HTTP_HOST: "127.0.0.1",
        ATA_HTTP_PORT: "0",
        ATA_MQTT_PORT: "0",
        ATA_MQTT_WS_PORT: "0",
        ATA__demo__enabled: "false",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => npm.once("exit", (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("npm start did not become ready in 30 s")), 30_000);
      createInterface({ input: npm.stdout! }).on("line", (line) => {
        if (!line.includes('"ready":true')) return;
        clearTimeout(t);
        resolve();
      });
    });
    // The node process running the gateway, wherever it sits below npm (npm runs the script
    // through a shell; `exec` in the script makes the gateway that shell's process).
    const gateway = gatewayBelow(npm.pid!);
    expect(gateway).not.toBeNull();

    npm.kill("SIGTERM");
    await exited;
    const deadline = Date.now() + 10_000;
    while (isAlive(gateway!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const orphan = isAlive(gateway!);
    if (orphan) process.kill(gateway!, "SIGKILL");
    expect(orphan).toBe(false);
  }, 45_000);
});
