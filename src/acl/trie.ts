/**
 * The longest-prefix-match structure of one address family: a multibit trie in typed arrays.
 *
 * Kamailio's permissions module keeps subnets in a fixed array of 512 and scans it linearly
 * per message (dropping the rest); here a lookup costs at most one step per 5 address bits,
 * whatever the table size:
 *
 *  - a direct-indexed first level on the top D bits (D = 12/17 for IPv4, 13/18 for IPv6: a
 *    table of 4 Ki or 128 Ki slots for IPv4, so a big table starts its walk 17 bits down);
 *  - then nodes of stride 5 in the style of Asai & Ohara's Poptrie (SIGCOMM 2015): a 32-bit
 *    vector of which slots lead to a child node, a 32-bit `leafvec` marking where a run of
 *    equal results starts, and the bases of the node's children and of its leaf runs; a slot's
 *    child or result is found by counting the bits below it (population count), so a sparse
 *    node costs 4 words plus one word per run instead of 32 slots;
 *  - path compression: a chain of nodes that only pass through (one child, no prefix ending
 *    in them) becomes one skip node that compares the skipped bits in one go, so a lone /128
 *    does not cost 22 nodes.
 *
 * Results are prefix numbers (indexes into the family's sorted prefix list, -1 for none), with
 * every shorter covering prefix pushed down into the slots it covers ("leaf pushing"), so the
 * walk needs no backtracking: where it stops is the longest prefix covering the address. The
 * per-prefix entry lists (groups, ports) are the caller's business (see table.ts).
 *
 * Nodes are laid out depth-first, each node's children contiguous: a chain of single children
 * sits in consecutive words, which the hardware prefetcher follows.
 */

/** Address bits consumed per node below the direct level. */
export const STRIDE = 5;

/** Tables with fewer prefixes than this in a family use the small direct level. */
const BIG_FAMILY = 4096;

export interface TrieParts {
  /** Address width in bits: 32 or 128. */
  width: number;
  /** Bits indexed by the direct level. */
  directBits: number;
  /** 2^directBits slots: a node index (>= 0) or an encoded result (< 0, see encodeResult). */
  direct: Int32Array;
  /** 4 words per node: [childVector, leafVector, childBase, leafBase]; a skip node is [0, 0, next, skipRecord]. */
  nodes: Int32Array;
  /** Leaf runs: prefix numbers, -1 for none. */
  leaves: Int32Array;
  /** Skip records of (2 + width/32) words: [endBit, resultOnMismatch, key words...]. */
  skips: Int32Array;
}

/** A direct slot holds a node index (>= 0) or -2 - prefix (so -1 is "no prefix"). */
function encodeResult(prefix: number): number {
  return -2 - prefix;
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

// ---------------------------------------------------------------------------------------------
// Lookup

/** Longest prefix (its number, or -1) covering the IPv4 address `addr` (unsigned 32-bit). */
export function lookupIPv4(t: TrieParts, addr: number): number {
  const v = t.direct[addr >>> (32 - t.directBits)];
  if (v < 0) return -2 - v;
  const nodes = t.nodes;
  let node = v;
  let depth = t.directBits;
  for (;;) {
    const b = node << 2;
    const vector = nodes[b];
    const leafVector = nodes[b + 1];
    if ((vector | leafVector) === 0) {
      // Skip node: the skipped bits must equal the recorded path (bits above `depth` already do).
      const r = nodes[b + 3] * 3;
      const skips = t.skips;
      const endBit = skips[r];
      if (((addr ^ skips[r + 2]) >>> (32 - endBit)) !== 0) return skips[r + 1];
      depth = endBit;
      node = nodes[b + 2];
      continue;
    }
    const bit = 1 << ((addr >>> (27 - depth)) & 31);
    if ((vector & bit) !== 0) {
      node = nodes[b + 2] + popcount32(vector & (bit - 1));
      depth += STRIDE;
      continue;
    }
    return t.leaves[nodes[b + 3] + popcount32(leafVector & ((bit << 1) - 1)) - 1];
  }
}

/** Longest prefix (its number, or -1) covering the IPv6 address in `key` (4 big-endian words). */
export function lookupIPv6(t: TrieParts, key: Uint32Array): number {
  const v = t.direct[key[0] >>> (32 - t.directBits)];
  if (v < 0) return -2 - v;
  const nodes = t.nodes;
  let node = v;
  let depth = t.directBits;
  for (;;) {
    const b = node << 2;
    const vector = nodes[b];
    const leafVector = nodes[b + 1];
    if ((vector | leafVector) === 0) {
      const r = nodes[b + 3] * 6;
      const skips = t.skips;
      const endBit = skips[r];
      if (!samePrefix(key, skips, r + 2, endBit)) return skips[r + 1];
      depth = endBit;
      node = nodes[b + 2];
      continue;
    }
    const w = depth >>> 5;
    const o = depth & 31;
    const slot = o <= 27 ? (key[w] >>> (27 - o)) & 31 : ((key[w] << (o - 27)) | (key[w + 1] >>> (59 - o))) & 31;
    const bit = 1 << slot;
    if ((vector & bit) !== 0) {
      node = nodes[b + 2] + popcount32(vector & (bit - 1));
      depth += STRIDE;
      continue;
    }
    return t.leaves[nodes[b + 3] + popcount32(leafVector & ((bit << 1) - 1)) - 1];
  }
}

/** Whether the first `bits` bits of `key` equal those of the words at `words[at...]`. */
function samePrefix(key: Uint32Array, words: Int32Array, at: number, bits: number): boolean {
  let w = 0;
  for (; (w + 1) << 5 <= bits; w++) if ((key[w] ^ words[at + w]) !== 0) return false;
  const rest = bits & 31;
  return rest === 0 || ((key[w] ^ words[at + w]) >>> (32 - rest)) === 0;
}

// ---------------------------------------------------------------------------------------------
// Build

/** A growable Int32Array; `finish()` returns an exact-length copy with a buffer of its own. */
class Int32Builder {
  a: Int32Array;
  n = 0;
  constructor(capacity: number) {
    this.a = new Int32Array(Math.max(16, capacity));
  }
  reserve(count: number): number {
    const at = this.n;
    const need = at + count;
    if (need > this.a.length) {
      let size = this.a.length * 2;
      while (size < need) size *= 2;
      const bigger = new Int32Array(size);
      bigger.set(this.a.subarray(0, at));
      this.a = bigger;
    }
    this.n = need;
    return at;
  }
  push(v: number): void {
    const at = this.reserve(1);
    this.a[at] = v;
  }
  finish(): Int32Array {
    return this.a.slice(0, this.n);
  }
}

/**
 * Builds the trie over `count` prefixes, sorted by key (unsigned, big-endian) then length, no
 * two equal: prefix i is the first `lens[i]` bits of `keys[i*K .. i*K+K)`, K = width/32, with
 * the bits past its length zero.
 */
export function buildTrie(keys: Uint32Array, lens: Uint8Array, count: number, width: 32 | 128): TrieParts {
  return new TrieBuilder(keys, lens, count, width).build();
}

class TrieBuilder {
  private readonly K: number;
  private readonly directBits: number;
  private readonly nodes: Int32Builder;
  private readonly leaves: Int32Builder;
  private readonly skips: Int32Builder;
  // Per-level scratch (a level is one stride below the direct level): slot results and child ranges.
  private readonly slotResult: Int32Array[] = [];
  private readonly childLo: Int32Array[] = [];
  private readonly childHi: Int32Array[] = [];

  constructor(
    private readonly keys: Uint32Array,
    private readonly lens: Uint8Array,
    private readonly count: number,
    private readonly width: 32 | 128,
  ) {
    this.K = width >>> 5;
    const big = count >= BIG_FAMILY;
    // width - directBits must be a multiple of STRIDE: 32 = 12 + 4*5 = 17 + 3*5; 128 = 13 + 23*5 = 18 + 22*5.
    this.directBits = width === 32 ? (big ? 17 : 12) : big ? 18 : 13;
    this.nodes = new Int32Builder(count * 8);
    this.leaves = new Int32Builder(count * 2);
    this.skips = new Int32Builder(count);
    const levels = Math.ceil((width - this.directBits) / STRIDE) + 1;
    for (let i = 0; i < levels; i++) {
      this.slotResult.push(new Int32Array(32));
      this.childLo.push(new Int32Array(32));
      this.childHi.push(new Int32Array(32));
    }
  }

  /** `n` address bits of prefix `p` starting at bit `offset` (n <= 32 - offset % 32 + 32). */
  private bitsAt(p: number, offset: number, n: number): number {
    const w = p * this.K + (offset >>> 5);
    const o = offset & 31;
    const keys = this.keys;
    if (o + n <= 32) return (keys[w] << o) >>> (32 - n);
    // Straddles two words.
    const high = (keys[w] << o) >>> (32 - n);
    return (high | (keys[w + 1] >>> (64 - o - n))) >>> 0;
  }

  /** Number of leading bits prefixes a and b have in common (their full keys). */
  private commonBits(a: number, b: number): number {
    const K = this.K;
    for (let w = 0; w < K; w++) {
      const x = (this.keys[a * K + w] ^ this.keys[b * K + w]) >>> 0;
      if (x !== 0) return w * 32 + Math.clz32(x);
    }
    return this.width;
  }

  build(): TrieParts {
    const { count, lens } = this;
    const D = this.directBits;
    const direct = new Int32Array(1 << D).fill(-1);
    // Prefixes no longer than D fill their slot ranges; sorted order puts a covering prefix
    // before the ones inside it, so the longest one is written last.
    for (let p = 0; p < count; p++) {
      const len = lens[p];
      if (len > D) continue;
      const first = len === 0 ? 0 : this.bitsAt(p, 0, D);
      direct.fill(encodeResult(p), first, first + (1 << (D - len)));
    }
    // Longer prefixes hang below their direct slot; they are contiguous in sorted order.
    let p = 0;
    while (p < count) {
      if (lens[p] <= D) {
        p++;
        continue;
      }
      const slot = this.bitsAt(p, 0, D);
      let last = p;
      let q = p + 1;
      while (q < count && this.bitsAt(q, 0, D) === slot) {
        if (lens[q] > D) last = q;
        q++;
      }
      const inherited = -2 - direct[slot];
      const node = this.nodes.reserve(4) >>> 2;
      this.buildNode(node, p, last + 1, D, inherited);
      direct[slot] = node;
      p = q;
    }
    return {
      width: this.width,
      directBits: D,
      direct,
      nodes: this.nodes.finish(),
      leaves: this.leaves.finish(),
      skips: this.skips.finish(),
    };
  }

  /**
   * Fills node `node` at bit depth `d` for the prefixes in [lo, hi): all share the path's first
   * d bits, the first and the last are longer than d, the ones no longer than d (already folded
   * into `inherited`, the longest prefix covering the whole node) are skipped.
   */
  private buildNode(node: number, lo: number, hi: number, d: number, inherited: number): void {
    const lens = this.lens;
    let minLen = this.width + 1;
    for (let p = lo; p < hi; p++) if (lens[p] > d && lens[p] < minLen) minLen = lens[p];
    const limit = Math.min(this.commonBits(lo, hi - 1), minLen - 1);
    const skipTo = d + Math.floor((limit - d) / STRIDE) * STRIDE;
    const nodes = this.nodes;
    if (skipTo > d) {
      // Pass-through chain: every prefix here shares bits [d, skipTo) and is longer than skipTo.
      const record = this.skips.reserve(2 + this.K);
      const skips = this.skips.a;
      skips[record] = skipTo;
      skips[record + 1] = inherited;
      for (let w = 0; w < this.K; w++) skips[record + 2 + w] = this.keys[lo * this.K + w];
      const next = nodes.reserve(4) >>> 2;
      const b = node << 2;
      nodes.a[b] = 0;
      nodes.a[b + 1] = 0;
      nodes.a[b + 2] = next;
      nodes.a[b + 3] = record / (2 + this.K);
      this.buildNode(next, lo, hi, skipTo, inherited);
      return;
    }

    const level = (d - this.directBits) / STRIDE;
    const result = this.slotResult[level];
    const childLo = this.childLo[level];
    const childHi = this.childHi[level];
    result.fill(inherited);
    let vector = 0;
    const bottom = d + STRIDE;
    for (let p = lo; p < hi; p++) {
      const len = lens[p];
      if (len <= d) continue;
      const slot = this.bitsAt(p, d, STRIDE);
      if (len <= bottom) {
        result.fill(p, slot, slot + (1 << (bottom - len)));
      } else if ((vector & (1 << slot)) === 0) {
        vector |= 1 << slot;
        childLo[slot] = p;
        childHi[slot] = p + 1;
      } else {
        childHi[slot] = p + 1;
      }
    }

    // Leaf runs over the slots that do not lead to a child (a child slot never starts a run).
    const leafBase = this.leaves.n;
    let leafVector = 0;
    let previous = 0;
    for (let s = 0; s < 32; s++) {
      if (s > 0 && (vector & (1 << s)) !== 0) continue;
      const v = result[s];
      if (s === 0 || v !== previous) {
        leafVector |= 1 << s;
        this.leaves.push(v);
        previous = v;
      }
    }
    const children = popcount32(vector);
    const childBase = children === 0 ? 0 : nodes.reserve(4 * children) >>> 2;
    const b = node << 2;
    nodes.a[b] = vector;
    nodes.a[b + 1] = leafVector;
    nodes.a[b + 2] = childBase;
    nodes.a[b + 3] = leafBase;
    let k = 0;
    for (let s = 0; s < 32; s++) {
      if ((vector & (1 << s)) === 0) continue;
      this.buildNode(childBase + k, childLo[s], childHi[s], bottom, result[s]);
      k++;
    }
  }
}
