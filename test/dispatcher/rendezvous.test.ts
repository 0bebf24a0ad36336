/**
 * Consistent hashing for algorithms 0-3 (issue 12): weighted rendezvous hashing. Measured
 * over 20,000 keys: when a destination goes down only its keys move, and they spread over the
 * others in proportion to their weights; a destination added takes only its share.
 */
import { describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import type { DispatcherRow } from '../../src/dispatcher/types.js';
import { hashString, rehash } from '../../src/dispatcher/hash.js';
import { FakeClock, keyFor, row } from './helpers.js';

const N = 20_000;
const URIS = ['sip:10.0.1.1:5060', 'sip:10.0.1.2:5060', 'sip:10.0.1.3:5060', 'sip:10.0.1.4:5060', 'sip:10.0.1.5:5060'];

async function load(rows: DispatcherRow[]) {
  const holder = new DispatcherHolder({ clock: new FakeClock() });
  await holder.reload(rows);
  return holder;
}

function picks(h: DispatcherHolder, alg: 0 | 1 | 2 | 3): string[] {
  return Array.from({ length: N }, (_, i) => h.current.select(1, alg, keyFor(i))!.uri);
}

function shares(list: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const u of list) m.set(u, (m.get(u) ?? 0) + 1);
  for (const [k, v] of m) m.set(k, v / list.length);
  return m;
}

describe('weighted rendezvous hashing (algorithms 0-3)', () => {
  it('with equal weights each destination gets a fifth of the keys (±2 %)', async () => {
    const h = await load(URIS.map((u) => row(1, u)));
    for (const alg of [0, 1, 2, 3] as const) {
      const s = shares(picks(h, alg));
      for (const u of URIS) expect(Math.abs(s.get(u)! - 0.2)).toBeLessThanOrEqual(0.02);
    }
  });

  it('equal weights pick what the weighted formula picks (that path only skips the logarithm)', async () => {
    // The formula of set.ts byHash: score = -weight / ln(u), u from the key hash and the
    // destination's seed; the highest wins, the first on a tie.
    for (const attrs of [undefined, 'weight=7'] as const) {
      const h = await load(URIS.map((u) => row(1, u, attrs === undefined ? {} : { attrs })));
      const dests = h.current.set(1)!.destinations;
      for (let i = 0; i < 3000; i++) {
        const key = keyFor(i);
        const hk = hashString(key.callId);
        let best = '';
        let bestScore = -Infinity;
        for (const d of dests) {
          const u = (rehash((hk ^ hashString(d.key)) >>> 0) + 0.5) / 4294967296;
          const score = -7 / Math.log(u);
          if (score > bestScore) {
            bestScore = score;
            best = d.uri;
          }
        }
        expect(h.current.select(1, 0, key)!.uri).toBe(best);
      }
    }
  });

  it("a destination down: only its keys move (moved fraction ≤ its share + 2 %), spread in proportion to the others' weights", async () => {
    const weights = [10, 20, 30, 40]; // and the fifth, the one that goes down, weight 25
    const rows = URIS.map((u, i) => row(1, u, { attrs: weights[i] ? `weight=${weights[i]}` : 'weight=25' }));
    const h = await load(rows);
    const down = URIS[4]!;
    const before = picks(h, 0);
    const share = shares(before).get(down)!;
    // weight 25 of 125 in all
    expect(Math.abs(share - 25 / 125)).toBeLessThanOrEqual(0.02);
    h.current.setState(1, down, 'inactive', 'test');
    const after = picks(h, 0);
    let moved = 0;
    const movedTo = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      if (before[i] !== after[i]) {
        moved++;
        expect(before[i]).toBe(down);
        movedTo.set(after[i]!, (movedTo.get(after[i]!) ?? 0) + 1);
      }
    }
    expect(moved / N).toBeLessThanOrEqual(share + 0.02);
    expect(moved / N).toBeGreaterThanOrEqual(share - 0.02);
    // Spread: destination i gets weights[i] / 100 of the moved keys (±2 % of all moved keys).
    for (let i = 0; i < 4; i++) {
      expect(Math.abs((movedTo.get(URIS[i]!) ?? 0) / moved - weights[i]! / 100)).toBeLessThanOrEqual(0.02);
    }
    // And back when it returns.
    h.current.setState(1, down, 'active', 'test');
    expect(picks(h, 0)).toEqual(before);
  });

  it('a destination added takes only its share, from every other one', async () => {
    const h4 = await load(URIS.slice(0, 4).map((u) => row(1, u)));
    const before = picks(h4, 1);
    const h5 = await load(URIS.map((u) => row(1, u)));
    const after = picks(h5, 1);
    let moved = 0;
    const movedFrom = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      if (before[i] !== after[i]) {
        moved++;
        expect(after[i]).toBe(URIS[4]);
        movedFrom.set(before[i]!, (movedFrom.get(before[i]!) ?? 0) + 1);
      }
    }
    expect(moved / N).toBeLessThanOrEqual(0.2 + 0.02);
    expect(moved / N).toBeGreaterThanOrEqual(0.2 - 0.02);
    for (let i = 0; i < 4; i++) expect(Math.abs((movedFrom.get(URIS[i]!) ?? 0) / moved - 0.25)).toBeLessThanOrEqual(0.02);
  });

  it('does not depend on the order of the rows', async () => {
    const a = await load(URIS.map((u) => row(1, u)));
    const b = await load([...URIS].reverse().map((u) => row(1, u)));
    expect(picks(b, 3)).toEqual(picks(a, 3));
  });
});
