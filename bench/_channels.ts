/**
 * The far ends of the person channels for bench/alert-latency.ts, in a process of their own: a
 * local RFC 8030 push service holding one staff member's subscription, and an ESPA 4.4.4 paging
 * system (test/helpers/). Decrypting pushes and answering the paging link's handshakes is real CPU
 * work; done in the benchmark's own process it would delay the very event loop that stamps the
 * falls' publishes and their WebSocket arrivals, in the gateway's run and not in bare aedes'.
 *
 *   node --import tsx bench/_channels.ts <ca-file>
 *
 * Writes the push service's certificate to <ca-file> (for the gateway's NODE_EXTRA_CA_CERTS), then
 * prints one ready line: the paging system's port and the subscription (endpoint and keys). Then one
 * line per arrival, stamped with CLOCK_MONOTONIC (process.hrtime, the same clock in every process)
 * in ms: `{"push": alertId, "at": ms}` for each first notification (re-notifications left out) and
 * `{"page": room, "at": ms}` for each call block, `room` being the number in its text's "room-<n>".
 */
import { writeFileSync } from "node:fs";
import { startPager } from "../test/helpers/espa-pager.js";
import { LocalPushService } from "../test/helpers/push-service.js";

const caFile = process.argv[2];
if (!caFile) throw new Error("usage: _channels.ts <ca-file>");
const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;
const line = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

const push = new LocalPushService();
await push.start();
writeFileSync(caFile, push.certificate());
const pager = await startPager();
// No application server key pinned: the gateway's is not known before it starts, and the service
// still checks each request's VAPID signature against the key the request names.
const phone = push.subscribe();
push.onPush = (p) => {
  const at = monotonicMs();
  if (p.json?.kind === "alert" && !p.json.renotify) line({ push: p.json.alertId, at });
};
pager.onCall = (c) => {
  const at = monotonicMs();
  line({ page: /room-(\d+)/.exec(c.text)?.[1] ?? null, at });
};
line({ ready: true, pager: pager.port, endpoint: phone.endpoint, keys: phone.keys });
process.on("SIGTERM", () => {
  void Promise.all([push.stop(), pager.stop()]).then(() => process.exit(0));
});
