/**
 * One destination set (Kamailio: a dispatcher group). Holds its destinations in priority
 * order and the per-algorithm structures that make every pick O(1) whatever the set size:
 * the array of active destinations, the weight slot table and the relative-weight slot
 * table. Those are rebuilt by `rebuild()` when a state changes, never per request.
 */
import type { Algorithm } from './algorithm.js';
import { parseAlgorithm } from './algorithm.js';
import { hashString, hashUri, rehash } from './hash.js';
import { interleave, relativeWeightSlotCounts, weightSlotCounts } from './slots.js';
import type { Destination, SelectionKey } from './types.js';

/** `maxload` set (above 0) and reached (see sets.ts atMaxLoad; here to avoid an import cycle). */
function atMaxLoad(d: Destination): boolean {
  const max = d.attrs.maxload;
  return max !== undefined && max > 0 && d.stats.calls.active >= max;
}

export class DestinationSet {
  readonly setid: number;
  /** Highest priority first, then by id (Kamailio orders a set by priority, highest first). */
  readonly destinations: readonly Destination[];
  private readonly byUri = new Map<string, Destination>();

  /** Active destinations, in set order. */
  private active: Destination[] = [];
  private roundRobin = 0;

  /** Algorithm 9: 100 slots of destination indexes (fixed by the weights). */
  private readonly weightBase: Uint32Array | undefined;
  /** ... each slot mapped to the destination that serves it now (see rebuild). */
  private weightSlots: Destination[] = [];
  private weightCursor = 0;

  /**
   * Hash algorithms 0-3 (weighted rendezvous hashing): each destination's seed (a hash of its
   * identity, so it does not depend on its place in the set) and its weight, per active
   * destination, in the order of `active`.
   */
  private activeSeeds: Uint32Array = new Uint32Array(0);
  /** Every destination's seed, in the order of `destinations` (hashed once, not on each rebuild). */
  private readonly seeds: Uint32Array;
  private activeWeights: Float64Array = new Float64Array(0);
  /** Every active destination has the same hashing weight (the usual case: no weights). */
  private activeWeightsEqual = true;

  /** Algorithm 11: slots over the active destinations, proportional to rweight. */
  private rweightSlots: Destination[] = [];
  private rweightCursor = 0;

  constructor(setid: number, destinations: Destination[], normalizedUris: readonly string[]) {
    this.setid = setid;
    const order = destinations.map((d, i) => ({ d, u: normalizedUris[i]! }));
    order.sort((a, b) => b.d.priority - a.d.priority || a.d.id - b.d.id);
    this.destinations = order.map((o) => o.d);
    for (const o of order) this.byUri.set(o.u, o.d);
    this.seeds = Uint32Array.from(this.destinations, (d) => hashString(d.key));
    const counts = weightSlotCounts(this.destinations.map((d) => d.attrs.weight ?? 0));
    this.weightBase = counts === undefined ? undefined : interleave(counts);
    this.rebuild();
  }

  /** The destination with this normalized URI, if in the set. */
  get(normalizedUri: string): Destination | undefined {
    return this.byUri.get(normalizedUri);
  }

  get activeCount(): number {
    return this.active.length;
  }

  /** Recomputes the active list and slot tables; call after any state change in the set. */
  rebuild(): void {
    const all = this.destinations;
    const n = all.length;
    this.active = all.filter((d) => d.state === 'active');
    // Hashing weight: the `weight` attribute when any destination of the set has one (absent
    // or 0 then counts as 1), else 1 for all.
    const m = this.active.length;
    this.activeSeeds = new Uint32Array(m);
    this.activeWeights = new Float64Array(m);
    for (let i = 0, k = 0; i < n; i++) {
      const d = all[i]!;
      if (d.state !== 'active') continue;
      this.activeSeeds[k] = this.seeds[i]!;
      this.activeWeights[k++] = Math.max(1, d.attrs.weight ?? 1);
    }
    this.activeWeightsEqual = this.activeWeights.every((w) => w === this.activeWeights[0]);

    // Algorithm 9 keeps Kamailio's fixed percentages: a slot whose destination is down goes
    // to the next active destination in set order (Kamailio: "find next active"), so only
    // the down destination's share moves. Precomputed here so the pick stays O(1).
    this.weightSlots = [];
    if (this.weightBase !== undefined && this.active.length > 0) {
      const serving = new Array<Destination>(n);
      let next: Destination | undefined;
      // Two passes backwards give each index the first active destination at or after it, wrapping.
      for (let pass = 0; pass < 2; pass++) {
        for (let i = n - 1; i >= 0; i--) {
          if (all[i]!.state === 'active') next = all[i]!;
          if (next !== undefined) serving[i] = next;
        }
      }
      this.weightSlots = Array.from(this.weightBase, (idx) => serving[idx]!);
    }

    // Algorithm 11: shares recomputed over the active destinations (rweight/sum of active).
    const weighted = this.active.filter((d) => (d.attrs.rweight ?? 0) > 0);
    const slots = interleave(relativeWeightSlotCounts(weighted.map((d) => d.attrs.rweight!)));
    this.rweightSlots = Array.from(slots, (i) => weighted[i]!);
  }

  /** Picks without counting; `select` in DispatcherSets counts. */
  pick(algorithm: Algorithm | number, key: SelectionKey): Destination | null {
    const active = this.active;
    const m = active.length;
    if (m === 0) return null;
    switch (algorithm) {
      case 'hash-callid':
      case 0:
        return this.byHash(hashString(key.callId));
      case 'hash-from':
      case 1:
        return this.byHash(hashUri(key.fromUri));
      case 'hash-to':
      case 2:
        return this.byHash(hashUri(key.toUri));
      case 'hash-ruri':
      case 3:
        return this.byHash(hashUri(key.requestUri));
      case 'round-robin':
      case 4: {
        const d = active[this.roundRobin % m]!;
        this.roundRobin = (this.roundRobin + 1) % 0x40000000;
        return d;
      }
      case 'random':
      case 6:
        return active[Math.floor(Math.random() * m)]!;
      case 'priority':
      case 8:
        return active[0]!;
      case 'weight':
      case 9: {
        const slots = this.weightSlots;
        if (slots.length === 0) return this.pick('round-robin', key); // no weights in the set
        const d = slots[this.weightCursor % slots.length]!;
        this.weightCursor = (this.weightCursor + 1) % slots.length;
        return d;
      }
      case 'call-load':
      case 10:
        return this.leastLoaded();
      case 'relative-weight':
      case 11: {
        const slots = this.rweightSlots;
        if (slots.length === 0) return this.pick('round-robin', key); // no rweights among the active
        const d = slots[this.rweightCursor % slots.length]!;
        this.rweightCursor = (this.rweightCursor + 1) % slots.length;
        return d;
      }
      default:
        // Not on the normal path: routes pass a parsed algorithm. This throws the usage error.
        return this.pick(parseAlgorithm(algorithm), key);
    }
  }

  /**
   * Weighted rendezvous hashing (highest random weight): every active destination scores the
   * key with -weight / ln(u), u a uniform draw from (key hash, destination seed); the highest
   * score wins. A key's winner changes only when the winner goes (then the key goes to its
   * runner-up, which is any other destination with probability proportional to its weight)
   * or when a destination comes that outscores it (it takes its weight's share from every
   * other one). Kamailio re-hashes a down destination's keys onto one neighbour instead.
   * O(active destinations) per pick, no allocation.
   */
  private byHash(h: number): Destination {
    const seeds = this.activeSeeds;
    if (this.activeWeightsEqual) {
      // Equal weights: -w / ln(u) grows with u, so the highest draw wins — the same winner
      // (ties too: the first) without a logarithm per destination.
      let best = 0;
      let bestDraw = -1;
      for (let i = 0; i < seeds.length; i++) {
        const draw = rehash((h ^ seeds[i]!) >>> 0);
        if (draw > bestDraw) {
          bestDraw = draw;
          best = i;
        }
      }
      return this.active[best]!;
    }
    const weights = this.activeWeights;
    let best = 0;
    let bestScore = -Infinity;
    for (let i = 0; i < seeds.length; i++) {
      // u in (0, 1): never 0 or 1, so ln(u) is finite and negative.
      const u = (rehash((h ^ seeds[i]!) >>> 0) + 0.5) / 4294967296;
      const score = -weights[i]! / Math.log(u);
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    return this.active[best]!;
  }

  /**
   * Algorithm 10 (Kamailio's call load): the active destination with the fewest calls
   * relative to its `maxload`; one at its maxload is skipped (null when all are). A
   * destination without maxload (or 0) is unlimited: its calls count against the largest
   * maxload of the set (1 when none has one), so unlimited and limited ones share sensibly.
   * Ties go to the first in set order (priority). O(active destinations).
   */
  private leastLoaded(): Destination | null {
    const active = this.active;
    let cap = 1;
    for (const d of active) if ((d.attrs.maxload ?? 0) > cap) cap = d.attrs.maxload!;
    let best: Destination | null = null;
    let bestLoad = Infinity;
    for (const d of active) {
      const max = d.attrs.maxload ?? 0;
      const calls = d.stats.calls.active;
      if (max > 0 && calls >= max) continue;
      const load = calls / (max > 0 ? max : cap);
      if (load < bestLoad) {
        bestLoad = load;
        best = d;
      }
    }
    return best;
  }

  /**
   * Failover order (Kamailio's dst_avp list for ds_next_dst): the pick first, then the other
   * active destinations by priority. Empty when none is active.
   */
  order(algorithm: Algorithm | number, key: SelectionKey): Destination[] {
    const first = this.pick(algorithm, key);
    if (first === null) return [];
    const out = [first];
    for (const d of this.active) if (d !== first && !atMaxLoad(d)) out.push(d);
    return out;
  }
}
