/**
 * Destination URIs: what a dispatcher row's `destination` may say, and what it means for
 * sending. Transport from `;transport=` (udp default, RFC 3261 §18.1.1 / RFC 3263 §4.1);
 * sips: would need TLS, which sipctl has no transport for yet, so it is refused by name.
 */
import { SipctlError } from '../errors.js';
import { parseUri, type SipUri } from '../sip/uri.js';
import type { Protocol } from '../transport/types.js';

export interface DestinationUri {
  parsed: SipUri;
  /** Transport named by the URI, or undefined (RFC 3263 then decides: NAPTR, else udp). */
  explicitTransport: Protocol | undefined;
  /** The canonical text used to recognise the same destination across reloads. */
  normalized: string;
}

function badUri(text: string, why: string): SipctlError {
  return new SipctlError('E_DS_BAD_URI', `destination '${text}': ${why}`, { usage: true });
}

/** Throws SipctlError (usage) E_DS_BAD_URI / E_DS_SIPS_UNSUPPORTED with a fix-it message. */
export function parseDestinationUri(text: string): DestinationUri {
  let parsed: SipUri;
  try {
    parsed = parseUri(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw badUri(text, `not a SIP URI (${why}); write it like sip:10.0.0.5:5060 or sip:pbx.example.com;transport=tcp`);
  }
  if (parsed.scheme === 'sips') {
    throw new SipctlError(
      'E_DS_SIPS_UNSUPPORTED',
      `destination '${text}': sips: needs TLS, which sipctl does not support yet; use sip:...;transport=tcp or sip:... (udp)`,
      { usage: true },
    );
  }
  if (parsed.scheme !== 'sip') throw badUri(text, `a destination must be a sip: URI, not ${parsed.scheme}:`);
  if (parsed.headers.size > 0) {
    // RFC 3261 §19.1.5: headers are not allowed in a Request-URI, and the probe's R-URI is this URI.
    throw badUri(text, 'URI headers (?name=value) are not allowed in a destination');
  }
  let explicitTransport: Protocol | undefined;
  const t = parsed.transport;
  if (t !== undefined) {
    if (t === 'udp' || t === 'tcp') explicitTransport = t;
    else throw badUri(text, `transport=${t} is not supported (udp or tcp)`);
    parsed.params.set('transport', t);
  }
  return { parsed, explicitTransport, normalized: parsed.toString() };
}

/** The identity of a destination across reloads: setid + normalized URI. */
export function destinationKey(setid: number, normalizedUri: string): string {
  return `${setid}|${normalizedUri}`;
}
