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
  /** A message must arrive whole within this long of its first byte (inbound: the first one, of the accept). */
  readonly messageTimeoutMs: number;
  readonly maxQueuedBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
}

/**
 * What Node keeps per queued write besides the bytes themselves (measured on Node 20: about
 * 60 bytes of heap, 100 of RSS, per buffered socket.write). Charged against maxQueuedBytes so
 * that a peer that makes us queue many tiny writes (pongs) is stopped at the same memory as
 * one that makes us queue a few big ones.
 */
export const WRITE_OVERHEAD_BYTES = 100;

export class TcpConnection {
  private readonly framer: StreamFramer;
  /** Outbound connections are not usable for reading until connected; inbound ones are. */
  private connected: boolean;
  /** Set once the socket is closed or being destroyed: the table must not pick it. */
  private done = false;
  /** Writes handed to the socket whose callback has not run yet (see WRITE_OVERHEAD_BYTES). */
  private pendingWrites = 0;
  /** Armed while a message is in progress (and, inbound, from accept to the first message). */
  private messageTimer: NodeJS.Timeout | undefined;
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
    // A peer that connects and sends nothing (or only keep-alive CRLFs) must not hold a
    // slot until the idle timeout: an accepted connection gets the message timeout at once.
    // An outbound one is ours; its peer speaks when it has something to say.
    if (!outbound) this.messageTimer = setTimeout(this.messageTimedOut, settings.messageTimeoutMs);

    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.done = true;
        if (this.messageTimer !== undefined) clearTimeout(this.messageTimer);
        this.messageTimer = undefined;
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
   * Queue one message for the peer (before connecting, Node holds it until connected).
   * Goes through the capped queue (see enqueue).
   */
  write(bytes: Buffer): void {
    if (!this.enqueue(bytes)) return;
    const stats = this.context.stats;
    stats.tcpMessagesOut++;
    stats.tcpBytesOut += bytes.length;
  }

  destroy(): void {
    this.done = true;
    this.socket.destroy();
  }

  describe(): string {
    return `#${this.id} ${this.outbound ? 'to' : 'from'} ${hostPort(this.remoteAddress, this.remotePort)}`;
  }

  /**
   * Every byte we write goes through here. More unsent bytes than maxQueuedBytes (each
   * queued write charged WRITE_OVERHEAD_BYTES on top of its size) means the peer is not
   * reading: Kamailio closes such a connection (tcp_conn_wq_max) rather than let it hold
   * memory; so do we. Returns false when the connection was closed for it.
   */
  private enqueue(bytes: Buffer): boolean {
    const queued = this.socket.writableLength + this.pendingWrites * WRITE_OVERHEAD_BYTES + bytes.length;
    if (queued > this.settings.maxQueuedBytes) {
      const stats = this.context.stats;
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
      return false;
    }
    this.pendingWrites++;
    this.socket.write(bytes, this.written);
    return true;
  }

  /** Runs once per write, when the bytes reached the kernel or the socket died. */
  private readonly written = (): void => {
    this.pendingWrites--;
  };

  private receive(chunk: Buffer): void {
    const stats = this.context.stats;
    stats.tcpBytesIn += chunk.length;
    const events = this.framer.push(chunk);
    let completed = false;
    // Pongs owed for the pings seen so far in this chunk: written as one buffer, before the
    // next message is delivered (so they stay in stream order with any reply to it), or at
    // the end. One write per chunk, not one per ping: a chunk of 16,000 pings costs one
    // write, not 16,000.
    let pings = 0;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (event.kind === 'message') {
        if (pings > 0 && !this.pong(pings)) return;
        pings = 0;
        completed = true;
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
        pings++;
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
    if (pings > 0 && !this.pong(pings)) return;
    // The message timer runs from a message's first byte to its last. A message completed
    // in this chunk stops the timer of that message; one still in progress (begun in this
    // chunk or before) keeps or starts its own.
    if (completed && this.messageTimer !== undefined) {
      clearTimeout(this.messageTimer);
      this.messageTimer = undefined;
    }
    if (this.messageTimer === undefined && this.framer.messageInProgress) {
      this.messageTimer = setTimeout(this.messageTimedOut, this.settings.messageTimeoutMs);
    }
  }

  /** RFC 5626 §3.5.1: one CRLF pong per CRLFCRLF ping, through the capped queue. */
  private pong(count: number): boolean {
    return this.enqueue(count === 1 ? KEEPALIVE_PONG : Buffer.alloc(count * KEEPALIVE_PONG.length, KEEPALIVE_PONG));
  }

  /**
   * Slow-loris: a peer that starts a message and trickles it (or connects and never
   * sends one) holds a connection slot and a framer buffer for as long as it likes, since
   * every byte resets the idle timer. A message gets messageTimeoutMs from its first byte.
   */
  private readonly messageTimedOut = (): void => {
    this.messageTimer = undefined;
    if (this.done) return;
    this.context.stats.tcpMessageTimeouts++;
    const what = this.framer.messageInProgress ? 'a message begun' : 'no message';
    this.context.report(
      new SipctlError(
        'E_TRANSPORT_TCP_MESSAGE_TIMEOUT',
        `TCP connection ${this.describe()}: ${what}, not complete within ${this.settings.messageTimeoutMs} ms; closing it ` +
          `(${this.framer.bufferedBytes} bytes held)`,
      ),
      this.errorContext('receive'),
    );
    this.destroy();
  };

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
