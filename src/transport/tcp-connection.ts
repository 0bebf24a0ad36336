/**
 * One TCP connection, inbound (accepted by a listener) or outbound (opened by `send`):
 * its socket, its stream framer, its timers. The connection table (tcp.ts) decides which
 * connection a message goes on; this file only moves bytes and reports what happens.
 */
import type net from 'node:net';
import { SipctlError } from '../errors.js';
import { KEEPALIVE_PONG, StreamFramer } from '../sip/framing.js';
import type { TransportContext } from './context.js';
import { describeSystemError, hostPort } from './system-errors.js';
import type { Listener, TransportErrorContext } from './types.js';

export interface ConnectionSettings {
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxQueuedBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
}

export class TcpConnection {
  private readonly framer: StreamFramer;
  /** Outbound connections are not usable for reading until connected; inbound ones are. */
  private connected: boolean;
  /** Set once the socket is closed or being destroyed: the table must not pick it. */
  private done = false;
  readonly closedPromise: Promise<void>;

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    /** The listener that accepted it, or the one of its protocol and family it left from. */
    readonly listener: Listener,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly outbound: boolean,
    private readonly settings: ConnectionSettings,
    private readonly context: TransportContext,
    onClosed: (connection: TcpConnection) => void,
  ) {
    this.framer = new StreamFramer({ maxHeaderBytes: settings.maxHeaderBytes, maxBodyBytes: settings.maxBodyBytes });
    this.connected = !outbound;
    // SIP messages are small and latency matters more than segment count.
    socket.setNoDelay(true);
    // Node's socket timeout fires after this long without reads or writes: the idle timer
    // for an established connection, the connect timer for one still connecting.
    socket.setTimeout(outbound ? settings.connectTimeoutMs : settings.idleTimeoutMs);

    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.done = true;
        onClosed(this);
        resolve();
      });
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('timeout', () => this.timedOut());
    socket.on('error', (err: Error) => this.failed(err));
    if (outbound) {
      socket.once('connect', () => {
        this.connected = true;
        socket.setTimeout(settings.idleTimeoutMs);
      });
    }
  }

  /** True while messages may be written to it. */
  get open(): boolean {
    return !this.done && !this.socket.destroyed;
  }

  /**
   * Queue bytes for the peer (before connecting, Node holds them until connected).
   * More unsent bytes than maxQueuedBytes means the peer is not reading: Kamailio closes
   * such a connection (tcp_conn_wq_max) rather than let it hold memory; so do we.
   */
  write(bytes: Buffer): void {
    const stats = this.context.stats;
    if (this.socket.writableLength + bytes.length > this.settings.maxQueuedBytes) {
      stats.tcpQueueOverflows++;
      stats.sendErrors++;
      this.context.report(
        new SipctlError(
          'E_TRANSPORT_TCP_QUEUE_FULL',
          `TCP connection ${this.describe()} has more than ${this.settings.maxQueuedBytes} bytes unsent ` +
            `(the peer is not reading); closing it`,
        ),
        this.errorContext('send'),
      );
      this.destroy();
      return;
    }
    stats.tcpMessagesOut++;
    stats.tcpBytesOut += bytes.length;
    this.socket.write(bytes);
  }

  destroy(): void {
    this.done = true;
    this.socket.destroy();
  }

  describe(): string {
    return `#${this.id} ${this.outbound ? 'to' : 'from'} ${hostPort(this.remoteAddress, this.remotePort)}`;
  }

  private receive(chunk: Buffer): void {
    const stats = this.context.stats;
    stats.tcpBytesIn += chunk.length;
    const events = this.framer.push(chunk);
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (event.kind === 'message') {
        stats.tcpMessagesIn++;
        this.context.deliver({
          bytes: event.bytes,
          protocol: 'tcp',
          sourceAddress: this.remoteAddress,
          sourcePort: this.remotePort,
          listener: this.listener,
          connectionId: this.id,
        });
        // The handler may have closed the transport; stop delivering from a dead socket.
        if (this.done) return;
      } else if (event.kind === 'ping') {
        stats.tcpKeepAlivePings++;
        this.socket.write(KEEPALIVE_PONG);
      } else {
        stats.tcpFramingErrors++;
        this.context.report(
          new SipctlError(event.error.code, `TCP connection ${this.describe()}: ${event.error.message}`, { cause: event.error }),
          this.errorContext('frame'),
        );
        this.destroy();
        return;
      }
    }
  }

  private timedOut(): void {
    const stats = this.context.stats;
    if (!this.connected) {
      stats.tcpConnectFailures++;
      this.reportConnectFailure(`no answer within ${this.settings.connectTimeoutMs} ms`, 'E_TRANSPORT_TCP_CONNECT_TIMEOUT');
    } else {
      // Nothing in either direction for idleTimeoutMs: release the socket (the peer
      // reconnects when it needs to; RFC 3261 §18 leaves connection lifetime to us).
      stats.tcpConnectionsIdleClosed++;
    }
    this.destroy();
  }

  private failed(err: Error): void {
    const stats = this.context.stats;
    if (!this.connected) {
      stats.tcpConnectFailures++;
      this.reportConnectFailure(describeSystemError(err), 'E_TRANSPORT_TCP_CONNECT', err);
      return;
    }
    stats.socketErrors++;
    this.context.report(
      new SipctlError('E_TRANSPORT_TCP_SOCKET', `TCP connection ${this.describe()}: ${describeSystemError(err)}`, { cause: err }),
      this.errorContext('receive'),
    );
  }

  private reportConnectFailure(why: string, code: string, cause?: unknown): void {
    const unsent = this.socket.writableLength;
    this.context.stats.sendErrors++;
    this.context.report(
      new SipctlError(
        code,
        `cannot connect to tcp:${hostPort(this.remoteAddress, this.remotePort)}: ${why}; ${unsent} queued bytes dropped`,
        { cause },
      ),
      this.errorContext('connect'),
    );
  }

  private errorContext(operation: TransportErrorContext['operation']): TransportErrorContext {
    return {
      operation,
      protocol: 'tcp',
      listener: this.listener,
      connectionId: this.id,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
    };
  }
}
