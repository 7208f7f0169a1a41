/**
 * The pipeline's `alone` submissions and its CommitError, on the gateway's own event log and writer
 * thread: one payload whose rows SQLite refuses fails its whole group, but committed alone it fails
 * only itself. The refusal is an SQLite trigger in the event log's file (the `log` schema).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommitError } from "../../src/ingest/pipeline.js";
import { EVENT_LOG_SCHEMA } from "../../src/store/db.js";
import { deviceIdFor, startGateway, type TestGateway } from "../helpers/gateway.js";

const ID = deviceIdFor("ata/native");
let t: TestGateway;

const body = (eventId: string) =>
  Buffer.from(JSON.stringify({ eventId, type: "device.heartbeat", data: {} }));
const submit = (eventId: string, alone = false) =>
  t.gateway.ingest.submit(ID, `ata/v1/${ID}/events`, "events", body(eventId), alone ? { alone } : undefined);
const logged = (like: string) =>
  t.gateway.db.prepare("SELECT count(*) FROM events WHERE event_id LIKE ?").pluck().get(like) as number;

beforeAll(async () => {
  // Submissions within 20 ms share a group commit.
  t = await startGateway({ overrides: { ingest: { commitMaxDelayMs: 20 } } });
});
afterAll(async () => {
  await t?.stop();
});

describe("a publish committed alone", () => {
  it("a refused row fails its whole group, but alone it fails only itself, as rows refused", async () => {
    t.gateway.db.exec(`CREATE TRIGGER ${EVENT_LOG_SCHEMA}.ca_poison BEFORE INSERT ON events
      WHEN NEW.event_id LIKE 'ca-poison-%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    try {
      const grouped = await Promise.allSettled([submit("ca-g-1"), submit("ca-poison-1"), submit("ca-g-2")]);
      expect(grouped.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
      expect(logged("ca-g-%")).toBe(0);

      const alone = await Promise.allSettled([
        submit("ca-a-1"),
        submit("ca-poison-2", true),
        submit("ca-a-2"),
      ]);
      expect(alone.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      const err = (alone[1] as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(CommitError);
      expect(err).toMatchObject({ code: "SQLITE_CONSTRAINT_TRIGGER", rowsRefused: true, storage: false });
      expect(logged("ca-a-%")).toBe(2);
    } finally {
      t.gateway.db.exec(`DROP TRIGGER IF EXISTS ${EVENT_LOG_SCHEMA}.ca_poison`);
    }
  });

  it("a full disk is the storage's, not the rows': no payload is blamed for it", async () => {
    t.gateway.db.exec(`CREATE TRIGGER ${EVENT_LOG_SCHEMA}.ca_full BEFORE INSERT ON events
      BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    try {
      const err = await submit("ca-full-1", true).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommitError);
      expect(err).toMatchObject({ storage: true, rowsRefused: false });
    } finally {
      t.gateway.db.exec(`DROP TRIGGER IF EXISTS ${EVENT_LOG_SCHEMA}.ca_full`);
    }
    await submit("ca-full-2", true);
    expect(logged("ca-full-%")).toBe(1);
  });
});
