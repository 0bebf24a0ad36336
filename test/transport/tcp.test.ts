import { afterEach, describe, expect, it } from 'vitest';
import { parseListenSpec } from '../../src/transport/listen-spec.js';
import type { TransportOptions } from '../../src/transport/transport.js';
import {
  closedTcpPort,
  connectionAttempt,
  ipv6LoopbackAvailable,
  sipRequest,
  startTransport,
  tcpClient,
  tcpPeer,
  unresponsiveTcpPort,
  until,
  within,
  type Harness,
} from './helpers.js';

const V6 = await ipv6LoopbackAvailable();
if (!V6) console.warn('transport tests: ::1 is not available on this machine; skipping the IPv6 TCP cases (IPv4 cases still run)');
const LINUX = process.platform === 'linux';
if (!LINUX) console.warn(`transport tests: skipping the connect-timeout case: it needs Linux's SYN drop on a full accept queue (this is ${process.platform})`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function harness(specs: string[], options: Omit<TransportOptions, 'listen' | 'onMessage' | 'onError'> = {}): Promise<Harness> {
  const h = await startTransport({ ...options, listen: specs.map(parseListenSpec) });
  cleanups.push(() => h.transport.close());
  return h;
}

async function client(address: string, port: number, localAddress?: string) {
  const c = await tcpClient(address, port, localAddress);
  cleanups.push(async () => {
    c.socket.destroy();
    await c.closed;
  });
  return c;
}

async function peer(address: string) {
  const p = await tcpPeer(address);
  cleanups.push(p.close);
  return p;
}

const OK_RESPONSE = 'SIP/2.0 200 OK\r\nCall-ID: a@test\r\nContent-Length: 0\r\n\r\n';

const FAMILIES = [
  { name: 'IPv4', loopback: '127.0.0.1', spec: 'tcp:127.0.0.1:0', available: true },
  { name: 'IPv6', loopback: '::1', spec: 'tcp:[::1]:0', available: V6 },
];

describe.each(FAMILIES)('TCP over $name', ({ loopback, spec, available }) => {
  it.skipIf(!available)('frames split and pipelined writes into messages with their connection', async () => {
    const { transport, inbound } = await harness([spec]);
    const listener = transport.listeners[0]!;
    const ua = await client(loopback, listener.port);
    const first = sipRequest('split', 'TCP', 'v=0\r\n');
    const second = sipRequest('pipe-a', 'TCP');
    const third = sipRequest('pipe-b', 'TCP', 'hello');
    // The first message in three writes (cut inside the start line and inside the body),
    // then two messages in one write.
    await ua.write(first.slice(0, 10));
    await ua.write(first.slice(10, first.length - 3));
    await ua.write(first.slice(first.length - 3));
    await ua.write(second + third);
    const messages = await inbound.atLeast(3, 'three framed messages');
    expect(messages.map((m) => m.bytes.toString('latin1'))).toEqual([first, second, third]);
    for (const m of messages) {
      expect(m.protocol).toBe('tcp');
      expect(m.sourceAddress).toBe(loopback);
      expect(m.sourcePort).toBe(ua.socket.localPort);
      expect(m.listener).toBe(listener);
      expect(m.connectionId).toBe(messages[0]!.connectionId);
    }
    expect(transport.stats()).toMatchObject({ tcpMessagesIn: 3, tcpConnectionsAccepted: 1, tcpConnectionsOpen: 1 });
  });

  it.skipIf(!available)('sends a response back on the inbound connection by connectionId', async () => {
    const { transport, inbound } = await harness([spec]);
    const ua = await client(loopback, transport.listeners[0]!.port);
    await ua.write(sipRequest('req', 'TCP'));
    const [request] = await inbound.atLeast(1, 'the request');
    const response = 'SIP/2.0 200 OK\r\nCall-ID: req@test\r\nContent-Length: 0\r\n\r\n';
    // The address:port given matches nothing else; the connection id alone finds the socket.
    transport.send({ protocol: 'tcp', address: request!.sourceAddress, port: request!.sourcePort, connectionId: request!.connectionId }, Buffer.from(response));
    await until(() => ua.received() === response, 'the response on the same connection');
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 0, tcpConnectionsOpen: 1, tcpMessagesOut: 1 });
  });

  it.skipIf(!available)('opens one outbound connection and reuses it for the next send; replies come in on it', async () => {
    const { transport, inbound } = await harness([spec]);
    const listener = transport.listeners[0]!;
    const pbx = await peer(loopback);
    const target = { protocol: 'tcp' as const, address: loopback, port: pbx.port };
    const a = sipRequest('out-a', 'TCP');
    const b = sipRequest('out-b', 'TCP');
    transport.send(target, Buffer.from(a));
    transport.send(target, Buffer.from(b));
    await until(() => pbx.connections.length === 1 && pbx.received(0) === a + b, 'both messages on one connection');
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 1, tcpConnectionsOpen: 1, tcpMessagesOut: 2 });

    // A third send after the connection is established still reuses it.
    const c = sipRequest('out-c', 'TCP');
    transport.send(target, Buffer.from(c));
    await until(() => pbx.received(0) === a + b + c, 'the third message on the same connection');
    expect(pbx.connections).toHaveLength(1);

    // The PBX answers on that connection: it arrives with the listener of the same family.
    const reply = 'SIP/2.0 200 OK\r\nCall-ID: out-a@test\r\nContent-Length: 0\r\n\r\n';
    pbx.connections[0]!.write(reply);
    const [message] = await inbound.atLeast(1, 'the reply from the PBX');
    expect(message!.bytes.toString('latin1')).toBe(reply);
    expect(message!.listener).toBe(listener);
    expect(message!.sourcePort).toBe(pbx.port);
    expect(message!.connectionId).toBeGreaterThan(0);
  });

  it.skipIf(!available)('answers a CRLFCRLF keep-alive ping with a CRLF pong (RFC 5626 §3.5.1)', async () => {
    const { transport } = await harness([spec]);
    const ua = await client(loopback, transport.listeners[0]!.port);
    await ua.write('\r\n\r\n');
    await until(() => ua.received() === '\r\n', 'the pong');
    expect(transport.stats().tcpKeepAlivePings).toBe(1);
  });
});

describe('TCP', () => {
  it('closes a connection after the idle timeout', async () => {
    const { transport, inbound } = await harness(['tcp:127.0.0.1:0'], { tcpIdleTimeoutMs: 150 });
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    await ua.write(sipRequest('idle', 'TCP'));
    await inbound.atLeast(1, 'the message');
    await within(ua.closed, 'the idle connection to be closed');
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the table to forget the connection');
    expect(transport.stats().tcpConnectionsIdleClosed).toBe(1);
  });

  it('closes an outbound connection after the idle timeout and opens a new one on the next send', async () => {
    const { transport } = await harness(['tcp:127.0.0.1:0'], { tcpIdleTimeoutMs: 150 });
    const pbx = await peer('127.0.0.1');
    const target = { protocol: 'tcp' as const, address: '127.0.0.1', port: pbx.port };
    transport.send(target, Buffer.from(sipRequest('one', 'TCP')));
    await until(() => pbx.connections.length === 1, 'the first connection');
    await within(pbx.closed(0), 'the idle outbound connection to close');
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the table to forget the connection');
    transport.send(target, Buffer.from(sipRequest('two', 'TCP')));
    await until(() => pbx.connections.length === 2, 'a second connection');
    expect(transport.stats().tcpConnectionsOpened).toBe(2);
  });

  it('closes a stream that cannot be framed and keeps serving other connections', async () => {
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0']);
    const port = transport.listeners[0]!.port;
    const good = await client('127.0.0.1', port);
    const bad = await client('127.0.0.1', port);
    const badPort = bad.socket.localPort;
    await good.write(sipRequest('before', 'TCP'));
    await inbound.atLeast(1, 'the first good message');
    await bad.write('MESSAGE sip:a@b SIP/2.0\r\nContent-Length: lots\r\n\r\n');
    await within(bad.closed, 'the unframable connection to be closed');
    const [report] = await errors.atLeast(1, 'the framing report');
    expect(report!.err.code).toBe('E_SIP_FRAMING_BAD_CONTENT_LENGTH');
    expect(report!.err.message).toContain("'Content-Length: lots'");
    expect(report!.context).toMatchObject({ operation: 'frame', protocol: 'tcp', remotePort: badPort });

    await good.write(sipRequest('after', 'TCP'));
    await inbound.atLeast(2, 'the second good message');
    expect(inbound.items.map((m) => m.sourcePort)).toEqual([good.socket.localPort, good.socket.localPort]);
    expect(transport.stats()).toMatchObject({ tcpFramingErrors: 1, tcpConnectionsOpen: 1 });
  });

  it('closes a stream whose header section never ends (maxHeaderBytes)', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], { maxHeaderBytes: 1024 });
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    // Written in pieces, bounded: the connection must be closed long before the loop ends.
    for (let i = 0; i < 64 && !ua.socket.destroyed; i++) {
      await ua.write('X-Filler: ' + 'y'.repeat(100) + '\r\n').catch(() => undefined);
    }
    await within(ua.closed, 'the connection to be closed');
    const [report] = await errors.atLeast(1, 'the framing report');
    expect(report!.err.code).toBe('E_SIP_FRAMING_HEADER_TOO_LARGE');
  });

  it('does not throw when sending to a closed port, and reports the failed connect', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0']);
    const port = await closedTcpPort('127.0.0.1');
    expect(() => transport.send({ protocol: 'tcp', address: '127.0.0.1', port }, Buffer.from(sipRequest('void', 'TCP')))).not.toThrow();
    const [report] = await errors.atLeast(1, 'the connect failure');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_CONNECT');
    expect(report!.err.message).toContain(`cannot connect to tcp:127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
    expect(report!.context).toMatchObject({ operation: 'connect', remotePort: port });
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the failed connection to leave the table');
    expect(transport.stats()).toMatchObject({ tcpConnectFailures: 1, sendErrors: 1 });
  });

  // Only a kernel that drops SYNs on a full accept queue (Linux) gives a connect that hangs;
  // on Linux the set-up must work, so a failure to make one fails the test.
  it.skipIf(!LINUX)('gives up an outbound connect after tcpConnectTimeoutMs and reports it', async () => {
    const blackhole = await unresponsiveTcpPort();
    expect(blackhole, 'a loopback port whose connects hang (a stopped listener with a full accept queue)').toBeDefined();
    cleanups.push(blackhole!.release);
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], { tcpConnectTimeoutMs: 200 });
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: blackhole!.port }, Buffer.from(sipRequest('hang', 'TCP')));
    const [report] = await errors.atLeast(1, 'the connect timeout');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_CONNECT_TIMEOUT');
    expect(report!.err.message).toMatch(/^cannot connect to tcp:127\.0\.0\.1:\d+: no answer within 200 ms; \d+ queued bytes dropped$/);
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the connection to leave the table');
    expect(transport.stats()).toMatchObject({ tcpConnectFailures: 1, tcpConnectionsIdleClosed: 0 });
  });

  it('names the listener of the open connection a message would go on', async () => {
    const { transport, inbound } = await harness(['tcp:127.0.0.1:0', 'tcp:127.0.0.1:0']);
    const [first, second] = transport.listeners;
    const ua = await client('127.0.0.1', second!.port);
    await ua.write(sipRequest('second', 'TCP'));
    const [request] = await inbound.atLeast(1, 'the request');
    expect(request!.listener).toBe(second);
    const back = { protocol: 'tcp' as const, address: '127.0.0.1', port: ua.socket.localPort! };
    expect(transport.listenerFor(back)).toBe(second);
    expect(transport.listenerFor({ ...back, port: 1, connectionId: request!.connectionId })).toBe(second);
    // With no open connection it is the first listener of the family, or the preferred one.
    expect(transport.listenerFor({ ...back, port: 1 })).toBe(first);
    expect(transport.listenerFor({ ...back, port: 1 }, second)).toBe(second);
  });

  it('counts a peer reset (ECONNRESET) and goes on serving', async () => {
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0']);
    const port = transport.listeners[0]!.port;
    const rude = await client('127.0.0.1', port);
    await rude.write(sipRequest('rude', 'TCP'));
    const [request] = await inbound.atLeast(1, 'the request');
    rude.socket.resetAndDestroy();
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the reset connection to leave the table');
    const [report] = await errors.atLeast(1, 'the reset report');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_SOCKET');
    expect(report!.err.message).toContain('ECONNRESET');
    expect(transport.stats().socketErrors).toBe(1);
    // A response for the dead connection does not throw; the transport falls back to
    // connecting to the peer's address:port, where nothing listens, and reports that.
    const response = Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n');
    expect(() => transport.send({ protocol: 'tcp', address: '127.0.0.1', port: request!.sourcePort, connectionId: request!.connectionId }, response)).not.toThrow();
    await errors.atLeast(2, 'the failed reconnect');
    const polite = await client('127.0.0.1', port);
    await polite.write(sipRequest('polite', 'TCP'));
    await inbound.atLeast(2, 'a request on a new connection');
  });

  it('refuses inbound connections beyond maxTcpConnections, and outbound ones still open', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], { maxTcpConnections: 1 });
    const port = transport.listeners[0]!.port;
    await client('127.0.0.1', port);
    await until(() => transport.stats().tcpConnectionsOpen === 1, 'the first connection to be accepted');
    expect(await connectionAttempt('127.0.0.1', port)).toBe('closed');
    const [report] = await errors.atLeast(1, 'the refusal report');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_LIMIT');
    expect(report!.context).toMatchObject({ operation: 'accept', remoteAddress: '127.0.0.1' });
    // The inbound budget is full, the outbound one is not: we can still reach a next hop.
    const pbx = await peer('127.0.0.1');
    const request = sipRequest('out', 'TCP');
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: pbx.port }, Buffer.from(request));
    await until(() => pbx.received(0) === request, 'the request on a new outbound connection');
    expect(transport.stats()).toMatchObject({
      tcpConnectionsRefused: 1,
      tcpConnectionsInbound: 1,
      tcpConnectionsOutbound: 1,
      tcpConnectionsOpened: 1,
    });
  });

  it('refuses outbound connections beyond maxTcpOutboundConnections, and inbound ones are still accepted', async () => {
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0'], { maxTcpOutboundConnections: 1 });
    const first = await peer('127.0.0.1');
    const second = await peer('127.0.0.1');
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: first.port }, Buffer.from(sipRequest('one', 'TCP')));
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: second.port }, Buffer.from(sipRequest('two', 'TCP')));
    const [report] = await errors.atLeast(1, 'the outbound refusal');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_LIMIT');
    expect(report!.err.message).toContain(`cannot send to tcp:127.0.0.1:${second.port}: 1 outbound connections are open`);
    await until(() => first.connections.length === 1, 'the first outbound connection');
    expect(second.connections).toHaveLength(0);
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    await ua.write(sipRequest('in', 'TCP'));
    await inbound.atLeast(1, 'a request on an inbound connection');
    expect(transport.stats()).toMatchObject({ tcpConnectionsRefused: 1, tcpConnectionsInbound: 1, tcpConnectionsOutbound: 1 });
  });

  it('refuses inbound connections beyond maxTcpConnectionsPerSource from one address, not from others', async () => {
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0'], { maxTcpConnectionsPerSource: 2 });
    const port = transport.listeners[0]!.port;
    await client('127.0.0.1', port);
    await client('127.0.0.1', port);
    await until(() => transport.stats().tcpConnectionsInbound === 2, 'two connections from 127.0.0.1');
    expect(await connectionAttempt('127.0.0.1', port)).toBe('closed');
    const [report] = await errors.atLeast(1, 'the per-source refusal');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_SOURCE_LIMIT');
    // Another source address (all of 127/8 is loopback on Linux) is not affected.
    const other = await client('127.0.0.1', port, '127.0.0.2');
    await other.write(sipRequest('other', 'TCP'));
    const [message] = await inbound.atLeast(1, 'the request from 127.0.0.2');
    expect(message!.sourceAddress).toBe('127.0.0.2');
    expect(transport.stats()).toMatchObject({ tcpConnectionsPerSourceRefused: 1, tcpConnectionsInbound: 3, tcpConnectionsRefused: 0 });
  });

  it('asks admitConnection at accept: a peer it refuses is closed before any message, one it admits is served', async () => {
    const asked: string[] = [];
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0'], {
      admitConnection: (address, port) => {
        asked.push(`${address}:${port}`);
        return address === '127.0.0.1';
      },
    });
    const port = transport.listeners[0]!.port;
    expect(await connectionAttempt('127.0.0.1', port, '127.0.0.3', sipRequest('refused', 'TCP'))).toBe('closed');
    const [report] = await errors.atLeast(1, 'the not-admitted report');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_NOT_ADMITTED');
    expect(report!.context).toMatchObject({ operation: 'accept', remoteAddress: '127.0.0.3' });
    const ua = await client('127.0.0.1', port);
    await ua.write(sipRequest('admitted', 'TCP'));
    const [message] = await inbound.atLeast(1, 'the admitted request');
    expect(message!.sourceAddress).toBe('127.0.0.1');
    expect(inbound.items).toHaveLength(1);
    expect(asked).toEqual([expect.stringMatching(/^127\.0\.0\.3:\d+$/), `127.0.0.1:${ua.socket.localPort}`]);
    expect(transport.stats()).toMatchObject({ tcpConnectionsNotAdmitted: 1, tcpConnectionsAccepted: 1, tcpConnectionsInbound: 1 });
  });

  it('refuses the peer when admitConnection throws, and goes on', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], {
      admitConnection: () => {
        throw new Error('table not loaded');
      },
    });
    expect(await connectionAttempt('127.0.0.1', transport.listeners[0]!.port)).toBe('closed');
    await errors.atLeast(2, 'the handler report and the refusal');
    expect(errors.items.map((e) => e.err.code)).toEqual(['E_TRANSPORT_HANDLER', 'E_TRANSPORT_TCP_NOT_ADMITTED']);
    expect(transport.stats()).toMatchObject({ handlerErrors: 1, tcpConnectionsNotAdmitted: 1, tcpConnectionsOpen: 0 });
  });

  it('answers many pings in one segment with as many pongs, in one write', async () => {
    const { transport } = await harness(['tcp:127.0.0.1:0']);
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    await ua.write('\r\n\r\n'.repeat(1000));
    await until(() => ua.received().length === 2000, '1000 pongs');
    expect(ua.received()).toBe('\r\n'.repeat(1000));
    expect(transport.stats().tcpKeepAlivePings).toBe(1000);
  });

  it('closes an accepted connection that sends no message within tcpMessageTimeoutMs', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], { tcpMessageTimeoutMs: 200 });
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    // Keep-alive pings are not a message: they do not keep a silent connection open.
    await ua.write('\r\n\r\n');
    await within(ua.closed, 'the silent connection to be closed');
    const [report] = await errors.atLeast(1, 'the timeout report');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_MESSAGE_TIMEOUT');
    expect(report!.err.message).toContain('no message, not complete within 200 ms');
    expect(transport.stats()).toMatchObject({ tcpMessageTimeouts: 1, tcpConnectionsIdleClosed: 0 });
  });

  it('times a message from its first byte: one trickled past tcpMessageTimeoutMs closes the connection, whole ones do not', async () => {
    const { transport, inbound, errors } = await harness(['tcp:127.0.0.1:0'], { tcpMessageTimeoutMs: 1000 });
    const ua = await client('127.0.0.1', transport.listeners[0]!.port);
    // Whole messages, spaced over more than the timeout, keep the connection.
    for (let i = 0; i < 3; i++) {
      await ua.write(sipRequest(`whole-${i}`, 'TCP'));
      await inbound.atLeast(i + 1, `message ${i}`);
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(ua.socket.destroyed).toBe(false);
    // A message split in two with a pause inside it, still within the timeout, is fine.
    const split = sipRequest('split', 'TCP');
    await ua.write(split.slice(0, 20));
    await new Promise((r) => setTimeout(r, 100));
    await ua.write(split.slice(20));
    await inbound.atLeast(4, 'the split message');
    // One trickled a byte every 50 ms never completes in time (every byte resets the idle
    // timer, not the message timer). Bounded: at most 80 bytes (4 s), under its length.
    const slow = sipRequest('slow', 'TCP');
    for (let i = 0; i < 80 && !ua.socket.destroyed; i++) {
      await ua.write(slow[i]!).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
    await within(ua.closed, 'the trickling connection to be closed');
    const [report] = await errors.atLeast(1, 'the timeout report');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_MESSAGE_TIMEOUT');
    expect(report!.err.message).toContain('a message begun, not complete within 1000 ms');
    expect(inbound.items).toHaveLength(4);
    expect(transport.stats()).toMatchObject({ tcpMessageTimeouts: 1 });
  });

  // Target.inboundByIdOnly (set on responses): test/security/tcp-response-steering.test.ts
  // shows it never lands on another peer's connection; these show what still works.
  it('still sends a response on the inbound connection its id names', async () => {
    const { transport, inbound } = await harness(['tcp:127.0.0.1:0']);
    const a = await client('127.0.0.1', transport.listeners[0]!.port);
    await a.write(sipRequest('by-id', 'TCP'));
    const [request] = await inbound.atLeast(1, 'the request');
    // The address:port given is wrong on purpose: the id alone finds the connection.
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: 1, connectionId: request!.connectionId, inboundByIdOnly: true }, Buffer.from(OK_RESPONSE));
    await until(() => a.received() === OK_RESPONSE, 'the response on the connection its id names');
    expect(transport.stats().tcpConnectionsOpened).toBe(0);
  });

  it('reuses an outbound connection to the address:port for a response without a usable id', async () => {
    const { transport } = await harness(['tcp:127.0.0.1:0']);
    const pbx = await peer('127.0.0.1');
    const target = { protocol: 'tcp' as const, address: '127.0.0.1', port: pbx.port };
    const request = sipRequest('out', 'TCP');
    transport.send(target, Buffer.from(request));
    await until(() => pbx.received(0) === request, 'the request on a new outbound connection');
    transport.send({ ...target, connectionId: 987_654, inboundByIdOnly: true }, Buffer.from(OK_RESPONSE));
    await until(() => pbx.received(0) === request + OK_RESPONSE, 'the response on the same outbound connection');
    expect(pbx.connections).toHaveLength(1);
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 1, tcpConnectionsOutbound: 1 });
  });

  it("lets a request reuse a peer's inbound connection by address:port (in-dialog requests to TCP phones)", async () => {
    const { transport, inbound } = await harness(['tcp:127.0.0.1:0']);
    const phone = await client('127.0.0.1', transport.listeners[0]!.port);
    await phone.write(sipRequest('register', 'TCP'));
    await inbound.atLeast(1, 'the request that opened the connection');
    const bye = sipRequest('bye', 'TCP');
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: phone.socket.localPort! }, Buffer.from(bye));
    await within(
      (async () => until(() => phone.received() === bye, 'the request on the phone’s own connection'))(),
      'the in-dialog request',
    );
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 0, tcpConnectionsInbound: 1 });
  });
  it('closes a connection whose unsent bytes exceed maxTcpQueuedBytes', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0'], { maxTcpQueuedBytes: 1000 });
    const pbx = await peer('127.0.0.1');
    const target = { protocol: 'tcp' as const, address: '127.0.0.1', port: pbx.port };
    // Both sends happen before the connection is up, so both are queued.
    transport.send(target, Buffer.from(sipRequest('q1', 'TCP', 'x'.repeat(500))));
    transport.send(target, Buffer.from(sipRequest('q2', 'TCP', 'x'.repeat(500))));
    const [report] = await errors.atLeast(1, 'the queue overflow');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_QUEUE_FULL');
    await until(() => transport.stats().tcpConnectionsOpen === 0, 'the connection to close');
    expect(transport.stats().tcpQueueOverflows).toBe(1);
  });

  it('reports a target with no tcp listener of its family', async () => {
    const { transport, errors } = await harness(['tcp:127.0.0.1:0']);
    transport.send({ protocol: 'tcp', address: '::1', port: 5060 }, Buffer.from(sipRequest('v6', 'TCP')));
    const [report] = await errors.atLeast(1, 'the no-listener report');
    expect(report!.err.code).toBe('E_TRANSPORT_NO_LISTENER');
  });

  it('close() closes listeners and every connection', async () => {
    const { transport } = await startTransport({ listen: [parseListenSpec('tcp:127.0.0.1:0')] });
    const port = transport.listeners[0]!.port;
    const ua = await tcpClient('127.0.0.1', port);
    const pbx = await peer('127.0.0.1');
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: pbx.port }, Buffer.from(sipRequest('bye', 'TCP')));
    await until(() => pbx.connections.length === 1 && transport.stats().tcpConnectionsOpen === 2, 'both connections');
    const outboundClosed = pbx.closed(0);
    await within(transport.close(), 'close()');
    await within(ua.closed, 'the inbound connection to close');
    await within(outboundClosed, 'the outbound connection to close');
    await expect(tcpClient('127.0.0.1', port)).rejects.toThrow();
  });
});
