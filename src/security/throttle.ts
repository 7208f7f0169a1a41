/**
 * The pieces of brute-force throttling shared by device CONNECTs (src/broker/broker.ts) and staff
 * sign-in (src/security/staff-auth.ts): failures per key in a sliding window, the credentials known
 * to be good from an address, and a global rate ceiling. All bounded in memory under a spray of
 * addresses or ids.
 */

const MAX_KEYS = 10_000;

/** Failed attempts per key (an address, a device id, a token prefix) within a sliding window. */
export class FailureWindows {
  private readonly table = new Map<string, number[]>();

  constructor(
    readonly name: string,
    private readonly limits: () => { max: number; windowSec: number },
    private readonly now: () => number = Date.now,
  ) {}

  get max(): number {
    return this.limits().max;
  }

  /** Failures for this key within the window. */
  count(key: string): number {
    const list = this.table.get(key);
    if (!list) return 0;
    const since = this.now() - this.limits().windowSec * 1000;
    while (list.length && list[0]! < since) list.shift();
    if (!list.length) this.table.delete(key);
    return list.length;
  }

  /** The key's failures within the window reach the limit. */
  throttled(key: string): boolean {
    return this.count(key) >= this.limits().max;
  }

  record(key: string): void {
    const list = this.table.get(key) ?? [];
    list.push(this.now());
    // Only the last max matter; a key hammered for an hour keeps a short list.
    if (list.length > this.limits().max) list.shift();
    this.table.delete(key);
    this.table.set(key, list);
    if (this.table.size > MAX_KEYS) {
      const oldest = this.table.keys().next().value;
      if (oldest !== undefined) this.table.delete(oldest);
    }
  }
}

/**
 * Credentials seen to be good, per address: a person or device behind the same NAT as an attacker
 * keeps getting in while the attacker's failures throttle the address. Least recently used first out.
 */
export class KnownPairs {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  add(address: string, credential: string): void {
    const key = `${address}\u0000${credential}`;
    this.seen.delete(key);
    this.seen.set(key, this.now());
    if (this.seen.size > MAX_KEYS) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  has(address: string, credential: string): boolean {
    const at = this.seen.get(`${address}\u0000${credential}`);
    return at !== undefined && this.now() - at < this.ttlMs;
  }
}

/** At most `perSec` takes per second, in bursts of up to `burst` (default `perSec`). */
export class TokenBucket {
  private tokens: number;

  constructor(
    private readonly perSec: number,
    private readonly burst = perSec,
    private at = performance.now(),
  ) {
    this.tokens = burst;
  }

  take(now = performance.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSec);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Full again, so forgetting it changes nothing. */
  fullAt(now: number): boolean {
    return this.tokens + ((now - this.at) / 1000) * this.perSec >= this.burst;
  }
}

/**
 * A token bucket per key (a device): memory follows the keys taking now, since a bucket that is
 * full again is forgotten (checked at most once per refill time).
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private sweptAt = 0;

  constructor(readonly limits: { perSec: number; burst: number }) {}

  take(key: string, now = performance.now()): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      // Before adding it: a new bucket is full, and the sweep would forget it at once.
      this.sweep(now);
      bucket = new TokenBucket(this.limits.perSec, this.limits.burst, now);
      this.buckets.set(key, bucket);
    }
    return bucket.take(now);
  }

  private sweep(now: number): void {
    if (now - this.sweptAt < (this.limits.burst / this.limits.perSec) * 1000) return;
    this.sweptAt = now;
    for (const [key, b] of this.buckets) if (b.fullAt(now)) this.buckets.delete(key);
  }
}
