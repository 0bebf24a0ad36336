/**
 * Issue 8, finding 2 (the transport half): a response may go into an inbound TCP connection
 * only when the target names that connection by id. Without a usable id the transport must
 * not fall back to "whatever connection comes from that address:port" — that connection
 * belongs to some other peer, and a forged Via naming its address:port would steer our
 * responses into it. RFC 3261 §18.2.2: when the request's connection is gone, open a new
 * one to the Via's address and port. Requests still reuse any connection to their target.
 *
 * At the transport level, on real loopback sockets: the core part (which connection a Via
 * names, with a MAC) is tested with the core.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseListenSpec } from '../../src/transport/listen-spec.js';
import type { Target } from '../../src/transport/types.js';
import { sipRequest, startTransport, tcpClient, tcpPeer, until, within, type Harness } from '../transport/helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function harness(): Promise<Harness> {
  const h = await startTransport({ listen: [parseListenSpec('tcp:127.0.0.1:0')] });
  cleanups.push(() => h.transport.close());
  return h;
}

async function client(port: number) {
  const c = await tcpClient('127.0.0.1', port);
  cleanups.push(async () => {
    c.socket.destroy();
    await c.closed;
  });
  return c;
}

const RESPONSE = 'SIP/2.0 200 OK\r\nCall-ID: a@test\r\nContent-Length: 0\r\n\r\n';

describe('responses are steered into an inbound TCP connection only by its id', () => {
  it("never writes a response for A into B's inbound connection because the target names B's address:port", async () => {
    const { transport, inbound, errors } = await harness();
    const port = transport.listeners[0]!.port;
    const a = await client(port);
    const b = await client(port);
    await a.write(sipRequest('from-a', 'TCP'));
    await b.write(sipRequest('from-b', 'TCP'));
    await inbound.atLeast(2, 'a request from each client');
    const fromA = inbound.items.find((m) => m.sourcePort === a.socket.localPort)!;
    const fromB = inbound.items.find((m) => m.sourcePort === b.socket.localPort)!;
    const bAddress: Omit<Target, 'inboundByIdOnly'> = { protocol: 'tcp', address: '127.0.0.1', port: b.socket.localPort! };

    // A's connection closes; the response for A names A's (dead) connection but B's
    // address:port, as a forged Via would.
    a.socket.destroy();
    await until(() => transport.stats().tcpConnectionsInbound === 1, "A's connection to leave the table");
    transport.send({ ...bAddress, connectionId: fromA.connectionId, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    // No id at all: the same.
    transport.send({ ...bAddress, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    // listenerFor must not pick B's connection either.
    expect(transport.listenerFor({ ...bAddress, inboundByIdOnly: true })).toBe(transport.listeners[0]);

    // Both go to a new (outbound) connection to 127.0.0.1:<B's port>, the second reusing
    // the first while it connects; nothing listens there: one failed connect, reported with
    // both responses' bytes dropped. B gets nothing.
    const [report] = await errors.atLeast(1, 'the failed connect to the address:port');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_CONNECT');
    expect(report!.err.message).toContain(`cannot connect to tcp:127.0.0.1:${b.socket.localPort}: connection refused`);
    expect(report!.err.message).toContain(`${2 * RESPONSE.length} queued bytes dropped`);
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 1, tcpConnectFailures: 1 });
    // B's connection is still there and has received nothing (checked after a round trip on
    // it, so anything written before would have arrived).
    transport.send({ ...bAddress, connectionId: fromB.connectionId, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    await until(() => b.received().length > 0, "the response B's id names");
    expect(b.received()).toBe(RESPONSE);
  });

  it('still sends a response on the inbound connection its id names', async () => {
    const { transport, inbound } = await harness();
    const a = await client(transport.listeners[0]!.port);
    await a.write(sipRequest('by-id', 'TCP'));
    const [request] = await inbound.atLeast(1, 'the request');
    // The address:port given is wrong on purpose: the id alone finds the connection.
    transport.send({ protocol: 'tcp', address: '127.0.0.1', port: 1, connectionId: request!.connectionId, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    await until(() => a.received() === RESPONSE, 'the response on the connection its id names');
    expect(transport.stats().tcpConnectionsOpened).toBe(0);
  });

  it('reuses an outbound connection to the address:port for a response without a usable id', async () => {
    const { transport } = await harness();
    const pbx = await tcpPeer('127.0.0.1');
    cleanups.push(pbx.close);
    const target = { protocol: 'tcp' as const, address: '127.0.0.1', port: pbx.port };
    const request = sipRequest('out', 'TCP');
    transport.send(target, Buffer.from(request));
    await until(() => pbx.received(0) === request, 'the request on a new outbound connection');
    transport.send({ ...target, connectionId: 987_654, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    await until(() => pbx.received(0) === request + RESPONSE, 'the response on the same outbound connection');
    expect(pbx.connections).toHaveLength(1);
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 1, tcpConnectionsOutbound: 1 });
  });

  it("lets a request reuse a peer's inbound connection by address:port (in-dialog requests to TCP phones)", async () => {
    const { transport, inbound } = await harness();
    const phone = await client(transport.listeners[0]!.port);
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
});
