import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { prettyLine } from "../../src/log.js";
import { spawnGateway, writeConfig } from "../helpers/process.js";

describe("logs for people", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-logs-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a pino line becomes time, level, component, message and the rest as key=value", () => {
    const line = JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 11, 3, 12, 4, 31, 201),
      app: "ata-gateway",
      component: "broker",
      deviceId: "radar-a105",
      reason: "bad_secret",
      msg: "CONNECT refused",
    });
    expect(prettyLine(line)).toBe(
      "12:04:31.201 WARN  broker   CONNECT refused  deviceId=radar-a105 reason=bad_secret\n",
    );
    expect(prettyLine("not json")).toBe("not json");
  });

  it("ATA_LOG_FORMAT=pretty makes the gateway's own lines readable; JSON stays the default off a terminal", async () => {
    const config = writeConfig(dir, {
      dataDir: join(dir, "data"),
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      http: { host: "127.0.0.1", port: 0 },
      sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
    });
    const pretty = await spawnGateway(config, { ATA_LOG_FORMAT: "pretty", ATA_LOG_LEVEL: "info" });
    await pretty.stop();
    expect(pretty.stdout.some((l) => /^\d\d:\d\d:\d\d\.\d{3} INFO {2}.*ATA Gateway is running/.test(l))).toBe(
      true,
    );
    expect(pretty.stdout.some((l) => l.startsWith('{"level"'))).toBe(false);

    const json = await spawnGateway(config, { ATA_LOG_LEVEL: "info" });
    await json.stop();
    expect(json.stdout.some((l) => l.startsWith('{"level":30') && l.includes("ATA Gateway is running"))).toBe(
      true,
    );
  });
});
