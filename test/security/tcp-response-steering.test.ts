/**
 * Issue 8, finding 2 (the transport half): a response may go into an inbound TCP connection
 * only when the target names that connection by id. Without a usable id the transport must
 * not fall back to "whatever connection comes from that address:port" — that connection
 * belongs to some other peer, and a forged Via naming its address:port would steer our
 * responses into it. RFC 3261 §18.2.2: when the request's connection is gone, open a new
 * one to the Via's address and port. Requests still reuse any connection to their target.
 *
 * At the transport level, on real loopback sockets: the core part (which connection a Via
 * names, with a MAC) is tested with the core. What must keep working (a response on the
 * connection its id names, on an outbound connection to the address:port, requests reusing
 * inbound connections) is in test/transport/tcp.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseListenSpec } from '../../src/transport/listen-spec.js';
import type { Target } from '../../src/transport/types.js';
import { sipRequest, startTransport, tcpClient, until, type Harness } from '../transport/helpers.js';

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
    await until(() => transport.stats().tcpConnectionsOpen === 1, "A's connection to leave the table");
    transport.send({ ...bAddress, connectionId: fromA.connectionId, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    // No id at all: the same.
    transport.send({ ...bAddress, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    // listenerFor must not pick B's connection either.
    expect(transport.listenerFor({ ...bAddress, inboundByIdOnly: true })).toBe(transport.listeners[0]);

    // B's connection has received nothing of them: checked after a response that B's id
    // does name, so anything written on B before it would have arrived first.
    transport.send({ ...bAddress, connectionId: fromB.connectionId, inboundByIdOnly: true }, Buffer.from(RESPONSE));
    await until(() => b.received().length > 0, "the response B's id names");
    await new Promise((r) => setTimeout(r, 50));
    expect(b.received(), "only the response addressed to B's connection by its id").toBe(RESPONSE);

    // Both went to a new (outbound) connection to 127.0.0.1:<B's port>, the second reusing
    // the first while it connects; nothing listens there: one failed connect, reported with
    // both responses' bytes dropped.
    const [report] = await errors.atLeast(1, 'the failed connect to the address:port');
    expect(report!.err.code).toBe('E_TRANSPORT_TCP_CONNECT');
    expect(report!.err.message).toContain(`cannot connect to tcp:127.0.0.1:${b.socket.localPort}: connection refused`);
    expect(report!.err.message).toContain(`${2 * RESPONSE.length} queued bytes dropped`);
    expect(transport.stats()).toMatchObject({ tcpConnectionsOpened: 1, tcpConnectFailures: 1 });
  });

});
