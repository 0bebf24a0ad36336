/**
 * What the proxy core needs from the rest of sipctl, as narrow interfaces: the address
 * table, the dispatcher, the transport. `sipctl serve` wires the real ones; each is swapped
 * whole on reload behind these interfaces, so the core never holds a stale table.
 */
import type { AddressMatch } from '../route/api.js';
import type { SipMessage } from '../sip/message.js';
import type { Inbound, Target } from '../transport/types.js';

export interface AccessControl {
  /** Longest-prefix match of the source in the given groups (null = any group). */
  match(address: string, port: number, groups: readonly number[] | null): AddressMatch | null;
}

export interface DispatchPick {
  /** The destination URI as configured (for logs). */
  uri: string;
  /** Resolved targets in preference order; the first is used. */
  targets: readonly Target[];
  /** The set it was picked from (failover looks for the next one there). */
  setid?: number;
  /** The dispatcher's own handle on the destination (opaque to the core). */
  handle?: unknown;
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
  /**
   * Kamailio's ds_next_dst: the next active destination of `setid` that is not one of
   * `tried` (their handles), in the algorithm's failover order; null when none is left.
   */
  next?(setid: number, tried: readonly unknown[]): DispatchPick | null;
  /** A request sent to this destination went on to another one (a failover away from it). */
  countFailover?(handle: unknown): void;
  /**
   * Kamailio's ds_mark_dst: a branch to this destination timed out. Enough of them in a row
   * (probe.failures) take it out of rotation until probing brings it back.
   */
  markTimeout?(handle: unknown): void;
  /** The destination answered (any final response): its run of timeouts ends. */
  markAnswered?(handle: unknown): void;
  /** The destination's URI, for logs and failure hooks. */
  describe?(handle: unknown): string;
  /** The destination's active-call counter (call-load, algorithm 10), shared across reloads. */
  callCounter?(handle: unknown): { active: number } | undefined;
}

export const NO_ACL: AccessControl = { match: () => null };

export const NO_DISPATCH: Dispatch = {
  select: () => null,
  isNextHop: () => false,
  handleProbeResponse: () => false,
};

/**
 * Dialog tracking (src/dialog/), seen from the core: hooks where requests and responses
 * pass. Undefined when `dialog.enabled` is off: then the core does nothing more per message.
 */
export interface DialogObserver {
  /** No room for one more call (`dialog.max`): a new initial INVITE gets 503. */
  full(msg: SipMessage): boolean;
  /**
   * An initial INVITE was sent to `target` (statelessly, or as a transaction's first branch).
   * `sent`: the bytes sent, in stateless mode (what a CANCEL of our own is built from, §9.1).
   */
  invite(msg: SipMessage, inbound: Inbound, target: Target, pick: DispatchPick | undefined, sent?: Buffer): void;
  /** An initial INVITE from an admitted source that we answered ourselves with a final failure. */
  refused(msg: SipMessage, inbound: Inbound, status: number, reason: string | undefined): void;
  /** A CANCEL that arrived, or an in-dialog request that was relayed (BYE, re-INVITE, UPDATE ...). */
  request(msg: SipMessage): void;
  /** A response to an INVITE on its way upstream (stateless), or a 1xx / 2xx a transaction relays. */
  response(msg: SipMessage): void;
  /** Transaction mode: the final response sent upstream for an INVITE transaction. */
  final(request: SipMessage, status: number, reason: string | undefined): void;
  /** Transaction mode failover: the INVITE goes on to another destination. */
  retarget(request: SipMessage, target: Target, pick: DispatchPick | undefined): void;
  /**
   * A response whose only Via is ours (to a request the proxy sent itself: a keepalive
   * OPTIONS, a BYE, a CANCEL): true when it was the tracker's to absorb. Only such responses
   * reach it, so relayed responses cost nothing more.
   */
  ownResponse(msg: SipMessage, inbound: Inbound): boolean;
}
