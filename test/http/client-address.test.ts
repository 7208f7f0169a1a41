import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ClientAddress, isAddressOrRange } from "../../src/http/client-address.js";
import { startGateway, type TestGateway } from "../helpers/gateway.js";
import { STAFF } from "../staff/client.js";

function request(peer: string, forwarded?: string | string[]): IncomingMessage {
  return {
    socket: { remoteAddress: peer },
    headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded },
  } as unknown as IncomingMessage;
}

describe("the client's address behind trusted proxies", () => {
  const behind = new ClientAddress(["10.0.0.2", "172.28.0.0/24", "fd00::/8"]);

  it("is the socket's address when no proxy is trusted, whatever the header says", () => {
    expect(new ClientAddress().of(request("203.0.113.9", "198.51.100.1"))).toBe("203.0.113.9");
    expect(new ClientAddress().of(request("::ffff:203.0.113.9"))).toBe("203.0.113.9");
  });

  it("is the socket's address for a socket that is not a trusted proxy, whatever the header says", () => {
    expect(behind.of(request("203.0.113.9", "198.51.100.1"))).toBe("203.0.113.9");
    expect(behind.of(request("172.28.1.5", "198.51.100.1"))).toBe("172.28.1.5");
  });

  it("is the rightmost address that is not a trusted proxy, from a trusted one", () => {
    expect(behind.of(request("10.0.0.2", "198.51.100.1"))).toBe("198.51.100.1");
    expect(behind.of(request("::ffff:172.28.0.7", "198.51.100.1"))).toBe("198.51.100.1");
    // A client's own claim further left is not believed; trusted hops in between are skipped.
    expect(behind.of(request("10.0.0.2", "1.2.3.4, 198.51.100.1, 172.28.0.9"))).toBe("198.51.100.1");
    expect(behind.of(request("10.0.0.2", ["1.2.3.4", "198.51.100.1, 10.0.0.2"]))).toBe("198.51.100.1");
    expect(behind.of(request("fd00::5", "2001:db8::7"))).toBe("2001:db8::7");
  });

  it("stops at what is not an address, or at a missing header: the last trusted hop counts", () => {
    expect(behind.of(request("10.0.0.2"))).toBe("10.0.0.2");
    expect(behind.of(request("10.0.0.2", "unknown, 172.28.0.9"))).toBe("172.28.0.9");
    expect(behind.of(request("10.0.0.2", "1.2.3.4, not-an-address"))).toBe("10.0.0.2");
    expect(behind.of(request("10.0.0.2", "172.28.0.3, 172.28.0.9"))).toBe("172.28.0.3");
  });

  it("accepts addresses and CIDR ranges in the configuration, and nothing else", () => {
    for (const ok of ["10.0.0.2", "172.28.0.0/24", "0.0.0.0/0", "fd00::/8", "::1", "2001:db8::/128"])
      expect(isAddressOrRange(ok), ok).toBe(true);
    for (const bad of [
      "10.0.0",
      "172.28.0.0/33",
      "fd00::/129",
      "host.example",
      "10.0.0.0/8/8",
      "10.0.0.0/",
      "/8",
      "",
    ])
      expect(isAddressOrRange(bad), bad).toBe(false);
  });
});

describe("a gateway behind a load balancer (http.trustedProxies)", () => {
  let t: TestGateway;
  const MAX = 3;
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        http: { host: "127.0.0.1", port: 0, trustedProxies: ["127.0.0.1"] },
        staff: Object.values(STAFF),
        staffAuth: { maxFailures: MAX, windowSec: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  /** A wrong token unlike any other (the throttle also counts per token prefix). */
  const wrong = () => randomBytes(16).toString("hex");
  const me = (token: string, forwardedFor: string) =>
    fetch(`${t.httpUrl}/api/v1/me`, {
      headers: { authorization: `Bearer ${token}`, "x-forwarded-for": forwardedFor },
    });

  it("throttles each client by its forwarded address, not everyone by the balancer's", async () => {
    for (let i = 0; i < MAX; i++) expect((await me(wrong(), "198.51.100.1")).status).toBe(401);
    expect((await me(wrong(), "198.51.100.1")).status).toBe(429);
    // Another person behind the same balancer is not locked out by the first one's mistakes.
    expect((await me(STAFF.anna.token, "198.51.100.2")).status).toBe(200);
    expect((await me(wrong(), "198.51.100.2")).status).toBe(401);
  });

  it("gives the staff WebSocket the forwarded address too: its hello is throttled per client", async () => {
    const hello = (token: string, forwardedFor: string) =>
      new Promise<{ code?: string }>((resolve, reject) => {
        const ws = new WebSocket(`${t.httpUrl.replace(/^http/, "ws")}/staff/ws`, {
          headers: { "x-forwarded-for": forwardedFor },
        });
        ws.once("open", () => ws.send(JSON.stringify({ type: "hello", id: "h", token })));
        ws.on("message", (data) => {
          const m = JSON.parse(data.toString());
          if (m.type === "reply") {
            resolve({ code: m.ok ? undefined : m.error?.code });
            ws.close();
          }
        });
        ws.once("error", reject);
      });
    for (let i = 0; i < MAX; i++) expect((await hello(wrong(), "198.51.100.3")).code).toBe("unauthenticated");
    expect((await hello(wrong(), "198.51.100.3")).code).toBe("rate_limited");
    expect((await hello(STAFF.bo.token, "198.51.100.4")).code).toBeUndefined();
  });
});
