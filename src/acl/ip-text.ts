/**
 * Hand-written address-text parsers for the per-message path.
 *
 * The source of every SIP message arrives as text from Node (`rinfo.address`,
 * `socket.remoteAddress`): a dotted quad, or IPv6 text that may be IPv4-mapped
 * (`::ffff:192.0.2.1` on a dual-stack socket) or carry a zone index (`fe80::1%eth0`).
 * ipaddr.js would do, but it runs several regular expressions and allocates per call; these
 * parsers walk the characters once and write into caller-owned storage, so a lookup
 * allocates nothing. The same parsers read the `ip_addr` column when a table is built, so the
 * table and the lookup can never disagree about what an address means.
 */

/**
 * Strict dotted quad (RFC 791 text form, four decimal parts, no leading zeros: inet_aton's
 * octal and shorthand forms are ambiguous and never produced by Node).
 * Returns the address as an unsigned 32-bit number, or -1 when `s[start, end)` is not one.
 */
export function parseIPv4(s: string, start: number, end: number): number {
  let acc = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (digits === 0 || dots === 3) return -1;
      acc = acc * 256 + part;
      dots++;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits !== 0 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 0x30);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return acc * 256 + part;
}

// Scratch for the eight 16-bit groups; the parser is synchronous, so one per thread is enough.
const groups = new Int32Array(8);

/** Hex digit values by character code, -1 for anything else. */
const HEX = new Int8Array(128).fill(-1);
for (let d = 0; d < 10; d++) HEX[0x30 + d] = d;
for (let d = 0; d < 6; d++) HEX[0x41 + d] = HEX[0x61 + d] = 10 + d;

/**
 * IPv6 text (RFC 4291 §2.2: hex groups, one `::`, an optional dotted-quad tail) into four
 * big-endian 32-bit words in `out`, in one pass. A zone index (`%eth0`, RFC 4007 §11) is
 * skipped when `allowZone` is true (a source address may carry one; the zone is not part of
 * the address) and refused otherwise. Returns false, leaving `out` unspecified, when the text
 * is not IPv6.
 */
export function parseIPv6(s: string, start: number, end: number, out: Uint32Array, allowZone: boolean): boolean {
  if (end - start < 2) return false;
  let n = 0; // groups written
  let gap = -1; // index in `groups` where `::` stands
  let i = start;
  let c = s.charCodeAt(i);
  if (c === 0x3a /* : */) {
    if (s.charCodeAt(i + 1) !== 0x3a) return false;
    gap = 0;
    i += 2;
    c = i < end ? s.charCodeAt(i) : 0;
  }
  while (i < end && c !== 0x25 /* % */) {
    const groupStart = i;
    let value = 0;
    for (;;) {
      const h = c < 128 ? HEX[c] : -1;
      if (h < 0) break;
      value = (value << 4) | h;
      if (++i === end) break;
      c = s.charCodeAt(i);
    }
    if (i < end && c === 0x2e /* . */) {
      // RFC 4291 §2.2 form 3: the low 32 bits as a dotted quad, only as the last part.
      let tailEnd = i;
      while (tailEnd < end && s.charCodeAt(tailEnd) !== 0x25) tailEnd++;
      const v4 = n > 6 ? -1 : parseIPv4(s, groupStart, tailEnd);
      if (v4 < 0) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      i = tailEnd;
      c = 0x25;
      break;
    }
    const digits = i - groupStart;
    if (digits === 0 || digits > 4 || n === 8) return false;
    groups[n++] = value;
    if (i === end || c === 0x25) break;
    if (c !== 0x3a) return false;
    if (++i === end) return false; // a single trailing ':'
    c = s.charCodeAt(i);
    if (c === 0x3a) {
      if (gap >= 0) return false;
      gap = n;
      c = ++i < end ? s.charCodeAt(i) : 0;
    } else if (c === 0x25) {
      return false; // ':' before the zone
    }
  }
  if (i < end) {
    // At '%': the zone index, which must not be empty.
    if (!allowZone || i === end - 1) return false;
  }

  if (gap < 0) {
    if (n !== 8) return false;
  } else {
    if (n > 7) return false; // `::` stands for at least one group
    const tail = n - gap;
    for (let k = 1; k <= tail; k++) groups[8 - k] = groups[n - k];
    for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  }
  out[0] = ((groups[0] << 16) | groups[1]) >>> 0;
  out[1] = ((groups[2] << 16) | groups[3]) >>> 0;
  out[2] = ((groups[4] << 16) | groups[5]) >>> 0;
  out[3] = ((groups[6] << 16) | groups[7]) >>> 0;
  return true;
}

/** Dotted-quad text of an unsigned 32-bit address. */
export function formatIPv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}
