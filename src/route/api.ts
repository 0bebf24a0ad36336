/**
 * The routing API: what a routing script sees. A route is a pair of functions over a
 * context — `request` (Kamailio's request_route) and optionally `reply` (onreply_route) —
 * that *decide*; the proxy core carries the decision out. A route never touches sockets.
 *
 * Kamailio's pseudo-variables map onto the message and the context:
 *   $rm → ctx.msg.method        $ru → ctx.msg.requestUriText / ctx.msg.uri
 *   $fU → ctx.msg.from.uri.user $tU → ctx.msg.to.uri.user
 *   $si / $sp → ctx.source.address / ctx.source.port      $rs → ctx.msg.status
 */
import type { SipMessage } from '../sip/message.js';
import type { SipUri } from '../sip/uri.js';
import type { Protocol, Target } from '../transport/types.js';

/** Where the message came from. */
export interface Source {
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** An address-table entry that matched a source (the address table's own type). */
export type { AddressMatch } from '../acl/table.js';
import type { AddressMatch } from '../acl/table.js';

/** What the core does with a request. */
export type RequestDecision =
  | { readonly action: 'reply'; readonly status: number; readonly reason?: string; readonly headers?: readonly string[] }
  | {
      readonly action: 'forward';
      /** Send here (Kamailio's $du); when absent the next hop is the top Route, else the Request-URI. */
      readonly target?: Target;
      /** A URI for `target`, for logs (e.g. the dispatcher destination). */
      readonly targetUri?: string;
    }
  | { readonly action: 'drop'; readonly why: string };

export interface RequestContext {
  readonly msg: SipMessage;
  readonly source: Source;
  /** The request carries a To tag: it belongs to a dialog (RFC 3261 §12.2). */
  readonly inDialog: boolean;

  /** Max-Forwards is absent or above 0 (§16.3 item 3). */
  maxForwardsOk(): boolean;
  /** No Route left to follow (none, or only ours, removed by looseRoute()) and the Request-URI names this proxy (§16.4 / §11: OPTIONS to us). */
  isToSelf(): boolean;

  /** Kamailio's allow_source_address(): the source is in one of these groups (any group when none is given). */
  sourceIn(...groups: number[]): boolean;
  /** The address-table entry the source matches, for its tag, or null. */
  sourceMatch(...groups: number[]): AddressMatch | null;
  /** The configured admission policy: the configured groups, plus our own next hops when enabled. */
  sourceAllowed(): boolean;
  /** Kamailio's ds_is_from_list(): the source is one of our next hops (a dispatcher destination or the --forward target). */
  fromNextHop(): boolean;

  /**
   * Kamailio's loose_route() (§16.4): removes the top Route values that name us (and
   * recovers the Request-URI after a strict router). True when the request is route-driven:
   * a Route remains to follow, the Request-URI was restored from one, or an in-dialog request
   * carried our Route. False for an initial request whose only Route was ours (a phone that
   * uses us as its outbound proxy): route it like any other initial request.
   */
  looseRoute(): boolean;
  /** Remove every Route value (an initial request from an untrusted sender must not pick its own path). */
  removeRoutes(): void;
  /** Add our Record-Route (two when the request leaves on another transport or address, §16.6 step 4). */
  recordRoute(): void;
  /** Add our Path (RFC 3327) to a REGISTER. */
  addPath(): void;

  /** Reply statelessly (§8.2.6). */
  reply(status: number, reason?: string, headers?: readonly string[]): RequestDecision;
  /** Forward by the route set, else the Request-URI. */
  relay(): RequestDecision;
  /** Forward to this next hop (the Request-URI is unchanged). */
  forward(uri: string | SipUri): RequestDecision;
  /**
   * Pick a destination of a dispatcher set and forward there; CANCEL and the ACK for a
   * non-2xx response go where their INVITE went. No active destination → the configured
   * 503.
   */
  dispatch(setid: number, algorithm: string | number): RequestDecision;
  /** Where this request's INVITE went, for a CANCEL or a non-2xx ACK, if known. */
  pairedTarget(): Target | undefined;
  drop(why: string): RequestDecision;
  /** Append a header to the forwarded request (Kamailio's append_hf). */
  appendHeader(name: string, value: string): void;
}

export interface ReplyContext {
  readonly msg: SipMessage;
  readonly source: Source;
  /** Append a header to the forwarded response. */
  appendHeader(name: string, value: string): void;
  /** Do not forward this response. */
  drop(why: string): void;
}

export interface Route {
  request(ctx: RequestContext): RequestDecision;
  reply?(ctx: ReplyContext): void;
}

export function defineRoute(route: Route): Route {
  return route;
}
