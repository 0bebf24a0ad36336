/**
 * RFC 3263 server location for destination URIs, done when destinations are loaded and
 * again when the DNS answer expires — never per message (DESIGN.md: no DNS on the hot path).
 *
 *   IP literal                   → as is (port default 5060)
 *   name with a port             → A/AAAA, that port (§4.2)
 *   name with ;transport, no port→ SRV _sip._udp|_sip._tcp for it, else A/AAAA :5060 (§4.2)
 *   name alone                   → NAPTR (SIP+D2U, SIP+D2T) → SRV → A/AAAA (§4.1);
 *                                  no NAPTR: SRV for udp and tcp; no SRV: A/AAAA udp :5060
 */
import { promises as dnsPromises } from 'node:dns';
import { SipctlError } from '../errors.js';
import type { SipUri } from '../sip/uri.js';
import type { Protocol, Target } from '../transport/types.js';

export interface Resolution {
  targets: Target[];
  /** Seconds until this answer should be refreshed; Infinity for IP literals. */
  ttlSeconds: number;
  /** How it was found, for the dump: 'literal', 'A/AAAA pbx.example.com', 'NAPTR → SRV ...'. */
  via: string;
}

export interface ResolverOptions {
  /** DNS servers ('127.0.0.1:5353', '[::1]:53'); default: the system's. */
  servers?: string[];
  /** TTL used where Node does not report one (NAPTR, SRV). Default 300 s. */
  defaultTtlSeconds?: number;
  /** Floor for any TTL, so a 0-second answer does not turn into a query loop. Default 5 s. */
  minTtlSeconds?: number;
  /** Per-query timeout and tries (c-ares). Defaults 2000 ms, 2 tries. */
  timeoutMs?: number;
  tries?: number;
}

/** What the holder needs from a resolver (tests may pass a table-driven one). */
export interface TargetResolver {
  resolve(uri: SipUri, explicitTransport: Protocol | undefined): Promise<Resolution>;
}

const SIP_DEFAULT_PORT = 5060;

/** NAPTR service field → transport (RFC 3263 §4.1). SIPS+D2T needs TLS: not supported. */
const NAPTR_SERVICES: ReadonlyMap<string, Protocol> = new Map([
  ['sip+d2u', 'udp'],
  ['sip+d2t', 'tcp'],
]);

/** DNS "no such data" answers: the lookup worked and there is nothing there. */
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME', 'NOTFOUND', 'ENOTIMP']);

function isNoData(err: unknown): boolean {
  return typeof err === 'object' && err !== null && NO_DATA.has(String((err as { code?: unknown }).code));
}

function unresolvable(name: string, why: string): SipctlError {
  return new SipctlError('E_DS_UNRESOLVABLE', `cannot resolve ${name}: ${why}`);
}

export class SipResolver implements TargetResolver {
  private readonly dns: dnsPromises.Resolver;
  private readonly defaultTtl: number;
  private readonly minTtl: number;

  constructor(options: ResolverOptions = {}) {
    this.dns = new dnsPromises.Resolver({ timeout: options.timeoutMs ?? 2000, tries: options.tries ?? 2 });
    if (options.servers !== undefined) this.dns.setServers(options.servers);
    this.defaultTtl = options.defaultTtlSeconds ?? 300;
    this.minTtl = options.minTtlSeconds ?? 5;
  }

  async resolve(uri: SipUri, explicitTransport: Protocol | undefined): Promise<Resolution> {
    const host = uri.host;
    if (uri.hostType !== 'name') {
      return {
        targets: [{ protocol: explicitTransport ?? 'udp', address: host, port: uri.port ?? SIP_DEFAULT_PORT }],
        ttlSeconds: Infinity,
        via: 'literal',
      };
    }
    // §4.2: a port in the URI means plain A/AAAA; transport from the URI, else UDP (§4.1).
    if (uri.port !== undefined) {
      const a = await this.addresses(host);
      if (a.addresses.length === 0) throw unresolvable(host, 'no A or AAAA records');
      const protocol = explicitTransport ?? 'udp';
      return this.finish(
        a.addresses.map((address) => ({ protocol, address, port: uri.port! })),
        [a.ttl],
        `A/AAAA ${host}`,
      );
    }
    if (explicitTransport !== undefined) {
      // §4.2: transport given, no port: SRV for that transport, then A/AAAA on 5060.
      const srv = await this.viaSrv(`_sip._${explicitTransport}.${host}`, explicitTransport);
      if (srv !== undefined) return srv;
      return this.plainHost(host, explicitTransport);
    }
    // §4.1: NAPTR first; the services we can use are SIP+D2U and SIP+D2T.
    const naptr = await this.lookup(() => this.dns.resolveNaptr(host));
    const usable = naptr
      .filter((r) => r.flags.toLowerCase() === 's' && NAPTR_SERVICES.has(r.service.toLowerCase()) && r.replacement !== '')
      .sort((a, b) => a.order - b.order || a.preference - b.preference);
    if (usable.length > 0) {
      const targets: Target[] = [];
      const ttls: number[] = [this.defaultTtl];
      const names: string[] = [];
      for (const r of usable) {
        const protocol = NAPTR_SERVICES.get(r.service.toLowerCase())!;
        const srv = await this.viaSrv(r.replacement, protocol);
        if (srv === undefined) continue;
        targets.push(...srv.targets);
        ttls.push(srv.ttlSeconds);
        names.push(r.replacement);
      }
      if (targets.length > 0) return this.finish(targets, ttls, `NAPTR ${host} → SRV ${names.join(', ')}`);
      // §4.1: NAPTR records whose SRV targets do not resolve are as good as none.
    }
    // §4.1: no (usable) NAPTR: SRV for the transports we support, UDP preferred for sip:.
    const udp = await this.viaSrv(`_sip._udp.${host}`, 'udp');
    const tcp = await this.viaSrv(`_sip._tcp.${host}`, 'tcp');
    if (udp !== undefined || tcp !== undefined) {
      const parts = [udp, tcp].filter((x): x is Resolution => x !== undefined);
      return this.finish(
        parts.flatMap((p) => p.targets),
        parts.map((p) => p.ttlSeconds),
        parts.map((p) => p.via).join(' + '),
      );
    }
    return this.plainHost(host, 'udp');
  }

  /** A/AAAA on the default port (the last step of §4.2). */
  private async plainHost(host: string, protocol: Protocol): Promise<Resolution> {
    const a = await this.addresses(host);
    if (a.addresses.length === 0) throw unresolvable(host, 'no NAPTR, SRV, A or AAAA records');
    return this.finish(
      a.addresses.map((address) => ({ protocol, address, port: SIP_DEFAULT_PORT })),
      [a.ttl],
      `A/AAAA ${host}`,
    );
  }

  /**
   * SRV records of `name`, ordered by priority then weight (heaviest first; RFC 2782's
   * weighted random order would differ per lookup, and a stable order is easier to read in
   * a dump), each target resolved to addresses. undefined when there are no SRV records.
   */
  private async viaSrv(name: string, protocol: Protocol): Promise<Resolution | undefined> {
    const records = await this.lookup(() => this.dns.resolveSrv(name));
    // RFC 2782: a single record with target "." means "no service here".
    const real = records.filter((r) => r.name !== '' && r.name !== '.');
    if (real.length === 0) return undefined;
    real.sort((a, b) => a.priority - b.priority || b.weight - a.weight || a.name.localeCompare(b.name));
    const targets: Target[] = [];
    const ttls: number[] = [this.defaultTtl];
    for (const r of real) {
      const a = await this.addresses(r.name);
      ttls.push(a.ttl);
      for (const address of a.addresses) targets.push({ protocol, address, port: r.port });
    }
    if (targets.length === 0) return undefined;
    return { targets, ttlSeconds: Math.min(...ttls), via: `SRV ${name}` };
  }

  /** A then AAAA records of a name, with the smallest TTL seen. */
  private async addresses(name: string): Promise<{ addresses: string[]; ttl: number }> {
    const v4 = await this.lookup(() => this.dns.resolve4(name, { ttl: true }));
    const v6 = await this.lookup(() => this.dns.resolve6(name, { ttl: true }));
    const all = [...v4, ...v6];
    const ttl = all.length === 0 ? this.defaultTtl : Math.min(...all.map((r) => r.ttl));
    return { addresses: all.map((r) => r.address), ttl };
  }

  /** Runs one query; "no such name / no data" is an empty answer, anything else throws. */
  private async lookup<T>(query: () => Promise<T[]>): Promise<T[]> {
    try {
      return await query();
    } catch (err) {
      if (isNoData(err)) return [];
      const code = String((err as { code?: unknown }).code ?? '');
      const host = String((err as { hostname?: unknown }).hostname ?? '');
      throw new SipctlError('E_DS_DNS', `DNS lookup${host ? ` of ${host}` : ''} failed: ${code || String(err)}`, { cause: err });
    }
  }

  private finish(targets: Target[], ttls: number[], via: string): Resolution {
    const ttl = Math.max(this.minTtl, Math.min(...ttls));
    // The same address can come from two SRV names; keep its first (best) position.
    const seen = new Set<string>();
    const unique = targets.filter((t) => {
      const k = `${t.protocol}|${t.address}|${t.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return { targets: unique, ttlSeconds: ttl, via };
  }
}
