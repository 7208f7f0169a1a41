/**
 * mqtt-packet's disabled `debug` loggers are one silent function (src/util/quiet-debug.ts), while
 * DEBUG still turns its trace on and every other namespace keeps the package's own loggers.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { quietFactory } from "../../src/util/quiet-debug.js";

const require = createRequire(import.meta.url);

/** Run a snippet after the module was imported, as src/main.ts does, with the given DEBUG. */
function withQuietDebug(debug: string | undefined, code: string) {
  const env = { ...process.env };
  delete env.DEBUG;
  if (debug !== undefined) env.DEBUG = debug;
  return spawnSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", `import "./src/util/quiet-debug.ts";\n${code}`],
    { env, encoding: "utf8", timeout: 30_000 },
  );
}

const parseOneFrame = `
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const mqttPacket = require("mqtt-packet");
const parser = mqttPacket.parser();
let got = 0;
parser.on("packet", () => got++);
parser.parse(mqttPacket.generate({ cmd: "publish", topic: "a/b", payload: "x", qos: 1, messageId: 7 }));
const debug = createRequire(require.resolve("mqtt-packet"))("debug");
console.log(JSON.stringify({ got, same: debug("mqtt-packet:parser") === debug("mqtt-packet:writeToStream"), other: debug("ata:x") === debug("ata:x") }));
`;

describe("mqtt-packet's debug loggers", () => {
  it("are one silent function when DEBUG does not name them, and the parser still parses", () => {
    const r = withQuietDebug(undefined, parseOneFrame);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ got: 1, same: true, other: false });
    expect(r.stderr).toBe("");
  });

  it("trace as before when DEBUG names them", () => {
    const r = withQuietDebug("mqtt-packet:parser", parseOneFrame);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ got: 1, same: false });
    expect(r.stderr).toMatch(/mqtt-packet:parser parse: current state/);
  });

  it("leave other namespaces and the package's settings to the package", () => {
    const real = require("debug");
    const quiet = quietFactory(real);
    expect(quiet("mqtt-packet:parser").enabled).toBe(false);
    expect(quiet("ata:elsewhere")).not.toBe(quiet("mqtt-packet:parser"));
    expect(quiet.enabled).toBe(real.enabled);
  });
});
