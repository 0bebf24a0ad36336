/**
 * One UDP listener: a node:dgram socket bound to a listen spec. Every datagram is one
 * message (RFC 3261 §18.3: no framing on datagrams); every send is one datagram from this
 * socket, so the peer sees the listener's address and port as the source, which is what
 * Via sent-by and rport (RFC 3581) promise it.
 */
import dgram from 'node:dgram';
import { SipctlError } from '../errors.js';
import type { TransportContext } from './context.js';
import { formatListenSpec } from './listen-spec.js';
import { describeSystemError, hostPort } from './system-errors.js';
import type { ListenSpec, Listener } from './types.js';

/**
 * Datagrams shorter than this cannot be SIP (the shortest start line and mandatory headers
 * are longer); they are NAT keep-alive probes (CRLF, a few zero bytes). Kamailio drops
 * datagrams under MIN_UDP_PACKET (32 bytes) the same way, as "probing packets".
 */
export const MIN_UDP_PACKET = 32;

/** The largest UDP payload: 65,535 − 8 (UDP header) − 20 (IPv4 header); IPv6 counts no header in its 65,535. */
const MAX_UDP_PAYLOAD = { 4: 65_507, 6: 65_527 } as const;

/** dgram's lookup hook for targets that are IP literals: answer synchronously. */
function literalLookup(address: string, _family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, address.indexOf(':') >= 0 ? 6 : 4);
}

/** Asked for so that bursts are not dropped by the kernel; the kernel caps it silently. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpListenerSocket {
  private closed = false;

  private constructor(
    readonly listener: Listener,
    private readonly socket: dgram.Socket,
    private readonly context: TransportContext,
  ) {
    const stats = context.stats;
    socket.on('message', (bytes: Buffer, rinfo: dgram.RemoteInfo) => {
      stats.udpDatagramsIn++;
      stats.udpBytesIn += bytes.length;
      if (bytes.length < MIN_UDP_PACKET) {
        stats.udpProbesDropped++;
        return;
      }
      context.deliver({
        bytes,
        protocol: 'udp',
        sourceAddress: rinfo.address,
        sourcePort: rinfo.port,
        listener,
      });
    });
    // Errors not tied to one send (ICMP-driven errors on some systems, ...): count and go on.
    socket.on('error', (err: Error) => {
      stats.socketErrors++;
      context.report(
        new SipctlError('E_TRANSPORT_UDP_SOCKET', `UDP socket ${formatListenSpec(listener)}: ${describeSystemError(err)}`, { cause: err }),
        { operation: 'receive', protocol: 'udp', listener },
      );
    });
  }

  /** Bind the socket; rejects with E_TRANSPORT_BIND naming the listener. */
  static bind(id: number, spec: ListenSpec, context: TransportContext): Promise<UdpListenerSocket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({
        type: spec.family === 6 ? 'udp6' : 'udp4',
        ipv6Only: spec.family === 6,
        // Targets are always IP literals (names are resolved before the hot path), so the
        // "lookup" answers at once: dgram's default, dns.lookup, would defer every send by
        // a tick just to recognise an IP address.
        lookup: literalLookup,
      });
      const onBindError = (err: Error): void => {
        try {
          socket.close();
        } catch {
          /* never bound: nothing to close */
        }
        reject(bindError(spec, err));
      };
      socket.once('error', onBindError);
      socket.once('listening', () => {
        socket.removeListener('error', onBindError);
        trySocketBuffers(socket);
        const bound = socket.address();
        const listener: Listener = Object.freeze({
          id,
          protocol: 'udp',
          address: spec.address,
          port: bound.port,
          family: spec.family,
        });
        resolve(new UdpListenerSocket(listener, socket, context));
      });
      socket.bind({ address: spec.address, port: spec.port, exclusive: true });
    });
  }

  /**
   * Send one datagram. Called for every message, so: no allocation of our own beyond what
   * dgram needs and no completion callback (with one, dgram defers every successful send's
   * callback by a tick). The failures a callback would report are refused here first: a
   * datagram over the UDP maximum, a closed socket; an unconnected UDP socket gets no other
   * per-send errors back from the kernel worth reporting.
   */
  send(address: string, port: number, bytes: Buffer): void {
    const stats = this.context.stats;
    if (this.closed) {
      this.sendFailed(new Error('the transport is closed'), address, port);
      return;
    }
    if (bytes.length > MAX_UDP_PAYLOAD[this.listener.family]) {
      const err = Object.assign(new Error(`datagram of ${bytes.length} bytes is larger than UDP allows`), { code: 'EMSGSIZE' });
      this.sendFailed(err, address, port);
      return;
    }
    stats.udpDatagramsOut++;
    stats.udpBytesOut += bytes.length;
    try {
      this.socket.send(bytes, port, address);
    } catch (err) {
      // Synchronous refusals: an out-of-range port, a socket closed underneath us.
      this.sendFailed(err, address, port);
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private sendFailed(err: unknown, address: string, port: number): void {
    this.context.stats.sendErrors++;
    this.context.report(
      new SipctlError(
        'E_TRANSPORT_UDP_SEND',
        `cannot send UDP datagram from ${formatListenSpec(this.listener)} to ${hostPort(address, port)}: ${describeSystemError(err)}`,
        { cause: err },
      ),
      { operation: 'send', protocol: 'udp', listener: this.listener, remoteAddress: address, remotePort: port },
    );
  }
}

function trySocketBuffers(socket: dgram.Socket): void {
  // A 65,535-byte datagram must fit, and a burst of them should too; if the system refuses
  // the size, its default still receives one datagram at a time, so carry on quietly.
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    /* the default buffer still works */
  }
  try {
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    /* the default buffer still works */
  }
}

export function bindError(spec: ListenSpec, err: unknown): SipctlError {
  return new SipctlError('E_TRANSPORT_BIND', `cannot listen on ${formatListenSpec(spec)}: ${describeSystemError(err)}`, {
    cause: err,
  });
}
