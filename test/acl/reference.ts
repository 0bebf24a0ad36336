/**
 * A deliberately simple reference for the address table's matching rules: a linear scan over
 * every entry, addresses parsed by ipaddr.js (not by the table's own parsers), all addresses
 * compared as 128-bit values with IPv4 peers at ::ffff:a.b.c.d. Used to cross-check the trie.
 */
import ipaddr from 'ipaddr.js';
import type { AddressRow } from '../../src/acl/table.js';

interface RefEntry {
  row: AddressRow;
  words: number[];
  len: number;
  v4Peer: boolean;
}

function words(bytes: number[]): number[] {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 4) w.push(((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0);
  return w;
}

/** 128-bit words of an address and whether it is an IPv4 peer (IPv4, or IPv4-mapped IPv6). */
export function peer(text: string): { words: number[]; v4Peer: boolean } | null {
  if (!ipaddr.isValid(text)) return null;
  const a = ipaddr.parse(text);
  if (a.kind() === 'ipv4') {
    if (!ipaddr.IPv4.isValidFourPartDecimal(text)) return null;
    return { words: words((a as ipaddr.IPv4).toIPv4MappedAddress().toByteArray()), v4Peer: true };
  }
  const v6 = a as ipaddr.IPv6;
  return { words: words(v6.toByteArray()), v4Peer: v6.isIPv4MappedAddress() };
}

function covers(e: RefEntry, w: number[]): boolean {
  for (let i = 0; i < 4; i++) {
    const bits = e.len - 32 * i;
    if (bits <= 0) return true;
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((e.words[i] ^ w[i]) & mask) >>> 0 !== 0) return false;
  }
  return true;
}

export class ReferenceTable {
  private readonly entries: RefEntry[];

  constructor(rows: AddressRow[]) {
    this.entries = rows.map((row) => {
      const a = ipaddr.parse(row.ip_addr);
      if (a.kind() === 'ipv4') {
        return { row, words: words((a as ipaddr.IPv4).toIPv4MappedAddress().toByteArray()), len: 96 + row.mask, v4Peer: true };
      }
      const v6 = a as ipaddr.IPv6;
      return { row, words: words(v6.toByteArray()), len: row.mask, v4Peer: v6.isIPv4MappedAddress() && row.mask >= 96 };
    });
  }

  match(source: string, port: number, groups?: readonly number[] | null): AddressRow | null {
    const src = peer(source.replace(/%.*$/, ''));
    if (!src) return null;
    let best: RefEntry | null = null;
    for (const e of this.entries) {
      if (e.v4Peer !== src.v4Peer || !covers(e, src.words)) continue;
      if (e.row.port !== 0 && e.row.port !== port) continue;
      if (groups && !groups.includes(e.row.grp)) continue;
      if (!best || better(e, best)) best = e;
    }
    return best?.row ?? null;
  }
}

function better(a: RefEntry, b: RefEntry): boolean {
  if (a.len !== b.len) return a.len > b.len;
  const ax = a.row.port !== 0;
  const bx = b.row.port !== 0;
  if (ax !== bx) return ax;
  if (a.row.grp !== b.row.grp) return a.row.grp < b.row.grp;
  return a.row.id < b.row.id;
}

/** mulberry32: a small seeded PRNG, so a failing case can be replayed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
