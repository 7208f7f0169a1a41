/**
 * http.metrics: /metrics on its own address and no longer on the main port, where /healthz and
 * /readyz stay. Without metricsToken it is open (tls-only.test.ts covers it with a token, over HTTPS).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startGateway, type TestGateway } from "../helpers/gateway.js";

describe("/metrics on a separate listener", () => {
  let t: TestGateway;
  let metricsUrl: string;
  beforeAll(async () => {
    t = await startGateway({
      overrides: {
        http: { host: "127.0.0.1", port: 0, adminToken: ADMIN_TOKEN, metrics: { port: 0 } },
      },
    });
    metricsUrl = `http://127.0.0.1:${t.gateway.metricsHttp!.port}`;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("binds to loopback by default and is listed as the metrics listener", () => {
    const metrics = t.gateway.listeners().filter((l) => l.service === "metrics");
    expect(metrics).toEqual([
      {
        service: "metrics",
        scheme: "http",
        host: "127.0.0.1",
        port: t.gateway.metricsHttp!.port,
        tls: false,
      },
    ]);
  });

  it("answers Prometheus there without a token, 404 on the main port; /healthz and /readyz stay on the main port", async () => {
    const res = await fetch(`${metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    expect(await res.text()).toContain("ata_event_loop_delay_seconds");

    const main = await fetch(`${t.httpUrl}/metrics`);
    expect(main.status).toBe(404);
    expect(((await main.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);
  });

  it("serves nothing else: no console, API or health checks on the metrics address", async () => {
    for (const path of ["/", "/healthz", "/api/v1/devices"]) {
      const res = await fetch(`${metricsUrl}${path}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(res.status, path).toBe(404);
    }
  });
});
