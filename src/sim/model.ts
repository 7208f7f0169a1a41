/**
 * A deterministic nursing-home model: residents with flags, devices placed in their rooms, and a
 * seeded stream of what those devices would report over a simulated time range, in time order.
 *
 * The world is generated as incidents (a fall, a night-time bed exit, a pendant call, a lift
 * transfer) per resident and per simulated day; each incident becomes the happenings of the devices
 * that would notice it (a radar sees a fall with probability `radarDetectionShare`; a bed mat and a
 * radar both see the same bed exit). Heartbeats run per device on their own schedule. Nothing here
 * knows a vendor: a device's role follows from its profile's kind, and what it can say from its
 * encoder (encoders.ts).
 *
 * Every rate is a named parameter in `ModelParams` with its source; `DEFAULT_PARAMS` holds the
 * defaults and src/sim/README.md lists them. Where no published figure was found the comment says
 * "assumption", so that a site can replace it with its own measurement.
 *
 * Determinism: each resident and each device draws from its own PRNG seeded from (seed, its id), so
 * the same seed, start and population always give the same stream, and adding a resident does not
 * change anyone else's.
 */
import { getProfile } from "../../devices/index.js";
import type { Config } from "../config/schema.js";
import type { TRANSFERS } from "../model/event.js";
import { zoneOffsetMs } from "../time/zone.js";
import {
  type Encoder,
  type FallHappening,
  type FallStage,
  getEncoder,
  type Happening,
  type Location,
  type SimTime,
  supports,
} from "./encoders.js";

// ---------------------------------------------------------------------------------------------------
// Parameters

export interface ModelParams {
  /** Falls per bed per year. CDC: 100-200 falls per 100 nursing-home beds a year (range 1.0-2.0); DESIGN.md. */
  fallsPerBedYear: number;
  /** Share of falls at night. 16-42% depending on the home (DESIGN.md, "Realistic load"). */
  fallNightShare: number;
  /** Night, in the site's local time: [nightStartHour, nightEndHour). DESIGN.md uses 22-07. */
  nightStartHour: number;
  nightEndHour: number;
  /**
   * Share of real falls that a radar in the room reports. Assumption: no independent field figure for
   * ceiling/wall radars was found; vendors claim "over 90%". Falls it misses produce no event.
   */
  radarDetectionShare: number;
  /** Seconds from the fall to fall_detected. Assumption (the Vayyar fixture shows 5 s). */
  detectDelaySec: [number, number];
  /** Seconds from fall_detected to fall_confirmed. Assumption (the Vayyar fixture shows 47 s). */
  confirmDelaySec: [number, number];
  /**
   * Seconds on the floor after a detected fall before the resident is helped up (fall_exit).
   * Assumption: minutes when an alert reaches staff. BMJ 2008;337:a2227 found 30% of fallers over 90
   * lay an hour or more when alone and unalarmed; that is the case the radar exists to prevent.
   */
  onGroundSec: [number, number];
  /**
   * Radar false alarms (a fall reported where there was none) per sensor per week. Assumption: the
   * Kepler Night Nurse evaluation counted 9 false alarms from AI sensors in three weeks (vs 2,195 from
   * legacy motion sensors) for a ward whose size it does not state; 0.1 is ~9 over 3 weeks in 30 rooms.
   */
  falseAlarmsPerSensorWeek: number;
  /** Seconds until a false alarm clears (the radar's `finished`). Assumption. */
  falseAlarmClearSec: [number, number];
  /** Suspected falls the radar itself cancels (fall_suspected -> canceled) per sensor per week. Assumption. */
  cancelledFallsPerSensorWeek: number;
  /** Seconds from fall_suspected to canceled. Assumption. */
  cancelDelaySec: [number, number];
  /** Night-time bed exits per resident with a bed mat or radar. Assumption (brief: "e.g. 1.5 per night"). */
  bedExitsPerNight: number;
  /** Share of bed exits with a return within `bedReturnSec`. Assumption ("most return within 2-10 min"). */
  bedReturnShare: number;
  /** Seconds out of bed for the usual exit (toilet). Assumption: 2-10 minutes. */
  bedReturnSec: [number, number];
  /** Seconds out of bed for the others: long enough for a "not back within 10 minutes" rule. Assumption. */
  bedLongAbsenceSec: [number, number];
  /**
   * Pendant calls per resident with a pendant per day. Assumption (brief: 1.5). Published figures are
   * from hospitals: 0.94 calls per patient-day (J Korean Acad Nurs Adm, integrated nursing care wards)
   * to 6.9 (J Nurs Manag 2019, neuroscience inpatients).
   */
  callsPerResidentDay: number;
  /** Share of calls by day (outside the night window). Assumption ("more by day"). */
  callDayShare: number;
  /** How long the button is held. Assumption (the SCAIP pendant fixture shows 1.2 s). */
  pressDurationSec: [number, number];
  /** Lift transfers per lift-dependent resident per day. Assumption (brief: 4; up, toilet x2, to bed). */
  liftTransfersPerResidentDay: number;
  /**
   * Share of ceiling-lift transfers done by one helper. 60-74% (Gladsaxe municipality; ABT projects
   * Odense/Slagelse/Aarhus, denoffentlige.dk); DESIGN.md. Default: the middle, 0.67.
   */
  liftOneHelperShare: number;
  /** Mean seconds per transfer: 156.9 s bed-to-chair with a ceiling lift (Injury 2009;40:987). */
  liftDurationMeanSec: number;
  /** Spread of the transfer time. Assumption (the study reports means). */
  liftDurationSdSec: number;
  /** Local hours when lift transfers happen: [from, to). Assumption: the day, 07-22. */
  liftHours: [number, number];
  /** Share of lift cycles ending in a fault. Assumption: rare. */
  liftFaultShare: number;
  /**
   * Resident flag marking a lift user. Residents in a room with a ceiling lift are lift users when
   * flagged, or, when nobody in that room is flagged, all of them (the lift was installed for them).
   */
  liftDependentFlag: string;
  /** Heartbeat interval of every device, seconds. DESIGN.md: 60 s. */
  heartbeatSec: number;
  /**
   * Send 1 of every N heartbeats (1 = all). For accelerated runs where heartbeats would crowd out the
   * events; a thinned run's presence figures are not realistic, and the CLI says so.
   */
  heartbeatKeepEvery: number;
  /** Battery drain of battery-powered devices, percentage points per day. Assumption. */
  batteryDrainPctPerDay: number;
}

export const DEFAULT_PARAMS: Readonly<ModelParams> = Object.freeze({
  fallsPerBedYear: 1.5,
  fallNightShare: 0.3,
  nightStartHour: 22,
  nightEndHour: 7,
  radarDetectionShare: 0.9,
  detectDelaySec: [2, 10],
  confirmDelaySec: [30, 60],
  onGroundSec: [180, 1200],
  falseAlarmsPerSensorWeek: 0.1,
  falseAlarmClearSec: [60, 300],
  cancelledFallsPerSensorWeek: 0.5,
  cancelDelaySec: [10, 60],
  bedExitsPerNight: 1.5,
  bedReturnShare: 0.85,
  bedReturnSec: [120, 600],
  bedLongAbsenceSec: [1200, 5400],
  callsPerResidentDay: 1.5,
  callDayShare: 0.75,
  pressDurationSec: [0.3, 3],
  liftTransfersPerResidentDay: 4,
  liftOneHelperShare: 0.67,
  liftDurationMeanSec: 156.9,
  liftDurationSdSec: 30,
  liftHours: [7, 22],
  liftFaultShare: 0.005,
  liftDependentFlag: "lift-dependent",
  heartbeatSec: 60,
  heartbeatKeepEvery: 1,
  batteryDrainPctPerDay: 0.1,
} satisfies ModelParams);

// ---------------------------------------------------------------------------------------------------
// Population

export interface SiteSpec {
  id: string;
  timeZone: string;
}
export interface ResidentSpec {
  ref: string;
  siteId: string;
  unitId: string;
  roomId: string | null;
  flags: readonly string[];
}
export interface DeviceSpec {
  id: string;
  profile: string;
  siteId: string;
  unitId: string;
  roomId: string | null;
  residentRef: string | null;
  /** What the device does in the model; by default from its profile's kind (see `defaultRoles`). */
  roles?: readonly Role[];
}

/** fall: reports falls; bed: reports bed exits; call: carries pendant calls; lift: reports lift cycles. */
export type Role = "fall" | "bed" | "call" | "lift";

/**
 * A device's role from its profile's kind. A native device stands in for a nurse-call integration
 * (calls) unless the population says otherwise.
 */
export function defaultRoles(profileId: string): Role[] {
  switch (getProfile(profileId)?.kind) {
    case "fall-sensor":
      return ["fall", "bed"];
    case "bed-mat":
    case "chair-mat":
      return ["bed"];
    case "pendant":
    case "gateway-native":
      return ["call"];
    case "ceiling-lift":
    case "standing-aid":
      return ["lift"];
    default:
      return [];
  }
}

export interface Population {
  sites: SiteSpec[];
  residents: ResidentSpec[];
  devices: DeviceSpec[];
}

/** The sites, residents and seed devices of a gateway configuration. */
export function populationFromConfig(config: Pick<Config, "sites" | "residents" | "devices">): Population {
  return {
    sites: config.sites.map((s) => ({ id: s.id, timeZone: s.timeZone })),
    residents: config.residents.map((r) => ({
      ref: r.ref,
      siteId: r.site,
      unitId: r.unit,
      roomId: r.room ?? null,
      flags: r.flags,
    })),
    devices: config.devices.map((d) => ({
      id: d.id,
      profile: d.profile,
      siteId: d.site,
      unitId: d.unit,
      roomId: d.room ?? null,
      residentRef: d.resident ?? null,
    })),
  };
}

// ---------------------------------------------------------------------------------------------------
// Output

export type IncidentKind = "fall" | "false-alarm" | "cancelled-fall" | "bed-exit" | "call" | "lift-transfer";

/** Ground truth: what happened in the world, whether or not a device reported it. */
export interface Incident {
  id: string;
  kind: IncidentKind;
  at: SimTime;
  siteId: string;
  /** The resident it happened to; null for device-only incidents (false alarms, cancelled falls). */
  residentRef: string | null;
  /** In the site's night window. */
  night: boolean;
  /** Devices that report it (empty for a fall no sensor saw). */
  devices: string[];
  /** bed-exit: whether the resident was back within `bedReturnSec`. lift-transfer: helpers. */
  returnedSoon?: boolean;
  helpers?: number;
}

/** One thing one device says, at simulated time `at`. */
export interface SimEvent {
  at: SimTime;
  deviceId: string;
  profile: string;
  happening: Happening;
  /** The incident it reports; null for heartbeats. */
  incident: string | null;
}

export interface ModelOptions extends Population {
  seed: string | number;
  /** Start of the simulated range, epoch ms. */
  start: SimTime;
  /** Length of the simulated range, seconds; Infinity runs until the consumer stops. */
  durationSec: number;
  params?: Partial<ModelParams>;
  /** Prefix of message ids; default from the start time, so a later run does not dedupe against this one. */
  runTag?: string;
  /** Receives each incident as it is generated (one simulated day ahead of the stream). */
  onIncident?: (incident: Incident) => void;
  /**
   * One call from a pendant this many seconds after the start, before the rates take over (the
   * demo's live phase: a newcomer should see an alert arrive, not wait for one by chance).
   */
  firstCallAfterSec?: number;
}

// ---------------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded with cyrb128 (both public domain, from bryc's "PRNGs in JavaScript").

function cyrb128(str: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    [this.a, this.b, this.c, this.d] = cyrb128(seed);
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a |= 0;
    this.b |= 0;
    this.c |= 0;
    this.d |= 0;
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  between([lo, hi]: readonly [number, number]): number {
    return this.uniform(lo, hi);
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor((hi - lo + 1) * this.next());
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  normal(mean: number, sd: number): number {
    const u = 1 - this.next();
    const v = this.next();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Poisson-distributed count (Knuth; a normal approximation for large means). */
  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 50) return Math.max(0, Math.round(this.normal(mean, Math.sqrt(mean))));
    const limit = Math.exp(-mean);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------------
// Local time

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OFFSET_BUCKET = 15 * 60_000;

/** Local hour (0-23, fractional) of an instant in a time zone, with the UTC offset cached per 15 minutes. */
export class LocalClock {
  private readonly offsets = new Map<number, number>();
  constructor(readonly timeZone: string) {}

  offsetMs(t: SimTime): number {
    const bucket = Math.floor(t / OFFSET_BUCKET);
    let off = this.offsets.get(bucket);
    if (off === undefined) {
      off = zoneOffsetMs(bucket * OFFSET_BUCKET, this.timeZone);
      if (this.offsets.size > 100_000) this.offsets.clear();
      this.offsets.set(bucket, off);
    }
    return off;
  }

  hour(t: SimTime): number {
    const local = t + this.offsetMs(t);
    return ((((local % DAY) + DAY) % DAY) / HOUR) as number;
  }
}

/** Whether a local hour lies in [from, to), where the window may wrap past midnight (22-07). */
export function inWindow(hour: number, from: number, to: number): boolean {
  return from <= to ? hour >= from && hour < to : hour >= from || hour < to;
}

// ---------------------------------------------------------------------------------------------------
// The model

interface DeviceState {
  spec: DeviceSpec;
  encoder: Encoder;
  roles: Set<Role>;
  rng: Rng;
  /** Message counter: ids and numeric references. */
  n: number;
  heartbeats: number;
  battery0: number;
  rssi0: number;
  residents: ResidentState[];
}

interface ResidentState {
  spec: ResidentSpec;
  clock: LocalClock;
  rng: Rng;
  loadKg: number;
  falls: DeviceState[];
  beds: DeviceState[];
  calls: DeviceState[];
  lifts: DeviceState[];
  /** Out of bed until this time (a new exit cannot start before). */
  outOfBedUntil: SimTime;
}

interface Queued {
  at: SimTime;
  order: number;
  event: SimEvent | null;
  /** A pending heartbeat of this device (the next is scheduled when it is taken). */
  heartbeatOf?: DeviceState;
}

/** Min-heap on (at, order): the stream's merge of heartbeats and generated incidents. */
class Heap {
  private readonly items: Queued[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Queued | undefined {
    return this.items[0];
  }
  push(q: Queued): void {
    const a = this.items;
    a.push(q);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): Queued | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
const before = (x: Queued, y: Queued) => x.at < y.at || (x.at === y.at && x.order < y.order);

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const LIFT_FAULTS = ["E17-overcurrent", "E04-battery-low", "E22-emergency-stop"] as const;
type Transfer = (typeof TRANSFERS)[number];

/** What the runner plays: events in time order within [start, end). */
export interface EventSource {
  readonly start: SimTime;
  readonly end: SimTime;
  peek(): SimEvent | undefined;
  next(): SimEvent | undefined;
}

/**
 * The stream of device happenings, in time order (ties in generation order). Iterate it, or use
 * `peek()` / `next()` to take events up to a simulated time.
 */
export class NursingHomeModel implements EventSource, Iterable<SimEvent> {
  readonly params: Readonly<ModelParams>;
  readonly start: SimTime;
  readonly end: SimTime;
  readonly devices: ReadonlyMap<string, DeviceSpec & { timeZone: string }>;
  private readonly residents: ResidentState[] = [];
  private readonly sensors: DeviceState[] = [];
  private readonly deviceStates: DeviceState[] = [];
  private readonly heap = new Heap();
  private order = 0;
  private nextChunk: SimTime;
  private incidents = 0;
  private readonly runTag: string;
  private readonly timeZones = new Map<string, string>();
  private readonly onIncident: ((i: Incident) => void) | undefined;

  constructor(options: ModelOptions) {
    this.params = { ...DEFAULT_PARAMS, ...options.params };
    this.start = options.start;
    this.end = options.start + options.durationSec * 1000;
    this.nextChunk = options.start;
    this.runTag = options.runTag ?? Math.floor(options.start / 1000).toString(36);
    this.onIncident = options.onIncident;
    const seed = String(options.seed);
    for (const s of options.sites) this.timeZones.set(s.id, s.timeZone);
    const tz = (siteId: string) => this.timeZones.get(siteId) ?? "Europe/Copenhagen";

    const devices = new Map<string, DeviceSpec & { timeZone: string }>();
    for (const d of options.devices) {
      const encoder = getEncoder(d.profile);
      if (!encoder)
        throw new Error(`device ${d.id}: the simulator has no encoder for profile "${d.profile}"`);
      devices.set(d.id, { ...d, timeZone: tz(d.siteId) });
      const rng = new Rng(`${seed}|device|${d.id}`);
      const roles = new Set((d.roles ?? defaultRoles(d.profile)).filter((r) => canPlay(encoder, r)));
      this.deviceStates.push({
        spec: d,
        encoder,
        roles,
        rng,
        n: 0,
        heartbeats: 0,
        battery0: encoder.battery ? Math.round(rng.uniform(40, 100)) : 0,
        rssi0: Math.round(rng.uniform(-82, -50)),
        residents: [],
      });
    }
    this.devices = devices;

    const residents = new Map<string, ResidentState>();
    const addResident = (spec: ResidentSpec) => {
      const rng = new Rng(`${seed}|resident|${spec.ref}`);
      const state: ResidentState = {
        spec,
        clock: new LocalClock(tz(spec.siteId)),
        rng,
        loadKg: round(clamp(rng.normal(70, 13), 40, 140), 1),
        falls: [],
        beds: [],
        calls: [],
        lifts: [],
        outOfBedUntil: -Infinity,
      };
      residents.set(spec.ref, state);
      this.residents.push(state);
      return state;
    };
    for (const r of options.residents) addResident(r);

    const roomKey = (site: string, room: string | null) => (room === null ? null : `${site}/${room}`);
    const byRoom = new Map<string, ResidentState[]>();
    for (const r of this.residents) {
      const key = roomKey(r.spec.siteId, r.spec.roomId);
      if (key) byRoom.set(key, [...(byRoom.get(key) ?? []), r]);
    }
    // A device serves its resident, else the residents of its room, else a stand-in resident of its room
    // (or of its own, without a room): devices registered for load generation name no resident.
    for (const d of this.deviceStates) {
      const own = d.spec.residentRef ? residents.get(d.spec.residentRef) : undefined;
      const key = roomKey(d.spec.siteId, d.spec.roomId);
      const room = byRoom.get(key ?? "") ?? [];
      d.residents = own ? [own] : room;
      if (d.residents.length === 0 && d.roles.size > 0) {
        const ref = `~${key ?? d.spec.id}`;
        const standIn =
          residents.get(ref) ??
          addResident({
            ref,
            siteId: d.spec.siteId,
            unitId: d.spec.unitId,
            roomId: d.spec.roomId,
            flags: [],
          });
        if (key) byRoom.set(key, [standIn]);
        d.residents = [standIn];
      }
      if (d.roles.has("fall")) this.sensors.push(d);
      for (const r of d.residents) {
        if (d.roles.has("fall")) r.falls.push(d);
        if (d.roles.has("bed")) r.beds.push(d);
        if (d.roles.has("call")) r.calls.push(d);
      }
      if (d.roles.has("lift")) {
        const flag = this.params.liftDependentFlag;
        const flagged = d.residents.filter((r) => r.spec.flags.includes(flag));
        for (const r of flagged.length > 0 ? flagged : d.residents) r.lifts.push(d);
      }
    }

    // Heartbeats start at a random phase per device, so a site does not report in lockstep.
    const every = this.params.heartbeatSec * 1000;
    for (const d of this.deviceStates) {
      if (!d.encoder.kinds.has("heartbeat") || !(every > 0)) continue;
      const first = this.start + Math.floor(d.rng.next() * every);
      this.heap.push({ at: first, order: this.order++, event: null, heartbeatOf: d });
    }

    const firstCall = options.firstCallAfterSec;
    const caller = this.residents.find((r) => r.calls.length > 0);
    if (firstCall !== undefined && caller) this.call(caller, caller.calls[0]!, this.start + firstCall * 1000);
  }

  /** The next event without taking it; undefined when the range is over. */
  peek(): SimEvent | undefined {
    for (;;) {
      this.fill();
      const top = this.heap.peek();
      if (!top || top.at >= this.end) return undefined;
      if (top.event) return top.event;
      // A heartbeat placeholder: materialise it (and schedule the next) in place.
      this.heap.pop();
      const d = top.heartbeatOf!;
      this.heap.push({ at: top.at, order: top.order, event: this.heartbeat(d, top.at) });
      const next =
        top.at + this.params.heartbeatSec * 1000 * Math.max(1, Math.floor(this.params.heartbeatKeepEvery));
      this.heap.push({ at: next, order: this.order++, event: null, heartbeatOf: d });
    }
  }

  next(): SimEvent | undefined {
    const e = this.peek();
    if (e) this.heap.pop();
    return e;
  }

  *[Symbol.iterator](): Iterator<SimEvent> {
    for (let e = this.next(); e; e = this.next()) yield e;
  }

  /** Generate incidents day by day, always one day ahead of the earliest pending event. */
  private fill(): void {
    while (this.nextChunk < this.end) {
      const top = this.heap.peek();
      if (top && top.at < this.nextChunk) return;
      const from = this.nextChunk;
      this.nextChunk = Math.min(from + DAY, this.end);
      this.generate(from, this.nextChunk);
    }
  }

  private emit(at: SimTime, device: DeviceState, happening: Happening, incident: string | null): void {
    this.heap.push({
      at,
      order: this.order++,
      event: { at, deviceId: device.spec.id, profile: device.spec.profile, happening, incident },
    });
  }

  private nextId(d: DeviceState): { id: string; n: number } {
    d.n++;
    return { id: `${this.runTag}-${d.n.toString(36)}`, n: d.n };
  }

  private incident(i: Omit<Incident, "id">): string {
    const id = `${this.runTag}-i${(++this.incidents).toString(36)}`;
    this.onIncident?.({ id, ...i });
    return id;
  }

  private isNight(clock: LocalClock, t: SimTime): boolean {
    return inWindow(clock.hour(t), this.params.nightStartHour, this.params.nightEndHour);
  }

  /** A uniform time in [from, to) whose local hour is (or is not) in a window; rejection sampling. */
  private timeIn(
    rng: Rng,
    clock: LocalClock,
    from: SimTime,
    to: SimTime,
    window: [number, number],
    inside: boolean,
  ) {
    for (let tries = 0; tries < 64; tries++) {
      const t = Math.floor(rng.uniform(from, to));
      if (inWindow(clock.hour(t), window[0], window[1]) === inside) return t;
    }
    return null;
  }

  private generate(from: SimTime, to: SimTime): void {
    const p = this.params;
    const days = (to - from) / DAY;
    const night: [number, number] = [p.nightStartHour, p.nightEndHour];
    for (const r of this.residents) {
      const { rng, clock } = r;

      for (let k = rng.poisson((p.fallsPerBedYear / 365.25) * days); k > 0; k--) {
        const t = this.timeIn(rng, clock, from, to, night, rng.chance(p.fallNightShare));
        if (t !== null) this.fall(r, t);
      }

      if (r.beds.length > 0) {
        const times: SimTime[] = [];
        for (let k = rng.poisson(p.bedExitsPerNight * days); k > 0; k--) {
          const t = this.timeIn(rng, clock, from, to, night, true);
          if (t !== null) times.push(t);
        }
        for (const t of times.sort((a, b) => a - b)) this.bedExit(r, t);
      }

      for (let k = r.calls.length > 0 ? rng.poisson(p.callsPerResidentDay * days) : 0; k > 0; k--) {
        const t = this.timeIn(rng, clock, from, to, night, !rng.chance(p.callDayShare));
        if (t === null) continue;
        this.call(r, rng.pick(r.calls), t);
      }

      for (let k = r.lifts.length > 0 ? rng.poisson(p.liftTransfersPerResidentDay * days) : 0; k > 0; k--) {
        const t = this.timeIn(rng, clock, from, to, p.liftHours, true);
        if (t !== null) this.liftTransfer(r, t);
      }
    }

    for (const d of this.sensors) {
      const r = d.residents[0]!;
      const weeks = days / 7;
      for (let k = d.rng.poisson(p.falseAlarmsPerSensorWeek * weeks); k > 0; k--) {
        this.falseAlarm(d, r, Math.floor(d.rng.uniform(from, to)));
      }
      for (let k = d.rng.poisson(p.cancelledFallsPerSensorWeek * weeks); k > 0; k--) {
        this.cancelledFall(d, r, Math.floor(d.rng.uniform(from, to)));
      }
    }
  }

  private location(rng: Rng): Location {
    return {
      x: round(rng.uniform(-2, 2), 3),
      y: round(rng.uniform(0.5, 4), 3),
      z: round(rng.uniform(0.1, 0.4), 3),
    };
  }

  /** Emit one fall's stages on one device, skipping stages the device does not report. */
  private fallStages(
    d: DeviceState,
    fallAt: SimTime,
    detected: boolean,
    stages: { stage: FallStage; at: SimTime; extra?: Partial<FallHappening> }[],
    incident: string,
  ): void {
    const fall = { ...this.nextId(d), at: fallAt, detected };
    for (const s of stages) {
      if (!supports(d.encoder, { kind: "fall", stage: s.stage })) continue;
      const h: FallHappening = {
        kind: "fall",
        stage: s.stage,
        at: s.at,
        ...this.nextId(d),
        fall,
        ...s.extra,
      };
      this.emit(s.at, d, h, incident);
    }
  }

  private fall(r: ResidentState, t: SimTime): void {
    const p = this.params;
    const { rng } = r;
    const seen = r.falls.length > 0 && rng.chance(p.radarDetectionShare);
    const devices = seen ? r.falls : [];
    const incident = this.incident({
      kind: "fall",
      at: t,
      siteId: r.spec.siteId,
      residentRef: r.spec.ref,
      night: this.isNight(r.clock, t),
      devices: devices.map((d) => d.spec.id),
    });
    const detectedAt = t + Math.round(rng.between(p.detectDelaySec) * 1000);
    const confirmedAt = detectedAt + Math.round(rng.between(p.confirmDelaySec) * 1000);
    const onGroundSec = Math.max(
      Math.round(rng.between(p.onGroundSec)),
      Math.ceil((confirmedAt - t) / 1000) + 1,
    );
    const location = this.location(rng);
    const confidence = round(rng.uniform(0.75, 0.99), 2);
    for (const d of devices) {
      this.fallStages(
        d,
        t,
        true,
        [
          { stage: "detected", at: detectedAt, extra: { confidence, location } },
          { stage: "confirmed", at: confirmedAt, extra: { location } },
          { stage: "ended", at: t + onGroundSec * 1000, extra: { onGroundSec } },
        ],
        incident,
      );
    }
  }

  /** The radar reports a fall where there was none; it clears without anyone getting up. */
  private falseAlarm(d: DeviceState, r: ResidentState, t: SimTime): void {
    const p = this.params;
    const incident = this.incident({
      kind: "false-alarm",
      at: t,
      siteId: d.spec.siteId,
      residentRef: null,
      night: this.isNight(r.clock, t),
      devices: [d.spec.id],
    });
    const detectedAt = t + Math.round(d.rng.between(p.detectDelaySec) * 1000);
    const confirmedAt = detectedAt + Math.round(d.rng.between(p.confirmDelaySec) * 1000);
    const endedAt = confirmedAt + Math.round(d.rng.between(p.falseAlarmClearSec) * 1000);
    const confidence = round(d.rng.uniform(0.6, 0.9), 2);
    this.fallStages(
      d,
      t,
      true,
      [
        { stage: "detected", at: detectedAt, extra: { confidence, location: this.location(d.rng) } },
        { stage: "confirmed", at: confirmedAt },
        { stage: "ended", at: endedAt },
      ],
      incident,
    );
  }

  /** fall_suspected, then the radar sees the person up again and cancels. */
  private cancelledFall(d: DeviceState, r: ResidentState, t: SimTime): void {
    const p = this.params;
    const incident = this.incident({
      kind: "cancelled-fall",
      at: t,
      siteId: d.spec.siteId,
      residentRef: null,
      night: this.isNight(r.clock, t),
      devices: [d.spec.id],
    });
    const cancelledAt = t + Math.round(d.rng.between(p.cancelDelaySec) * 1000);
    const confidence = round(d.rng.uniform(0.3, 0.7), 2);
    // A device without a cancel status (the VS373's Lying alarm) resolves the suspicion instead.
    const end: FallStage = d.encoder.fallStages.has("cancelled") ? "cancelled" : "ended";
    this.fallStages(
      d,
      t,
      false,
      [
        { stage: "suspected", at: t, extra: { confidence, location: this.location(d.rng) } },
        { stage: end, at: cancelledAt },
      ],
      incident,
    );
  }

  /** A press of the call button on device d by resident r at t: an incident and its one message. */
  private call(r: ResidentState, d: DeviceState, t: SimTime): void {
    const pressDurationSec = round(r.rng.between(this.params.pressDurationSec), 1);
    const incident = this.incident({
      kind: "call",
      at: t,
      siteId: r.spec.siteId,
      residentRef: r.spec.ref,
      night: this.isNight(r.clock, t),
      devices: [d.spec.id],
    });
    this.emit(t, d, { kind: "call.manual", at: t, ...this.nextId(d), pressDurationSec }, incident);
  }

  private bedExit(r: ResidentState, t: SimTime): void {
    const p = this.params;
    const { rng } = r;
    // One exit at a time: an exit drawn while the resident is still up starts after they are back.
    const at = t <= r.outOfBedUntil ? r.outOfBedUntil + Math.round(rng.uniform(60, 900) * 1000) : t;
    if (!this.isNight(r.clock, at)) return;
    const returnedSoon = rng.chance(p.bedReturnShare);
    const dwellSec = Math.round(rng.between(returnedSoon ? p.bedReturnSec : p.bedLongAbsenceSec));
    const back = at + dwellSec * 1000;
    r.outOfBedUntil = back;
    const incident = this.incident({
      kind: "bed-exit",
      at,
      siteId: r.spec.siteId,
      residentRef: r.spec.ref,
      night: true,
      devices: r.beds.map((d) => d.spec.id),
      returnedSoon,
    });
    for (const d of r.beds) {
      this.emit(at, d, { kind: "bed.exit", at, ...this.nextId(d) }, incident);
      this.emit(back, d, { kind: "bed.return", at: back, ...this.nextId(d), dwellSec }, incident);
    }
  }

  private liftTransfer(r: ResidentState, t: SimTime): void {
    const p = this.params;
    const { rng } = r;
    const d = rng.pick(r.lifts);
    const hour = r.clock.hour(t);
    const transfer: Transfer =
      hour < 10
        ? "bed-chair"
        : hour >= 19
          ? "chair-bed"
          : rng.pick<Transfer>(["bed-toilet", "toilet-bed", "bed-chair", "chair-bed", "bed-bath", "other"]);
    const durationMs = Math.round(
      clamp(rng.normal(p.liftDurationMeanSec, p.liftDurationSdSec), 45, 600) * 1000,
    );
    const helpers = rng.chance(p.liftOneHelperShare) ? 1 : 2;
    const fault = rng.chance(p.liftFaultShare) ? rng.pick(LIFT_FAULTS) : undefined;
    const incident = this.incident({
      kind: "lift-transfer",
      at: t,
      siteId: r.spec.siteId,
      residentRef: r.spec.ref,
      night: this.isNight(r.clock, t),
      devices: [d.spec.id],
      helpers,
    });
    const endedAt = t + durationMs;
    const loadKg = round(r.loadKg + rng.uniform(-0.5, 0.5), 1);
    this.emit(
      endedAt,
      d,
      {
        kind: "lift.cycle",
        at: endedAt,
        ...this.nextId(d),
        startedAt: t,
        endedAt,
        loadKg,
        helpers,
        transfer,
        fault,
      },
      incident,
    );
  }

  private heartbeat(d: DeviceState, t: SimTime): SimEvent {
    const p = this.params;
    d.heartbeats++;
    const days = (t - this.start) / DAY;
    const battery = d.encoder.battery
      ? Math.max(1, Math.round(d.battery0 - p.batteryDrainPctPerDay * days))
      : undefined;
    const happening: Happening = {
      kind: "heartbeat",
      at: t,
      id: `${this.runTag}-h${d.heartbeats.toString(36)}`,
      n: d.heartbeats,
      battery,
      rssi: d.rssi0 + d.rng.int(-3, 3),
      firmware: d.encoder.firmware,
    };
    return { at: t, deviceId: d.spec.id, profile: d.spec.profile, happening, incident: null };
  }
}

function canPlay(encoder: Encoder, role: Role): boolean {
  switch (role) {
    case "fall":
      return encoder.kinds.has("fall") && encoder.fallStages.has("detected");
    case "bed":
      return encoder.kinds.has("bed.exit") && encoder.kinds.has("bed.return");
    case "call":
      return encoder.kinds.has("call.manual");
    case "lift":
      return encoder.kinds.has("lift.cycle");
  }
}

// ---------------------------------------------------------------------------------------------------
// Load generation

/** Relative weights of what a device sends in rate mode; a device draws only among kinds it emits. */
export type RateMix = Partial<Record<"fall" | "bed" | "call.manual" | "lift.cycle" | "heartbeat", number>>;

/**
 * Rate mode's default mix: mostly heartbeats, as on a real site (one a minute per device against a
 * few events a day), with enough alarm traffic to exercise rules and alerts.
 */
export const DEFAULT_RATE_MIX: Readonly<RateMix> = Object.freeze({
  heartbeat: 0.6,
  bed: 0.15,
  "call.manual": 0.1,
  "lift.cycle": 0.1,
  fall: 0.05,
});

export interface RateModelOptions {
  devices: readonly { id: string; profile: string }[];
  /** Events per real second, across all devices. */
  eventsPerSec: number;
  /** Simulated seconds per real second (payload times advance this much faster). */
  speed: number;
  start: SimTime;
  durationSec: number;
  seed: string | number;
  mix?: RateMix;
  runTag?: string;
}

interface RateDevice {
  spec: { id: string; profile: string };
  encoder: Encoder;
  kinds: { key: keyof RateMix; weight: number }[];
  total: number;
  n: number;
  /** The device's own clock: strictly increasing by whole seconds, as some vendors send seconds only. */
  clock: SimTime;
  outOfBed: boolean;
  fall: { stages: FallStage[]; next: number; fall: FallHappening["fall"] } | null;
}

/**
 * Load generation: a fixed rate of events, spread round-robin over the devices, each a plausible
 * message for its profile drawn from a mix. Event k is due at `start + k * speed / eventsPerSec`
 * seconds of simulated time, so played at `speed` it arrives at `eventsPerSec` per real second. A
 * device sending more than one event per simulated second runs its own clock ahead, so that payloads
 * with one-second resolution stay distinct (and are not deduplicated as redeliveries).
 */
export class RateModel implements EventSource {
  readonly start: SimTime;
  readonly end: SimTime;
  private readonly devices: RateDevice[];
  private readonly rng: Rng;
  private readonly stepMs: number;
  private readonly runTag: string;
  private k = 0;
  private pending: SimEvent | undefined;

  constructor(options: RateModelOptions) {
    if (!(options.eventsPerSec > 0)) throw new Error("eventsPerSec must be positive");
    this.start = options.start;
    this.end = options.start + options.durationSec * 1000;
    this.stepMs = (options.speed * 1000) / options.eventsPerSec;
    this.rng = new Rng(`${options.seed}|rate`);
    this.runTag = options.runTag ?? Math.floor(options.start / 1000).toString(36);
    const mix = options.mix ?? DEFAULT_RATE_MIX;
    this.devices = options.devices.map((spec) => {
      const encoder = getEncoder(spec.profile);
      if (!encoder)
        throw new Error(`device ${spec.id}: the simulator has no encoder for profile "${spec.profile}"`);
      const can: Record<keyof RateMix, boolean> = {
        fall: canPlay(encoder, "fall"),
        bed: canPlay(encoder, "bed"),
        "call.manual": canPlay(encoder, "call"),
        "lift.cycle": canPlay(encoder, "lift"),
        heartbeat: encoder.kinds.has("heartbeat"),
      };
      const kinds = (Object.keys(mix) as (keyof RateMix)[])
        .filter((k) => can[k] && (mix[k] ?? 0) > 0)
        .map((key) => ({ key, weight: mix[key]! }));
      return {
        spec,
        encoder,
        kinds,
        total: kinds.reduce((s, k) => s + k.weight, 0),
        n: 0,
        clock: -Infinity,
        outOfBed: false,
        fall: null,
      };
    });
    if (this.devices.every((d) => d.kinds.length === 0))
      throw new Error("no device can send anything in this mix");
  }

  peek(): SimEvent | undefined {
    while (!this.pending) {
      const at = this.start + Math.floor(this.k * this.stepMs);
      if (at >= this.end) return undefined;
      const d = this.devices[this.k % this.devices.length]!;
      this.k++;
      if (d.kinds.length === 0) continue;
      d.clock = Math.max(at, d.clock + 1000);
      const happening = this.happening(d, d.clock);
      this.pending = { at, deviceId: d.spec.id, profile: d.spec.profile, happening, incident: null };
    }
    return this.pending;
  }

  next(): SimEvent | undefined {
    const e = this.peek();
    this.pending = undefined;
    return e;
  }

  private pickKind(d: RateDevice): keyof RateMix {
    // A fall in progress finishes its stages before the device draws again.
    if (d.fall) return "fall";
    let x = this.rng.next() * d.total;
    for (const k of d.kinds) {
      x -= k.weight;
      if (x < 0) return k.key;
    }
    return d.kinds[d.kinds.length - 1]!.key;
  }

  private happening(d: RateDevice, at: SimTime): Happening {
    d.n++;
    const ids = { id: `${this.runTag}-${d.n.toString(36)}`, n: d.n };
    const rng = this.rng;
    switch (this.pickKind(d)) {
      case "heartbeat":
        return {
          kind: "heartbeat",
          at,
          ...ids,
          battery: d.encoder.battery ? rng.int(40, 100) : undefined,
          rssi: rng.int(-82, -50),
          firmware: d.encoder.firmware,
        };
      case "bed":
        d.outOfBed = !d.outOfBed;
        return d.outOfBed ? { kind: "bed.exit", at, ...ids } : { kind: "bed.return", at, ...ids };
      case "call.manual":
        return { kind: "call.manual", at, ...ids, pressDurationSec: round(rng.uniform(0.3, 3), 1) };
      case "lift.cycle":
        return {
          kind: "lift.cycle",
          at,
          ...ids,
          startedAt: at - Math.round(rng.normal(156.9, 30) * 1000),
          endedAt: at,
          loadKg: round(rng.uniform(45, 110), 1),
          helpers: rng.chance(DEFAULT_PARAMS.liftOneHelperShare) ? 1 : 2,
          transfer: rng.pick<Transfer>(["bed-chair", "chair-bed", "bed-toilet", "toilet-bed"]),
        };
      case "fall": {
        if (!d.fall) {
          const stages = (["detected", "confirmed", "ended"] as const).filter((s) =>
            d.encoder.fallStages.has(s),
          );
          d.fall = { stages, next: 0, fall: { ...ids, at, detected: true } };
        }
        const f = d.fall;
        const stage = f.stages[f.next++]!;
        if (f.next >= f.stages.length) d.fall = null;
        return {
          kind: "fall",
          stage,
          at,
          ...ids,
          fall: f.fall,
          ...(stage === "detected" ? { confidence: round(rng.uniform(0.75, 0.99), 2) } : {}),
          ...(stage === "ended" ? { onGroundSec: Math.round((at - f.fall.at) / 1000) } : {}),
        };
      }
    }
  }
}
