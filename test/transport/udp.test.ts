import { afterEach, describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { createTransport } from '../../src/transport/transport.js';
import { parseListenSpec } from '../../src/transport/listen-spec.js';
import {
  Inbox,
  ipv6LoopbackAvailable,
  sendDatagram,
  sipRequest,
  startTransport,
  udpPeer,
  within,
  type Harness,
} from './helpers.js';

const V6 = await ipv6LoopbackAvailable();
if (!V6) console.warn('transport tests: ::1 is not available on this machine; skipping the IPv6 UDP cases (IPv4 cases still run)');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function harness(...specs: string[]): Promise<Harness> {
  const h = await startTransport({ listen: specs.map(parseListenSpec) });
  cleanups.push(() => h.transport.close());
  return h;
}

async function peer(address: string) {
  const p = await udpPeer(address);
  cleanups.push(p.close);
  return p;
}

const FAMILIES = [
  { name: 'IPv4', loopback: '127.0.0.1', spec: 'udp:127.0.0.1:0', available: true },
  { name: 'IPv6', loopback: '::1', spec: 'udp:[::1]:0', available: V6 },
];

describe.each(FAMILIES)('UDP over $name', ({ loopback, spec, available }) => {
  it.skipIf(!available)('delivers a datagram with its source address, port and listener', async () => {
    const { transport, inbound } = await harness(spec);
    const listener = transport.listeners[0]!;
    expect(listener).toMatchObject({ id: 0, protocol: 'udp', address: loopback, family: loopback === '::1' ? 6 : 4 });
    expect(listener.port).toBeGreaterThan(0);

    const client = await peer(loopback);
    const request = sipRequest('in-1');
    await sendDatagram(client.socket, request, listener.port, loopback);
    const [message] = await inbound.atLeast(1, 'the datagram');
    expect(message!.bytes.toString('latin1')).toBe(request);
    expect(message!.protocol).toBe('udp');
    expect(message!.sourceAddress).toBe(loopback);
    expect(message!.sourcePort).toBe(client.port);
    expect(message!.listener).toBe(listener);
    expect(message!.connectionId).toBeUndefined();
    expect(transport.stats()).toMatchObject({ udpDatagramsIn: 1, udpBytesIn: request.length });
  });

  it.skipIf(!available)('sends from the listener socket, so the peer sees its address and port', async () => {
    const { transport } = await harness(spec);
    const listener = transport.listeners[0]!;
    const pbx = await peer(loopback);
    const request = sipRequest('out-1');
    transport.send({ protocol: 'udp', address: loopback, port: pbx.port }, Buffer.from(request));
    const [got] = await pbx.received.atLeast(1, 'the forwarded datagram');
    expect(got!.bytes.toString('latin1')).toBe(request);
    expect(got!.address).toBe(loopback);
    expect(got!.port).toBe(listener.port);
    expect(transport.stats()).toMatchObject({ udpDatagramsOut: 1, udpBytesOut: request.length, sendErrors: 0 });
  });

  it.skipIf(!available)('drops datagrams too short to be SIP (keep-alive probes) and counts them', async () => {
    const { transport, inbound } = await harness(spec);
    const client = await peer(loopback);
    await sendDatagram(client.socket, '\r\n\r\n', transport.listeners[0]!.port, loopback);
    const request = sipRequest('after-probe');
    await sendDatagram(client.socket, request, transport.listeners[0]!.port, loopback);
    await inbound.atLeast(1, 'the request after the probe');
    expect(inbound.items.map((m) => m.bytes.toString('latin1'))).toEqual([request]);
    expect(transport.stats()).toMatchObject({ udpDatagramsIn: 2, udpProbesDropped: 1 });
  });
});

describe('UDP', () => {
  it.skipIf(!V6)('binds 0.0.0.0 and [::] on the same port (IPv6 sockets are IPv6-only)', async () => {
    const { transport, inbound } = await harness('udp:0.0.0.0:0');
    const port = transport.listeners[0]!.port;
    const both = await harness(`udp:[::]:${port}`);
    expect(both.transport.listeners[0]).toMatchObject({ address: '::', port, family: 6 });
    const v4 = await peer('127.0.0.1');
    const v6 = await peer('::1');
    await sendDatagram(v4.socket, sipRequest('v4'), port, '127.0.0.1');
    await sendDatagram(v6.socket, sipRequest('v6'), port, '::1');
    const [m4] = await inbound.atLeast(1, 'the IPv4 datagram');
    const [m6] = await both.inbound.atLeast(1, 'the IPv6 datagram');
    expect(m4!.sourceAddress).toBe('127.0.0.1');
    expect(m6!.sourceAddress).toBe('::1');
  });

  it('receives and sends a 65,507-byte datagram (the IPv4 maximum)', async () => {
    const { transport, inbound } = await harness('udp:127.0.0.1:0');
    const port = transport.listeners[0]!.port;
    const client = await peer('127.0.0.1');
    const big = Buffer.alloc(65_507, 0x41);
    Buffer.from(sipRequest('big')).copy(big);
    await sendDatagram(client.socket, big, port, '127.0.0.1');
    const [message] = await inbound.atLeast(1, 'the big datagram');
    expect(message!.bytes.length).toBe(65_507);
    expect(message!.bytes.equals(big)).toBe(true);

    transport.send({ protocol: 'udp', address: '127.0.0.1', port: client.port }, big);
    const [got] = await client.received.atLeast(1, 'the big datagram back');
    expect(got!.bytes.equals(big)).toBe(true);
  });

  it('reports a datagram too big to send (EMSGSIZE) without throwing', async () => {
    const { transport, errors } = await harness('udp:127.0.0.1:0');
    const client = await peer('127.0.0.1');
    expect(() => transport.send({ protocol: 'udp', address: '127.0.0.1', port: client.port }, Buffer.alloc(70_000, 0x41))).not.toThrow();
    const [report] = await errors.atLeast(1, 'the send error');
    expect(report!.err.code).toBe('E_TRANSPORT_UDP_SEND');
    expect(report!.err.message).toContain('EMSGSIZE');
    expect(report!.context).toMatchObject({ operation: 'send', protocol: 'udp', remoteAddress: '127.0.0.1', remotePort: client.port });
    expect(transport.stats().sendErrors).toBe(1);
  });

  it('does not throw when sending to a port where nothing listens, and keeps working', async () => {
    const { transport } = await harness('udp:127.0.0.1:0');
    const gone = await udpPeer('127.0.0.1');
    const deadPort = gone.port;
    await gone.close();
    expect(() => transport.send({ protocol: 'udp', address: '127.0.0.1', port: deadPort }, Buffer.from(sipRequest('void')))).not.toThrow();
    const pbx = await peer('127.0.0.1');
    transport.send({ protocol: 'udp', address: '127.0.0.1', port: pbx.port }, Buffer.from(sipRequest('alive')));
    await pbx.received.atLeast(1, 'the datagram after the lost one');
  });

  it('sends from `via` when given, else from the first listener of the family', async () => {
    const { transport } = await harness('udp:127.0.0.1:0', 'udp:127.0.0.1:0');
    const [first, second] = transport.listeners;
    const pbx = await peer('127.0.0.1');
    const target = { protocol: 'udp' as const, address: '127.0.0.1', port: pbx.port };
    expect(transport.listenerFor(target)).toBe(first);
    expect(transport.listenerFor(target, second)).toBe(second);
    transport.send(target, Buffer.from(sipRequest('default')));
    await pbx.received.atLeast(1, 'the first datagram');
    transport.send(target, Buffer.from(sipRequest('via')), second);
    await pbx.received.atLeast(2, 'the second datagram');
    expect(pbx.received.items.map((d) => d.port)).toEqual([first!.port, second!.port]);
  });

  it('ignores a `via` of another family or protocol', async () => {
    const { transport } = await harness('udp:127.0.0.1:0', 'tcp:127.0.0.1:0');
    const [udp, tcp] = transport.listeners;
    expect(transport.listenerFor({ protocol: 'udp', address: '127.0.0.1', port: 5060 }, tcp)).toBe(udp);
    expect(transport.listenerFor({ protocol: 'udp', address: '::1', port: 5060 }, udp)).toBeUndefined();
  });

  it('reports a target with no listener of its family instead of throwing', async () => {
    const { transport, errors } = await harness('udp:127.0.0.1:0');
    expect(() => transport.send({ protocol: 'udp', address: '::1', port: 5060 }, Buffer.from(sipRequest('v6')))).not.toThrow();
    const [report] = await errors.atLeast(1, 'the no-listener report');
    expect(report!.err.code).toBe('E_TRANSPORT_NO_LISTENER');
    expect(report!.err.message).toContain('udp:[::1]:5060');
    expect(transport.stats().sendErrors).toBe(1);
  });

  it('counts and reports a throwing message handler, and goes on delivering', async () => {
    const seen = new Inbox<string>();
    const errors = new Inbox<SipctlError>();
    const transport = await createTransport({
      listen: [parseListenSpec('udp:127.0.0.1:0')],
      onMessage: (m) => {
        const text = m.bytes.toString('latin1');
        seen.push(text);
        if (text.includes('boom')) throw new Error('route script failed');
      },
      onError: (err) => errors.push(err),
    });
    cleanups.push(() => transport.close());
    const client = await peer('127.0.0.1');
    await sendDatagram(client.socket, sipRequest('boom'), transport.listeners[0]!.port, '127.0.0.1');
    await sendDatagram(client.socket, sipRequest('fine'), transport.listeners[0]!.port, '127.0.0.1');
    await seen.atLeast(2, 'both datagrams');
    expect(errors.items.map((e) => e.code)).toEqual(['E_TRANSPORT_HANDLER']);
    expect(errors.items[0]!.message).toContain('route script failed');
    expect(transport.stats().handlerErrors).toBe(1);
  });

  it('fails to bind a port in use with an error naming the listener, and releases what it bound', async () => {
    const { transport } = await harness('udp:127.0.0.1:0');
    const busy = transport.listeners[0]!.port;
    const attempt = createTransport({
      listen: [parseListenSpec('tcp:127.0.0.1:0'), parseListenSpec(`udp:127.0.0.1:${busy}`)],
      onMessage: () => {},
    });
    const error = await attempt.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(SipctlError);
    expect((error as SipctlError).code).toBe('E_TRANSPORT_BIND');
    expect((error as SipctlError).message).toBe(
      `cannot listen on udp:127.0.0.1:${busy}: address already in use (EADDRINUSE): another process or another --listen has this port; stop it or choose another port`,
    );
  });

  it('releases listeners bound before a failing one', async () => {
    const { transport } = await harness('tcp:127.0.0.1:0');
    const busyTcp = transport.listeners[0]!.port;
    const probe = await udpPeer('127.0.0.1');
    const freeUdp = probe.port;
    await probe.close();
    await expect(
      createTransport({
        listen: [parseListenSpec(`udp:127.0.0.1:${freeUdp}`), parseListenSpec(`tcp:127.0.0.1:${busyTcp}`)],
        onMessage: () => {},
      }),
    ).rejects.toMatchObject({ code: 'E_TRANSPORT_BIND' });
    // The UDP port bound first was closed again: binding it now succeeds.
    const again = await harness(`udp:127.0.0.1:${freeUdp}`);
    expect(again.transport.listeners[0]!.port).toBe(freeUdp);
  });

  it('refuses to send after close, without throwing', async () => {
    const { transport, errors } = await startTransport({ listen: [parseListenSpec('udp:127.0.0.1:0')] });
    await transport.close();
    await transport.close(); // idempotent
    expect(() => transport.send({ protocol: 'udp', address: '127.0.0.1', port: 5060 }, Buffer.from(sipRequest('late')))).not.toThrow();
    const [report] = await within(errors.atLeast(1), 'the closed report');
    expect(report!.err.code).toBe('E_TRANSPORT_CLOSED');
  });
});
