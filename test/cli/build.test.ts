/**
 * The production build: `tsc -p tsconfig.build.json` into a package laid out as the Docker image
 * is (dist/, bin/, config/, web/, package.json; no src/, no devices/ sources), and the compiled
 * gateway and CLI run from it with plain node: no TypeScript transform at run time.
 *
 * The package sits in the repository's tmp/ (git-ignored), not the system's: node finds
 * node_modules and the "type": "module" of a package.json by walking up from the files, so the
 * build must live below the repository, as dist/ does.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb } from "../../src/store/db.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

/** The node flags `npm start` uses, as the production start and the image do. */
const NODE_FLAGS = ["--max-semi-space-size=64"];

describe("the production build", () => {
  mkdirSync(join(ROOT, "tmp"), { recursive: true });
  const pkg = mkdtempSync(join(ROOT, "tmp", "build-"));
  const started: ChildProcess[] = [];

  beforeAll(async () => {
    await run(process.execPath, [
      join(ROOT, "node_modules/typescript/bin/tsc"),
      "-p",
      join(ROOT, "tsconfig.build.json"),
      "--outDir",
      join(pkg, "dist"),
    ]);
    mkdirSync(join(pkg, "bin"));
    copyFileSync(join(ROOT, "bin/ata.js"), join(pkg, "bin/ata.js"));
    copyFileSync(join(ROOT, "package.json"), join(pkg, "package.json"));
    symlinkSync(join(ROOT, "web"), join(pkg, "web"));
    symlinkSync(join(ROOT, "config"), join(pkg, "config"));
  }, 120_000);
  afterAll(() => {
    for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(pkg, { recursive: true, force: true });
  });

  /** The compiled gateway on the production template, on loopback and free ports. */
  function startCompiled(dataDir: string): {
    child: ChildProcess;
    output: string[];
    exited: Promise<number | null>;
  } {
    const child = spawn(
      process.execPath,
      [...NODE_FLAGS, join(pkg, "dist/src/main.js"), "--config", "config/production.yaml"],
      {
        cwd: pkg,
        env: {
          ...process.env,
          ATA_READY_LINE: "1",
          ATA_LOG_LEVEL: "warn",
          ATA_LOG_FORMAT: "json",
          ATA_DATA_DIR: dataDir,
          ATA_HTTP_HOST: "127.0.0.1",
          ATA_HTTP_PORT: "0",
          ATA_MQTT_PORT: "0",
          ATA_MQTT_WS_PORT: "0",
          ATA__mqtt__tcp__host: "127.0.0.1",
          ATA__mqtt__ws__host: "127.0.0.1",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    started.push(child);
    const output: string[] = [];
    child.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
    createInterface({ input: child.stdout! }).on("line", (line) => output.push(line));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, output, exited };
  }

  it("emits the worker threads' plain JavaScript beside their owners, and nothing from tests", () => {
    for (const f of [
      "src/store/sqlite-writer-worker.js",
      "src/store/sqlite-fsync-worker.js",
      "src/store/checkpointer-worker.js",
      "devices/index.js",
    ])
      expect(existsSync(join(pkg, "dist", f)), f).toBe(true);
    for (const d of ["test", "bench", "scripts"]) expect(existsSync(join(pkg, "dist", d)), d).toBe(false);
  });

  it("the compiled gateway starts with plain node on the production template, serves /healthz and the console, and exits 0 on SIGTERM", async () => {
    const { child, output, exited } = startCompiled(join(pkg, "data"));
    const ready = await new Promise<{ http: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 20 s: ${output.join("\n")}`)), 20_000);
      child.once("exit", (code) => reject(new Error(`exited with ${code}: ${output.join("\n")}`)));
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (!line.includes('"ready":true')) return;
        clearTimeout(timer);
        resolve(JSON.parse(line));
      });
    });
    // Only node and the compiled files: no loader was imported to run TypeScript.
    expect(child.spawnargs.join(" ")).not.toMatch(/tsx|\.ts\b/);

    const health = await fetch(`http://127.0.0.1:${ready.http}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    // The console comes from the package's web/ (found beside package.json), not dist/web.
    const page = await fetch(`http://127.0.0.1:${ready.http}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<!doctype html>/i);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("the compiled ata command runs from dist when there is no source, and backs up the data directory", async () => {
    const ata = (...args: string[]) =>
      run(process.execPath, [join(pkg, "bin/ata.js"), "--config", "config/production.yaml", ...args], {
        cwd: pkg,
        env: { ...process.env, ATA_DATA_DIR: join(pkg, "data") },
      });
    const profiles = await ata("profiles");
    expect(profiles.stdout).toMatch(/^vayyar\/care\t/m);
    const backup = await ata("backup", join(pkg, "backup"));
    expect(backup.stdout).toMatch(/ata\.db\t\d+ B\tSQLite online backup/);
  });

  it("a compiled gateway refuses a database from a newer version: exit 1, naming both versions", async () => {
    const dataDir = join(pkg, "newer");
    const db = openDb({ path: join(dataDir, "ata.db") });
    db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1000, 'from the future', 0)",
    ).run();
    db.close();

    const { output, exited } = startCompiled(dataDir);
    expect(await exited).toBe(1);
    expect(output.join("\n")).toMatch(/schema version 1000 .*knows versions up to \d+/);
  });
});
