/**
 * Web Push to staff phones, also locked and in a pocket: the W3C Push API in the browser, the
 * RFC 8030 push protocol to the browser vendor's push service, VAPID (RFC 8292) to identify this
 * gateway and RFC 8291 (aes128gcm, RFC 8188) to encrypt the payload end to end. The `web-push`
 * package does the last two; this file decides who gets what, and what a failure means.
 *
 * Receipts: a 201 from the push service means only that it took the message (`reporter.sent`).
 * "Delivered" comes from the phone itself: its service worker shows the notification and posts the
 * capability back (`confirm`), so the audit's "delivered" means the phone got it.
 */
import { createHash, randomBytes } from "node:crypto";
import type WebPush from "web-push";
import { z } from "zod";
import type { Logger } from "../../log.js";
import type { StaffIdentity } from "../../staff/protocol.js";
import type { Db } from "../../store/db.js";
import type { AlertView } from "../model.js";
import type {
  AlertChannel,
  Audience,
  ChannelHealth,
  ChannelReporter,
  Delivery,
  Recipient,
} from "./channel.js";
import { inAudience } from "./channel.js";
import { type CapabilityClaims, signCapability, verifyCapability } from "./push-capability.js";
import { PushSender } from "./push-sender.js";
import { type NewSubscription, PushStore, type PushSubscriptionRow } from "./push-store.js";

/** A VAPID subject must be a mailto: or https: URI (RFC 8292 §2.1). */
const VapidSubject = z.string().regex(/^(mailto:|https:\/\/)\S+$/, "a mailto: or https: URI");
/** An uncompressed P-256 point, base64url (65 bytes -> 87 characters). */
const VapidPublicKey = z
  .string()
  .regex(/^[A-Za-z0-9_-]{87}$/, "a base64url P-256 public key (87 characters)");
const VapidPrivateKey = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, "a base64url P-256 private key (43 characters)");

/** How long a VAPID token is valid: 12 h, half the 24 h RFC 8292 allows, so clock skew never voids it. */
const VAPID_TTL_S = 12 * 3600;
export const PushOptions = z.strictObject({
  /**
   * The gateway's VAPID identity. Give it in production (from a secret store) so that a restored
   * or rebuilt database keeps phones subscribed; without it a key pair is generated once and kept
   * in the database.
   */
  vapid: z
    .strictObject({ subject: VapidSubject, publicKey: VapidPublicKey, privateKey: VapidPrivateKey })
    .optional(),
  /**
   * The subject sent with a generated key pair. Push services use it to contact the operator;
   * Apple's rejects a JWT whose subject is not a real contact, so set it for iPhones.
   */
  subject: VapidSubject.default("mailto:drift@ata-gateway.invalid"),
  /**
   * How long the push service keeps a message for a phone that is off or out of coverage
   * (RFC 8030 §5.2). Ten minutes: an alert still open then is re-notified with a fresh message
   * anyway, and an older one shown when the phone wakes would be stale.
   */
  ttlSeconds: z.number().int().min(0).max(86_400).default(600),
  /** Socket timeout of one request to the push service; then the attempt has failed. */
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  /**
   * Consecutive push-service failures (across all subscriptions, 404/410 not counted) after which
   * the channel reports itself unhealthy so the ladder moves on. Three: one broken phone among
   * several does not trip it (any success in between resets the count), while a push service that
   * is down trips it within one level of a high alert (level entry plus two re-notifications).
   */
  unhealthyAfterFailures: z.number().int().min(1).max(100).default(3),
  /**
   * How long an unhealthy channel stays out before it is tried again (half-open, like a circuit
   * breaker): one probe every 30 s is little load on a push service in trouble and brings push
   * back within one re-notification interval of it recovering.
   */
  coolDownMs: z.number().int().min(1000).max(3_600_000).default(30_000),
  /**
   * How long a notification's actions and receipt stay valid. Two hours covers a night-shift
   * round with the phone in a pocket; a later push for a still-open alert carries a fresh one.
   */
  actionTtlSeconds: z.number().int().min(60).max(86_400).default(7200),
});
export type PushOptions = z.infer<typeof PushOptions>;
export type PushOptionsInput = z.input<typeof PushOptions>;

/**
 * The keys the channel keeps in `push_keys` when it has to make them, by name, each with how it is
 * made: a cluster node offers these to the others at start (src/cluster/replication.ts), so that
 * every node signs with one VAPID pair and one capability secret.
 */
export function pushKeyMakers(options: PushOptions): Record<string, () => Promise<string>> {
  return {
    ...(options.vapid
      ? {}
      : { vapid: async () => JSON.stringify((await import("web-push")).default.generateVAPIDKeys()) }),
    "capability-secret": async () => randomBytes(32).toString("base64url"),
  };
}

export interface PushChannelContext {
  db: Db;
  /** Who is behind a token id now (null when revoked): `TokenStore.identity`. */
  staff: { identity(staffTokenId: string): StaffIdentity | null };
  log: Logger;
  options: PushOptions;
  now?: () => number;
  /**
   * Certificates (PEM) to trust for push services beside the system's. Production leaves it out;
   * a private push service or a test receiver with its own CA passes that CA.
   */
  ca?: string;
  /** The sender thread's Linux id, each time one starts (per-thread CPU accounting). */
  onThread?: (tid: number) => void;
}

/** What the service worker receives (decrypted). Version 1 of the payload contract. */
export type PushPayload =
  | {
      v: 1;
      kind: "alert";
      alertId: string;
      attemptId: number;
      /** The capability for the receipt and the two actions (push-capability.ts). */
      cap: string;
      title: string;
      body: string;
      priority: AlertView["priority"];
      tag: string;
      /** Alert again even if a notification with this tag is already shown. */
      renotify: boolean;
      /** Path that opens the console on this alert. */
      url: string;
      raisedAt: string;
    }
  | {
      v: 1;
      kind: "settled";
      alertId: string;
      tag: string;
      title: string;
      body: string;
      state: AlertView["state"];
      url: string;
    };

/** Danish names of alert types, for a lock screen (web/i18n.js has the console's). */
const TYPE_DA: Record<string, string> = {
  fall: "Fald",
  "repeated-falls": "Gentagne fald",
  call: "Kald",
  "bed-exit": "Ude af sengen",
  "device-offline": "Enhed offline",
  "battery-low": "Lavt batteri",
  tamper: "Manipulation",
  "lift-fault": "Liftfejl",
};

/** RFC 8030 §5.4: a later message with the same topic replaces one the push service still holds. */
function topicFor(alertId: string): string {
  return createHash("sha256").update(alertId).digest("base64url").slice(0, 32);
}

/** Only the push service's host goes into logs and the audit: the endpoint path is a secret. */
function serviceHost(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return "push service";
  }
}

interface Keys {
  subject: string;
  publicKey: string;
  privateKey: string;
  capabilitySecret: Buffer;
}

/** An alert as settled, with the place its settled notification names. */
type Settled = { alert: AlertView; place: Delivery["place"] };

export class PushChannel implements AlertChannel {
  readonly name = "push" as const;
  private readonly now: () => number;
  private readonly store: PushStore;
  /** Encrypts and sends on a thread of its own (push-sender.ts). */
  private readonly sender: PushSender;
  private reporter: ChannelReporter | null = null;
  /** web-push, loaded at start: a gateway without push does not pay for it at every restart. */
  private webpush: typeof WebPush | null = null;
  /** Signed VAPID headers by push-service origin (vapidAuthorization). */
  private readonly vapidTokens = new Map<string, { header: string; renewAtS: number }>();
  private loaded: Keys | null = null;
  private consecutiveFailures = 0;
  private unhealthySince: number | null = null;
  private coolDownTimer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  /** Display names of an alert's place as last delivered, for the settled notification's text. */
  private readonly places = new Map<string, Delivery["place"]>();
  /**
   * Alert pushes waiting for the push service's answer, by alert: how many, and the alert as settled
   * if it was settled meanwhile. The service may hand the notification to the phone before its
   * answer gets here; an alert taken in that moment must still replace it on that phone.
   */
  private readonly sending = new Map<string, { pushes: number; settled: Settled | null }>();

  constructor(private readonly ctx: PushChannelContext) {
    this.now = ctx.now ?? Date.now;
    this.store = new PushStore(ctx.db, this.now);
    this.sender = new PushSender({
      log: ctx.log,
      ...(ctx.ca ? { ca: ctx.ca } : {}),
      ...(ctx.onThread ? { onThread: ctx.onThread } : {}),
    });
  }

  async start(reporter: ChannelReporter): Promise<void> {
    this.webpush = (await import("web-push")).default;
    this.reporter = reporter;
    this.keys();
    await this.sender.start();
  }

  async stop(): Promise<void> {
    this.reporter = null;
    if (this.coolDownTimer) clearTimeout(this.coolDownTimer);
    this.coolDownTimer = null;
    // Requests end by themselves within timeoutMs; waiting keeps the database open until then. An
    // alarm push answered meanwhile may still owe its phone a settled update: wait for that too.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.sender.stop();
  }

  /** The VAPID public key (base64url), for `pushManager.subscribe({ applicationServerKey })`. */
  publicKey(): string {
    return this.keys().publicKey;
  }

  // ---------------------------------------------------------------- subscriptions

  subscribe(s: NewSubscription): { subscription: PushSubscriptionRow; created: boolean } {
    const result = this.store.save(s);
    this.ctx.log.info(
      { subscription: result.subscription.id, staff: s.staffTokenId, created: result.created },
      "push subscription stored",
    );
    return result;
  }

  subscriptionsOf(staffTokenId: string): PushSubscriptionRow[] {
    return this.store.ownedBy(staffTokenId);
  }

  unsubscribe(id: string, staffTokenId: string): boolean {
    const removed = this.store.remove(id, staffTokenId);
    if (removed) this.ctx.log.info({ subscription: id, staff: staffTokenId }, "push subscription removed");
    return removed;
  }

  // ---------------------------------------------------------------- AlertChannel

  reach(audience: Audience, _alert: AlertView): Recipient[] {
    const out: Recipient[] = [];
    const people = new Map<string, StaffIdentity | null>();
    for (const s of this.store.live()) {
      let person = people.get(s.staffTokenId);
      if (person === undefined) {
        person = this.ctx.staff.identity(s.staffTokenId);
        people.set(s.staffTokenId, person);
      }
      if (!person || !inAudience(person, audience)) continue;
      out.push({ id: s.id, name: `${person.name} (${s.label})`, staffId: person.id });
    }
    return out;
  }

  deliver(d: Delivery): void {
    const p = this.send(d).catch((err: unknown) => {
      // send() reports every outcome itself; this is a bug guard so nothing escapes to the manager.
      this.ctx.log.error({ err, attemptId: d.attemptId }, "push delivery failed unexpectedly");
      this.reporter?.failed(d.attemptId, "internal error in the push channel");
    });
    this.track(p);
  }

  health(): ChannelHealth {
    if (this.unhealthySince !== null && this.now() - this.unhealthySince < this.ctx.options.coolDownMs)
      return {
        ok: false,
        detail: `${this.consecutiveFailures} consecutive push service failures; next try after the cool-down`,
      };
    return { ok: true };
  }

  settled(alert: AlertView): void {
    const sent = this.store.takeSent(alert.id);
    const place = this.places.get(alert.id) ?? { site: alert.site, unit: alert.unit };
    this.places.delete(alert.id);
    // Phones whose alarm push is still waiting for the service's answer get theirs after it (send).
    const pending = this.sending.get(alert.id);
    if (pending) pending.settled = { alert, place };
    for (const s of sent) this.sendSettled(alert, place, s);
  }

  private sendSettled(alert: AlertView, place: Delivery["place"], s: PushSubscriptionRow): void {
    const payload = settledPayload(alert, place, s.staffTokenId);
    const p = this.push(s, payload, "normal")
      .then((r) => {
        if (r.ok) this.store.succeeded(s.id);
        else if (r.gone) this.store.remove(s.id);
        this.ctx.log.debug(
          { alertId: alert.id, subscription: s.id, status: r.status },
          "push settled update",
        );
      })
      .catch((err: unknown) => this.ctx.log.error({ err, alertId: alert.id }, "push settled update failed"));
    this.track(p);
  }

  private startSending(alertId: string): void {
    const entry = this.sending.get(alertId);
    if (entry) entry.pushes++;
    else this.sending.set(alertId, { pushes: 1, settled: null });
  }

  /** One alert push answered; the alert as settled meanwhile, if it was. */
  private doneSending(alertId: string): Settled | null {
    const entry = this.sending.get(alertId);
    if (!entry) return null;
    if (--entry.pushes === 0) this.sending.delete(alertId);
    return entry.settled;
  }

  // ---------------------------------------------------------------- from the phone

  /** Check a capability from a service worker: its claims and the person, or null. */
  authorize(
    cap: string,
  ): { claims: CapabilityClaims; staff: StaffIdentity; subscription: PushSubscriptionRow } | null {
    const claims = verifyCapability(this.keys().capabilitySecret, cap, this.now());
    if (!claims) return null;
    const subscription = this.store.get(claims.ps);
    if (!subscription || subscription.staffTokenId !== claims.st) return null;
    const staff = this.ctx.staff.identity(claims.st);
    if (!staff) return null;
    return { claims, staff, subscription };
  }

  /** The service worker showed the notification: the attempt reached the person's phone. */
  confirm(cap: string): CapabilityClaims | null {
    const ok = this.authorize(cap);
    if (!ok) return null;
    this.reporter?.delivered(ok.claims.at, `shown on ${ok.subscription.label}`, { toPerson: true });
    return ok.claims;
  }

  // ---------------------------------------------------------------- internals

  private async send(d: Delivery): Promise<void> {
    const s = this.store.get(d.recipient.id);
    if (!s || !this.ctx.staff.identity(s.staffTokenId)) {
      this.reporter?.failed(d.attemptId, "the phone's subscription no longer exists", { gone: true });
      return;
    }
    this.places.set(d.alert.id, d.place);
    const keys = this.keys();
    const cap = signCapability(keys.capabilitySecret, {
      at: d.attemptId,
      al: d.alert.id,
      st: s.staffTokenId,
      ps: s.id,
      exp: Math.floor(this.now() / 1000) + this.ctx.options.actionTtlSeconds,
    });
    const payload = alertPayload(d, cap);
    this.startSending(d.alert.id);
    let settledMeanwhile: Settled | null = null;
    let r: Awaited<ReturnType<PushChannel["push"]>>;
    try {
      // RFC 8030 §5.3: "high" lets a phone in power saving wake for it; the rest can wait for it.
      r = await this.push(s, payload, d.alert.priority === "high" ? "high" : "normal");
    } finally {
      settledMeanwhile = this.doneSending(d.alert.id);
    }
    const host = serviceHost(s.endpoint);
    if (r.ok) {
      this.store.succeeded(s.id);
      // Taken while the service was answering: this phone shows the alarm; replace it now, after it.
      if (settledMeanwhile) this.sendSettled(settledMeanwhile.alert, settledMeanwhile.place, s);
      else this.store.markSent(d.alert.id, s.id);
      this.serviceSucceeded();
      this.reporter?.sent(d.attemptId, `push service ${host} accepted it (${r.status})`);
    } else if (r.gone) {
      // RFC 8030 §7.3 and 8.3: the subscription expired or was unsubscribed; it will never work again.
      this.store.remove(s.id);
      this.ctx.log.info({ subscription: s.id, status: r.status }, "push subscription gone; removed");
      this.reporter?.failed(d.attemptId, `push service ${host} answered ${r.status}: subscription gone`, {
        gone: true,
      });
    } else {
      this.store.failedOnce(s.id);
      this.serviceFailed();
      this.ctx.log.warn({ subscription: s.id, status: r.status, error: r.error }, "push attempt failed");
      this.reporter?.failed(d.attemptId, `push service ${host}: ${r.error}`);
    }
  }

  private async push(
    s: PushSubscriptionRow,
    payload: PushPayload,
    urgency: "high" | "normal",
  ): Promise<{ ok: boolean; gone: boolean; status: number | null; error: string }> {
    const r = await this.sender.send({
      endpoint: s.endpoint,
      p256dh: s.p256dh,
      auth: s.auth,
      payload: JSON.stringify(payload),
      // Signed here once per push service and reused (below), not per message.
      headers: { Authorization: this.vapidAuthorization(s.endpoint, this.keys()) },
      ttlSeconds: this.ctx.options.ttlSeconds,
      urgency,
      topic: topicFor(payload.alertId),
      timeoutMs: this.ctx.options.timeoutMs,
    });
    return { ...r, gone: r.status === 404 || r.status === 410 };
  }

  /**
   * The VAPID header (RFC 8292) for a push service: a JWT signed with the gateway's key, naming the
   * service's origin. An ES256 signature costs about a millisecond of the event loop; a fall sent to
   * ten phones on one service would pay it ten times. The token is valid for VAPID_TTL_S (the RFC
   * allows up to 24 h) and reused until an hour before it expires.
   */
  private vapidAuthorization(
    endpoint: string,
    keys: { subject: string; publicKey: string; privateKey: string },
  ): string {
    const audience = new URL(endpoint).origin;
    const nowS = Math.floor(Date.now() / 1000);
    const cached = this.vapidTokens.get(audience);
    if (cached && cached.renewAtS > nowS) return cached.header;
    const expiresS = nowS + VAPID_TTL_S;
    const header = this.lib().getVapidHeaders(
      audience,
      keys.subject,
      keys.publicKey,
      keys.privateKey,
      "aes128gcm",
      expiresS,
    ).Authorization;
    this.vapidTokens.set(audience, { header, renewAtS: expiresS - 3600 });
    return header;
  }

  private serviceSucceeded(): void {
    this.consecutiveFailures = 0;
    if (this.unhealthySince === null) return;
    this.unhealthySince = null;
    if (this.coolDownTimer) clearTimeout(this.coolDownTimer);
    this.coolDownTimer = null;
    this.ctx.log.info("push service answering again; push channel healthy");
    this.reporter?.healthChanged();
  }

  private serviceFailed(): void {
    this.consecutiveFailures++;
    if (this.consecutiveFailures < this.ctx.options.unhealthyAfterFailures) return;
    if (!this.health().ok) return;
    // Trips, or trips again after a failed probe at the end of a cool-down.
    this.unhealthySince = this.now();
    this.ctx.log.warn({ failures: this.consecutiveFailures }, "push channel unhealthy");
    this.reporter?.healthChanged();
    if (this.coolDownTimer) clearTimeout(this.coolDownTimer);
    this.coolDownTimer = setTimeout(() => {
      this.coolDownTimer = null;
      // The ladder may use the channel again (one probe); tell it, so waiting alerts are re-checked.
      this.reporter?.healthChanged();
    }, this.ctx.options.coolDownMs);
    this.coolDownTimer.unref();
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private lib(): typeof WebPush {
    if (!this.webpush) throw new Error("the push channel is used before start()");
    return this.webpush;
  }

  private keys(): Keys {
    if (this.loaded) return this.loaded;
    const o = this.ctx.options;
    let vapid: { subject: string; publicKey: string; privateKey: string };
    if (o.vapid) vapid = o.vapid;
    else {
      const stored = JSON.parse(
        this.store.key("vapid", () => JSON.stringify(this.lib().generateVAPIDKeys())),
      ) as { publicKey: string; privateKey: string };
      vapid = { subject: o.subject, ...stored };
    }
    const secret = this.store.key("capability-secret", () => randomBytes(32).toString("base64url"));
    this.loaded = { ...vapid, capabilitySecret: Buffer.from(secret, "base64url") };
    return this.loaded;
  }
}

function alertPayload(d: Delivery, cap: string): PushPayload {
  const a = d.alert;
  const type = TYPE_DA[a.type] ?? "Alarm";
  const repeat = d.reason === "renotify" ? "Stadig ikke taget: " : "";
  const escalated = d.level > 0 ? " (eskaleret)" : "";
  const where = [a.room ? `Stue ${a.room}` : null, a.resident ? `beboer ${a.resident}` : null]
    .filter(Boolean)
    .join(" · ");
  return {
    v: 1,
    kind: "alert",
    alertId: a.id,
    attemptId: d.attemptId,
    cap,
    title: `${repeat}${type} – ${d.place.unit}${escalated}`,
    body: [where, a.message.da].filter(Boolean).join("\n"),
    priority: a.priority,
    tag: a.id,
    // A repeat, a higher level or a retry may find this alert's notification already on the
    // screen; without renotify the replacement would be silent (Notifications API "renotify").
    renotify: d.reason !== "level" || d.level > 0,
    url: `/?alert=${encodeURIComponent(a.id)}`,
    raisedAt: a.raisedAt,
  };
}

function settledPayload(a: AlertView, place: Delivery["place"], owner: string): PushPayload {
  const type = TYPE_DA[a.type] ?? "Alarm";
  const title =
    a.acceptedBy && (a.state === "accepted" || a.state === "attending")
      ? a.acceptedBy.id === owner
        ? `Du har taget: ${type} – ${place.unit}`
        : `Taget af ${a.acceptedBy.name}: ${type} – ${place.unit}`
      : a.state === "cancelled"
        ? `Annulleret: ${type} – ${place.unit}`
        : `Afsluttet: ${type} – ${place.unit}`;
  return {
    v: 1,
    kind: "settled",
    alertId: a.id,
    tag: a.id,
    title,
    body: [a.room ? `Stue ${a.room}` : null, a.resident ? `beboer ${a.resident}` : null]
      .filter(Boolean)
      .join(" · "),
    state: a.state,
    url: `/?alert=${encodeURIComponent(a.id)}`,
  };
}
