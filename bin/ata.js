#!/usr/bin/env node
// The `ata` command. In a checkout with the dev dependencies (src/ and tsx are here) it runs the
// TypeScript source through tsx, so it is always the code you just edited, never a stale build.
// Otherwise it runs the compiled dist/src/cli/ata.js (`npm run build`): the production image ships
// dist/ without src/ or tsx, and a host may prune the dev dependencies after building.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/ata.ts", import.meta.url);
const compiled = new URL("../dist/src/cli/ata.js", import.meta.url);

async function tsxRegister() {
  try {
    return (await import("tsx/esm/api")).register;
  } catch (err) {
    if (err?.code === "ERR_MODULE_NOT_FOUND" && existsSync(compiled)) return null;
    throw err;
  }
}

const register = existsSync(source) ? await tsxRegister() : null;
register?.();
const { main } = await import((register ? source : compiled).href);
await main(process.argv.slice(2));
