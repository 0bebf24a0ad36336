/**
 * `--listen` specs: `PROTO:IP:PORT`, the way Kamailio's `listen=` parameter spells sockets
 * (`udp:127.0.0.1:5060`, `tcp:[::1]:5060`).
 *
 * Defaults: the protocol may be left out and means `udp` (RFC 3261 §18: UDP is the
 * transport every SIP element supports; note that Kamailio, given no protocol, listens on
 * every enabled protocol; here a socket is one protocol, so `tcp` must be asked for);
 * the port may be left out and means 5060 (RFC 3261 §19.1.2). Port 0 asks the system for
 * a free port (the bound port is reported on the Listener).
 *
 * Only IP literals are accepted: a listener needs no DNS, and a name that resolves to
 * several addresses would make "which socket" ambiguous. IPv6 literals go in brackets
 * (`[::1]:5060`), since `::1:5060` is itself a valid IPv6 address.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { usageError } from '../errors.js';
import type { ListenSpec, Protocol } from './types.js';

export const DEFAULT_SIP_PORT = 5060;
export const DEFAULT_PROTOCOL: Protocol = 'udp';

const EXAMPLES = 'e.g. udp:127.0.0.1:5060 or tcp:[::1]:5060';

export function parseListenSpec(text: string): ListenSpec {
  const spec = text.trim();
  const bad = (why: string): never => {
    throw usageError('E_CONFIG_BAD_LISTEN', `listen address '${text}' is not PROTO:IP:PORT (${why}), ${EXAMPLES}`);
  };
  if (spec === '') bad('it is empty');
  if (isIPv6(spec)) bad(`IPv6 addresses go in brackets: ${DEFAULT_PROTOCOL}:[${spec}]:${DEFAULT_SIP_PORT}`);

  let protocol: Protocol = DEFAULT_PROTOCOL;
  let rest = spec;
  const firstColon = spec.indexOf(':');
  if (firstColon > 0 && /^[a-z]+$/i.test(spec.slice(0, firstColon))) {
    const name = spec.slice(0, firstColon).toLowerCase();
    if (name !== 'udp' && name !== 'tcp') {
      bad(`protocol '${name}' is not supported; use udp or tcp`);
    }
    protocol = name as Protocol;
    rest = spec.slice(firstColon + 1);
  }

  let address: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) bad(`'${rest}' opens '[' but never closes it`);
    address = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) bad(`unexpected '${after}' after ']'; the port follows as ]:PORT`);
      portText = after.slice(1);
    }
    if (!isIPv6(address)) bad(`'${address}' in brackets is not an IPv6 address`);
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) {
      bad(isIPv6(rest) ? `IPv6 addresses go in brackets: ${protocol}:[${rest}]:${DEFAULT_SIP_PORT}` : `'${rest}' is not IP:PORT`);
    }
    const colon = rest.indexOf(':');
    address = colon === -1 ? rest : rest.slice(0, colon);
    portText = colon === -1 ? undefined : rest.slice(colon + 1);
    if (address === '') bad('the IP address is missing');
    if (!isIPv4(address)) {
      bad(isIPv6(address) ? `IPv6 addresses go in brackets: ${protocol}:[${address}]` : `'${address}' is not an IP address`);
    }
  }

  let port = DEFAULT_SIP_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      bad(`port '${portText}' is not a number from 0 to 65535`);
    }
    port = Number(portText);
  }

  const family: 4 | 6 = address.includes(':') ? 6 : 4;
  return { protocol, address: family === 6 ? address.toLowerCase() : address, port, family };
}

/** The spec as a person would type it: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`. */
export function formatListenSpec(spec: Pick<ListenSpec, 'protocol' | 'address' | 'port'>): string {
  const host = spec.address.includes(':') ? `[${spec.address}]` : spec.address;
  return `${spec.protocol}:${host}:${spec.port}`;
}
