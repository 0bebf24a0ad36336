/**
 * Issue 8, item 3: who may hold a TCP connection to the proxy. By default a connection from
 * a source that no admitting address entry or next hop covers is closed at accept — before
 * it can send a byte that we would parse, and before it takes a slot; `acl.tcpAccept: any`
 * goes back to accepting everyone and refusing their requests one by one. Inbound
 * connections from one address are capped (default 32). Against the real `sipctl serve`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sipRequest, unique } from '../helpers/sip-peer.js';
import { connect } from 'node:net';
import { connectionAttempt, tcpClient, until, within } from '../transport/helpers.js';
import { configFile, proxyStatus, sleep } from './tcp-helpers.js';

/** An OPTIONS to the proxy itself: an admitted sender gets 200, another 401. */
function optionsToProxy(proxyPort: number, localPort: number): string {
  return sipRequest({
    method: 'OPTIONS',
    uri: `sip:127.0.0.1:${proxyPort}`,
    via: { transport: 'TCP', host: '127.0.0.1', port: localPort },
    callId: unique('tcp-admission-'),
  });
}

const open: { destroy(): void }[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
});

/**
 * Connect from `localAddress`, send an OPTIONS to the proxy once connected, and wait for the
 * connection to end: what came back on it (bounded: 5 s, then it is destroyed).
 */
async function strangerAttempt(localAddress: string, proxyPort: number): Promise<{ closedByProxy: boolean; received: string }> {
  const socket = connect({ host: '127.0.0.1', port: proxyPort, localAddress });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {
    /* a reset is what we expect */
  });
  socket.once('connect', () => socket.write(optionsToProxy(proxyPort, socket.localPort!)));
  const closedByProxy = await within(new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))), `the proxy to close the connection from ${localAddress}`).catch(() => false);
  socket.destroy();
  return { closedByProxy, received: Buffer.concat(chunks).toString('latin1') };
}

/** Connect from `localAddress`, send an OPTIONS to the proxy, and return the status line of the answer. */
async function askFrom(localAddress: string, proxyPort: number): Promise<string> {
  const c = await tcpClient('127.0.0.1', proxyPort, localAddress);
  open.push(c.socket);
  await c.write(optionsToProxy(proxyPort, c.socket.localPort!));
  await until(() => c.received().includes('\r\n\r\n'), `an answer on the connection from ${localAddress}`);
  return c.received().split('\r\n')[0]!;
}

describe('acl.tcpAccept: admitted (the default)', () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await startProxyProcess({ setup: [['address', 'add', '1', '127.0.0.1', '32']], args: ['--listen', 'tcp:127.0.0.1:0'] });
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it('closes a connection from an address nothing admits at accept: no answer, not even 401; an admitted one is served', async () => {
    const port = proxy.ports.tcp!;
    for (const stranger of ['127.0.0.2', '127.9.8.7']) {
      // It may get its request out before the reset arrives; it never gets a byte back.
      expect(await strangerAttempt(stranger, port)).toEqual({ closedByProxy: true, received: '' });
    }
    expect(await askFrom('127.0.0.1', port)).toBe('SIP/2.0 200 OK');
    const { transport } = await proxyStatus(proxy);
    expect(transport).toMatchObject({ tcpConnectionsNotAdmitted: 2, tcpConnectionsAccepted: 1, tcpMessagesIn: 1 });
    await until(() => proxy.stderr().includes('closed a TCP connection from an address not admitted'), 'the log line');
    expect(proxy.stderr()).toMatch(/INFO closed a TCP connection from an address not admitted \(acl\.tcpAccept\) peer=127\.0\.0\.2:\d+/);
  });
});

describe('acl.tcpAccept: any', () => {
  let proxy: ProxyProcess;
  let config: ReturnType<typeof configFile>;
  beforeAll(async () => {
    config = configFile('acl:\n  tcpAccept: any\n');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--listen', 'tcp:127.0.0.1:0', '--config', config.path],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    config?.remove();
  });

  it('accepts a connection from an address nothing admits, and refuses its request with 401', async () => {
    expect(await askFrom('127.0.0.2', proxy.ports.tcp!)).toBe('SIP/2.0 401 Address not authorised');
    expect(await askFrom('127.0.0.1', proxy.ports.tcp!)).toBe('SIP/2.0 200 OK');
    expect((await proxyStatus(proxy)).transport).toMatchObject({ tcpConnectionsNotAdmitted: 0, tcpConnectionsAccepted: 2 });
  });
});

describe('tcp.maxConnectionsPerSource (default 32)', () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await startProxyProcess({ setup: [['address', 'add', '1', '127.0.0.0', '8']], args: ['--listen', 'tcp:127.0.0.1:0'] });
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it('refuses the 33rd connection from one address, and serves another address meanwhile', async () => {
    const port = proxy.ports.tcp!;
    for (let i = 0; i < 32; i++) {
      const c = await tcpClient('127.0.0.1', port, '127.0.0.5');
      open.push(c.socket);
    }
    // The proxy may accept the last of them a moment after our connect completes.
    let open32 = 0;
    for (let i = 0; i < 50 && open32 < 32; i++) {
      if (i > 0) await sleep(20);
      open32 = (await proxyStatus(proxy)).transport.tcpConnectionsOpen;
    }
    expect(open32).toBe(32);
    expect(await connectionAttempt('127.0.0.1', port, '127.0.0.5')).toBe('closed');
    expect(await askFrom('127.0.0.6', port)).toBe('SIP/2.0 200 OK');
    const { transport } = await proxyStatus(proxy);
    expect(transport).toMatchObject({ tcpConnectionsPerSourceRefused: 1, tcpConnectionsInbound: 33, tcpConnectionsRefused: 0 });
    // Every one of the 32 is still open and usable.
    expect(open.filter((s) => (s as { destroyed?: boolean }).destroyed)).toHaveLength(0);
  });
});

describe('configuration of the TCP limits', () => {
  it('has safe defaults and refuses bad values with one line naming the key', () => {
    const d = defaultConfig();
    expect(d.acl.tcpAccept).toBe('admitted');
    expect(d.tcp).toMatchObject({ maxConnections: 4096, maxOutboundConnections: 1024, maxConnectionsPerSource: 32, messageTimeoutS: 10 });
    expect(applyConfig(d, { acl: { tcpAccept: 'any' }, tcp: { maxConnectionsPerSource: 4, messageTimeoutS: 1 } })).toMatchObject({
      acl: { tcpAccept: 'any' },
      tcp: { maxConnectionsPerSource: 4, messageTimeoutS: 1 },
    });
    expect(() => applyConfig(d, { acl: { tcpAccept: 'everyone' } })).toThrow('config acl.tcpAccept: expected admitted or any, got "everyone"');
    expect(() => applyConfig(d, { tcp: { maxOutboundConnections: 0 } })).toThrow(/^config tcp\.maxOutboundConnections: expected a whole number from 1/);
    expect(() => applyConfig(d, { tcp: { messageTimeoutS: 0 } })).toThrow(/^config tcp\.messageTimeoutS: expected a whole number from 1 to 3600/);
    expect(() => applyConfig(d, { tcp: { headerTimeoutS: 5 } })).toThrow(/^config tcp\.headerTimeoutS: unknown option/);
  });
});
