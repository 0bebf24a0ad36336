/**
 * The transport boundary. The transport never interprets SIP: it delivers framed message
 * bytes with where they came from, and sends bytes where it is told.
 */
export type Protocol = 'udp' | 'tcp';

/** One local socket we listen on (`--listen udp:127.0.0.1:5060`). */
export interface Listener {
  /** Index in the transport's listener list; stable for the process lifetime. */
  readonly id: number;
  readonly protocol: Protocol;
  /** The bound IP literal, without brackets ("127.0.0.1", "::1"). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** One framed SIP message as it arrived. */
export interface Inbound {
  readonly bytes: Buffer;
  readonly protocol: Protocol;
  /** Source IP literal (no brackets) and port of the datagram / connection peer. */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  /** The listener it arrived on (for TCP: the listener that accepted, or the one used to connect out). */
  readonly listener: Listener;
  /** For TCP: the connection it arrived on, so a response can go back on it. */
  readonly connectionId?: number;
}

/** Where to send: always an IP literal (names are resolved before the hot path). */
export interface Target {
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
  /** For TCP: prefer this connection when it is still open. */
  readonly connectionId?: number;
  /**
   * For TCP: an inbound (accepted) connection may carry this message only when
   * `connectionId` names it; without a usable `connectionId` the message goes on an
   * outbound connection to address:port, or a new one.
   *
   * Set it on responses. RFC 3261 §18.2.2: a response goes back on the connection its
   * request came in on; when that connection is gone, the server opens a new one to the
   * Via's received / sent-by port. Falling back to "any connection to address:port" would
   * let a peer that connected to us from that address:port receive responses meant for
   * another (a forged Via naming it is enough). Requests leave it unset: an in-dialog
   * request to a TCP phone must reuse the connection the phone opened (RFC 5626 §5.3).
   */
  readonly inboundByIdOnly?: boolean;
}

export interface Transport {
  readonly listeners: readonly Listener[];
  /**
   * Send bytes. UDP: one datagram from the listener of the target's family (or `via`).
   * TCP: on `target.connectionId` if open, else on an open connection to address:port
   * (only an outbound one when `target.inboundByIdOnly`), else a new connection (reused
   * afterwards, closed after the idle timeout).
   * Never throws for network errors: failures are counted and reported through `onError`.
   */
  send(target: Target, bytes: Buffer, via?: Listener): void;
  /**
   * The listener a message to `target` would leave from: for TCP, the listener of the open
   * connection `send` would use; otherwise `preferred` when it fits the target's protocol
   * and family, else the first listener that does (undefined: none does).
   */
  listenerFor(target: Target, preferred?: Listener): Listener | undefined;
  /** Counters since creation. */
  stats(): TransportStats;
  /** Close every listener and connection; resolves when all are closed. Idempotent. */
  close(): Promise<void>;
}

/** A parsed `--listen` spec (see parseListenSpec): what to bind, before it is bound. */
export interface ListenSpec {
  readonly protocol: Protocol;
  /** IP literal without brackets; `0.0.0.0` / `::` for every local address. */
  readonly address: string;
  /** 0 asks the system for a free port; the bound port is on the Listener. */
  readonly port: number;
  readonly family: 4 | 6;
}

/** What the transport was doing when an error was reported through `onError`. */
export interface TransportErrorContext {
  /**
   * receive: a socket error on a listener or connection; send: a message could not go out;
   * connect: an outbound TCP connection failed; accept: an inbound connection was refused
   * (not admitted, a per-source or table cap) or a listener failed;
   * frame: a TCP stream could not be framed; deliver: the onMessage handler threw.
   */
  readonly operation: 'receive' | 'send' | 'connect' | 'accept' | 'frame' | 'deliver';
  readonly protocol: Protocol;
  readonly listener?: Listener;
  readonly connectionId?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

/** Counters since the transport was created (a snapshot; safe to keep). */
export interface TransportStats {
  readonly udpDatagramsIn: number;
  readonly udpBytesIn: number;
  readonly udpDatagramsOut: number;
  readonly udpBytesOut: number;
  /** Datagrams shorter than any SIP message (keep-alive probes), dropped as Kamailio does. */
  readonly udpProbesDropped: number;
  readonly tcpMessagesIn: number;
  readonly tcpBytesIn: number;
  readonly tcpMessagesOut: number;
  readonly tcpBytesOut: number;
  /** RFC 5626 §3.5.1 CRLFCRLF pings answered with a CRLF pong. */
  readonly tcpKeepAlivePings: number;
  /** Open connections, inbound plus outbound. */
  readonly tcpConnectionsOpen: number;
  /** Open inbound (accepted) connections; at most maxTcpConnections. */
  readonly tcpConnectionsInbound: number;
  /** Open outbound connections (opened by `send`); at most maxTcpOutboundConnections. */
  readonly tcpConnectionsOutbound: number;
  readonly tcpConnectionsAccepted: number;
  /** Outbound connections opened by `send`. */
  readonly tcpConnectionsOpened: number;
  /**
   * Connections refused because their budget was full: inbound beyond maxTcpConnections,
   * outbound beyond maxTcpOutboundConnections.
   */
  readonly tcpConnectionsRefused: number;
  /** Inbound connections closed at accept because `admitConnection` did not admit the peer. */
  readonly tcpConnectionsNotAdmitted: number;
  /** Inbound connections refused because their source address had maxTcpConnectionsPerSource open. */
  readonly tcpConnectionsPerSourceRefused: number;
  readonly tcpConnectionsIdleClosed: number;
  /**
   * Connections closed because a message did not arrive whole within tcpMessageTimeoutMs of
   * its first byte (or, inbound, the first message within that long of the accept): slow-loris.
   */
  readonly tcpMessageTimeouts: number;
  readonly tcpConnectFailures: number;
  /** Connections closed because their unsent bytes (pongs included) exceeded maxTcpQueuedBytes. */
  readonly tcpQueueOverflows: number;
  /** Connections closed because their stream could not be framed. */
  readonly tcpFramingErrors: number;
  /** Failed sends: no listener, a datagram refused, a connect that failed, a full queue, a closed transport. */
  readonly sendErrors: number;
  /** Errors on established sockets (ECONNRESET, EPIPE, ...). */
  readonly socketErrors: number;
  /** Times the onMessage handler threw (the transport goes on). */
  readonly handlerErrors: number;
}
