/**
 * Slot tables for the weight-based algorithms. Kamailio fills a 100-slot array with each
 * destination's index `weight` times and shuffles it; the Nth request takes slot N % 100,
 * so within every 100 requests the split is exact. Here the slots are spread evenly
 * instead of shuffled (same exactness, deterministic, no bursts), and built only when the
 * set or a state changes, so a pick is one array read.
 */

/** Upper bound for a relative-weight table (memory and rebuild time stay small). */
export const MAX_RWEIGHT_SLOTS = 1 << 16;

/**
 * Spreads `counts[i]` copies of each index i over sum(counts) slots, each index at
 * evenly spaced positions: copy k of index i goes near (k + 1/2) * total / counts[i].
 * A counting sort on those positions keeps it O(total + n).
 */
export function interleave(counts: ArrayLike<number>): Uint32Array {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  const out = new Uint32Array(total);
  if (total === 0) return out;
  const bucketStart = new Uint32Array(total + 1);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    for (let k = 0; k < c; k++) bucketStart[Math.floor(((k + 0.5) * total) / c) + 1]!++;
  }
  for (let p = 0; p < total; p++) bucketStart[p + 1]! += bucketStart[p]!;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    for (let k = 0; k < c; k++) {
      const p = Math.floor(((k + 0.5) * total) / c);
      out[bucketStart[p]!++] = i;
    }
  }
  return out;
}

/**
 * Kamailio algorithm 9 slot counts: weights are percentages of 100 slots, taken in set
 * order; past 100 the rest are dropped, under 100 the last destination gets the remainder
 * (dp_init_weights). Returns undefined when no destination has a weight.
 */
export function weightSlotCounts(weights: ArrayLike<number>): number[] | undefined {
  const n = weights.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += weights[i]!;
  if (sum === 0 || n === 0) return undefined;
  const counts = new Array<number>(n).fill(0);
  let left = 100;
  for (let i = 0; i < n && left > 0; i++) {
    const take = Math.min(weights[i]!, left);
    counts[i] = take;
    left -= take;
  }
  counts[n - 1]! += left;
  return counts;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Kamailio algorithm 11 slot counts: each active destination's share is
 * rweight / sum(active rweights). Exact when the (gcd-reduced) sum fits MAX_RWEIGHT_SLOTS,
 * otherwise apportioned by largest remainder over MAX_RWEIGHT_SLOTS slots.
 */
export function relativeWeightSlotCounts(rweights: ArrayLike<number>): number[] {
  const n = rweights.length;
  let g = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    g = gcd(g, rweights[i]!);
    sum += rweights[i]!;
  }
  const counts = new Array<number>(n).fill(0);
  if (sum === 0) return counts;
  if (sum / g <= MAX_RWEIGHT_SLOTS) {
    for (let i = 0; i < n; i++) counts[i] = rweights[i]! / g;
    return counts;
  }
  const remainders: { i: number; r: number }[] = [];
  let used = 0;
  for (let i = 0; i < n; i++) {
    const exact = (rweights[i]! * MAX_RWEIGHT_SLOTS) / sum;
    counts[i] = Math.floor(exact);
    used += counts[i]!;
    remainders.push({ i, r: exact - counts[i]! });
  }
  remainders.sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; used < MAX_RWEIGHT_SLOTS; k++, used++) counts[remainders[k]!.i]!++;
  return counts;
}
