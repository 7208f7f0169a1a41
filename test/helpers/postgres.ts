/**
 * A real PostgreSQL server (Debian's postgresql 15) for one test file: a cluster initialised in its
 * own temporary directory, listening on 127.0.0.1 and a free port only, its Unix socket in that
 * directory too, so an installed system service and parallel runs never meet.
 *
 * PostgreSQL refuses to run as root. When the tests run as root, initdb and postgres run as the
 * `postgres` system user the Debian package creates, through `setpriv`, which execs (unlike
 * `runuser`, which forks and waits): the child's PID is the server's own, so stopping by PID reaches it.
 *
 * Authentication is `trust` for TCP from 127.0.0.1 and for the socket in the private directory:
 * nothing else can reach this server. Durability settings are off (fsync, synchronous_commit):
 * what these tests check is behaviour, not crash safety.
 *
 * Stopping: SIGINT to the postmaster is PostgreSQL's "fast" shutdown (roll back open transactions,
 * disconnect, checkpoint, exit); SIGKILL if it is not gone in time.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.js";

const INSTALL_HINT =
  "PostgreSQL is not installed: run scripts/test.sh as root (it installs the Debian packages the tests need), " +
  "or: sudo apt-get install --no-install-recommends postgresql";

/** The newest /usr/lib/postgresql/<major>/bin with initdb and postgres, 15 preferred by being what Debian 12 ships. */
export function postgresBin(): string {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((d) => /^\d+$/.test(d))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const m of majors) {
    const bin = join(root, m, "bin");
    if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "postgres"))) return bin;
  }
  throw new Error(INSTALL_HINT);
}

export interface PgServer {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url: string;
  port: number;
  database: string;
  /** From initdb to the test database existing. */
  startupMs: number;
  output(): string;
  /** Stop the server by PID and remove the temporary directory. */
  stop(): Promise<void>;
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** As whom to run PostgreSQL's programs: ourselves, or the `postgres` user when we are root. */
function runAs(): { wrap: (cmd: string, args: string[]) => [string, string[]]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { wrap: (cmd, args) => [cmd, args] };
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  } catch {
    throw new Error(`running as root and there is no postgres user: ${INSTALL_HINT}`);
  }
  return {
    uid,
    gid,
    wrap: (cmd, args) => [
      "setpriv",
      ["--reuid", String(uid), "--regid", String(gid), "--clear-groups", "--", cmd, ...args],
    ],
  };
}

export async function startPostgres(opts: { database?: string; timeoutMs?: number } = {}): Promise<PgServer> {
  const bin = postgresBin();
  const database = opts.database ?? "ata_test";
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const started = Date.now();
  const as = runAs();
  const dir = mkdtempSync(join(tmpdir(), "ata-postgres-"));
  const data = join(dir, "data");
  if (as.uid !== undefined && as.gid !== undefined) chownSync(dir, as.uid, as.gid);
  const out: string[] = [];
  const keep = (d: Buffer) => {
    out.push(d.toString());
    if (out.length > 400) out.splice(0, out.length - 400);
  };
  let server: ChildProcess | null = null;

  const stop = async () => {
    if (server?.pid !== undefined && server.exitCode === null && server.signalCode === null) {
      process.kill(server.pid, "SIGINT");
      if (!(await exited(server, 10_000))) {
        process.kill(server.pid, "SIGKILL");
        await exited(server, 5_000);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const [initCmd, initArgs] = as.wrap(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]);
    try {
      execFileSync(initCmd, initArgs, { cwd: dir, stdio: "pipe", env: { ...process.env, LC_ALL: "C" } });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`initdb failed: ${e.stderr?.toString() ?? e.message}`);
    }
    // Only the private socket and 127.0.0.1; nothing for ::1 or replication.
    const hba = join(data, "pg_hba.conf");
    writeFileSync(hba, "local all all trust\nhost all all 127.0.0.1/32 trust\n");
    if (as.uid !== undefined && as.gid !== undefined) chownSync(hba, as.uid, as.gid);

    const port = await freePort();
    const [cmd, args] = as.wrap(join(bin, "postgres"), [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=40",
      "-c",
      "shared_buffers=16MB",
    ]);
    const child = spawn(cmd, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    server = child;
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);

    const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
    let lastError = "";
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}):\n${out.join("")}`);
      if (Date.now() - started > timeoutMs)
        throw new Error(
          `postgres did not accept connections within ${timeoutMs} ms (${lastError}):\n${out.join("")}`,
        );
      const client = new pg.Client({ connectionString: admin });
      try {
        await client.connect();
        await client.query(`CREATE DATABASE ${database}`);
        await client.end();
        break;
      } catch (err) {
        lastError = (err as Error).message;
        await client.end().catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return {
      url: `postgres://postgres@127.0.0.1:${port}/${database}`,
      port,
      database,
      startupMs: Date.now() - started,
      output: () => out.join(""),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
