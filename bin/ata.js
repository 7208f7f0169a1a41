#!/usr/bin/env node
// The `ata` command. In a checkout (src/ is here) it runs the TypeScript source through tsx, so it
// is always the code you just edited and never a stale build; tsx is a dev dependency, installed
// with `npm install` as `npm start` needs too. The production image ships the compiled dist/
// without src/ and without tsx (`npm run build`, then `npm prune --omit=dev`), so there it runs
// dist/src/cli/ata.js.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/ata.ts", import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import(new URL("../dist/src/cli/ata.js", import.meta.url).href));
}
await main(process.argv.slice(2));
