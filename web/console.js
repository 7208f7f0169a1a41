// @ts-check
/**
 * The staff console: open alerts in the signed-in person's scope, live, with sound and a visual cue
 * until someone takes them, and the actions of the alert lifecycle (DESIGN.md "Alerts").
 *
 * A silent console is dangerous, so every way it can go quiet is shown: no connection (a full-width
 * warning and a technical tone), sound off (a warning with the button that turns it on), an alert
 * nobody has received (a red line on the card).
 */
import { $, placeNames, residentNames } from "./dom.js";
import { applyStatic, has, lang, setLang, t } from "./i18n.js";
import { PhonePush } from "./push.js";
import { AlarmSound } from "./sound.js";
import { CommandError, StaffClient } from "./staff-client.js";

/** @typedef {import("./staff-client.js").AlertView} AlertView */
/** @typedef {import("./staff-client.js").StaffIdentity} StaffIdentity */
/** @typedef {import("./dom.js").PlaceSite} PlaceSite */

const TOKEN_KEY = "ata.console.token";
/** The person's own theme choice on this device: "auto" (the site's night hours), "light" or "dark". */
const THEME_KEY = "ata.console.theme";
const THEMES = ["auto", "light", "dark"];
const OPEN_STATES = new Set(["raised", "accepted", "attending"]);
/** @type {Record<string, number>} */
const PRIORITY_RANK = { high: 3, medium: 2, low: 1, info: 0 };
/** Until the gateway's `welcome` says otherwise (it sends the list per alert type). */
const ALL_OUTCOMES = [
  "assistance-given",
  "no-action",
  "false-alarm",
  "fall-without-injury",
  "fall-with-injury",
];
/** The warning waits this long on first connect, so a normal page load does not flash red. */
const FIRST_CONNECT_GRACE_MS = 1500;
/** The technical tone starts after this long without a connection. */
const TECHNICAL_AFTER_MS = 5000;

const els = {
  connWarning: $("conn-warning"),
  connDetail: $("conn-detail"),
  retryNow: /** @type {HTMLButtonElement} */ ($("retry-now")),
  soundWarning: $("sound-warning"),
  soundEnable: /** @type {HTMLButtonElement} */ ($("sound-enable")),
  soundTest: /** @type {HTMLButtonElement} */ ($("sound-test")),
  cue: $("cue"),
  cueText: $("cue-text"),
  conn: $("conn"),
  connText: $("conn-text"),
  who: $("who"),
  clock: $("clock"),
  lang: /** @type {HTMLButtonElement} */ ($("lang")),
  signOut: /** @type {HTMLButtonElement} */ ($("sign-out")),
  signin: $("signin"),
  signinForm: /** @type {HTMLFormElement} */ ($("signin-form")),
  token: /** @type {HTMLInputElement} */ ($("token")),
  signinSubmit: /** @type {HTMLButtonElement} */ ($("signin-submit")),
  signinError: $("signin-error"),
  demoNotice: $("demo-notice"),
  enrolForm: /** @type {HTMLFormElement} */ ($("enrol-form")),
  enrolCode: /** @type {HTMLInputElement} */ ($("enrol-code")),
  enrolDevice: /** @type {HTMLInputElement} */ ($("enrol-device")),
  enrolSubmit: /** @type {HTMLButtonElement} */ ($("enrol-submit")),
  enrolStatus: $("enrol-status"),
  theme: /** @type {HTMLButtonElement} */ ($("theme")),
  board: $("board"),
  summary: $("summary"),
  list: /** @type {HTMLUListElement} */ ($("alerts")),
  empty: $("empty"),
  resolveDialog: /** @type {HTMLDialogElement} */ ($("resolve-dialog")),
  resolveWhich: $("resolve-which"),
  outcomes: $("outcomes"),
  resolveNote: /** @type {HTMLTextAreaElement} */ ($("resolve-note")),
  commentDialog: /** @type {HTMLDialogElement} */ ($("comment-dialog")),
  commentForm: /** @type {HTMLFormElement} */ ($("comment-form")),
  commentWhich: $("comment-which"),
  commentText: /** @type {HTMLTextAreaElement} */ ($("comment-text")),
  toast: $("toast"),
};

const state = {
  /** @type {string | null} */
  token: null,
  /** @type {StaffIdentity | null} */
  staff: null,
  /** @type {StaffClient | null} */
  client: null,
  /** Display names of the sites and units in scope, from `welcome` ("site/unit" and "site" keys). */
  /** @type {Map<string, string>} */
  places: new Map(),
  /** Residents' display names where their site shows them, by pseudonymous reference. */
  /** @type {Map<string, string>} */
  residents: new Map(),
  /** Night hours and time zone of the person's first site, for the automatic theme. */
  /** @type {{ timeZone: string; from: string; to: string } | null} */
  night: null,
  /** Allowed resolve outcomes per alert type, in the order to offer them (from `welcome`). */
  /** @type {{ byType: Record<string, string[]>; default: string[] }} */
  outcomes: { byType: {}, default: ALL_OUTCOMES },
  /** @type {Map<string, AlertView>} */
  alerts: new Map(),
  /** Alerts whose delivery receipt has been sent (or is in flight). */
  receipts: new Set(),
  /** "alertId:action" commands in flight, to disable their buttons. */
  busy: new Set(),
  /** @type {string} */
  conn: "stopped",
  connectedOnce: false,
  startedAt: 0,
  offlineSince: 0,
  /** The alert a dialog is open for. */
  dialogAlert: /** @type {string | null} */ (null),
  /** An alert to bring into view (from a tapped notification). */
  focusAlert: /** @type {string | null} */ (null),
};

const sound = new AlarmSound();
const phonePush = new PhonePush();

// ------------------------------------------------------------------ start-up

function init() {
  const params = new URLSearchParams(location.search);
  if (params.get("wall") === "1") document.documentElement.classList.add("wall");
  document.documentElement.lang = lang();
  applyStatic(document);
  document.title = t("app.console");
  applyTheme();

  els.signinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submitSignIn();
  });
  els.signOut.addEventListener("click", () => signOut());
  els.enrolForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void enrolWithCode(els.enrolCode.value, els.enrolDevice.value.trim() || null);
  });
  els.theme.addEventListener("click", () => {
    const next = THEMES[(THEMES.indexOf(themePreference()) + 1) % THEMES.length] ?? "auto";
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      // Not remembered; applies to this page.
      memoryTheme = next;
    }
    applyTheme();
  });
  els.lang.addEventListener("click", () => {
    setLang(lang() === "da" ? "en" : "da");
    document.title = t("app.console");
    if (state.dialogAlert) {
      const a = state.alerts.get(state.dialogAlert);
      if (a) buildOutcomeButtons(a.type);
    }
    renderThemeButton();
    render(true);
    renderConn();
  });
  els.soundEnable.addEventListener("click", () => void enableSound());
  els.soundTest.addEventListener("click", () => sound.test());
  els.retryNow.addEventListener("click", () => state.client?.retryNow());
  // Any tap or key turns sound on: the browser needs a gesture, and staff should not need to find
  // the button first.
  document.addEventListener("pointerdown", () => {
    if (state.token && !sound.enabled) void enableSound();
  });
  document.addEventListener("keydown", () => {
    if (state.token && !sound.enabled) void enableSound();
  });
  sound.onChange(() => renderSound());
  els.list.addEventListener("click", onListClick);
  els.outcomes.addEventListener("click", onOutcomeClick);
  els.commentForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submitComment();
  });
  for (const d of [els.resolveDialog, els.commentDialog]) {
    d.addEventListener("click", (ev) => {
      if (ev.target instanceof HTMLElement && ev.target.hasAttribute("data-close")) d.close();
    });
    d.addEventListener("close", () => {
      state.dialogAlert = null;
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      sendReceipts();
      void keepAwake();
    }
  });
  setInterval(tick, 1000);
  // A tap on a notification focuses this console and names the alert (web/sw.js), or opens
  // the console at /?alert=<id>.
  state.focusAlert = params.get("alert");
  navigator.serviceWorker?.addEventListener("message", (ev) => {
    const msg = /** @type {{ type?: string, alertId?: string }} */ (ev.data ?? {});
    if (msg.type === "ata.openAlert" && msg.alertId) {
      state.focusAlert = msg.alertId;
      render();
    }
  });

  let saved = null;
  try {
    saved = localStorage.getItem(TOKEN_KEY);
  } catch {
    // No storage: sign in each time.
  }
  // A QR code from the dashboard opens /#enrol=CODE: the code is in the fragment, which browsers
  // never send, and is wiped from the address bar and history at once.
  const enrolCode = new URLSearchParams(location.hash.slice(1)).get("enrol");
  if (enrolCode) {
    history.replaceState(null, "", location.pathname + location.search);
    showSignIn();
    void enrolWithCode(enrolCode, null);
  } else if (saved) start(saved);
  else showSignIn();
  tick();
}

/** Exchange a one-time enrolment code for this device's own token, then sign in with it. */
async function enrolWithCode(/** @type {string} */ code, /** @type {string | null} */ device) {
  if (!code.trim()) return;
  els.enrolSubmit.disabled = true;
  els.enrolStatus.hidden = false;
  els.enrolStatus.classList.remove("form-error");
  els.enrolStatus.textContent = t("enrol.working");
  try {
    const res = await fetch("/api/v1/enrol", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(device ? { code: code.trim(), device } : { code: code.trim() }),
    });
    if (res.status === 429) throw new Error(t("enrol.limited"));
    if (res.status === 401 || res.status === 400) throw new Error(t("enrol.invalid"));
    if (!res.ok) throw new Error(t("signin.unreachable"));
    const { token } = /** @type {{ token: string }} */ (await res.json());
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Kept for this page only.
    }
    els.enrolCode.value = "";
    els.enrolStatus.hidden = true;
    void enableSound();
    start(token);
  } catch (err) {
    els.enrolStatus.textContent =
      err instanceof TypeError ? t("signin.unreachable") : /** @type {Error} */ (err).message;
    els.enrolStatus.classList.add("form-error");
  } finally {
    els.enrolSubmit.disabled = false;
  }
}

// ------------------------------------------------------------------ theme

let memoryTheme = "auto";

function themePreference() {
  let v = memoryTheme;
  try {
    v = localStorage.getItem(THEME_KEY) ?? memoryTheme;
  } catch {
    // No storage: the in-page choice.
  }
  return THEMES.includes(v) ? v : "auto";
}

/** One formatter per time zone: the theme is checked every second. */
const zoneClocks = /** @type {Map<string, Intl.DateTimeFormat>} */ (new Map());

/** Minutes since local midnight in a time zone. */
function localMinutes(/** @type {number} */ at, /** @type {string} */ timeZone) {
  let fmt = zoneClocks.get(timeZone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat("en-GB", {
      timeZone,
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    zoneClocks.set(timeZone, fmt);
  }
  const parts = fmt.formatToParts(new Date(at));
  const get = (/** @type {string} */ type) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return get("hour") * 60 + get("minute");
}

/** Is it night shift at the person's site now? Night hours may span midnight (22:00-07:00). */
function isNight(/** @type {number} */ at, /** @type {{ timeZone: string; from: string; to: string }} */ n) {
  const mins = (/** @type {string} */ hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const now = localMinutes(at, n.timeZone);
  const from = mins(n.from);
  const to = mins(n.to);
  return from < to ? now >= from && now < to : now >= from || now < to;
}

/**
 * Dark at night (by the site's night hours, or the Copenhagen default before sign-in) unless the
 * person chose light or dark on this device. Checked every second, so the switch happens on time.
 */
function applyTheme() {
  const pref = themePreference();
  const night = state.night ?? { timeZone: "Europe/Copenhagen", from: "22:00", to: "07:00" };
  const dark = pref === "dark" || (pref === "auto" && isNight(Date.now(), night));
  const root = document.documentElement;
  const theme = dark ? "dark" : "light";
  if (root.dataset.theme !== theme) {
    root.dataset.theme = theme;
    document.querySelector('meta[name="theme-color"]')?.setAttribute("content", dark ? "#0b1220" : "#13294b");
  }
  root.dataset.themePreference = pref;
  renderThemeButton();
}

function renderThemeButton() {
  const text = t(`theme.${themePreference()}`);
  if (els.theme.textContent !== text) els.theme.textContent = text;
}

function showSignIn(/** @type {string | null} */ error = null) {
  els.signin.hidden = false;
  els.board.hidden = true;
  els.signOut.hidden = true;
  els.soundTest.hidden = true;
  els.signinError.hidden = !error;
  els.signinError.textContent = error ?? "";
  els.token.value = "";
  els.token.focus();
  renderConn();
  renderSound();
  void showDemoNotice();
}

/** The demo says so before anyone signs in; loudly when other machines can reach it. */
async function showDemoNotice() {
  try {
    const res = await fetch("/api/v1/about");
    if (!res.ok) return;
    const about = /** @type {{ demo: boolean, demoExposed: boolean }} */ (await res.json());
    els.demoNotice.hidden = !about.demo;
    els.demoNotice.classList.toggle("demo-exposed", about.demoExposed);
    els.demoNotice.textContent = about.demoExposed
      ? t("signin.demoExposed")
      : about.demo
        ? t("signin.demo")
        : "";
  } catch {
    // Unreachable: the sign-in itself says so.
  }
}

async function submitSignIn() {
  const token = els.token.value.trim();
  if (!token) return;
  els.signinSubmit.disabled = true;
  els.signinSubmit.textContent = t("signin.checking");
  els.signinError.hidden = true;
  try {
    const res = await fetch("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 401 || res.status === 403) throw new Error(t("signin.invalid"));
    if (!res.ok) throw new Error(t("signin.unreachable"));
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Kept for this page only.
    }
    // The click that signed in is a gesture: use it to turn sound on.
    void enableSound();
    start(token);
  } catch (err) {
    const message = err instanceof TypeError ? t("signin.unreachable") : /** @type {Error} */ (err).message;
    els.signinError.textContent = message;
    els.signinError.hidden = false;
  } finally {
    els.signinSubmit.disabled = false;
    els.signinSubmit.textContent = t("signin.submit");
  }
}

/** Connect with a token (from the form or remembered: a wall screen comes back by itself). */
function start(/** @type {string} */ token) {
  state.token = token;
  state.alerts.clear();
  state.receipts.clear();
  state.connectedOnce = false;
  state.startedAt = Date.now();
  els.signin.hidden = true;
  els.board.hidden = false;
  els.signOut.hidden = false;
  els.soundTest.hidden = false;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new StaffClient({ url: `${scheme}://${location.host}/staff/ws`, token, language: lang() });
  state.client = client;
  client.addEventListener("state", () => {
    state.conn = client.state;
    if (client.state === "live") {
      state.connectedOnce = true;
      state.offlineSince = 0;
    } else if (!state.offlineSince) state.offlineSince = Date.now();
    renderConn();
    render();
  });
  client.addEventListener("welcome", (ev) => {
    const detail = /** @type {CustomEvent} */ (ev).detail;
    state.staff = detail.staff;
    const places = /** @type {PlaceSite[] | undefined} */ (detail.places);
    state.places = placeNames(places);
    state.residents = residentNames(places);
    const first = places?.[0];
    state.night = first?.nightHours ? { timeZone: first.timeZone, ...first.nightHours } : null;
    if (detail.outcomes) state.outcomes = detail.outcomes;
    els.who.textContent = state.staff?.name ?? "";
    applyTheme();
    render(true);
  });
  client.addEventListener("snapshot", (ev) => {
    const msg = /** @type {CustomEvent} */ (ev).detail;
    state.alerts.clear();
    for (const a of msg.alerts) if (OPEN_STATES.has(a.state)) state.alerts.set(a.id, a);
    render();
  });
  client.addEventListener("alert", (ev) => {
    const a = /** @type {CustomEvent} */ (ev).detail.alert;
    applyAlert(a);
    render();
  });
  client.addEventListener("renotify", (ev) => {
    const msg = /** @type {CustomEvent} */ (ev).detail;
    const a = state.alerts.get(msg.alertId);
    if (a && a.level !== msg.level) {
      a.level = msg.level;
      render(true);
    }
    sound.renotify(msg.priority);
  });
  client.addEventListener("unauthorized", () => signOut(t("error.unauthenticated")));
  client.start();
  renderConn();
  render(true);
  void keepAwake();
  void phonePush.start(token);
}

function signOut(/** @type {string | null} */ message = null) {
  state.client?.stop();
  phonePush.stop();
  state.client = null;
  state.token = null;
  state.staff = null;
  state.alerts.clear();
  state.receipts.clear();
  state.conn = "stopped";
  state.offlineSince = 0;
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Nothing stored.
  }
  els.who.textContent = "";
  els.list.replaceChildren();
  sound.update([]);
  sound.technical(false);
  renderCue([]);
  showSignIn(message);
}

async function enableSound() {
  await sound.enable();
  renderSound();
  void keepAwake();
}

/** A wall screen must not go dark: hold a screen wake lock where the browser offers one. */
let wakeLock = /** @type {any} */ (null);
async function keepAwake() {
  if (
    !document.documentElement.classList.contains("wall") ||
    wakeLock ||
    document.visibilityState !== "visible"
  )
    return;
  try {
    const nav = /** @type {any} */ (navigator);
    wakeLock = await nav.wakeLock?.request("screen");
    wakeLock?.addEventListener("release", () => {
      wakeLock = null;
    });
  } catch {
    // Not supported or refused (no gesture yet); tried again on the next gesture.
  }
}

// ------------------------------------------------------------------ alerts

/** @param {AlertView} a */
function applyAlert(a) {
  if (OPEN_STATES.has(a.state)) state.alerts.set(a.id, a);
  else {
    state.alerts.delete(a.id);
    state.receipts.delete(a.id);
    if (state.dialogAlert === a.id) {
      els.resolveDialog.close();
      els.commentDialog.close();
    }
  }
}

/** Priority first (high on top), then the longest waiting. */
function sortedAlerts() {
  return [...state.alerts.values()].sort(
    (a, b) =>
      (PRIORITY_RANK[b.priority] ?? 0) - (PRIORITY_RANK[a.priority] ?? 0) ||
      Date.parse(a.raisedAt) - Date.parse(b.raisedAt),
  );
}

/** Raised alerts this person should hear: not taken, and not rejected by them. */
function waitingAlerts() {
  const me = state.staff?.id;
  return sortedAlerts().filter((a) => a.state === "raised" && !(me && a.rejectedBy.includes(me)));
}

/** Signature of what a card shows, to rebuild only cards that changed. */
function cardKey(/** @type {AlertView} */ a) {
  const busy = [...state.busy].filter((b) => b.startsWith(`${a.id}:`)).join(",");
  return [a.updatedAt, a.state, a.level, a.undelivered, a.count, a.acceptedBy?.id, busy, lang()].join("|");
}

function render(force = false) {
  if (!state.token) return;
  const alerts = sortedAlerts();
  const existing = new Map(
    [...els.list.children].map((li) => [/** @type {HTMLElement} */ (li).dataset.id ?? "", li]),
  );
  const wanted = new Set(alerts.map((a) => a.id));
  for (const [id, li] of existing)
    if (!wanted.has(id)) {
      li.remove();
      existing.delete(id);
    }
  let prev = /** @type {Element | null} */ (null);
  for (const a of alerts) {
    let li = /** @type {HTMLLIElement | undefined} */ (existing.get(a.id));
    if (!li) {
      li = document.createElement("li");
      li.dataset.id = a.id;
    }
    const key = cardKey(a);
    if (force || li.dataset.key !== key) {
      fillCard(li, a);
      li.dataset.key = key;
    }
    // Move only when out of place, so a focused button keeps its focus.
    const expectedNext = prev ? prev.nextElementSibling : els.list.firstElementChild;
    if (expectedNext !== li) {
      if (prev) prev.after(li);
      else els.list.prepend(li);
    }
    prev = li;
  }
  const live = state.conn === "live";
  // "No open alerts" is only true while connected; otherwise we do not know.
  els.empty.hidden = alerts.length > 0 || !live;
  els.summary.textContent = !live
    ? t("board.stale")
    : alerts.length === 1
      ? t("board.summary1")
      : t("board.summary", { n: alerts.length });
  els.board.classList.toggle("stale", state.conn !== "live");
  focusRequested();
  const waiting = waitingAlerts();
  sound.update(waiting.map((a) => ({ id: a.id, priority: a.priority })));
  renderCue(waiting);
  tickAges();
  sendReceipts();
}

/** Show the alert a notification was opened for, once its card exists. */
function focusRequested() {
  const id = state.focusAlert;
  if (!id) return;
  const li = /** @type {HTMLElement | null} */ (els.list.querySelector(`li[data-id="${CSS.escape(id)}"]`));
  if (!li) return;
  state.focusAlert = null;
  for (const other of els.list.querySelectorAll("li[data-focused]")) other.removeAttribute("data-focused");
  li.dataset.focused = "true";
  li.scrollIntoView({ block: "center" });
}

/**
 * @param {HTMLLIElement} li
 * @param {AlertView} a
 */
function fillCard(li, a) {
  const me = state.staff?.id;
  const mine = a.acceptedBy?.id === me;
  const rejectedByMe = Boolean(me && a.rejectedBy.includes(me));
  li.className = `alert p-${a.priority} s-${a.state}${a.undelivered ? " undelivered" : ""}${rejectedByMe ? " rejected-by-me" : ""}`;
  const focused = li.contains(document.activeElement)
    ? document.activeElement?.getAttribute("data-action")
    : null;

  const head = el("div", "alert-head");
  head.append(
    el("span", "prio", t(`prio.${a.priority}`)),
    el("span", "room", a.room ? t("alert.room", { room: a.room }) : t("alert.noRoom")),
    el("span", "age"),
  );
  const msg = el("div", "msg", messageText(a));
  const metaParts = [typeLabel(a.type)];
  if (a.resident) metaParts.push(residentLabel(a.resident));
  metaParts.push(placeLabel(a));
  if (a.count > 1) metaParts.push(t("alert.count", { n: a.count }));
  const meta = el("div", "meta", metaParts.join(" · "));

  let statusText = t("alert.raised");
  if (a.state === "accepted" && a.acceptedBy)
    statusText = mine ? t("alert.takenByYou") : t("alert.takenBy", { name: a.acceptedBy.name });
  if (a.state === "attending" && a.acceptedBy)
    statusText = mine ? t("alert.attendingByYou") : t("alert.attendingBy", { name: a.acceptedBy.name });
  if (a.state === "raised" && rejectedByMe) statusText = t("alert.rejectedByYou");
  const status = el("div", "status", statusText);

  const warnings = el("div", "warnings");
  if (a.undelivered) warnings.append(el("span", "warn warn-danger", t("alert.undelivered")));
  if (a.level > 0) warnings.append(el("span", "warn", t("alert.escalated", { level: a.level + 1 })));

  const actions = el("div", "actions");
  /** @type {[string, string][]} */
  const buttons = [];
  if (a.state === "raised") {
    buttons.push(["accept", "btn-primary"]);
    if (!rejectedByMe) buttons.push(["reject", "btn-secondary"]);
  } else if (mine && a.state === "accepted") {
    buttons.push(["attend", "btn-primary"], ["resolve", "btn-secondary"]);
  } else if (mine && a.state === "attending") {
    buttons.push(["resolve", "btn-primary"]);
  }
  buttons.push(["comment", "btn-ghost-dark"]);
  for (const [action, cls] of buttons) {
    const b = /** @type {HTMLButtonElement} */ (el("button", `btn btn-big ${cls}`, t(`action.${action}`)));
    b.type = "button";
    b.dataset.action = action;
    if (state.busy.has(`${a.id}:${action}`)) {
      b.disabled = true;
      b.textContent = t("action.pending");
    }
    actions.append(b);
  }

  const body = el("div", "alert-body");
  body.append(head, msg, meta, status);
  if (warnings.childElementCount) body.append(warnings);
  body.append(actions);
  li.replaceChildren(el("div", "band"), body);
  li.setAttribute("aria-label", `${t(`prio.${a.priority}`)}: ${messageText(a)}`);
  if (focused) /** @type {HTMLElement | null} */ (li.querySelector(`[data-action="${focused}"]`))?.focus();
}

/**
 * @param {string} tag
 * @param {string} cls
 * @param {string} [text]
 */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * The alert's text in this language, with the resident's display name in place of the reference
 * where the site shows names (rules write {resident} as the reference).
 * @param {AlertView} a
 */
function messageText(a) {
  const text = a.message[lang()] || a.message.da;
  const name = a.resident ? state.residents.get(a.resident) : undefined;
  return name && a.resident ? text.split(a.resident).join(name) : text;
}

/** The resident's display name where the site shows names, otherwise the pseudonymous reference. */
function residentLabel(/** @type {string} */ ref) {
  return state.residents.get(ref) ?? t("alert.resident", { ref });
}

function typeLabel(/** @type {string} */ type) {
  return has(`type.${type}`) ? t(`type.${type}`) : type;
}

function ageText(/** @type {number} */ ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return t("alert.ageHour", { h, m });
  if (m) return t("alert.ageMin", { m, s });
  return t("alert.ageSec", { s });
}

function tickAges() {
  const now = Date.now() + (state.client?.clockOffset ?? 0);
  for (const li of els.list.children) {
    const a = state.alerts.get(/** @type {HTMLElement} */ (li).dataset.id ?? "");
    const age = li.querySelector(".age");
    if (a && age) age.textContent = ageText(now - Date.parse(a.raisedAt));
  }
}

/**
 * The unit by its configured name ("Afsnit A"), with the site's name for someone who covers more
 * than one site; the ids when the gateway sent no names.
 * @param {AlertView} a
 */
function placeLabel(a) {
  const unit = state.places.get(`${a.site}/${a.unit}`) ?? t("alert.unit", { unit: a.unit });
  const manySites = (state.staff?.sites.length ?? 0) > 1;
  return manySites ? `${state.places.get(a.site) ?? a.site} · ${unit}` : unit;
}

/** The visual cue: a flashing colour band with big text, for those who cannot hear the alarm. */
function renderCue(/** @type {AlertView[]} */ waiting) {
  const top = waiting[0];
  if (!top || top.priority === "info") {
    els.cue.hidden = true;
    document.body.classList.remove("alarm-high", "alarm-medium", "alarm-low");
    return;
  }
  els.cue.hidden = false;
  els.cue.className = `cue p-${top.priority}`;
  const more = waiting.length > 1 ? `  (+${waiting.length - 1})` : "";
  els.cueText.textContent = `${t("alert.cue", { type: typeLabel(top.type), room: top.room ?? t("alert.noRoom") })}${more}`;
  document.body.classList.remove("alarm-high", "alarm-medium", "alarm-low");
  document.body.classList.add(`alarm-${top.priority}`);
}

/** Delivery receipts: every alert on this screen, once, while the screen is visible. */
function sendReceipts() {
  const client = state.client;
  if (!client || state.conn !== "live" || document.visibilityState !== "visible") return;
  for (const a of state.alerts.values()) {
    if (state.receipts.has(a.id)) continue;
    state.receipts.add(a.id);
    client.command("received", { alertId: a.id }).catch((err) => {
      // Lost with the connection: try again once we are back. Other errors (the alert closed
      // meanwhile) need no retry.
      if (err instanceof CommandError && (err.code === "offline" || err.code === "timeout"))
        state.receipts.delete(a.id);
    });
  }
}

// ------------------------------------------------------------------ actions

/** @param {MouseEvent} ev */
function onListClick(ev) {
  const target = /** @type {HTMLElement} */ (ev.target);
  const button = target.closest("button[data-action]");
  const li = target.closest("li[data-id]");
  if (!button || !li) return;
  const id = /** @type {HTMLElement} */ (li).dataset.id ?? "";
  const action = /** @type {HTMLElement} */ (button).dataset.action ?? "";
  const a = state.alerts.get(id);
  if (!a) return;
  if (action === "resolve") return openResolve(a);
  if (action === "comment") return openComment(a);
  if (action === "accept" || action === "reject" || action === "attend") void run(id, action, {});
}

/**
 * @param {string} alertId
 * @param {"accept" | "reject" | "attend" | "resolve" | "comment"} action
 * @param {Record<string, unknown>} fields
 */
async function run(alertId, action, fields) {
  const client = state.client;
  if (!client) return;
  const key = `${alertId}:${action}`;
  if (state.busy.has(key)) return;
  state.busy.add(key);
  render();
  try {
    const result = /** @type {{ alert?: AlertView } | undefined} */ (
      await client.command(action, { alertId, ...fields })
    );
    // The change also arrives on the stream; applying the reply now makes the button feel instant.
    if (result?.alert) applyAlert(result.alert);
    toast(t(`done.${action}`));
    return true;
  } catch (err) {
    toast(errorText(err), true);
    return false;
  } finally {
    state.busy.delete(key);
    render();
  }
}

function errorText(/** @type {unknown} */ err) {
  const code = err instanceof CommandError ? err.code : "internal";
  const message = err instanceof Error ? err.message : String(err);
  return has(`error.${code}`) ? t(`error.${code}`, { message }) : t("error.generic", { message });
}

/** Only the outcomes this alert's type allows, in the gateway's order (falls first for a fall). */
function buildOutcomeButtons(/** @type {string} */ type) {
  const allowed = state.outcomes.byType[type] ?? state.outcomes.default;
  els.outcomes.replaceChildren(
    ...allowed.map((o) => {
      const b = /** @type {HTMLButtonElement} */ (el("button", "btn btn-big btn-outcome", t(`outcome.${o}`)));
      b.type = "button";
      b.dataset.outcome = o;
      return b;
    }),
  );
}

function describe(/** @type {AlertView} */ a) {
  return `${messageText(a)} · ${a.room ? t("alert.room", { room: a.room }) : t("alert.noRoom")}`;
}

function openResolve(/** @type {AlertView} */ a) {
  state.dialogAlert = a.id;
  buildOutcomeButtons(a.type);
  els.resolveWhich.textContent = describe(a);
  els.resolveNote.value = "";
  els.resolveDialog.showModal();
}

/** @param {MouseEvent} ev */
function onOutcomeClick(ev) {
  const b = /** @type {HTMLElement} */ (ev.target).closest("button[data-outcome]");
  const id = state.dialogAlert;
  if (!b || !id) return;
  const outcome = /** @type {HTMLElement} */ (b).dataset.outcome;
  const note = els.resolveNote.value.trim();
  els.resolveDialog.close();
  void run(id, "resolve", note ? { outcome, note } : { outcome });
}

function openComment(/** @type {AlertView} */ a) {
  state.dialogAlert = a.id;
  els.commentWhich.textContent = describe(a);
  els.commentText.value = "";
  els.commentDialog.showModal();
}

async function submitComment() {
  const id = state.dialogAlert;
  const text = els.commentText.value.trim();
  if (!id || !text) return;
  els.commentDialog.close();
  await run(id, "comment", { text });
}

let toastTimer = /** @type {ReturnType<typeof setTimeout> | null} */ (null);
function toast(/** @type {string} */ text, error = false) {
  els.toast.textContent = text;
  els.toast.classList.toggle("toast-error", error);
  els.toast.hidden = false;
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(
    () => {
      els.toast.hidden = true;
    },
    error ? 6000 : 2500,
  );
}

// ------------------------------------------------------------------ status

function connWarningVisible() {
  if (!state.token || state.conn === "live" || state.conn === "stopped" || state.conn === "unauthorized")
    return false;
  return state.connectedOnce || Date.now() - state.startedAt > FIRST_CONNECT_GRACE_MS;
}

function renderConn() {
  const signedIn = Boolean(state.token);
  const s = signedIn ? state.conn : "stopped";
  els.conn.dataset.state = s;
  els.conn.hidden = !signedIn;
  els.connText.textContent =
    s === "live" ? t("conn.live") : s === "connecting" ? t("conn.connecting") : t("conn.offline");
  const show = connWarningVisible();
  els.connWarning.hidden = !show;
  document.body.classList.toggle("disconnected", show);
  if (show) {
    const client = state.client;
    const parts = [];
    if (state.conn === "offline" && client) {
      const sec = Math.max(0, Math.ceil((client.retryAt - Date.now()) / 1000));
      parts.push(sec > 0 ? t("conn.retry", { sec }) : t("conn.retrying"));
    } else parts.push(t("conn.retrying"));
    if (client?.lastLive)
      parts.push(t("conn.since", { time: new Date(client.lastLive).toLocaleTimeString(lang()) }));
    els.connDetail.textContent = parts.join(" · ");
  }
  sound.technical(show && state.offlineSince > 0 && Date.now() - state.offlineSince > TECHNICAL_AFTER_MS);
}

function renderSound() {
  els.soundWarning.hidden = !state.token || sound.enabled;
  document.body.classList.toggle("sound-off", Boolean(state.token) && !sound.enabled);
}

function tick() {
  applyTheme();
  els.clock.textContent = new Date().toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit" });
  tickAges();
  renderConn();
  // A receipt lost to a timeout or a dropped connection is sent again here, not only on the next change.
  sendReceipts();
}

init();
