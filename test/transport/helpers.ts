/**
 * Helpers for the transport tests: bounded waits (every wait fails after a deadline instead
 * of hanging), an inbox for onMessage / onError, loopback clients, IPv6 detection.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import type { SipctlError } from '../../src/errors.js';
import { createTransport, type TransportOptions } from '../../src/transport/transport.js';
import type { Inbound, Transport, TransportErrorContext } from '../../src/transport/types.js';

export const WAIT_MS = 5_000;

/** Resolve with the promise, or reject naming `what` after `ms` (a hang guard, not a timing assertion). */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Poll `check` until true; bounded in count and time. */
export async function until(check: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const step = 5;
  for (let i = 0; i < ms / step; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, step));
  }
  throw new Error(`gave up after ${ms} ms waiting for ${what}`);
}

/** A list that tests can wait on until it holds `count` items. */
export class Inbox<T> {
  readonly items: T[] = [];
  push = (item: T): void => {
    this.items.push(item);
  };
  async atLeast(count: number, what = `${count} items`): Promise<T[]> {
    await until(() => this.items.length >= count, what);
    return this.items;
  }
}

export interface ErrorReport {
  err: SipctlError;
  context: TransportErrorContext;
}

export interface Harness {
  transport: Transport;
  inbound: Inbox<Inbound>;
  errors: Inbox<ErrorReport>;
}

/** A transport on the given specs with inboxes for messages and errors. */
export async function startTransport(options: Omit<TransportOptions, 'onMessage' | 'onError'>): Promise<Harness> {
  const inbound = new Inbox<Inbound>();
  const errors = new Inbox<ErrorReport>();
  const transport = await createTransport({
    ...options,
    onMessage: inbound.push,
    onError: (err, context) => errors.push({ err, context }),
  });
  return { transport, inbound, errors };
}

/** Is ::1 usable on this machine? (Some CI containers have no IPv6 at all.) */
export async function ipv6LoopbackAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: '::1', port: 0 }, () => socket.close(() => resolve(true)));
  });
}

/** A UDP peer on loopback collecting what it receives. */
export async function udpPeer(address: string): Promise<{
  socket: dgram.Socket;
  port: number;
  received: Inbox<{ bytes: Buffer; address: string; port: number }>;
  close(): Promise<void>;
}> {
  const socket = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', ipv6Only: address.includes(':') });
  const received = new Inbox<{ bytes: Buffer; address: string; port: number }>();
  socket.on('message', (bytes, rinfo) => received.push({ bytes, address: rinfo.address, port: rinfo.port }));
  await new Promise<void>((resolve) => socket.bind({ address, port: 0 }, () => resolve()));
  try {
    socket.setRecvBufferSize(1024 * 1024);
  } catch {
    /* default is enough for the tests' few datagrams */
  }
  return {
    socket,
    port: socket.address().port,
    received,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

export function sendDatagram(socket: dgram.Socket, bytes: Buffer | string, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => socket.send(bytes, port, address, (err) => (err ? reject(err) : resolve())));
}

/** A TCP client connected to address:port (from `localAddress`, if given) that keeps everything it receives. */
export async function tcpClient(address: string, port: number, localAddress?: string): Promise<{
  socket: net.Socket;
  received: () => string;
  closed: Promise<void>;
  write(text: string | Buffer): Promise<void>;
}> {
  const socket = net.connect({ host: address, port, localAddress });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {
    /* resets are expected in some tests; `closed` tells the story */
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await within(new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection to ${address}:${port} closed before connecting`)));
  }), `connect to ${address}:${port}`);
  return {
    socket,
    received: () => Buffer.concat(chunks).toString('latin1'),
    closed,
    write: (text) => new Promise((resolve, reject) => socket.write(text, (err) => (err ? reject(err) : resolve()))),
  };
}

/**
 * Connect (from `localAddress`, if given), write `send` once connected, and report how it
 * ended: 'closed' when the other side closed or reset it, 'open' when it was still open
 * after `ms` (then it is destroyed), 'failed' when the connect itself failed.
 */
export async function connectionAttempt(
  address: string,
  port: number,
  localAddress?: string,
  send?: string,
  ms = WAIT_MS,
): Promise<'closed' | 'open' | 'failed'> {
  const socket = net.connect({ host: address, port, localAddress });
  let connected = false;
  let refusedSyn = false;
  socket.on('error', (err: NodeJS.ErrnoException) => {
    // A reset is one of the outcomes; only ECONNREFUSED means nothing accepted the SYN.
    if (err.code === 'ECONNREFUSED') refusedSyn = true;
  });
  socket.once('connect', () => {
    connected = true;
    if (send !== undefined) socket.write(send);
  });
  const outcome = await new Promise<'closed' | 'open' | 'failed'>((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      // A reset right after the handshake can beat the 'connect' event: the kernel did
      // connect (the listener accepted), so that is a close, not a failed connect; only a
      // refusal of the SYN itself (ECONNREFUSED) is a failure.
      resolve(connected || !refusedSyn ? 'closed' : 'failed');
    });
  });
  socket.destroy();
  return outcome;
}

/** A plain TCP server standing in for a PBX: records connections and what each sent. */
export async function tcpPeer(address: string): Promise<{
  port: number;
  connections: net.Socket[];
  received: (index: number) => string;
  /** Resolves when connection `index` has closed (whenever that was). */
  closed: (index: number) => Promise<void>;
  close(): Promise<void>;
}> {
  const connections: net.Socket[] = [];
  const data = new Map<net.Socket, Buffer[]>();
  const closings = new Map<net.Socket, Promise<void>>();
  const server = net.createServer((socket) => {
    connections.push(socket);
    data.set(socket, []);
    closings.set(socket, new Promise((resolve) => socket.once('close', () => resolve())));
    socket.on('data', (c: Buffer) => data.get(socket)!.push(c));
    socket.on('error', () => {
      /* the transport may reset it */
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: address, port: 0, ipv6Only: address.includes(':') }, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    received: (index) => Buffer.concat(data.get(connections[index]!) ?? []).toString('latin1'),
    closed: (index) => closings.get(connections[index]!)!,
    close: () =>
      new Promise((resolve) => {
        for (const s of connections) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port that nothing listens on (bound, then released). */
export async function closedTcpPort(address: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: address, port: 0 }, () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A small SIP request of at least `minBytes` (padded with a header), easy to recognise. */
export function sipRequest(tag: string, protocol: 'UDP' | 'TCP' = 'UDP', body = ''): string {
  return (
    `OPTIONS sip:pbx@example.com SIP/2.0\r\n` +
    `Via: SIP/2.0/${protocol} 192.0.2.1:5060;branch=z9hG4bK-${tag}\r\n` +
    `Call-ID: ${tag}@test\r\n` +
    `CSeq: 1 OPTIONS\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `\r\n` +
    body
  );
}

/**
 * A loopback port where a TCP connect never completes: a child process listens with a
 * backlog of 1 and is stopped (SIGSTOP), so it never accepts; once its accept queue is full
 * the kernel drops further SYNs (Linux) and the connect just waits. Bounded: at most 8
 * filler connections, 300 ms each to show they are stuck.
 */
export async function unresponsiveTcpPort(): Promise<{ port: number; release(): Promise<void> } | undefined> {
  const child = spawn(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen({host:'127.0.0.1',port:0,backlog:1},()=>process.stdout.write(s.address().port+'\\n'))"],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const fillers: net.Socket[] = [];
  const release = async (): Promise<void> => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
    await within(exited, 'the stopped listener to exit');
  };
  const port = await within(
    new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))),
    'the child listener',
  );
  child.kill('SIGSTOP');
  for (let i = 0; i < 8; i++) {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {
      /* destroyed on release */
    });
    fillers.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) return { port, release };
  }
  await release();
  return undefined;
}
