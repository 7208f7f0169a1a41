/**
 * Demo mode: a simulated nursing home plays against this gateway over real MQTT, so that a newcomer
 * who runs `npm start` sees alerts arrive on the console and the dashboard fill.
 *
 * 1. History: the last `historyDays` are played as fast as the gateway acknowledges, with the
 *    model's realistic rates. The rule engine logs them without paging anyone (the demo's devices
 *    count as replaying until the history is in). On a restart with the same data directory the
 *    event log already holds the demo's history (and its live phase): only the time since its last
 *    event is played (the gateway was down then), never the whole window again on top.
 *    The event log itself is the record of what was played: a separate marker could disagree with
 *    it after a crash mid-history, the log cannot.
 * 2. Live: from now on, in real time, with call and fall rates boosted so that something happens
 *    every minute or so (documented in the config; real sites never run this).
 * 3. A simulated colleague ("Demo-kollega") accepts, attends and resolves live alerts after a
 *    human-scale delay, unless a person using the console takes them first, so response times
 *    and outcomes exist for the dashboard.
 */
import type { AlertManager } from "../alerts/manager.js";
import type { AlertView, Outcome } from "../alerts/model.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { parseBaseline } from "../reports/baseline/schema.js";
import type { BaselineStore } from "../reports/baseline/store.js";
import type { RuleEngine } from "../rules/engine.js";
import type { StaffIdentity } from "../staff/protocol.js";
import { ENCODERS } from "./encoders.js";
import { type DeviceSpec, type ModelParams, NursingHomeModel, populationFromConfig } from "./model.js";
import { type RunnerDevice, SimRunner } from "./runner.js";

export interface DemoOptions {
  historyDays: number;
  /** Multiplier on calls, falls, false alarms and bed exits in the live phase. */
  liveBoost: number;
  staffBot: boolean;
  /** Real seconds before the simulated colleague accepts an alert nobody took. */
  botAcceptAfterSec: [number, number];
}

export interface DemoContext {
  config: Config;
  mqttUrl: string;
  alerts: AlertManager;
  rules: RuleEngine;
  log: Logger;
  options: DemoOptions;
  /**
   * Records that a device was online from `at` (the gateway observes presence itself, so a
   * simulated history needs its devices marked online from the start of that history).
   */
  markOnline(deviceId: string, at: number): Promise<void>;
  /**
   * Called once the history is in the event log, to compute its days (time-saved job). Not awaited
   * by the live phase: with the time-series store down it waits for the store, the home need not.
   */
  historyPlayed(from: number, to: number): Promise<void>;
  /** The latest occurred_at in the event log of any of these devices, or null when they have none. */
  lastEventAt(deviceIds: readonly string[]): number | null;
}

/**
 * Records the demo's baselines (config `demo.baselines`) for a site and unit that have none yet: a
 * baseline someone recorded, even over an earlier demo run, is never replaced.
 */
export function seedDemoBaselines(store: BaselineStore, config: Config, log: Logger): void {
  for (const raw of config.demo.baselines) {
    const b = parseBaseline(raw);
    if (store.list(b.site, b.unit ?? null).length > 0) continue;
    const saved = store.save(b, "demo");
    log.info(
      { site: saved.site, unit: saved.unit, version: saved.version },
      "demo: illustrative baseline recorded",
    );
  }
}

/** A gap shorter than this since the demo's last event is not worth a history playback. */
const MIN_GAP_MS = 60_000;

/** Outcomes the simulated colleague reports, by alert type, with weights. */
const OUTCOMES: Record<string, [Outcome, number][]> = {
  fall: [
    ["fall-without-injury", 0.55],
    ["false-alarm", 0.3],
    ["fall-with-injury", 0.15],
  ],
  call: [
    ["assistance-given", 0.85],
    ["no-action", 0.1],
    ["false-alarm", 0.05],
  ],
  "bed-exit": [
    ["assistance-given", 0.7],
    ["no-action", 0.3],
  ],
};

export class DemoMode {
  private history: SimRunner | null = null;
  private live: SimRunner | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly bot: StaffIdentity;
  /** Where the demo is: for /readyz-style questions and tests ("is the home live yet?"). */
  phase: "starting" | "history" | "live" | "stopped" = "starting";

  constructor(private readonly ctx: DemoContext) {
    this.bot = {
      id: "demo-colleague",
      name: "Demo-kollega",
      role: "nurse",
      sites: ctx.config.sites.map((s) => s.id),
      units: null,
    };
  }

  /** Starts in the background; the gateway does not wait for the history to finish. */
  start(): void {
    if (this.ctx.options.staffBot) this.ctx.alerts.on("change", this.onChange);
    void this.run().catch((err: Error) =>
      this.ctx.log.error({ err: err.message }, "demo simulation stopped"),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.phase = "stopped";
    this.ctx.alerts.off("change", this.onChange);
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([this.history?.stop(), this.live?.stop()]);
  }

  private devices(): { runner: RunnerDevice[]; specs: DeviceSpec[] } {
    const { config } = this.ctx;
    const tz = new Map(config.sites.map((s) => [s.id, s.timeZone]));
    const chosen = config.devices.filter((d) => ENCODERS.has(d.profile));
    const ids = new Set(chosen.map((d) => d.id));
    return {
      runner: chosen.map((d) => ({
        id: d.id,
        profile: d.profile,
        secret: d.secret,
        timeZone: tz.get(d.site),
      })),
      specs: populationFromConfig(config).devices.filter((d) => ids.has(d.id)),
    };
  }

  private async run(): Promise<void> {
    const { config, options, log } = this.ctx;
    const { runner, specs } = this.devices();
    if (!runner.length) return;
    const population = populationFromConfig(config);
    const now = Date.now();
    const historyMs = options.historyDays * 86_400_000;
    const last = historyMs > 0 ? this.ctx.lastEventAt(runner.map((d) => d.id)) : null;
    const from = last === null ? now - historyMs : Math.max(now - historyMs, last + 1);
    if (last !== null)
      log.info(
        { lastEventAt: new Date(last).toISOString(), playFrom: new Date(from).toISOString() },
        "demo: history already in the event log; playing only the time since",
      );

    if (historyMs > 0 && now - from >= MIN_GAP_MS) {
      // History arrives late by definition: log it, page nobody. Only the demo's own devices, and
      // only until the history is in (finally: a failed playback must not leave them silent).
      this.ctx.rules.replaying = new Set(runner.map((d) => d.id));
      this.phase = "history";
      try {
        await this.playHistory(runner, specs, population, from, now);
      } finally {
        this.ctx.rules.replaying = new Set();
      }
      // The days are computed before the live phase, so the dashboard has them when it starts; but
      // they are written to the time-series store, which may be down: then the home goes live
      // anyway (the job retries failed days on its next run).
      await this.ctx
        .historyPlayed(from, Date.now())
        .catch((err: Error) =>
          log.warn(
            { err: err.message },
            "demo: days of the history not computed yet; the time-saved job retries",
          ),
        );
    }
    if (this.stopped) return;

    const b = options.liveBoost;
    const live: Partial<ModelParams> = {
      callsPerResidentDay: 1.5 * b,
      fallsPerBedYear: 1.5 * b * 20,
      falseAlarmsPerSensorWeek: 0.1 * b,
      cancelledFallsPerSensorWeek: 0.5 * b,
      bedExitsPerNight: 1.5 * Math.min(b, 4),
    };
    const model = new NursingHomeModel({
      ...population,
      devices: specs,
      seed: `demo-live-${now}`,
      start: Date.now(),
      durationSec: 365 * 86_400,
      params: live,
      // Something to see at once; the boosted rates bring the rest (about one a minute at 240).
      firstCallAfterSec: 10,
    });
    this.live = new SimRunner({ url: this.ctx.mqttUrl, devices: runner, source: model, speed: 1 });
    log.info({ boost: b }, "demo: live simulation running (boosted rates)");
    this.phase = "live";
    await this.live.start();
    await this.live.done;
  }

  /** The simulated history as fast as the gateway acknowledges it, its devices online from its start. */
  private async playHistory(
    runner: RunnerDevice[],
    specs: DeviceSpec[],
    population: ReturnType<typeof populationFromConfig>,
    from: number,
    to: number,
  ): Promise<void> {
    const { log } = this.ctx;
    for (const d of runner) await this.ctx.markOnline(d.id, from);
    const model = new NursingHomeModel({
      ...population,
      devices: specs,
      seed: "demo-history",
      start: from,
      durationSec: (to - from) / 1000,
      params: { heartbeatKeepEvery: 5 },
    });
    this.history = new SimRunner({
      url: this.ctx.mqttUrl,
      devices: runner,
      source: model,
      speed: Number.POSITIVE_INFINITY,
    });
    log.info(
      { days: Math.round(((to - from) / 86_400_000) * 100) / 100, devices: runner.length },
      "demo: playing simulated history",
    );
    await this.history.start();
    await this.history.done;
    const stats = await this.history.stop();
    this.history = null;
    log.info({ events: stats.acknowledged, rejected: stats.rejected }, "demo: history played");
  }

  private onChange = (c: { change: string; alert: AlertView }): void => {
    if (c.change !== "raised" || this.stopped) return;
    const [lo, hi] = this.ctx.options.botAcceptAfterSec;
    this.later((lo + Math.random() * (hi - lo)) * 1000, () => this.respond(c.alert.id));
  };

  private respond(id: string): void {
    const a = this.ctx.alerts.get(id);
    if (a?.state !== "raised") return; // a person took it, or the device cancelled it
    try {
      this.ctx.alerts.accept(id, this.bot);
      this.later(10_000 + Math.random() * 20_000, () => {
        const now = this.ctx.alerts.get(id);
        if (now?.state !== "accepted" || now.acceptedBy?.id !== this.bot.id) return;
        const outcome = pick(OUTCOMES[now.type] ?? [["no-action", 1]]);
        // A false alarm seen on the camera-less radar's data is closed without a visit half the time.
        if (!(outcome === "false-alarm" && Math.random() < 0.5)) this.ctx.alerts.attend(id, this.bot);
        this.later(20_000 + Math.random() * 40_000, () => {
          const last = this.ctx.alerts.get(id);
          if (
            last &&
            (last.state === "accepted" || last.state === "attending") &&
            last.acceptedBy?.id === this.bot.id
          )
            this.ctx.alerts.resolve(id, this.bot, outcome, "simulated colleague");
        });
      });
    } catch (err) {
      this.ctx.log.debug({ err: (err as Error).message, alertId: id }, "demo colleague could not act");
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }
}

function pick(weighted: [Outcome, number][]): Outcome {
  let r = Math.random() * weighted.reduce((s, [, w]) => s + w, 0);
  for (const [o, w] of weighted) {
    r -= w;
    if (r <= 0) return o;
  }
  return weighted[0]![0];
}
