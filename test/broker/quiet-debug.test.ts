import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * The broker quietens `debug` for the packet parser when no debug output is asked for, and leaves
 * the real module when DEBUG is set. Each case runs in a fresh Node process: the module cache is
 * what is being tested.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const PROBE = `
  await import("./src/broker/broker.ts");
  const { createRequire } = await import("node:module");
  // What mqtt-packet's parser gets when it requires debug, resolved from its own directory.
  const fromParser = createRequire(process.cwd() + "/node_modules/mqtt-packet/parser.js");
  const createDebug = fromParser("debug");
  const log = createDebug("mqtt-packet:parser");
  console.log(JSON.stringify({ params: log.length, enabled: log.enabled, quiet: !String(log).includes("args") }));
`;

function probe(env: Record<string, string>): { params: number; enabled: boolean; quiet: boolean } {
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", PROBE], {
    cwd: ROOT,
    env: { ...process.env, DEBUG: "", ...env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  return JSON.parse(out.trim().split("\n").pop()!);
}

describe("debug output of the packet parser", () => {
  it("is a logger that takes no arguments when DEBUG is unset", () => {
    expect(probe({})).toEqual({ params: 0, enabled: false, quiet: true });
  });

  it("is the real debug module when DEBUG asks for output", () => {
    const real = probe({ DEBUG: "some-other-namespace" });
    expect(real.quiet).toBe(false);
    expect(real.enabled).toBe(false);
    expect(probe({ DEBUG: "mqtt-packet:*" }).enabled).toBe(true);
  });
});
