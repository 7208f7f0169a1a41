// @ts-check
/**
 * Alarm sounds with Web Audio, after the idea of IEC 60601-1-8 (auditory alarm signals):
 * - high: a burst of 10 pulses (3 + 2, pause, 3 + 2), repeated every few seconds until accepted;
 * - medium: a burst of 3 pulses, repeated less often;
 * - low: 2 pulses, once per alert;
 * - info: silent.
 * Pulses are square waves (a fundamental with odd harmonics, as the standard asks for a sound that
 * is easy to localise) with short attack and release ramps instead of clicks.
 *
 * Browsers only start audio after a user gesture, so the page must call enable() from a click; the
 * console shows a warning for as long as sound is off. window.__ataSound mirrors the state for tests
 * (there is no audio hardware in CI) and for anyone debugging a wall screen from the devtools.
 */

/** @typedef {"high" | "medium" | "low"} AudiblePriority */
/** @typedef {{ freq: number; pulseMs: number; starts: number[]; repeatMs: number | null; vibrate: number[] }} Pattern */

/** @type {Record<AudiblePriority, Pattern>} */
export const PATTERNS = {
  // IEC 60601-1-8 table 3: high-priority pulses 75-200 ms, burst repeat 2.5-15 s.
  high: {
    freq: 660,
    pulseMs: 150,
    starts: [0, 0.25, 0.5, 0.9, 1.15, 2.0, 2.25, 2.5, 2.9, 3.15],
    repeatMs: 6000,
    vibrate: [300, 100, 300, 100, 300],
  },
  // Medium: 3 pulses of 125-250 ms, burst repeat 2.5-30 s.
  medium: { freq: 520, pulseMs: 200, starts: [0, 0.35, 0.7], repeatMs: 20_000, vibrate: [400, 200, 400] },
  // Low: 1-2 pulses; repetition optional. We play it once per new alert.
  low: { freq: 440, pulseMs: 220, starts: [0, 0.4], repeatMs: null, vibrate: [200] },
};

/** The technical signal for a lost connection: low and distinct from every clinical alarm. */
const TECHNICAL = { freq: 330, pulseMs: 300, starts: [0, 0.5], repeatMs: 30_000, vibrate: [150] };

const RANK = { high: 3, medium: 2, low: 1 };

/**
 * @typedef {object} SoundHook
 * @property {boolean} enabled the user has turned sound on
 * @property {string} context AudioContext state ("none" before enable)
 * @property {AudiblePriority | null} playing the repeating pattern now sounding
 * @property {AudiblePriority | null} wanted the pattern the open alerts call for (also while sound is off)
 * @property {boolean} technical the connection-lost signal is on
 * @property {number} beeps pulses scheduled since load
 * @property {number} bursts bursts scheduled since load
 * @property {{ at: number; kind: string }[]} history the last bursts (kind = priority or "technical")
 */

export class AlarmSound {
  constructor() {
    /** @type {AudioContext | null} */
    this.ctx = null;
    /** @type {GainNode | null} */
    this.master = null;
    /** @type {AudiblePriority | null} */
    this.wanted = null;
    /** @type {AudiblePriority | null} */
    this.playing = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.loop = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.technicalLoop = null;
    /** Low alerts already announced (once each). */
    this.lowPlayed = new Set();
    /** @type {OscillatorNode[]} */
    this.scheduled = [];
    /** @type {SoundHook} */
    this.hook = {
      enabled: false,
      context: "none",
      playing: null,
      wanted: null,
      technical: false,
      beeps: 0,
      bursts: 0,
      history: [],
    };
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    /** @type {any} */ (window).__ataSound = this.hook;
  }

  /** Sound is on and the browser lets us play. */
  get enabled() {
    return this.ctx !== null && this.ctx.state === "running";
  }

  /** @param {() => void} fn called whenever enabled/playing changes */
  onChange(fn) {
    this.listeners.add(fn);
  }

  /**
   * Turn sound on. Call from a click or key handler: browsers refuse audio without a gesture.
   * @returns {Promise<boolean>} whether audio is running now
   */
  async enable() {
    try {
      if (!this.ctx) {
        this.ctx = new AudioContext({ latencyHint: "interactive" });
        this.master = this.ctx.createGain();
        this.master.gain.value = 0.6;
        this.master.connect(this.ctx.destination);
        this.ctx.addEventListener("statechange", () => {
          this.changed();
          // Audio came back (the OS released the device, the tab was woken): resume the alarm.
          if (this.enabled && this.wanted && !this.playing) this.set(this.wanted);
        });
      }
      if (this.ctx.state !== "running") await this.ctx.resume();
    } catch {
      // No audio device or a refusal: the warning stays up.
    }
    this.changed();
    if (this.enabled) {
      const want = this.wanted;
      this.playing = null;
      this.set(want);
    }
    return this.enabled;
  }

  /**
   * Tell the sound which alerts are waiting for someone to take them.
   * @param {{ id: string; priority: string }[]} waiting raised alerts (not accepted) this person should hear
   */
  update(waiting) {
    /** @type {AudiblePriority | null} */
    let top = null;
    for (const a of waiting) {
      if (a.priority === "high" || a.priority === "medium") {
        if (!top || RANK[a.priority] > RANK[top]) top = a.priority;
      }
    }
    const lowNew = waiting.filter((a) => a.priority === "low" && !this.lowPlayed.has(a.id));
    if (lowNew.length && this.enabled) {
      for (const a of lowNew) this.lowPlayed.add(a.id);
      if (!top) this.burst(PATTERNS.low, "low");
    }
    this.set(top);
  }

  /**
   * A server re-notification for an alert nobody has taken.
   * @param {string} priority
   */
  renotify(priority) {
    // Our own loop already repeats; the server's reminder only matters if the loop was interrupted.
    if (this.enabled && !this.playing && priority === this.wanted) this.set(this.wanted);
  }

  /** @param {boolean} on the connection is lost (a technical alarm) */
  technical(on) {
    if (on === this.hook.technical) return;
    this.hook.technical = on;
    if (this.technicalLoop) clearInterval(this.technicalLoop);
    this.technicalLoop = null;
    if (on) {
      this.burst(TECHNICAL, "technical");
      this.technicalLoop = setInterval(() => this.burst(TECHNICAL, "technical"), TECHNICAL.repeatMs);
    }
  }

  /** A short test of the high pattern (one half-burst), so staff can check the volume. */
  test() {
    this.burst({ ...PATTERNS.high, starts: PATTERNS.high.starts.slice(0, 5) }, "test");
  }

  /** @param {AudiblePriority | null} priority */
  set(priority) {
    this.wanted = priority;
    if (!this.enabled) {
      this.stopLoop();
      this.changed();
      return;
    }
    if (priority === this.playing) {
      this.changed();
      return;
    }
    this.stopLoop();
    this.playing = priority;
    if (priority) this.restartLoop();
    this.changed();
  }

  restartLoop() {
    if (!this.playing) return;
    const pattern = PATTERNS[this.playing];
    const kind = this.playing;
    if (this.loop) clearInterval(this.loop);
    this.burst(pattern, kind);
    this.loop = pattern.repeatMs ? setInterval(() => this.burst(pattern, kind), pattern.repeatMs) : null;
  }

  stopLoop() {
    if (this.loop) clearInterval(this.loop);
    this.loop = null;
    this.playing = null;
    // Silence a burst in progress: accepting an alert should stop the sound at once.
    for (const osc of this.scheduled) {
      try {
        osc.stop();
      } catch {
        // Already stopped.
      }
    }
    this.scheduled = [];
  }

  /**
   * @param {Pattern} pattern
   * @param {string} kind
   */
  burst(pattern, kind) {
    const ctx = this.ctx;
    const master = this.master;
    if (!ctx || !master || ctx.state !== "running") return;
    const t0 = ctx.currentTime + 0.02;
    const dur = pattern.pulseMs / 1000;
    // 10-20% rise and fall (IEC 60601-1-8 table 3), so pulses do not click.
    const ramp = dur * 0.15;
    for (const start of pattern.starts) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = pattern.freq;
      gain.gain.setValueAtTime(0, t0 + start);
      gain.gain.linearRampToValueAtTime(0.25, t0 + start + ramp);
      gain.gain.setValueAtTime(0.25, t0 + start + dur - ramp);
      gain.gain.linearRampToValueAtTime(0, t0 + start + dur);
      osc.connect(gain).connect(master);
      osc.start(t0 + start);
      osc.stop(t0 + start + dur + 0.01);
      osc.addEventListener("ended", () => {
        const i = this.scheduled.indexOf(osc);
        if (i >= 0) this.scheduled.splice(i, 1);
      });
      this.scheduled.push(osc);
      this.hook.beeps++;
    }
    this.hook.bursts++;
    this.hook.history.push({ at: Date.now(), kind });
    if (this.hook.history.length > 20) this.hook.history.shift();
    // A phone in a pocket: vibrate too (needs a past user gesture, like audio).
    try {
      navigator.vibrate?.(pattern.vibrate);
    } catch {
      // Not supported.
    }
  }

  changed() {
    this.hook.enabled = this.enabled;
    this.hook.context = this.ctx ? this.ctx.state : "none";
    this.hook.playing = this.playing;
    this.hook.wanted = this.wanted;
    if (this.ctx && this.ctx.state !== "running" && this.playing) {
      // The browser suspended audio (e.g. the OS took the device): stop pretending to play.
      this.stopLoop();
      this.hook.playing = null;
    }
    for (const fn of this.listeners) fn();
  }
}
