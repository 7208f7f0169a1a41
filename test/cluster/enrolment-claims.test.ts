/**
 * One enrolment code redeemed once across a cluster (src/staff/enrolment.ts `redeem`,
 * src/cluster/pg/enrolment-claims.ts): two nodes, each with its own SQLite file and the replicated
 * tables, on a real PostgreSQL 15. Each code is redeemed on both nodes at the same moment; exactly
 * one phone gets a token and the other the answer a used code gets. With PostgreSQL unreachable the
 * redemption is refused as unavailable, over HTTP too, and no token is issued.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { claimEnrolment } from "../../src/cluster/pg/enrolment-claims.js";
import { TableReplication } from "../../src/cluster/replication.js";
import { enrolmentRoutes } from "../../src/http/enrolment.js";
import { Router } from "../../src/http/router.js";
import { silentLogger } from "../../src/log.js";
import { ClaimUnavailableError, EnrolmentStore } from "../../src/staff/enrolment.js";
import { TokenStore, tokenKeyFingerprint } from "../../src/staff/tokens.js";
import type { Db } from "../../src/store/db.js";
import { pgTestDatabases } from "../helpers/pg-databases.js";
import { freePort } from "../helpers/ports.js";
import { tempDbs } from "../helpers/tempdb.js";
import { until } from "../helpers/until.js";

const pgdb = pgTestDatabases("enrolment_claims");
const dbs = tempDbs("ata-enrolment-claims-");
const running: TableReplication[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const r of running.splice(0)) await r.stop().catch(() => undefined);
  dbs.cleanup();
});

const KEY = randomBytes(32);
const ROUNDS = 20;

interface Node {
  db: Db;
  tokens: TokenStore;
  enrolments: EnrolmentStore;
}

/** A cluster node's enrolment as src/gateway.ts wires it. */
async function node(url: string, nodeId: string): Promise<Node> {
  const { db } = dbs.open();
  const replication = new TableReplication({
    db,
    url,
    nodeId,
    log: silentLogger(),
    tokenKeyFingerprint: tokenKeyFingerprint(KEY),
    outboxPollMs: 20,
    followerPollMs: 1000,
    minRetryMs: 20,
    maxRetryMs: 100,
    pruneEveryMs: 0,
  });
  running.push(replication);
  await replication.start();
  const tokens = new TokenStore(db, KEY);
  const enrolments = new EnrolmentStore(db, tokens, {
    claim: (id) => claimEnrolment(replication.pool, id, nodeId),
  });
  return { db, tokens, enrolments };
}

const pendingOn = (n: Node, id: string) =>
  n.db.prepare("SELECT 1 FROM staff_enrolments WHERE id = ? AND used_at IS NULL").get(id) !== undefined;

describe("an enrolment code on a cluster", () => {
  it(`redeemed on two nodes at the same moment gives exactly one token, over ${ROUNDS} codes, and both nodes end with that one`, async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    const b = await node(url, "node-b");
    const made = Array.from({ length: ROUNDS }, (_, i) =>
      a.enrolments.create({
        name: `Person ${i}`,
        role: "staff",
        sites: ["home-a"],
        units: null,
        createdBy: "cli",
      }),
    );
    await until("every code pending on node B", () => made.every((e) => pendingOn(b, e.id)), 10_000);

    for (const e of made) {
      // Both match the code in their own SQLite before either has written: the race the claim decides.
      const [onA, onB] = await Promise.all([
        a.enrolments.redeem(e.code, "phone on A"),
        b.enrolments.redeem(e.code, "phone on B"),
      ]);
      const winners = [onA, onB].filter((r) => r !== null);
      expect(winners, `code ${e.id}`).toHaveLength(1);
      expect(winners[0]!.identity.id).toBe(e.personId);
    }

    // The winners' writes replicate: every node ends with one token per person and every code used.
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    pgdb.cleanup(() => pool.end());
    for (const n of [a, b])
      await until(
        "one token per person and every code used on both nodes",
        () =>
          made.every((e) => !pendingOn(n, e.id)) &&
          made.every((e) => n.tokens.records().filter((t) => t.id === e.personId).length === 1),
        10_000,
      );
    const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM enrolment_claims");
    expect(Number(rows[0]!.n)).toBe(ROUNDS);
    // A code once used stays used, on either node.
    expect(await a.enrolments.redeem(made[0]!.code, "again")).toBeNull();
    expect(await b.enrolments.redeem(made[0]!.code, "again")).toBeNull();
  }, 60_000);

  it("with PostgreSQL unreachable a redemption is refused with 503 'unavailable', no token is issued, and the code still works afterwards", async () => {
    const url = await pgdb.fresh();
    const a = await node(url, "node-a");
    // Nothing listens on this port: the claim's connection is refused.
    const deadUrl = url.replace(/:\d+\//, `:${await freePort()}/`);
    const dead = new pg.Pool({ connectionString: deadUrl, max: 1 });
    dead.on("error", () => undefined);
    pgdb.cleanup(() => dead.end());
    const cut = new EnrolmentStore(a.db, a.tokens, { claim: (id) => claimEnrolment(dead, id, "node-a") });
    const e = a.enrolments.create({
      name: "Dorte",
      role: "staff",
      sites: ["home-a"],
      units: null,
      createdBy: "cli",
    });

    await expect(cut.redeem(e.code, "phone")).rejects.toBeInstanceOf(ClaimUnavailableError);
    expect(a.tokens.records().filter((t) => t.id === e.personId)).toHaveLength(0);
    expect(pendingOn(a, e.id)).toBe(true);

    const router = new Router(silentLogger());
    enrolmentRoutes(router, {
      tokens: a.tokens,
      enrolments: cut,
      sites: [],
      tls: false,
      limits: { maxFailures: 5, windowMs: 60_000 },
      log: silentLogger(),
      onRevoked: () => undefined,
    });
    const server = createServer((req, res) => void router.handle(req, res));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/enrol`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: e.code }),
    });
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe("unavailable");
    expect(a.tokens.records().filter((t) => t.id === e.personId)).toHaveLength(0);

    // PostgreSQL back (the node's own pool): the same code works.
    expect(await a.enrolments.redeem(e.code, "phone")).not.toBeNull();
  }, 30_000);
});
