/**
 * The routing context of one request: the routing API (src/route/api.ts) implemented over
 * the proxy core. Methods that change the message (looseRoute, appendHeader) record edits;
 * methods that decide (reply, relay, forward, dispatch, drop) return a decision for the core
 * to carry out. One object per request; nothing here does I/O.
 */
import type { AddressMatch, RequestContext, RequestDecision, Source } from '../route/api.js';
import type { SipMessage } from '../sip/message.js';
import { parseUri, type SipUri } from '../sip/uri.js';
import type { NameAddr } from '../sip/values.js';
import type { Inbound, Target } from '../transport/types.js';
import type { ProxyCore } from './core.js';
import { statelessBranch } from './via.js';

export class RequestCtx implements RequestContext {
  readonly source: Source;
  /** Set by recordRoute() / addPath(); applied when the outgoing interface is known. */
  recordRouteWanted = false;
  pathWanted = false;
  /** The Route values still to follow after looseRoute() removed ours (undefined: not called). */
  remainingRoutes: NameAddr[] | undefined = undefined;
  /** Indexes (in the message as received) of the remaining Route values. */
  remainingRouteIndexes: number[] | undefined = undefined;
  private _branch: string | undefined = undefined;

  constructor(
    readonly core: ProxyCore,
    readonly msg: SipMessage,
    readonly inbound: Inbound,
  ) {
    this.source = { address: inbound.sourceAddress, port: inbound.sourcePort, protocol: inbound.protocol };
  }

  get inDialog(): boolean {
    return this.msg.to.tag !== undefined;
  }

  /** The stateless branch of this request (§16.11), computed once. */
  get branch(): string {
    return (this._branch ??= statelessBranch(this.msg, this.msg.topVia));
  }

  maxForwardsOk(): boolean {
    const mf = this.msg.maxForwards;
    return mf === undefined || mf > 0;
  }

  isToSelf(): boolean {
    return this.msg.fieldIndex('route') < 0 && this.core.local.isLocalUri(this.msg.uri);
  }

  sourceIn(...groups: number[]): boolean {
    return this.sourceMatch(...groups) !== null;
  }

  sourceMatch(...groups: number[]): AddressMatch | null {
    return this.core.acl.match(this.source.address, this.source.port, groups.length === 0 ? null : groups);
  }

  sourceAllowed(): boolean {
    return this.core.sourceAllowed(this.source.address, this.source.port, this.source.protocol);
  }

  looseRoute(): boolean {
    const msg = this.msg;
    const local = this.core.local;
    const routes = msg.routes;
    let indexes = routes.map((_r, i) => i);
    let restored = false;
    // §16.4: a Request-URI we placed into a Record-Route means the previous hop was a strict
    // router: the real Request-URI is the last Route value. Our Record-Route URIs always
    // carry `lr`, which tells them from a request simply addressed to us.
    if (routes.length > 0 && msg.uri.scheme !== 'tel' && msg.uri.params.has('lr') && local.isLocalUri(msg.uri)) {
      const last = routes.length - 1;
      msg.setRequestUri(routes[last]!.uri.toString());
      msg.removeValue('route', last);
      indexes = indexes.slice(0, -1);
      restored = true;
    }
    // §16.4: remove the top Route value when it is us — and the next one as well when we
    // record-routed twice (one entry per interface, §16.6 step 4).
    let removed = 0;
    while (removed < 2 && removed < indexes.length && local.isLocalUri(routes[indexes[removed]!]!.uri)) {
      msg.removeValue('route', indexes[removed]!);
      removed++;
    }
    indexes = indexes.slice(removed);
    this.remainingRouteIndexes = indexes;
    this.remainingRoutes = indexes.map((i) => routes[i]!);
    return restored || routes.length > 0;
  }

  recordRoute(): void {
    this.recordRouteWanted = true;
  }

  addPath(): void {
    this.pathWanted = true;
  }

  reply(status: number, reason?: string, headers?: readonly string[]): RequestDecision {
    return headers === undefined ? { action: 'reply', status, reason } : { action: 'reply', status, reason, headers };
  }

  relay(): RequestDecision {
    return { action: 'forward' };
  }

  forward(uri: string | SipUri): RequestDecision {
    const parsed = typeof uri === 'string' ? parseUri(uri) : uri;
    const target = this.core.literalTarget(parsed);
    if (target === undefined) {
      throw new Error(`forward(${parsed.toString()}): the next hop must be an IP address with udp or tcp transport`);
    }
    return { action: 'forward', target, targetUri: parsed.toString() };
  }

  dispatch(setid: number, algorithm: string | number): RequestDecision {
    const m = this.msg.method;
    // A retransmitted INVITE, its CANCEL and the ACK for a non-2xx response go where the
    // INVITE went.
    if (m === 'INVITE' || m === 'CANCEL' || m === 'ACK') {
      const paired = this.pairedTarget();
      if (paired !== undefined) return { action: 'forward', target: paired };
    }
    const pick = this.core.dispatch.select(setid, algorithm, {
      callId: this.msg.callId,
      fromUri: this.msg.from.uriText,
      toUri: this.msg.to.uriText,
      requestUri: this.msg.requestUriText,
    });
    const target: Target | undefined = pick?.targets[0];
    if (pick === null || target === undefined) {
      this.core.noDestination(this, setid);
      return this.reply(this.core.config.dispatcher.noDestinationCode, this.core.config.dispatcher.noDestinationReason);
    }
    return { action: 'forward', target, targetUri: pick.uri };
  }

  pairedTarget(): Target | undefined {
    return this.core.pairing.lookup(this.branch);
  }

  drop(why: string): RequestDecision {
    return { action: 'drop', why };
  }

  appendHeader(name: string, value: string): void {
    this.msg.appendHeader(name, value);
  }
}
