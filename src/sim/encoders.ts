/**
 * Encoders: the simulator's devices speak their vendors' own formats. Each encoder turns an intended
 * happening in the world ("a fall was detected at 03:13:05 with confidence 0.91") into the MQTT channel
 * and payload bytes that a device of that profile would publish, so that the gateway's real decoders
 * are what the simulation exercises. test/sim/encoders.test.ts proves the round trip through each
 * profile's `decode()`.
 *
 * An encoder covers only what its device emits: a pendant cannot report a fall, a Milesight VS373 has
 * no "confirmed" or "cancelled" fall status. `supports()` says what it can say; `encode()` of anything
 * else throws UnsupportedHappening. Encoders are pure: everything a payload needs (ids, times,
 * counters) is in the happening, so the same happening always gives the same bytes and a QoS 1
 * redelivery dedupes at the gateway.
 */
import type { TRANSFERS } from "../model/event.js";
import { localParts } from "../time/zone.js";

/** Epoch milliseconds of simulated time. */
export type SimTime = number;

export const FALL_STAGES = ["suspected", "detected", "confirmed", "cancelled", "ended"] as const;
export type FallStage = (typeof FALL_STAGES)[number];

export interface Location {
  /** Metres in the sensor's frame. */
  x: number;
  y: number;
  z?: number;
}

interface Base {
  /** When the device reports it (simulated time, epoch ms). */
  at: SimTime;
  /** Unique per device and run; becomes the eventId (or a vendor's message reference) where the format has one. */
  id: string;
  /** Per-device message counter, for vendors whose references are numbers (Milesight `trigger_id`). */
  n: number;
}

export interface FallHappening extends Base {
  kind: "fall";
  stage: FallStage;
  /** The fall (or suspected fall) this message belongs to: one id, one start time, across its stages. */
  fall: {
    id: string;
    n: number;
    /** When the fall began. */
    at: SimTime;
    /** Whether the device reported a fall (true) or only a suspected one it later dropped (false). */
    detected: boolean;
  };
  confidence?: number;
  location?: Location;
  /** On an `ended` stage: the resident left the floor this long after the fall began (`at - fall.at`). */
  onGroundSec?: number;
}

export interface BedExitHappening extends Base {
  kind: "bed.exit";
}
export interface BedReturnHappening extends Base {
  kind: "bed.return";
  dwellSec?: number;
}
export interface CallHappening extends Base {
  kind: "call.manual";
  pressDurationSec?: number;
}
export interface LiftHappening extends Base {
  kind: "lift.cycle";
  startedAt: SimTime;
  endedAt: SimTime;
  loadKg?: number;
  helpers: number;
  transfer?: (typeof TRANSFERS)[number];
  fault?: string;
}
export interface HeartbeatHappening extends Base {
  kind: "heartbeat";
  battery?: number;
  rssi?: number;
  firmware?: string;
}

export type Happening =
  | FallHappening
  | BedExitHappening
  | BedReturnHappening
  | CallHappening
  | LiftHappening
  | HeartbeatHappening;
export type HappeningKind = Happening["kind"];
export const HAPPENING_KINDS: readonly HappeningKind[] = [
  "fall",
  "bed.exit",
  "bed.return",
  "call.manual",
  "lift.cycle",
  "heartbeat",
];

export interface Encoded {
  /** Topic suffix below `ata/v1/<deviceId>/`. */
  channel: string;
  payload: Buffer;
}

export interface EncodeContext {
  /** The site's IANA time zone, for vendors whose clocks send local time without an offset. */
  timeZone: string;
}

export interface Encoder {
  profile: string;
  /** Happening kinds this device emits. */
  kinds: ReadonlySet<HappeningKind>;
  /** Fall stages this device reports (empty when it reports no falls). */
  fallStages: ReadonlySet<FallStage>;
  /** Whether the heartbeat carries a battery level (mains-powered radars have none). */
  battery: boolean;
  /** Firmware string the simulated device reports in its heartbeat. */
  firmware: string;
  encode(h: Happening, ctx?: EncodeContext): Encoded;
}

export class UnsupportedHappening extends Error {
  constructor(profile: string, what: string) {
    super(`${profile} does not emit ${what}`);
    this.name = "UnsupportedHappening";
  }
}

export function supports(encoder: Encoder, h: Pick<Happening, "kind"> & { stage?: FallStage }): boolean {
  if (!encoder.kinds.has(h.kind)) return false;
  return h.kind !== "fall" || (h.stage !== undefined && encoder.fallStages.has(h.stage));
}

const DEFAULT_CONTEXT: EncodeContext = { timeZone: "Europe/Copenhagen" };

const json = (channel: string, value: unknown): Encoded => ({
  channel,
  payload: Buffer.from(JSON.stringify(value)),
});
const iso = (t: SimTime) => new Date(t).toISOString();

function define(
  profile: string,
  spec: {
    kinds: HappeningKind[];
    fallStages?: FallStage[];
    battery: boolean;
    firmware: string;
    encode: (h: Happening, ctx: EncodeContext, unsupported: () => never) => Encoded;
  },
): Encoder {
  const encoder: Encoder = {
    profile,
    kinds: new Set(spec.kinds),
    fallStages: new Set(spec.fallStages ?? []),
    battery: spec.battery,
    firmware: spec.firmware,
    encode(h, ctx = DEFAULT_CONTEXT) {
      const unsupported = (): never => {
        throw new UnsupportedHappening(profile, h.kind === "fall" ? `fall stage "${h.stage}"` : h.kind);
      };
      if (!supports(encoder, h)) unsupported();
      return spec.encode(h, ctx, unsupported);
    },
  };
  return encoder;
}

// ---------------------------------------------------------------------------------------------------
// ata/native: canonical events, as docs/mqtt-contract.md describes them.

const nativeEncoder = define("ata/native", {
  kinds: [...HAPPENING_KINDS],
  fallStages: [...FALL_STAGES],
  battery: true,
  firmware: "sim-native-1.0",
  encode(h) {
    const envelope = { eventId: h.id, occurredAt: iso(h.at) };
    switch (h.kind) {
      case "fall":
        return json("events", {
          ...envelope,
          type: `fall.${h.stage}`,
          data: { confidence: h.confidence, location: h.location, onGroundSec: h.onGroundSec },
        });
      case "bed.exit":
        return json("events", { ...envelope, type: "bed.exit", data: {} });
      case "bed.return":
        return json("events", { ...envelope, type: "bed.return", data: { dwellSec: h.dwellSec } });
      case "call.manual":
        return json("events", {
          ...envelope,
          type: "call.manual",
          data: { pressDurationSec: h.pressDurationSec },
        });
      case "lift.cycle":
        return json("events", {
          ...envelope,
          type: "lift.cycle",
          data: {
            startedAt: iso(h.startedAt),
            endedAt: iso(h.endedAt),
            loadKg: h.loadKg,
            helpers: h.helpers,
            transfer: h.transfer,
            fault: h.fault,
          },
        });
      case "heartbeat":
        return json("heartbeat", {
          occurredAt: iso(h.at),
          battery: h.battery,
          rssi: h.rssi,
          firmware: h.firmware,
        });
    }
  },
});

// ---------------------------------------------------------------------------------------------------
// vayyar/care: `events` as {type, payload}: type 1 a fall status, type 10 out of bed, type 0 presence
// (the bed region, key "0", occupied again is the return); `state` every 2 minutes is the heartbeat
// (devices/vayyar-care.ts names the public sources). The format has no fall id, confidence or
// location: the fall's start time identifies it.

const VAYYAR_STATUS: Record<FallStage, string> = {
  suspected: "fall_suspected",
  detected: "fall_detected",
  confirmed: "fall_confirmed",
  cancelled: "canceled",
  // `ended` is fall_exit when the resident got up (time on the ground known), else finished.
  ended: "finished",
};
const VAYYAR_TYPE = { presence: 0, fall: 1, outOfBed: 10 } as const;

const vayyarEncoder = define("vayyar/care", {
  kinds: ["fall", "bed.exit", "bed.return", "heartbeat"],
  fallStages: [...FALL_STAGES],
  battery: false,
  firmware: "v40.5.2",
  encode(h, _ctx, unsupported) {
    switch (h.kind) {
      case "fall": {
        const onGround = h.stage === "ended" ? h.onGroundSec : undefined;
        return json("events", {
          type: VAYYAR_TYPE.fall,
          payload: {
            status: onGround === undefined ? VAYYAR_STATUS[h.stage] : "fall_exit",
            timestamp: h.fall.at,
            statusUpdateTimestamp: h.at,
            ...(onGround === undefined ? {} : { endTimestamp: h.fall.at + Math.round(onGround * 1000) }),
          },
        });
      }
      case "bed.exit":
        return json("events", { type: VAYYAR_TYPE.outOfBed, payload: { timestamp: h.at } });
      case "bed.return":
        return json("events", {
          type: VAYYAR_TYPE.presence,
          payload: { presenceDetected: true, presenceRegionMap: { "0": 1 }, timestamp: h.at },
        });
      case "heartbeat":
        // A real report differs from the last by its uptime; identical bytes would dedupe as a redelivery.
        return json("state", {
          status: "monitoring",
          uptime: Math.floor(h.at / 1000),
          wifi: { rssi: h.rssi },
        });
      default:
        return unsupported();
    }
  },
});

// ---------------------------------------------------------------------------------------------------
// milesight/vs373: numeric trigger events on `up`, device-local time without an offset.

const MS_EVENT = { fall: 0, outOfBed: 3, lying: 8 } as const;
const MS_STATUS = { alarm: 1, resolve: 2 } as const;

/** "2025-01-15 03:13:05" in the site's time zone, as the VS373's `device_info.time`. */
export function localTimeString(t: SimTime, timeZone: string): string {
  const parts = localParts(t, timeZone);
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${parts.year}-${p2(parts.month)}-${p2(parts.day)} ${p2(parts.hour)}:${p2(parts.minute)}:${p2(parts.second)}`;
}

const mm = (metres: number) => Math.round(metres * 1000);

const milesightEncoder = define("milesight/vs373", {
  kinds: ["fall", "bed.exit", "bed.return", "heartbeat"],
  // The VS373 has Fall (0) and Lying (8) alarms and their resolves; no confirmation or cancellation.
  fallStages: ["suspected", "detected", "ended"],
  battery: false,
  firmware: "V_373_1.0.4",
  encode(h, ctx, unsupported) {
    const deviceInfo = {
      device_model: "VS373-915M",
      device_sn: "6806E5151075SIM0",
      time: localTimeString(h.at, ctx.timeZone),
    };
    switch (h.kind) {
      case "fall": {
        const alarm = h.stage !== "ended";
        const code =
          h.stage === "suspected" || (h.stage === "ended" && !h.fall.detected)
            ? MS_EVENT.lying
            : MS_EVENT.fall;
        const loc =
          alarm && h.location
            ? ` (${mm(h.location.x)}, ${mm(h.location.y)}, ${mm(h.location.z ?? 0)})`
            : undefined;
        return json("up", {
          device_info: deviceInfo,
          trigger_data: {
            type: 0,
            trigger_id: h.fall.n,
            event: code,
            status: alarm ? MS_STATUS.alarm : MS_STATUS.resolve,
            location: loc,
          },
        });
      }
      case "bed.exit":
      case "bed.return":
        return json("up", {
          device_info: deviceInfo,
          trigger_data: {
            type: 0,
            trigger_id: h.n,
            event: MS_EVENT.outOfBed,
            status: h.kind === "bed.exit" ? MS_STATUS.alarm : MS_STATUS.resolve,
            sub_no: 1,
          },
        });
      case "heartbeat":
        return json("up", { device_info: { ...deviceInfo, firmware_version: h.firmware } });
      default:
        return unsupported();
    }
  },
});

// ---------------------------------------------------------------------------------------------------
// SCAIP devices: JSON alarm (AL) and heartbeat (PI) messages on `scaip`, times in epoch ms.

function scaipHeartbeat(dty: string, h: HeartbeatHappening): Encoded {
  return json("scaip", { mty: "PI", dty, ts: h.at, bat: h.battery, rssi: h.rssi, fw: h.firmware });
}

const pendantEncoder = define("scaip/pendant", {
  kinds: ["call.manual", "heartbeat"],
  battery: true,
  firmware: "3.1.4",
  encode(h, _ctx, unsupported) {
    if (h.kind === "call.manual") {
      return json("scaip", {
        mty: "AL",
        dty: "0003",
        stc: "0010",
        ref: h.id,
        ts: h.at,
        dur: h.pressDurationSec,
      });
    }
    if (h.kind === "heartbeat") return scaipHeartbeat("0003", h);
    return unsupported();
  },
});

const bedMatEncoder = define("scaip/bed-mat", {
  kinds: ["bed.exit", "bed.return", "heartbeat"],
  battery: true,
  firmware: "mat-1.2.0",
  encode(h, _ctx, unsupported) {
    if (h.kind === "bed.exit" || h.kind === "bed.return") {
      // The mat knows only pressure on / off: dwell time is the rules' business.
      return json("scaip", {
        mty: "AL",
        dty: "0012",
        stc: h.kind === "bed.exit" ? "0010" : "0117",
        ref: h.id,
        ts: h.at,
      });
    }
    if (h.kind === "heartbeat") return scaipHeartbeat("0012", h);
    return unsupported();
  },
});

// ---------------------------------------------------------------------------------------------------
// generic/ceiling-lift: one message per completed cycle on `cycle`, `heartbeat`.

const liftEncoder = define("generic/ceiling-lift", {
  kinds: ["lift.cycle", "heartbeat"],
  battery: true,
  firmware: "lift-2.8.1",
  encode(h, _ctx, unsupported) {
    if (h.kind === "lift.cycle") {
      return json("cycle", {
        cycleId: h.id,
        start: h.startedAt,
        end: h.endedAt,
        loadKg: h.loadKg,
        helpers: h.helpers,
        transfer: h.transfer,
        fault: h.fault ?? null,
      });
    }
    if (h.kind === "heartbeat") {
      return json("heartbeat", { ts: h.at, battery: h.battery, rssi: h.rssi, firmware: h.firmware });
    }
    return unsupported();
  },
});

// ---------------------------------------------------------------------------------------------------
// Devices behind a bridge (src/bridges/, docs/bridges.md). The simulator publishes on the device's
// channel exactly what the bridge would hand to ingest: the network server's uplink JSON on
// `lorawan` (ChirpStack v4's format, with the happening's id as deduplicationId and its time as the
// network server's receive time), zigbee2mqtt's state with the previous state on `zigbee2mqtt`.

/** A ChirpStack v4 up event around Milesight channel records. */
function chirpstackUp(h: Happening, hex: string): Encoded {
  return json("lorawan", {
    deduplicationId: h.id.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 64),
    time: iso(h.at),
    deviceInfo: { applicationName: "sim", devEui: "24e124713d07ffff" },
    fCnt: h.n,
    fPort: 85,
    data: Buffer.from(hex, "hex").toString("base64"),
    rxInfo: [{ rssi: "rssi" in h && h.rssi !== undefined ? h.rssi : -90 }],
  });
}
const u16le = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n & 0xffff);
  return b.toString("hex");
};
const u8 = (n: number) => (n & 0xff).toString(16).padStart(2, "0");

const vs373LorawanEncoder = define("milesight/vs373-lorawan", {
  kinds: ["fall", "bed.exit", "bed.return", "heartbeat"],
  // LoRaWAN alarm types have Fall and its deactivation; no lying, confirmation or cancellation.
  fallStages: ["detected", "ended"],
  battery: false,
  firmware: "v1.2",
  encode(h, _ctx, unsupported) {
    // 06 fb: alarm_id u16le, alarm_type (0 fall, 3 out of bed), alarm_status (1 triggered, 2 deactivated), region
    const alarm = (type: number, on: boolean, id: number) =>
      `06fb${u16le(id)}${u8(type)}${on ? "01" : "02"}01`;
    switch (h.kind) {
      case "fall":
        return chirpstackUp(h, alarm(0, h.stage !== "ended", h.fall.n));
      case "bed.exit":
      case "bed.return":
        return chirpstackUp(h, alarm(3, h.kind === "bed.exit", h.n));
      case "heartbeat":
        // ff 0a firmware 1.2, 03 f8 room detection (in bed, normal target, use times).
        return chirpstackUp(h, `ff0a0102 03f802000000${u16le(h.n)}`.replace(" ", ""));
      default:
        return unsupported();
    }
  },
});

const ws301Encoder = define("milesight/ws301", {
  kinds: ["heartbeat"],
  battery: true,
  firmware: "v1.4",
  encode(h, _ctx, unsupported) {
    if (h.kind !== "heartbeat") return unsupported();
    // 01 75 battery: the periodic report.
    return chirpstackUp(h, `0175${u8(h.battery ?? 100)}`);
  },
});

const z2m = (model: string, h: Happening, state: object, previous: object | null): Encoded =>
  json("zigbee2mqtt", { model, state: { ...state, last_seen: iso(h.at) }, previous });

const aqaraDoorEncoder = define("aqara/mccgq11lm", {
  kinds: ["heartbeat"],
  battery: true,
  firmware: "zigbee",
  encode(h, _ctx, unsupported) {
    if (h.kind !== "heartbeat") return unsupported();
    const state = { battery: h.battery, contact: true, linkquality: 120 };
    return z2m("MCCGQ11LM", h, state, state);
  },
});

const aqaraButtonEncoder = define("aqara/wxkg11lm", {
  kinds: ["call.manual", "heartbeat"],
  battery: true,
  firmware: "zigbee",
  encode(h, _ctx, unsupported) {
    if (h.kind === "call.manual") return z2m("WXKG11LM", h, { action: "single", battery: 90 }, null);
    if (h.kind === "heartbeat") return z2m("WXKG11LM", h, { battery: h.battery }, null);
    return unsupported();
  },
});

const TUYA_FALL: Partial<Record<FallStage, [string, string]>> = {
  suspected: ["maybe_fall", "none"],
  detected: ["fall", "maybe_fall"],
  ended: ["none", "fall"],
};
const tuyaRadarEncoder = define("tuya/mir-he200-ty-fall", {
  kinds: ["fall", "heartbeat"],
  fallStages: ["suspected", "detected", "ended"],
  battery: false,
  firmware: "zigbee",
  encode(h, _ctx, unsupported) {
    const MODEL = "MIR-HE200-TY_fall";
    if (h.kind === "fall") {
      const [now, before] = TUYA_FALL[h.stage] ?? unsupported();
      return z2m(
        MODEL,
        h,
        { fall_down_status: now, presence: true },
        { fall_down_status: before, presence: true },
      );
    }
    if (h.kind === "heartbeat") {
      const state = { fall_down_status: "none", presence: true, illuminance_lux: h.n % 500 };
      return z2m(MODEL, h, state, { ...state, illuminance_lux: (h.n + 1) % 500 });
    }
    return unsupported();
  },
});

export const ENCODERS: ReadonlyMap<string, Encoder> = new Map(
  [
    nativeEncoder,
    vayyarEncoder,
    milesightEncoder,
    pendantEncoder,
    bedMatEncoder,
    liftEncoder,
    vs373LorawanEncoder,
    ws301Encoder,
    aqaraDoorEncoder,
    aqaraButtonEncoder,
    tuyaRadarEncoder,
  ].map((e) => [e.profile, e]),
);

export function getEncoder(profile: string): Encoder | undefined {
  return ENCODERS.get(profile);
}
