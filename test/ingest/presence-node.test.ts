/**
 * A cluster node's presence changes name the node that logged them (src/reports/uptime.ts reads whose
 * session a change is from it); a single process's carry no node. Both are valid device data.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Presence, type PresenceContext } from "../../src/ingest/presence.js";
import { type DecodedEvent, EVENT_DATA } from "../../src/model/event.js";
import { tempDbs } from "../helpers/tempdb.js";

const dbs = tempDbs("ata-presence-node-");
afterEach(() => dbs.cleanup());

function presence(node: string | undefined): { p: Presence; logged: DecodedEvent[] } {
  const logged: DecodedEvent[] = [];
  const ctx = {
    db: dbs.open().db,
    registry: { peek: () => undefined },
    profiles: new Map(),
    log: { error() {}, warn() {}, info() {}, debug() {} },
    metrics: { devicesOnline: { set() {} } },
    record: async (_id: string, events: DecodedEvent[]) => {
      logged.push(...events);
    },
    ...(node ? { node } : {}),
  } as unknown as PresenceContext;
  return { p: new Presence(ctx), logged };
}

describe("presence changes and the node that logged them", () => {
  it("on a cluster node each online and offline carries the node; the data is valid device data", () => {
    const { p, logged } = presence("gw-2");
    p.onConnected("radar-1");
    p.onDisconnected("radar-1", "keepalive timeout");
    expect(logged.map((e) => [e.type, e.data])).toEqual([
      ["device.online", { reason: "connected", node: "gw-2" }],
      ["device.offline", { reason: "keepalive timeout", node: "gw-2" }],
    ]);
    for (const e of logged) expect(EVENT_DATA["device.online"].safeParse(e.data).success).toBe(true);
  });

  it("in a single process the changes carry no node", () => {
    const { p, logged } = presence(undefined);
    p.onConnected("radar-1");
    expect(logged.map((e) => e.data)).toEqual([{ reason: "connected" }]);
  });
});
