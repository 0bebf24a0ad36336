/** RFC 3263 resolution against a real DNS server on 127.0.0.1 (never the system's DNS). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDestinationUri } from '../../src/dispatcher/destination-uri.js';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { dumpSets } from '../../src/dispatcher/dump.js';
import { SipResolver } from '../../src/dispatcher/resolve.js';
import { SipctlError } from '../../src/errors.js';
import { TestDnsServer } from './dns-server.js';
import { FakeClock, KEY, row } from './helpers.js';

let dns: TestDnsServer;
let server: string;

beforeEach(async () => {
  dns = new TestDnsServer();
  server = await dns.start();
});

afterEach(async () => {
  await dns.stop();
});

function resolver(opts: { defaultTtlSeconds?: number; minTtlSeconds?: number } = {}) {
  return new SipResolver({ servers: [server], timeoutMs: 500, tries: 1, ...opts });
}

async function resolve(uri: string, r = resolver()) {
  const u = parseDestinationUri(uri);
  return r.resolve(u.parsed, u.explicitTransport);
}

describe('SipResolver (RFC 3263)', () => {
  it('takes IP literals as they are, without asking DNS', async () => {
    expect((await resolve('sip:10.1.2.3')).targets).toEqual([{ protocol: 'udp', address: '10.1.2.3', port: 5060 }]);
    expect((await resolve('sip:[::1]:5070;transport=tcp')).targets).toEqual([{ protocol: 'tcp', address: '::1', port: 5070 }]);
    expect((await resolve('sip:10.1.2.3')).ttlSeconds).toBe(Infinity);
    expect(dns.queries).toEqual([]);
  });

  it('with a port: A and AAAA only, TTL from the answer (§4.2)', async () => {
    dns.set('pbx.test', { A: [{ address: '192.0.2.1', ttl: 120 }], AAAA: [{ address: '2001:db8::1', ttl: 90 }] });
    const r = await resolve('sip:pbx.test:5080');
    expect(r.targets).toEqual([
      { protocol: 'udp', address: '192.0.2.1', port: 5080 },
      { protocol: 'udp', address: '2001:db8::1', port: 5080 },
    ]);
    expect(r.ttlSeconds).toBe(90);
    expect(r.via).toBe('A/AAAA pbx.test');
    expect(dns.queries.sort()).toEqual(['A pbx.test', 'AAAA pbx.test']);
    expect((await resolve('sip:pbx.test:5080;transport=tcp')).targets[0]!.protocol).toBe('tcp');
  });

  it('with a transport and no port: SRV for that transport, by priority then weight (§4.2)', async () => {
    dns.set('_sip._tcp.pbx.test', {
      SRV: [
        { priority: 20, weight: 0, port: 5062, target: 'c.pbx.test' },
        { priority: 10, weight: 10, port: 5061, target: 'b.pbx.test' },
        { priority: 10, weight: 60, port: 5060, target: 'a.pbx.test' },
      ],
    });
    dns.set('a.pbx.test', { A: [{ address: '192.0.2.10' }] });
    dns.set('b.pbx.test', { A: [{ address: '192.0.2.11' }] });
    dns.set('c.pbx.test', { AAAA: [{ address: '2001:db8::c' }] });
    const r = await resolve('sip:pbx.test;transport=tcp', resolver({ defaultTtlSeconds: 300, minTtlSeconds: 1 }));
    expect(r.targets).toEqual([
      { protocol: 'tcp', address: '192.0.2.10', port: 5060 },
      { protocol: 'tcp', address: '192.0.2.11', port: 5061 },
      { protocol: 'tcp', address: '2001:db8::c', port: 5062 },
    ]);
    expect(r.via).toBe('SRV _sip._tcp.pbx.test');
    expect(dns.queries.some((q) => q.startsWith('NAPTR'))).toBe(false);
  });

  it('with a transport, no port and no SRV: A/AAAA on 5060', async () => {
    dns.set('pbx.test', { A: [{ address: '192.0.2.1' }] });
    expect((await resolve('sip:pbx.test;transport=tcp')).targets).toEqual([{ protocol: 'tcp', address: '192.0.2.1', port: 5060 }]);
  });

  it('a bare name: NAPTR (SIP+D2T / SIP+D2U in order) → SRV → A/AAAA (§4.1)', async () => {
    dns.set('example.test', {
      NAPTR: [
        { order: 20, preference: 10, flags: 'S', service: 'SIP+D2U', replacement: '_sip._udp.example.test' },
        { order: 10, preference: 10, flags: 'S', service: 'SIP+D2T', replacement: '_sip._tcp.example.test' },
        { order: 5, preference: 10, flags: 'S', service: 'SIPS+D2T', replacement: '_sips._tcp.example.test' },
      ],
    });
    dns.set('_sip._tcp.example.test', { SRV: [{ priority: 0, weight: 0, port: 5070, target: 'edge.example.test' }] });
    dns.set('_sip._udp.example.test', { SRV: [{ priority: 0, weight: 0, port: 5071, target: 'edge.example.test' }] });
    dns.set('edge.example.test', { A: [{ address: '192.0.2.50', ttl: 30 }] });
    const r = await resolve('sip:example.test', resolver({ defaultTtlSeconds: 300, minTtlSeconds: 1 }));
    expect(r.targets).toEqual([
      { protocol: 'tcp', address: '192.0.2.50', port: 5070 },
      { protocol: 'udp', address: '192.0.2.50', port: 5071 },
    ]);
    expect(r.ttlSeconds).toBe(30);
    expect(r.via).toBe('NAPTR example.test → SRV _sip._tcp.example.test, _sip._udp.example.test');
    expect(dns.queries).not.toContain('SRV _sips._tcp.example.test');
  });

  it('no NAPTR: SRV for udp and tcp, udp first; no SRV either: A/AAAA udp 5060 (§4.1, §4.2)', async () => {
    dns.set('two.test', {});
    dns.set('_sip._udp.two.test', { SRV: [{ priority: 0, weight: 0, port: 5090, target: 'h.two.test' }] });
    dns.set('_sip._tcp.two.test', { SRV: [{ priority: 0, weight: 0, port: 5091, target: 'h.two.test' }] });
    dns.set('h.two.test', { A: [{ address: '192.0.2.7' }] });
    expect((await resolve('sip:two.test')).targets).toEqual([
      { protocol: 'udp', address: '192.0.2.7', port: 5090 },
      { protocol: 'tcp', address: '192.0.2.7', port: 5091 },
    ]);
    dns.set('plain.test', { A: [{ address: '192.0.2.8' }] });
    const r = await resolve('sip:plain.test');
    expect(r.targets).toEqual([{ protocol: 'udp', address: '192.0.2.8', port: 5060 }]);
    expect(dns.queries).toEqual(expect.arrayContaining(['NAPTR plain.test', 'SRV _sip._udp.plain.test', 'SRV _sip._tcp.plain.test', 'A plain.test']));
  });

  it('a name with no records at all is E_DS_UNRESOLVABLE', async () => {
    const err = await resolve('sip:nowhere.test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SipctlError);
    expect((err as SipctlError).code).toBe('E_DS_UNRESOLVABLE');
    expect((err as SipctlError).message).toBe('cannot resolve nowhere.test: no NAPTR, SRV, A or AAAA records');
  });
});

describe('names in the dispatcher', () => {
  it('resolves on reload and shows the result in the dump; an unresolvable name fails the reload', async () => {
    dns.set('pbx.test', { A: [{ address: '192.0.2.1', ttl: 60 }] });
    const clock = new FakeClock();
    const holder = new DispatcherHolder({ clock, resolver: resolver() });
    await holder.reload([row(1, 'sip:pbx.test:5060', { id: 1 })]);
    const d = dumpSets(holder.current).sets[0]!.destinations[0]!;
    expect(d.targets).toEqual([{ protocol: 'udp', address: '192.0.2.1', port: 5060 }]);
    expect(d.resolvedVia).toBe('A/AAAA pbx.test');
    const before = holder.current;
    const err = await holder.reload([row(1, 'sip:pbx.test:5060', { id: 1 }), row(1, 'sip:gone.test:5060', { id: 2 })]).catch((e: unknown) => e);
    expect((err as SipctlError).code).toBe('E_DS_RELOAD_FAILED');
    expect((err as SipctlError).message).toMatch(/row 2 \(sip:gone\.test:5060\): cannot resolve gone\.test: no A or AAAA records/);
    expect(holder.current).toBe(before);
    holder.close();
  });

  it('re-resolves when the answer expires: new targets replace old, a failure keeps the old', async () => {
    // TTL 0 answers are not cached by the resolver library, so each lookup reaches the server.
    dns.set('pbx.test', { A: [{ address: '192.0.2.1', ttl: 0 }] });
    const clock = new FakeClock();
    const logs: string[] = [];
    const holder = new DispatcherHolder({ clock, resolver: resolver({ minTtlSeconds: 10 }), log: (l) => logs.push(l), retrySeconds: 20 });
    await holder.reload([row(1, 'sip:pbx.test:5060')]);
    const dest = () => holder.current.select(1, 'round-robin', KEY)!;
    expect(dest().targets[0]!.address).toBe('192.0.2.1');
    const queriesAfterLoad = dns.queries.length;
    for (let i = 0; i < 100; i++) dest(); // selection never asks DNS
    expect(dns.queries.length).toBe(queriesAfterLoad);

    dns.set('pbx.test', { A: [{ address: '192.0.2.2', ttl: 0 }] });
    clock.advance(9_999);
    expect(dns.queries.length).toBe(queriesAfterLoad);
    clock.advance(1); // TTL (floored to 10 s) expires
    await until(() => dest().targets[0]!.address === '192.0.2.2');
    expect(logs.at(-1)).toMatch(/sip:pbx\.test:5060 now resolves to udp:192\.0\.2\.2:5060/);

    dns.delete('pbx.test');
    clock.advance(10_000);
    await until(() => logs.some((l) => l.includes('re-resolving sip:pbx.test:5060 failed, keeping previous targets')));
    expect(dest().targets[0]!.address).toBe('192.0.2.2');

    dns.set('pbx.test', { A: [{ address: '192.0.2.3', ttl: 0 }] });
    clock.advance(20_000); // the retry
    await until(() => dest().targets[0]!.address === '192.0.2.3');
    holder.close();
  });
});

/** Waits (bounded: 3 s) for an asynchronous DNS round trip to land. */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 3 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}
