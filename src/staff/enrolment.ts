/**
 * Enrolment: signing a phone in without typing a token. An admin or a manager creates an enrolment
 * for a person (name, role, sites, units); it yields a one-time short code, read aloud or carried
 * in a QR code of the console's URL (in the fragment, so it never reaches a server log), and the
 * phone exchanges the code for a staff token bound to that person and that device.
 *
 * The code: 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L, U/V), grouped
 * 5-5, about 49 bits. Only a SHA-256 of the normalised code is stored. That would not hold against
 * an offline search of a stolen database for long, and need not: a code lives 15 minutes, works
 * once, and guessing it online is limited per address (src/http/enrolment.ts).
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import type { Db } from "../store/db.js";
import type { StaffIdentity } from "./protocol.js";
import type { Role, TokenStore } from "./tokens.js";

export const CODE_ALPHABET = "ABCDEFGHJKMNPQRSTWXYZ23456789";
export const CODE_LENGTH = 10;
export const DEFAULT_ENROLMENT_TTL_MS = 15 * 60_000;

export interface NewEnrolment {
  name: string;
  role: Role;
  sites: string[];
  units: string[] | null;
  /** Another phone for a person who already has one; otherwise a new person. */
  personId?: string | undefined;
  /** Who created it ("staff:<id>" or "cli"), for the record. */
  createdBy: string;
}

export interface Enrolment {
  id: string;
  personId: string;
  name: string;
  role: string;
  sites: string[];
  units: string[] | null;
  /** Shown once, to the person creating it; the gateway keeps only its hash. */
  code: string;
  expiresAt: string;
}

/** A random code in the enrolment alphabet, grouped "ABCDE-FGHJK". */
export function newCode(): string {
  let raw = "";
  // randomInt rejects biased draws itself, so every character is equally likely.
  for (let i = 0; i < CODE_LENGTH; i++) raw += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return `${raw.slice(0, 5)}-${raw.slice(5)}`;
}

/** The fragment carries the code: browsers never send it, so no access log or proxy sees it. */
export function enrolmentUrl(base: string, code: string): string {
  return `${base.replace(/\/+$/, "")}/#enrol=${encodeURIComponent(code)}`;
}

/** What a person may type: lower case, spaces and dashes are all the same code. */
export function normaliseCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, "");
}

const digest = (code: string) => createHash("sha256").update(normaliseCode(code)).digest();

/** The cluster could not be asked whether a code is still unused: refuse rather than guess. */
export class ClaimUnavailableError extends Error {
  override name = "ClaimUnavailableError";
}

interface EnrolmentRow {
  id: string;
  code_hash: string;
  person_id: string;
  name: string;
  role: string;
  sites: string;
  units: string | null;
  expires_at: number;
}

export class EnrolmentStore {
  constructor(
    private readonly db: Db,
    private readonly tokens: TokenStore,
    private readonly options: {
      ttlMs?: number;
      now?: () => number;
      /**
       * Cluster mode: claim the enrolment in PostgreSQL before issuing its token; true for the one
       * winner across the cluster. Absent in a single process, whose SQLite transaction is enough.
       */
      claim?: (enrolmentId: string) => Promise<boolean>;
    } = {},
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  create(input: NewEnrolment): Enrolment {
    const code = newCode();
    const id = `en_${randomBytes(6).toString("hex")}`;
    const personId = input.personId ?? `p_${randomBytes(6).toString("hex")}`;
    const now = this.now();
    const expiresAt = now + (this.options.ttlMs ?? DEFAULT_ENROLMENT_TTL_MS);
    this.db
      .prepare(
        `INSERT INTO staff_enrolments (id, code_hash, person_id, name, role, sites, units, created_by, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        digest(code).toString("hex"),
        personId,
        input.name,
        input.role,
        JSON.stringify(input.sites),
        input.units ? JSON.stringify(input.units) : null,
        input.createdBy,
        now,
        expiresAt,
      );
    return {
      id,
      personId,
      name: input.name,
      role: input.role,
      sites: input.sites,
      units: input.units,
      code,
      expiresAt: new Date(expiresAt).toISOString(),
    };
  }

  /**
   * Exchange a code for a token, once. Null for a code that is unknown, used or expired (one
   * answer for all three, so a guesser learns nothing). The code is compared in constant time
   * against every pending enrolment rather than looked up by its hash: few are pending at a time.
   */
  exchange(
    code: string,
    deviceLabel: string,
  ): { identity: StaffIdentity; token: string; tokenId: string } | null {
    return this.db.transaction(() => {
      const hit = this.pending(code);
      return hit ? this.issue(hit, deviceLabel) : null;
    })();
  }

  /**
   * `exchange`, and on a cluster (a `claim` given) once across every node: the code is matched in
   * this node's SQLite, then claimed in PostgreSQL (src/cluster/pg/enrolment-claims.ts), and only
   * the claim's winner issues the token; a loser answers as for a used code. The claim's failure
   * (PostgreSQL unreachable) is thrown, so no token is issued that the cluster has not agreed to.
   */
  async redeem(
    code: string,
    deviceLabel: string,
  ): Promise<{ identity: StaffIdentity; token: string; tokenId: string } | null> {
    const claim = this.options.claim;
    if (!claim) return this.exchange(code, deviceLabel);
    const hit = this.pending(code);
    if (!hit) return null;
    if (!(await claim(hit.id))) return null;
    return this.db.transaction(() => this.issue(hit, deviceLabel))();
  }

  /** The pending enrolment whose code this is, compared against all in constant time. */
  private pending(code: string): EnrolmentRow | null {
    const wanted = digest(code);
    const pending = this.db
      .prepare(
        "SELECT id, code_hash, person_id, name, role, sites, units, expires_at FROM staff_enrolments WHERE used_at IS NULL AND expires_at > ?",
      )
      .all(this.now()) as EnrolmentRow[];
    let hit: EnrolmentRow | null = null;
    for (const row of pending) {
      // No early exit: the time taken does not depend on where (or whether) the code matched.
      if (timingSafeEqual(Buffer.from(row.code_hash, "hex"), wanted)) hit = row;
    }
    return hit;
  }

  private issue(
    hit: EnrolmentRow,
    deviceLabel: string,
  ): { identity: StaffIdentity; token: string; tokenId: string } {
    const created = this.tokens.create({
      name: hit.name,
      role: hit.role as Role,
      sites: JSON.parse(hit.sites),
      units: hit.units ? JSON.parse(hit.units) : null,
      personId: hit.person_id,
      deviceLabel,
      actor: `enrolment:${hit.id}`,
    });
    this.db
      .prepare("UPDATE staff_enrolments SET used_at = ?, token_id = ? WHERE id = ? AND used_at IS NULL")
      .run(this.now(), created.tokenId, hit.id);
    return created;
  }
}
