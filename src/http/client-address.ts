/**
 * The address a request came from, for the throttles and the security log. Behind a load balancer
 * every request's socket is the balancer's, so throttles that count per address (staff sign-in,
 * enrolment codes, the staff WebSocket's hello) would count every person together, and one
 * person's wrong tokens would lock everyone out. With `http.trustedProxies` (addresses or CIDR
 * ranges of the balancers) the address is read from `X-Forwarded-For` instead, as far back as the
 * hops are trusted:
 *
 * - a request whose socket is not a trusted proxy is its socket's address, whatever it sends in
 *   `X-Forwarded-For` (anyone can write that header);
 * - otherwise the header is read from its right end (the hop the trusted proxy appended) leftwards,
 *   skipping trusted proxies, and the first address that is not one is the client: what a client
 *   wrote further left is not believed ("the rightmost untrusted address", as MDN's X-Forwarded-For
 *   page describes the safe reading);
 * - a header that is missing, or a hop that is not an IP address, stops the reading: the last
 *   trusted hop's address counts (a balancer misconfigured, not a client to credit).
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.5`, how a dual-stack socket reports IPv4 peers) are
 * compared and reported as IPv4.
 */
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";

const MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

function plain(address: string): string {
  return MAPPED.exec(address)?.[1] ?? address;
}

/** An address (`10.0.0.5`, `fd00::1`) or a CIDR range (`172.28.0.0/24`); false for anything else. */
export function isAddressOrRange(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split("/");
  if (rest.length || !address || !isIP(address)) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d{1,3}$/.test(prefix) && bits <= (isIP(address) === 4 ? 32 : 128);
}

export class ClientAddress {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  /** `proxies`: addresses and CIDR ranges, each checked with `isAddressOrRange` beforehand. */
  constructor(proxies: readonly string[] = []) {
    this.any = proxies.length > 0;
    for (const entry of proxies) {
      const [address, prefix] = entry.split("/") as [string, string | undefined];
      const type = isIP(address) === 4 ? "ipv4" : "ipv6";
      if (prefix === undefined) this.trusted.addAddress(address, type);
      else this.trusted.addSubnet(address, Number(prefix), type);
    }
  }

  /** The client's address for this request (see the module's comment). */
  of(req: IncomingMessage): string {
    const peer = plain(req.socket.remoteAddress ?? "unknown");
    if (!this.any || !this.isTrusted(peer)) return peer;
    const header = req.headers["x-forwarded-for"];
    const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
      .split(",")
      .map((h) => plain(h.trim()))
      .filter((h) => h !== "");
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (!isIP(hop)) break;
      client = hop;
      if (!this.isTrusted(hop)) break;
    }
    return client;
  }

  private isTrusted(address: string): boolean {
    const type = isIP(address);
    return type !== 0 && this.trusted.check(address, type === 4 ? "ipv4" : "ipv6");
  }
}
