/**
 * "Is this URI / Via us?" — Kamailio's `myself`. A URI or Via sent-by is ours when its host
 * is one of our listen addresses (or a configured alias name) and its port is one of the
 * ports we listen on for that address (the scheme's default port when none is given:
 * RFC 3261 §19.1.2 — 5060 for sip, 5061 for sips).
 */
import type { Listener, Protocol } from '../transport/types.js';
import type { SipUri } from '../sip/uri.js';
import type { Via } from '../sip/values.js';

export class LocalAddresses {
  /** "host:port" → true, for every listener (and every alias on every listener port). */
  private readonly hostPorts = new Set<string>();
  private readonly ports = new Set<number>();
  /** port → the host names and addresses that mean us on that port. */
  private readonly hostsByPort = new Map<number, Set<string>>();

  constructor(readonly listeners: readonly Listener[], readonly aliases: readonly string[] = []) {
    for (const l of listeners) {
      this.ports.add(l.port);
      this.hostPorts.add(`${normalizeHost(l.address)}:${l.port}`);
    }
    for (const a of aliases) {
      const { host, port } = splitAlias(a);
      if (port !== undefined) {
        this.hostPorts.add(`${host}:${port}`);
        this.ports.add(port);
      } else for (const p of this.ports) this.hostPorts.add(`${host}:${p}`);
    }
    for (const key of this.hostPorts) {
      const colon = key.lastIndexOf(':');
      const port = Number(key.slice(colon + 1));
      let hosts = this.hostsByPort.get(port);
      if (hosts === undefined) this.hostsByPort.set(port, (hosts = new Set()));
      hosts.add(key.slice(0, colon));
    }
  }

  /**
   * Does buf[start, end) contain ":PORT" for one of our ports? Our own Vias always carry
   * our port, so a Via value without one has been nowhere near us and needs no parsing.
   * One pass over the bytes: O(end - start), whatever they hold.
   */
  mentionsOurPort(buf: Buffer, start: number, end: number): boolean {
    const ports = this.ports;
    let i = start;
    while (i < end) {
      if (buf[i++] !== 58 /* : */) continue;
      let n = 0;
      let digits = 0;
      while (i < end && digits < 6) {
        const c = buf[i]!;
        if (c < 48 || c > 57) break;
        n = n * 10 + (c - 48);
        digits++;
        i++;
      }
      if (digits > 0 && digits < 6 && ports.has(n)) return true;
    }
    return false;
  }

  isLocal(host: string, port: number): boolean {
    // Most URIs and Vias are not ours, and most of those not even on our ports: answer that
    // without building a key; then try the host as written (parsed hosts are lower case,
    // without brackets) before normalizing it.
    const hosts = this.hostsByPort.get(port);
    if (hosts === undefined) return false;
    return hosts.has(host) || hosts.has(normalizeHost(host));
  }

  isLocalUri(uri: SipUri): boolean {
    if (uri.scheme === 'tel' || uri.scheme === 'absolute') return false;
    // maddr overrides the host for routing (§19.1.1); it is rarely used, but honour it.
    const host = uri.params.get('maddr') || uri.host; // an empty maddr is no maddr
    const port = uri.port ?? (uri.scheme === 'sips' ? 5061 : 5060);
    return this.isLocal(host, port);
  }

  isLocalVia(via: Via): boolean {
    const port = via.port ?? (via.transport === 'TLS' ? 5061 : 5060);
    return this.isLocal(via.host, port);
  }

  /** The listener whose address and port a URI names (used for double Record-Route). */
  listenerFor(host: string, port: number, protocol?: Protocol): Listener | undefined {
    const h = normalizeHost(host);
    return this.listeners.find((l) => normalizeHost(l.address) === h && l.port === port && (protocol === undefined || l.protocol === protocol));
  }
}

function normalizeHost(host: string): string {
  const h = host.charCodeAt(0) === 91 ? host.slice(1, -1) : host;
  return plainAddress(h);
}

/**
 * An address as one text per peer: lower case, and an IPv4-mapped IPv6 address (what a
 * dual-stack socket reports for an IPv4 peer, `::ffff:192.0.2.1`) as the IPv4 address.
 */
export function plainAddress(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && a.indexOf('.') > 0 ? a.slice(7) : a;
}

export function sameAddress(a: string, b: string): boolean {
  return a === b || plainAddress(a) === plainAddress(b);
}

function splitAlias(alias: string): { host: string; port: number | undefined } {
  const a = alias.trim().toLowerCase();
  if (a.charCodeAt(0) === 91) {
    const close = a.indexOf(']');
    const port = a.slice(close + 1).startsWith(':') ? Number(a.slice(close + 2)) : undefined;
    return { host: a.slice(1, close), port };
  }
  const colon = a.lastIndexOf(':');
  if (colon > 0 && a.indexOf(':') === colon) return { host: a.slice(0, colon), port: Number(a.slice(colon + 1)) };
  return { host: a, port: undefined };
}
