import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { buttonProfile, write } from "./fixtures.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

describe("ata profiles", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-profiles-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, "good");
  const bad = join(dir, "bad");
  mkdirSync(good);
  mkdirSync(bad);
  write(good, "acme-button.mjs", buttonProfile());
  write(good, "README.md", "not a profile: ignored");
  write(bad, "acme-buzzer.mjs", buttonProfile({ id: "acme/buzzer", expectedHeld: 2 }));
  write(bad, "vayyar-clone.mjs", buttonProfile({ id: "vayyar/care" }));
  write(bad, "broken.js", "export default {{ not javascript");
  write(bad, "twin-1.mjs", buttonProfile({ id: "acme/twin" }));
  write(bad, "twin-2.mjs", buttonProfile({ id: "acme/twin" }));
  write(bad, "half.mjs", 'export default { id: "acme/half", vendor: "Acme", topics: "press" };');
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: join(dir, "data"),
      profiles: { dir: good },
      sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }],
    }),
  );
  const ata = (...args: string[]) =>
    run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], { cwd: ROOT });
  const fails = async (...args: string[]) => {
    try {
      await ata(...args);
    } catch (err) {
      return err as { code: number; stdout: string; stderr: string };
    }
    throw new Error(`ata ${args.join(" ")} succeeded`);
  };

  it("check passes a directory whose profiles all pass, exit 0", async () => {
    const { stdout } = await ata("profiles", "check", good);
    expect(stdout).toContain("ok   acme-button.mjs (acme/button)");
    expect(stdout).toContain(`1 of 1 profile(s) in ${good} pass the checks`);
  });

  it("check fails a directory with a bad profile, exit 1, with every reason for every file", async () => {
    const { code, stdout } = await fails("profiles", "check", bad);
    expect(code).toBe(1);
    const lines = stdout.trim().split("\n");
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^FAIL acme-buzzer\.mjs \(acme\/buzzer\): fixture "a press": decoded to .*expected/,
      ),
    );
    expect(lines).toContain(
      'FAIL vayyar-clone.mjs (vayyar/care): id "vayyar/care" is a built-in profile\'s; an external profile needs its own id',
    );
    // Node's SyntaxError, or tsx's TransformError when the CLI runs under tsx.
    expect(lines).toContainEqual(
      expect.stringMatching(/^FAIL broken\.js: the module does not load: (SyntaxError|TransformError): /),
    );
    expect(lines).toContain('FAIL twin-1.mjs (acme/twin): id "acme/twin" is also declared by twin-2.mjs');
    expect(lines).toContain('FAIL twin-2.mjs (acme/twin): id "acme/twin" is also declared by twin-1.mjs');
    // A module that is not a profile: each missing or mistyped field by name, before any check runs.
    const half = lines.filter((l) => l.startsWith("FAIL half.mjs (acme/half): "));
    expect(half.map((l) => l.slice("FAIL half.mjs (acme/half): ".length).split(":")[0])).toEqual([
      "model",
      "kind",
      "description",
      "topics",
      "supervision",
      "scaip",
      "emits",
      "decode",
      "fixtures",
    ]);
    expect(lines.at(-1)).toBe(`0 of 6 profile(s) in ${bad} pass the checks`);
  });

  it("check of a missing directory fails, and of no directory is a usage error", async () => {
    const missing = await fails("profiles", "check", join(dir, "nope"));
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/cannot read the directory/);
    expect((await fails("profiles", "check")).code).toBe(2);
  });

  it("check loads a TypeScript profile (.mts) when the command runs under tsx, as `npm start` does", async () => {
    const ts = join(dir, "ts");
    mkdirSync(ts);
    // Type annotations make it TypeScript that plain node would refuse to load.
    const text = buttonProfile({ id: "acme/tag" }).replace(
      "export default ({ z, blocks }) =>",
      "type Kit = { z: any; blocks: any };\nexport default ({ z, blocks }: Kit) =>",
    );
    write(ts, "acme-tag.mts", text);
    const { stdout } = await ata("profiles", "check", ts);
    expect(stdout).toContain("ok   acme-tag.mts (acme/tag)");
    // A .ts file outside an ES-module package is read as CommonJS by the ata command: said so.
    const plain = join(dir, "ts-plain");
    mkdirSync(plain);
    write(plain, "acme-tag.ts", text);
    const refused = await fails("profiles", "check", plain);
    expect(refused.stdout).toMatch(
      /^FAIL acme-tag\.ts: the module does not load: SyntaxError: .*name it \.mts\)$/m,
    );
  });

  it("lists the configured directory's profiles beside the built-in ones, and registers devices with them", async () => {
    const { stdout } = await ata("profiles");
    expect(stdout).toMatch(/^vayyar\/care\tfall-sensor\t.*\tbuilt-in$/m);
    expect(stdout).toContain(`acme/button\tpendant\tpress\tcall.manual\t${join(good, "acme-button.mjs")}`);
    const added = await ata(
      "devices",
      "add",
      "--id",
      "acme-b1",
      "--profile",
      "acme/button",
      "--site",
      "home-a",
      "--unit",
      "unit-1",
    );
    expect(added.stdout).toMatch(/added acme-b1 \(acme\/button\)/);
  });

  it("conform decodes recorded samples with a profile from a directory not yet installed", async () => {
    const samples = join(dir, "samples.jsonl");
    writeFileSync(
      samples,
      [
        JSON.stringify({ topic: "press", payload: { id: "s-1", held: 2 } }),
        JSON.stringify({ topic: "press", payload: { held: 2 } }),
      ].join("\n"),
    );
    const other = join(dir, "other");
    mkdirSync(other);
    write(other, "acme-bell.mjs", buttonProfile({ id: "acme/bell" }));
    const { code, stdout } = await fails(
      "conform",
      "--profile",
      "acme/bell",
      "--file",
      samples,
      "--dir",
      other,
    );
    expect(code).toBe(1);
    expect(stdout).toContain("ok   #0 press -> call.manual");
    expect(stdout).toMatch(/FAIL #1 press: bad_schema: press: id/);
  });
});
