/**
 * No crash window between an event and its alert: the gateway runs as a child process under fall
 * traffic and is killed with SIGKILL at random moments, several times on the same data directory.
 * After each restart every fall in the event log must have exactly one alert effect (an audit entry
 * naming its log seq), and each kill must have landed while publishes were still unacknowledged,
 * or the round proves nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { connectDevice, eventually } from "../helpers/gateway.js";
import { type GatewayProcess, spawnGateway, writeConfig } from "../helpers/process.js";

const KILLS = 3;
const DEVICES = 8;
/** QoS 1 publishes each client keeps in flight. */
const WINDOW = 25;

const RULES = `
rules:
  - id: fall
    when: { event: fall.detected }
    raise: { alert: fall, priority: high, message: { da: "Fald i {room}", en: "Fall in {room}" } }
`;

interface Round {
  sent: number;
  acked: number;
  /** Publishes without a PUBACK when the connection died: the kill landed mid-work. */
  unackedAtKill: number;
}

/** Falls in the log without exactly one audit entry that names them. */
function fallsWithoutOneEffect(dataDir: string): { falls: number; missing: number[]; doubled: number[] } {
  const db = new Database(join(dataDir, "ata.db"), { readonly: true });
  try {
    db.prepare("ATTACH DATABASE ? AS log").run(join(dataDir, "ata-events.db"));
    const rows = db
      .prepare(
        `SELECT e.seq, (SELECT count(*) FROM alert_audit a
             WHERE a.data IS NOT NULL AND json_extract(a.data, '$.eventSeq') = e.seq) AS effects
           FROM log.events e WHERE e.type = 'fall.detected' ORDER BY e.seq`,
      )
      .all() as { seq: number; effects: number }[];
    return {
      falls: rows.length,
      missing: rows.filter((r) => r.effects === 0).map((r) => r.seq),
      doubled: rows.filter((r) => r.effects > 1).map((r) => r.seq),
    };
  } finally {
    db.close();
  }
}

async function replayedCount(gw: GatewayProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.http}/metrics`)).text();
  const m = /^ata_rules_replayed_events_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe("no crash window between an event and its alert", () => {
  const dir = mkdtempSync(join(tmpdir(), "ata-crash-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("after each of several kill -9 under fall traffic, every fall in the event log has exactly one alert effect", async () => {
    const rulesFile = join(dir, "rules.yaml");
    writeFileSync(rulesFile, RULES);
    const devices = Array.from({ length: DEVICES }, (_, i) => ({
      id: `crash-${i}`,
      profile: "ata/native",
      secret: `crash-secret-${i}-0123456789`,
      site: "s1",
      unit: "u1",
      room: `r${i}`,
    }));
    const dataDir = join(dir, "data");
    const configPath = writeConfig(dir, {
      dataDir,
      rulesFile,
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      http: { host: "127.0.0.1", port: 0 },
      sites: [{ id: "s1", name: "S1", units: [{ id: "u1", name: "U1" }] }],
      devices,
    });

    const rounds: Round[] = [];
    let replayed = 0;
    // Generous: on a loaded machine a start through tsx can take tens of seconds.
    let gw = await spawnGateway(configPath, {}, 45_000);
    let counter = 0;
    for (let k = 0; k < KILLS; k++) {
      const round: Round = { sent: 0, acked: 0, unackedAtKill: 0 };
      const clients: MqttClient[] = await Promise.all(
        // Secrets are checked with scrypt: eight at once on a loaded machine can take a while.
        devices.map((d) => connectDevice(gw.mqtt, d.id, d.secret, { connectTimeout: 30_000 })),
      );
      const pumps = clients.map(
        (client, ci) =>
          new Promise<void>((resolve) => {
            const id = devices[ci]!.id;
            let inflight = 0;
            let dead = false;
            client.on("error", () => {});
            client.on("close", () => {
              if (dead) return;
              dead = true;
              // What this client had sent and never saw acknowledged when the gateway died.
              round.unackedAtKill += inflight;
              resolve();
            });
            const pump = () => {
              while (!dead && inflight < WINDOW) {
                inflight++;
                round.sent++;
                client.publish(
                  deviceTopic(id, "events"),
                  JSON.stringify({
                    eventId: `${id}-${counter++}`,
                    type: "fall.detected",
                    data: { confidence: 0.9 },
                  }),
                  { qos: 1 },
                  (err) => {
                    if (dead) return;
                    if (err) {
                      // The client gives up on its queue when the connection dies: still unacknowledged.
                      dead = true;
                      round.unackedAtKill += inflight;
                      resolve();
                      return;
                    }
                    inflight--;
                    round.acked++;
                    pump();
                  },
                );
              }
            };
            pump();
          }),
      );
      // A random moment once traffic flows (a started gateway on a loaded machine may take a while
      // for its first PUBACKs): rules are busy with falls when the kill lands.
      await eventually(() => round.acked >= 2 * WINDOW, 20_000, 10);
      await new Promise((r) => setTimeout(r, Math.random() * 600));
      await gw.kill9();
      await Promise.all(pumps);
      for (const c of clients) c.end(true);
      rounds.push(round);

      // The restart replays what the rules had not committed before it takes connections.
      gw = await spawnGateway(configPath, {}, 45_000);
      replayed += await replayedCount(gw);
      const check = fallsWithoutOneEffect(dataDir);
      expect(round.acked, `round ${k}: traffic flowed before the kill`).toBeGreaterThan(0);
      expect(round.unackedAtKill, `round ${k}: the kill landed with publishes in flight`).toBeGreaterThan(0);
      expect(check.falls).toBeGreaterThan(0);
      expect(check.missing, `round ${k}: logged falls without an alert effect`).toEqual([]);
      expect(check.doubled, `round ${k}: logged falls with more than one effect`).toEqual([]);
    }
    expect(await gw.stop()).toBe(0);
    const final = fallsWithoutOneEffect(dataDir);
    expect(final.missing).toEqual([]);
    expect(final.doubled).toEqual([]);
    // Printed rather than asserted: how often a kill lands between a log commit and its rule
    // commit depends on load. With the rules cursor it does not matter; without it, these events
    // were the ones lost.
    console.log(
      `crash test: ${KILLS} kills, ${final.falls} falls logged, ${replayed} events replayed at restarts, rounds ${JSON.stringify(rounds)}`,
    );
  }, 150_000);
});
