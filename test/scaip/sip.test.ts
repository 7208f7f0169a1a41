/**
 * The SIP parser, response writer, mrq reader and digest check by themselves, on the message shapes
 * RFC 3261 allows and units send: compact and folded headers, several Via values, Content-Length
 * framing over a stream that arrives in pieces, stale and forged nonces.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DigestAuth, ha1, parseDigest } from "../../src/scaip/digest.js";
import { type MrqError, mrs, parseMrq, toScaipJson } from "../../src/scaip/mrq.js";
import { parseDatagram, SipError, StreamFramer, writeResponse } from "../../src/scaip/sip.js";

const LIMITS = { maxHeaderBytes: 2048, maxBodyBytes: 512, maxHeaders: 20 };
const md5 = (s: string) => createHash("md5").update(s).digest("hex");

function request(headers: string[], body = "hello"): Buffer {
  return Buffer.from(`MESSAGE sip:arc@example.org SIP/2.0\r\n${headers.join("\r\n")}\r\n\r\n${body}`);
}
const BASE = [
  "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa1",
  "From: <sip:4670001001@unit>;tag=f1",
  "To: <sip:arc@example.org>",
  "Call-ID: c1@unit",
  "CSeq: 7 MESSAGE",
];

describe("SIP requests", () => {
  it("reads compact and folded headers and keeps every Via in order", () => {
    const req = parseDatagram(
      request([
        "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa1",
        "f: <sip:4670001001@unit>",
        " ;tag=f1",
        "t: <sip:arc@example.org>",
        "i: c1@unit",
        "CSEQ: 7 MESSAGE",
        "c: application/scaip+xml",
        "l: 5",
      ]),
      LIMITS,
    );
    expect(req.headers.get("via")).toEqual([
      "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp1",
      "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa1",
    ]);
    expect(req.headers.get("from")).toEqual(["<sip:4670001001@unit> ;tag=f1"]);
    expect(req.headers.get("content-type")).toEqual(["application/scaip+xml"]);
    expect(req.body.toString()).toBe("hello");
    const res = writeResponse(req, { status: 200 }, "test").toString();
    expect(res).toMatch(
      /^SIP\/2.0 200 OK\r\nVia: SIP\/2.0\/UDP 10.0.0.1;branch=z9hG4bKp1\r\nVia: SIP\/2.0\/UDP 10.0.0.5/,
    );
    expect(res).toMatch(/\r\nTo: <sip:arc@example.org>;tag=[0-9a-f]{16}\r\n/);
    expect(res).toContain("\r\nCSeq: 7 MESSAGE\r\n");
    // The same request gets the same tag: a retransmission's answer is byte for byte the first one.
    expect(writeResponse(req, { status: 200 }, "test").toString()).toBe(res);
  });

  it("truncates a UDP body to Content-Length and refuses one longer than the datagram", () => {
    expect(parseDatagram(request([...BASE, "Content-Length: 3"]), LIMITS).body.toString()).toBe("hel");
    expect(() => parseDatagram(request([...BASE, "Content-Length: 9"]), LIMITS)).toThrow(/larger than/);
  });

  it.each([
    ["a missing Call-ID", BASE.filter((h) => !h.startsWith("Call-ID")), 400],
    ["a CSeq for another method", [...BASE.slice(0, 4), "CSeq: 7 INVITE"], 400],
    ["a body over the limit", [...BASE, "Content-Length: 513"], 413],
  ] as const)("refuses %s with %i", (_name, headers, status) => {
    try {
      parseDatagram(request([...headers], "x".repeat(600)), LIMITS);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SipError);
      expect((err as SipError).status).toBe(status);
    }
  });

  it("frames a stream by Content-Length, across chunks, skipping CRLF keep-alives", () => {
    const one = request([...BASE, "Content-Length: 5"]);
    const two = request([...BASE.slice(0, 4), "CSeq: 8 MESSAGE", "Content-Length: 5"], "world");
    const stream = Buffer.concat([Buffer.from("\r\n\r\n"), one, two]);
    const framer = new StreamFramer(LIMITS);
    const got = [];
    for (let i = 0; i < stream.length; i += 7) got.push(...framer.push(stream.subarray(i, i + 7)));
    expect(got.map((r) => r.body.toString())).toEqual(["hello", "world"]);
    expect(() => new StreamFramer(LIMITS).push(request(BASE))).toThrow(/Content-Length is required/);
  });
});

describe("mrq and mrs", () => {
  it("keeps codes as sent, nested location elements, and derives the eventId from ref and Call-ID", () => {
    const m = parseMrq(
      Buffer.from(
        "<?xml version='1.0'?><mrq><ref>A1</ref><cid>467</cid><dty>3</dty><stc>010</stc><lge><geo>59.9,10.7</geo></lge></mrq>",
      ),
    );
    expect(m).toMatchObject({ ref: "A1", cid: "467", dty: "3", stc: "010", mty: "ME" });
    expect(m.elements["lge.geo"]).toBe("59.9,10.7");
    const json = JSON.parse(toScaipJson(m, "call-1").toString());
    expect(json.ref).toMatch(/^A1\.[0-9a-f]{8}$/);
    expect(JSON.parse(toScaipJson(m, "call-2").toString()).ref).not.toBe(json.ref);
  });

  it.each([
    ["<mrq><ref>A</ref><cid>1</cid>", 2],
    ["<mrs><ref>A</ref></mrs>", 2],
    ["<mrq><ref>A</ref><dty>3</dty><stc>10</stc></mrq>", 7],
    ["<mrq><ref>A</ref><cid>1</cid><dty>3</dty><mty>XX</mty><stc>1</stc></mrq>", 3],
    ["<mrq><ref>A</ref><cid>1</cid><dty>00003</dty><stc>1</stc></mrq>", 3],
  ])("%s is snu %i", (xml, snu) => {
    expect(() => parseMrq(Buffer.from(xml))).toThrow(expect.objectContaining({ snu }) as MrqError);
  });

  it("escapes what it echoes", () => {
    expect(mrs("A1", 3, 'bad <"x">').toString()).toContain("<ste>bad &lt;&quot;x&quot;&gt;</ste>");
  });
});

describe("digest", () => {
  let now = 1_000_000_000_000;
  const auth = new DigestAuth({
    realm: "r",
    nonceTtlSec: 60,
    ha1For: (u) => (u === "467" ? ha1("467", "r", "pw") : undefined),
    now: () => now,
  });
  const answer = (nonce: string, password: string, username = "467") => {
    const h1 = md5(`${username}:r:${password}`);
    const response = md5(`${h1}:${nonce}:00000001:cn:auth:${md5("MESSAGE:sip:arc@x")}`);
    return `Digest username="${username}", realm="r", nonce="${nonce}", uri="sip:arc@x", response="${response}", qop=auth, nc=00000001, cnonce="cn"`;
  };
  const nonceOf = (c: string) => parseDigest(c)!.nonce!;

  it("accepts the right password and refuses a wrong one, an unknown user and a forged nonce", () => {
    const nonce = nonceOf(auth.challenge());
    expect(auth.verify("MESSAGE", answer(nonce, "pw"))).toEqual({ ok: true, username: "467" });
    expect(auth.verify("MESSAGE", answer(nonce, "wrong"))).toMatchObject({
      ok: false,
      reason: "wrong_response",
    });
    expect(auth.verify("MESSAGE", answer(nonce, "pw", "468"))).toMatchObject({
      ok: false,
      reason: "unknown_user",
    });
    expect(auth.verify("MESSAGE", answer(`${nonce.split(".")[0]}.forged`, "pw"))).toMatchObject({
      reason: "bad_nonce",
    });
    expect(auth.verify("MESSAGE", undefined)).toEqual({ ok: false, reason: "missing" });
  });

  it("calls an old nonce stale, so the unit is asked again rather than refused", () => {
    const nonce = nonceOf(auth.challenge());
    now += 61_000;
    expect(auth.verify("MESSAGE", answer(nonce, "pw"))).toEqual({ ok: false, reason: "stale" });
    expect(auth.challenge(true)).toMatch(/stale=true$/);
  });
});
