import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startGateway, type TestGateway } from "../helpers/gateway.js";

const METRICS_TOKEN = "metrics-token-0123456789";

describe("/metrics with http.metricsToken", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        http: { host: "127.0.0.1", port: 0, adminToken: ADMIN_TOKEN, metricsToken: METRICS_TOKEN },
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers Prometheus with the token, refuses without it or with another, and /healthz stays open", async () => {
    const ok = await fetch(`${t.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("ata_event_loop_delay_seconds");

    const none = await fetch(`${t.httpUrl}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    const admin = await fetch(`${t.httpUrl}/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(admin.status).toBe(401);

    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  });
});
