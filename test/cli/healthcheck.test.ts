/**
 * The container's health check (bin/healthcheck.js, run by the Dockerfile and docker-compose.yml)
 * against real gateways: over HTTP, over HTTPS, and against nothing.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { startGateway } from "../helpers/gateway.js";
import { makeCertificates } from "../helpers/tls.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
const check = (port: number) =>
  run(process.execPath, [join(ROOT, "bin/healthcheck.js")], {
    env: { ...process.env, ATA_HTTP_PORT: String(port) },
  }).then(
    () => 0,
    (err: { code?: number }) => err.code ?? -1,
  );

const dir = mkdtempSync(join(tmpdir(), "ata-health-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("passes for a ready gateway over HTTP and over HTTPS, and fails when nothing answers", async () => {
  const plain = await startGateway();
  const port = plain.gateway.http.port;
  try {
    expect(await check(port)).toBe(0);
  } finally {
    await plain.stop();
  }
  expect(await check(port)).toBe(1);
  const certs = makeCertificates(dir);
  const tls = await startGateway({
    overrides: {
      http: { host: "127.0.0.1", port: 0, tls: { certFile: certs.certFile, keyFile: certs.keyFile } },
    },
  });
  try {
    expect(await check(tls.gateway.http.port)).toBe(0);
  } finally {
    await tls.stop();
  }
});
