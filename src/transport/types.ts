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
}

export interface Transport {
  readonly listeners: readonly Listener[];
  /**
   * Send bytes. UDP: one datagram from the listener of the target's family (or `via`).
   * TCP: on `target.connectionId` if open, else on an open connection to address:port,
   * else a new connection (reused afterwards, closed after the idle timeout).
   * Never throws for network errors: failures are counted and reported through `onError`.
   */
  send(target: Target, bytes: Buffer, via?: Listener): void;
  /** The listener a message to `target` would leave from. */
  listenerFor(target: Target, preferred?: Listener): Listener | undefined;
  close(): Promise<void>;
}
