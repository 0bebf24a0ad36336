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
import { AddressRowCollector, FLAG_HAS_TAG, FLAG_SHOWN_V6, type FamilyParts, type TableParts } from './build.js';
import { formatIPv4, parseIPv4, parseIPv6 } from './ip-text.js';
import { lookupIPv4, lookupIPv6 } from './trie.js';

export interface AddressRow {
  id: number;
  grp: number;
  ip_addr: string;
  mask: number;
  port: number;
  tag: string | null;
}

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
  private readonly entryInfo: Uint32Array;
  /** Result objects, made on first use and reused, so a lookup allocates nothing. */
  private readonly results: (AddressMatch | undefined)[];
  private counts: GroupCount[] | undefined;

  /** Wraps built parts (from `AddressTable.build` or a worker, see load.ts). */
  constructor(parts: TableParts) {
    this.parts = parts;
    this.size = parts.size;
    this.v4 = parts.v4;
    this.v6 = parts.v6;
    this.entryInfo = parts.entryInfo;
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
    let family: FamilyParts | null;
    let prefix: number;
    const v4 = parseIPv4(sourceIp, 0, sourceIp.length);
    if (v4 >= 0) {
      family = this.v4;
      if (family === null) return null;
      prefix = lookupIPv4(family.trie, v4);
    } else {
      if (!parseIPv6(sourceIp, 0, sourceIp.length, sourceKey, true)) return null;
      if (sourceKey[0] === 0 && sourceKey[1] === 0 && sourceKey[2] === 0xffff) {
        family = this.v4; // IPv4-mapped: the IPv4 peer behind a dual-stack socket
        if (family === null) return null;
        prefix = lookupIPv4(family.trie, sourceKey[3]);
      } else {
        family = this.v6;
        if (family === null) return null;
        prefix = lookupIPv6(family.trie, sourceKey);
      }
    }
    const info = family.prefixInfo;
    const allowed = groups ?? null;
    // From the longest covering prefix outwards, to the first one with a suitable entry.
    while (prefix >= 0) {
      const at = prefix << 2;
      const e = this.pickEntry(info[at + 1], info[at + 2], info[at + 3], sourcePort, allowed);
      if (e >= 0) return this.results[e] ?? this.materialize(e, family, prefix);
      prefix = info[at];
    }
    return null;
  }

  /**
   * The preferred entry of one prefix for this port and these groups, or -1. Exact-port entries
   * [exact, any) are sorted by (port, group, id), any-port ones [any, end) by (group, id).
   */
  private pickEntry(exact: number, any: number, end: number, port: number, groups: readonly number[] | null): number {
    const info = this.entryInfo;
    if (exact < any) {
      let lo = exact;
      let hi = any;
      if (hi - lo > LINEAR_SCAN) {
        lo = this.lowerBound(lo, hi, 1, port);
        hi = this.lowerBound(lo, hi, 1, port + 1);
      }
      for (; lo < hi && info[lo * 2 + 1] < port; lo++);
      let runEnd = lo;
      while (runEnd < hi && info[runEnd * 2 + 1] === port) runEnd++;
      if (lo < runEnd) {
        const e = this.firstInGroups(lo, runEnd, groups);
        if (e >= 0) return e;
      }
    }
    return any < end ? this.firstInGroups(any, end, groups) : -1;
  }

  /** First entry in [lo, hi) (sorted by group) whose group is allowed, or -1. */
  private firstInGroups(lo: number, hi: number, groups: readonly number[] | null): number {
    if (groups === null) return lo;
    const info = this.entryInfo;
    const n = groups.length;
    if (hi - lo <= LINEAR_SCAN) {
      for (let e = lo; e < hi; e++) {
        const grp = info[e * 2];
        for (let j = 0; j < n; j++) if (groups[j] === grp) return e;
      }
      return -1;
    }
    let best = -1;
    for (let j = 0; j < n; j++) {
      const g = groups[j];
      const e = this.lowerBound(lo, hi, 0, g);
      if (e < hi && info[e * 2] === g && (best < 0 || e < best)) best = e;
    }
    return best;
  }

  /** First entry in [lo, hi) whose field (0 group, 1 port) is >= value; the run is sorted by it. */
  private lowerBound(lo: number, hi: number, field: 0 | 1, value: number): number {
    const info = this.entryInfo;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (info[mid * 2 + field] < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private materialize(e: number, family: FamilyParts, prefix: number): AddressMatch {
    const p = this.parts;
    const result: AddressMatch = Object.freeze({
      id: p.entryId[e],
      grp: p.entryInfo[e * 2],
      ipAddr: networkText(family, prefix, (p.entryFlags[e] & FLAG_SHOWN_V6) !== 0),
      mask: p.entryMask[e],
      port: p.entryInfo[e * 2 + 1],
      tag: (p.entryFlags[e] & FLAG_HAS_TAG) !== 0 ? tagText(p, e) : null,
    });
    this.results[e] = result;
    return result;
  }

  /** Entries per group, sorted by group. */
  groupCounts(): GroupCount[] {
    if (!this.counts) {
      const byGroup = new Map<number, number>();
      const info = this.entryInfo;
      for (let e = 0; e < this.size; e++) byGroup.set(info[e * 2], (byGroup.get(info[e * 2]) ?? 0) + 1);
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
      const K = family.width >>> 5;
      for (let q = 0; q < family.prefixCount; q++) {
        for (let e = family.prefixInfo[q * 4 + 1]; e < family.prefixInfo[q * 4 + 3]; e++) {
          if (grp !== undefined && this.entryInfo[e * 2] !== grp) continue;
          const m = this.results[e] ?? this.materialize(e, family, q);
          const v6 = (this.parts.entryFlags[e] & FLAG_SHOWN_V6) !== 0;
          const key = Array.from(family.prefixKeys.subarray(q * K, q * K + K));
          // An IPv4-mapped entry sorts among IPv6 ones by its full IPv6 network.
          found.push({ m, v6, key: v6 && K === 1 ? [0, 0, 0xffff, key[0]] : key });
        }
      }
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

function networkText(family: FamilyParts, prefix: number, shownV6: boolean): string {
  if (family.width === 32) {
    const addr = family.prefixKeys[prefix];
    if (!shownV6) return formatIPv4(addr);
    return ipaddr.IPv4.parse(formatIPv4(addr)).toIPv4MappedAddress().toString();
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = family.prefixKeys[prefix * 4 + w];
    bytes.push(word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

const utf8 = new TextDecoder();

function tagText(p: TableParts, e: number): string {
  return utf8.decode(p.tagBytes.subarray(p.tagOffsets[e], p.tagOffsets[e + 1]));
}
