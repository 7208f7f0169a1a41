/**
 * The SCAIP application messages: `<mrq>` (message request, unit -> receiver) and `<mrs>` (message
 * response). Element names and result codes follow SS 91100:2014 / CLC/TS 50134-9 as published in
 * open implementations (the standards themselves are sold by SIS and CENELEC):
 * - caruhome/scaip-gateway `scaip_gateway/xml/scaip.py` (the mrq/mrs schema: ref, ver, sco, cha,
 *   mty ME|RE|IN|PI, hbo, cid, dty, did, dco, dte, crd, stc, stt, pri, lco, lva, lge{geo,tim,gga},
 *   lte, ico, ite, ame; mrs ref, snu, ste, cve, mre, cre, tnu, hbi) and `spec.py` (snu 0 OK,
 *   1 message too long, 2 invalid format, 3 wrong data content, 4 hold, 5 not treated, 6 busy,
 *   7 mandatory tag missing; the dty and stc code tables);
 * - iotcomms.io "SIP Message & SCAIP" (MESSAGE with application/scaip+xml; SS 91100:2014, CENELEC 50134).
 *
 * The XML is read with fast-xml-parser with entity and DOCTYPE processing off: a body that declares a
 * DOCTYPE or an entity is refused before parsing (no entity expansion, no external resources), and
 * the body is bounded by the SIP layer before it gets here.
 */
import { createHash } from "node:crypto";
import { XMLParser, XMLValidator } from "fast-xml-parser";

/** SCAIP mrs result numbers (snu). */
export const SNU = {
  ok: 0,
  messageTooLong: 1,
  invalidFormat: 2,
  wrongDataContent: 3,
  notTreated: 5,
  busy: 6,
  mandatoryTagMissing: 7,
} as const;
export type Snu = (typeof SNU)[keyof typeof SNU];

export class MrqError extends Error {
  constructor(
    readonly snu: Snu,
    message: string,
    /** The ref, when it could be read, for the mrs. */
    readonly ref: string | null = null,
  ) {
    super(message);
    this.name = "MrqError";
  }
}

export interface Mrq {
  ref: string;
  cid: string;
  dty: string;
  mty: "ME" | "IN" | "RE" | "PI";
  stc?: string;
  /** Every simple element of the request (lge's children as lge.geo, lge.tim, lge.gga). */
  elements: Record<string, string>;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  processEntities: false,
  htmlEntities: false,
  trimValues: true,
});

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ELEMENT = /^[a-z]{3}$/;
/** The schema's ref is 1-16 letters and digits; a little more is taken, what an eventId allows. */
const REF = /^[0-9A-Za-z_-]{1,32}$/;
const CODE = /^\d{1,4}$/;
const MTY = new Set(["ME", "IN", "RE", "PI"]);

/** Parse and check an mrq body; throws MrqError with the snu the mrs should carry. */
export function parseMrq(body: Buffer): Mrq {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw new MrqError(SNU.invalidFormat, "body is not valid UTF-8");
  }
  if (/<!DOCTYPE|<!ENTITY/i.test(text))
    throw new MrqError(SNU.invalidFormat, "DOCTYPE and entities are not accepted");
  const valid = XMLValidator.validate(text);
  if (valid !== true)
    throw new MrqError(SNU.invalidFormat, `not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  const doc = parser.parse(text) as Record<string, unknown>;
  const roots = Object.keys(doc);
  const root = doc.mrq;
  if (roots.length !== 1 || root === undefined)
    throw new MrqError(SNU.invalidFormat, "the root element is not <mrq>");
  const elements: Record<string, string> = {};
  if (root !== null && typeof root === "object") {
    for (const [name, value] of Object.entries(root as Record<string, unknown>)) {
      if (!ELEMENT.test(name)) continue;
      if (typeof value === "string") elements[name] = value;
      else if (Array.isArray(value))
        throw new MrqError(SNU.invalidFormat, `<${name}> appears more than once`);
      else if (value && typeof value === "object")
        for (const [child, v] of Object.entries(value as Record<string, unknown>))
          if (ELEMENT.test(child) && typeof v === "string") elements[`${name}.${child}`] = v;
    }
  }
  const ref = elements.ref ?? null;
  for (const tag of ["ref", "cid", "dty"] as const)
    if (!elements[tag]) throw new MrqError(SNU.mandatoryTagMissing, `<${tag}> is missing`, ref);
  if (!REF.test(ref!)) throw new MrqError(SNU.wrongDataContent, "<ref> is not 1-32 letters and digits", null);
  const mty = elements.mty ?? "ME";
  if (!MTY.has(mty)) throw new MrqError(SNU.wrongDataContent, `<mty> "${mty}" is not ME, IN, RE or PI`, ref);
  if (!CODE.test(elements.dty!)) throw new MrqError(SNU.wrongDataContent, "<dty> is not 1-4 digits", ref);
  if (elements.stc !== undefined && !CODE.test(elements.stc))
    throw new MrqError(SNU.wrongDataContent, "<stc> is not 1-4 digits", ref);
  if (mty !== "PI" && elements.stc === undefined)
    throw new MrqError(SNU.mandatoryTagMissing, `<stc> is missing in an ${mty} message`, ref);
  return {
    ref: ref!,
    cid: elements.cid!,
    dty: elements.dty!,
    mty: mty as Mrq["mty"],
    ...(elements.stc !== undefined ? { stc: elements.stc } : {}),
    elements,
  };
}

/** Keys of the profiles' JSON message that mean something other than an mrq element. */
const RESERVED = new Set(["ts", "dur", "bat", "rssi", "fw", "scaipRef"]);

/**
 * The mrq as the `scaip` channel's JSON message (devices/blocks.ts ScaipMessage), with every element
 * kept. `ref` there is the eventId: the SCAIP ref joined to a hash of the SIP Call-ID. A retransmission
 * (same ref, same Call-ID) is the same event; a unit that restarts and numbers its refs from the start
 * again sends new Call-IDs, so its new alarms are new events and are never dropped as duplicates.
 */
export function toScaipJson(mrq: Mrq, callId: string): Buffer {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(mrq.elements)) if (!RESERVED.has(k)) out[k] = v;
  out.mty = mrq.mty;
  out.scaipRef = mrq.ref;
  out.ref = `${mrq.ref}.${createHash("sha256").update(callId).digest("hex").slice(0, 8)}`;
  return Buffer.from(JSON.stringify(out));
}

const XML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};
const escapeXml = (s: string) => s.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);

/** An mrs body. `ste` is a short status text (the schema allows 128 characters). */
export function mrs(ref: string | null, snu: Snu, ste?: string): Buffer {
  const parts = [`<ref>${escapeXml(ref ?? "")}</ref>`, `<snu>${snu}</snu>`];
  if (ste) parts.push(`<ste>${escapeXml(ste.slice(0, 128))}</ste>`);
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<mrs>${parts.join("")}</mrs>`);
}
