/**
 * What the proxy core needs from the rest of sipctl, as narrow interfaces: the address
 * table, the dispatcher, the transport. `sipctl serve` wires the real ones; each is swapped
 * whole on reload behind these interfaces, so the core never holds a stale table.
 */
import type { AddressMatch } from '../route/api.js';
import type { Target } from '../transport/types.js';

export interface AccessControl {
  /** Longest-prefix match of the source in the given groups (null = any group). */
  match(address: string, port: number, groups: readonly number[] | null): AddressMatch | null;
}

export interface DispatchPick {
  /** The destination URI as configured (for logs). */
  uri: string;
  /** Resolved targets in preference order; the first is used. */
  targets: readonly Target[];
}

export interface SelectionKey {
  callId: string;
  fromUri: string;
  toUri: string;
  requestUri: string;
}

export interface Dispatch {
  /** Pick a destination of `setid` by `algorithm`; null when none is active. */
  select(setid: number, algorithm: string | number, key: SelectionKey): DispatchPick | null;
  /** Is address:port (port 0: any port) one of our next hops (for admitting in-dialog requests from PBXs)? */
  isNextHop(address: string, port: number): boolean;
  /** A response to one of our OPTIONS probes: consumed when true. */
  handleProbeResponse(branch: string, status: number): boolean;
}

export const NO_ACL: AccessControl = { match: () => null };

export const NO_DISPATCH: Dispatch = {
  select: () => null,
  isNextHop: () => false,
  handleProbeResponse: () => false,
};
