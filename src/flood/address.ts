/**
 * The address a person types for `sipctl flood unblock IP`, as the text the guard keys its
 * sources by: the transport's form of a peer address (a dotted quad; RFC 5952 compressed
 * lower-case IPv6; an IPv4-mapped IPv6 address as the IPv4 address it maps).
 */
import ipaddr from 'ipaddr.js';
import { usageError } from '../errors.js';

const EXAMPLES = 'e.g. 192.0.2.10 or 2001:db8::10';

/** Canonical source-address text, or a usage error (exit 2) saying what is wrong. */
export function parseSourceAddress(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw usageError('E_FLOOD_BAD_ADDRESS', `a source address is required (${EXAMPLES})`);
  }
  let text = raw.trim();
  const shown = JSON.stringify(text);
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (text.includes('/')) {
    throw usageError('E_FLOOD_BAD_ADDRESS', `${shown} is a network; flood control blocks single addresses: give one (${EXAMPLES})`);
  }
  if (text.includes(':')) {
    if (text.includes('%') || !ipaddr.IPv6.isValid(text)) {
      throw usageError('E_FLOOD_BAD_ADDRESS', `${shown} is not an IPv6 address (${EXAMPLES})`);
    }
    const v6 = ipaddr.IPv6.parse(text);
    return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
  }
  // Four decimal parts only: `10.1` or `010.0.0.1` would be guessed at by inet_aton.
  if (!ipaddr.IPv4.isValidFourPartDecimal(text)) {
    throw usageError('E_FLOOD_BAD_ADDRESS', `${shown} is not an IPv4 or IPv6 address (${EXAMPLES})`);
  }
  return ipaddr.IPv4.parse(text).toString();
}
