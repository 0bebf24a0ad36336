import { describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { AddressTable, type AddressRow } from '../../src/acl/table.js';

let nextId = 1;
/** A row with defaults: group 1, any port, no tag. */
function row(ip_addr: string, mask: number, fields: Partial<AddressRow> = {}): AddressRow {
  return { id: nextId++, grp: 1, ip_addr, mask, port: 0, tag: null, ...fields };
}

/** The (network/mask, group, port) of the entry matching, or null. */
function hit(t: AddressTable, ip: string, port: number, groups?: readonly number[] | null): string | null {
  const m = t.match(ip, port, groups);
  return m && `${m.ipAddr}/${m.mask} g${m.grp} p${m.port}`;
}

describe('AddressTable.match: longest prefix', () => {
  const t = AddressTable.build([
    row('10.0.0.0', 8),
    row('10.1.0.0', 16),
    row('10.1.2.0', 24),
    row('10.1.2.3', 32),
    row('0.0.0.0', 0, { grp: 9 }),
  ]);

  it('picks the longest covering prefix among overlapping entries', () => {
    expect(hit(t, '10.1.2.3', 5060)).toBe('10.1.2.3/32 g1 p0');
    expect(hit(t, '10.1.2.4', 5060)).toBe('10.1.2.0/24 g1 p0');
    expect(hit(t, '10.1.3.4', 5060)).toBe('10.1.0.0/16 g1 p0');
    expect(hit(t, '10.200.3.4', 5060)).toBe('10.0.0.0/8 g1 p0');
    expect(hit(t, '11.0.0.1', 5060)).toBe('0.0.0.0/0 g9 p0');
  });

  it('falls back to the covering prefix of an allowed group', () => {
    expect(hit(t, '10.1.2.3', 5060, [9])).toBe('0.0.0.0/0 g9 p0');
    expect(hit(t, '11.0.0.1', 5060, [1])).toBeNull();
    expect(hit(t, '10.1.2.3', 5060, [])).toBeNull();
  });

  it('counts and dumps entries', () => {
    expect(t.size).toBe(5);
    expect(t.groupCounts()).toEqual([{ grp: 1, count: 4 }, { grp: 9, count: 1 }]);
    expect(t.entries().map((m) => `${m.grp} ${m.ipAddr}/${m.mask}`)).toEqual([
      '1 10.0.0.0/8', '1 10.1.0.0/16', '1 10.1.2.0/24', '1 10.1.2.3/32', '9 0.0.0.0/0',
    ]);
    expect(t.entries(9)).toHaveLength(1);
    expect(t.entries(7)).toEqual([]);
  });
});

describe('AddressTable.match: nesting', () => {
  it('keeps a prefix wholly shadowed by longer ones, for dumps and as a fall-back', () => {
    const t = AddressTable.build([
      row('10.0.0.0', 31, { grp: 2, tag: 'pair' }),
      row('10.0.0.0', 32, { grp: 1 }),
      row('10.0.0.1', 32, { grp: 1 }),
    ]);
    expect(t.entries().map((m) => `${m.ipAddr}/${m.mask}`)).toEqual(['10.0.0.0/32', '10.0.0.1/32', '10.0.0.0/31']);
    expect(t.match('10.0.0.1', 1)?.mask).toBe(32);
    expect(t.match('10.0.0.1', 1, [2])?.tag).toBe('pair');
  });

  it('walks every length from /0 to /32 and /0 to /128, one group per length', () => {
    const rows: AddressRow[] = [];
    for (let len = 0; len <= 32; len++) rows.push(row('203.0.113.77', len, { grp: len, tag: `v4/${len}` }));
    for (let len = 0; len <= 128; len++) rows.push(row('2001:db8:85a3::8a2e:370:7334', len, { grp: 1000 + len, tag: `v6/${len}` }));
    const t = AddressTable.build(rows);
    for (let len = 0; len <= 32; len++) expect(t.match('203.0.113.77', 1, [len])?.tag).toBe(`v4/${len}`);
    for (let len = 0; len <= 128; len++) expect(t.match('2001:db8:85a3::8a2e:370:7334', 1, [1000 + len])?.tag).toBe(`v6/${len}`);
    expect(t.match('203.0.113.77', 1)?.tag).toBe('v4/32');
    expect(t.match('203.0.113.76', 1)?.tag).toBe('v4/31');
    expect(t.match('2001:db8:85a3::8a2e:370:7335', 1)?.tag).toBe('v6/127');
    expect(t.match('a000::', 1)?.tag).toBe('v6/0');
    expect(t.match('1.2.3.4', 1)?.tag).toBe('v4/0');
  });
});

describe('AddressTable.match: ports', () => {
  it('port 0 admits any source port, an exact port only that one', () => {
    const t = AddressTable.build([row('192.0.2.10', 32, { port: 5060 }), row('192.0.2.0', 24)]);
    expect(hit(t, '192.0.2.10', 5060)).toBe('192.0.2.10/32 g1 p5060');
    // The /32 is for port 5060 only: another port falls back to the /24 (not hidden by the /32).
    expect(hit(t, '192.0.2.10', 5061)).toBe('192.0.2.0/24 g1 p0');
  });

  it('an exact-port entry that does not match hides nothing, even with nothing else at its prefix', () => {
    const t = AddressTable.build([row('192.0.2.10', 32, { port: 5060 })]);
    expect(hit(t, '192.0.2.10', 5061)).toBeNull();
    expect(hit(t, '192.0.2.10', 5060)).toBe('192.0.2.10/32 g1 p5060');
  });

  it('on equal prefixes prefers the exact port, then the lowest group, then the lowest id', () => {
    const t = AddressTable.build([
      { id: 50, grp: 3, ip_addr: '198.51.100.0', mask: 24, port: 0, tag: 'any-3' },
      { id: 40, grp: 2, ip_addr: '198.51.100.0', mask: 24, port: 0, tag: 'any-2' },
      { id: 30, grp: 5, ip_addr: '198.51.100.0', mask: 24, port: 5060, tag: 'exact-5' },
      { id: 20, grp: 4, ip_addr: '198.51.100.0', mask: 24, port: 5060, tag: 'exact-4' },
      { id: 10, grp: 4, ip_addr: '198.51.100.0', mask: 24, port: 5080, tag: 'exact-4-5080' },
      { id: 5, grp: 2, ip_addr: '198.51.100.7', mask: 24, port: 0, tag: 'any-2-low-id' },
    ]);
    expect(t.match('198.51.100.9', 5060)?.tag).toBe('exact-4');
    expect(t.match('198.51.100.9', 5060, [5, 3])?.tag).toBe('exact-5');
    expect(t.match('198.51.100.9', 5080)?.tag).toBe('exact-4-5080');
    expect(t.match('198.51.100.9', 5070)?.tag).toBe('any-2-low-id');
    expect(t.match('198.51.100.9', 5070, [3, 9])?.tag).toBe('any-3');
    expect(t.match('198.51.100.9', 5080, [2, 3])?.tag).toBe('any-2-low-id');
  });
});

describe('AddressTable.match: families', () => {
  const t = AddressTable.build([
    row('192.0.2.0', 24, { tag: 'v4' }),
    row('2001:db8::', 32, { tag: 'v6-32' }),
    row('2001:db8:0:1::', 64, { tag: 'v6-64' }),
    row('2001:db8:0:1::5', 128, { tag: 'v6-128' }),
    row('::', 0, { grp: 7, tag: 'all-v6' }),
    row('::ffff:203.0.113.0', 120, { grp: 2, tag: 'mapped' }),
  ]);

  it('matches IPv6 sources against IPv6 entries by longest prefix', () => {
    expect(t.match('2001:db8:0:1::5', 1)?.tag).toBe('v6-128');
    expect(t.match('2001:DB8:0:1:0:0:0:5', 1)?.tag).toBe('v6-128');
    expect(t.match('2001:db8:0:1::6', 1)?.tag).toBe('v6-64');
    expect(t.match('2001:db8:ffff::1', 1)?.tag).toBe('v6-32');
    expect(t.match('2001:db9::1', 1)?.tag).toBe('all-v6');
    expect(t.match('fe80::1%eth0', 1)?.tag).toBe('all-v6');
  });

  it('treats an IPv4-mapped source as its IPv4 peer', () => {
    expect(t.match('::ffff:192.0.2.44', 5060)?.tag).toBe('v4');
    expect(t.match('::ffff:c000:22c', 5060)?.tag).toBe('v4');
    // ::/0 is for IPv6 peers; an IPv4 peer outside every IPv4 entry is not let in by it.
    expect(t.match('::ffff:8.8.8.8', 5060)).toBeNull();
    expect(t.match('8.8.8.8', 5060)).toBeNull();
  });

  it('lets an IPv4-mapped entry admit its IPv4 peer from either kind of socket, showing its IPv6 text', () => {
    const viaV4 = t.match('203.0.113.9', 5060);
    expect(viaV4).toMatchObject({ tag: 'mapped', grp: 2, ipAddr: '::ffff:cb00:7100', mask: 120 });
    expect(t.match('::ffff:203.0.113.9', 5060)).toBe(viaV4);
  });

  it('returns the whole entry, the same frozen object each time', () => {
    const m = t.match('2001:db8:0:1::5', 5060);
    expect(m).toEqual({ id: expect.any(Number), grp: 1, ipAddr: '2001:db8:0:1::5', mask: 128, port: 0, tag: 'v6-128' });
    expect(Object.isFrozen(m)).toBe(true);
    expect(t.match('2001:db8:0:1::5', 5061)).toBe(m);
  });

  it('matches nothing for text that is not an address', () => {
    for (const bad of ['', 'localhost', '192.0.2', '192.0.2.1.5', '192.0.2.01', '2001:db8::1::2', '::ffff:192.0.2', 'fe80::1%']) {
      expect(t.match(bad, 5060)).toBeNull();
    }
  });
});

describe('AddressTable: groups', () => {
  const t = AddressTable.build([
    row('10.0.0.0', 8, { grp: 1, tag: 'g1' }),
    row('10.0.0.0', 8, { grp: 2, tag: 'g2' }),
    row('10.5.0.0', 16, { grp: 3, tag: 'g3' }),
  ]);

  it('keeps groups apart', () => {
    expect(t.match('10.5.1.1', 1, [1])?.tag).toBe('g1');
    expect(t.match('10.5.1.1', 1, [2])?.tag).toBe('g2');
    expect(t.match('10.5.1.1', 1, [3])?.tag).toBe('g3');
    expect(t.match('10.6.1.1', 1, [3])).toBeNull();
    expect(t.match('10.5.1.1', 1, [4])).toBeNull();
    expect(t.match('10.5.1.1', 1)?.tag).toBe('g3');
    expect(t.match('10.5.1.1', 1, null)?.tag).toBe('g3');
    expect(t.match('10.6.1.1', 1, [2, 1])?.tag).toBe('g1');
  });

  it('finds the allowed group among many entries of one prefix (the bisecting path)', () => {
    const rows: AddressRow[] = [];
    for (let g = 0; g < 200; g++) {
      rows.push(row('172.16.0.0', 12, { grp: g * 2, tag: `any-${g * 2}` }));
      rows.push(row('172.16.0.0', 12, { grp: g * 2, port: 5000 + g, tag: `exact-${g * 2}` }));
    }
    const big = AddressTable.build(rows);
    expect(big.match('172.20.1.1', 5010)?.tag).toBe('exact-20');
    expect(big.match('172.20.1.1', 5010, [21, 40, 100])?.tag).toBe('any-40');
    expect(big.match('172.20.1.1', 5050, [101, 100, 300])?.tag).toBe('exact-100');
    expect(big.match('172.20.1.1', 6000, [399, 398])?.tag).toBe('any-398');
    expect(big.match('172.20.1.1', 6000, [1, 3, 401])).toBeNull();
    expect(big.match('172.20.1.1', 6000)?.tag).toBe('any-0');
  });
});

describe('AddressTable.build: bad rows', () => {
  it.each([
    [{ ip_addr: '10.0.0.256', mask: 32 }, /ip_addr "10.0.0.256" is not an IPv4 or IPv6 address/],
    [{ ip_addr: '10.0.0.0', mask: 33 }, /mask 33 is out of range for IPv4 \(0-32\)/],
    [{ ip_addr: '2001:db8::', mask: 129 }, /mask 129 is out of range for IPv6 \(0-128\)/],
    [{ ip_addr: '10.0.0.0', mask: 8, port: 70000 }, /port 70000 is not an integer 0-65535/],
    [{ ip_addr: '10.0.0.0', mask: 8, grp: -1 }, /grp -1 is not an integer/],
    [{ ip_addr: 'fe80::1%eth0', mask: 128 }, /is not an IPv4 or IPv6 address/],
  ])('refuses %j with E_ACL_BAD_ROW naming the row', (fields, message) => {
    const rows = [row('192.0.2.1', 32), { ...row('0.0.0.0', 0), id: 77, ...fields } as AddressRow];
    let err: unknown;
    try {
      AddressTable.build(rows);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SipctlError);
    expect((err as SipctlError).code).toBe('E_ACL_BAD_ROW');
    expect((err as SipctlError).message).toMatch(/^address row id 77: /);
    expect((err as SipctlError).message).toMatch(message);
  });

  it('clears host bits of a stored row, as Kamailio ignores them when matching', () => {
    const t = AddressTable.build([row('192.168.1.7', 24)]);
    expect(t.match('192.168.1.200', 1)).toMatchObject({ ipAddr: '192.168.1.0', mask: 24 });
  });

  it('builds an empty table that matches nothing', () => {
    for (const t of [AddressTable.empty(), AddressTable.build([])]) {
      expect(t.size).toBe(0);
      expect(t.match('10.0.0.1', 5060)).toBeNull();
      expect(t.match('2001:db8::1', 5060)).toBeNull();
      expect(t.groupCounts()).toEqual([]);
      expect(t.entries()).toEqual([]);
    }
  });
});
