/**
 * What the UDP and TCP halves of a transport share: the counters, and the two callbacks
 * into the rest of sipctl, each guarded so that a throwing handler can never take a
 * socket event (and with it the process) down.
 */
import { SipctlError } from '../errors.js';
import type { Inbound, TransportErrorContext, TransportStats } from './types.js';

export type MutableStats = { -readonly [K in keyof TransportStats]: number };

export function emptyStats(): MutableStats {
  return {
    udpDatagramsIn: 0,
    udpBytesIn: 0,
    udpDatagramsOut: 0,
    udpBytesOut: 0,
    udpProbesDropped: 0,
    tcpMessagesIn: 0,
    tcpBytesIn: 0,
    tcpMessagesOut: 0,
    tcpBytesOut: 0,
    tcpKeepAlivePings: 0,
    tcpConnectionsOpen: 0,
    tcpConnectionsInbound: 0,
    tcpConnectionsOutbound: 0,
    tcpConnectionsAccepted: 0,
    tcpConnectionsOpened: 0,
    tcpConnectionsRefused: 0,
    tcpConnectionsNotAdmitted: 0,
    tcpConnectionsPerSourceRefused: 0,
    tcpConnectionsIdleClosed: 0,
    tcpMessageTimeouts: 0,
    tcpConnectFailures: 0,
    tcpQueueOverflows: 0,
    tcpFramingErrors: 0,
    sendErrors: 0,
    socketErrors: 0,
    handlerErrors: 0,
  };
}

export type ErrorHandler = (err: SipctlError, context: TransportErrorContext) => void;

export class TransportContext {
  readonly stats: MutableStats = emptyStats();

  constructor(
    private readonly onMessage: (inbound: Inbound) => void,
    private readonly onError: ErrorHandler | undefined,
  ) {}

  /** Hand one framed message to the proxy; a throw is counted and reported, never rethrown. */
  deliver(inbound: Inbound): void {
    try {
      this.onMessage(inbound);
    } catch (cause) {
      this.stats.handlerErrors++;
      this.report(
        new SipctlError('E_TRANSPORT_HANDLER', `the message handler threw: ${messageOf(cause)}`, { cause }),
        {
          operation: 'deliver',
          protocol: inbound.protocol,
          listener: inbound.listener,
          connectionId: inbound.connectionId,
          remoteAddress: inbound.sourceAddress,
          remotePort: inbound.sourcePort,
        },
      );
    }
  }

  report(err: SipctlError, context: TransportErrorContext): void {
    if (this.onError === undefined) return;
    try {
      this.onError(err, context);
    } catch {
      // An error reporter that fails has nowhere left to report to; the counters still hold.
    }
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
