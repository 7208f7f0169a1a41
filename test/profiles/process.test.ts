import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { eventLogPath } from "../../src/store/db.js";
import { connectDevice, eventually, publish } from "../helpers/gateway.js";
import {
  type GatewayProcess,
  runGatewayExpectingFailure,
  spawnGateway,
  writeConfig,
} from "../helpers/process.js";
import { buttonProfile, write } from "./fixtures.js";

const SECRET = "acme-secret-0123456789";
const SITES = [{ id: "home-a", name: "Home A", units: [{ id: "unit-1", name: "Unit 1" }] }];

/** The profile module in TypeScript: `npm start` runs the gateway under tsx, which reads it. */
const typescript = (text: string) =>
  text.replace(
    "export default ({ z, blocks }) =>",
    "type Kit = { z: any; blocks: any };\nexport default ({ z, blocks }: Kit) =>",
  );

interface ProfilesCheck {
  detail: { loaded: { id: string; version: string }[]; refused: { file: string; problems: string[] }[] };
}

describe("external profiles in the gateway process (src/main.ts)", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-profiles-proc-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const profilesCheck = async (g: GatewayProcess): Promise<ProfilesCheck["detail"]> => {
    const body = (await (await fetch(`http://127.0.0.1:${g.http}/readyz`)).json()) as {
      checks: ({ name: string } & ProfilesCheck)[];
    };
    return body.checks.find((c) => c.name === "profiles")!.detail;
  };

  it("loads a TypeScript profile at start for a device the configuration seeds, and a SIGHUP swaps in the new version and logs a refusal", async () => {
    const profiles = join(dir, "profiles");
    mkdirSync(profiles);
    write(profiles, "acme-button.ts", typescript(buttonProfile({ prefix: "v1-" })));
    const data = join(dir, "data");
    const config = writeConfig(dir, {
      dataDir: data,
      log: { level: "warn" },
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { host: "127.0.0.1", port: 0 } },
      http: { host: "127.0.0.1", port: 0 },
      profiles: { dir: profiles },
      sites: SITES,
      devices: [{ id: "acme-b1", profile: "acme/button", secret: SECRET, site: "home-a", unit: "unit-1" }],
    });
    const g = await spawnGateway(config);
    try {
      const logged = () => {
        const db = new Database(eventLogPath(join(data, "ata.db")), { readonly: true, fileMustExist: true });
        try {
          return (
            db
              .prepare(
                "SELECT event_id FROM events WHERE device_id = 'acme-b1' AND type = 'call.manual' ORDER BY seq",
              )
              .all() as {
              event_id: string;
            }[]
          ).map((r) => r.event_id);
        } finally {
          db.close();
        }
      };
      const press = async (id: string) => {
        const client = await connectDevice(g.mqtt, "acme-b1", SECRET);
        await publish(client, deviceTopic("acme-b1", "press"), JSON.stringify({ id }));
        client.end(true);
      };
      await press("p-1");
      await eventually(() => logged().length === 1);
      expect(logged()).toEqual(["v1-p-1"]);
      const first = await profilesCheck(g);

      write(profiles, "acme-button.ts", typescript(buttonProfile({ prefix: "v2-" })));
      write(profiles, "acme-buzzer.mjs", buttonProfile({ id: "acme/buzzer", expectedHeld: 2 }));
      g.child.kill("SIGHUP");
      await eventually(async () => (await profilesCheck(g)).refused.length === 1, 10_000);
      const after = await profilesCheck(g);
      expect(after.loaded.map((l) => l.id)).toEqual(["acme/button"]);
      expect(after.loaded[0]!.version).not.toBe(first.loaded[0]!.version);
      expect(after.refused[0]!.file).toBe(join(profiles, "acme-buzzer.mjs"));

      await press("p-2");
      await eventually(() => logged().length === 2);
      expect(logged()).toEqual(["v1-p-1", "v2-p-2"]);

      // The refusal is in the log at error, with the file and every reason.
      const line = g.stdout
        .map((l) => {
          try {
            return JSON.parse(l) as { level: number; file?: string; problems?: string[] };
          } catch {
            return null;
          }
        })
        .find((l) => l?.file?.endsWith("acme-buzzer.mjs"));
      expect(line?.level).toBe(50);
      expect(line?.problems).toEqual([expect.stringMatching(/^fixture "a press": decoded to /)]);
    } finally {
      expect(await g.stop()).toBe(0);
    }
  }, 60_000);

  it("a configured device naming a refused profile stops the start with exit 2 and the refusal's reasons", async () => {
    const profiles = join(dir, "refused");
    mkdirSync(profiles);
    write(profiles, "acme-buzzer.mjs", buttonProfile({ id: "acme/buzzer", expectedHeld: 2 }));
    const sub = join(dir, "refused-config");
    mkdirSync(sub);
    const config = writeConfig(sub, {
      dataDir: join(sub, "data"),
      profiles: { dir: profiles },
      sites: SITES,
      devices: [{ id: "acme-z1", profile: "acme/buzzer", secret: SECRET, site: "home-a", unit: "unit-1" }],
    });
    const { code, stderr } = await runGatewayExpectingFailure(config);
    expect(code).toBe(2);
    expect(stderr).toMatch(/devices\[0\]\.profile: unknown profile "acme\/buzzer"/);
    expect(stderr).toMatch(
      /external profiles refused:\n {2}- acme-buzzer\.mjs \(acme\/buzzer\): fixture "a press": decoded to/,
    );
  }, 60_000);
});
