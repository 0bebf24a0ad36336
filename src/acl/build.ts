/**
 * Turning `address` rows into the typed arrays an AddressTable reads.
 *
 * Everything here is plain data in typed arrays (no JS objects per entry), so the same build
 * runs in a worker thread and its result crosses to the proxy's thread by transferring the
 * ArrayBuffers, without a copy (see load.ts).
 *
 * Layout, per family (IPv4, IPv6):
 *  - the distinct prefixes (network, length), sorted by network then length;
 *  - per prefix: the next shorter prefix that covers it (its "parent", for the fall-back when
 *    none of a prefix's entries suits the source's port or the allowed groups) and its range
 *    of entries: first the exact-port entries sorted by (port, group, id), then the any-port
 *    entries sorted by (group, id), which is the order the tie rules prefer;
 *  - the trie (trie.ts) mapping an address to its longest covering prefix.
 * Entries of both families share the entry arrays (IPv4 first).
 *
 * IPv6 entries inside ::ffff:0:0/96 (IPv4-mapped, RFC 4291 §2.5.5.2) describe IPv4 peers: they
 * are put in the IPv4 trie with mask - 96, so that they match the same peers an IPv4 entry
 * would, whether the peer reached a v4 socket or a dual-stack one; they keep their IPv6 text.
 */
import { SipctlError } from '../errors.js';
import { parseIPv4, parseIPv6 } from './ip-text.js';
import { buildTrie, type TrieParts } from './trie.js';
import { MAX_GROUP, MAX_PORT } from './validate.js';

export interface FamilyParts {
  /** 32 or 128. */
  width: 32 | 128;
  prefixCount: number;
  /** width/32 words per prefix: the network, big-endian. */
  prefixKeys: Uint32Array;
  /** Prefix length in this family's bits (a mapped entry's mask - 96). */
  prefixLens: Uint8Array;
  /** 4 words per prefix: [parent prefix or -1, first exact-port entry, first any-port entry, end]. */
  prefixInfo: Int32Array;
  trie: TrieParts;
}

export interface TableParts {
  size: number;
  v4: FamilyParts | null;
  v6: FamilyParts | null;
  entryId: Float64Array;
  /** 2 words per entry: [grp, port]. */
  entryInfo: Uint32Array;
  /** The mask as stored (0..32 or 0..128). */
  entryMask: Uint8Array;
  /** Bit 0: shown as IPv6 (an IPv6 entry, or an IPv4-mapped one kept in the IPv4 trie); bit 1: has a tag. */
  entryFlags: Uint8Array;
  /** UTF-8 tags back to back; entry i's tag is tagBytes[tagOffsets[i], tagOffsets[i+1]). */
  tagBytes: Uint8Array;
  tagOffsets: Uint32Array;
}

export const FLAG_SHOWN_V6 = 1;
export const FLAG_HAS_TAG = 2;

/** The ArrayBuffers of `parts`, for postMessage's transfer list. */
export function transferList(parts: TableParts): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [
    parts.entryId, parts.entryInfo, parts.entryMask, parts.entryFlags, parts.tagBytes, parts.tagOffsets,
  ];
  for (const f of [parts.v4, parts.v6]) {
    if (!f) continue;
    arrays.push(f.prefixKeys, f.prefixLens, f.prefixInfo, f.trie.direct, f.trie.nodes, f.trie.leaves, f.trie.skips);
  }
  const buffers = new Set<ArrayBuffer>();
  for (const a of arrays) buffers.add(a.buffer as ArrayBuffer);
  return [...buffers];
}

type Grown = Float64Array | Uint32Array | Uint16Array | Uint8Array;

function grow<T extends Grown>(a: T, need: number): T {
  if (need <= a.length) return a;
  let size = a.length * 2;
  while (size < need) size *= 2;
  const bigger = new (a.constructor as new (n: number) => T)(size);
  bigger.set(a);
  return bigger;
}

/** An integer from a SQLite value (number, or bigint with safeIntegers), else undefined. */
function integer(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  return undefined;
}

/**
 * Collects validated rows, then `finish()` sorts them and builds the parts. A bad row throws
 * E_ACL_BAD_ROW at once; nothing is kept from a failed build.
 */
export class AddressRowCollector {
  private n = 0;
  private ids = new Float64Array(1024);
  private grps = new Uint32Array(1024);
  private ports = new Uint16Array(1024);
  private masks = new Uint8Array(1024);
  /** Prefix length in the trie's family. */
  private lens = new Uint8Array(1024);
  /** Bit 0: in the IPv6 trie; bit 1: shown as IPv6. */
  private fams = new Uint8Array(1024);
  /** 4 words per row; an IPv4 network is in word 0. */
  private keys = new Uint32Array(4096);
  private tags: (string | null)[] = [];
  private readonly word = new Uint32Array(4);

  get count(): number {
    return this.n;
  }

  add(id: unknown, grp: unknown, ipAddr: unknown, mask: unknown, port: unknown, tag: unknown): void {
    const rowId = integer(id);
    const where = rowId === undefined ? `address row #${this.n + 1} (id ${String(id)})` : `address row id ${rowId}`;
    const bad = (problem: string): never => {
      throw new SipctlError('E_ACL_BAD_ROW', `${where}: ${problem}; fix or delete the row, then reload`);
    };
    if (rowId === undefined) bad(`id ${JSON.stringify(String(id))} is not an integer`);
    const g = integer(grp);
    if (g === undefined || g < 0 || g > MAX_GROUP) bad(`grp ${String(grp)} is not an integer 0-${MAX_GROUP}`);
    const p = integer(port);
    if (p === undefined || p < 0 || p > MAX_PORT) bad(`port ${String(port)} is not an integer 0-${MAX_PORT}`);
    if (tag !== null && tag !== undefined && typeof tag !== 'string') bad(`tag is not text`);
    if (typeof ipAddr !== 'string') bad(`ip_addr is not text`);
    let text = ipAddr as string;
    if (text.length > 2 && text.charCodeAt(0) === 0x5b && text.charCodeAt(text.length - 1) === 0x5d) {
      text = text.slice(1, -1);
    }
    const m = integer(mask);

    const i = this.n;
    this.ensure(i + 1);
    const k = i * 4;
    const v4 = parseIPv4(text, 0, text.length);
    if (v4 >= 0) {
      if (m === undefined || m < 0 || m > 32) bad(`mask ${String(mask)} is out of range for IPv4 (0-32)`);
      this.keys[k] = maskWord(v4, m as number);
      this.keys[k + 1] = this.keys[k + 2] = this.keys[k + 3] = 0;
      this.lens[i] = m as number;
      this.fams[i] = 0;
    } else if (parseIPv6(text, 0, text.length, this.word, false)) {
      if (m === undefined || m < 0 || m > 128) bad(`mask ${String(mask)} is out of range for IPv6 (0-128)`);
      const w = this.word;
      if ((m as number) >= 96 && w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
        // IPv4-mapped: an IPv4 peer (see the header comment).
        this.keys[k] = maskWord(w[3], (m as number) - 96);
        this.keys[k + 1] = this.keys[k + 2] = this.keys[k + 3] = 0;
        this.lens[i] = (m as number) - 96;
        this.fams[i] = 2;
      } else {
        for (let j = 0; j < 4; j++) this.keys[k + j] = maskWord(w[j], (m as number) - 32 * j);
        this.lens[i] = m as number;
        this.fams[i] = 3;
      }
    } else {
      bad(`ip_addr ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
    }
    this.ids[i] = rowId as number;
    this.grps[i] = g as number;
    this.ports[i] = p as number;
    this.masks[i] = m as number;
    this.tags.push(typeof tag === 'string' ? tag : null);
    this.n = i + 1;
  }

  private ensure(need: number): void {
    this.ids = grow(this.ids, need);
    this.grps = grow(this.grps, need);
    this.ports = grow(this.ports, need);
    this.masks = grow(this.masks, need);
    this.lens = grow(this.lens, need);
    this.fams = grow(this.fams, need);
    this.keys = grow(this.keys, need * 4);
  }

  finish(): TableParts {
    const n = this.n;
    const { ids, grps, ports, masks, lens, fams, keys, tags } = this;
    // Sort rows by (trie family, network, length, exact port first, port, group, id).
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => {
      const fa = fams[a] & 1;
      const fb = fams[b] & 1;
      if (fa !== fb) return fa - fb;
      const ka = a * 4;
      const kb = b * 4;
      for (let w = 0; w < 4; w++) {
        const x = keys[ka + w];
        const y = keys[kb + w];
        if (x !== y) return x < y ? -1 : 1;
      }
      if (lens[a] !== lens[b]) return lens[a] - lens[b];
      const pa = ports[a];
      const pb = ports[b];
      if (pa !== pb) {
        if (pa === 0) return 1; // exact ports first
        if (pb === 0) return -1;
        return pa - pb;
      }
      if (grps[a] !== grps[b]) return grps[a] - grps[b];
      return ids[a] - ids[b];
    });

    const entryId = new Float64Array(n);
    const entryInfo = new Uint32Array(n * 2);
    const entryMask = new Uint8Array(n);
    const entryFlags = new Uint8Array(n);
    const tagOffsets = new Uint32Array(n + 1);
    const encoder = new TextEncoder();
    let tagBytes = new Uint8Array(1024);
    let tagLength = 0;
    for (let e = 0; e < n; e++) {
      const r = order[e];
      entryId[e] = ids[r];
      entryInfo[e * 2] = grps[r];
      entryInfo[e * 2 + 1] = ports[r];
      entryMask[e] = masks[r];
      let flags = (fams[r] & 2) !== 0 ? FLAG_SHOWN_V6 : 0;
      const tag = tags[r];
      if (tag !== null) {
        flags |= FLAG_HAS_TAG;
        // UTF-8 takes at most 3 bytes per UTF-16 unit.
        tagBytes = grow(tagBytes, tagLength + tag.length * 3);
        tagLength += encoder.encodeInto(tag, tagBytes.subarray(tagLength)).written;
      }
      tagOffsets[e + 1] = tagLength;
      entryFlags[e] = flags;
    }

    let v6Start = 0;
    while (v6Start < n && (fams[order[v6Start]] & 1) === 0) v6Start++;
    return {
      size: n,
      v4: v6Start === 0 ? null : this.family(order, 0, v6Start, 32),
      v6: v6Start === n ? null : this.family(order, v6Start, n, 128),
      entryId,
      entryInfo,
      entryMask,
      entryFlags,
      tagBytes: tagBytes.slice(0, tagLength),
      tagOffsets,
    };
  }

  /** Prefixes, their entry ranges and parents, and the trie, for sorted entries [from, to). */
  private family(order: Uint32Array, from: number, to: number, width: 32 | 128): FamilyParts {
    const { keys, lens, ports } = this;
    const K = width >>> 5;
    // Count distinct (network, length) first, to size the arrays exactly.
    let count = 0;
    for (let e = from; e < to; e++) if (e === from || !samePrefix(keys, lens, order[e - 1], order[e])) count++;
    const prefixKeys = new Uint32Array(count * K);
    const prefixLens = new Uint8Array(count);
    const prefixInfo = new Int32Array(count * 4);
    let p = -1;
    for (let e = from; e < to; e++) {
      const r = order[e];
      if (e === from || !samePrefix(keys, lens, order[e - 1], r)) {
        if (p >= 0) prefixInfo[p * 4 + 3] = e;
        p++;
        for (let w = 0; w < K; w++) prefixKeys[p * K + w] = keys[r * 4 + w];
        prefixLens[p] = lens[r];
        prefixInfo[p * 4 + 1] = e;
        prefixInfo[p * 4 + 2] = -1;
      }
      if (ports[r] === 0 && prefixInfo[p * 4 + 2] < 0) prefixInfo[p * 4 + 2] = e;
    }
    if (p >= 0) prefixInfo[p * 4 + 3] = to;
    for (let q = 0; q < count; q++) if (prefixInfo[q * 4 + 2] < 0) prefixInfo[q * 4 + 2] = prefixInfo[q * 4 + 3];

    // Parents: in sorted order a covering prefix comes before what it covers, and prefixes
    // nest like brackets, so a stack of the open ones finds each prefix's nearest cover.
    const stack = new Int32Array(width + 2);
    let depth = 0;
    for (let q = 0; q < count; q++) {
      while (depth > 0 && !covers(prefixKeys, prefixLens, K, stack[depth - 1], q)) depth--;
      prefixInfo[q * 4] = depth > 0 ? stack[depth - 1] : -1;
      stack[depth++] = q;
    }
    return { width, prefixCount: count, prefixKeys, prefixLens, prefixInfo, trie: buildTrie(prefixKeys, prefixLens, count, width) };
  }
}

/** The first `bits` bits of `w` (host bits cleared); bits <= 0 gives 0, bits >= 32 gives w. */
function maskWord(w: number, bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return w >>> 0;
  return (w & (0xffffffff << (32 - bits))) >>> 0;
}

function samePrefix(keys: Uint32Array, lens: Uint8Array, a: number, b: number): boolean {
  return (
    lens[a] === lens[b] &&
    keys[a * 4] === keys[b * 4] &&
    keys[a * 4 + 1] === keys[b * 4 + 1] &&
    keys[a * 4 + 2] === keys[b * 4 + 2] &&
    keys[a * 4 + 3] === keys[b * 4 + 3]
  );
}

/** Whether prefix a covers prefix b (a is no longer, and b's network starts with a's bits). */
function covers(keys: Uint32Array, lens: Uint8Array, K: number, a: number, b: number): boolean {
  const len = lens[a];
  if (len > lens[b]) return false;
  for (let w = 0; w < K; w++) {
    const bits = len - 32 * w;
    if (bits <= 0) return true;
    const x = (keys[a * K + w] ^ keys[b * K + w]) >>> 0;
    if (bits >= 32) {
      if (x !== 0) return false;
    } else if (x >>> (32 - bits) !== 0) {
      return false;
    }
  }
  return true;
}
