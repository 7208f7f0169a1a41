/**
 * A gateway going down closes every staff connection; that is not staff leaving, and must not
 * escalate open alerts to the fallback on the way out.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { connectDevice, deviceIdFor, publish, secretFor, startGateway } from "../helpers/gateway.js";
import { STAFF, StaffClient } from "./client.js";

const DEVICE = deviceIdFor("ata/native");

describe("staff channel shutdown", () => {
  it("closes staff connections with 1001 and leaves open alerts where they were on the ladder", async () => {
    const t = await startGateway({ keepDir: true, overrides: { staff: Object.values(STAFF) } });
    try {
      const device = await connectDevice(t.mqttPort, DEVICE, secretFor("ata/native"));
      const anna = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
      const raised = anna.next((m) => m.type === "alert" && m.change === "raised");
      await publish(
        device,
        deviceTopic(DEVICE, "events"),
        JSON.stringify({ eventId: "sd-1", type: "call.manual", data: {} }),
      );
      const id = (await raised).alert.id as string;
      device.end(true);

      // A graceful stop with Anna still connected. It waits for every socket to close and drains
      // ingest, so a recheck triggered by her socket closing would have run before it returns.
      const stopped = t.stop();
      expect(await anna.waitClosed()).toEqual({ code: 1001, reason: "gateway shutting down" });
      await stopped;

      const db = new Database(join(t.dir, "ata.db"), { readonly: true });
      try {
        expect(db.prepare("SELECT level, state FROM alerts WHERE id = ?").get(id)).toEqual({
          level: 0,
          state: "raised",
        });
        expect(db.prepare("SELECT action FROM alert_audit WHERE alert_id = ? ORDER BY id").all(id)).toEqual([
          { action: "raised" },
          { action: "notified" },
        ]);
      } finally {
        db.close();
      }
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});
