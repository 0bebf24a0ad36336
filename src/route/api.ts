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
import type { DispatchPick } from '../proxy/services.js';
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

/**
 * Extra parts of a local reply (Kamailio's sl_send_reply after append_to_reply): header lines
 * ("Name: value", no CR or LF) and a body. Via, From, To, Call-ID, CSeq and Content-Length
 * are the reply's own (copied from the request, §8.2.6.2) and cannot be given here.
 */
export interface ReplyOptions {
  readonly headers?: readonly string[];
  /** The body, sent as UTF-8 with its Content-Length. */
  readonly body?: string;
  /** Content-Type of the body (default text/plain). */
  readonly contentType?: string;
}

/** What the core does with a request. */
export type RequestDecision =
  | {
      readonly action: 'reply';
      readonly status: number;
      readonly reason?: string;
      readonly headers?: readonly string[];
      readonly body?: { readonly type: string; readonly content: string };
    }
  | {
      readonly action: 'forward';
      /** Send here (Kamailio's $du); when absent the next hop is the top Route, else the Request-URI. */
      readonly target?: Target;
      /** A URI for `target`, for logs (e.g. the dispatcher destination). */
      readonly targetUri?: string;
      /** The dispatcher's pick, when a dispatcher picked `target` (for failover and marking). */
      readonly pick?: DispatchPick;
    }
  | { readonly action: 'drop'; readonly why: string };

export interface RequestContext {
  readonly msg: SipMessage;
  /** Where the request came from (Kamailio's $si, $sp, $pr). */
  readonly source: Source;
  /** The local socket it arrived on (Kamailio's $Ri, $Rp). */
  readonly receivedOn: Source;
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

  /**
   * Answer the request here (Kamailio's sl_send_reply; t_reply when the request is in a
   * transaction): §8.2.6, the reply copies Via, From, To, Call-ID and CSeq of the request as
   * received. `extra`: header lines, or headers and a body.
   */
  reply(status: number, reason?: string, extra?: readonly string[] | ReplyOptions): RequestDecision;
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
  /** Append a header to the forwarded request (Kamailio's append_hf). Edits go to msg's edit list: msg.header() reads them back. */
  appendHeader(name: string, value: string): void;
  /** Add a header at the top of the header section (Kamailio's insert_hf). */
  insertHeader(name: string, value: string): void;
  /** Remove every field with that name (Kamailio's remove_hf); how many there were. Via, Max-Forwards, CSeq, Call-ID and Content-Length are the core's. */
  removeHeader(name: string): number;
  /** Replace the first field with that name, or append it (remove_hf + append_hf). */
  setHeader(name: string, value: string): void;
  /** Is a header with that name present (Kamailio's is_present_hf)? */
  hasHeader(name: string): boolean;
  /** Kamailio's $fU = ...: the user part of the From URI in the forwarded request (display name and tag kept). */
  setFromUser(user: string): void;
  /** Kamailio's $fn = ...: the From display name ("" removes it). */
  setFromDisplay(display: string): void;
  /** Kamailio's $tU = ...: the user part of the To URI. */
  setToUser(user: string): void;
  /** Kamailio's $ru / $rU = ...: the Request-URI (whole), or its user part (rewriteuser). */
  setRequestUri(uri: string): void;
  setRequestUser(user: string): void;

  /**
   * Relay this request through a transaction (Kamailio's t_relay: retransmissions, timers,
   * CANCEL, the failure hook) rather than statelessly (forward()). Starts as the config's
   * `mode`; a route may change it per request. ACK and CANCEL are never relayed statefully
   * (their INVITE's transaction handles them).
   */
  stateful: boolean;
  /**
   * Per-transaction state (Kamailio's AVPs): what the request hook puts here, this
   * transaction's reply and failure hooks see; the dialog's later requests (ACK, BYE) do not.
   * Without a transaction (stateless) it lives for this request only.
   */
  readonly tx: Map<string, unknown>;
  /** Kamailio's t_on_reply: a hook for every response of this transaction (stateful only). */
  onReply(hook: (ctx: ReplyContext) => void): void;
  /** Kamailio's t_on_failure: what to do when every branch of this transaction has failed (stateful only). */
  onFailure(hook: (ctx: FailureContext) => FailureDecision): void;
  /** Kamailio's t_set_fr: fr_timer / fr_inv_timer for this transaction, ms. */
  setTimers(timers: { frTimerMs?: number; frInvTimerMs?: number }): void;
}

export interface ReplyContext {
  readonly msg: SipMessage;
  readonly source: Source;
  /** The transaction's state when the response belongs to one (Kamailio's AVPs), else undefined. */
  readonly tx: Map<string, unknown> | undefined;
  /** Append a header to the forwarded response (append_hf in an onreply_route). */
  appendHeader(name: string, value: string): void;
  /** Replace the first field with that name, or append it. */
  setHeader(name: string, value: string): void;
  /** Remove every field with that name (remove_hf); how many there were. Via, CSeq, Call-ID, Content-Length are the core's. */
  removeHeader(name: string): number;
  /** Do not forward this response (a final response of a transaction always goes: it decides it). */
  drop(why: string): void;
}

/**
 * What a failure hook decides: a forward (to another destination: failover), a reply, or
 * undefined — the best response so far goes upstream (§16.7 step 6).
 */
export type FailureDecision = RequestDecision | undefined;

/**
 * Kamailio's failure_route: every branch of a transaction has ended without a 2xx, the
 * caller did not cancel, and no 6xx ended the search. What it sees and can do.
 */
export interface FailureContext {
  /** The request as received. */
  readonly msg: SipMessage;
  /** The best final status so far (§16.7 step 6; 408 when a branch timed out, §16.8): what goes upstream if nothing else happens (Kamailio's $T_reply_code). */
  readonly status: number;
  readonly reason: string;
  /** The final status of the branch that just ended (408 when it timed out): what a failover rule looks at. */
  readonly branchStatus: number;
  /** The branch that just ended timed out (Kamailio's t_branch_timeout). */
  readonly timedOut: boolean;
  /** The dispatcher destination the branch that just ended went to, if a dispatcher picked it. */
  readonly destination: string | undefined;
  /** Destinations tried so far (branches), this one included. */
  readonly attempts: number;
  /** The transaction's state (Kamailio's AVPs). */
  readonly tx: Map<string, unknown>;
  /**
   * Kamailio's ds_next_dst + t_relay: the next active destination of the set the request was
   * dispatched to, not tried yet, in the algorithm's order; null when none is left (or the
   * request was not dispatched).
   */
  nextDestination(): FailureDecision | null;
  /** Relay to this next hop (an IP literal, as forward() in the request hook). */
  forward(uri: string | SipUri): FailureDecision;
  /** Answer upstream with this instead of the best response. */
  reply(status: number, reason?: string, headers?: readonly string[]): FailureDecision;
}

/** A dispatcher destination whose state changed (Kamailio's event_route[dispatcher:dst-down] / dst-up). */
export interface DestinationEvent {
  readonly setid: number;
  readonly uri: string;
  /** The state before and after: active, inactive, probing, disabled. */
  readonly from: string;
  readonly to: string;
  /** Why: probe, timeouts, cli, reload. */
  readonly reason: string;
}

export interface RouteEvents {
  /** A destination left the rotation. */
  destinationDown?(dest: DestinationEvent): void;
  /** A destination came back. */
  destinationUp?(dest: DestinationEvent): void;
}

/**
 * What `request` may return. A Promise is honoured only for a request relayed in a
 * transaction (mode: transaction, or ctx.stateful = true before returning): the INVITE gets
 * 100 Trying at once and retransmissions are absorbed while it is pending; after
 * route.asyncTimeoutMs the request is answered 500 (or by `asyncTimeout`). In stateless mode
 * a Promise is refused: the request gets 500 and a log line says why.
 */
export type RequestResult = RequestDecision | Promise<RequestDecision>;

export interface Route {
  /** Kamailio's request_route. */
  request(ctx: RequestContext): RequestResult;
  /** Kamailio's onreply_route: every response relayed (stateless and stateful). */
  reply?(ctx: ReplyContext): void;
  /** Kamailio's failure_route, for every transaction whose request hook set none (onFailure). */
  failure?(ctx: FailureContext): FailureDecision;
  /** Kamailio's branch_route: not supported (sipctl forks no parallel branches); accepted for portability and never called. */
  branch?(ctx: RequestContext): void;
  /** Kamailio's event_route[dispatcher:dst-down|dst-up]. */
  events?: RouteEvents;
  /** The answer when an async `request` has not decided within route.asyncTimeoutMs (default: 500). */
  asyncTimeout?(ctx: RequestContext): RequestDecision;
}

export function defineRoute<R extends Route>(route: R): R {
  return route;
}
