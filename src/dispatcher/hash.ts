/**
 * String hashes for the hashing algorithms (Kamailio algorithms 0-3). Per message, so:
 * one pass over the string, no allocation, no regex.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over UTF-16 code units, as an unsigned 32-bit integer. */
export function hashString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * Hash of a SIP URI's identity, the way Kamailio's ds_hash_fromuri/touri/ruri see it:
 * user, host and port, not the scheme, parameters or headers; port 5060 counts as no port.
 * Accepts a bare URI or a name-addr (`"A" <sip:a@b>;tag=x`): it stops at the first
 * ';', '?' or '>' after the host. The host part is folded to lower case (RFC 3261 §19.1.4).
 */
export function hashUri(s: string): number {
  const n = s.length;
  // A name-addr ("Alice" <sip:...>;tag=x): the URI is inside the brackets.
  const lt = s.indexOf('<');
  let i = lt >= 0 ? lt + 1 : 0;
  while (i < n && s.charCodeAt(i) === 32) i++;
  // Skip a scheme: "sip:", "sips:", "tel:" (a ':' within the first 5 characters).
  for (let j = i; j < n && j < i + 5; j++) {
    if (s.charCodeAt(j) === 58 /* : */) {
      i = j + 1;
      break;
    }
  }
  // Is there a user part? Only if an '@' comes before the first ';' '?' '>'.
  let hostStart = i;
  for (let j = i; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 59 || c === 63 || c === 62) break;
    if (c === 64 /* @ */) {
      hostStart = j + 1;
      break;
    }
  }
  let end = n;
  let bracket = false;
  let portColon = -1;
  for (let j = hostStart; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 91 /* [ */) bracket = true;
    else if (c === 93 /* ] */) bracket = false;
    else if (c === 58 /* : */ && !bracket) portColon = j;
    else if (c === 59 || c === 63 || c === 62) {
      end = j;
      break;
    }
  }
  if (portColon >= 0 && end - portColon === 5 && s.startsWith('5060', portColon + 1)) end = portColon;
  let h = FNV_OFFSET;
  for (let j = i; j < end; j++) {
    let c = s.charCodeAt(j);
    if (j >= hostStart && c >= 65 && c <= 90) c += 32;
    h ^= c;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** A second, independent-looking hash of a hash (murmur3 finaliser), for re-picks. */
export function rehash(h: number): number {
  let x = (h ^ 0x9e3779b9) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
