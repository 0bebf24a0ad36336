/**
 * Validation of one address-table entry as a person types it (`sipctl address add`, imports).
 *
 * The table keeps Kamailio's permissions-module columns (grp, ip_addr, mask, port, tag), and the
 * checks here mirror what that module accepts, with three deliberate differences:
 *  - the default mask is per family (32 for IPv4, 128 for IPv6); Kamailio defaults IPv6 to 32,
 *    which silently admits a /32 when a person meant one host;
 *  - IPv4 must be a plain dotted quad: inet_aton shorthands such as `10.1` (= 10.0.0.1) or
 *    `010.0.0.1` (octal, = 8.0.0.1) are refused rather than guessed;
 *  - host bits set under the mask are cleared and reported in `note`, so what is stored is the
 *    network a lookup will actually match.
 * Every error is a usage error (exit 2) with a stable code and a message saying what would be right.
 */
import ipaddr from 'ipaddr.js';
import { usageError } from '../errors.js';

export interface AddressEntryInput {
  grp: string | number;
  ip: string;
  mask?: string | number;
  port?: string | number;
  tag?: string | null;
}

export interface AddressEntry {
  grp: number;
  /** The network address in canonical text: dotted quad, or RFC 5952 compressed lowercase IPv6. */
  ipAddr: string;
  mask: number;
  /** 0 means any source port. */
  port: number;
  tag: string | null;
  family: 4 | 6;
  /** Set when the input needed a change a person should know about (host bits cleared). */
  note?: string;
}

/** Groups are stored as unsigned 32-bit integers, as Kamailio's `grp` column is. */
export const MAX_GROUP = 0xffffffff;
export const MAX_PORT = 65535;

const EXAMPLES = 'e.g. 192.0.2.10 or 2001:db8::10';

export function validateAddressEntry(input: AddressEntryInput): AddressEntry {
  const grp = parseGroup(input.grp);
  const { text, cidrMask } = splitAddressText(input.ip);
  const addr = parseAddress(text, input.ip);
  const family: 4 | 6 = addr.kind() === 'ipv4' ? 4 : 6;
  const maxMask = family === 4 ? 32 : 128;
  const canonical = addr.toString();

  let mask = maxMask;
  if (cidrMask !== undefined) {
    mask = parseMask(cidrMask, family, canonical);
    if (input.mask !== undefined && input.mask !== '' && parseMask(input.mask, family, canonical) !== mask) {
      throw usageError(
        'E_ACL_BAD_MASK',
        `mask given twice and they differ: ${String(input.ip).trim()} and mask ${String(input.mask)}; give it once`,
      );
    }
  } else if (input.mask !== undefined && input.mask !== '') {
    mask = parseMask(input.mask, family, canonical);
  }

  const port = parsePort(input.port);
  const tag = input.tag === undefined ? null : input.tag;

  const bytes = addr.toByteArray();
  const networkBytes = clearHostBits(bytes, mask);
  const entry: AddressEntry = { grp, ipAddr: canonical, mask, port, tag, family };
  if (!sameBytes(bytes, networkBytes)) {
    entry.ipAddr = ipaddr.fromByteArray(networkBytes).toString();
    entry.note = `${canonical}/${mask} has host bits set; stored as the network ${entry.ipAddr}/${mask}`;
  }
  return entry;
}

/** Accepts `addr`, `[v6addr]` and `addr/len`; returns the address text and the CIDR length text. */
function splitAddressText(raw: string): { text: string; cidrMask?: string } {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw usageError('E_ACL_BAD_ADDRESS', `an address is required (${EXAMPLES})`);
  }
  let text = raw.trim();
  let cidrMask: string | undefined;
  const slash = text.indexOf('/');
  if (slash >= 0) {
    cidrMask = text.slice(slash + 1);
    text = text.slice(0, slash);
  }
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  return cidrMask === undefined ? { text } : { text, cidrMask };
}

function parseAddress(text: string, raw: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const shown = JSON.stringify(String(raw).trim());
  if (text.includes('%')) {
    // A zone index (RFC 4007 §11) names a local interface; it is not part of a peer's address.
    throw usageError(
      'E_ACL_BAD_ADDRESS',
      `${shown} has a zone index (${text.slice(text.indexOf('%'))}); give the address without it`,
    );
  }
  if (text.includes(':')) {
    if (ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text);
    throw usageError('E_ACL_BAD_ADDRESS', `${shown} is not a valid IPv6 address (${EXAMPLES})`);
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (ipaddr.IPv4.isValid(text)) {
    throw usageError(
      'E_ACL_BAD_ADDRESS',
      `${shown} is not a dotted-quad IPv4 address; write all four decimal parts without leading zeros (e.g. 10.0.0.1)`,
    );
  }
  throw usageError('E_ACL_BAD_ADDRESS', `${shown} is not an IPv4 or IPv6 address (${EXAMPLES})`);
}

const DECIMAL = /^-?[0-9]+$/;

/** An integer (possibly negative) from a number or a decimal string; undefined when it is not one. */
function toInteger(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function parseGroup(value: string | number): number {
  const grp = toInteger(value);
  if (grp === undefined || grp < 0 || grp > MAX_GROUP) {
    throw usageError(
      'E_ACL_BAD_GROUP',
      `group ${JSON.stringify(value)} is not a non-negative integer (0-${MAX_GROUP})`,
    );
  }
  return grp;
}

function parseMask(value: string | number, family: 4 | 6, address: string): number {
  const max = family === 4 ? 32 : 128;
  const mask = toInteger(value);
  if (mask === undefined) {
    throw usageError(
      'E_ACL_BAD_MASK',
      `mask ${JSON.stringify(value)} is not an integer; use 0-${max} for IPv${family} address ${address}`,
    );
  }
  if (mask < 0 || mask > max) {
    throw usageError('E_ACL_BAD_MASK', `mask ${mask} is out of range for IPv${family} address ${address} (0-${max})`);
  }
  return mask;
}

function parsePort(value: string | number | undefined): number {
  if (value === undefined || value === '') return 0;
  const port = toInteger(value);
  if (port === undefined || port < 0 || port > MAX_PORT) {
    throw usageError(
      'E_ACL_BAD_PORT',
      `port ${JSON.stringify(value)} is out of range: use an integer 0-${MAX_PORT} (0 means any port)`,
    );
  }
  return port;
}

function clearHostBits(bytes: number[], mask: number): number[] {
  return bytes.map((b, i) => {
    const keep = mask - i * 8;
    if (keep >= 8) return b;
    if (keep <= 0) return 0;
    return b & (0xff << (8 - keep)) & 0xff;
  });
}

function sameBytes(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
