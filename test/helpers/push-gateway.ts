/**
 * A PushChannel on a running test gateway, with its HTTP routes, until the gateway wires channels
 * itself: the same database, token store, alert manager and router the gateway uses, and a
 * RecordingReporter in the manager's place.
 */
import type { Audience, Delivery } from "../../src/alerts/channels/channel.js";
import { PushChannel, PushOptions, type PushOptionsInput } from "../../src/alerts/channels/push.js";
import type { AlertView } from "../../src/alerts/model.js";
import { pushRoutes } from "../../src/http/push.js";
import { silentLogger } from "../../src/log.js";
import { RecordingReporter } from "./channel-reporter.js";
import type { TestGateway } from "./gateway.js";
import { ADMIN_TOKEN, api } from "./gateway.js";
import type { LocalPushService, TestSubscription } from "./push-service.js";

export interface AttachedPush {
  channel: PushChannel;
  reporter: RecordingReporter;
  /** Deliver an alert to every phone the unit level reaches, as the ladder would; the deliveries. */
  deliverToUnit(alert: AlertView, reason?: Delivery["reason"]): Delivery[];
  /** Register a test-owned subscription for a person over HTTP, as the console does. */
  register(sub: TestSubscription, token: string, label?: string): Promise<string>;
  stop(): Promise<void>;
}

let attempts = 1000;

export function attachPush(
  t: TestGateway,
  svc: LocalPushService,
  options: PushOptionsInput = {},
): AttachedPush {
  const g = t.gateway;
  const channel = new PushChannel({
    db: g.db,
    staff: g.tokens,
    log: silentLogger(),
    options: PushOptions.parse(options),
    agent: svc.agent(),
  });
  const reporter = new RecordingReporter();
  channel.start(reporter);
  pushRoutes(g.router, {
    push: channel,
    alerts: g.alerts,
    tokens: g.tokens,
    adminToken: ADMIN_TOKEN,
    allSites: g.config.sites.map((s) => s.id),
  });
  const unitName = (a: AlertView) =>
    g.config.sites.find((s) => s.id === a.site)?.units.find((u) => u.id === a.unit)?.name ?? a.unit;
  return {
    channel,
    reporter,
    deliverToUnit(alert, reason = "level") {
      const audience: Audience = { siteId: alert.site, unitId: alert.unit, targets: ["unit"], excluded: [] };
      return channel.reach(audience, alert).map((recipient) => {
        const d: Delivery = {
          attemptId: ++attempts,
          alert,
          reason,
          level: 0,
          recipient,
          place: { site: alert.site, unit: unitName(alert) },
        };
        channel.deliver(d);
        return d;
      });
    },
    async register(sub, token, label) {
      const res = await api(
        t.httpUrl,
        "POST",
        "/api/v1/push/subscriptions",
        {
          subscription: { endpoint: sub.endpoint, expirationTime: null, keys: sub.keys },
          ...(label ? { label } : {}),
        },
        token,
      );
      if (res.status !== 201 && res.status !== 200)
        throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.subscription.id as string;
    },
    stop: () => channel.stop(),
  };
}
