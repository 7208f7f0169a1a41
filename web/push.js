// @ts-check
/**
 * Alerts on this phone when the console is closed or the screen is locked: registers the service
 * worker (web/sw.js), subscribes with the gateway's VAPID key when the person allows it, stores the
 * subscription against their token, and lists their phones with a way to remove each.
 *
 * The gateway never learns the bearer token through the worker: a notification carries its own
 * narrow permission (docs/channels.md "Web Push").
 */
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** This phone's subscription id at the gateway, to mark "this phone" in the list. */
const THIS_PHONE_KEY = "ata.push.subscriptionId";

/** @typedef {{ id: string, label: string, createdAt: string, lastSuccessAt: string | null, failures: number }} Phone */

const els = {
  section: $("push"),
  status: $("push-status"),
  enable: /** @type {HTMLButtonElement} */ ($("push-enable")),
  phones: $("push-phones"),
};

/** @param {string} s base64url @returns {Uint8Array<ArrayBuffer>} */
function fromBase64url(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function thisPhone() {
  try {
    return localStorage.getItem(THIS_PHONE_KEY);
  } catch {
    return null;
  }
}

/** @param {string | null} id */
function rememberThisPhone(id) {
  try {
    if (id) localStorage.setItem(THIS_PHONE_KEY, id);
    else localStorage.removeItem(THIS_PHONE_KEY);
  } catch {
    // No storage: the list just does not mark this phone.
  }
}

export class PhonePush {
  constructor() {
    /** @type {string | null} */
    this.token = null;
    /** @type {ServiceWorkerRegistration | null} */
    this.registration = null;
    /** The gateway's VAPID public key (base64url). */
    this.publicKey = "";
    els.enable.addEventListener("click", () => void this.enable());
    els.phones.addEventListener("click", (ev) => {
      const btn = /** @type {HTMLElement} */ (ev.target).closest("button[data-remove]");
      if (btn) void this.remove(/** @type {string} */ (btn.getAttribute("data-remove")));
    });
  }

  /** After sign-in. @param {string} token */
  async start(token) {
    this.token = token;
    els.enable.hidden = true;
    /** @type {string | null} */
    let key = null;
    try {
      const res = await fetch("/api/v1/push/key", { cache: "no-store" });
      if (res.ok) key = /** @type {{ publicKey: string | null }} */ (await res.json()).publicKey;
    } catch {
      key = null;
    }
    // A gateway without Web Push configured (or unreachable now): no control that cannot work.
    if (!key || this.token !== token) return;
    this.publicKey = key;
    els.section.hidden = false;
    if (!("serviceWorker" in navigator)) {
      this.say("push.unsupported");
      return;
    }
    try {
      // Root scope: the worker must see notification clicks for every console URL.
      this.registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    } catch {
      this.say("push.unsupported");
      return;
    }
    await this.refresh();
  }

  stop() {
    this.token = null;
    els.section.hidden = true;
    els.phones.replaceChildren();
  }

  /** Where this phone stands, and the person's phones. */
  async refresh() {
    if (!this.token) return;
    const reg = this.registration;
    if (!reg || !("pushManager" in reg)) {
      // iOS offers Web Push only to a console added to the home screen (iOS 16.4 and later).
      this.say("push.unsupported");
    } else if (typeof Notification !== "undefined" && Notification.permission === "denied") {
      this.say("push.denied");
    } else {
      let sub = null;
      try {
        sub = await reg.pushManager.getSubscription();
      } catch {
        sub = null;
      }
      if (sub) {
        // Stored again each time: after a new sign-in on this phone it belongs to this person.
        await this.store(sub);
        this.say("push.on");
      } else {
        els.enable.hidden = false;
        this.say("push.off");
      }
    }
    await this.list();
  }

  async enable() {
    const reg = this.registration;
    if (!reg || !this.token) return;
    els.enable.disabled = true;
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        this.say("push.denied");
        return;
      }
      const sub = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: fromBase64url(this.publicKey),
      });
      await this.store(sub);
      els.enable.hidden = true;
      this.say("push.on");
      await this.list();
    } catch (err) {
      this.say("push.failed", { reason: err instanceof Error ? err.message : String(err) });
    } finally {
      els.enable.disabled = false;
    }
  }

  /** @param {PushSubscription} sub */
  async store(sub) {
    const res = await this.api("POST", "/api/v1/push/subscriptions", { subscription: sub.toJSON() });
    if (res.ok) rememberThisPhone(/** @type {{ subscription: Phone }} */ (await res.json()).subscription.id);
  }

  async list() {
    const res = await this.api("GET", "/api/v1/push/subscriptions");
    if (!res.ok) return;
    const { subscriptions } = /** @type {{ subscriptions: Phone[] }} */ (await res.json());
    const mine = thisPhone();
    els.phones.replaceChildren(
      ...subscriptions.map((p) => {
        const li = document.createElement("li");
        li.dataset.id = p.id;
        const label = document.createElement("span");
        label.className = "push-phone-label";
        label.textContent = p.id === mine ? `${p.label} – ${t("push.thisPhone")}` : p.label;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-ghost-dark";
        remove.setAttribute("data-remove", p.id);
        remove.textContent = t("push.remove");
        li.append(label, remove);
        return li;
      }),
    );
    if (!subscriptions.length) {
      const li = document.createElement("li");
      li.className = "push-none";
      li.textContent = t("push.none");
      els.phones.append(li);
    }
  }

  /** @param {string} id */
  async remove(id) {
    const res = await this.api("DELETE", `/api/v1/push/subscriptions/${encodeURIComponent(id)}`);
    if (res.ok && id === thisPhone()) {
      rememberThisPhone(null);
      try {
        await (await this.registration?.pushManager.getSubscription())?.unsubscribe();
      } catch {
        // Already gone at the push service.
      }
      els.enable.hidden = false;
      this.say("push.off");
    }
    await this.list();
  }

  /**
   * @param {string} key
   * @param {Record<string, string>} [vars]
   */
  say(key, vars) {
    els.status.textContent = t(key, vars);
    els.section.dataset.state = key.slice("push.".length);
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  api(method, path, body) {
    return fetch(path, {
      method,
      cache: "no-store",
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
}
