import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/sip/parse.js';
import { connectionIdFrom, ownVia, receivedEdits, responseTarget, statelessBranch, MAGIC_COOKIE } from '../../src/proxy/via.js';
import { InvitePairing } from '../../src/proxy/pairing.js';
import { LocalAddresses } from '../../src/proxy/identity.js';
import { parseUri } from '../../src/sip/uri.js';

const msg = (text: string) => parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));

function request(method: string, opts: { branch?: string; toTag?: string; uri?: string; cseq?: number } = {}) {
  return msg(`${method} ${opts.uri ?? 'sip:bob@example.com'} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=${opts.branch ?? 'z9hG4bKaaa'};rport
From: <sip:alice@example.com>;tag=ft
To: <sip:bob@example.com>${opts.toTag ? `;tag=${opts.toTag}` : ''}
Call-ID: c1@example.com
CSeq: ${opts.cseq ?? 1} ${method}
Content-Length: 0

`);
}

describe('statelessBranch (§16.11)', () => {
  it('is the same for a retransmission, a CANCEL and a non-2xx ACK of the same INVITE', () => {
    const inv = request('INVITE');
    const b = statelessBranch(inv, inv.topVia);
    expect(b.startsWith(MAGIC_COOKIE)).toBe(true);
    expect(statelessBranch(request('INVITE'), inv.topVia)).toBe(b);
    const cancel = request('CANCEL');
    expect(statelessBranch(cancel, cancel.topVia)).toBe(b);
    const ack = request('ACK', { toTag: 'resp' });
    expect(statelessBranch(ack, ack.topVia)).toBe(b);
  });

  it('differs when the request differs', () => {
    const base = request('INVITE');
    const b = statelessBranch(base, base.topVia);
    for (const other of [request('INVITE', { branch: 'z9hG4bKbbb' }), request('INVITE', { uri: 'sip:carol@example.com' }), request('INVITE', { cseq: 2 })]) {
      expect(statelessBranch(other, other.topVia)).not.toBe(b);
    }
  });
});

describe('receivedEdits (§18.2.1, RFC 3581)', () => {
  it('fills rport and adds received even when the address is the sent-by address', () => {
    const m = request('INVITE');
    const edits = receivedEdits(m.topVia!, '10.0.0.1', 40000);
    for (const e of edits.sort((a, b) => b.start - a.start)) m.replaceRange(e.start, e.end, e.text);
    const v = parseMessage(m.serialize()).topVia!;
    expect(v.rport).toBe(40000);
    expect(v.received).toBe('10.0.0.1');
  });

  it('adds received only when the source differs, without rport', () => {
    const m = msg(`OPTIONS sip:x@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1
From: <sip:a@example.com>;tag=1
To: <sip:x@example.com>
Call-ID: c
CSeq: 1 OPTIONS

`);
    expect(receivedEdits(m.topVia!, '10.0.0.1', 5062)).toEqual([]);
    const e = receivedEdits(m.topVia!, '192.0.2.7', 5062);
    expect(e).toHaveLength(1);
    expect(e[0]!.text).toBe(';received=192.0.2.7');
  });
});

describe('responseTarget (§18.2.2, RFC 3581)', () => {
  const via = (text: string) => msg(`SIP/2.0 200 OK\nVia: ${text}\nContent-Length: 0\n\n`).topVia!;
  it('uses received and rport', () => {
    expect(responseTarget(via('SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;received=192.0.2.1;rport=9988'))).toEqual({ protocol: 'udp', address: '192.0.2.1', port: 9988 });
  });
  it('falls back to the sent-by port, then 5060', () => {
    expect(responseTarget(via('SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;received=192.0.2.1'))).toEqual({ protocol: 'udp', address: '192.0.2.1', port: 5062 });
    expect(responseTarget(via('SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1'))).toEqual({ protocol: 'udp', address: '10.0.0.1', port: 5060 });
  });
  it('keeps a TCP connection id and refuses names without received, broadcast, and unknown transports', () => {
    expect(responseTarget(via('SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1'), 7)).toEqual({ protocol: 'tcp', address: '2001:db8::1', port: 5070, connectionId: 7, inboundByIdOnly: true });
    expect(responseTarget(via('SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bK1'))).toBeUndefined();
    expect(responseTarget(via('SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1'))).toBeUndefined();
    expect(responseTarget(via('SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK1'))).toBeUndefined();
  });
});

describe('LocalAddresses ("myself")', () => {
  const local = new LocalAddresses(
    [
      { id: 0, protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 },
      { id: 1, protocol: 'tcp', address: '::1', port: 5070, family: 6 },
    ],
    ['proxy.example.com'],
  );
  it('matches our addresses and ports, default port 5060, and aliases', () => {
    expect(local.isLocalUri(parseUri('sip:127.0.0.1;lr'))).toBe(true);
    expect(local.isLocalUri(parseUri('sip:127.0.0.1:5061'))).toBe(false);
    expect(local.isLocalUri(parseUri('sip:[::1]:5070;transport=tcp'))).toBe(true);
    expect(local.isLocalUri(parseUri('sip:Proxy.Example.com:5070'))).toBe(true);
    expect(local.isLocalUri(parseUri('sip:other.example.com'))).toBe(false);
    expect(local.isLocal('::ffff:127.0.0.1', 5060)).toBe(true);
  });
});

describe('InvitePairing', () => {
  it('remembers the first pick, expires after the TTL and stays within its bound', () => {
    let now = 0;
    const p = new InvitePairing({ maxEntries: 100, ttlMs: 1000, now: () => now });
    const a = { protocol: 'udp' as const, address: '10.0.0.1', port: 5060 };
    const b = { protocol: 'udp' as const, address: '10.0.0.2', port: 5060 };
    p.remember('x', a, 'z9hG4bKsc.a');
    p.remember('x', b, 'z9hG4bKsc.b');
    expect(p.lookup('x')).toEqual({ target: a, branch: 'z9hG4bKsc.a', expires: 1000 });
    now = 1000;
    expect(p.lookup('x')).toBeUndefined();
    for (let i = 0; i < 1000; i++) p.remember(`k${i}`, a, 'z9hG4bKsc.k');
    expect(p.size).toBeLessThanOrEqual(101);
  });
});

describe('connection id in our Via (responses back on the request’s TCP connection)', () => {
  const listener = { id: 0, protocol: 'tcp' as const, address: '127.0.0.1', port: 5060, family: 4 as const };
  const inbound = { bytes: Buffer.alloc(0), protocol: 'tcp' as const, sourceAddress: '192.0.2.7', sourcePort: 40123, listener, connectionId: 42 };
  const viaOf = (text: string) => msg(`SIP/2.0 200 OK\nVia: ${text}\nContent-Length: 0\n\n`).topVia!;
  it('is honoured only with the seal the proxy wrote, for the address the request came from', () => {
    const ours = viaOf(ownVia(listener, { host: '127.0.0.1', port: 5060 }, 'z9hG4bKsc.x', inbound));
    const seal = /sipctl-cid=42\.([^;]+)/.exec(ownVia(listener, { host: '127.0.0.1', port: 5060 }, 'z9hG4bKsc.x', inbound))![1]!;
    expect(seal).toMatch(/^[A-Za-z0-9_-]{16}$/); // 96 bits
    expect(connectionIdFrom(ours, viaOf('SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK1;received=192.0.2.7'))).toBe(42);
    expect(connectionIdFrom(ours, viaOf('SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bK1'))).toBe(42);
    expect(connectionIdFrom(ours, viaOf('SIP/2.0/TCP 198.51.100.9:5060;branch=z9hG4bK1'))).toBeUndefined();
  });

  it('refuses every forgery it is tried with: another id, another address, 100,000 random seals', () => {
    const next = viaOf('SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bK1');
    const seal = /sipctl-cid=42\.([^;]+)/.exec(ownVia(listener, { host: '127.0.0.1', port: 5060 }, 'z9hG4bKsc.x', inbound))![1]!;
    const forged = (param: string) => viaOf(`SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKsc.x;sipctl-cid=${param}`);
    expect(connectionIdFrom(forged(`43.${seal}`), next)).toBeUndefined();
    expect(connectionIdFrom(forged(`42.${seal}`), viaOf('SIP/2.0/TCP 192.0.2.8:5060;branch=z9hG4bK1'))).toBeUndefined();
    for (const bad of ['42', '42.', `42.${seal.slice(1)}`, `42.${seal}A`, `-1.${seal}`, `x.${seal}`]) expect(connectionIdFrom(forged(bad), next)).toBeUndefined();
    let accepted = 0;
    for (let i = 0; i < 100_000; i++) if (connectionIdFrom(forged(`42.${randomBytes(12).toString('base64url')}`), next) !== undefined) accepted++;
    expect(accepted).toBe(0);
  });
});
