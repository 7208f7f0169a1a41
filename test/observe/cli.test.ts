import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { connectDevice, publish, startGateway } from "../helpers/gateway.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

describe("ata observe", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-observe-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const site = { id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] };
  const configFile = (name: string, observe: Record<string, unknown>) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify({ dataDir: join(dir, "data"), sites: [site], observe }));
    return path;
  };
  const on = configFile("on.json", { enabled: true, perDevice: 50 });
  const off = configFile("off.json", {});
  const ata = (config: string, ...args: string[]) =>
    run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], { cwd: ROOT });

  it("refuses to create an enrolment while observe mode is off, and says why", async () => {
    const failed = await ata(off, "observe", "enrol", "--site", "home-a", "--unit", "unit-1").then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/observe mode is off \(observe.enabled: false\)/);
  });

  it("creates an enrolment secret, then lists, shows and drafts what the device sent", async () => {
    const enrolled = await ata(
      on,
      "observe",
      "enrol",
      "--site",
      "home-a",
      "--unit",
      "unit-1",
      "--hours",
      "2",
    );
    const secret = /secret: (obs_\S+)/.exec(enrolled.stdout)![1]!;
    expect(enrolled.stdout).toMatch(/shown once; the gateway keeps only a hash/);

    const t = await startGateway({
      dir,
      keepDir: true,
      overrides: { dataDir: join(dir, "data"), observe: { enabled: true, perDevice: 50 } },
    });
    try {
      const c = await connectDevice(t.mqttPort, "acme-mat-7", secret);
      await publish(
        c,
        "ata/v1/acme-mat-7/up",
        JSON.stringify({ state: "occupied", pressure: 412, ts: 1762077600 }),
      );
      await publish(
        c,
        "ata/v1/acme-mat-7/up",
        JSON.stringify({ state: "empty", pressure: 3, ts: 1762077660 }),
      );
      await publish(c, "ata/v1/acme-mat-7/diag", Buffer.from("a5010203", "hex"));
      // Text with a terminal escape: a stranger's bytes must not drive the operator's terminal.
      await publish(c, "ata/v1/acme-mat-7/log", "boot \u001b[2Jok");
      c.end(true);
    } finally {
      await t.stop();
    }

    const list = await ata(on, "observe", "list");
    expect(list.stdout).toMatch(/^observe mode ON \(every site\)\tstored 4 of 20000/m);
    expect(list.stdout).toMatch(
      /^acme-mat-7\thome-a\/unit-1\tenrolment\treceived 4\tstored 4\tdropped 0\tdiag:1,log:1,up:2\t/m,
    );

    // `ata observe <id>` is `ata observe show <id>`.
    const show = await ata(on, "observe", "acme-mat-7");
    expect(show.stdout).toMatch(/^channel up\tjson\t2 samples\t/m);
    expect(show.stdout).toMatch(/^ {2}state\tstring\t"occupied" "empty"$/m);
    expect(show.stdout).toMatch(/^ {2}pressure\tinteger\t3\.\.412$/m);
    expect(show.stdout).toMatch(/^channel diag\tbinary\t1 samples\t4 B\tfirst bytes a5010203$/m);
    expect(show.stdout).toMatch(/\tdiag\t4 B\thex a5010203$/m);
    expect(show.stdout).toContain("\tlog\t11 B\tboot \\u001b[2Jok");
    expect(show.stdout).not.toContain("\u001b");

    const draft = await ata(on, "observe", "draft", "acme-mat-7");
    expect(draft.stdout).toContain('state: z.enum(["occupied", "empty"]),');
    expect(draft.stdout).toContain('topics: ["diag", "log", "up"],');
    expect(draft.stdout).toContain("if (payload.length !== 4)");
    const samples = await ata(on, "observe", "draft", "acme-mat-7", "--samples");
    expect(
      samples.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { topic: "up", payload: { state: "occupied", pressure: 412, ts: 1762077600 } },
      { topic: "up", payload: { state: "empty", pressure: 3, ts: 1762077660 } },
      { topic: "diag", payloadHex: "a5010203" },
      { topic: "log", payloadHex: Buffer.from("boot \u001b[2Jok").toString("hex") },
    ]);

    const enrolments = await ata(on, "observe", "enrolments");
    expect(enrolments.stdout).toMatch(/^oe-[0-9a-f]+\thome-a\/unit-1\tacme-mat-7\tbound\tuntil /m);

    const promoted = await ata(
      on,
      "observe",
      "promote",
      "acme-mat-7",
      "--profile",
      "ata/native",
      "--room",
      "r2",
    );
    expect(promoted.stdout).toMatch(/^promoted acme-mat-7 to ata\/native in home-a\/unit-1$/m);
    expect(promoted.stdout).toMatch(/^secret: \S+$/m);
    const devices = await ata(on, "devices", "list");
    expect(devices.stdout).toMatch(/^acme-mat-7\tata\/native\thome-a\/unit-1\tr2\t-\tenabled$/m);
    // Ten CLI processes of a few seconds each on a shared machine.
  }, 120_000);
});
