/**
 * Protocol robustness over a real WebSocket: every bad message gets one error reply with a code
 * from the catalogue and the connection stays usable; a flood of them closes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../helpers/gateway.js";
import { STAFF, StaffClient } from "./client.js";

describe("staff protocol robustness", () => {
  let t: TestGateway;
  const clients: StaffClient[] = [];

  beforeAll(async () => {
    t = await startGateway({ overrides: { staff: Object.values(STAFF) } });
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await t?.stop();
  });

  const connect = async () => {
    const c = await StaffClient.connect(t.httpUrl, STAFF.anna.token);
    clients.push(c);
    return c;
  };
  /** The next error reply. */
  const error = (c: StaffClient) => c.next((m) => m.type === "reply" && m.ok === false);
  /** Still open and answering. */
  const alive = async (c: StaffClient) => {
    const pong = c.next((m) => m.type === "pong" && m.id === "alive");
    c.send({ type: "ping", id: "alive" });
    expect(await pong).toMatchObject({ type: "pong", id: "alive" });
    expect(c.closed).toBeNull();
  };

  it("a second hello on a signed-in connection is refused, and the session keeps its identity", async () => {
    const c = await connect();
    const e = error(c);
    c.send({ type: "hello", id: "h2", token: STAFF.bo.token });
    expect(await e).toMatchObject({ id: "h2", ok: false, error: { code: "already_signed_in" } });
    await alive(c);
    // Still Anna: a command in Bo's scope only would not be hers (the welcome is not sent again).
    expect(c.messages.filter((m) => m.type === "welcome")).toHaveLength(1);
    expect(c.messages.find((m) => m.type === "welcome")).toMatchObject({ staff: { id: "anna" } });
  });

  it("malformed JSON gets bad_request and the connection stays open", async () => {
    const c = await connect();
    const e = error(c);
    c.send("{not json");
    expect(await e).toEqual({
      type: "reply",
      id: null,
      ok: false,
      error: { code: "bad_request", message: "the message is not valid JSON" },
    });
    await alive(c);
  });

  it("a message of the wrong schema gets invalid_body with its request id and every problem", async () => {
    const c = await connect();
    let e = error(c);
    c.send({ type: "accept", id: "a1" });
    expect(await e).toMatchObject({
      id: "a1",
      ok: false,
      error: { code: "invalid_body", details: [{ path: "alertId" }] },
    });
    e = error(c);
    c.send({ type: "launch", id: "a2" });
    expect(await e).toMatchObject({ id: "a2", error: { code: "invalid_body" } });
    e = error(c);
    c.send({ type: "resolve", id: "a3", alertId: "x", outcome: "fine", extra: 1 });
    const r = await e;
    expect(r).toMatchObject({ id: "a3", error: { code: "invalid_body" } });
    expect(r.error.details.length).toBeGreaterThanOrEqual(2);
    e = error(c);
    c.send("[1,2,3]");
    expect(await e).toMatchObject({ id: null, error: { code: "invalid_body" } });
    e = error(c);
    c.send("null");
    expect(await e).toMatchObject({ id: null, error: { code: "invalid_body" } });
    await alive(c);
  });

  it("a message over 16 KiB gets body_too_large and the connection stays open", async () => {
    const c = await connect();
    const e = error(c);
    c.send({ type: "comment", id: "big", alertId: "x", text: "x".repeat(17 * 1024) });
    expect(await e).toMatchObject({ id: null, error: { code: "body_too_large" } });
    await alive(c);
  });

  it("a binary frame gets bad_request", async () => {
    const c = await connect();
    const e = error(c);
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await e).toMatchObject({ error: { code: "bad_request" } });
    await alive(c);
  });

  it("commands before hello get unauthenticated; a bad token is refused and the connection closed", async () => {
    const c = await StaffClient.open(t.httpUrl);
    clients.push(c);
    let e = error(c);
    c.send({ type: "accept", id: "early", alertId: "x" });
    expect(await e).toMatchObject({ id: "early", error: { code: "unauthenticated" } });
    e = error(c);
    c.send({ type: "hello", id: "h", token: "not-a-token-0123456789" });
    expect(await e).toMatchObject({ id: "h", error: { code: "unauthenticated" } });
    expect(await c.waitClosed()).toMatchObject({ code: 4003 });
  });

  it("a flood of bad messages closes the connection as abusive (1008)", async () => {
    const c = await connect();
    for (let i = 0; i < 40; i++) c.send("garbage");
    expect(await c.waitClosed()).toEqual({ code: 1008, reason: "too many bad messages" });
    // It was answered up to the limit (30 a minute), then cut.
    expect(c.messages.filter((m) => m.type === "reply" && m.ok === false).length).toBe(31);
    // The gateway is fine: a new connection works.
    await alive(await connect());
  });

  it("commands that fail on the alert's state are not abuse", async () => {
    const c = await connect();
    for (let i = 0; i < 40; i++) {
      const r = await c.request({ type: "accept", alertId: "al_missing" });
      expect(r.error.code).toBe("alert_not_found");
    }
    await alive(c);
  });
});
