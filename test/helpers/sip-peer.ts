/**
 * A SIP peer for end-to-end tests: a real UDP socket (or TCP connection) on loopback that
 * sends raw messages and waits for what arrives, parsed with our own parser.
 * Every wait is bounded.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { StreamFramer } from '../../src/sip/framing.js';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';

export interface Received {
  msg: SipMessage;
  raw: Buffer;
  address: string;
  port: number;
  /** For TCP: the socket it came on (so a test can answer on it). */
  socket?: Socket;
}

abstract class Peer {
  protected readonly inbox: Received[] = [];
  private waiters: Array<{ pred: (r: Received) => boolean; resolve: (r: Received) => void; cancel: () => void }> = [];

  protected deliver(raw: Buffer, address: string, port: number, socket?: Socket): void {
    let msg: SipMessage;
    try {
      msg = parseMessage(raw);
    } catch {
      return;
    }
    const r: Received = { msg, raw, address, port, socket };
    const w = this.waiters.find((x) => x.pred(r));
    if (w !== undefined) {
      this.waiters = this.waiters.filter((x) => x !== w);
      w.resolve(r);
    } else {
      this.inbox.push(r);
    }
  }

  /** Wait for a message matching pred (default: any), at most timeoutMs. */
  next(pred: (r: Received) => boolean = () => true, timeoutMs = 3000): Promise<Received> {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (r: Received) => {
          clearTimeout(timer);
          resolve(r);
        },
        cancel: () => {
          clearTimeout(timer);
          reject(new Error('cancelled'));
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`no matching SIP message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Resolves true if nothing matching arrives within ms. */
  async nothing(pred: (r: Received) => boolean = () => true, ms = 300): Promise<boolean> {
    try {
      await this.next(pred, ms);
      return false;
    } catch {
      return true;
    }
  }

  /** Stop every pending wait (they reject), so none of them swallows a later message. */
  cancelWaits(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.cancel();
  }

  drain(): Received[] {
    return this.inbox.splice(0);
  }
}

export class UdpPeer extends Peer {
  private constructor(private readonly socket: UdpSocket, readonly address: string, readonly port: number) {
    super();
    socket.on('message', (raw, rinfo) => this.deliver(raw, rinfo.address, rinfo.port));
  }

  static async open(address = '127.0.0.1'): Promise<UdpPeer> {
    const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return new UdpPeer(socket, address, socket.address().port);
  }

  send(text: string | Buffer, port: number, address = '127.0.0.1'): void {
    this.socket.send(typeof text === 'string' ? Buffer.from(text, 'latin1') : text, port, address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A TCP client connection to the proxy. */
export class TcpClient extends Peer {
  private constructor(private readonly socket: Socket) {
    super();
    const framer = new StreamFramer({ maxHeaderBytes: 65536, maxBodyBytes: 65536 });
    socket.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) if (ev.kind === 'message') this.deliver(ev.bytes, socket.remoteAddress!, socket.remotePort!, socket);
    });
    socket.on('error', () => {});
  }

  /** Connect to address:port, from `localAddress` when given (any 127/8 address on loopback). */
  static open(port: number, address = '127.0.0.1', localAddress?: string): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: address, localAddress }, () => resolve(new TcpClient(s)));
      s.once('error', reject);
    });
  }

  get localPort(): number {
    return this.socket.localPort!;
  }

  send(text: string | Buffer): void {
    this.socket.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A TCP server peer (a PBX that the proxy connects to). */
export class TcpServerPeer extends Peer {
  readonly sockets: Socket[] = [];
  private constructor(private readonly server: Server, readonly port: number) {
    super();
  }

  static async open(address = '127.0.0.1'): Promise<TcpServerPeer> {
    let peer: TcpServerPeer | undefined;
    const server = createServer((s) => {
      peer!.sockets.push(s);
      const framer = new StreamFramer({ maxHeaderBytes: 65536, maxBodyBytes: 65536 });
      s.on('data', (chunk: Buffer) => {
        for (const ev of framer.push(chunk)) if (ev.kind === 'message') peer!['deliver'](ev.bytes, s.remoteAddress!, s.remotePort!, s);
      });
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    const port = (server.address() as { port: number }).port;
    peer = new TcpServerPeer(server, port);
    return peer;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** CRLF line ends for a message written with \n in a template literal. */
export function sip(text: string): string {
  return text.replace(/^\n/, '').replace(/\r?\n/g, '\r\n');
}

let seq = 0;
/** A unique token for branches, tags and Call-IDs. */
export function unique(prefix = ''): string {
  seq++;
  return `${prefix}${process.pid.toString(36)}${Date.now().toString(36)}${seq}`;
}

/** Build a response to a received request: copies Via, From, To (+tag), Call-ID, CSeq. */
export function responseTo(req: SipMessage, status: number, reason: string, extra: string[] = [], toTag = 'uas1'): string {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const v of req.headerFields('via')) lines.push(`Via: ${v}`);
  for (const rr of req.headerFields('record-route')) lines.push(`Record-Route: ${rr}`);
  lines.push(`From: ${req.header('from')}`);
  const to = req.header('to')!;
  lines.push(`To: ${to}${/;tag=/i.test(to) || status === 100 ? '' : `;tag=${toTag}`}`);
  lines.push(`Call-ID: ${req.header('call-id')}`);
  lines.push(`CSeq: ${req.header('cseq')}`);
  lines.push(...extra);
  lines.push('Content-Length: 0', '', '');
  return lines.join('\r\n');
}

/**
 * A request as a UA writes it: request line, our Via (with `rport` when asked for), From
 * (with a fresh tag), To, Call-ID, CSeq, Max-Forwards, any extra header lines, no body.
 * Hosts are written as given (IPv6 in brackets).
 */
export function sipRequest(opts: {
  method?: string;
  uri: string;
  via: { transport?: 'UDP' | 'TCP'; host: string; port: number; rport?: boolean };
  callId: string;
  to?: string;
  headers?: readonly string[];
}): string {
  const method = opts.method ?? 'INVITE';
  const v = opts.via;
  return [
    `${method} ${opts.uri} SIP/2.0`,
    `Via: SIP/2.0/${v.transport ?? 'UDP'} ${v.host}:${v.port};branch=${unique('z9hG4bK')}${v.rport ? ';rport' : ''}`,
    `From: <sip:caller@${v.host}>;tag=${unique('f')}`,
    `To: ${opts.to ?? `<${opts.uri}>`}`,
    `Call-ID: ${opts.callId}`,
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    ...(opts.headers ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}
