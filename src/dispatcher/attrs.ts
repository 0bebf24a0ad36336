/**
 * The `attrs` column: `name1=value1;...;nameN=valueN`, as in Kamailio's dispatcher list.
 * Only keys sipctl acts on or shows are accepted, so that a typo (`wieght=50`) is an error
 * the admin sees instead of an attribute silently ignored.
 */
import { SipctlError } from '../errors.js';
import { parseUri } from '../sip/uri.js';
import type { DestinationAttrs } from './types.js';

export const KNOWN_ATTRS = ['weight', 'rweight', 'duid', 'maxload', 'ping_from'] as const;

function badAttrs(text: string, why: string): SipctlError {
  return new SipctlError('E_DS_BAD_ATTRS', `attrs '${text}': ${why}`, { usage: true });
}

function integerIn(text: string, key: string, value: string, min: number, max: number): number {
  if (!/^[0-9]{1,9}$/.test(value)) throw badAttrs(text, `${key} must be an integer ${min}..${max}, not '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw badAttrs(text, `${key} must be an integer ${min}..${max}, not ${n}`);
  return n;
}

/**
 * Parses and validates an attrs string. Empty → {}. Throws SipctlError E_DS_BAD_ATTRS
 * (a usage error) naming the bad key or value and listing the known keys.
 */
export function parseAttrs(text: string): DestinationAttrs {
  const attrs: DestinationAttrs = {};
  const trimmed = text.trim();
  if (trimmed === '') return attrs;
  for (const part of trimmed.split(';')) {
    const item = part.trim();
    if (item === '') continue; // tolerate a trailing ';' (Kamailio writes one)
    const eq = item.indexOf('=');
    if (eq <= 0) throw badAttrs(text, `'${item}' is not name=value (known names: ${KNOWN_ATTRS.join(', ')})`);
    const key = item.slice(0, eq).trim().toLowerCase();
    const value = item.slice(eq + 1).trim();
    switch (key) {
      case 'weight':
        // Kamailio: "the percent of calls to be sent to that gateway", 0..100.
        attrs.weight = integerIn(text, key, value, 0, 100);
        break;
      case 'rweight':
        // Kamailio: 1..100 (a host outside it is left out of relative weight distribution;
        // here it is an error so the admin notices).
        attrs.rweight = integerIn(text, key, value, 1, 100);
        break;
      case 'maxload':
        attrs.maxload = integerIn(text, key, value, 0, 1_000_000_000);
        break;
      case 'duid':
        if (value === '') throw badAttrs(text, 'duid must not be empty');
        attrs.duid = value;
        break;
      case 'ping_from': {
        try {
          const u = parseUri(value);
          if (u.scheme === 'tel') throw new Error('tel');
        } catch {
          throw badAttrs(text, `ping_from must be a sip: URI, not '${value}'`);
        }
        attrs.ping_from = value;
        break;
      }
      default:
        throw badAttrs(text, `unknown attribute '${key}' (known: ${KNOWN_ATTRS.join(', ')})`);
    }
  }
  return attrs;
}
