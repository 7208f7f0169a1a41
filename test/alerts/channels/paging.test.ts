/**
 * The paging channel against a paging-system simulator over real TCP on 127.0.0.1 (and a real pty
 * for the serial path): framing on the wire, retries, supervision, reconnects, reach.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Audience, ChannelReporter } from "../../../src/alerts/channels/channel.js";
import { serialTransport } from "../../../src/alerts/channels/espa/transport.js";
import {
  composeText,
  PagingChannel,
  PagingOptions,
  pagingProblems,
} from "../../../src/alerts/channels/paging.js";
import type { AlertView } from "../../../src/alerts/model.js";
import { silentLogger } from "../../../src/log.js";
import type { StaffIdentity } from "../../../src/staff/protocol.js";
import { type EspaPager, startPager } from "../../helpers/espa-pager.js";
import { eventually } from "../../helpers/gateway.js";

type Report =
  | { kind: "sent" | "retrying"; attemptId: number; detail: string }
  | { kind: "delivered"; attemptId: number; detail: string; toPerson: boolean | undefined }
  | { kind: "failed"; attemptId: number; detail: string };

/** The manager's side of the seam, recording what a channel reports. */
class RecordingReporter implements ChannelReporter {
  readonly reports: Report[] = [];
  healthChanges = 0;
  sent(attemptId: number, detail: string): void {
    this.reports.push({ kind: "sent", attemptId, detail });
  }
  delivered(attemptId: number, detail: string, opts?: { toPerson?: boolean }): void {
    this.reports.push({ kind: "delivered", attemptId, detail, toPerson: opts?.toPerson });
  }
  failed(attemptId: number, detail: string): void {
    this.reports.push({ kind: "failed", attemptId, detail });
  }
  retrying(attemptId: number, detail: string): void {
    this.reports.push({ kind: "retrying", attemptId, detail });
  }
  healthChanged(): void {
    this.healthChanges++;
  }
  outcome(attemptId: number): Report | undefined {
    return this.reports.find(
      (r) => r.attemptId === attemptId && (r.kind === "delivered" || r.kind === "failed"),
    );
  }
}

const STAFF: StaffIdentity[] = [
  { id: "anna", name: "Anna", role: "staff", sites: ["plejehjem"], units: ["afsnit-a"] },
  { id: "bo", name: "Bo", role: "nurse", sites: ["plejehjem"], units: null },
];

const SITES = [{ id: "plejehjem", units: [{ id: "afsnit-a" }, { id: "afsnit-b" }] }];

function alert(over: Partial<AlertView> = {}): AlertView {
  return {
    id: "a-1",
    type: "fall.detected",
    priority: "high",
    state: "raised",
    message: { da: "Fald i 12 (R-7F3A)", en: "Fall in 12 (R-7F3A)" },
    site: "plejehjem",
    unit: "afsnit-a",
    room: "12",
    resident: "R-7F3A",
    deviceId: "dev-1",
    ruleId: "fall",
    raisedAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    count: 1,
    lastEventType: "fall.detected",
    acceptedBy: null,
    acceptedAt: null,
    attendingAt: null,
    resolvedAt: null,
    outcome: null,
    level: 0,
    undelivered: true,
    deliveredTo: [],
    rejectedBy: [],
    ...over,
  };
}

function options(port: number, over: Record<string, unknown> = {}): PagingOptions {
  return PagingOptions.parse({
    transport: { kind: "tcp", host: "127.0.0.1", port },
    responseTimeoutMs: 300,
    pollIntervalMs: 200,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    notReadyDelayMs: 20,
    pageTimeoutMs: 2000,
    addresses: [
      { call: "2301", name: "Anna", staff: "anna", site: "plejehjem" },
      { call: "2302", name: "Bo", staff: "bo", site: "plejehjem" },
      { call: "2400", name: "afsnit B", role: "staff", site: "plejehjem", units: ["afsnit-b"] },
      { call: "2500", name: "nattesygeplejerske", role: "nurse", site: "plejehjem" },
    ],
    ...over,
  });
}

const running: PagingChannel[] = [];
async function channel(o: PagingOptions, transport?: ReturnType<typeof serialTransport>) {
  const reporter = new RecordingReporter();
  const ch = new PagingChannel({
    options: o,
    log: silentLogger(),
    staff: (id) => STAFF.find((s) => s.id === id),
    ...(transport ? { transport } : {}),
  });
  running.push(ch);
  ch.start(reporter);
  return { ch, reporter };
}

let attempt = 0;
function page(ch: PagingChannel, call: string, a: AlertView = alert()): number {
  const attemptId = ++attempt;
  ch.deliver({
    attemptId,
    alert: a,
    reason: "level",
    level: 0,
    recipient: { id: call, name: `DECT ${call}` },
    place: { site: "Solhaven", unit: "Afsnit Æblehaven" },
  });
  return attemptId;
}

const pagers: EspaPager[] = [];
async function pager(o: Parameters<typeof startPager>[0] = {}) {
  const p = await startPager(o);
  pagers.push(p);
  return p;
}

afterEach(async () => {
  for (const ch of running.splice(0)) await ch.stop();
  for (const p of pagers.splice(0)) await p.stop();
});

describe("ESPA paging over TCP", () => {
  it("a page reaches the paging system with call address, Danish text, priority records, and is reported delivered to the system, not a person", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port));
    await eventually(() => ch.health().ok);
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id));
    expect(outcome).toEqual({
      kind: "delivered",
      attemptId: id,
      detail: "acknowledged by paging system",
      toPerson: false,
    });
    expect(sim.calls).toHaveLength(1);
    const call = sim.calls[0]!;
    expect(call.header).toBe("1");
    expect(call.address).toBe("2301");
    expect(call.text).toBe("!!! Fald i 12 (R-7F3A) - Afsnit Æblehaven");
    // Æ went over the wire as '[' (Danish ISO 646), not as an 8-bit byte.
    expect(call.records.get("2")!.every((b) => b < 0x80)).toBe(true);
    expect(call.priority).toBe("2");
    expect(call.transmissions).toBe("3");
    expect(call.beep).toBeUndefined();
    expect(sim.badBcc).toBe(0);
  });

  it("sends beep coding and call type per priority when configured, and ISO 8859-1 text when the system takes it", async () => {
    const sim = await pager({ charset: "latin1" });
    const { ch, reporter } = await channel(
      options(sim.port, {
        charset: "latin1",
        priorities: { medium: { marker: "!!", beep: "4", callType: "1", priority: "1", transmissions: "2" } },
      }),
    );
    const id = page(
      ch,
      "2302",
      alert({ priority: "medium", message: { da: "Sengeflugt på 14", en: "" }, room: "14" }),
    );
    await eventually(() => reporter.outcome(id));
    const call = sim.calls[0]!;
    expect([call.beep, call.callType, call.priority, call.transmissions]).toEqual(["4", "1", "1", "2"]);
    expect(call.text).toBe("!! Sengeflugt på 14 R-7F3A - Afsnit Æblehaven");
    expect(call.records.get("2")!.includes(0xe5)).toBe(true);
  });

  it("cuts the display text at the configured length", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port, { displayLength: 20 }));
    const id = page(ch, "2301");
    await eventually(() => reporter.outcome(id));
    expect(sim.calls[0]!.records.get("2")!.length).toBe(20);
    expect(sim.calls[0]!.text).toBe("!!! Fald i 12 (R-7F3");
  });

  it("retransmits after NAKs and reports the page delivered when the paging system finally ACKs", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port));
    await eventually(() => ch.health().ok);
    sim.nakNextBlocks(2);
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id));
    expect(outcome).toMatchObject({
      kind: "delivered",
      detail: "acknowledged by paging system after 2 retransmissions",
    });
    expect(sim.naked).toBe(2);
    expect(sim.calls).toHaveLength(1);
  });

  it("fails the page when every retransmission is NAKed", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port, { blockRetries: 2 }));
    await eventually(() => ch.health().ok);
    sim.nakNextBlocks(100);
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id));
    expect(outcome).toMatchObject({ kind: "failed", detail: "paging system refused the page 3 times: NAK" });
    expect(sim.naked).toBe(3);
    expect(sim.calls).toHaveLength(0);
    // The link itself is fine: the paging system answers.
    expect(ch.health().ok).toBe(true);
  });

  it("resends a page after the connection dropped mid-message, once reconnected", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port));
    await eventually(() => ch.health().ok);
    sim.dropOnNextBlock();
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id));
    expect(outcome).toMatchObject({ kind: "delivered" });
    // The fault happened while the page was on the wire: the simulator had the block, unanswered.
    expect(sim.dropped.map((c) => c.address)).toEqual(["2301"]);
    expect(sim.connections).toBe(2);
    expect(sim.calls).toHaveLength(1);
    const retry = reporter.reports.find((r) => r.attemptId === id && r.kind === "retrying");
    expect(retry?.detail).toMatch(/link was lost mid-page; sending again \(1 of 1\)/);
    expect(reporter.reports.indexOf(retry!)).toBeLessThan(reporter.reports.indexOf(outcome!));
  });

  it("fails a page dropped mid-message when resends are off", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(options(sim.port, { maxResends: 0 }));
    await eventually(() => ch.health().ok);
    sim.dropOnNextBlock();
    const id = page(ch, "2301");
    expect(await eventually(() => reporter.outcome(id))).toMatchObject({
      kind: "failed",
      detail: "link lost mid-page",
    });
    expect(sim.dropped).toHaveLength(1);
    expect(sim.calls).toHaveLength(0);
  });

  it("reports health false within the supervision interval when the paging system goes away, and true again when it returns", async () => {
    const sim = await pager();
    const o = options(sim.port);
    const { ch, reporter } = await channel(o);
    await eventually(() => ch.health().ok);
    const before = reporter.healthChanges;
    await sim.stop();
    const t0 = Date.now();
    await eventually(() => !ch.health().ok, o.pollIntervalMs + o.responseTimeoutMs);
    expect(Date.now() - t0).toBeLessThanOrEqual(o.pollIntervalMs + o.responseTimeoutMs);
    expect(ch.health().detail).toMatch(/paging link \(tcp 127\.0\.0\.1:\d+\)/);
    expect(reporter.healthChanges).toBe(before + 1);
    await sim.restart();
    await eventually(() => ch.health().ok, 3000);
    expect(reporter.healthChanges).toBe(before + 2);
  });

  it("reports health false when a connected paging system stops answering polls, and recovers without a new connection", async () => {
    const sim = await pager();
    const o = options(sim.port, { reconnectAfterMisses: 100 });
    const { ch } = await channel(o);
    await eventually(() => ch.health().ok);
    sim.setSilent(true);
    await eventually(() => !ch.health().ok, o.pollIntervalMs + o.responseTimeoutMs + 100);
    expect(ch.health().detail).toMatch(/did not answer/);
    sim.setSilent(false);
    await eventually(() => ch.health().ok, 2000);
    expect(sim.connections).toBe(1);
  });

  it("fails a page queued while the link is down after the page timeout instead of holding it", async () => {
    const sim = await pager();
    const port = sim.port;
    await sim.stop();
    const { ch, reporter } = await channel(options(port, { pageTimeoutMs: 400 }));
    const t0 = Date.now();
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id), 3000);
    expect(outcome).toMatchObject({ kind: "failed" });
    expect(outcome!.detail).toMatch(/not sent within its deadline: cannot open tcp/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    expect(ch.health().ok).toBe(false);
  });

  it("fails a page when the paging system stays silent on selection", async () => {
    const sim = await pager();
    const { ch, reporter } = await channel(
      options(sim.port, { selectRetries: 1, reconnectAfterMisses: 100, pageTimeoutMs: 10_000 }),
    );
    await eventually(() => ch.health().ok);
    sim.setSilent(true);
    const id = page(ch, "2301");
    const outcome = await eventually(() => reporter.outcome(id), 3000);
    expect(outcome).toMatchObject({
      kind: "failed",
      detail: "selection failed after 2 tries: no answer to selection within 300 ms",
    });
  });

  it("puts the paging system's record 7 call status into the receipt, and fails on a configured status", async () => {
    const sim = await pager({ callStatus: "3" });
    const { ch, reporter } = await channel(options(sim.port, { callStatus: { awaitMs: 2000 } }));
    const id = page(ch, "2301");
    expect(await eventually(() => reporter.outcome(id), 3000)).toMatchObject({
      kind: "delivered",
      detail: "acknowledged by paging system; call status 3",
    });
    // The gateway ACKed the status block (the ACK may still be on its way when the receipt is in).
    await eventually(() => sim.statusAcked === 1);
    await ch.stop();

    const sim2 = await pager({ callStatus: "5" });
    const second = await channel(options(sim2.port, { callStatus: { awaitMs: 2000, failOn: ["5"] } }));
    const id2 = page(second.ch, "2302");
    expect(await eventually(() => second.reporter.outcome(id2), 3000)).toMatchObject({
      kind: "failed",
      detail: "acknowledged by paging system, but the paging system reported call status 5",
    });
  });
});

describe("the paging-system simulator", () => {
  it("answers NAK to a block with a bad BCC and records nothing", async () => {
    const sim = await pager();
    const socket = connect(sim.port, "127.0.0.1");
    const answers: number[] = [];
    socket.on("data", (d: Buffer) => answers.push(...d));
    await new Promise((r) => socket.once("connect", r));
    // EOT 2 ENQ, then a call block whose last byte (BCC) is wrong.
    socket.write(Buffer.from([0x04, 0x32, 0x05]));
    await eventually(() => answers.length === 1);
    socket.write(Buffer.from([0x01, 0x31, 0x02, 0x31, 0x1f, 0x32, 0x03, 0x00]));
    await eventually(() => answers.length === 2);
    expect(answers).toEqual([0x06, 0x15]);
    expect(sim.badBcc).toBe(1);
    expect(sim.calls).toHaveLength(0);
    socket.destroy();
  });
});

describe("ESPA paging over a serial port", () => {
  let bridge: ChildProcess;
  let ptyPath: string;
  let sim: EspaPager;

  beforeAll(async () => {
    sim = await new (await import("../../helpers/espa-pager.js")).EspaPager().start();
    // A pty stands in for the serial port and a small relay for the device server behind it:
    // the channel opens the pty's slave as a file, as it would /dev/ttyUSB0.
    const script = `
import os, pty, socket, select, sys, tty
m, s = pty.openpty()
tty.setraw(s)
sock = socket.create_connection(("127.0.0.1", ${sim.port}))
print(os.ttyname(s), flush=True)
while True:
    r, _, _ = select.select([m, sock], [], [])
    if m in r:
        d = os.read(m, 4096)
        if not d: break
        sock.sendall(d)
    if sock in r:
        d = sock.recv(4096)
        if not d: break
        os.write(m, d)
`;
    bridge = spawn("python3", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
    ptyPath = await new Promise<string>((resolve, reject) => {
      bridge.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
      bridge.once("exit", (code) => reject(new Error(`pty bridge exited ${code}`)));
    });
  });

  afterAll(async () => {
    if (bridge.exitCode === null) {
      bridge.kill("SIGTERM");
      await new Promise((r) => bridge.once("exit", r));
    }
    await sim.stop();
  });

  it("sends a page through a tty device path with the same framing", async () => {
    const o = options(1, { transport: { kind: "serial", path: ptyPath } });
    const { ch, reporter } = await channel(o, serialTransport({ path: ptyPath }));
    await eventually(() => ch.health().ok, 3000);
    const id = page(ch, "2500");
    expect(await eventually(() => reporter.outcome(id), 3000)).toMatchObject({ kind: "delivered" });
    expect(sim.calls.map((c) => [c.address, c.text])).toEqual([
      ["2500", "!!! Fald i 12 (R-7F3A) - Afsnit Æblehaven"],
    ]);
  });
});

describe("who a handset reaches", () => {
  const ch = new PagingChannel({
    options: options(1),
    log: silentLogger(),
    staff: (id) => STAFF.find((s) => s.id === id),
  });
  const reach = (a: Partial<Audience>) =>
    ch
      .reach({ siteId: "plejehjem", unitId: "afsnit-a", targets: ["unit"], excluded: [], ...a }, alert())
      .map((r) => r.id);

  it("reaches a person's handset by the person's scope, a role handset by its units, and the nurse's at nurse level", () => {
    expect(reach({})).toEqual(["2301", "2302", "2500"]);
    expect(reach({ unitId: "afsnit-b" })).toEqual(["2302", "2400", "2500"]);
    expect(reach({ targets: ["nurse"] })).toEqual(["2302", "2500"]);
    expect(reach({ targets: ["site"] })).toEqual(["2301", "2302", "2400", "2500"]);
  });

  it("skips a person who rejected the alert and handsets of another site", () => {
    expect(reach({ excluded: ["anna"] })).toEqual(["2302", "2500"]);
    expect(reach({ siteId: "andet-hjem" })).toEqual([]);
  });

  it("names the person behind a personal handset", () => {
    const r = ch.reach({ siteId: "plejehjem", unitId: "afsnit-a", targets: ["unit"], excluded: [] }, alert());
    expect(r[0]).toEqual({ id: "2301", name: "DECT 2301 (Anna)", staffId: "anna" });
    expect(r.find((x) => x.id === "2500")!.staffId).toBeUndefined();
  });
});

describe("paging configuration", () => {
  it("collects unknown sites and units, duplicate call numbers, unknown staff and mixed person/role handsets with their paths", () => {
    const o = options(1, {
      addresses: [
        { call: "2301", name: "a", staff: "anna", site: "plejehjem" },
        { call: "2301", name: "b", role: "nurse", site: "plejehjem" },
        { call: "2302", name: "c", role: "staff", site: "nowhere" },
        { call: "2303", name: "d", role: "staff", site: "plejehjem", units: ["afsnit-z"] },
        { call: "2304", name: "e", staff: "ghost", site: "plejehjem" },
        { call: "2305", name: "f", staff: "bo", role: "nurse", site: "plejehjem" },
      ],
      pagingAddress: "1",
    });
    expect(pagingProblems(o, SITES, STAFF)).toEqual([
      { path: ["addresses", 1, "call"], message: 'call number "2301" is already used by addresses[0]' },
      { path: ["addresses", 2, "site"], message: 'unknown site "nowhere"' },
      { path: ["addresses", 3, "units", 0], message: 'unknown unit "afsnit-z" in site "plejehjem"' },
      { path: ["addresses", 4, "staff"], message: 'unknown staff token "ghost"' },
      {
        path: ["addresses", 5, "staff"],
        message: "a personal handset takes its role and units from the staff token; remove role/units",
      },
      { path: ["pagingAddress"], message: "the paging system needs an address other than ownAddress" },
    ]);
    expect(pagingProblems(options(1), SITES, STAFF)).toEqual([]);
  });

  it("pages on re-notification only when repeatOnRenotify is set", () => {
    const make = (over: Record<string, unknown>) =>
      new PagingChannel({ options: options(1, over), log: silentLogger(), staff: () => undefined });
    expect(make({}).renotifies).toBe(false);
    expect(make({ repeatOnRenotify: true }).renotifies).toBe(true);
  });

  it("rejects call numbers that are not digits and unknown keys", () => {
    expect(
      PagingOptions.safeParse({ ...options(1), addresses: [{ call: "23A", name: "x", site: "s" }] }).success,
    ).toBe(false);
    expect(PagingOptions.safeParse({ ...options(1), colour: "red" }).success).toBe(false);
  });

  it("composes the text with the message first and adds room and resident only where the message lacks them", () => {
    expect(composeText(alert(), "Afsnit A", "!!!")).toBe("!!! Fald i 12 (R-7F3A) - Afsnit A");
    expect(composeText(alert({ message: { da: "Lavt batteri", en: "" } }), "Afsnit A", "!")).toBe(
      "! Lavt batteri (12) R-7F3A - Afsnit A",
    );
  });
});
