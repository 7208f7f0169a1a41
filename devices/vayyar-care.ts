/**
 * `vayyar/care`: a wall- or ceiling-mounted radar fall sensor of the Vayyar Care / Walabot Home family.
 *
 * The message layout follows public material on these devices' MQTT interface:
 * - an MQTT interface page ("MQTT", reStructuredText, generated with the firmware header
 *   `ex_com_mqtt.h`) for an ESP32 radar fall sensor of this family, in the public GitHub index this
 *   project searched: the device publishes below `/devices/{deviceId}/` on `events` and `state`.
 *   `events` carries `{"type": 0, "payload": {"presenceDetected", "timestamp"}}` for presence,
 *   `{"type": 1, "payload": {"status", "timestamp", "statusUpdateTimestamp", "endTimestamp"}}` for
 *   each fall transition (statuses written there as "fall confirmed", "fall exit", "calling",
 *   "finished") and `{"type": 2, "payload": {"id", "code", "msg", "timestamp"}}` answering a
 *   command; `state` is sent every 2 minutes: `{"status": "monitoring", "uptime", "radar_uptime",
 *   "memory_usage", "fall_led", "nw_led", "buzzer", "wifi": {"ssid", "rssi"}}`.
 * - People Power's "Vayyar Device Class Information" (botlab, integrator notes on Vayyar Care): the
 *   lifecycle fall_suspected -> fall_detected -> fall_confirmed -> calling, `durationUntilConfirm`
 *   (52 s) and `callingDurationSec` (30 s), `outOfBed` reporting "Empty bed (out of bed)" for the
 *   first sub-region, presence reports on a change of state.
 * - Public integration code for Vayyar's MQTT (a Python radar-event model and a Java fall service,
 *   both in the same index): the snake_case statuses fall_detected, fall_confirmed, calling, on_call,
 *   finished, fall_exit, canceled; `timestamp` in epoch milliseconds; event type code 10 for an
 *   out-of-bed event; presence payloads with `presenceRegionMap` ({"<region>": 0 | 1}),
 *   `roomPresenceIndication` and `trackerTargets`.
 * - PureLife Cloud's sensor FAQ (docs.vayyar-cloud.smart-altern.de): from firmware 0.40 a bed region
 *   gives an event when a person enters or leaves it, within 15 to 60 seconds.
 *
 * Where the public material is silent, this profile infers (and a recording from a real device
 * should confirm):
 * - Topics: the device's `/devices/<id>/events` and `/state` arrive as `ata/v1/<id>/events` and
 *   `/state` (the device's topic prefix configured, or a bridge rewriting it).
 * - Statuses are read in both spellings: lower case, a space and an underscore alike ("fall exit" =
 *   "fall_exit"); `cancelled` is read like Vayyar's `canceled`.
 * - `timestamp` is when the fall began and stays the same through its transitions, so it identifies
 *   the fall: eventId is `<timestamp ms>:<status>`, one per transition, and a QoS 1 redelivery of the
 *   same transition dedupes even when re-serialised. Without a timestamp the gateway derives the id.
 * - occurredAt is `statusUpdateTimestamp` (when the device entered the status), else `timestamp`.
 * - onGroundSec, for fall_exit only, is from `timestamp` to `endTimestamp` (else to
 *   `statusUpdateTimestamp`): the time from the fall to leaving the fall location.
 * - The out-of-bed event (type 10) carries at least `timestamp` in its payload; its other fields are
 *   not public and are ignored.
 * - The bed is the first sub-region (the one `outOfBed` watches) and is key "0" in
 *   `presenceRegionMap`; a presence report showing it occupied is bed.return. Presence reports come
 *   on a change of state (a region's enter/exit durations), so this is the bed filling again; with
 *   periodic presence reporting switched on, each report while the bed is occupied repeats it, which
 *   the rules take as "still in bed" (bed.return only ever resolves a bed-exit alert). An empty bed
 *   region in a presence report is not a bed exit: a resident moving about by day would raise one on
 *   every change, so exits come from the out-of-bed event alone.
 * - The `state` report is the heartbeat (every 2 minutes); it has no device time.
 *
 * Mapping decisions:
 * - `calling` and `on_call` -> fall.confirmed, phase "update": the device escalates (buzzer, dry
 *   contact) a fall it confirmed. That re-triggers the open alert rather than raising a second one,
 *   and still raises one if fall_confirmed never arrived.
 * - `finished` and `fall_exit` -> fall.ended. `finished` only means the calling period is over, not
 *   that the resident is up; fall.ended never resolves an alert by itself.
 * - Presence (type 0) without the bed region occupied, and command replies (type 2), have no
 *   canonical event: accepted, nothing logged.
 *   Another type number is rejected with unknown_event, so a firmware that adds one is seen in the
 *   dead letters instead of silently dropped.
 */
import { z } from "zod";
import type { EventType, Phase } from "../src/model/event.js";
import { DecodeError, type DeviceProfile } from "../src/model/profile.js";
import { byChannel, ClockTime, DeviceEventId, decodeJson, event, heartbeat, parseWith } from "./blocks.js";

type FallType = Extract<EventType, `fall.${string}`>;
const FALL_STATUS: Readonly<Record<string, { type: FallType; phase?: Phase }>> = {
  fall_suspected: { type: "fall.suspected" },
  fall_detected: { type: "fall.detected" },
  fall_confirmed: { type: "fall.confirmed" },
  calling: { type: "fall.confirmed", phase: "update" },
  on_call: { type: "fall.confirmed", phase: "update" },
  finished: { type: "fall.ended" },
  fall_exit: { type: "fall.ended" },
  canceled: { type: "fall.cancelled" },
  cancelled: { type: "fall.cancelled" },
};

/** The message types on `events` this profile reads. */
const TYPE = { presence: 0, fall: 1, commandReply: 2, outOfBed: 10 } as const;

const EventsMessage = z.looseObject({ type: z.number().int(), payload: z.unknown() });

const FallPayload = z.looseObject({
  status: z.string().min(1).max(32),
  /** When the fall began. */
  timestamp: ClockTime.optional(),
  /** When the device entered this status. */
  statusUpdateTimestamp: ClockTime.optional(),
  /** When the fall (or the status) ended. */
  endTimestamp: ClockTime.optional(),
});

/** Key of the bed (the first sub-region) in `presenceRegionMap`. */
const BED_REGION = "0";
const PresencePayload = z.looseObject({
  presenceDetected: z.boolean(),
  presenceRegionMap: z.record(z.string(), z.number()).optional(),
  timestamp: ClockTime.optional(),
});

const OutOfBedPayload = z.looseObject({ timestamp: ClockTime.optional() });

/**
 * `events` as the device sends it, one schema per message type, for docs/asyncapi.yaml (decode reads
 * `type` first, so that an unknown type is unknown_event rather than bad_schema).
 */
const EventsAsSent = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal(TYPE.presence), payload: PresencePayload }),
  z.looseObject({ type: z.literal(TYPE.fall), payload: FallPayload }),
  z.looseObject({ type: z.literal(TYPE.commandReply), payload: z.unknown() }),
  z.looseObject({ type: z.literal(TYPE.outOfBed), payload: OutOfBedPayload.nullish() }),
]);

const StateMessage = z.looseObject({
  status: z.string().max(32).optional(),
  uptime: z.number().optional(),
  wifi: z
    .looseObject({ ssid: z.string().optional(), rssi: z.number().min(-200).max(50).optional() })
    .optional(),
});

/** "Fall Exit", "fall exit" and "fall_exit" are one status. */
function normaliseStatus(status: string): string {
  return status
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, "_");
}

const ms = (iso: string) => Date.parse(iso);

export const vayyarCare: DeviceProfile = {
  id: "vayyar/care",
  vendor: "Vayyar",
  model: "Care / Walabot Home (radar, MQTT)",
  kind: "fall-sensor",
  description:
    "Radar fall sensor: `events` messages {type, payload} with the fall status sequence " +
    "(fall_detected, fall_confirmed, calling, finished, fall_exit, canceled), out-of-bed and presence " +
    "(bed region occupied is back in bed); " +
    "`state` every 2 minutes as the heartbeat.",
  topics: ["events", "state"],
  // The state report comes every 2 minutes: three missed is six minutes unwatched, then an alert.
  supervision: { heartbeatSec: 120, missedHeartbeats: 3 },
  // SCAIP dty for a fall detector (DESIGN.md); no stc mapping until verified against CLC/TS 50134-9.
  scaip: { dty: "0005" },
  emits: [
    "fall.suspected",
    "fall.detected",
    "fall.confirmed",
    "fall.cancelled",
    "fall.ended",
    "bed.exit",
    "bed.return",
    "device.heartbeat",
  ],
  payloads: { events: EventsAsSent, state: StateMessage },
  decode: byChannel({
    events: ({ payload, receivedAt }) => {
      const m = decodeJson(payload, EventsMessage, "event");
      switch (m.type) {
        case TYPE.fall: {
          const p = parseWith(FallPayload, m.payload, "fall event: payload");
          const status = normaliseStatus(p.status);
          const mapped = Object.hasOwn(FALL_STATUS, status) ? FALL_STATUS[status] : undefined;
          if (!mapped)
            throw new DecodeError(
              "unknown_event",
              `fall status "${p.status}" is not a known Vayyar fall status`,
            );
          const exitAt = p.endTimestamp ?? p.statusUpdateTimestamp;
          const onGroundSec =
            status === "fall_exit" && p.timestamp && exitAt
              ? Math.max(0, (ms(exitAt) - ms(p.timestamp)) / 1000)
              : undefined;
          const eventId = p.timestamp
            ? parseWith(DeviceEventId, `${ms(p.timestamp)}:${status}`, "eventId")
            : undefined;
          return [
            event(
              mapped.type,
              { onGroundSec },
              {
                occurredAt: p.statusUpdateTimestamp ?? p.timestamp ?? receivedAt,
                eventId,
                phase: mapped.phase,
              },
            ),
          ];
        }
        case TYPE.outOfBed: {
          const p = parseWith(OutOfBedPayload, m.payload ?? {}, "out-of-bed event: payload");
          return [event("bed.exit", {}, { occurredAt: p.timestamp ?? receivedAt })];
        }
        case TYPE.presence: {
          const p = parseWith(PresencePayload, m.payload, "presence event: payload");
          if (p.presenceRegionMap?.[BED_REGION] !== 1) return [];
          return [event("bed.return", {}, { occurredAt: p.timestamp ?? receivedAt })];
        }
        case TYPE.commandReply:
          return [];
        default:
          throw new DecodeError("unknown_event", `event type ${m.type} is not a known Vayyar event type`);
      }
    },
    state: ({ payload, receivedAt }) => {
      const m = decodeJson(payload, StateMessage, "state report");
      return heartbeat({ rssi: m.wifi?.rssi }, receivedAt);
    },
  }),
  fixtures: [
    {
      name: "fall_suspected, times in epoch ms",
      topic: "events",
      payload: { type: 1, payload: { status: "fall_suspected", timestamp: 1736907185000 } },
      expected: [
        {
          type: "fall.suspected",
          eventId: "1736907185000:fall_suspected",
          occurredAt: "2025-01-15T02:13:05.000Z",
          data: {},
        },
      ],
    },
    {
      name: "fall_detected",
      topic: "events",
      payload: {
        type: 1,
        payload: { status: "fall_detected", timestamp: 1736907185000, statusUpdateTimestamp: 1736907190000 },
      },
      expected: [
        {
          type: "fall.detected",
          eventId: "1736907185000:fall_detected",
          occurredAt: "2025-01-15T02:13:10.000Z",
          data: {},
        },
      ],
    },
    {
      name: "fall confirmed, spelled with a space as in the interface page",
      topic: "events",
      payload: {
        type: 1,
        payload: {
          status: "fall confirmed",
          timestamp: 1736907185000,
          statusUpdateTimestamp: 1736907237000,
          endTimestamp: 0,
        },
      },
      expected: [
        {
          type: "fall.confirmed",
          eventId: "1736907185000:fall_confirmed",
          occurredAt: "2025-01-15T02:13:57.000Z",
          data: {},
        },
      ],
    },
    {
      name: "calling updates the confirmed fall",
      topic: "events",
      payload: {
        type: 1,
        payload: { status: "calling", timestamp: 1736907185000, statusUpdateTimestamp: 1736907267000 },
      },
      expected: [
        {
          type: "fall.confirmed",
          eventId: "1736907185000:calling",
          occurredAt: "2025-01-15T02:14:27.000Z",
          phase: "update",
          data: {},
        },
      ],
    },
    {
      name: "fall exit ends the fall with the time spent on the ground",
      topic: "events",
      payload: {
        type: 1,
        payload: {
          status: "fall exit",
          timestamp: 1736907185000,
          statusUpdateTimestamp: 1736907521000,
          endTimestamp: 1736907520000,
        },
      },
      expected: [
        {
          type: "fall.ended",
          eventId: "1736907185000:fall_exit",
          occurredAt: "2025-01-15T02:18:41.000Z",
          data: { onGroundSec: 335 },
        },
      ],
    },
    {
      name: "finished ends the device's calling period, without a time on the ground",
      topic: "events",
      payload: {
        type: 1,
        payload: {
          status: "finished",
          timestamp: 1736907185000,
          statusUpdateTimestamp: 1736907520000,
          endTimestamp: 1736907520000,
        },
      },
      expected: [
        {
          type: "fall.ended",
          eventId: "1736907185000:finished",
          occurredAt: "2025-01-15T02:18:40.000Z",
          data: {},
        },
      ],
    },
    {
      name: "canceled, with an ISO time",
      topic: "events",
      payload: { type: 1, payload: { status: "canceled", timestamp: "2025-01-15T03:14:00+01:00" } },
      expected: [
        {
          type: "fall.cancelled",
          eventId: "1736907240000:canceled",
          occurredAt: "2025-01-15T02:14:00.000Z",
          data: {},
        },
      ],
    },
    {
      name: "out of bed (type 10) is a bed exit",
      topic: "events",
      payload: { type: 10, payload: { timestamp: 1736907240000 } },
      expected: [{ type: "bed.exit", occurredAt: "2025-01-15T02:14:00.000Z", data: {} }],
    },
    {
      name: "presence with the bed region occupied is back in bed",
      topic: "events",
      payload: {
        type: 0,
        payload: {
          presenceDetected: true,
          presenceRegionMap: { "0": 1, "1": 0 },
          roomPresenceIndication: 1,
          timestamp: 1736907300000,
        },
      },
      expected: [{ type: "bed.return", occurredAt: "2025-01-15T02:15:00.000Z", data: {} }],
    },
    {
      name: "presence elsewhere in the room has no canonical event",
      topic: "events",
      payload: {
        type: 0,
        payload: { presenceDetected: true, presenceRegionMap: { "0": 0, "1": 1 }, timestamp: 1736907240000 },
      },
      expected: [],
    },
    {
      name: "a command reply has no canonical event",
      topic: "events",
      payload: { type: 2, payload: { id: "cmd-17", code: 0, msg: "Success", timestamp: 1736907240000 } },
      expected: [],
    },
    {
      name: "the 2-minute state report is the heartbeat, with the Wi-Fi signal",
      topic: "state",
      payload: {
        status: "monitoring",
        uptime: 86400,
        radar_uptime: 86380,
        memory_usage: 61,
        fall_led: true,
        nw_led: true,
        buzzer: true,
        wifi: { ssid: "care-iot", rssi: -58 },
      },
      expected: [{ type: "device.heartbeat", occurredAt: "2025-01-15T02:14:07.250Z", data: { rssi: -58 } }],
    },
    {
      name: "an unknown fall status is rejected",
      topic: "events",
      payload: { type: 1, payload: { status: "fall_maybe", timestamp: 1736907185000 } },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "an unknown event type is rejected",
      topic: "events",
      payload: { type: 7, payload: { timestamp: 1736907185000 } },
      expected: [],
      rejects: "unknown_event",
    },
    {
      name: "a fall without a status is rejected",
      topic: "events",
      payload: { type: 1, payload: { timestamp: 1736907185000 } },
      expected: [],
      rejects: "bad_schema",
    },
  ],
};
