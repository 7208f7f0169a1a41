import { describe, expect, it } from "vitest";
import {
  bcc,
  decodeBlock,
  decodeText,
  ENQ,
  EOT,
  ETX,
  encodeBlock,
  encodeFitted,
  encodeText,
  LinkReader,
  NAK,
  SOH,
  STX,
} from "../../../src/alerts/channels/espa/framing.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const ascii = (s: string) => Buffer.from(s, "latin1");

describe("ESPA 4.4.4 framing", () => {
  it("computes the BCC as the XOR of header..ETX (vector from an NEC RS-232 manual using the same rule: 0x77)", () => {
    // The bytes between SOH and the check code of that manual's worked example.
    expect(bcc(hex("30 41 30 45 30 41 02 30 30 31 30 30 30 36 34 03"))).toBe(0x77);
    expect(bcc(new Uint8Array())).toBe(0);
  });

  it("encodes the Zenitel wiki's example call block byte for byte, with its BCC", () => {
    // SOH 1 STX 1 US 550 RS 2 US CALL ME 101 RS 3 US 3 RS 4 US 3 RS 5 US 3 RS 6 US 3 ETX (wiki.zenitel.com/wiki/ESPA_4.4.4)
    const body = hex(
      "31 02 31 1F 35 35 30 1E 32 1F 43 41 4C 4C 20 4D 45 20 31 30 31 1E 33 1F 33 1E 34 1F 33 1E 35 1F 33 1E 36 1F 33 03",
    );
    const frame = encodeBlock({
      header: "1",
      records: [
        { type: "1", data: ascii("550") },
        { type: "2", data: ascii("CALL ME 101") },
        { type: "3", data: ascii("3") },
        { type: "4", data: ascii("3") },
        { type: "5", data: ascii("3") },
        { type: "6", data: ascii("3") },
      ],
    });
    expect(frame[0]).toBe(SOH);
    expect(frame.subarray(1, frame.length - 1)).toEqual(body);
    // Even longitudinal parity including the BCC (§4.1): XOR over body and BCC is zero.
    expect(bcc(frame.subarray(1))).toBe(0);
    const back = decodeBlock(frame);
    expect(back.bccOk).toBe(true);
    expect(back.header).toBe("1");
    expect(back.records.map((r) => [r.type, r.data.toString("latin1")])).toEqual([
      ["1", "550"],
      ["2", "CALL ME 101"],
      ["3", "3"],
      ["4", "3"],
      ["5", "3"],
      ["6", "3"],
    ]);
  });

  it("detects a corrupted byte through the BCC", () => {
    const frame = encodeBlock({ header: "1", records: [{ type: "1", data: ascii("2301") }] });
    frame[6] = frame[6]! ^ 0x01;
    expect(decodeBlock(frame).bccOk).toBe(false);
  });

  it("refuses a record value with a control character in it (it would end the record)", () => {
    expect(() =>
      encodeBlock({ header: "1", records: [{ type: "2", data: Buffer.from([0x41, 0x1e]) }] }),
    ).toThrow();
  });

  it("maps Danish letters onto [ \\ ] { | } in the Danish ISO 646 variant and back", () => {
    const enc = encodeText("ÆØÅ æøå", "iso646-dk");
    expect(enc.toString("latin1")).toBe("[\\] {|}");
    expect(decodeText(enc, "iso646-dk")).toBe("ÆØÅ æøå");
    // The ASCII signs those positions replace cannot be sent as themselves.
    expect(encodeText("[a|b]", "iso646-dk").toString("latin1")).toBe("(a!b)");
  });

  it("keeps Danish letters as single ISO 8859-1 bytes in latin1 and strips accents where a code page lacks a letter", () => {
    expect([...encodeText("Åse", "latin1")]).toEqual([0xc5, 0x73, 0x65]);
    expect(encodeText("Café Müller", "iso646-dk").toString("latin1")).toBe("Cafe Muller");
    expect(encodeText("Ärzte Ö", "iso646-dk").toString("latin1")).toBe("[rzte \\");
    expect(encodeText("Søren", "ascii").toString("latin1")).toBe("S?ren");
    expect(encodeText("a\u0003b\nc", "latin1").toString("latin1")).toBe("a b c");
  });

  it("fits text to the display length without cutting a character's encoding in two", () => {
    expect(encodeFitted("Fald på stue 12", "iso646-dk", 7)).toEqual({ bytes: ascii("Fald p}"), cut: true });
    // "ß" becomes two bytes: with room for one only, it is left out whole.
    expect(encodeFitted("Straße", "iso646-dk", 5).bytes.toString("latin1")).toBe("Stra");
    expect(encodeFitted("Straße", "iso646-dk", 6).bytes.toString("latin1")).toBe("Strass");
    expect(encodeFitted("kort", "iso646-dk", 48)).toEqual({ bytes: ascii("kort"), cut: false });
  });

  it("reads link events from a stream split anywhere, taking the byte after ETX as BCC even when it looks like a control character", () => {
    // Choose a body whose BCC equals ENQ (0x05): the reader must not take it for an enquiry.
    let data = "A";
    let frame = encodeBlock({ header: "2", records: [{ type: "7", data: ascii(data) }] });
    for (let c = 0x20; frame[frame.length - 1] !== ENQ && c < 0x7f; c++) {
      data = `A${String.fromCharCode(c)}`;
      frame = encodeBlock({ header: "2", records: [{ type: "7", data: ascii(data) }] });
    }
    expect(frame[frame.length - 1]).toBe(ENQ);
    const stream = Buffer.concat([
      Buffer.from([EOT]),
      ascii("2"),
      Buffer.from([ENQ]),
      frame,
      ascii("1"),
      Buffer.from([NAK]),
    ]);
    const r = new LinkReader();
    const events = [];
    for (const byte of stream) events.push(...r.push(Buffer.from([byte])));
    expect(events.map((e) => e.kind)).toEqual(["eot", "enq", "block", "nak"]);
    expect(events[1]).toEqual({ kind: "enq", address: "2" });
    expect(events[3]).toEqual({ kind: "nak", prefix: "1" });
    const block = events[2]!;
    expect(block.kind === "block" && block.bccOk && block.block.records[0]!.data.toString("latin1")).toBe(
      data,
    );
  });

  it("tolerates a trailing RS before ETX, a slip some implementations make", () => {
    const body = Buffer.concat([ascii("1"), Buffer.from([STX]), ascii("1\x1f2301\x1e"), Buffer.from([ETX])]);
    const frame = Buffer.concat([Buffer.from([SOH]), body, Buffer.from([bcc(body)])]);
    const b = decodeBlock(frame);
    expect(b.bccOk).toBe(true);
    expect(b.records).toHaveLength(1);
  });
});
