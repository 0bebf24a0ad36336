/**
 * The longest-prefix-match structure of one address family: a multibit trie in one Int32Array.
 *
 * Kamailio's permissions module keeps subnets in a fixed array of 512 and scans it linearly
 * per message (dropping the rest); here a lookup costs at most one step per 5 address bits,
 * whatever the table size, and each step is one node read:
 *
 *  - a direct-indexed first level on the top D bits: 12 for IPv4 and 13 for IPv6 (16 and
 *    32 KiB), 17 and 18 from 65,536 prefixes on (512 KiB and 1 MiB, worth it only when the
 *    table is far bigger than that);
 *  - then nodes of stride 5 in the style of Asai & Ohara's Poptrie (SIGCOMM 2015): a 32-bit
 *    vector of the slots that lead to a child and a 32-bit `leafVector` marking where a run
 *    of equal results starts; a slot's child or result is found by counting the bits below it
 *    (population count). Unlike Poptrie, a node carries its child offsets and its results
 *    inline, after the two vectors — [vector, leafVector, child offsets..., results...] — so
 *    a step touches one place in memory, not three arrays;
 *  - path compression: a run of nodes that only pass through (one child, no prefix ending in
 *    them) is one skip node [endBit, 0] followed by the node it leads to. The skipped bits are
 *    not compared on the way down; as in a PATRICIA trie the result is checked at the end (the
 *    caller walks from the result to the shorter prefixes covering it until one covers the
 *    address), so a lone /128 costs two nodes, not 23.
 *
 * Results are the offsets of the caller's prefix records (build.ts), -1 for none; each shorter
 * covering prefix is pushed down into the slots it covers ("leaf pushing"), so no backtracking
 * is needed. Nodes and records share one array, laid out depth first: a node, then the records
 * of the prefixes ending in it, then its first child; so the last node a lookup reads and the
 * record it finds are usually a cache line apart, and a chain of single children is read in
 * sequence.
 */

/** Address bits consumed per node below the direct level. */
export const STRIDE = 5;

/** Families with fewer prefixes than this use the small direct level. */
const BIG_FAMILY = 65536;

/** The direct level's width for `count` prefixes (width - D is a multiple of STRIDE). */
export function defaultDirectBits(width: 32 | 128, count: number): number {
  const big = count >= BIG_FAMILY;
  // 32 = 12 + 4*5 = 17 + 3*5; 128 = 13 + 23*5 = 18 + 22*5.
  return width === 32 ? (big ? 17 : 12) : big ? 18 : 13;
}

export interface TrieParts {
  /** Bits indexed by the direct level. */
  directBits: number;
  /** 2^directBits slots: a node offset (>= 0) or an encoded result (-2 - result, so -1 is none). */
  direct: Int32Array;
  /**
   * Nodes — [vector, leafVector, child offsets..., results...], skip nodes [endBit, 0] — and,
   * between them, the caller's prefix records.
   */
  trie: Int32Array;
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

// ---------------------------------------------------------------------------------------------
// Lookup

/**
 * The result for the IPv4 address `addr` (unsigned 32-bit): that of the longest prefix covering
 * it, or — when the address left the trie's path inside a skip — of a prefix below the point it
 * left, whose chain of shorter covering prefixes holds the answer. -1 when none.
 */
export function lookupIPv4(t: TrieParts, addr: number): number {
  let at = t.direct[addr >>> (32 - t.directBits)];
  if (at < 0) return -2 - at;
  const nodes = t.trie;
  let depth = t.directBits;
  for (;;) {
    const vector = nodes[at];
    const leafVector = nodes[at + 1];
    if (leafVector === 0) {
      depth = vector; // skip node: bits checked by the caller
      at += 2;
      continue;
    }
    const bit = 1 << ((addr >>> (27 - depth)) & 31);
    if ((vector & bit) !== 0) {
      at = nodes[at + 2 + popcount32(vector & (bit - 1))];
      depth += STRIDE;
      continue;
    }
    return nodes[at + 1 + popcount32(vector) + popcount32(leafVector & ((bit << 1) - 1))];
  }
}

/** As lookupIPv4, for the IPv6 address in `key` (4 big-endian words). */
export function lookupIPv6(t: TrieParts, key: Uint32Array): number {
  let at = t.direct[key[0] >>> (32 - t.directBits)];
  if (at < 0) return -2 - at;
  const nodes = t.trie;
  let depth = t.directBits;
  for (;;) {
    const vector = nodes[at];
    const leafVector = nodes[at + 1];
    if (leafVector === 0) {
      depth = vector;
      at += 2;
      continue;
    }
    const w = depth >>> 5;
    const o = depth & 31;
    const slot = o <= 27 ? (key[w] >>> (27 - o)) & 31 : ((key[w] << (o - 27)) | (key[w + 1] >>> (59 - o))) & 31;
    const bit = 1 << slot;
    if ((vector & bit) !== 0) {
      at = nodes[at + 2 + popcount32(vector & (bit - 1))];
      depth += STRIDE;
      continue;
    }
    return nodes[at + 1 + popcount32(vector) + popcount32(leafVector & ((bit << 1) - 1))];
  }
}

// ---------------------------------------------------------------------------------------------
// Build

/** A growable Int32Array; `finish()` returns an exact-length copy with a buffer of its own. */
export class Int32Builder {
  a: Int32Array;
  n = 0;
  constructor(capacity: number) {
    this.a = new Int32Array(Math.max(16, capacity));
  }
  /** Appends `count` zeroed words; returns the offset of the first. */
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
  finish(): Int32Array {
    return this.a.slice(0, this.n);
  }
}

/** Where prefix records come from while a trie is built (see buildTrie). */
export interface PrefixRecords {
  record(prefix: number): number;
}

/**
 * Builds the trie over `count` prefixes, sorted by key (unsigned, big-endian) then length, no
 * two equal: prefix i is the first `lens[i]` bits of `keys[i*K .. i*K+K)`, K = width/32, with
 * the bits past its length zero. Nodes are appended to `out`; `records.record(i)` is called
 * when the result for prefix i is first needed, appends prefix i's record to `out` if it is
 * not there yet, and returns its offset. `directBits` overrides the direct level's width (tests use it
 * to reach every layout).
 */
export function buildTrie(
  keys: Uint32Array,
  lens: Uint8Array,
  count: number,
  width: 32 | 128,
  out: Int32Builder,
  records: PrefixRecords,
  directBits = defaultDirectBits(width, count),
): { directBits: number; direct: Int32Array } {
  if (directBits < 1 || directBits > 24 || (width - directBits) % STRIDE !== 0) {
    throw new RangeError(`direct level of ${directBits} bits does not fit a ${width}-bit address in strides of ${STRIDE}`);
  }
  return new TrieBuilder(keys, lens, count, width, directBits, out, records).build();
}

class TrieBuilder {
  private readonly K: number;
  // Per-level scratch (a level is one stride below the direct level): slot prefixes and child ranges.
  private readonly slotPrefix: Int32Array[] = [];
  private readonly childLo: Int32Array[] = [];
  private readonly childHi: Int32Array[] = [];
  /** The prefixes of the node being written, one per run (used before recursing). */
  private readonly runPrefix = new Int32Array(32);

  constructor(
    private readonly keys: Uint32Array,
    private readonly lens: Uint8Array,
    private readonly count: number,
    private readonly width: 32 | 128,
    private readonly directBits: number,
    private readonly nodes: Int32Builder,
    private readonly records: PrefixRecords,
  ) {
    this.K = width >>> 5;
    const levels = Math.ceil((width - directBits) / STRIDE) + 1;
    for (let i = 0; i < levels; i++) {
      this.slotPrefix.push(new Int32Array(32));
      this.childLo.push(new Int32Array(32));
      this.childHi.push(new Int32Array(32));
    }
  }

  private result(prefix: number): number {
    return prefix < 0 ? -1 : this.records.record(prefix);
  }

  /** `n` (<= 24) address bits of prefix `p` from bit `offset`. */
  private bitsAt(p: number, offset: number, n: number): number {
    const w = p * this.K + (offset >>> 5);
    const o = offset & 31;
    const keys = this.keys;
    const high = (keys[w] << o) >>> (32 - n);
    if (o + n <= 32) return high;
    return (high | (keys[w + 1] >>> (64 - o - n))) >>> 0; // straddles two words
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

  build(): { directBits: number; direct: Int32Array } {
    const { count, lens } = this;
    const D = this.directBits;
    // Prefixes no longer than D fill their slot ranges; sorted order puts a covering prefix
    // before the ones inside it, so the longest one is written last.
    const directPrefix = new Int32Array(1 << D).fill(-1);
    for (let p = 0; p < count; p++) {
      const len = lens[p];
      if (len > D) continue;
      const first = len === 0 ? 0 : this.bitsAt(p, 0, D);
      directPrefix.fill(p, first, first + (1 << (D - len)));
    }
    const direct = new Int32Array(1 << D);
    for (let s = 0; s < direct.length; s++) direct[s] = -2 - this.result(directPrefix[s]);
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
      direct[slot] = this.buildNode(p, last + 1, D, directPrefix[slot]);
      p = q;
    }
    return { directBits: D, direct };
  }

  /**
   * Appends the node at bit depth `d` for the prefixes in [lo, hi) and returns its offset. All
   * share the path's first d bits; the first and the last are longer than d; the ones no longer
   * than d are skipped, being folded into `inherited` (the longest prefix covering the node).
   */
  private buildNode(lo: number, hi: number, d: number, inherited: number): number {
    const lens = this.lens;
    const nodes = this.nodes;
    let minLen = this.width + 1;
    for (let p = lo; p < hi; p++) if (lens[p] > d && lens[p] < minLen) minLen = lens[p];
    const limit = Math.min(this.commonBits(lo, hi - 1), minLen - 1);
    const skipTo = d + Math.floor((limit - d) / STRIDE) * STRIDE;
    if (skipTo > d) {
      // Pass-through run: every prefix here shares bits [d, skipTo) and is longer than skipTo.
      const at = nodes.reserve(2);
      nodes.a[at] = skipTo;
      nodes.a[at + 1] = 0;
      this.buildNode(lo, hi, skipTo, inherited); // appended right after: at + 2
      return at;
    }

    const level = (d - this.directBits) / STRIDE;
    const slotPrefix = this.slotPrefix[level];
    const childLo = this.childLo[level];
    const childHi = this.childHi[level];
    slotPrefix.fill(inherited);
    let vector = 0;
    const bottom = d + STRIDE;
    for (let p = lo; p < hi; p++) {
      const len = lens[p];
      if (len <= d) continue;
      const slot = this.bitsAt(p, d, STRIDE);
      if (len <= bottom) {
        slotPrefix.fill(p, slot, slot + (1 << (bottom - len)));
      } else if ((vector & (1 << slot)) === 0) {
        vector |= 1 << slot;
        childLo[slot] = p;
        childHi[slot] = p + 1;
      } else {
        childHi[slot] = p + 1;
      }
    }

    // Runs of equal results over the slots that do not lead to a child (a child slot never
    // starts a run, so a slot's run is the last one starting at or before it).
    const runPrefix = this.runPrefix;
    let leafVector = 0;
    let runs = 0;
    let previous = 0;
    for (let s = 0; s < 32; s++) {
      if (s > 0 && (vector & (1 << s)) !== 0) continue;
      const prefix = slotPrefix[s];
      if (s === 0 || prefix !== previous) {
        leafVector |= 1 << s;
        runPrefix[runs++] = prefix;
        previous = prefix;
      }
    }
    const children = popcount32(vector);
    const at = nodes.reserve(2 + children + runs);
    nodes.a[at] = vector;
    nodes.a[at + 1] = leafVector;
    // Results after the node: records of prefixes ending here are appended now, next to it.
    for (let k = 0; k < runs; k++) {
      const r = this.result(runPrefix[k]);
      nodes.a[at + 2 + children + k] = r; // nodes.a may have grown: index afresh
    }
    let k = 0;
    for (let rest = vector; rest !== 0; rest &= rest - 1) {
      const s = 31 - Math.clz32(rest & -rest);
      const child = this.buildNode(childLo[s], childHi[s], bottom, slotPrefix[s]);
      nodes.a[at + 2 + k] = child;
      k++;
    }
    return at;
  }
}
