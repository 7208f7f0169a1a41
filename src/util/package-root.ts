/**
 * The package's own directory (where package.json is), found by walking up from a module. The
 * same folder whether the gateway runs from source through tsx or compiled into dist/ (no
 * package.json is emitted there), so files shipped beside the code (web/, config/) are found in
 * both layouts.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function packageRootOf(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = packageRootOf(dirname(fileURLToPath(import.meta.url)));
