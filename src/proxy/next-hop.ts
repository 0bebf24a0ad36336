/**
 * Turning a next-hop URI into a Target (RFC 3261 §16.6 step 7, §18.1.1).
 *
 * Dispatcher destinations and --forward targets are resolved when loaded; what arrives in a
 * Route or Request-URI of an in-dialog request is almost always an IP literal (a Contact or a
 * Record-Route). When it is a host name, it is looked up off the hot path (A/AAAA through the
 * system resolver) and cached for `ttlMs`; the message waits for the answer, nothing else does.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { SipUri } from '../sip/uri.js';
import type { Protocol, Target } from '../transport/types.js';

export type NextHop =
  | { kind: 'target'; target: Target }
  | { kind: 'resolve'; host: string; protocol: Protocol; port: number }
  | { kind: 'unsupported'; why: string };

/** Where a URI says to send (maddr, host, port, transport), without any lookup. */
export function nextHopOf(uri: SipUri): NextHop {
  if (uri.scheme === 'tel' || uri.scheme === 'absolute') return { kind: 'unsupported', why: `a ${uri.scheme} URI is not a next hop` };
  if (uri.scheme === 'sips') return { kind: 'unsupported', why: 'sips (TLS) is not supported' };
  const t = uri.transport;
  let protocol: Protocol;
  if (t === undefined || t === 'udp') protocol = 'udp';
  else if (t === 'tcp') protocol = 'tcp';
  else return { kind: 'unsupported', why: `transport ${t} is not supported` };
  const host = uri.params.get('maddr') || uri.host; // an empty maddr is no maddr
  if (host.length === 0) return { kind: 'unsupported', why: 'the URI has no host' };
  const port = uri.port ?? 5060;
  if (isIP(host) !== 0) return { kind: 'target', target: { protocol, address: host, port } };
  return { kind: 'resolve', host, protocol, port };
}

export class NameCache {
  private readonly cache = new Map<string, { address: string; expires: number }>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 10_000,
  ) {}

  /** The cached address, or undefined when a lookup is needed. */
  cached(host: string): string | undefined {
    const e = this.cache.get(host);
    if (e === undefined) return undefined;
    if (e.expires <= this.now()) {
      this.cache.delete(host);
      return undefined;
    }
    return e.address;
  }

  resolve(host: string): Promise<string> {
    const hit = this.cached(host);
    if (hit !== undefined) return Promise.resolve(hit);
    let p = this.inflight.get(host);
    if (p === undefined) {
      p = lookup(host)
        .then((r) => {
          if (typeof r.address !== 'string' || isIP(r.address) === 0) throw new Error(`no address for ${host}`);
          if (this.cache.size >= this.maxEntries) this.cache.clear();
          this.cache.set(host, { address: r.address, expires: this.now() + this.ttlMs });
          return r.address;
        })
        .finally(() => this.inflight.delete(host));
      this.inflight.set(host, p);
    }
    return p;
  }
}
