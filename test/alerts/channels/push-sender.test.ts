/**
 * The push sender's thread against the local RFC 8030 push service: what it sends is decrypted by
 * the service with the subscription's keys, the service's answers come back as they were given, and
 * stopping answers what the thread still holds at once rather than after the request's timeout.
 */
import { existsSync } from "node:fs";
import { threadId } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush from "web-push";
import { type PushRequest, PushSender } from "../../../src/alerts/channels/push-sender.js";
import { silentLogger } from "../../../src/log.js";
import { currentThreadId } from "../../../src/util/threads.js";
import { LocalPushService, type TestSubscription } from "../../helpers/push-service.js";

const svc = new LocalPushService();
const vapid = webpush.generateVAPIDKeys();
beforeAll(() => svc.start());
afterAll(() => svc.stop());

function request(sub: TestSubscription, body: unknown, timeoutMs = 2000): PushRequest {
  const { Authorization } = webpush.getVapidHeaders(
    svc.origin,
    "mailto:drift@example.org",
    vapid.publicKey,
    vapid.privateKey,
    "aes128gcm",
  );
  return {
    endpoint: sub.endpoint,
    p256dh: sub.keys.p256dh,
    auth: sub.keys.auth,
    payload: JSON.stringify(body),
    headers: { Authorization },
    ttlSeconds: 60,
    urgency: "high",
    topic: "al-1",
    timeoutMs,
  };
}

describe("PushSender", () => {
  it("encrypts and sends on its own thread; the service decrypts it and its status comes back", async () => {
    const tids: number[] = [];
    const sender = new PushSender({
      log: silentLogger(),
      ca: svc.certificate(),
      onThread: (t) => tids.push(t),
    });
    await sender.start();
    try {
      expect(sender.threadId).not.toBeNull();
      expect(sender.threadId).not.toBe(threadId);
      // Its Linux thread id, reported before it is ready, for per-thread CPU accounting.
      if (process.platform === "linux") {
        expect(tids).toHaveLength(1);
        expect(existsSync(`/proc/self/task/${tids[0]}`)).toBe(true);
        expect(tids[0]).not.toBe(currentThreadId());
      }
      const sub = svc.subscribe(vapid.publicKey);
      const results = await Promise.all(
        [1, 2, 3].map((n) => sender.send(request(sub, { alertId: `al-${n}` }))),
      );
      expect(results).toEqual([1, 2, 3].map(() => ({ ok: true, status: 201, error: "" })));
      const got = svc.for(sub);
      expect(
        got.map((p) => p.json).sort((a, b) => String(a.alertId).localeCompare(String(b.alertId))),
      ).toEqual([{ alertId: "al-1" }, { alertId: "al-2" }, { alertId: "al-3" }]);
      expect(got[0]).toMatchObject({ ttl: 60, urgency: "high" });
      expect(svc.rejected).toEqual([]);
    } finally {
      await sender.stop();
    }
  });

  it("gives back a refusal with the service's status, and a request error without one", async () => {
    const sender = new PushSender({ log: silentLogger(), ca: svc.certificate() });
    await sender.start();
    try {
      const gone = svc.subscribe(vapid.publicKey);
      svc.plan(gone.id, { status: 410 });
      expect(await sender.send(request(gone, { x: 1 }))).toEqual({
        ok: false,
        status: 410,
        error: "answered 410",
      });
      // Nothing listens on port 9 of loopback: the request itself fails.
      const nowhere = {
        ...request(svc.subscribe(vapid.publicKey), { x: 2 }),
        endpoint: "https://127.0.0.1:9/push/x",
      };
      expect(await sender.send(nowhere)).toMatchObject({
        ok: false,
        status: null,
        error: expect.stringMatching(/ECONNREFUSED/),
      });
    } finally {
      await sender.stop();
    }
  });

  it("stopping answers a request still in the thread at once, and refuses new ones until started again", async () => {
    const sender = new PushSender({ log: silentLogger(), ca: svc.certificate() });
    await sender.start();
    const slow = svc.subscribe(vapid.publicKey);
    svc.plan(slow.id, { delayMs: 3000 });
    const pending = sender.send(request(slow, { x: 1 }, 10_000));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await sender.stop();
    expect(await pending).toEqual({ ok: false, status: null, error: "push sender stopped" });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(sender.threadId).toBeNull();

    const sub = svc.subscribe(vapid.publicKey);
    expect(await sender.send(request(sub, { x: 2 }))).toEqual({
      ok: false,
      status: null,
      error: "push sender stopped",
    });
    await sender.start();
    try {
      expect(await sender.send(request(sub, { x: 3 }))).toEqual({ ok: true, status: 201, error: "" });
      expect(svc.for(sub).map((p) => p.json)).toEqual([{ x: 3 }]);
    } finally {
      await sender.stop();
    }
  });

  it("a thread that dies answers what it held as failed, and the next message starts a new one; one that stays silent is given up after the timeout", async () => {
    const sender = new PushSender({
      log: silentLogger(),
      entry: new URL("./dying-push-thread.js", import.meta.url),
    });
    await sender.start();
    try {
      const sub = svc.subscribe(vapid.publicKey);
      expect(await sender.send(request(sub, "fine"))).toEqual({ ok: true, status: 299, error: "" });
      const first = sender.threadId;
      const t0 = performance.now();
      expect(await sender.send(request(sub, "die", 10_000))).toEqual({
        ok: false,
        status: null,
        error: "the push sender thread ended",
      });
      // Answered when the thread ended, not after the request's own timeout.
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(await sender.send(request(sub, "fine"))).toEqual({ ok: true, status: 299, error: "" });
      expect(sender.threadId).not.toBeNull();
      expect(sender.threadId).not.toBe(first);

      // A thread that takes a request and never answers: failed once its timeout and a grace have
      // passed, and the thread goes on answering the next.
      const t1 = performance.now();
      expect(await sender.send(request(sub, "silent", 100))).toEqual({
        ok: false,
        status: null,
        error: "no answer from the push sender thread",
      });
      expect(performance.now() - t1).toBeGreaterThanOrEqual(2000);
      expect(await sender.send(request(sub, "fine"))).toEqual({ ok: true, status: 299, error: "" });
    } finally {
      await sender.stop();
    }
  });
});
