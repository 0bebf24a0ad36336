/**
 * The address table: which source addresses are let in, in which groups — Kamailio's
 * permissions-module `address` table (allow_source_address / allow_address_group), with
 * longest-prefix semantics and no size limit.
 *
 * A table is immutable once built; a reload builds a new one beside it and swaps one reference
 * (load.ts), so a message is checked wholly against the old table or wholly against the new.
 *
 * Matching rules (`match`):
 *  - only entries of the allowed groups (any group when none are named) whose port is 0 (any)
 *    or equal to the source port take part;
 *  - of those, the entry with the longest prefix covering the source wins: an exact-port entry
 *    that does not suit the source port never hides a shorter prefix that does;
 *  - on equal prefixes: an exact-port entry before an any-port one, then the lowest group,
 *    then the lowest id;
 *  - an IPv4-mapped IPv6 source (`::ffff:192.0.2.1`, what Node reports for an IPv4 peer on a
 *    dual-stack socket) is that IPv4 peer and matches IPv4 entries; IPv6 entries that are not
 *    inside ::ffff:0:0/96 (`::/0` included) describe IPv6 peers only.
 */
import ipaddr from 'ipaddr.js';
import {
  AddressRowCollector,
  ENTRY_WORDS,
  FLAG_HAS_TAG,
  FLAG_SHOWN_V6,
  REC_KEY,
  REC_LENGTH,
  REC_PARENT,
  type FamilyParts,
  type TableParts,
} from './build.js';
import { formatIPv4, parseIPv4, parseIPv6 } from './ip-text.js';
import { lookupIPv4, lookupIPv6 } from './trie.js';
import type { AddressRow } from '../store/address.js';

/** One row of the `address` table, as the store reads it (migrations/001_address.sql). */
export type { AddressRow } from '../store/address.js';

/** One entry of the table, as `match` returns it and `sipctl address dump` shows it. */
export interface AddressMatch {
  readonly id: number;
  readonly grp: number;
  /** The network in canonical text (IPv6: RFC 5952, lowercase). */
  readonly ipAddr: string;
  readonly mask: number;
  /** 0 means any source port. */
  readonly port: number;
  readonly tag: string | null;
}

export interface GroupCount {
  grp: number;
  count: number;
}

/** Above this many candidates, a prefix's entries are searched by bisection instead of in turn. */
const LINEAR_SCAN = 12;

// The parsed source of the lookup in progress (lookups are synchronous: one per thread will do).
const sourceKey = new Uint32Array(4);

export class AddressTable {
  /** Number of entries. */
  readonly size: number;
  private readonly parts: TableParts;
  private readonly v4: FamilyParts | null;
  private readonly v6: FamilyParts | null;
  /** Result objects, made on first use and reused, so a lookup allocates nothing. */
  private readonly results: (AddressMatch | undefined)[];
  private counts: GroupCount[] | undefined;

  /** Wraps built parts (from `AddressTable.build` or a worker, see load.ts). */
  constructor(parts: TableParts) {
    this.parts = parts;
    this.size = parts.size;
    this.v4 = parts.v4;
    this.v6 = parts.v6;
    // Filled with undefined up front: a packed array stays fast, where writing into an empty
    // one at scattered indexes would turn it into a dictionary.
    this.results = [];
    for (let e = 0; e < parts.size; e++) this.results.push(undefined);
  }

  /** Builds a table from rows; a bad row throws E_ACL_BAD_ROW naming it, and nothing is built. */
  static build(rows: Iterable<AddressRow>): AddressTable {
    const collector = new AddressRowCollector();
    for (const r of rows) collector.add(r.id, r.grp, r.ip_addr, r.mask, r.port, r.tag);
    return new AddressTable(collector.finish());
  }

  static empty(): AddressTable {
    return new AddressTable(new AddressRowCollector().finish());
  }

  /**
   * The entry that admits a message from `sourceIp`:`sourcePort` (see the rules above), or null.
   * `groups` null or omitted means any group; an empty list allows none. `sourceIp` is Node's
   * text form of the peer address; text that is not an address matches nothing.
   */
  match(sourceIp: string, sourcePort: number, groups?: readonly number[] | null): AddressMatch | null {
    if (typeof sourceIp !== 'string') return null;
    const v4 = parseIPv4(sourceIp, 0, sourceIp.length);
    if (v4 >= 0) return this.v4 === null ? null : this.matchIPv4(this.v4, v4, sourcePort, groups ?? null);
    if (!parseIPv6(sourceIp, 0, sourceIp.length, sourceKey, true)) return null;
    if (sourceKey[0] === 0 && sourceKey[1] === 0 && sourceKey[2] === 0xffff) {
      // IPv4-mapped: the IPv4 peer behind a dual-stack socket.
      return this.v4 === null ? null : this.matchIPv4(this.v4, sourceKey[3], sourcePort, groups ?? null);
    }
    return this.v6 === null ? null : this.matchIPv6(this.v6, sourceKey, sourcePort, groups ?? null);
  }

  private matchIPv4(family: FamilyParts, addr: number, port: number, groups: readonly number[] | null): AddressMatch | null {
    const rec = family.trie;
    // From the trie's answer out through the shorter prefixes covering it, to the first one
    // that covers the address (see trie.ts on skips) and has a suitable entry.
    for (let r = lookupIPv4(family, addr); r >= 0; r = rec[r + REC_PARENT]) {
      const len = rec[r + REC_LENGTH];
      if (len !== 0 && ((addr ^ rec[r + REC_KEY]) >>> (32 - len)) !== 0) continue;
      const at = this.pickEntry(rec, r + REC_KEY + 1, port, groups);
      if (at >= 0) return this.results[rec[at]] ?? this.materialize(family, r, at);
    }
    return null;
  }

  private matchIPv6(family: FamilyParts, key: Uint32Array, port: number, groups: readonly number[] | null): AddressMatch | null {
    const rec = family.trie;
    for (let r = lookupIPv6(family, key); r >= 0; r = rec[r + REC_PARENT]) {
      if (!coversIPv6(rec, r, key)) continue;
      const at = this.pickEntry(rec, r + REC_KEY + 4, port, groups);
      if (at >= 0) return this.results[rec[at]] ?? this.materialize(family, r, at);
    }
    return null;
  }

  /**
   * The offset of the preferred entry of a record for this port and these groups, or -1.
   * `counts` is the offset of [exact count, any count]; the exact-port entries that follow are
   * sorted by (port, group, id), then the any-port ones by (group, id).
   */
  private pickEntry(rec: Int32Array, counts: number, port: number, groups: readonly number[] | null): number {
    const exact = rec[counts];
    let lo = counts + 2;
    const any = lo + exact * ENTRY_WORDS;
    const end = any + rec[counts + 1] * ENTRY_WORDS;
    if (exact > 0) {
      let hi = any;
      if (exact > LINEAR_SCAN) {
        lo = lowerBound(rec, lo, hi, 2, port);
        hi = lowerBound(rec, lo, hi, 2, port + 1);
      }
      while (lo < hi && rec[lo + 2] < port) lo += ENTRY_WORDS;
      let runEnd = lo;
      while (runEnd < hi && rec[runEnd + 2] === port) runEnd += ENTRY_WORDS;
      if (lo < runEnd) {
        const at = firstInGroups(rec, lo, runEnd, groups);
        if (at >= 0) return at;
      }
    }
    return any < end ? firstInGroups(rec, any, end, groups) : -1;
  }

  private materialize(family: FamilyParts, r: number, at: number): AddressMatch {
    const p = this.parts;
    const rec = family.trie;
    const e = rec[at];
    const result: AddressMatch = Object.freeze({
      id: p.entryId[e],
      grp: rec[at + 1] >>> 0,
      ipAddr: networkText(family, r, (p.entryFlags[e] & FLAG_SHOWN_V6) !== 0),
      mask: p.entryMask[e],
      port: rec[at + 2],
      tag: (p.entryFlags[e] & FLAG_HAS_TAG) !== 0 ? tagText(p, e) : null,
    });
    this.results[e] = result;
    return result;
  }

  /** Every record of a family: calls `visit(record, first entry offset, end)`. */
  private static eachRecord(family: FamilyParts, visit: (r: number, from: number, to: number) => void): void {
    const rec = family.trie;
    const K = family.width >>> 5;
    for (const r of family.recordAt) {
      const from = r + REC_KEY + K + 2;
      visit(r, from, from + (rec[r + REC_KEY + K] + rec[r + REC_KEY + K + 1]) * ENTRY_WORDS);
    }
  }

  /** Bytes held in the table's typed arrays (the result objects made so far not counted). */
  get memoryBytes(): number {
    const p = this.parts;
    let bytes = p.entryId.byteLength + p.entryMask.byteLength + p.entryFlags.byteLength + p.tagBytes.byteLength + p.tagOffsets.byteLength;
    for (const f of [p.v4, p.v6]) if (f) bytes += f.direct.byteLength + f.trie.byteLength + f.recordAt.byteLength;
    return bytes;
  }

  /** Entries per group, sorted by group. */
  groupCounts(): GroupCount[] {
    if (!this.counts) {
      const byGroup = new Map<number, number>();
      for (const family of [this.v4, this.v6]) {
        if (!family) continue;
        const rec = family.trie;
        AddressTable.eachRecord(family, (_r, from, to) => {
          for (let at = from; at < to; at += ENTRY_WORDS) {
            const g = rec[at + 1] >>> 0;
            byGroup.set(g, (byGroup.get(g) ?? 0) + 1);
          }
        });
      }
      this.counts = [...byGroup].map(([grp, count]) => ({ grp, count })).sort((a, b) => a.grp - b.grp);
    }
    return this.counts.map((c) => ({ ...c }));
  }

  /**
   * All entries, or those of one group, sorted by group, then IPv4 before IPv6, then network
   * (numerically), mask, port and id.
   */
  entries(grp?: number): AddressMatch[] {
    const found: { m: AddressMatch; v6: boolean; key: number[] }[] = [];
    for (const family of [this.v4, this.v6]) {
      if (!family) continue;
      const rec = family.trie;
      const K = family.width >>> 5;
      AddressTable.eachRecord(family, (r, from, to) => {
        for (let at = from; at < to; at += ENTRY_WORDS) {
          if (grp !== undefined && rec[at + 1] >>> 0 !== grp) continue;
          const m = this.results[rec[at]] ?? this.materialize(family, r, at);
          const v6 = (this.parts.entryFlags[rec[at]] & FLAG_SHOWN_V6) !== 0;
          const key = Array.from(rec.subarray(r + REC_KEY, r + REC_KEY + K), (w) => w >>> 0);
          // An IPv4-mapped entry sorts among IPv6 ones by its full IPv6 network.
          found.push({ m, v6, key: v6 && K === 1 ? [0, 0, 0xffff, key[0]] : key });
        }
      });
    }
    found.sort((a, b) => {
      if (a.m.grp !== b.m.grp) return a.m.grp - b.m.grp;
      if (a.v6 !== b.v6) return a.v6 ? 1 : -1;
      for (let w = 0; w < a.key.length; w++) if (a.key[w] !== b.key[w]) return a.key[w] - b.key[w];
      return a.m.mask - b.m.mask || a.m.port - b.m.port || a.m.id - b.m.id;
    });
    return found.map((f) => f.m);
  }
}

/** Whether the IPv6 prefix of record r covers `key`. */
function coversIPv6(rec: Int32Array, r: number, key: Uint32Array): boolean {
  const len = rec[r + REC_LENGTH];
  let w = 0;
  for (; (w + 1) << 5 <= len; w++) if ((key[w] ^ rec[r + REC_KEY + w]) !== 0) return false;
  const rest = len & 31;
  return rest === 0 || ((key[w] ^ rec[r + REC_KEY + w]) >>> (32 - rest)) === 0;
}

/** First entry offset in [lo, hi) (entries sorted by group) whose group is allowed, or -1. */
function firstInGroups(rec: Int32Array, lo: number, hi: number, groups: readonly number[] | null): number {
  if (groups === null) return lo;
  const n = groups.length;
  if (hi - lo <= LINEAR_SCAN * ENTRY_WORDS) {
    for (let at = lo; at < hi; at += ENTRY_WORDS) {
      const grp = rec[at + 1] >>> 0;
      for (let j = 0; j < n; j++) if (groups[j] === grp) return at;
    }
    return -1;
  }
  let best = -1;
  for (let j = 0; j < n; j++) {
    const g = groups[j];
    const at = lowerBound(rec, lo, hi, 1, g);
    if (at < hi && rec[at + 1] >>> 0 === g && (best < 0 || at < best)) best = at;
  }
  return best;
}

/** First entry offset in [lo, hi) whose field (1 group, 2 port) is >= value; sorted by it. */
function lowerBound(rec: Int32Array, lo: number, hi: number, field: 1 | 2, value: number): number {
  let a = (lo / ENTRY_WORDS) | 0;
  let b = (hi / ENTRY_WORDS) | 0;
  const base = lo - a * ENTRY_WORDS;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (rec[base + mid * ENTRY_WORDS + field] >>> 0 < value) a = mid + 1;
    else b = mid;
  }
  return base + a * ENTRY_WORDS;
}

function networkText(family: FamilyParts, r: number, shownV6: boolean): string {
  const rec = family.trie;
  if (family.width === 32) {
    const addr = rec[r + REC_KEY] >>> 0;
    if (!shownV6) return formatIPv4(addr);
    return ipaddr.IPv4.parse(formatIPv4(addr)).toIPv4MappedAddress().toString();
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = rec[r + REC_KEY + w];
    bytes.push(word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

const utf8 = new TextDecoder();

function tagText(p: TableParts, e: number): string {
  return utf8.decode(p.tagBytes.subarray(p.tagOffsets[e], p.tagOffsets[e + 1]));
}
