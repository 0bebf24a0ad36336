/**
 * Turning `address` rows into the typed arrays an AddressTable reads.
 *
 * Everything here is plain data in typed arrays (no JS object per entry), so the same build
 * runs in a worker thread and its result crosses to the proxy's thread by transferring the
 * ArrayBuffers, without a copy (see load.ts).
 *
 * Per family (IPv4, IPv6) there is a trie (trie.ts) mapping an address to a prefix record, one
 * per distinct (network, length), stored in the same Int32Array as the nodes, next to the node
 * where the prefix ends:
 *
 *   [parent, length, network words (1 or 4), exact-port count, any-port count, entries...]
 *
 * `parent` is the record of the next shorter prefix covering this one (-1 for none): the way
 * out when the address is not covered (see trie.ts) or none of the entries suits the source's
 * port or the allowed groups. Entries are [entry number, group, port] triples, the exact-port
 * ones first sorted by (port, group, id), then the any-port ones sorted by (group, id): the
 * order the tie rules prefer. A lookup thus reads the record and its entries in one place.
 * Per entry (by entry number) the id, the stored mask, flags and the tag are kept apart, as
 * only a match needs them.
 *
 * IPv6 entries inside ::ffff:0:0/96 (IPv4-mapped, RFC 4291 §2.5.5.2) describe IPv4 peers: they
 * are put in the IPv4 trie with mask - 96, so that they match the same peers an IPv4 entry
 * would, whether the peer reached a v4 socket or a dual-stack one; they keep their IPv6 text.
 */
import { SipctlError } from '../errors.js';
import { parseIPv4, parseIPv6 } from './ip-text.js';
import { buildTrie, Int32Builder, type PrefixRecords, type TrieParts } from './trie.js';
import { MAX_GROUP, MAX_PORT } from './validate.js';

export interface FamilyParts extends TrieParts {
  width: 32 | 128;
  /** The offset in `trie` of each prefix's record, in prefix order (network, then length). */
  recordAt: Int32Array;
}

export interface TableParts {
  size: number;
  v4: FamilyParts | null;
  v6: FamilyParts | null;
  entryId: Float64Array;
  /** The mask as stored (0..32 or 0..128). */
  entryMask: Uint8Array;
  /** FLAG_SHOWN_V6 | FLAG_HAS_TAG. */
  entryFlags: Uint8Array;
  /** UTF-8 tags back to back; entry i's tag is tagBytes[tagOffsets[i], tagOffsets[i+1]). */
  tagBytes: Uint8Array;
  tagOffsets: Uint32Array;
}

/** Shown as IPv6: an IPv6 entry, or an IPv4-mapped one kept in the IPv4 trie. */
export const FLAG_SHOWN_V6 = 1;
export const FLAG_HAS_TAG = 2;

// Record layout, relative to the record's offset (K = network words).
export const REC_PARENT = 0;
export const REC_LENGTH = 1;
export const REC_KEY = 2;
/** Words per entry in a record: [entry number, group, port]. */
export const ENTRY_WORDS = 3;

/** The ArrayBuffers of `parts`, for postMessage's transfer list. */
export function transferList(parts: TableParts): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [parts.entryId, parts.entryMask, parts.entryFlags, parts.tagBytes, parts.tagOffsets];
  for (const f of [parts.v4, parts.v6]) if (f) arrays.push(f.direct, f.trie, f.recordAt);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
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

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Collects validated rows, then `finish()` sorts them and builds the parts. A bad row throws
 * E_ACL_BAD_ROW at once; nothing is kept from a failed build.
 */
export class AddressRowCollector {
  /** `directBits` overrides the tries' direct level per family (for tests; see trie.ts). */
  constructor(private readonly options: { directBits?: { v4?: number; v6?: number } } = {}) {}

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

  /** Forgets the rows added after the first `count` (a bulk reader retrying a chunk). */
  truncate(count: number): void {
    if (count < this.n) {
      this.n = count;
      this.tags.length = count;
    }
  }

  /** Adds one row as SQLite or a caller hands it over: every column is checked. */
  add(id: unknown, grp: unknown, ipAddr: unknown, mask: unknown, port: unknown, tag: unknown): void {
    const rowId = integer(id);
    if (rowId === undefined) {
      throw new SipctlError('E_ACL_BAD_ROW', `address row #${this.n + 1}: id ${JSON.stringify(String(id))} is not an integer`);
    }
    const g = integer(grp);
    if (g === undefined) this.bad(rowId, `grp ${String(grp)} is not an integer 0-${MAX_GROUP}`);
    const m = integer(mask);
    if (m === undefined) this.bad(rowId, `mask ${String(mask)} is not an integer`);
    const p = integer(port);
    if (p === undefined) this.bad(rowId, `port ${String(port)} is not an integer 0-${MAX_PORT}`);
    if (typeof ipAddr !== 'string') this.bad(rowId, 'ip_addr is not text');
    if (tag !== null && tag !== undefined && typeof tag !== 'string') this.bad(rowId, 'tag is not text');
    const text = ipAddr as string;
    this.addChecked(rowId, g as number, text, 0, text.length, m as number, p as number, (tag ?? null) as string | null);
  }

  /**
   * Adds one row whose numbers are integers already; the address is `text[start, end)` (so a
   * bulk reader need not cut strings). Ranges and the address are checked here.
   */
  addChecked(id: number, grp: number, text: string, start: number, end: number, mask: number, port: number, tag: string | null): void {
    if (grp < 0 || grp > MAX_GROUP) this.bad(id, `grp ${grp} is not an integer 0-${MAX_GROUP}`);
    if (port < 0 || port > MAX_PORT) this.bad(id, `port ${port} is not an integer 0-${MAX_PORT}`);
    if (end - start > 2 && text.charCodeAt(start) === 0x5b && text.charCodeAt(end - 1) === 0x5d) {
      start++; // [IPv6]
      end--;
    }
    const i = this.n;
    this.ensure(i + 1);
    const k = i * 4;
    const keys = this.keys;
    const v4 = parseIPv4(text, start, end);
    if (v4 >= 0) {
      if (mask < 0 || mask > 32) this.bad(id, `mask ${mask} is out of range for IPv4 (0-32)`);
      keys[k] = maskWord(v4, mask);
      keys[k + 1] = keys[k + 2] = keys[k + 3] = 0;
      this.lens[i] = mask;
      this.fams[i] = 0;
    } else if (parseIPv6(text, start, end, this.word, false)) {
      if (mask < 0 || mask > 128) this.bad(id, `mask ${mask} is out of range for IPv6 (0-128)`);
      const w = this.word;
      if (mask >= 96 && w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
        // IPv4-mapped: an IPv4 peer (see the header comment).
        keys[k] = maskWord(w[3], mask - 96);
        keys[k + 1] = keys[k + 2] = keys[k + 3] = 0;
        this.lens[i] = mask - 96;
        this.fams[i] = 2;
      } else {
        for (let j = 0; j < 4; j++) keys[k + j] = maskWord(w[j], mask - 32 * j);
        this.lens[i] = mask;
        this.fams[i] = 3;
      }
    } else {
      this.bad(id, `ip_addr ${JSON.stringify(text.slice(start, end))} is not an IPv4 or IPv6 address`);
    }
    this.ids[i] = id;
    this.grps[i] = grp;
    this.ports[i] = port;
    this.masks[i] = mask;
    this.tags.push(tag);
    this.n = i + 1;
  }

  private bad(id: number, problem: string): never {
    throw new SipctlError('E_ACL_BAD_ROW', `address row id ${id}: ${problem}; fix or delete the row, then reload`);
  }

  private ensure(need: number): void {
    if (need <= this.ids.length) return;
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
    const { fams, tags } = this;
    // Rows by family (IPv4 trie first), then each family sorted (see sortRows).
    let v4Count = 0;
    for (let r = 0; r < n; r++) if ((fams[r] & 1) === 0) v4Count++;
    const order = new Uint32Array(n);
    let a = 0;
    let b = v4Count;
    for (let r = 0; r < n; r++) order[(fams[r] & 1) === 0 ? a++ : b++] = r;
    this.sortRows(order, 0, v4Count, 0, 1);
    this.sortRows(order, v4Count, n, 0, 4);

    const entryId = new Float64Array(n);
    const entryMask = new Uint8Array(n);
    const entryFlags = new Uint8Array(n);
    const tagOffsets = new Uint32Array(n + 1);
    const encoder = new TextEncoder();
    let tagBytes = new Uint8Array(1024);
    let tagLength = 0;
    for (let e = 0; e < n; e++) {
      const r = order[e];
      entryId[e] = this.ids[r];
      entryMask[e] = this.masks[r];
      let flags = (fams[r] & 2) !== 0 ? FLAG_SHOWN_V6 : 0;
      const tag = tags[r];
      if (tag !== null) {
        flags |= FLAG_HAS_TAG;
        tagBytes = grow(tagBytes, tagLength + tag.length * 3); // UTF-8: at most 3 bytes per UTF-16 unit
        tagLength += encoder.encodeInto(tag, tagBytes.subarray(tagLength)).written;
      }
      tagOffsets[e + 1] = tagLength;
      entryFlags[e] = flags;
    }
    return {
      size: n,
      v4: v4Count === 0 ? null : this.family(order, 0, v4Count, 32),
      v6: v4Count === n ? null : this.family(order, v4Count, n, 128),
      entryId,
      entryMask,
      entryFlags,
      tagBytes: tagBytes.slice(0, tagLength),
      tagOffsets,
    };
  }

  /**
   * Sorts rows order[lo, hi) — all of one family — by (network, length, exact port first, port,
   * group, id). Networks are sorted one 32-bit word at a time by the engine's numeric sort of
   * 64-bit values [word : row] (no comparator calls); only rows equal in every word, usually a
   * handful, are compared field by field.
   */
  private sortRows(order: Uint32Array, lo: number, hi: number, w: number, K: number): void {
    const n = hi - lo;
    if (n < 2) return;
    if (n <= 16 || w === K) {
      const run = Array.from(order.subarray(lo, hi)).sort(this.compareRows);
      order.set(run, lo);
      return;
    }
    const keys = this.keys;
    const packed = new BigUint64Array(n);
    const halves = new Uint32Array(packed.buffer);
    const low = LITTLE_ENDIAN ? 0 : 1;
    for (let i = 0; i < n; i++) {
      const r = order[lo + i];
      halves[2 * i + low] = r;
      halves[2 * i + 1 - low] = keys[r * 4 + w];
    }
    packed.sort();
    for (let i = 0; i < n; i++) order[lo + i] = halves[2 * i + low];
    let i = lo;
    while (i < hi) {
      const word = keys[order[i] * 4 + w];
      let j = i + 1;
      while (j < hi && keys[order[j] * 4 + w] === word) j++;
      if (j - i > 1) this.sortRows(order, i, j, w + 1, K);
      i = j;
    }
  }

  private readonly compareRows = (a: number, b: number): number => {
    const keys = this.keys;
    for (let w = 0; w < 4; w++) {
      const x = keys[a * 4 + w];
      const y = keys[b * 4 + w];
      if (x !== y) return x < y ? -1 : 1;
    }
    const { lens, ports, grps, ids } = this;
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
  };

  /** Trie and records for the sorted entries [from, to) of one family. */
  private family(order: Uint32Array, from: number, to: number, width: 32 | 128): FamilyParts {
    const { keys, lens, ports, grps } = this;
    const K = width >>> 5;
    let prefixes = 0;
    for (let e = from; e < to; e++) if (e === from || !samePrefix(keys, lens, order[e - 1], order[e])) prefixes++;
    const prefixKeys = new Uint32Array(prefixes * K);
    const prefixLens = new Uint8Array(prefixes);
    const prefixParent = new Int32Array(prefixes);
    const prefixStart = new Int32Array(prefixes + 1);
    // Open prefixes: in sorted order a covering prefix comes before what it covers and
    // prefixes nest like brackets, so a stack finds each one's nearest cover.
    const open = new Int32Array(width + 2);
    let depth = 0;
    let p = -1;
    for (let e = from; e < to; e++) {
      const r = order[e];
      if (e !== from && samePrefix(keys, lens, order[e - 1], r)) continue;
      p++;
      for (let w = 0; w < K; w++) prefixKeys[p * K + w] = keys[r * 4 + w];
      prefixLens[p] = lens[r];
      prefixStart[p] = e;
      while (depth > 0 && !covers(prefixKeys, prefixLens, K, open[depth - 1], p)) depth--;
      prefixParent[p] = depth > 0 ? open[depth - 1] : -1;
      open[depth++] = p;
    }
    prefixStart[prefixes] = to;

    const out = new Int32Builder((to - from) * (ENTRY_WORDS + 8) + prefixes * (4 + K));
    const records = new RecordWriter(out, K, prefixKeys, prefixLens, prefixParent, prefixStart, order, ports, grps);
    const directBits = width === 32 ? this.options.directBits?.v4 : this.options.directBits?.v6;
    const trie = buildTrie(prefixKeys, prefixLens, prefixes, width, out, records, directBits);
    // A prefix wholly shadowed by longer ones and covering none is in no slot: add it for dumps.
    for (let q = 0; q < prefixes; q++) records.record(q);
    return { width, ...trie, trie: out.finish(), recordAt: records.recordAt };
  }
}

/** Writes prefix records into the trie's array as the trie builder first needs them. */
class RecordWriter implements PrefixRecords {
  /** Each prefix's record offset, -1 until written. */
  readonly recordAt: Int32Array;

  constructor(
    private readonly out: Int32Builder,
    private readonly K: number,
    private readonly prefixKeys: Uint32Array,
    private readonly prefixLens: Uint8Array,
    private readonly prefixParent: Int32Array,
    /** Prefix q's entries are the sorted entries [prefixStart[q], prefixStart[q + 1]). */
    private readonly prefixStart: Int32Array,
    private readonly order: Uint32Array,
    private readonly ports: Uint16Array,
    private readonly grps: Uint32Array,
  ) {
    this.recordAt = new Int32Array(prefixLens.length).fill(-1);
  }

  /** Appends prefix q's record (its parent's first, for the offset) unless it is there already. */
  record(q: number): number {
    if (this.recordAt[q] >= 0) return this.recordAt[q];
    const { K, order, ports, grps } = this;
    const parent = this.prefixParent[q] >= 0 ? this.record(this.prefixParent[q]) : -1;
    const first = this.prefixStart[q];
    const end = this.prefixStart[q + 1];
    const at = this.out.reserve(4 + K + (end - first) * ENTRY_WORDS);
    const rec = this.out.a;
    rec[at + REC_PARENT] = parent;
    rec[at + REC_LENGTH] = this.prefixLens[q];
    for (let w = 0; w < K; w++) rec[at + REC_KEY + w] = this.prefixKeys[q * K + w];
    let exact = 0;
    for (let x = first; x < end; x++) {
      const row = order[x];
      if (ports[row] !== 0) exact++;
      const slot = at + 4 + K + (x - first) * ENTRY_WORDS;
      rec[slot] = x;
      rec[slot + 1] = grps[row];
      rec[slot + 2] = ports[row];
    }
    rec[at + REC_KEY + K] = exact;
    rec[at + REC_KEY + K + 1] = end - first - exact;
    this.recordAt[q] = at;
    return at;
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
