/**
 * A fast, non-cryptographic 64-bit string hash (two independent 32-bit FNV-1a-style lanes
 * with murmur-style finalization). Used for stateless branches and local To tags, where the
 * requirement is "same input → same output, different inputs → different outputs with
 * overwhelming probability", not secrecy. It runs once or twice per message, so it works on
 * UTF-16 code units directly and allocates nothing but the result string.
 */
export class Hasher {
  private h1 = 0x811c9dc5 | 0;
  private h2 = 0x01000193 ^ 0x5bd1e995;

  add(s: string): this {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    // a separator, so that ("ab","c") and ("a","bc") differ
    this.h1 = Math.imul(h1 ^ 0xff, 0x01000193);
    this.h2 = Math.imul(h2 ^ 0xff, 0x5bd1e995);
    return this;
  }

  /** The bytes buf[start, end) as latin1 characters: the same as add(buf.latin1Slice(start, end)), without the string. */
  addBytes(buf: Buffer, start: number, end: number): this {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    this.h1 = Math.imul(h1 ^ 0xff, 0x01000193);
    this.h2 = Math.imul(h2 ^ 0xff, 0x5bd1e995);
    return this;
  }

  addNumber(n: number): this {
    return this.add(String(n));
  }

  /**
   * 64 bits as 14 base-32 characters, 7 per 32-bit half (token-safe for branch and tag
   * parameters). By table rather than toString(36) + padStart: this runs up to four times per
   * request, and the table is several times faster.
   */
  digest(): string {
    let a = this.h1;
    let b = this.h2;
    a ^= a >>> 16; a = Math.imul(a, 0x85ebca6b); a ^= a >>> 13; a = Math.imul(a, 0xc2b2ae35); a ^= a >>> 16;
    b ^= b >>> 16; b = Math.imul(b, 0x85ebca6b); b ^= b >>> 13; b = Math.imul(b, 0xc2b2ae35); b ^= b >>> 16;
    a = (a ^ Math.imul(b, 0x9e3779b1)) >>> 0;
    b = b >>> 0;
    return base32Half(a) + base32Half(b);
  }
}

const BASE32 = '0123456789abcdefghijklmnopqrstuv';
/** Every 10-bit value as two base-32 characters. */
const PAIRS: readonly string[] = Array.from({ length: 1024 }, (_, i) => BASE32[i >>> 5]! + BASE32[i & 31]!);

/** 32 bits as 7 base-32 characters: 10 + 10 + 10 + 2 bits. */
function base32Half(x: number): string {
  return PAIRS[x >>> 22]! + PAIRS[(x >>> 12) & 1023]! + PAIRS[(x >>> 2) & 1023]! + BASE32[x & 3]!;
}
