/** Token buckets per key on a simulated clock: the burst, the refill, and forgetting full ones. */
import { expect, it } from "vitest";
import { KeyedBuckets } from "../../src/security/throttle.js";

it("gives each key its burst, refills at its rate, and forgets a key once its bucket is full again", () => {
  const rates = new KeyedBuckets({ perSec: 2, burst: 3 });
  const taken = (key: string, now: number, n: number) =>
    Array.from({ length: n }, () => rates.take(key, now)).filter(Boolean).length;
  expect(taken("a", 0, 5)).toBe(3);
  expect(taken("b", 0, 1)).toBe(1);
  expect(taken("a", 500, 3)).toBe(1);
  // 10 s later both are full again: a new key's arrival sweeps them, and "a" starts from a full burst.
  expect(taken("c", 10_000, 1)).toBe(1);
  expect((rates as unknown as { buckets: Map<string, unknown> }).buckets.size).toBe(1);
  expect(taken("a", 10_000, 5)).toBe(3);
});
