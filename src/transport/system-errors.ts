/**
 * Socket errors (errno codes from libuv) in words a person can act on. Used on error paths
 * only: binding at start-up, failed connects and sends.
 */
const DESCRIPTIONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use (EADDRINUSE): another process or another --listen has this port; stop it or choose another port',
  EADDRNOTAVAIL: "address not available (EADDRNOTAVAIL): no local interface has this IP; use one of this host's addresses, or 0.0.0.0 / [::] for all",
  EACCES: 'permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE',
  EAFNOSUPPORT: 'address family not supported (EAFNOSUPPORT): this host has no IPv6 (or IPv4) stack',
  ECONNREFUSED: 'connection refused (ECONNREFUSED): nothing listens on that port',
  ECONNRESET: 'connection reset by peer (ECONNRESET)',
  EPIPE: 'broken pipe (EPIPE): the peer closed the connection',
  ETIMEDOUT: 'timed out (ETIMEDOUT)',
  EHOSTUNREACH: 'host unreachable (EHOSTUNREACH)',
  ENETUNREACH: 'network unreachable (ENETUNREACH)',
  EMSGSIZE: 'message too large for one datagram (EMSGSIZE): UDP carries at most 65,507 bytes over IPv4; use TCP for large messages',
};

export function describeSystemError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && DESCRIPTIONS[code] !== undefined) return DESCRIPTIONS[code];
  return err instanceof Error ? err.message : String(err);
}

/** `127.0.0.1:5060`, `[::1]:5060` — for messages. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
