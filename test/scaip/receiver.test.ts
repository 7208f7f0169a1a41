/**
 * The SCAIP receiver against the real gateway: SIP MESSAGE over real UDP and TCP sockets from a
 * simulated social-alarm unit (test/helpers/scaip.ts), through digest authentication, the ingest
 * pipeline, the event log, the rules and presence.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../devices/index.js";
import type { DeviceProfile } from "../../src/model/profile.js";
import { eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { mrqXml, parseReply, replyHeader, ScaipUnit } from "../helpers/scaip.js";

const PENDANT = "4670001001";
const MAT = "4670001002";
const DISABLED = "4670001003";
const SECRETS: Record<string, string> = {
  [PENDANT]: "pendant-secret-1",
  [MAT]: "bedmat-secret-2",
  [DISABLED]: "disabled-secret-3",
};
const place = { site: "home-a", unit: "unit-1", room: "r1", resident: "R-0001" };
/** A short supervision for the mat, so that its silence shows within the test. */
const SUPERVISION = { heartbeatSec: 1, missedHeartbeats: 2 };
const profiles: DeviceProfile[] = PROFILES.map((p) =>
  p.id === "scaip/bed-mat" ? { ...p, supervision: SUPERVISION } : p,
);

let t: TestGateway;
let udpPort: number;
let tcpPort: number;
const units: ScaipUnit[] = [];

async function unit(transport: "udp" | "tcp", cid: string): Promise<ScaipUnit> {
  const u = await new ScaipUnit(transport, transport === "udp" ? udpPort : tcpPort, cid).open();
  units.push(u);
  return u;
}

function events(deviceId: string): { type: string; event_id: string }[] {
  return t.gateway.db
    .prepare(
      "SELECT type, event_id FROM events WHERE device_id = ? AND type NOT IN ('device.online', 'device.offline') ORDER BY seq",
    )
    .all(deviceId) as { type: string; event_id: string }[];
}

function deadLetters(deviceId: string): { code: string; reason: string; payload: Buffer | null }[] {
  return t.gateway.db
    .prepare("SELECT code, reason, payload FROM dead_letters WHERE device_id = ? ORDER BY id")
    .all(deviceId) as { code: string; reason: string; payload: Buffer | null }[];
}

function refusals(subject: string) {
  t.gateway.security.flush(false);
  return t.gateway.security
    .list({ kinds: ["connect_refused"], limit: 100 })
    .filter((r) => r.subject === subject && r.detail.transport === "scaip");
}

beforeAll(async () => {
  t = await startGateway({
    overrides: {
      scaip: {
        enabled: true,
        udp: { host: "127.0.0.1", port: 0 },
        tcp: { host: "127.0.0.1", port: 0 },
        realm: "test-realm",
        maxBodyBytes: 1024,
      },
      devices: [
        { id: PENDANT, profile: "scaip/pendant", secret: SECRETS[PENDANT], ...place },
        { id: MAT, profile: "scaip/bed-mat", secret: SECRETS[MAT], ...place },
        { id: DISABLED, profile: "scaip/pendant", secret: SECRETS[DISABLED], ...place },
      ],
    },
    gatewayOptions: { profiles },
  });
  t.gateway.registry.setEnabled(DISABLED, false);
  udpPort = t.gateway.scaip!.udpPort()!;
  tcpPort = t.gateway.scaip!.tcpPort()!;
});

afterAll(async () => {
  for (const u of units) u.close();
  await t?.stop();
});

describe("SCAIP receiver", () => {
  it("challenges a MESSAGE without credentials with a digest 401", async () => {
    const u = await unit("udp", PENDANT);
    const { reply } = await u.message({
      body: mrqXml({ ref: "C1", cid: PENDANT, dty: "3", mty: "ME", stc: "10" }),
    });
    expect(reply.status).toBe(401);
    expect(replyHeader(reply, "WWW-Authenticate")).toMatch(
      /^Digest realm="test-realm", nonce="[^"]+", algorithm=MD5, qop="auth"$/,
    );
    expect(events(PENDANT).filter((e) => e.event_id.startsWith("C1."))).toEqual([]);
  });

  it("a pendant call over UDP is logged as call.manual before the 200 OK, and raises the call alert", async () => {
    const u = await unit("udp", PENDANT);
    const { bytes, reply } = await u.message({
      body: mrqXml({
        ver: "01.00",
        ref: "A1001",
        mty: "ME",
        cid: PENDANT,
        dty: "3",
        did: "1",
        stc: "10",
        pri: "1",
      }),
      password: SECRETS[PENDANT],
    });
    expect(reply.status).toBe(200);
    expect(replyHeader(reply, "Content-Type")).toBe("application/scaip+xml");
    expect(reply.mrs).toEqual({ ref: "A1001", snu: 0 });
    // RFC 3261 §8.2.6.2: Via, From, Call-ID, CSeq copied; To copied with a tag.
    const req = parseReply(
      Buffer.from(bytes.toString().replace(/^MESSAGE \S+ SIP\/2.0/, "SIP/2.0 000 request")),
    );
    for (const h of ["Via", "From", "Call-ID", "CSeq"])
      expect(replyHeader(reply, h)).toBe(replyHeader(req, h));
    expect(replyHeader(reply, "To")).toMatch(
      new RegExp(`^${replyHeader(req, "To")!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")};tag=\\w+$`),
    );
    // The answer comes after the commit: the event is in the log when the 200 arrives.
    const logged = events(PENDANT).filter((e) => e.event_id.startsWith("A1001."));
    expect(logged.map((e) => e.type)).toEqual(["call.manual"]);
    const alert = await eventually(
      () =>
        t.gateway.db
          .prepare(
            "SELECT priority, state FROM alerts WHERE rule_id = 'pendant-call' AND device_id = ? AND open = 1",
          )
          .get(PENDANT) as { priority: string; state: string } | undefined,
    );
    expect(alert?.priority).toBe("high");
  });

  it("a bed exit over TCP with compact header names and a three-digit code is logged", async () => {
    const u = await unit("tcp", MAT);
    const { reply } = await u.message({
      body: mrqXml({ ref: "B2001", cid: MAT, dty: "0012", mty: "ME", stc: "010", lco: "012" }),
      password: SECRETS[MAT],
      compact: true,
    });
    expect(reply.status).toBe(200);
    expect(reply.mrs).toEqual({ ref: "B2001", snu: 0 });
    expect(
      events(MAT)
        .filter((e) => e.event_id.startsWith("B2001."))
        .map((e) => e.type),
    ).toEqual(["bed.exit"]);
  });

  it("a retransmission (same ref, Call-ID and CSeq) gets the same answer and makes no second event", async () => {
    for (const transport of ["udp", "tcp"] as const) {
      const u = await unit(transport, PENDANT);
      const ref = `R${transport}1`;
      const body = mrqXml({ ref, cid: PENDANT, dty: "0003", mty: "ME", stc: "0010" });
      const callId = `retransmit-${transport}@unit`;
      const first = await u.message({ body, callId, password: SECRETS[PENDANT] });
      const again = await u.raw(first.bytes);
      expect(again?.raw.equals(first.reply.raw)).toBe(true);
      // A new transaction for the same message (the unit's own repeat, same Call-ID): the log dedupes.
      const repeat = await u.message({ body, callId, password: SECRETS[PENDANT] });
      expect(repeat.reply.mrs).toEqual({ ref, snu: 0 });
      expect(events(PENDANT).filter((e) => e.event_id.startsWith(`${ref}.`))).toHaveLength(1);
    }
  });

  it("heartbeats (PI) keep a controller online and their absence turns it offline", async () => {
    const u = await unit("udp", MAT);
    const beat = async (n: number) => {
      const { reply } = await u.message({
        body: mrqXml({ ref: `P${n}`, cid: MAT, dty: "12", mty: "PI" }),
        password: SECRETS[MAT],
      });
      expect(reply.mrs).toEqual({ ref: `P${n}`, snu: 0 });
    };
    await beat(1);
    expect(t.gateway.presence.status(MAT).online).toBe(true);
    // Three heartbeats 0.8 s apart span more than the 2 s window; each resets it.
    for (let i = 2; i <= 4; i++) {
      await new Promise((r) => setTimeout(r, 800));
      await beat(i);
      t.gateway.presence.supervise();
      expect(t.gateway.presence.status(MAT).online).toBe(true);
    }
    expect(events(MAT).filter((e) => e.type === "device.heartbeat").length).toBeGreaterThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 2300));
    t.gateway.presence.supervise();
    expect(t.gateway.presence.status(MAT).online).toBe(false);
    const offline = await eventually(
      () =>
        t.gateway.db
          .prepare("SELECT type FROM events WHERE device_id = ? AND type = 'device.offline'")
          .get(MAT) as { type: string } | undefined,
    );
    expect(offline?.type).toBe("device.offline");
  });

  it("malformed XML is answered 200 with mrs snu 2 and kept as a dead letter", async () => {
    const u = await unit("udp", PENDANT);
    const body = `<?xml version="1.0"?><mrq><ref>M1</ref><cid>${PENDANT}</cid><dty>3</mrq>`;
    const { reply } = await u.message({ body, password: SECRETS[PENDANT] });
    expect(reply.status).toBe(200);
    expect(reply.mrs?.snu).toBe(2);
    const dead = deadLetters(PENDANT).find((d) => d.payload?.toString() === body);
    expect(dead?.code).toBe("bad_xml");

    const bomb = `<?xml version="1.0"?><!DOCTYPE mrq [<!ENTITY a "aaaa">]><mrq><ref>M2</ref><cid>${PENDANT}</cid><dty>3</dty><stc>&a;</stc></mrq>`;
    const refused = await u.message({ body: bomb, password: SECRETS[PENDANT] });
    expect(refused.reply.mrs?.snu).toBe(2);
    expect(deadLetters(PENDANT).some((d) => d.payload?.toString() === bomb && d.code === "bad_xml")).toBe(
      true,
    );
  });

  it("an mrq without a mandatory element is answered snu 7 with its ref, and dead-lettered", async () => {
    const u = await unit("tcp", PENDANT);
    const body = mrqXml({ ref: "M3", cid: PENDANT, dty: "3", mty: "ME" });
    const { reply } = await u.message({ body, password: SECRETS[PENDANT] });
    expect(reply.mrs).toMatchObject({ ref: "M3", snu: 7 });
    expect(deadLetters(PENDANT).find((d) => d.payload?.toString() === body)?.code).toBe("bad_schema");
  });

  it("a status code the profile does not map is kept as a dead letter and answered not treated (snu 5)", async () => {
    const u = await unit("udp", PENDANT);
    const { reply } = await u.message({
      body: mrqXml({ ref: "U1", cid: PENDANT, dty: "3", mty: "RE", stc: "0093" }),
      password: SECRETS[PENDANT],
    });
    expect(reply.mrs).toMatchObject({ ref: "U1", snu: 5 });
    const dead = deadLetters(PENDANT).find((d) => d.payload?.toString().includes('"scaipRef":"U1"'));
    expect(dead?.code).toBe("unknown_event");
  });

  it("an oversized body is refused with 413 over UDP and TCP", async () => {
    const body = mrqXml({ ref: "O1", cid: PENDANT, dty: "3", mty: "ME", stc: "10", ite: "x".repeat(1500) });
    for (const transport of ["udp", "tcp"] as const) {
      const u = await unit(transport, PENDANT);
      const reply = await u.raw(u.request({ body }));
      expect(reply?.status).toBe(413);
    }
    expect(events(PENDANT).filter((e) => e.event_id.startsWith("O1."))).toEqual([]);
  });

  it("a body that is not application/scaip+xml is refused with 415", async () => {
    const u = await unit("udp", PENDANT);
    const reply = await u.raw(
      u.request({
        body: mrqXml({ ref: "T1", cid: PENDANT, dty: "3", stc: "10" }),
        contentType: "text/plain",
      }),
    );
    expect(reply?.status).toBe(415);
    expect(reply && replyHeader(reply, "Accept")).toBe("application/scaip+xml");
  });

  it("a request without a Call-ID is refused with 400", async () => {
    const u = await unit("udp", PENDANT);
    const bytes = u.request({ body: mrqXml({ ref: "S1", cid: PENDANT, dty: "3", stc: "10" }) });
    const broken = Buffer.from(bytes.toString().replace(/\r\nCall-ID: [^\r]*/, ""));
    const reply = await u.raw(broken);
    expect(reply?.status).toBe(400);
  });

  it("over TCP, a request without Content-Length gets 400 and the connection is closed", async () => {
    const u = await unit("tcp", PENDANT);
    const bytes = u.request({ body: mrqXml({ ref: "S2", cid: PENDANT, dty: "3", stc: "10" }) });
    const reply = await u.raw(Buffer.from(bytes.toString().replace(/\r\nContent-Length: \d+/, "")));
    expect(reply?.status).toBe(400);
    expect(reply && replyHeader(reply, "Warning")).toMatch(/Content-Length is required/);
    expect(await u.raw(u.request({ body: "x" }), 300)).toBeNull();
  });

  it("an unknown controller is refused with 403 and a security-log record", async () => {
    const u = await unit("udp", "4670009999");
    const { reply } = await u.message({
      body: mrqXml({ ref: "X1", cid: "4670009999", dty: "3", stc: "10" }),
      password: "guessed-secret",
    });
    expect(reply.status).toBe(403);
    expect(refusals("4670009999")[0]?.detail.reason).toMatch(/unknown controller/);
  });

  it("a disabled controller is refused with 403 and a security-log record", async () => {
    const u = await unit("tcp", DISABLED);
    const { reply } = await u.message({
      body: mrqXml({ ref: "D1", cid: DISABLED, dty: "3", stc: "10" }),
      password: SECRETS[DISABLED],
    });
    expect(reply.status).toBe(403);
    expect(refusals(DISABLED)[0]?.detail.reason).toBe("controller disabled");
    expect(events(DISABLED)).toEqual([]);
  });

  it("a wrong password is refused with 403, logged, and nothing is ingested", async () => {
    const u = await unit("udp", PENDANT);
    const { reply } = await u.message({
      body: mrqXml({ ref: "W1", cid: PENDANT, dty: "3", stc: "10" }),
      password: "not-the-secret",
    });
    expect(reply.status).toBe(403);
    expect(refusals(PENDANT).some((r) => r.detail.reason === "digest wrong_response")).toBe(true);
    expect(events(PENDANT).filter((e) => e.event_id.startsWith("W1."))).toEqual([]);
  });

  it("a controller cannot send as another: an mrq whose cid is not the authenticated one is refused", async () => {
    const u = await unit("udp", PENDANT);
    const { reply } = await u.message({
      body: mrqXml({ ref: "F1", cid: MAT, dty: "12", stc: "10" }),
      password: SECRETS[PENDANT],
    });
    expect(reply.status).toBe(403);
    expect(events(MAT).filter((e) => e.event_id.startsWith("F1."))).toEqual([]);
  });

  it("/readyz shows the receiver with its ports", async () => {
    const res = await fetch(`${t.httpUrl}/readyz`);
    const body = (await res.json()) as {
      checks: { name: string; ok: boolean; detail: Record<string, unknown> }[];
    };
    const scaip = body.checks.find((c) => c.name === "scaip");
    expect(scaip).toMatchObject({ ok: true, detail: { enabled: true, udp: udpPort, tcp: tcpPort } });
  });
});
