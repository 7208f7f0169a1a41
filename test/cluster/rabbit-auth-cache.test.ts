/**
 * RabbitMQ's auth cache (rabbitmq_auth_backend_cache, 3.10.8) in front of the gateway's HTTP auth
 * backend, with a short TTL: what it spares the gateway in a reconnect storm, and how long a device
 * the gateway no longer admits still gets in.
 *
 * How 3.10's cache works (read from rabbit_auth_backend_cache and rabbit_auth_cache_ets): each
 * answer is kept under the whole question (for a login: the user name and every property RabbitMQ
 * passes, password and client id included), from the moment the backend answered, for cache_ttl
 * milliseconds; a hit does not extend it. Refusals are not kept (cache_refusals = false, the
 * default). So a login with a wrong secret always reaches the gateway, and a login the gateway
 * admitted is admitted again without asking until its entry expires. A login the cache has not seen
 * asks the gateway's /user twice: 3.10's rabbit_access_control asks the cache for authentication and
 * then for authorisation, and the HTTP backend answers both from its user path.
 *
 * Times are taken around each login so that only what is certain is asserted: an entry put while
 * a login was in flight cannot expire before that login's start plus the TTL, and has expired once
 * the TTL has passed since its CONNACK.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceTopic } from "../../src/broker/topics.js";
import { RABBIT_AUTH_BASE } from "../../src/cluster/rabbit-auth.js";
import { api, connectDevice, eventually, startGateway, type TestGateway } from "../helpers/gateway.js";
import { type RabbitNode, startRabbitMQ } from "../helpers/rabbitmq.js";

const SECRET = "cluster-test-secret-0123456789abcdef";
const CALLER = "rabbitmq";
const TTL_MS = 2000;
const STORM = 20;

let t: TestGateway;
let rabbit: RabbitNode;
const clients: MqttClient[] = [];
const secrets = new Map<string, string>();

const ENDPOINTS = ["user", "vhost", "resource", "topic"] as const;
type Counts = Record<(typeof ENDPOINTS)[number], number>;

/** Requests the gateway's auth endpoints answered so far, per endpoint. */
async function asked(): Promise<Counts> {
  const { values } = await t.gateway.metrics.rabbitAuthRequests.get();
  const counts: Counts = { user: 0, vhost: 0, resource: 0, topic: 0 };
  for (const v of values) counts[v.labels.endpoint as keyof Counts] += v.value;
  return counts;
}

function since(before: Counts, after: Counts): Counts {
  return Object.fromEntries(ENDPOINTS.map((e) => [e, after[e] - before[e]])) as Counts;
}

/** A login timed: its start, its CONNACK (or refusal), and the return code (0 when admitted). */
async function login(id: string, secret = secrets.get(id)!) {
  const start = performance.now();
  const code = await connectDevice(rabbit.mqttPort, id, secret).then(
    (c) => {
      clients.push(c);
      return 0;
    },
    (e: { code?: number }) => e.code ?? -1,
  );
  return { start, end: performance.now(), code };
}

function register(id: string): void {
  const { secret } = t.gateway.registry.add({
    id,
    profile: "ata/native",
    siteId: "home-a",
    unitId: "unit-1",
  });
  secrets.set(id, secret!);
}

async function disconnectAll(): Promise<void> {
  // A session RabbitMQ closed may still hold a QoS 1 publish it never got a PUBACK for: mqtt.js's
  // end() would wait for that PUBACK for ever, so such a client is ended with force.
  await Promise.all(clients.splice(0).map((c) => c.endAsync(!c.connected)));
}

/** A QoS 1 publish: "acked" with its PUBACK, "closed" when the connection closes instead. */
function publishOutcome(c: MqttClient, topic: string, payload: string): Promise<"acked" | "closed"> {
  return new Promise((resolve) => {
    c.once("close", () => resolve("closed"));
    c.publish(topic, payload, { qos: 1 }, (err) => resolve(err ? "closed" : "acked"));
  });
}

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));

beforeAll(async () => {
  t = await startGateway({
    overrides: {
      mqtt: { tcp: { host: "127.0.0.1", port: 0 }, ws: { enabled: false, port: 0 } },
      cluster: { rabbitmq: { enabled: true, username: CALLER, secret: SECRET } },
    },
  });
  for (let i = 0; i < STORM; i++) register(`storm-${i}`);
  for (const id of ["revoked", "rotated", "closed"]) register(id);
  const port = new URL(t.httpUrl).port;
  rabbit = await startRabbitMQ({
    authBaseUrl: `http://${CALLER}:${SECRET}@127.0.0.1:${port}${RABBIT_AUTH_BASE}`,
    authCache: { ttlMs: TTL_MS },
  });
  console.info(`RabbitMQ with the auth cache accepted MQTT after ${rabbit.startupMs} ms`);
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await rabbit?.stop();
  await t?.stop();
}, 60_000);

describe("RabbitMQ's auth cache in front of the gateway", () => {
  it("devices logging in again within the TTL are admitted without a request to the gateway", async () => {
    const ids = Array.from({ length: STORM }, (_, i) => `storm-${i}`);
    const before = await asked();
    const first = await Promise.all(ids.map((id) => login(id)));
    expect(first.map((l) => l.code)).toEqual(ids.map(() => 0));
    const afterFirst = await asked();
    const firstWave = since(before, afterFirst);
    // A cold cache: every device's login and vhost check went to the gateway once.
    expect(firstWave).toMatchObject({ user: 2 * STORM, vhost: STORM });

    await disconnectAll();
    const again = await Promise.all(ids.map((id) => login(id)));
    expect(again.map((l) => l.code)).toEqual(ids.map(() => 0));
    const secondWave = since(afterFirst, await asked());
    // Logins whose CONNACK came within the TTL of the same device's first login started were
    // answered from the cache; the rest may have asked again, nothing more.
    const late = ids.filter((_, i) => again[i]!.end >= first[i]!.start + TTL_MS).length;
    console.info(
      `storm of ${STORM}: first wave asked ${JSON.stringify(firstWave)}, second ${JSON.stringify(secondWave)}; ${late} second logins ended past the TTL`,
    );
    expect(late).toBeLessThan(STORM);
    expect(secondWave.user).toBeLessThanOrEqual(late);
    expect(secondWave.vhost).toBeLessThanOrEqual(late);
    await disconnectAll();
  });

  it("a device disabled in the gateway is still admitted within the TTL of its last admitted login, and refused after it", async () => {
    const first = await login("revoked");
    expect(first.code).toBe(0);
    await disconnectAll();
    expect((await api(t.httpUrl, "POST", "/api/v1/devices/revoked/disable")).status).toBe(200);

    const before = await asked();
    const within = await login("revoked");
    if (within.end < first.start + TTL_MS) {
      // Certain: the cached "allow" cannot have expired yet.
      expect(within.code).toBe(0);
      expect(since(before, await asked()).user).toBe(0);
    } else console.warn("the second login ended past the TTL: the within-TTL case is not asserted");
    await disconnectAll();

    // Past the TTL since the first login's answer (which came before its CONNACK): RabbitMQ asks
    // the gateway again, and the gateway refuses.
    await sleepUntil(first.end + TTL_MS + 50);
    const after = await login("revoked");
    expect(after.code).toBe(4);
    t.gateway.security.flush(true);
    const refused = t.gateway.security
      .list({ kinds: ["connect_refused"], limit: 20 })
      .filter((r) => r.subject === "revoked" && r.detail.via === "rabbitmq");
    expect(refused.map((r) => r.detail.reason)).toContain("disabled");
  });

  it("after a secret rotation the new secret works at once, and the old one until its cached answer expires", async () => {
    const old = secrets.get("rotated")!;
    const first = await login("rotated", old);
    expect(first.code).toBe(0);
    await disconnectAll();
    const rotated = await api(t.httpUrl, "POST", "/api/v1/devices/rotated/rotate-secret");
    const fresh = rotated.body.secret as string;

    // The new secret is another question: a cache miss the gateway answers.
    expect((await login("rotated", fresh)).code).toBe(0);
    await disconnectAll();
    const within = await login("rotated", old);
    if (within.end < first.start + TTL_MS) expect(within.code).toBe(0);
    else console.warn("the old secret's second login ended past the TTL: not asserted");
    await disconnectAll();

    await sleepUntil(first.end + TTL_MS + 50);
    expect((await login("rotated", old)).code).toBe(4);
    expect((await login("rotated", fresh)).code).toBe(0);
    await disconnectAll();
  });

  it("rabbitmqctl close_all_user_connections does not reliably end a device's MQTT session on 3.10; a new login past the TTL is refused", async () => {
    const first = await login("closed");
    expect(first.code).toBe(0);
    const session = clients.at(-1)!;
    const heartbeat = (n: number) =>
      JSON.stringify({ eventId: `closed-${n}`, type: "device.heartbeat", data: { battery: 50 } });
    const topic = deviceTopic("closed", "events");
    expect(await publishOutcome(session, topic, heartbeat(1))).toBe("acked");
    expect((await api(t.httpUrl, "POST", "/api/v1/devices/closed/disable")).status).toBe(200);
    // Disabled in the gateway, the device's open session goes on publishing: its connection keeps
    // the topic permission it was given (3.10 keeps up to 12 per connection) and asks no one.
    expect(await publishOutcome(session, topic, heartbeat(2))).toBe("acked");
    // What an operator would run to cut a user off (the management plugin's
    // DELETE /api/connections/username/<id> lists the same tracked connections). On 3.10 it reports
    // success, and the device's session usually stays (with keep-alive off, it was still open 90 s
    // later); once, in a full test run on the loaded machine, the command took 5.9 s and the session
    // was closed after it. So it is not a way to end a session: the gateway relies on it for nothing
    // (docs/cluster.md), and this records which way it went.
    const t0 = performance.now();
    const out = await rabbit.cli("rabbitmqctl", ["close_all_user_connections", "closed", "device disabled"]);
    const after = await publishOutcome(session, topic, heartbeat(3));
    console.info(
      `close_all_user_connections took ${Math.round(performance.now() - t0)} ms: ${out.trim()}; the session then ${after === "acked" ? "went on publishing" : "was closed"}`,
    );
    expect(session.connected).toBe(after === "acked");
    await disconnectAll();
    await sleepUntil(first.end + TTL_MS + 50);
    expect((await login("closed")).code).toBe(4);
  }, 60_000);

  it("wrong secrets are never cached: each one reaches the gateway and counts toward its throttle", async () => {
    const before = await asked();
    for (let i = 0; i < 3; i++) expect((await login("storm-0", `wrong-secret-${i}-0123456789`)).code).toBe(4);
    expect((await login("storm-0", "wrong-secret-0-0123456789")).code).toBe(4);
    await eventually(async () => since(before, await asked()).user === 4);
  });
});
