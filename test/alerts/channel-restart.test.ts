/**
 * Every channel attempt is recorded before it is made: a fallback webhook request in flight when
 * the gateway is killed (the receiver has it, but never answered) is made again when the gateway
 * starts, with the same delivery id so a receiver can tell it is a repeat.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { connectDevice, eventually, publish } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";

const DEVICE = { id: "radar-1", secret: "radar-1-secret-0123456789" };

describe("a channel attempt cut off by kill -9", () => {
  const held: ServerResponse[] = [];
  const requests: { delivery: string; attempt: string; alertId: string }[] = [];
  let answer: "hold" | "ok" = "hold";
  let hook: Server;
  let gw: GatewayProcess | null = null;
  const dir = mkdtempSync(join(tmpdir(), "ata-channel-restart-"));
  afterAll(async () => {
    if (gw && gw.child.exitCode === null) await gw.kill9();
    for (const r of held) r.destroy();
    await new Promise((r) => hook?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("is made again at start with the same delivery id, and its outcome lands in the audit", async () => {
    hook = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { alert: { id: string } };
        requests.push({
          delivery: String(req.headers["x-ata-delivery"]),
          attempt: String(req.headers["x-ata-attempt"]),
          alertId: body.alert.id,
        });
        if (answer === "hold") held.push(res);
        else res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
    const configPath = writeConfig(dir, {
      dataDir: join(dir, "data"),
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      http: { host: "127.0.0.1", port: 0, adminToken: "channel-restart-admin-0123456789" },
      sites: [
        {
          id: "home-a",
          name: "Home A",
          timeZone: "Europe/Copenhagen",
          units: [{ id: "unit-1", name: "Unit 1" }],
        },
      ],
      residents: [{ ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1" }],
      devices: [
        { ...DEVICE, profile: "ata/native", site: "home-a", unit: "unit-1", room: "r1", resident: "R-0001" },
      ],
      alarms: {
        fallbackWebhook: {
          url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/ata`,
          secret: "channel-restart-secret-0123456789",
          // Long enough that the held request is still in flight when the kill lands.
          timeoutMs: 30_000,
        },
      },
    });
    gw = await spawnGateway(configPath);
    const device = await connectDevice(gw.mqtt, DEVICE.id, DEVICE.secret);
    // Nobody connected: the ladder runs down to the webhook at once.
    await publish(
      device,
      deviceTopic(DEVICE.id, "events"),
      JSON.stringify({ eventId: "f-1", type: "fall.detected", data: {} }),
    );
    device.end(true);
    await eventually(async () => (requests.length ? true : null));
    // The fault happens mid-work: the receiver holds the request, so the gateway has no answer yet.
    expect(held).toHaveLength(1);
    await gw.kill9();
    const first = requests[0]!;

    answer = "ok";
    gw = await spawnGateway(configPath);
    await eventually(async () => (requests.length >= 2 ? true : null));
    expect(requests[1]).toMatchObject({ delivery: first.delivery, alertId: first.alertId });

    const db = new Database(join(dir, "data", "ata.db"), { readonly: true });
    try {
      await eventually(async () =>
        (
          db.prepare("SELECT status FROM channel_attempts WHERE channel = 'webhook'").get() as {
            status: string;
          }
        ).status === "delivered"
          ? true
          : null,
      );
      const attempt = db
        .prepare("SELECT status, tries FROM channel_attempts WHERE channel = 'webhook'")
        .get();
      expect(attempt).toEqual({ status: "delivered", tries: 2 });
      const actions = (
        db.prepare("SELECT action FROM alert_audit WHERE alert_id = ? ORDER BY id").all(first.alertId) as {
          action: string;
        }[]
      ).map((r) => r.action);
      expect(actions.filter((a) => a === "fallback_delivered")).toHaveLength(1);
    } finally {
      db.close();
    }
  });
});
