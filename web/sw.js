// @ts-check
/**
 * The console's service worker: alerts on a phone whose screen is locked and whose console is not
 * open. Served from the root (`/sw.js`) so its scope is the whole console.
 *
 * - `push`: show the alert (one notification per alert: `tag` = alert id, so a re-notification or
 *   "taken by Anna" replaces it), then confirm receipt to the gateway, so "delivered" in the audit
 *   means the phone got it.
 * - `notificationclick`: "Tag den" / "Afvis" act through the API with the notification's
 *   capability (src/alerts/channels/push-capability.ts: no bearer token is kept here); a tap on the
 *   notification opens or focuses the console on that alert.
 *
 * No `fetch` handler, so nothing is cached: API answers must be live, and a stale console is a
 * safety problem (see src/http/static.ts). Browsers no longer require one to install a PWA.
 */

/**
 * @typedef {{ v: 1, kind: "alert", alertId: string, attemptId: number, cap: string, title: string,
 *   body: string, priority: "high" | "medium" | "low" | "info", tag: string, renotify: boolean,
 *   url: string, raisedAt: string }} AlertPush
 * @typedef {{ v: 1, kind: "settled", alertId: string, tag: string, title: string, body: string,
 *   state: string, url: string }} SettledPush
 * @typedef {{ alertId: string, url: string, cap?: string, title?: string }} NoteData
 * @typedef {Event & { waitUntil(p: Promise<unknown>): void }} ExtendableEventLike
 * @typedef {ExtendableEventLike & { data: { json(): unknown } | null }} PushEventLike
 * @typedef {ExtendableEventLike & { action: string, notification: Notification }} NotificationEventLike
 * @typedef {{ url: string, focus(): Promise<unknown>, postMessage(m: unknown): void }} WindowClientLike
 * @typedef {{
 *   registration: ServiceWorkerRegistration,
 *   clients: {
 *     matchAll(o: { type: string, includeUncontrolled: boolean }): Promise<ReadonlyArray<WindowClientLike>>,
 *     openWindow(url: string): Promise<unknown>,
 *     claim(): Promise<void>,
 *   },
 *   skipWaiting(): Promise<void>,
 *   location: Location,
 *   addEventListener(type: string, fn: (ev: Event) => void): void,
 * }} WorkerScope
 * @typedef {NotificationOptions & { actions?: { action: string, title: string }[], vibrate?: number[],
 *   renotify?: boolean, timestamp?: number }} ShowOptions
 */

const sw = /** @type {WorkerScope} */ (/** @type {unknown} */ (self));

/** Vibration per priority (IEC 60601-1-8's idea: the more urgent, the longer and more insistent). */
const VIBRATE = {
  high: [600, 200, 600, 200, 600, 200, 600],
  medium: [400, 300, 400],
  low: [200],
  info: [],
};

const ICON = "/icons/icon-192.png";
const BADGE = "/icons/badge-96.png";

sw.addEventListener("install", () => {
  // A new worker takes over at once: an old one must not keep showing alerts its own way.
  void sw.skipWaiting();
});
sw.addEventListener("activate", (ev) => {
  const e = /** @type {ExtendableEventLike} */ (ev);
  e.waitUntil(sw.clients.claim());
});

sw.addEventListener("push", (ev) => {
  const e = /** @type {PushEventLike} */ (ev);
  e.waitUntil(onPush(e));
});

sw.addEventListener("notificationclick", (ev) => {
  const e = /** @type {NotificationEventLike} */ (ev);
  const data = /** @type {NoteData} */ (e.notification.data ?? {});
  e.notification.close();
  if ((e.action === "accept" || e.action === "reject") && data.cap) keepAlive(e, act(e.action, data));
  else keepAlive(e, openConsole(data));
});

/**
 * Keep the worker alive until `work` is done. A test (or a browser's own tooling) may dispatch a
 * synthesized event, which cannot be extended (waitUntil throws when isTrusted is false); the work
 * still runs.
 * @param {ExtendableEventLike} e
 * @param {Promise<unknown>} work
 */
function keepAlive(e, work) {
  try {
    e.waitUntil(work);
  } catch {
    // Not extendable: see above.
  }
}

/** @param {PushEventLike} e */
async function onPush(e) {
  /** @type {AlertPush | SettledPush | null} */
  let p = null;
  try {
    p = /** @type {AlertPush | SettledPush} */ (e.data?.json());
  } catch {
    p = null;
  }
  if (p?.v !== 1) {
    // The Push API's userVisibleOnly promise: every push shows something, or the browser may
    // revoke the subscription. Say what to do instead of staying silent.
    await sw.registration.showNotification("ATA – ny besked", {
      body: "Åbn alarmkonsollen for at se den.",
      tag: "ata-unknown",
      icon: ICON,
      data: { alertId: "", url: "/" },
    });
    return;
  }
  if (p.kind === "settled") {
    /** @type {ShowOptions} */
    const opts = {
      body: p.body,
      tag: p.tag,
      icon: ICON,
      badge: BADGE,
      lang: "da",
      silent: true,
      renotify: false,
      requireInteraction: false,
      data: /** @type {NoteData} */ ({ alertId: p.alertId, url: p.url }),
    };
    await sw.registration.showNotification(p.title, opts);
    return;
  }
  /** @type {ShowOptions} */
  const opts = {
    body: p.body,
    tag: p.tag,
    icon: ICON,
    badge: BADGE,
    lang: "da",
    renotify: p.renotify,
    // A high alert stays on the screen until someone acts on it (Notifications API).
    requireInteraction: p.priority === "high",
    vibrate: VIBRATE[p.priority] ?? VIBRATE.low,
    timestamp: Date.parse(p.raisedAt) || Date.now(),
    actions: [
      { action: "accept", title: "Tag den" },
      { action: "reject", title: "Afvis" },
    ],
    data: /** @type {NoteData} */ ({ alertId: p.alertId, url: p.url, cap: p.cap, title: p.title }),
  };
  await sw.registration.showNotification(p.title, opts);
  await post("/api/v1/push/receipt", { cap: p.cap }, 3);
}

/**
 * POST JSON, retrying a network failure (a phone waking on a weak signal) but not an answer.
 * @param {string} path
 * @param {unknown} body
 * @param {number} tries
 * @returns {Promise<Response | null>}
 */
async function post(path, body, tries) {
  for (let i = 0; i < tries; i++) {
    try {
      return await fetch(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      await new Promise((r) => setTimeout(r, 1000 * (i + 1)));
    }
  }
  return null;
}

/** Danish text for why an action did not work, by error code (src/errors.ts). */
const ACTION_ERRORS = /** @type {Record<string, string>} */ ({
  already_taken: "En kollega har allerede taget alarmen.",
  illegal_transition: "Alarmen er allerede taget eller afsluttet.",
  invalid_capability: "Notifikationen er udløbet. Åbn konsollen for at handle på alarmen.",
  alert_not_found: "Alarmen findes ikke længere.",
});

/**
 * @param {"accept" | "reject"} action
 * @param {NoteData} data
 */
async function act(action, data) {
  const res = await post(`/api/v1/push/actions/${action}`, { cap: data.cap }, 3);
  /** @type {ShowOptions} */
  const quiet = { tag: data.alertId, icon: ICON, badge: BADGE, lang: "da", silent: true, data };
  if (res?.ok) {
    if (action === "accept")
      await sw.registration.showNotification(`Du har taget: ${data.title ?? "alarmen"}`, {
        ...quiet,
        body: "Tryk for at åbne alarmen.",
      });
    return;
  }
  let code = "";
  try {
    /** @type {{ error?: { code?: string } }} */
    const answer = res ? await res.json() : {};
    code = answer.error?.code ?? "";
  } catch {
    code = "";
  }
  await sw.registration.showNotification(
    action === "accept" ? "Kunne ikke tage alarmen" : "Kunne ikke afvise alarmen",
    {
      ...quiet,
      body: ACTION_ERRORS[code] ?? "Ingen forbindelse til gatewayen. Åbn konsollen.",
      requireInteraction: true,
    },
  );
}

/** Focus an open console and show the alert there, or open one. @param {NoteData} data */
async function openConsole(data) {
  const target = new URL(data.url || "/", sw.location.origin);
  const windows = await sw.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((w) => new URL(w.url).origin === target.origin);
  if (open) {
    // Named first: focus() is refused without the click's user activation, and the console should
    // still show the alert when the person next looks at it.
    open.postMessage({ type: "ata.openAlert", alertId: data.alertId });
    try {
      await open.focus();
    } catch {
      // Not allowed to focus from here; the message is there.
    }
    return;
  }
  await sw.clients.openWindow(target.href);
}
