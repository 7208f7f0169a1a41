#!/usr/bin/env node
// The `ata` command: runs the TypeScript CLI through tsx so no build step is needed.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/ata.ts");
await main(process.argv.slice(2));
