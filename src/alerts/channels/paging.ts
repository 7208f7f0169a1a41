/**
 * Paging to DECT handsets and pagers through the site's paging system over ESPA 4.4.4.
 *
 * Most Danish nursing homes already run a DECT system (Ascom, Spectralink, Mitel) whose messaging
 * server takes ESPA 4.4.4 calls, usually through a serial device server on the LAN. A handset has a
 * call number; config maps numbers to a person (a staff token) or to a role at a site or units.
 *
 * ESPA is one-way: the paging system's ACK says it took the call, not that a person read it. So a
 * page is reported `delivered` with `toPerson: false`, the alert stays "undelivered" for the ladder,
 * and it keeps escalating until somebody accepts it on the console, a push action or a presence
 * button. A page the link cannot carry (NAKs and timeouts exhausted, link down past the page's
 * deadline) is reported `failed`; while the link is down `health()` is false and the ladder skips
 * paging at once.
 */
import { z } from "zod";
import type { Logger } from "../../log.js";
import type { StaffIdentity } from "../../staff/protocol.js";
import type { AlertView } from "../model.js";
import {
  type AlertChannel,
  type Audience,
  type ChannelHealth,
  type ChannelReporter,
  type Delivery,
  inAudience,
  type Recipient,
} from "./channel.js";
import {
  CHARSETS,
  decodeText,
  type EspaBlock,
  type EspaRecord,
  encodeBlock,
  encodeFitted,
  encodeText,
  HEADER,
  RECORD,
  recordValue,
} from "./espa/framing.js";
import { EspaLink } from "./espa/link.js";
import { type EspaTransport, serialTransport, tcpTransport } from "./espa/transport.js";

const Id = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, - and _ (max 64)");
/** ESPA record values other than the display text are digits (§4.3). */
const Digits = z.string().regex(/^[0-9]{1,8}$/, "digits");

const PriorityCoding = z.strictObject({
  /** Shown first on the display, so a glance tells a fall from a battery warning. */
  marker: z.string().max(8),
  /** Record 3 beep coding; omitted when unset (the paging system's default). */
  beep: Digits.optional(),
  /** Record 4 call type. */
  callType: Digits.optional(),
  /** Record 5 number of transmissions. */
  transmissions: Digits.optional(),
  /** Record 6 priority. */
  priority: Digits.optional(),
});

export const PagingAddress = z.strictObject({
  /** The handset's or pager's call number (record 1). */
  call: z.string().regex(/^[0-9]{1,20}$/, "a call number of digits"),
  /** For the audit: "night nurse", "Anna". Never a resident. */
  name: z.string().min(1).max(64),
  /** The staff token id of the person who carries this handset. */
  staff: z.string().optional(),
  /** A handset that belongs to a role instead of a person (default "staff"). */
  role: z.enum(["staff", "nurse"]).optional(),
  site: Id,
  /** The units a role handset covers (default: every unit of the site). */
  units: z.array(Id).min(1).optional(),
});
export type PagingAddress = z.infer<typeof PagingAddress>;

export const PagingOptions = z.strictObject({
  transport: z.discriminatedUnion("kind", [
    z.strictObject({
      kind: z.literal("tcp"),
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      connectTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
    }),
    z.strictObject({ kind: z.literal("serial"), path: z.string().min(1) }),
  ]),
  /** The gateway's station address (§3.1 recommends '1' for the calling system). */
  ownAddress: z
    .string()
    .regex(/^[0-9]$/)
    .default("1"),
  /** The paging system's station address ('2' per §3.1). */
  pagingAddress: z
    .string()
    .regex(/^[0-9]$/)
    .default("2"),
  /**
   * Characters of display text per page. 48 is what the Avaya/Nortel DECT Messenger documents for
   * "traditional DECT" handsets (160 on SIP-DECT); set what the site's handsets show.
   */
  displayLength: z.number().int().min(8).max(160).default(48),
  /**
   * Code page of the display text. ESPA 4.4.4 §2.1-2.2 is 7-bit ISO 646 with even parity, where the
   * Danish variant puts Æ Ø Å æ ø å on [ \ ] { | }; an 8-bit ISO 8859-1 byte cannot pass a 7E1 line.
   * So the Danish variant is the default; "latin1" for systems set to ISO 8859-1 on an 8-bit line.
   */
  charset: z.enum(CHARSETS).default("iso646-dk"),
  /**
   * Records per alert priority. ESPA leaves the meaning of the digits to the paging system (§4.3
   * reserves '0'); defaults send only record 6 priority and record 5 transmissions, the two whose
   * readings agree across the systems' ESPA guides, and leave beep and call type to the system.
   */
  priorities: z
    .strictObject({
      high: PriorityCoding.prefault({ marker: "!!!", priority: "2", transmissions: "3" }),
      medium: PriorityCoding.prefault({ marker: "!!", priority: "1", transmissions: "2" }),
      low: PriorityCoding.prefault({ marker: "!", priority: "1", transmissions: "1" }),
      info: PriorityCoding.prefault({ marker: "i", priority: "1", transmissions: "1" }),
    })
    .prefault({}),
  /**
   * Whether re-notifications (nobody accepted yet) page again; a new level always pages. Off by
   * default: a handset beeps per page, and the ladder's next level pages again anyway.
   */
  repeatOnRenotify: z.boolean().default(false),
  /** Wait for the answer to an enquiry or a block. */
  responseTimeoutMs: z.number().int().min(50).max(30_000).default(3000),
  /** Retransmissions of a page after a NAK or no answer. */
  blockRetries: z.number().int().min(0).max(10).default(3),
  /** Repeated selections when the paging system says it is not ready. */
  selectRetries: z.number().int().min(0).max(10).default(3),
  notReadyDelayMs: z.number().int().min(0).max(10_000).default(500),
  /** Idle time after which the paging system is polled (supervision). */
  pollIntervalMs: z.number().int().min(100).max(300_000).default(10_000),
  /** Missed polls after which the connection is reopened. */
  reconnectAfterMisses: z.number().int().min(1).max(100).default(3),
  reconnectMinMs: z.number().int().min(10).default(500),
  reconnectMaxMs: z.number().int().min(10).default(30_000),
  /** A page not on its way within this time (link down, queue) fails, so the ladder moves on. */
  pageTimeoutMs: z.number().int().min(100).max(600_000).default(20_000),
  /** Sends of a page again after the link dropped under it (see link.ts for why). */
  maxResends: z.number().int().min(0).max(5).default(1),
  /**
   * Record 7 call status, for systems that return status information (§4.2 header '2'): wait this
   * long after the ACK for it and put it in the receipt (0: report the ACK at once); `failOn` lists
   * statuses that make the attempt a failure instead (what they are is the system's own table).
   */
  callStatus: z
    .strictObject({
      awaitMs: z.number().int().min(0).max(60_000).default(0),
      failOn: z.array(Digits).default([]),
    })
    .prefault({}),
  addresses: z.array(PagingAddress).min(1),
});
export type PagingOptions = z.infer<typeof PagingOptions>;

/** Sites as the configuration has them (ids only needed). */
export interface PagingSite {
  id: string;
  units: readonly { id: string }[];
}

/** Cross-references zod cannot check; paths relative to the paging options. */
export function pagingProblems(
  options: PagingOptions,
  sites: readonly PagingSite[],
  staff?: readonly Pick<StaffIdentity, "id" | "role" | "sites">[],
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const siteUnits = new Map(sites.map((s) => [s.id, new Set(s.units.map((u) => u.id))]));
  const calls = new Map<string, number>();
  options.addresses.forEach((a, i) => {
    const path = ["addresses", i];
    const units = siteUnits.get(a.site);
    if (!units) problems.push({ path: [...path, "site"], message: `unknown site "${a.site}"` });
    a.units?.forEach((u, j) => {
      if (units && !units.has(u))
        problems.push({ path: [...path, "units", j], message: `unknown unit "${u}" in site "${a.site}"` });
    });
    const first = calls.get(a.call);
    if (first !== undefined)
      problems.push({
        path: [...path, "call"],
        message: `call number "${a.call}" is already used by addresses[${first}]`,
      });
    else calls.set(a.call, i);
    if (a.staff !== undefined && (a.role !== undefined || a.units !== undefined))
      problems.push({
        path: [...path, "staff"],
        message: "a personal handset takes its role and units from the staff token; remove role/units",
      });
    if (a.staff !== undefined && staff) {
      const s = staff.find((t) => t.id === a.staff);
      if (!s) problems.push({ path: [...path, "staff"], message: `unknown staff token "${a.staff}"` });
      else if (!s.sites.includes(a.site))
        problems.push({
          path: [...path, "site"],
          message: `staff "${a.staff}" does not work at site "${a.site}"`,
        });
      else if (s.role === "manager")
        problems.push({
          path: [...path, "staff"],
          message: `staff "${a.staff}" is a manager; managers are not paged`,
        });
    }
  });
  if (options.ownAddress === options.pagingAddress)
    problems.push({
      path: ["pagingAddress"],
      message: "the paging system needs an address other than ownAddress",
    });
  if (options.reconnectMaxMs < options.reconnectMinMs)
    problems.push({ path: ["reconnectMaxMs"], message: "must not be below reconnectMinMs" });
  return problems;
}

/**
 * The handset's text: priority marker, the alert's message (its rule template names room and
 * resident reference), room and resident where the message leaves them out, then the unit's name.
 * The most actionable part comes first because a handset shows the start of a long text and the
 * cut falls at the end. Only the pseudonymous resident reference ever goes on a page.
 */
export function composeText(alert: AlertView, unitName: string, marker: string): string {
  let text = marker ? `${marker} ${alert.message.da}` : alert.message.da;
  if (alert.room && !alert.message.da.includes(alert.room)) text += ` (${alert.room})`;
  if (alert.resident && !alert.message.da.includes(alert.resident)) text += ` ${alert.resident}`;
  return `${text} - ${unitName}`.replace(/\s+/g, " ").trim();
}

export interface PagingContext {
  options: PagingOptions;
  log: Logger;
  /** The identity behind a staff token id, for handsets that belong to a person. */
  staff(id: string): StaffIdentity | undefined;
  /** Another way to the paging system (a test harness); default from `options.transport`. */
  transport?: EspaTransport;
}

interface StatusWaiter {
  call: string;
  resolve(status: string | null): void;
}

export class PagingChannel implements AlertChannel {
  readonly name = "paging" as const;
  readonly renotifies: boolean;
  private readonly link: EspaLink;
  private readonly byCall: Map<string, PagingAddress>;
  private reporter: ChannelReporter | null = null;
  private readonly statusWaiters: StatusWaiter[] = [];
  private readonly transport: EspaTransport;

  constructor(private readonly ctx: PagingContext) {
    const o = ctx.options;
    this.renotifies = o.repeatOnRenotify;
    this.byCall = new Map(o.addresses.map((a) => [a.call, a]));
    this.transport =
      ctx.transport ??
      (o.transport.kind === "tcp"
        ? tcpTransport({
            host: o.transport.host,
            port: o.transport.port,
            connectTimeoutMs: o.transport.connectTimeoutMs,
          })
        : serialTransport({ path: o.transport.path }));
    this.link = new EspaLink(this.transport, {
      ownAddress: o.ownAddress,
      peerAddress: o.pagingAddress,
      responseTimeoutMs: o.responseTimeoutMs,
      blockRetries: o.blockRetries,
      selectRetries: o.selectRetries,
      notReadyDelayMs: o.notReadyDelayMs,
      pollIntervalMs: o.pollIntervalMs,
      reconnectAfterMisses: o.reconnectAfterMisses,
      reconnectMinMs: o.reconnectMinMs,
      reconnectMaxMs: o.reconnectMaxMs,
    });
  }

  start(reporter: ChannelReporter): void {
    this.reporter = reporter;
    const log = this.ctx.log;
    this.link.on("up", () => {
      log.info({ transport: this.transport.description }, "paging link up");
      this.reporter?.healthChanged();
    });
    this.link.on("down", (reason) => {
      log.warn({ transport: this.transport.description, reason }, "paging link down");
      this.reporter?.healthChanged();
    });
    this.link.on("block", (b) => this.onBlock(b));
    this.link.on("error", (err) => log.error({ err: err.message }, "paging link failed"));
    this.link.start();
  }

  async stop(): Promise<void> {
    this.reporter = null;
    for (const w of this.statusWaiters.splice(0)) w.resolve(null);
    await this.link.stop();
  }

  health(): ChannelHealth {
    return this.link.up
      ? { ok: true }
      : { ok: false, detail: `paging link (${this.transport.description}): ${this.link.reason}` };
  }

  reach(audience: Audience, _alert: AlertView): Recipient[] {
    const out: Recipient[] = [];
    for (const a of this.ctx.options.addresses) {
      if (a.site !== audience.siteId) continue;
      if (a.staff !== undefined) {
        const person = this.ctx.staff(a.staff);
        if (!person || !inAudience(person, audience)) continue;
        out.push({ id: a.call, name: `DECT ${a.call} (${a.name})`, staffId: person.id });
      } else {
        // A role handset answers to the same rules as a person with that role and scope.
        const holder = {
          id: `paging:${a.call}`,
          role: a.role ?? "staff",
          sites: [a.site],
          units: a.units ?? null,
        };
        if (inAudience(holder, audience)) out.push({ id: a.call, name: `DECT ${a.call} (${a.name})` });
      }
    }
    return out;
  }

  deliver(d: Delivery): void {
    const reporter = this.reporter;
    if (!reporter) return;
    const a = this.byCall.get(d.recipient.id);
    if (!a) {
      reporter.failed(d.attemptId, `no paging address with call number ${d.recipient.id}`, { gone: true });
      return;
    }
    const o = this.ctx.options;
    const marker = o.priorities[d.alert.priority].marker;
    const frame = encodeBlock(
      this.callBlock(a.call, composeText(d.alert, d.place.unit, marker), d.alert.priority),
    );
    const id = d.attemptId;
    this.ctx.log.debug({ attemptId: id, call: a.call, alertId: d.alert.id }, "paging");
    this.link
      .send(frame, {
        deadline: Date.now() + o.pageTimeoutMs,
        maxResends: o.maxResends,
        label: a.call,
        onResend: (detail) => this.reporter?.retrying(id, detail),
      })
      .then(async (r) => {
        if (!r.ok) {
          this.reporter?.failed(id, r.detail);
          return;
        }
        if (o.callStatus.awaitMs === 0) {
          this.reporter?.delivered(id, r.detail, { toPerson: false });
          return;
        }
        const status = await this.awaitStatus(a.call, o.callStatus.awaitMs);
        if (status === null)
          this.reporter?.delivered(id, `${r.detail}; no call status within ${o.callStatus.awaitMs} ms`, {
            toPerson: false,
          });
        else if (o.callStatus.failOn.includes(status))
          this.reporter?.failed(id, `${r.detail}, but the paging system reported call status ${status}`);
        else this.reporter?.delivered(id, `${r.detail}; call status ${status}`, { toPerson: false });
      })
      .catch((err: Error) => this.ctx.log.error({ err: err.message, attemptId: id }, "paging report failed"));
  }

  /** Record 1 call address, 2 display text within the display length, 3-6 from the priority. */
  callBlock(call: string, text: string, priority: AlertView["priority"]): EspaBlock {
    const o = this.ctx.options;
    const c = o.priorities[priority];
    const rec = (type: string, v: string): EspaRecord => ({ type, data: encodeText(v, "ascii") });
    const records: EspaRecord[] = [
      rec(RECORD.callAddress, call),
      { type: RECORD.displayMessage, data: encodeFitted(text, o.charset, o.displayLength).bytes },
    ];
    if (c.beep) records.push(rec(RECORD.beepCoding, c.beep));
    if (c.callType) records.push(rec(RECORD.callType, c.callType));
    if (c.transmissions) records.push(rec(RECORD.transmissions, c.transmissions));
    if (c.priority) records.push(rec(RECORD.priority, c.priority));
    return { header: HEADER.callToPager, records };
  }

  private awaitStatus(call: string, ms: number): Promise<string | null> {
    return new Promise((resolve) => {
      const w: StatusWaiter = {
        call,
        resolve: (s) => {
          clearTimeout(timer);
          const i = this.statusWaiters.indexOf(w);
          if (i >= 0) this.statusWaiters.splice(i, 1);
          resolve(s);
        },
      };
      const timer = setTimeout(() => w.resolve(null), ms);
      this.statusWaiters.push(w);
    });
  }

  private onBlock(b: EspaBlock): void {
    if (b.header !== HEADER.statusInformation) return;
    const call = recordValue(b, RECORD.callAddress);
    const status = recordValue(b, RECORD.callStatus);
    if (!call || !status) return;
    const callText = decodeText(call, "ascii");
    const statusText = decodeText(status, "ascii");
    this.ctx.log.debug({ call: callText, status: statusText }, "paging call status");
    // Status blocks carry no attempt id: the oldest page to that number still waiting takes it.
    this.statusWaiters.find((w) => w.call === callText)?.resolve(statusText);
  }
}
