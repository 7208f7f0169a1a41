/**
 * The gateway as a child process on a temporary data directory, with the receivers its channels
 * talk to running in this process: a fallback webhook receiver (and, where a test adds them, the
 * local push service and the paging-system simulator). Ladders in these tests are short (seconds),
 * so their bounds can be asserted in real time with a stated tolerance.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { deviceTopic } from "../../src/broker/topics.js";
import { api, connectDevice, publish } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";
import { STAFF } from "../staff/client.js";

export const ADMIN = "alert-safety-admin-0123456789";
export const DEVICE = { id: "radar-1", secret: "radar-1-secret-0123456789" };
export const WEBHOOK_SECRET = "alert-safety-webhook-0123456789";

export interface WebhookHit {
  at: number;
  alertId: string;
  level: number;
  delivery: string;
}

/** A fallback webhook receiver that records when each alert reached it; answers 200 (or `status`). */
export async function webhookReceiver(): Promise<{
  url: string;
  hits: WebhookHit[];
  status: { code: number };
  close(): Promise<void>;
}> {
  const hits: WebhookHit[] = [];
  const status = { code: 200 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        alert: { id: string; level: number };
      };
      hits.push({
        at: Date.now(),
        alertId: body.alert.id,
        level: body.alert.level,
        delivery: String(req.headers["x-ata-delivery"]),
      });
      res.writeHead(status.code).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ata`,
    hits,
    status,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export interface Site {
  dir: string;
  configPath: string;
  gw: GatewayProcess | null;
  url(): string;
  start(): Promise<GatewayProcess>;
  fall(eventId: string): Promise<number>;
  alerts(): Promise<
    { id: string; state: string; level: number; raisedAt: string; acceptedBy: { name: string } | null }[]
  >;
  history(
    id: string,
  ): Promise<{ action: string; at: string; reason: string | null; actor: { id: string } }[]>;
  close(): Promise<void>;
}

/** A one-unit home with a radar in room r1, staff Anna (unit-1) and Nina (nurse), and the given channels and ladder. */
export function site(opts: { rules: string; config?: Record<string, unknown> }): Site {
  const dir = mkdtempSync(join(tmpdir(), "ata-safety-"));
  const rulesFile = join(dir, "rules.yaml");
  writeFileSync(rulesFile, opts.rules);
  const configPath = writeConfig(dir, {
    dataDir: join(dir, "data"),
    mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
    http: { host: "127.0.0.1", port: 0, adminToken: ADMIN },
    rulesFile,
    sites: [
      {
        id: "home-a",
        name: "Home A",
        timeZone: "Europe/Copenhagen",
        units: [{ id: "unit-1", name: "Afsnit 1" }],
      },
    ],
    residents: [{ ref: "R-0001", site: "home-a", unit: "unit-1", room: "r1", flags: [] }],
    devices: [
      { ...DEVICE, profile: "ata/native", site: "home-a", unit: "unit-1", room: "r1", resident: "R-0001" },
    ],
    staff: [STAFF.anna, STAFF.nina],
    ...opts.config,
  });
  let device: MqttClient | null = null;
  const s: Site = {
    dir,
    configPath,
    gw: null,
    url: () => `http://127.0.0.1:${s.gw!.http}`,
    async start() {
      s.gw = await spawnGateway(configPath);
      return s.gw;
    },
    /** Publish a fall; resolves with the time it was acknowledged (the alert is raised by then). */
    async fall(eventId) {
      device = await connectDevice(s.gw!.mqtt, DEVICE.id, DEVICE.secret);
      await publish(
        device,
        deviceTopic(DEVICE.id, "events"),
        JSON.stringify({ eventId, type: "fall.detected", data: {} }),
      );
      const at = Date.now();
      device.end(true);
      return at;
    },
    async alerts() {
      return (await api(s.url(), "GET", "/api/v1/alerts", undefined, ADMIN)).body.alerts;
    },
    async history(id) {
      return (await api(s.url(), "GET", `/api/v1/alerts/${id}`, undefined, ADMIN)).body.history;
    },
    async close() {
      device?.end(true);
      if (s.gw && s.gw.child.exitCode === null) await s.gw.kill9();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return s;
}
