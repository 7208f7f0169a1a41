/**
 * Staff tokens: a person's (or a wall screen's) credential, scoped to sites, optionally units, and
 * a role. Only a SHA-256 of the token is stored; tokens are 192 random bits, so a fast hash is
 * enough and a lookup is one indexed query.
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import type { Db } from "../store/db.js";
import type { StaffIdentity } from "./protocol.js";

export const ROLES = ["staff", "nurse", "manager", "admin"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

export interface NewToken {
  name: string;
  role: Role;
  sites: string[];
  units?: string[] | null;
  /** A given token (demo seeds); otherwise one is generated. */
  token?: string;
  id?: string;
}

const digest = (token: string) => createHash("sha256").update(token).digest("hex");

export class TokenStore {
  constructor(private readonly db: Db) {
    db.exec("CREATE UNIQUE INDEX IF NOT EXISTS staff_tokens_hash ON staff_tokens(token_hash)");
  }

  create(input: NewToken): { identity: StaffIdentity; token: string } {
    const token = input.token ?? `ata_${randomBytes(24).toString("base64url")}`;
    const id = input.id ?? `st_${randomBytes(6).toString("hex")}`;
    this.db
      .prepare(
        "INSERT INTO staff_tokens (id, name, role, sites, units, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(
        id,
        input.name,
        input.role,
        JSON.stringify(input.sites),
        input.units ? JSON.stringify(input.units) : null,
        digest(token),
        Date.now(),
      );
    return {
      identity: { id, name: input.name, role: input.role, sites: input.sites, units: input.units ?? null },
      token,
    };
  }

  /** Seeds from configuration: created once, left alone afterwards. */
  ensure(input: NewToken & { id: string; token: string }): void {
    const exists = this.db.prepare("SELECT 1 FROM staff_tokens WHERE id = ?").get(input.id);
    if (!exists) this.create(input);
  }

  verify(token: string): StaffIdentity | null {
    const row = this.db
      .prepare(
        "SELECT id, name, role, sites, units FROM staff_tokens WHERE token_hash = ? AND revoked_at IS NULL",
      )
      .get(digest(token)) as
      | { id: string; name: string; role: string; sites: string; units: string | null }
      | undefined;
    if (!row) return null;
    return {
      id: row.id,
      name: row.name,
      role: row.role,
      sites: JSON.parse(row.sites),
      units: row.units ? JSON.parse(row.units) : null,
    };
  }

  /** The person behind a token id, or null when the token is unknown or revoked. */
  identity(id: string): StaffIdentity | null {
    const row = this.db
      .prepare("SELECT id, name, role, sites, units FROM staff_tokens WHERE id = ? AND revoked_at IS NULL")
      .get(id) as { id: string; name: string; role: string; sites: string; units: string | null } | undefined;
    if (!row) return null;
    return {
      id: row.id,
      name: row.name,
      role: row.role,
      sites: JSON.parse(row.sites),
      units: row.units ? JSON.parse(row.units) : null,
    };
  }

  list(): (StaffIdentity & { createdAt: string; revoked: boolean })[] {
    return (
      this.db.prepare("SELECT * FROM staff_tokens ORDER BY created_at").all() as {
        id: string;
        name: string;
        role: string;
        sites: string;
        units: string | null;
        created_at: number;
        revoked_at: number | null;
      }[]
    ).map((r) => ({
      id: r.id,
      name: r.name,
      role: r.role,
      sites: JSON.parse(r.sites),
      units: r.units ? JSON.parse(r.units) : null,
      createdAt: new Date(r.created_at).toISOString(),
      revoked: r.revoked_at !== null,
    }));
  }

  revoke(id: string): boolean {
    return (
      this.db
        .prepare("UPDATE staff_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .run(Date.now(), id).changes > 0
    );
  }
}
