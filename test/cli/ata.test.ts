import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { connectDevice, eventually, publish, startGateway } from "../helpers/gateway.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

describe("the ata command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: join(dir, "data"),
      sites: [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }],
    }),
  );
  /** Runs ata expecting it to fail; returns its exit code and output. */
  const fails = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      await ata(...args);
    } catch (err) {
      return err as { code: number; stdout: string; stderr: string };
    }
    throw new Error(`ata ${args.join(" ")} succeeded`);
  };
  const ata = (...args: string[]) =>
    run(process.execPath, [join(ROOT, "bin/ata.js"), "--config", config, ...args], { cwd: ROOT });

  it("adds, lists, disables and rotates devices; a disable reaches the running gateway within seconds", async () => {
    const added = await ata(
      "devices",
      "add",
      "--id",
      "cli-pendant-1",
      "--profile",
      "scaip/pendant",
      "--site",
      "home-a",
      "--unit",
      "unit-1",
      "--room",
      "r1",
    );
    expect(added.stdout).toMatch(/added cli-pendant-1/);
    const secret = /secret: (\S+)/.exec(added.stdout)![1]!;

    const t = await startGateway({ dir, keepDir: true, overrides: { dataDir: join(dir, "data") } });
    try {
      const client = await connectDevice(t.mqttPort, "cli-pendant-1", secret);
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      await ata("devices", "disable", "cli-pendant-1");
      await closed; // the gateway saw the change in the database and dropped the session
      const list = await ata("devices", "list");
      expect(list.stdout).toMatch(/cli-pendant-1\tscaip\/pendant\thome-a\/unit-1\tr1\t-\tDISABLED/);
      await ata("devices", "enable", "cli-pendant-1");
      const rotated = await ata("devices", "rotate-secret", "cli-pendant-1");
      const fresh = /secret: (\S+)/.exec(rotated.stdout)![1]!;
      await eventually(async () => {
        const c = await connectDevice(t.mqttPort, "cli-pendant-1", fresh);
        c.end(true);
        return true;
      });
      await expect(connectDevice(t.mqttPort, "cli-pendant-1", secret)).rejects.toSatisfy(
        (e) => (e as { code?: number }).code === 4,
      );
    } finally {
      await t.stop();
    }
  });

  it("dead-letters and duplicates list what a device sent that was not logged, newest first", async () => {
    const added = await ata(
      "devices",
      "add",
      "--id",
      "cli-native-1",
      "--profile",
      "ata/native",
      "--site",
      "home-a",
      "--unit",
      "unit-1",
    );
    const secret = /secret: (\S+)/.exec(added.stdout)![1]!;
    const t = await startGateway({ dir, keepDir: true, overrides: { dataDir: join(dir, "data") } });
    try {
      const client = await connectDevice(t.mqttPort, "cli-native-1", secret);
      const topic = "ata/v1/cli-native-1/events";
      await publish(client, topic, "{not json");
      const call = JSON.stringify({ eventId: "call-1", type: "call.manual", data: {} });
      await publish(client, topic, call);
      await publish(client, topic, call);
      client.end(true);
    } finally {
      await t.stop();
    }
    const dead = await ata("dead-letters", "--device", "cli-native-1");
    expect(dead.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^\d+\t\S+Z\tcli-native-1\tata\/v1\/cli-native-1\/events\tbad_json\t9 B\t/),
    ]);
    // The store's quotas (as the gateway last applied them), what it holds, what they deleted.
    const usage = await ata("dead-letters", "--usage", "--device", "cli-native-1");
    expect(usage.stdout.trim().split("\n")).toEqual([
      "quota\tper device 1000 rows\ttotal 100000 rows, 268435456 B",
      expect.stringMatching(/^stored\t1 rows\t\d+ B$/),
      "dropped\tdevice_quota 0\ttotal_quota 0",
      expect.stringMatching(/^device\tcli-native-1\t1 rows\t\d+ B$/),
    ]);
    const dups = await ata("duplicates", "--device", "cli-native-1");
    expect(dups.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^\d+\t\S+Z\tcli-native-1\tevents\tcall-1\tevent_id \(already logged\)$/),
    ]);
  });

  it("says what is wrong and exits 2 on bad usage or an unknown profile", async () => {
    const usage = await fails("devices", "add", "--id", "x");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--profile is required/);
    const profile = await fails(
      "devices",
      "add",
      "--id",
      "x",
      "--profile",
      "acme/x",
      "--site",
      "home-a",
      "--unit",
      "unit-1",
    );
    expect(profile.code).toBe(2);
    expect(profile.stderr).toMatch(/unknown profile/);
  });

  it("checks a vendor's recorded samples against a profile: exit 0 when all conform, 1 otherwise", async () => {
    const good = join(dir, "good.jsonl");
    writeFileSync(
      good,
      `${JSON.stringify({ topic: "events", payload: { type: "call.manual", data: {} } })}\n`,
    );
    const ok = await ata("conform", "--profile", "ata/native", "--file", good);
    expect(ok.stdout).toMatch(/1 of 1 samples conform/);
    const bad = join(dir, "bad.jsonl");
    writeFileSync(
      bad,
      `${JSON.stringify({ topic: "events", payload: { type: "fall.imagined", data: {} } })}\n`,
    );
    const fail = await fails("conform", "--profile", "ata/native", "--file", bad);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toMatch(/FAIL .*unknown_event/);
  });

  it("creates a staff token that works on the staff API", async () => {
    const created = await ata(
      "tokens",
      "create",
      "--name",
      "Anna",
      "--role",
      "staff",
      "--sites",
      "home-a",
      "--units",
      "unit-1",
    );
    const token = /token: (\S+)/.exec(created.stdout)![1]!;
    const t = await startGateway({ dir, keepDir: true, overrides: { dataDir: join(dir, "data") } });
    try {
      const me = await fetch(`${t.httpUrl}/api/v1/me`, {
        headers: { authorization: `Bearer ${token}` },
      }).then((r) => r.json());
      expect(me.staff).toMatchObject({ name: "Anna", role: "staff", sites: ["home-a"], units: ["unit-1"] });
      // The names of what the token may see (its own unit apart from the rest of its site), and nothing else.
      expect(me.places).toEqual([
        {
          id: "home-a",
          name: "Home A",
          timeZone: "Europe/Copenhagen",
          nightHours: { from: "22:00", to: "07:00" },
          units: [{ id: "unit-1", name: "Unit 1" }],
          otherUnits: [{ id: "unit-2", name: "Unit 2" }],
          residents: [],
        },
      ]);
    } finally {
      await t.stop();
    }
  });

  it("enrol prints a short code, the console URL with it in the fragment and a terminal QR; the code signs a phone in on the running gateway", async () => {
    const t = await startGateway({ dir, keepDir: true, overrides: { dataDir: join(dir, "data") } });
    try {
      const out = await ata(
        "enrol",
        "--name",
        "Gitte",
        "--role",
        "nurse",
        "--sites",
        "home-a",
        "--url",
        "https://ata.plejehjem.example",
      );
      const code = /^code: (\S+)$/m.exec(out.stdout)![1]!;
      expect(code).toMatch(/^[A-Z2-9]{5}-[A-Z2-9]{5}$/);
      expect(out.stdout).toContain(`url: https://ata.plejehjem.example/#enrol=${code}`);
      // The terminal QR: rows of half-block characters.
      expect(out.stdout.split("\n").filter((l) => /[\u2580\u2584\u2588]/.test(l)).length).toBeGreaterThan(10);
      const ex = await fetch(`${t.httpUrl}/api/v1/enrol`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code, device: "Gittes telefon" }),
      });
      expect(ex.status).toBe(200);
      const { token, staff } = await ex.json();
      expect(staff).toMatchObject({ name: "Gitte", role: "nurse", sites: ["home-a"], units: null });
      const me = await fetch(`${t.httpUrl}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      const problems = await fails("enrol", "--name", "X", "--role", "staff", "--sites", "home-z");
      expect(problems.stderr).toContain('unknown site "home-z"');
    } finally {
      await t.stop();
    }
  });
});
