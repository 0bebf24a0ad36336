import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Hasher } from '../../src/proxy/hash.js';

// The digest is the stateless branch's transaction part and our local To tags: 14 token
// characters (RFC 3261 §25.1 `token`), the same for the same input, different for different
// inputs (transactionPartOf in via.ts cuts exactly 14 characters).
describe('Hasher.digest', () => {
  it('is 14 lower-case base-32 characters, and the same for the same input', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 5 }), (parts) => {
        const one = new Hasher();
        const two = new Hasher();
        for (const p of parts) {
          one.add(p);
          two.add(p);
        }
        const d = one.digest();
        expect(d).toMatch(/^[0-9a-v]{14}$/);
        expect(two.digest()).toBe(d);
      }),
    );
  });

  it('gives 100,000 different inputs 100,000 different digests, every character used', () => {
    const seen = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const d = new Hasher().add(`call-${i}@example.com`).addNumber(i % 7).digest();
      seen.add(d);
      for (const c of d) chars.add(c);
    }
    expect(seen.size).toBe(100_000);
    expect(chars.size).toBe(32);
  });

  it('separates its parts: ("ab","c") and ("a","bc") differ', () => {
    expect(new Hasher().add('ab').add('c').digest()).not.toBe(new Hasher().add('a').add('bc').digest());
  });
});
