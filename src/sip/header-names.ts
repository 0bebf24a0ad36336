/**
 * Header names: case-insensitive (RFC 3261 §7.3.1), with compact forms (§7.3.3 and the
 * extensions that registered one). Names are canonicalized to their full lower-case form so
 * that `v` and `Via` and `VIA` are the same field.
 *
 * The parser identifies well-known names straight from the bytes, without allocating a
 * string per header line: this runs for every header of every message.
 */

/** Compact form → full name. */
export const COMPACT_FORMS: Readonly<Record<string, string>> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event', // RFC 6665
  u: 'allow-events', // RFC 6665
  r: 'refer-to', // RFC 3515
  b: 'referred-by', // RFC 3892
  x: 'session-expires', // RFC 4028
  y: 'identity', // RFC 8224
  j: 'reject-contact', // RFC 3841
  a: 'accept-contact', // RFC 3841
  d: 'request-disposition', // RFC 3841
};

/** How a header name is written when sipctl adds the header itself. */
const DISPLAY_NAMES: Readonly<Record<string, string>> = {
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'www-authenticate': 'WWW-Authenticate',
  'mime-version': 'MIME-Version',
  rseq: 'RSeq',
  rack: 'RAck',
};

const WELL_KNOWN = [
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'max-forwards', 'route', 'record-route',
  'content-length', 'content-type', 'user-agent', 'allow', 'supported', 'require',
  'proxy-require', 'unsupported', 'expires', 'subject', 'content-encoding', 'content-disposition',
  'content-language', 'event', 'allow-events', 'refer-to', 'referred-by', 'session-expires',
  'min-se', 'identity', 'path', 'accept', 'accept-encoding', 'accept-language', 'server', 'date',
  'authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate',
  'p-asserted-identity', 'p-preferred-identity', 'privacy', 'reason', 'organization',
  'call-info', 'alert-info', 'error-info', 'in-reply-to', 'mime-version', 'priority',
  'reply-to', 'retry-after', 'timestamp', 'warning', 'replaces', 'rseq', 'rack',
  'subscription-state', 'min-expires', 'reject-contact', 'accept-contact', 'request-disposition',
];

/**
 * Headers whose values are comma-separated lists (RFC 3261 §7.3.1: `#(...)` in the
 * grammar), which headerValues() splits. Contact is special-cased for `*`.
 */
export const LIST_HEADERS: ReadonlySet<string> = new Set([
  'via', 'route', 'record-route', 'contact', 'path', 'allow', 'supported', 'require',
  'proxy-require', 'unsupported', 'accept', 'accept-encoding', 'accept-language',
  'content-encoding', 'content-language', 'allow-events', 'in-reply-to', 'call-info',
  'alert-info', 'error-info', 'warning', 'p-asserted-identity', 'p-preferred-identity',
  'reject-contact', 'accept-contact', 'request-disposition', 'privacy', 'reason',
]);

// Buckets of well-known names by length, as byte arrays, for allocation-free matching.
const BY_LENGTH: Array<Array<{ name: string; bytes: Uint8Array }>> = [];
for (const name of WELL_KNOWN) {
  const bucket = (BY_LENGTH[name.length] ??= []);
  bucket.push({ name, bytes: Uint8Array.from(Buffer.from(name, 'latin1')) });
}
const COMPACT_BY_BYTE: Array<string | undefined> = new Array(128).fill(undefined);
for (const [k, v] of Object.entries(COMPACT_FORMS)) {
  COMPACT_BY_BYTE[k.charCodeAt(0)] = v;
  COMPACT_BY_BYTE[k.toUpperCase().charCodeAt(0)] = v;
}

/** Canonical (full, lower-case) name of the header name in buf[start, end). */
export function canonicalNameFromBytes(buf: Buffer, start: number, end: number): string {
  const len = end - start;
  if (len === 1) {
    const c = buf[start]!;
    const full = c < 128 ? COMPACT_BY_BYTE[c] : undefined;
    // Only A-Z has a lower case: `c | 0x20` would turn '_' into DEL.
    return full ?? String.fromCharCode(c >= 65 && c <= 90 ? c | 0x20 : c);
  }
  const bucket = BY_LENGTH[len];
  if (bucket !== undefined) {
    outer: for (const cand of bucket) {
      const b = cand.bytes;
      for (let i = 0; i < len; i++) {
        let c = buf[start + i]!;
        if (c >= 65 && c <= 90) c |= 0x20;
        if (c !== b[i]) continue outer;
      }
      return cand.name;
    }
  }
  return buf.latin1Slice(start, end).toLowerCase();
}

/** Canonical name of a name given as text ("Via", "v", "CALL-ID"). */
export function canonicalName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.length === 1 ? (COMPACT_FORMS[lower] ?? lower) : lower;
}

/** How sipctl writes a header name it adds: "Record-Route", "Call-ID", "CSeq". */
export function displayName(canonical: string): string {
  let d = displayCache.get(canonical);
  if (d === undefined) {
    d = DISPLAY_NAMES[canonical] ?? canonical.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
    if (displayCache.size < 1000) displayCache.set(canonical, d);
  }
  return d;
}
const displayCache = new Map<string, string>();

/**
 * How an edit writes a header name (displayName), or undefined when the name is not a token
 * (RFC 3261 §25.1) and so cannot be written at all. One cached lookup for the names the
 * proxy writes on every message.
 */
export function writableName(canonical: string): string | undefined {
  let d = writableCache.get(canonical);
  if (d === undefined) {
    if (!isToken(canonical)) return undefined;
    d = displayName(canonical);
    if (writableCache.size < 1000) writableCache.set(canonical, d);
  }
  return d;
}
const writableCache = new Map<string, string>();

/** RFC 3261 §25.1 token characters (1 = allowed), for header names and methods. */
export const TOKEN_CHAR = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~") TOKEN_CHAR[ch.charCodeAt(0)] = 1;
const TOKEN = TOKEN_CHAR;

export function isTokenBytes(buf: Buffer, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c >= 128 || TOKEN[c] !== 1) return false;
  }
  return true;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] !== 1) return false;
  }
  return true;
}
