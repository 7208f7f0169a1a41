/**
 * A real mosquitto (/usr/sbin/mosquitto) on a free loopback port with its own temporary config, for
 * tests that need another network's broker (a LoRaWAN network server's, zigbee2mqtt's). Stopped by
 * its PID; `restart()` brings it back on the same port, as a broker coming back after an outage.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accepting, freePort } from "./ports.js";

export const MOSQUITTO = "/usr/sbin/mosquitto";

export interface Mosquitto {
  port: number;
  url: string;
  pid(): number | undefined;
  /** SIGTERM by PID and wait for the exit. */
  stop(): Promise<void>;
  /** Start again on the same port (after stop()). */
  restart(): Promise<void>;
  /** stop() and remove the temporary config directory. */
  close(): Promise<void>;
}

export async function startMosquitto(): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "ata-mosquitto-"));
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  let child: ChildProcess | null = null;
  const output: string[] = [];

  const launch = async () => {
    const c = spawn(MOSQUITTO, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    c.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
    c.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
    child = c;
    const deadline = Date.now() + 5000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`mosquitto exited (${c.exitCode}): ${output.join("")}`);
      if (await accepting(port)) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${output.join("")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    process.kill(c.pid, "SIGTERM");
    await exited;
  };

  await launch();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: () => (child as ChildProcess | null)?.pid,
    stop,
    restart: launch,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
