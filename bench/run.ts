/**
 * `npm run bench -- <name> [args]`: runs bench/<name>.ts. Each benchmark measures its baseline in the
 * same run, prints a table, and ends with one JSON line.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const dir = new URL(".", import.meta.url).pathname;
const names = readdirSync(dir)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "lib.ts"].includes(f) && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !existsSync(join(dir, `${name}.ts`))) {
  process.stderr.write(`usage: npm run bench -- <${names.join("|")}> [args]\n`);
  process.exit(2);
}
const r = spawnSync(process.execPath, ["--import", "tsx", join(dir, `${name}.ts`), ...args], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
