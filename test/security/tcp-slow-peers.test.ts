/**
 * Issue 8, item 3: peers that hold a connection without doing their part.
 *
 * - A peer that sends CRLF keep-alive pings and never reads the pongs: every pong goes
 *   through the connection's capped write queue, so the proxy closes the connection once
 *   the queue is full, and its memory stays where it was (before, each pong was a direct
 *   socket write, about 100 bytes of Node bookkeeping per 4-byte ping, without limit).
 * - Slow-loris: a peer that trickles a message, or connects and sends none, is closed
 *   `tcp.messageTimeoutS` after the first byte (or after connecting); 1 s here.
 *
 * Against the real `sipctl serve`, from an admitted address (admission is not what is
 * tested here).
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sipRequest, unique } from '../helpers/sip-peer.js';
import { tcpClient, until, within } from '../transport/helpers.js';
import { configFile, MB, proxyStatus } from './tcp-helpers.js';

const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

function optionsToProxy(proxyPort: number, localPort: number): string {
  return sipRequest({
    method: 'OPTIONS',
    uri: `sip:127.0.0.1:${proxyPort}`,
    via: { transport: 'TCP', host: '127.0.0.1', port: localPort },
    callId: unique('tcp-slow-'),
  });
}

describe('a peer that pings and never reads', () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await startProxyProcess({ setup: [['address', 'add', '1', '127.0.0.1', '32']], args: ['--listen', 'tcp:127.0.0.1:0'] });
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it('is disconnected when its unread pongs fill the write queue (1 MiB), and the proxy does not grow', async () => {
    const before = await proxyStatus(proxy);
    const socket = connect({ host: '127.0.0.1', port: proxy.ports.tcp! });
    sockets.push(socket);
    socket.on('error', () => {
      /* the proxy closes it; a reset is fine */
    });
    await within(new Promise((resolve) => socket.once('connect', resolve)), 'the connection');
    // Never read: the pongs pile up in the kernel, then in the proxy's queue.
    socket.pause();
    let closed = false;
    socket.once('close', () => (closed = true));
    const chunk = Buffer.from('\r\n\r\n'.repeat(16 * 1024)); // 16,384 pings, 64 KiB
    // Bounded: at most 32 MB of pings, and stop early (failing) if the proxy grows by more
    // than 128 MB — what the old unbounded pongs would have done many times over.
    const LIMIT_BYTES = 32 * MB;
    let sent = 0;
    let peakRss = before.rss;
    while (!closed && sent < LIMIT_BYTES && peakRss - before.rss < 128 * MB) {
      if (!socket.write(chunk)) {
        await within(
          new Promise((resolve) => {
            socket.once('drain', resolve);
            socket.once('close', resolve);
          }),
          'the proxy to read the pings (or close)',
          10_000,
        );
      }
      sent += chunk.length;
      if (sent % MB === 0) peakRss = Math.max(peakRss, (await proxyStatus(proxy)).rss);
    }
    await within(new Promise<void>((resolve) => (closed ? resolve() : socket.once('close', () => resolve()))), 'the proxy to close the connection', 10_000);
    const after = await proxyStatus(proxy);
    peakRss = Math.max(peakRss, after.rss);
    console.log(
      `pings sent before the proxy closed the connection: ${(sent / MB).toFixed(1)} MB; ` +
        `proxy RSS ${(before.rss / MB).toFixed(0)} MB before, peak ${(peakRss / MB).toFixed(0)} MB`,
    );
    expect(sent).toBeLessThan(LIMIT_BYTES);
    expect(after.transport.tcpQueueOverflows).toBe(1);
    expect(after.transport.tcpConnectionsOpen).toBe(0);
    // The queue is 1 MiB; the rest is read buffers awaiting collection.
    expect(peakRss - before.rss).toBeLessThan(64 * MB);
  });
});

describe('slow-loris (tcp.messageTimeoutS: 1)', () => {
  let proxy: ProxyProcess;
  let config: ReturnType<typeof configFile>;
  beforeAll(async () => {
    config = configFile('tcp:\n  messageTimeoutS: 1\n');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--listen', 'tcp:127.0.0.1:0', '--config', config.path],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    config?.remove();
  });

  it('closes a connection that trickles a message, and one that sends nothing; a prompt peer stays connected', async () => {
    const port = proxy.ports.tcp!;
    const prompt = await tcpClient('127.0.0.1', port);
    sockets.push(prompt.socket);
    await prompt.write(optionsToProxy(port, prompt.socket.localPort!));
    await until(() => prompt.received().startsWith('SIP/2.0 200 OK\r\n'), 'the answer to the prompt peer');

    const silent = await tcpClient('127.0.0.1', port);
    sockets.push(silent.socket);
    const trickler = await tcpClient('127.0.0.1', port);
    sockets.push(trickler.socket);
    const message = optionsToProxy(port, trickler.socket.localPort!);
    // One byte every 100 ms: every byte resets an idle timer, none resets the message timer.
    // Bounded: at most 60 bytes (6 s), short of the whole message.
    let written = 0;
    for (; written < 60 && !trickler.socket.destroyed; written++) {
      await trickler.write(message[written]!).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
    await within(trickler.closed, 'the trickling connection to be closed', 10_000);
    await within(silent.closed, 'the silent connection to be closed', 10_000);
    expect(written).toBeLessThan(60);
    expect(trickler.received()).toBe('');
    // The prompt peer's message was complete long ago: no timer runs for it.
    expect(prompt.socket.destroyed).toBe(false);
    const { transport } = await proxyStatus(proxy);
    expect(transport).toMatchObject({ tcpMessageTimeouts: 2, tcpConnectionsInbound: 1, tcpConnectionsIdleClosed: 0 });
  });
});
