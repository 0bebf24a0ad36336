import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { AddressRowCollector } from '../../src/acl/build.js';
import { AddressTable, type AddressRow } from '../../src/acl/table.js';
import { prng, ReferenceTable } from './reference.js';

/** Random tables built around a few anchors, so prefixes overlap, nest and nearly collide. */
function scenario(seed: number, entries: number, lookups: number) {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const randomBytes = (n: number) => Array.from({ length: n }, () => int(256));
  const anchors4 = Array.from({ length: 40 }, () => randomBytes(4));
  const anchors6 = Array.from({ length: 40 }, () => randomBytes(16));

  /** A copy of `base` with bits from `from` on replaced at random (rarely: one bit flipped). */
  const vary = (base: number[], from: number): number[] => {
    const out = base.slice();
    if (rand() < 0.3) {
      const bit = from + int(out.length * 8 - from);
      if (bit < out.length * 8) out[bit >> 3] ^= 0x80 >> (bit & 7);
      return out;
    }
    for (let bit = from; bit < out.length * 8; bit++) if (rand() < 0.5) out[bit >> 3] ^= 0x80 >> (bit & 7);
    return out;
  };
  const text = (bytes: number[]) => ipaddr.fromByteArray(bytes).toString();

  const rows: AddressRow[] = [];
  for (let id = 1; id <= entries; id++) {
    const kind = rand();
    let ip_addr: string;
    let mask: number;
    if (kind < 0.45) {
      mask = rand() < 0.1 ? int(8) : 8 + int(25);
      ip_addr = text(vary(pick(anchors4), int(33)));
    } else if (kind < 0.9) {
      mask = rand() < 0.05 ? int(32) : 32 + int(97);
      ip_addr = text(vary(pick(anchors6), int(129)));
    } else {
      mask = 96 + int(33);
      ip_addr = text([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...vary(pick(anchors4), int(33))]);
    }
    rows.push({
      id, grp: int(6), ip_addr, mask,
      port: rand() < 0.7 ? 0 : pick([5060, 5061, 5080]),
      tag: rand() < 0.5 ? null : `t${id}`,
    });
  }

  const probes: { ip: string; port: number; groups: number[] | null }[] = [];
  for (let i = 0; i < lookups; i++) {
    let bytes: number[];
    const r = rand();
    if (r < 0.5) {
      const e = pick(rows);
      const base = ipaddr.parse(e.ip_addr).toByteArray();
      bytes = vary(base, base.length === 4 ? e.mask : e.mask);
    } else if (r < 0.85) {
      bytes = rand() < 0.5 ? vary(pick(anchors4), 8 + int(25)) : vary(pick(anchors6), 16 + int(113));
    } else {
      bytes = randomBytes(rand() < 0.5 ? 4 : 16);
    }
    let ip = text(bytes);
    if (bytes.length === 4 && rand() < 0.25) ip = rand() < 0.5 ? `::ffff:${ip}` : ipaddr.IPv4.parse(ip).toIPv4MappedAddress().toString();
    if (bytes.length === 16 && rand() < 0.2) ip = ipaddr.fromByteArray(bytes).toNormalizedString().toUpperCase();
    const g = rand();
    const groups = g < 0.4 ? null : g < 0.45 ? [] : Array.from({ length: 1 + int(3) }, () => int(7));
    probes.push({ ip, port: pick([5060, 5061, 5080, 1234]), groups });
  }
  return { rows, probes };
}

describe('AddressTable against a linear-scan reference', () => {
  // Direct levels: the defaults (12/13 bits below 65,536 prefixes), the big ones (17/18) and
  // the extremes, so every node depth and word straddle is walked.
  it.each([
    [1, 300, 4000, undefined],
    [2, 2500, 4000, undefined],
    [3, 8000, 3000, { v4: 17, v6: 18 }],
    [4, 3000, 3000, { v4: 2, v6: 3 }],
    [5, 3000, 3000, { v4: 22, v6: 23 }],
  ])('seed %i: %i entries, %i lookups agree (direct bits %j)', (seed, entries, lookups, directBits) => {
    const { rows, probes } = scenario(seed, entries, lookups);
    const collector = new AddressRowCollector({ directBits });
    for (const r of rows) collector.add(r.id, r.grp, r.ip_addr, r.mask, r.port, r.tag);
    const table = new AddressTable(collector.finish());
    const reference = new ReferenceTable(rows);
    let hits = 0;
    for (const p of probes) {
      const want = reference.match(p.ip, p.port, p.groups);
      const got = table.match(p.ip, p.port, p.groups);
      if ((got?.id ?? null) !== (want?.id ?? null)) {
        expect.fail(`${p.ip} port ${p.port} groups ${JSON.stringify(p.groups)}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      }
      if (want) {
        hits++;
        expect(got).toMatchObject({ grp: want.grp, mask: want.mask, port: want.port, tag: want.tag });
      }
    }
    // The scenario must exercise both outcomes, or it proves little.
    expect(hits).toBeGreaterThan(lookups * 0.2);
    expect(hits).toBeLessThan(lookups * 0.95);
    expect(table.size).toBe(entries);
    expect(table.groupCounts().reduce((n, c) => n + c.count, 0)).toBe(entries);
  });
});
