/**
 * createTransport: bind every `--listen` socket and give the proxy one `Transport` over
 * them. Which socket a message leaves from is decided here (listenerFor); how it leaves is
 * udp.ts and tcp.ts.
 */
import { SipctlError } from '../errors.js';
import { TransportContext, type ErrorHandler } from './context.js';
import { TcpConnectionTable } from './tcp.js';
import { UdpListenerSocket } from './udp.js';
import type { Inbound, ListenSpec, Listener, Target, Transport, TransportStats } from './types.js';

export interface TransportOptions {
  readonly listen: readonly ListenSpec[];
  /** Called once per datagram / framed stream message. A throw is caught and reported. */
  onMessage(inbound: Inbound): void;
  /** Network and framing errors; the transport has already counted them and goes on. */
  onError?: ErrorHandler;
  /**
   * An observer of what is sent (SIP capture, src/capture/): called after `send` handed a
   * message to a socket without a synchronous failure, with the listener it left from. Must
   * not throw or block. Absent, `send` does nothing more than without it.
   */
  readonly onSent?: (target: Target, bytes: Buffer, listener: Listener | undefined) => void;
  /** Close a TCP connection after this long without traffic either way. Default 120 000. */
  readonly tcpIdleTimeoutMs?: number;
  /** Give up an outbound TCP connect after this long. Default 5 000. */
  readonly tcpConnectTimeoutMs?: number;
  /**
   * Close a TCP connection when a message has not arrived whole this long after its first
   * byte, or when an accepted connection has not delivered its first message this long
   * after the accept (slow-loris). Default 10 000.
   */
  readonly tcpMessageTimeoutMs?: number;
  /** Inbound (accepted) TCP connections; more are refused at accept. Default 4 096. */
  readonly maxTcpConnections?: number;
  /**
   * Outbound TCP connections (to next hops, and to peers whose own connection is gone); a
   * separate budget that inbound connections cannot use up. Default 1 024.
   */
  readonly maxTcpOutboundConnections?: number;
  /** Inbound TCP connections from one source address; more are refused at accept. Default 32. */
  readonly maxTcpConnectionsPerSource?: number;
  /**
   * Asked once per accepted TCP connection with the peer's address and port, before
   * anything is allocated for it: false closes it at once (with a reset), and it is counted
   * in `tcpConnectionsNotAdmitted`. A throw counts as false. Absent: every peer is accepted.
   * Must be cheap and must not do I/O (it runs for every connection attempt, wanted or not).
   */
  readonly admitConnection?: (address: string, port: number) => boolean;
  /** Unsent bytes one TCP connection may hold before it is closed. Default 1 MiB. */
  readonly maxTcpQueuedBytes?: number;
  /** Largest header section on a TCP stream. Default 64 KiB. */
  readonly maxHeaderBytes?: number;
  /** Largest body (Content-Length) on a TCP stream. Default 64 KiB. */
  readonly maxBodyBytes?: number;
}

export const TRANSPORT_DEFAULTS = Object.freeze({
  tcpIdleTimeoutMs: 120_000,
  tcpConnectTimeoutMs: 5_000,
  // Kamailio gives a message 20 s (tcp_msg_read_timeout); SIP over a live TCP connection
  // arrives in milliseconds, and a shorter window frees a slow-loris's slot sooner.
  tcpMessageTimeoutMs: 10_000,
  maxTcpConnections: 4_096,
  // Outbound connections go to the next hops (a handful of PBXs) and to peers a message
  // must reach when their own connection is gone (RFC 3261 §18.2.2); a thousand is ample
  // for that and bounds what they can hold (each up to maxTcpQueuedBytes).
  maxTcpOutboundConnections: 1_024,
  // A phone or a PBX needs a few connections; NAT'd offices share an address, so not 1.
  maxTcpConnectionsPerSource: 32,
  maxTcpQueuedBytes: 1024 * 1024,
  maxHeaderBytes: 64 * 1024,
  // A message larger than a UDP datagram (65,507 bytes) could not be forwarded to a UDP
  // PBX anyway, and the cap bounds what one connection can make us buffer.
  maxBodyBytes: 64 * 1024,
});

export async function createTransport(options: TransportOptions): Promise<Transport> {
  if (options.listen.length === 0) {
    throw new SipctlError('E_CONFIG_NO_LISTEN', 'no listen address given; add one, e.g. --listen udp:127.0.0.1:5060', { usage: true });
  }
  const context = new TransportContext(options.onMessage, options.onError);
  const tcp = new TcpConnectionTable(
    {
      idleTimeoutMs: positive(options.tcpIdleTimeoutMs, TRANSPORT_DEFAULTS.tcpIdleTimeoutMs, 'tcpIdleTimeoutMs'),
      connectTimeoutMs: positive(options.tcpConnectTimeoutMs, TRANSPORT_DEFAULTS.tcpConnectTimeoutMs, 'tcpConnectTimeoutMs'),
      messageTimeoutMs: positive(options.tcpMessageTimeoutMs, TRANSPORT_DEFAULTS.tcpMessageTimeoutMs, 'tcpMessageTimeoutMs'),
      maxConnections: positive(options.maxTcpConnections, TRANSPORT_DEFAULTS.maxTcpConnections, 'maxTcpConnections'),
      maxOutboundConnections: positive(
        options.maxTcpOutboundConnections,
        TRANSPORT_DEFAULTS.maxTcpOutboundConnections,
        'maxTcpOutboundConnections',
      ),
      maxConnectionsPerSource: positive(
        options.maxTcpConnectionsPerSource,
        TRANSPORT_DEFAULTS.maxTcpConnectionsPerSource,
        'maxTcpConnectionsPerSource',
      ),
      admitConnection: options.admitConnection,
      maxQueuedBytes: positive(options.maxTcpQueuedBytes, TRANSPORT_DEFAULTS.maxTcpQueuedBytes, 'maxTcpQueuedBytes'),
      maxHeaderBytes: positive(options.maxHeaderBytes, TRANSPORT_DEFAULTS.maxHeaderBytes, 'maxHeaderBytes'),
      maxBodyBytes: positive(options.maxBodyBytes, TRANSPORT_DEFAULTS.maxBodyBytes, 'maxBodyBytes'),
    },
    context,
  );

  // Bind one by one, in order, so that listener ids follow the command line and the first
  // failure names its listener; whatever was bound before it is closed again.
  const listeners: Listener[] = [];
  const udpById: (UdpListenerSocket | undefined)[] = [];
  try {
    for (let id = 0; id < options.listen.length; id++) {
      const spec = options.listen[id]!;
      if (spec.protocol === 'udp') {
        const socket = await UdpListenerSocket.bind(id, spec, context);
        udpById[id] = socket;
        listeners.push(socket.listener);
      } else {
        listeners.push(await tcp.bind(id, spec));
      }
    }
  } catch (err) {
    await Promise.all([tcp.close(), ...udpById.map((s) => s?.close())]);
    throw err;
  }
  return new BoundTransport(Object.freeze(listeners), udpById, tcp, context, options.onSent);
}

class BoundTransport implements Transport {
  private closed: Promise<void> | undefined;
  /** First listener per protocol and family: where a message leaves from by default. */
  private readonly udp4: Listener | undefined;
  private readonly udp6: Listener | undefined;
  private readonly tcp4: Listener | undefined;
  private readonly tcp6: Listener | undefined;

  constructor(
    readonly listeners: readonly Listener[],
    private readonly udpById: readonly (UdpListenerSocket | undefined)[],
    private readonly tcp: TcpConnectionTable,
    private readonly context: TransportContext,
    private readonly onSent: TransportOptions['onSent'] = undefined,
  ) {
    const first = (protocol: string, family: number) => listeners.find((l) => l.protocol === protocol && l.family === family);
    this.udp4 = first('udp', 4);
    this.udp6 = first('udp', 6);
    this.tcp4 = first('tcp', 4);
    this.tcp6 = first('tcp', 6);
  }

  listenerFor(target: Target, preferred?: Listener): Listener | undefined {
    if (target.protocol === 'tcp') {
      // A message goes on an open connection when there is one, whatever `preferred` says.
      const open = this.tcp.find(target);
      if (open !== undefined) return open.listener;
    }
    return this.defaultListener(target, preferred);
  }

  send(target: Target, bytes: Buffer, via?: Listener): void {
    if (this.closed !== undefined) {
      this.dropped(target, 'E_TRANSPORT_CLOSED', 'the transport is closed');
      return;
    }
    if (target.protocol === 'udp') {
      const listener = this.defaultListener(target, via);
      if (listener === undefined) {
        this.dropped(target, 'E_TRANSPORT_NO_LISTENER', `no udp listener of the target's address family; add one with --listen`);
        return;
      }
      if (this.onSent === undefined) {
        this.udpById[listener.id]!.send(target.address, target.port, bytes);
        return;
      }
      const failures = this.context.stats.sendErrors;
      this.udpById[listener.id]!.send(target.address, target.port, bytes);
      if (this.context.stats.sendErrors === failures) this.onSent(target, bytes, listener);
      return;
    }
    // TCP looks for an open connection first; the listener only matters for a new one.
    if (this.onSent === undefined) {
      this.tcp.send(target, bytes, this.defaultListener(target, via));
      return;
    }
    const failures = this.context.stats.sendErrors;
    this.tcp.send(target, bytes, this.defaultListener(target, via));
    if (this.context.stats.sendErrors === failures) this.onSent(target, bytes, this.listenerFor(target, via));
  }

  /** `preferred` when it fits the target's protocol and family, else the first listener that does. */
  private defaultListener(target: Target, preferred: Listener | undefined): Listener | undefined {
    // Targets are IP literals: a colon means IPv6.
    const family = target.address.indexOf(':') === -1 ? 4 : 6;
    if (preferred !== undefined && preferred.protocol === target.protocol && preferred.family === family) return preferred;
    if (target.protocol === 'udp') return family === 4 ? this.udp4 : this.udp6;
    return family === 4 ? this.tcp4 : this.tcp6;
  }

  stats(): TransportStats {
    return {
      ...this.context.stats,
      tcpConnectionsOpen: this.tcp.openConnections,
      tcpConnectionsInbound: this.tcp.inboundConnections,
      tcpConnectionsOutbound: this.tcp.outboundConnections,
    };
  }

  close(): Promise<void> {
    this.closed ??= Promise.all([this.tcp.close(), ...this.udpById.map((s) => s?.close())]).then(() => undefined);
    return this.closed;
  }

  private dropped(target: Target, code: string, why: string): void {
    this.context.stats.sendErrors++;
    const where = target.address.includes(':') ? `[${target.address}]` : target.address;
    this.context.report(new SipctlError(code, `cannot send to ${target.protocol}:${where}:${target.port}: ${why}`), {
      operation: 'send',
      protocol: target.protocol,
      remoteAddress: target.address,
      remotePort: target.port,
    });
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new SipctlError('E_CONFIG_BAD_TRANSPORT_OPTION', `${name} must be a positive number, got ${value}`, { usage: true });
  }
  return value;
}
