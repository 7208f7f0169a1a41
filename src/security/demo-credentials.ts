/**
 * No known credentials outside the demo. The demo's device secrets and staff tokens ship with this
 * project, so anyone can read them; they may exist only while demo mode is on.
 *
 * - Demo on: they are seeded (config demo.devices / demo.staff, src/config/schema.ts) and recorded
 *   here; those a demo-off start disabled are enabled again.
 * - Demo off: every device that still accepts a demo secret is disabled, and every staff token that
 *   is a demo token is revoked: the ones configured now, and the ones this project ships in
 *   config/default.yaml, so a data directory first started with the demo is cleaned whatever file
 *   the operator starts it with later. A device whose secret was changed since is left alone: its
 *   credentials are no longer public.
 *
 * Each change goes to the security log.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { TokenStore } from "../staff/tokens.js";
import type { Db } from "../store/db.js";
import { PACKAGE_ROOT } from "../util/package-root.js";
import type { SecurityLog } from "./log.js";

export interface DemoSeeds {
  devices: readonly { id: string; secret: string }[];
  staff: readonly { id: string; token: string }[];
}

type Kind = "device" | "staff_token";

/** The demo seeds this project ships (config/default.yaml); none when the file is not there. */
export function shippedDemoSeeds(path = join(PACKAGE_ROOT, "config", "default.yaml")): DemoSeeds {
  try {
    const doc = parseYaml(readFileSync(path, "utf8")) as {
      demo?: { devices?: { id?: unknown; secret?: unknown }[]; staff?: { id?: unknown; token?: unknown }[] };
    };
    const str = (x: unknown): x is string => typeof x === "string";
    return {
      devices: (doc?.demo?.devices ?? []).flatMap((d) =>
        str(d.id) && str(d.secret) ? [{ id: d.id, secret: d.secret }] : [],
      ),
      staff: (doc?.demo?.staff ?? []).flatMap((t) =>
        str(t.id) && str(t.token) ? [{ id: t.id, token: t.token }] : [],
      ),
    };
  } catch {
    return { devices: [], staff: [] };
  }
}

export class DemoCredentials {
  constructor(
    private readonly deps: {
      db: Db;
      registry: Registry;
      tokens: TokenStore;
      security: SecurityLog;
      log: Logger;
    },
  ) {}

  /** Demo on, after seeding: remember the seeds; bring back what a demo-off start disabled. */
  enable(seeds: DemoSeeds): void {
    const { db, registry, tokens } = this.deps;
    const remember = db.prepare("INSERT OR IGNORE INTO demo_credentials (kind, id) VALUES (?, ?)");
    const disabled = new Set(
      (
        db.prepare("SELECT kind, id FROM demo_credentials WHERE disabled_at IS NOT NULL").all() as {
          kind: Kind;
          id: string;
        }[]
      ).map((r) => `${r.kind}:${r.id}`),
    );
    const back = db.prepare("UPDATE demo_credentials SET disabled_at = NULL WHERE kind = ? AND id = ?");
    for (const d of seeds.devices) {
      remember.run("device", d.id);
      if (!disabled.has(`device:${d.id}`)) continue;
      if (registry.get(d.id)) registry.setEnabled(d.id, true);
      back.run("device", d.id);
    }
    for (const t of seeds.staff) {
      remember.run("staff_token", t.id);
      if (!disabled.has(`staff_token:${t.id}`)) continue;
      tokens.reinstate(t.id, "demo");
      back.run("staff_token", t.id);
    }
  }

  /**
   * Demo off: disable every device that still takes a demo secret and revoke every demo token.
   * Returns what it disabled.
   */
  async disable(...lists: DemoSeeds[]): Promise<{ devices: string[]; tokens: string[] }> {
    const { db, registry, tokens, security, log } = this.deps;
    const mark = db.prepare(
      "INSERT INTO demo_credentials (kind, id, disabled_at) VALUES (?, ?, ?) ON CONFLICT(kind, id) DO UPDATE SET disabled_at = excluded.disabled_at",
    );
    const out = { devices: [] as string[], tokens: [] as string[] };
    const seen = new Set<string>();
    for (const { id, secret } of lists.flatMap((l) => l.devices)) {
      if (seen.has(`d:${id}:${secret}`)) continue;
      seen.add(`d:${id}:${secret}`);
      const device = registry.get(id);
      if (!device?.enabled) continue;
      // Checked against the secret itself: a device whose secret was rotated is no longer public.
      if ((await registry.authenticate(id, secret)) !== "ok") continue;
      registry.setEnabled(id, false);
      mark.run("device", id, Date.now());
      out.devices.push(id);
    }
    for (const { token } of lists.flatMap((l) => l.staff)) {
      const holder = tokens.holderOf(token);
      if (!holder || seen.has(`t:${holder}`)) continue;
      seen.add(`t:${holder}`);
      if (!tokens.revoke(holder, "demo-off")) continue;
      mark.run("staff_token", holder, Date.now());
      out.tokens.push(holder);
    }
    if (out.devices.length || out.tokens.length) {
      security.record({
        kind: "demo_credentials_disabled",
        actor: "config",
        detail: { devices: out.devices, tokens: out.tokens },
      });
      log.warn(
        { devices: out.devices.length, tokens: out.tokens.length },
        "demo mode is off: devices with the demo's public secrets are disabled and demo staff tokens revoked",
      );
    }
    return out;
  }
}
