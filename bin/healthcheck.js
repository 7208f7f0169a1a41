#!/usr/bin/env node
// The container's health check: exit 0 when the gateway on this machine answers /readyz with 200.
// Plain HTTP first, then HTTPS (http.tls), without verifying the certificate: this asks the process
// next to it over loopback, where the certificate names the site's public address, not 127.0.0.1.
// ATA_HTTP_PORT as the gateway's (default 8080).
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const port = Number(process.env.ATA_HTTP_PORT || 8080);

function ready(request, extra = {}) {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/readyz", timeout: 4000, ...extra }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
    req.end();
  });
}

const plain = await ready(httpRequest);
const ok = plain ?? (await ready(httpsRequest, { rejectUnauthorized: false }));
process.exit(ok ? 0 : 1);
