/**
 * Dead clients are found by WebSocket ping/pong: the sweep runs every heartbeatSec (15 s) on
 * simulated time (only setInterval is faked; sockets stay real), so no test waits 30 s.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startGateway, type TestGateway } from "../helpers/gateway.js";
import { STAFF, StaffClient } from "./client.js";

describe("staff heartbeat", () => {
  let t: TestGateway;
  const clients: StaffClient[] = [];

  beforeAll(async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await t?.stop();
    vi.useRealTimers();
  });

  /** A round trip on the client's socket: whatever the server did before has reached it. */
  const roundTrip = async (c: StaffClient, id: string) => {
    const pong = c.next((m) => m.type === "pong" && m.id === id);
    c.send({ type: "ping", id });
    await pong;
  };

  it("a client that stops answering pings is dropped after two sweeps; one that answers stays", async () => {
    const healthy = await StaffClient.connect(t.httpUrl, STAFF.bo.token);
    // ws answers pings by itself unless told not to: this one plays a frozen phone.
    const frozen = await StaffClient.connect(t.httpUrl, STAFF.anna.token, undefined, { autoPong: false });
    clients.push(healthy, frozen);
    expect(healthy.messages.find((m) => m.type === "welcome")).toMatchObject({ heartbeatSec: 15 });
    let pings = 0;
    frozen.ws.on("ping", () => pings++);
    const frozenPinged = new Promise((r) => frozen.ws.once("ping", r));
    const healthyPinged = new Promise((r) => healthy.ws.once("ping", r));

    // First sweep: both were heard from, so both are pinged.
    vi.advanceTimersByTime(15_000);
    await Promise.all([frozenPinged, healthyPinged]);
    // The healthy client's automatic pong reaches the server before this round trip completes.
    await roundTrip(healthy, "after-first-sweep");
    expect(frozen.closed).toBeNull();

    // Second sweep: the frozen one never answered and is terminated; the healthy one is pinged again.
    vi.advanceTimersByTime(15_000);
    expect((await frozen.waitClosed()).code).toBe(1006);
    expect(pings).toBe(1);
    await roundTrip(healthy, "after-second-sweep");
    vi.advanceTimersByTime(15_000);
    await roundTrip(healthy, "after-third-sweep");
    expect(healthy.closed).toBeNull();
    expect(t.gateway.staff.connected().map((s) => s.id)).toEqual(["bo"]);
  });

  it("any message from the client counts as a sign of life", async () => {
    const quiet = await StaffClient.connect(t.httpUrl, STAFF.carl.token, undefined, { autoPong: false });
    clients.push(quiet);
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(15_000);
      await roundTrip(quiet, `still-here-${i}`);
    }
    expect(quiet.closed).toBeNull();
  });
});
