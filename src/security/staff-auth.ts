/**
 * Staff and operator sign-in, in one place for every HTTP route (bearer) and the staff WebSocket
 * (`hello`): which token is presented, from where, and whether it may be checked at all.
 *
 * - The admin token is compared in constant time; staff tokens are found by their keyed hash
 *   (src/staff/tokens.ts), which gives an attacker no timing signal either.
 * - Failed tokens are counted per address and per token prefix (the first 12 characters: one
 *   client trying tokens from many addresses shows there). Past the limit an attempt is refused
 *   with `rate_limited` without saying whether its token was good, unless that very token has
 *   signed in from that address before: a care home's phones share one NAT address, and an
 *   attacker's failures there must not sign the night shift out.
 * - Every refusal goes to the security log (folded when repeated).
 */
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../errors.js";
import type { StaffIdentity } from "../staff/protocol.js";
import type { TokenStore } from "../staff/tokens.js";
import type { SecurityLog } from "./log.js";
import { FailureWindows, KnownPairs } from "./throttle.js";

export interface StaffAuthOptions {
  maxFailures: number;
  windowSec: number;
}

export interface SignedIn {
  identity: StaffIdentity;
  /** The staff token's id; null for the operator's admin token. */
  tokenId: string | null;
}

const PREFIX_CHARS = 12;
const KNOWN_TTL_MS = 30 * 86_400_000;

export const ADMIN_ID = "admin";

export class StaffAuth {
  private readonly byAddress: FailureWindows;
  private readonly byPrefix: FailureWindows;
  private readonly known = new KnownPairs(KNOWN_TTL_MS);

  constructor(
    private readonly deps: {
      tokens: TokenStore;
      adminToken: string | undefined;
      allSites: () => readonly string[];
      security: SecurityLog;
      options: StaffAuthOptions;
    },
  ) {
    const limits = () => ({ max: deps.options.maxFailures, windowSec: deps.options.windowSec });
    this.byAddress = new FailureWindows("address", limits);
    this.byPrefix = new FailureWindows("prefix", limits);
  }

  /** A staff token or the admin token (every site), or throws unauthenticated / rate_limited. */
  signIn(token: string | null | undefined, address: string, via: "http" | "hello"): SignedIn {
    if (!token) throw new ApiError("unauthenticated");
    const prefix = token.slice(0, PREFIX_CHARS);
    const signedIn = this.check(token);
    const credential = signedIn ? (signedIn.tokenId ?? ADMIN_ID) : null;
    const throttled = this.byAddress.throttled(address) || this.byPrefix.throttled(prefix);
    if (throttled && !(credential && this.known.has(address, credential))) {
      this.deps.security.record({ kind: "staff_auth_throttled", address, detail: { via } });
      throw new ApiError("rate_limited", "too many failed sign-ins from here; wait a minute and try again");
    }
    if (!signedIn) {
      this.byAddress.record(address);
      this.byPrefix.record(prefix);
      this.deps.security.record({ kind: "staff_auth_failed", address, detail: { via } });
      throw new ApiError("unauthenticated");
    }
    this.known.add(address, credential!);
    return signedIn;
  }

  /** The operator's admin token only (device administration, the security log). */
  admin(token: string | null | undefined, address: string): void {
    if (!this.deps.adminToken)
      throw new ApiError("forbidden", "the admin API is disabled: set http.adminToken (ATA_ADMIN_TOKEN)");
    const signedIn = this.signIn(token, address, "http");
    if (signedIn.tokenId !== null) throw new ApiError("forbidden", "this needs the operator's admin token");
  }

  private check(token: string): SignedIn | null {
    const admin = this.deps.adminToken;
    if (admin) {
      const a = Buffer.from(token);
      const b = Buffer.from(admin);
      if (a.length === b.length && timingSafeEqual(a, b))
        return {
          identity: {
            id: ADMIN_ID,
            name: "operator",
            role: "admin",
            sites: [...this.deps.allSites()],
            units: null,
          },
          tokenId: null,
        };
    }
    const verified = this.deps.tokens.verifyToken(token);
    return verified ? { identity: verified.identity, tokenId: verified.tokenId } : null;
  }
}
