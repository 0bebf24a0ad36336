import { describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import type { Destination, DestinationState, DispatcherRow } from '../../src/dispatcher/types.js';
import { FakeClock, KEY, keyFor, row } from './helpers.js';

async function load(rows: DispatcherRow[]) {
  const holder = new DispatcherHolder({ clock: new FakeClock() });
  await holder.reload(rows);
  return holder;
}

function tally(pick: () => Destination | null, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const d = pick();
    const k = d === null ? 'null' : d.uri;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

function expectShare(counts: Map<string, number>, uri: string, share: number, total: number) {
  const got = (counts.get(uri) ?? 0) / total;
  // ±2 % of the expected share
  expect(Math.abs(got - share)).toBeLessThanOrEqual(share * 0.02);
}

const A = 'sip:10.0.0.1:5060';
const B = 'sip:10.0.0.2:5060';
const C = 'sip:10.0.0.3:5060';
const D = 'sip:10.0.0.4:5060';

describe('round-robin (4)', () => {
  it('cycles through the active destinations in set order, exactly', async () => {
    const h = await load([row(1, A), row(1, B), row(1, C)]);
    const seq = Array.from({ length: 9 }, () => h.current.select(1, 'round-robin', KEY)!.uri);
    expect(seq).toEqual([A, B, C, A, B, C, A, B, C]);
  });

  it('skips a destination that goes inactive, and takes it back when active', async () => {
    const h = await load([row(1, A), row(1, B), row(1, C)]);
    h.current.setState(1, B, 'inactive', 'test');
    const counts = tally(() => h.current.select(1, 4, KEY), 300);
    expect(counts.get(A)).toBe(150);
    expect(counts.get(C)).toBe(150);
    expect(counts.has(B)).toBe(false);
    h.current.setState(1, B, 'active', 'test');
    const after = tally(() => h.current.select(1, 4, KEY), 300);
    expect([after.get(A), after.get(B), after.get(C)]).toEqual([100, 100, 100]);
  });
});

describe('weight (9)', () => {
  it('splits by the weight percentages within ±2 % over 100,000 picks', async () => {
    const h = await load([row(1, A, { attrs: 'weight=50' }), row(1, B, { attrs: 'weight=30' }), row(1, C, { attrs: 'weight=20' })]);
    const counts = tally(() => h.current.select(1, 'weight', KEY), 100_000);
    expectShare(counts, A, 0.5, 100_000);
    expectShare(counts, B, 0.3, 100_000);
    expectShare(counts, C, 0.2, 100_000);
  });

  it('gives the remainder under 100 to the last destination, as Kamailio does', async () => {
    const h = await load([row(1, A, { attrs: 'weight=20' }), row(1, B, { attrs: 'weight=10' })]);
    const counts = tally(() => h.current.select(1, 9, KEY), 100_000);
    expectShare(counts, A, 0.2, 100_000);
    expectShare(counts, B, 0.8, 100_000);
  });

  it("hands a down destination's share to the next active one and leaves the others' alone", async () => {
    const h = await load([row(1, A, { attrs: 'weight=50' }), row(1, B, { attrs: 'weight=30' }), row(1, C, { attrs: 'weight=20' })]);
    h.current.setState(1, B, 'inactive', 'test');
    const counts = tally(() => h.current.select(1, 'weight', KEY), 100_000);
    expectShare(counts, A, 0.5, 100_000);
    expectShare(counts, C, 0.5, 100_000);
    expect(counts.has(B)).toBe(false);
  });
});

describe('relative-weight (11)', () => {
  it('splits by rweight / sum of active rweights, recomputed when one goes down', async () => {
    // Kamailio's own example: rweight 1/2/1 gives 25/50/25; with the third down, 33/67/0.
    const h = await load([row(1, A, { attrs: 'rweight=1' }), row(1, B, { attrs: 'rweight=2' }), row(1, C, { attrs: 'rweight=1' })]);
    const before = tally(() => h.current.select(1, 'relative-weight', KEY), 100_000);
    expectShare(before, A, 0.25, 100_000);
    expectShare(before, B, 0.5, 100_000);
    expectShare(before, C, 0.25, 100_000);
    h.current.setState(1, C, 'inactive', 'test');
    const after = tally(() => h.current.select(1, 11, KEY), 100_000);
    expectShare(after, A, 1 / 3, 100_000);
    expectShare(after, B, 2 / 3, 100_000);
    expect(after.has(C)).toBe(false);
  });

  it('spreads picks instead of sending runs to one destination', async () => {
    const h = await load([row(1, A, { attrs: 'rweight=50' }), row(1, B, { attrs: 'rweight=50' })]);
    const seq = Array.from({ length: 6 }, () => h.current.select(1, 11, KEY)!.uri);
    expect(new Set(seq.slice(0, 2)).size).toBe(2);
    expect(seq.filter((u) => u === A)).toHaveLength(3);
  });
});

describe('hash algorithms (0-3)', () => {
  const rows = () => [row(1, A), row(1, B), row(1, C), row(1, D)];

  it('maps the same key to the same destination, and spreads keys over all of them', async () => {
    const h = await load(rows());
    const first = Array.from({ length: 400 }, (_, i) => h.current.select(1, 'hash-callid', keyFor(i))!.uri);
    const again = Array.from({ length: 400 }, (_, i) => h.current.select(1, 0, keyFor(i))!.uri);
    expect(again).toEqual(first);
    expect(new Set(first).size).toBe(4);
  });

  it("moves only the down destination's keys, and moves them back when it returns", async () => {
    for (const alg of ['hash-callid', 'hash-from', 'hash-to', 'hash-ruri'] as const) {
      const h = await load(rows());
      const before = Array.from({ length: 400 }, (_, i) => h.current.select(1, alg, keyFor(i))!.uri);
      h.current.setState(1, B, 'inactive', 'test');
      const during = Array.from({ length: 400 }, (_, i) => h.current.select(1, alg, keyFor(i))!.uri);
      let moved = 0;
      for (let i = 0; i < 400; i++) {
        if (before[i] === B) {
          expect(during[i]).not.toBe(B);
          moved++;
        } else {
          expect(during[i]).toBe(before[i]);
        }
      }
      expect(moved).toBeGreaterThan(0);
      // the moved keys spread over the remaining destinations, not all onto one
      expect(new Set(during.filter((_, i) => before[i] === B)).size).toBeGreaterThan(1);
      h.current.setState(1, B, 'active', 'test');
      const back = Array.from({ length: 400 }, (_, i) => h.current.select(1, alg, keyFor(i))!.uri);
      expect(back).toEqual(before);
    }
  });

  it('hashes a URI by user, host and port: not by parameters, brackets, host case or port 5060', async () => {
    const h = await load(rows());
    const pick = (fromUri: string) => h.current.select(1, 'hash-from', { ...KEY, fromUri })!.uri;
    const base = pick('sip:alice@example.com');
    for (let i = 0; i < 20; i++) {
      const user = `alice${i}`;
      const p = pick(`sip:${user}@example.com`);
      expect(pick(`<sip:${user}@EXAMPLE.com:5060;transport=udp>`)).toBe(p);
      expect(pick(`sip:${user}@example.com;user=phone?subject=x`)).toBe(p);
      expect(pick(`"Alice ${i}" <sip:${user}@example.com>;tag=${i}`)).toBe(p);
    }
    expect(base).toBeDefined();
    // different users do land on different destinations
    const spread = new Set(Array.from({ length: 50 }, (_, i) => pick(`sip:u${i}@example.com`)));
    expect(spread.size).toBeGreaterThan(1);
  });
});

describe('priority (8)', () => {
  it('picks the highest-priority active destination, the others as failover order', async () => {
    const h = await load([row(1, A, { priority: 1 }), row(1, B, { priority: 10 }), row(1, C, { priority: 5 })]);
    expect(h.current.select(1, 'priority', KEY)!.uri).toBe(B);
    expect(h.current.candidates(1, 8, KEY).map((d) => d.uri)).toEqual([B, C, A]);
    h.current.setState(1, B, 'inactive', 'test');
    expect(h.current.select(1, 'priority', KEY)!.uri).toBe(C);
    expect(h.current.candidates(1, 'priority', KEY).map((d) => d.uri)).toEqual([C, A]);
  });

  it('gives every algorithm a failover list: its pick first, then the rest by priority', async () => {
    const h = await load([row(1, A, { priority: 1 }), row(1, B, { priority: 10 }), row(1, C, { priority: 5 })]);
    const list = h.current.candidates(1, 'round-robin', KEY).map((d) => d.uri);
    expect(list[0]).toBe(B);
    expect(list).toEqual([B, C, A]);
    const second = h.current.candidates(1, 'round-robin', KEY).map((d) => d.uri);
    expect(second).toEqual([C, B, A]);
  });
});

describe('states and selection', () => {
  const states: DestinationState[] = ['inactive', 'disabled', 'probing'];

  it('never picks inactive, disabled or probing destinations, with any algorithm', async () => {
    const h = await load([
      row(2, A, { attrs: 'weight=25;rweight=25' }),
      row(2, B, { attrs: 'weight=25;rweight=25' }),
      row(2, C, { attrs: 'weight=25;rweight=25' }),
      row(2, D, { attrs: 'weight=25;rweight=25' }),
    ]);
    [A, B, C].forEach((u, i) => h.current.setState(2, u, states[i]!, 'test'));
    for (const alg of [0, 1, 2, 3, 4, 6, 8, 9, 11]) {
      for (let i = 0; i < 50; i++) expect(h.current.select(2, alg, keyFor(i))!.uri).toBe(D);
    }
  });

  it('returns null when no destination is active, and for a set that does not exist', async () => {
    const h = await load([row(3, A), row(3, B)]);
    h.current.setState(3, 'all', 'inactive', 'test');
    for (const alg of [0, 1, 2, 3, 4, 6, 8, 9, 11]) expect(h.current.select(3, alg, KEY)).toBeNull();
    expect(h.current.candidates(3, 'priority', KEY)).toEqual([]);
    expect(h.current.select(99, 'round-robin', KEY)).toBeNull();
  });

  it('counts every selection in requestsSent', async () => {
    const h = await load([row(1, A), row(1, B)]);
    for (let i = 0; i < 10; i++) h.current.select(1, 'round-robin', KEY);
    const [a, b] = h.current.set(1)!.destinations;
    expect(a!.stats.requestsSent).toBe(5);
    expect(b!.stats.requestsSent).toBe(5);
  });

  it('throws the usage error for an algorithm it does not know', async () => {
    const h = await load([row(1, A)]);
    expect(() => h.current.select(1, 12, KEY)).toThrow(/parallel forking\) is not supported/);
  });
});
