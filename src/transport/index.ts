/** The transport layer's public surface. */
export type {
  Inbound,
  ListenSpec,
  Listener,
  Protocol,
  Target,
  Transport,
  TransportErrorContext,
  TransportStats,
} from './types.js';
export { createTransport, TRANSPORT_DEFAULTS, type TransportOptions } from './transport.js';
export { parseListenSpec, formatListenSpec, DEFAULT_SIP_PORT, DEFAULT_PROTOCOL } from './listen-spec.js';
export { MIN_UDP_PACKET } from './udp.js';
