/**
 * The RFC 3261 §16 stateless proxy core.
 *
 * Requests: validate (§16.3), detect loops (§16.3 item 4), hand the request to the route,
 * and carry out its decision — a stateless reply (§8.2.6), a drop, or a forward (§16.6:
 * Max-Forwards, Record-Route, strict-router fix-up, next hop, received/rport, our Via with a
 * stateless branch §16.11). Responses: our Via must be on top; it is removed and the
 * response goes to the next Via (§16.7 step 3, §18.2.2, RFC 3581).
 *
 * Invariants: never throws to the transport (every message is untrusted; a throwing route
 * is answered 500 and logged); no I/O but the socket send (names in next hops are resolved
 * asynchronously and cached, off the per-message path).
 */
import type { ProxyConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { RequestDecision, RequestResult, Route } from '../route/api.js';
import { ResponseCtx } from './response-context.js';
import { CORE_HEADERS } from './guarded.js';
import { SipParseError } from '../sip/errors.js';
import type { SipMessage, ValueLocation } from '../sip/message.js';
import { MAX_REQUEST_URI_BYTES } from '../sip/limits.js';
import { MAX_HEADER_FIELDS, parseMessage } from '../sip/parse.js';
import type { SipUri } from '../sip/uri.js';
import { splitList, type Via } from '../sip/values.js';
import type { Inbound, Listener, Protocol, Target, Transport } from '../transport/types.js';
import { RequestCtx } from './context.js';
import { CoreCounters, DropReason, methodIndex } from './counters.js';
import { LocalAddresses, sameAddress } from './identity.js';
import { NameCache, nextHopOf } from './next-hop.js';
import { InvitePairing } from './pairing.js';
import { buildLocalReply, localReplyTarget, localToTag } from './reply.js';
import type { AccessControl, DialogObserver, Dispatch, DispatchPick } from './services.js';
import { StatefulRelay, type StatefulCore } from './stateful.js';
import { connectionIdFrom, hostText, ownVia, receivedEdits, RequestDigest, responseTarget, transactionPartOf } from './via.js';

export interface ProxyCoreOptions {
  config: ProxyConfig;
  route: Route;
  acl: AccessControl;
  dispatch: Dispatch;
  logger: Logger;
  now?: () => number;
}

export interface ProxyStats {
  requestsIn: number;
  responsesIn: number;
  forwarded: number;
  responsesForwarded: number;
  replied: number;
  dropped: number;
  unparsable: number;
  routeErrors: number;
  rejected: number;
}

const NONE: readonly string[] = [];

/** The largest UDP payload over IPv4 (65,535 − 8 − 20). */
export const MAX_UDP_PAYLOAD = 65_507;

/** Methods whose initial requests create dialogs and get our Record-Route (RFC 3261 §12, RFC 6665, RFC 3515). */
export const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER']);

/**
 * A request that carries more of our own Vias than this has passed us that many times: it is
 * looping whatever its branches say (a real spiral — Path, a PBX sending a call back — passes
 * two or three times). The cap also bounds the loop check's per-Via work (§16.3 item 4 makes
 * the check a MAY, so how it is bounded is ours to choose).
 */
export const MAX_OWN_VIAS = 8;

export class ProxyCore implements StatefulCore {
  readonly config: ProxyConfig;
  route: Route;
  acl: AccessControl;
  dispatch: Dispatch;
  readonly logger: Logger;
  readonly pairing: InvitePairing;
  readonly names: NameCache;
  readonly stats: ProxyStats = {
    requestsIn: 0,
    responsesIn: 0,
    forwarded: 0,
    responsesForwarded: 0,
    replied: 0,
    dropped: 0,
    unparsable: 0,
    routeErrors: 0,
    rejected: 0,
  };
  /** Counters by method, response class, reply code and drop reason (read by src/metrics/). */
  readonly counters = new CoreCounters();
  private _transport: Transport | undefined;
  private _local: LocalAddresses | undefined;
  /** Log every decision about a message (`--log-level debug`); fixed at start. */
  private readonly debug: boolean;
  /** The --forward target (it may be re-resolved), admitted as a next hop. */
  private forwardTarget: () => Target | undefined = () => undefined;
  /** Transaction-stateful relaying (mode: transaction, or a route's ctx.stateful). */
  readonly stateful: StatefulRelay;
  /** Dialog tracking (src/dialog/, `dialog.enabled`); undefined when off: no work per message. */
  dialogs: DialogObserver | undefined = undefined;

  constructor(opts: ProxyCoreOptions) {
    this.config = opts.config;
    this.route = opts.route;
    this.acl = opts.acl;
    this.dispatch = opts.dispatch;
    this.logger = opts.logger;
    this.debug = opts.logger.enabled('debug');
    const now = opts.now ?? Date.now;
    this.pairing = new InvitePairing({ maxEntries: opts.config.pairing.maxEntries, ttlMs: opts.config.pairing.ttlMs, now });
    this.names = new NameCache(60_000, now);
    this.stateful = new StatefulRelay(this);
  }

  /** Bind the transport once it is listening (it needs our onInbound to be created). */
  attach(transport: Transport): void {
    this._transport = transport;
    const aliases = this.config.advertise === undefined ? this.config.aliases : [...this.config.aliases, this.config.advertise];
    this._local = new LocalAddresses(transport.listeners, aliases);
  }

  /** host:port this listener is known by to peers: the advertised address, else its own. */
  publicAddress(l: Listener): { host: string; port: number } {
    const adv = this.config.advertise;
    if (adv === undefined) return { host: hostText(l.address), port: l.port };
    const m = /^(\[[^\]]+\]|[^:]+)(?::([0-9]+))?$/.exec(adv)!;
    return { host: m[1]!, port: m[2] === undefined ? l.port : Number(m[2]) };
  }

  setForwardTarget(get: () => Target | undefined): void {
    this.forwardTarget = get;
  }

  get transport(): Transport {
    if (this._transport === undefined) throw new Error('proxy core used before attach()');
    return this._transport;
  }

  get local(): LocalAddresses {
    if (this._local === undefined) throw new Error('proxy core used before attach()');
    return this._local;
  }

  /**
   * The transport's inbound callback. Never throws.
   *
   * Admission depends only on where a message came from, so it is decided first, before a
   * byte is parsed: a response from a source that is not admitted is dropped unread
   * (acl.checkResponses), and a request from one is answered from the little it needs.
   */
  onInbound = (inbound: Inbound): void => {
    const admitted = this.sourceAllowed(inbound.sourceAddress, inbound.sourcePort, inbound.protocol);
    if (!admitted && this.config.acl.checkResponses && startsLikeResponse(inbound.bytes)) {
      this.stats.responsesIn++;
      this.stats.rejected++;
      this.stats.dropped++;
      this.counters.drops[DropReason.NotAdmitted]++;
      this.logger.limited('info', 'acl.reject-response', 'dropped a response from an address not in the address table', {
        source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
      });
      return;
    }
    let msg: SipMessage;
    try {
      msg = parseMessage(inbound.bytes);
    } catch (err) {
      // Not framable: no Via to answer to. Drop and count (DESIGN.md invariant).
      this.stats.unparsable++;
      this.counters.drops[DropReason.Parse]++;
      this.logger.limited('debug', 'unparsable', 'dropped an unparsable message', {
        source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
        reason: err instanceof SipParseError ? err.reason : String(err),
      });
      return;
    }
    try {
      if (msg.isRequest) this.onRequest(msg, inbound, admitted);
      else this.onResponse(msg, inbound);
    } catch (err) {
      this.onUnexpected(msg, inbound, admitted, err);
    }
  };

  // ------------------------------------------------------------------ requests

  private onRequest(msg: SipMessage, inbound: Inbound, admitted: boolean): void {
    this.stats.requestsIn++;
    this.counters.requestsByMethod[methodIndex(msg.method)]++;
    // What any answer needs: the top Via says where a reply goes (§18.2.2). Without one
    // there is nobody to answer, so the request is dropped and counted.
    let top: Via | undefined;
    try {
      top = msg.topVia;
    } catch (err) {
      this.drop(msg, inbound, DropReason.NoVia, `unreadable top Via (${err instanceof SipParseError ? err.reason : String(err)})`);
      return;
    }
    if (top === undefined) {
      this.drop(msg, inbound, DropReason.NoVia, 'no Via header');
      return;
    }
    // An unknown sender is cheap (DESIGN.md): it is refused before any per-Via, per-Route or
    // per-URI work, and the refusal reads nothing but what it copies.
    if (!admitted && this.config.acl.checkRequests) {
      this.stats.rejected++;
      this.logger.limited('info', 'acl.reject', 'request from an address not in the address table', {
        method: msg.method,
        source: `${inbound.sourceAddress}:${inbound.sourcePort}`,
        proto: inbound.protocol,
      });
      this.replyOrDrop(msg, inbound, this.config.acl.rejectCode, this.config.acl.rejectReason, undefined, false);
      return;
    }
    const problem = this.validate(msg);
    if (problem !== undefined) {
      this.replyOrDrop(msg, inbound, problem.status, problem.reason, problem.headers, admitted);
      return;
    }
    if (msg.method === 'INVITE' && msg.to.tag === undefined) this.counters.initialInvites++;
    const dialogs = this.dialogs;
    // A CANCEL is seen here, before a transaction absorbs it: its call ends with the 487.
    if (dialogs !== undefined && msg.method === 'CANCEL') observe(() => dialogs.request(msg));
    // ACK to one of our own stateless non-2xx replies: absorbed (it ends a transaction that
    // exists only at the sender; §17.1.1.3).
    if (msg.method === 'ACK' && msg.to.tag !== undefined && msg.to.tag.startsWith('sl') && msg.to.tag === localToTag(msg)) {
      this.drop(msg, inbound, DropReason.Ack, 'ACK for our own reply (absorbed)');
      return;
    }
    // A retransmission, the ACK of a non-2xx or a CANCEL of a transaction we hold (§17.2.3,
    // §16.10): the transaction answers; the route does not run again.
    if (this.stateful.absorb(msg, inbound, localReplyTarget(top, inbound, admitted))) return;
    // dialog.max: a new call beyond it is refused before a destination is picked (§21.5.4).
    if (dialogs !== undefined && msg.method === 'INVITE' && msg.to.tag === undefined && dialogs.full(msg)) {
      this.replyOrDrop(msg, inbound, 503, 'Service Unavailable', ['Retry-After: 5', 'Warning: 399 sipctl "too many calls (dialog.max)"'], admitted);
      return;
    }
    const digest = new RequestDigest(msg);
    if (this.looped(msg, digest)) {
      this.logger.limited('info', 'loop', 'loop detected: the request came back unchanged; answered 482', {
        method: msg.method,
        callId: safe(() => msg.callId),
        source: `${inbound.sourceAddress}:${inbound.sourcePort}`,
      });
      this.replyOrDrop(msg, inbound, 482, 'Loop Detected', undefined, admitted);
      return;
    }
    const ctx = new RequestCtx(this, msg, inbound, admitted, digest);
    const route = this.route;
    ctx.decidedBy = route;
    let result: RequestResult;
    msg.guard(CORE_HEADERS);
    const t0 = performance.now();
    try {
      result = route.request.call(route, ctx);
    } catch (err) {
      msg.guard(undefined);
      this.routeThrew(ctx, err);
      return;
    }
    const ms = performance.now() - t0;
    if (ms > this.config.route.slowMs) this.routeSlow(ctx, ms);
    if (isThenable(result)) {
      this.awaitDecision(ctx, route, Promise.resolve(result));
      return;
    }
    msg.guard(undefined);
    this.execute(ctx, result);
  }

  /** A request route threw: 400 for a message it could not parse, else 500 and one log line with the stack (DESIGN.md invariant). */
  private routeThrew(ctx: RequestCtx, err: unknown): void {
    const msg = ctx.msg;
    if (err instanceof SipParseError) {
      this.replyTo(ctx, 400, `Bad Request (${err.reason})`);
      return;
    }
    this.stats.routeErrors++;
    this.logger.limited('error', 'route.error', 'the request route threw; answered 500', {
      method: msg.method,
      callId: safe(() => msg.callId),
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    this.replyTo(ctx, 500, 'Server Internal Error');
  }

  /** The route held the event loop longer than route.slowMs: every message behind it waited that long. */
  private routeSlow(ctx: RequestCtx, ms: number): void {
    this.logger.limited('warn', 'route.slow', 'the request route held the event loop longer than route.slowMs', {
      ms: Math.round(ms * 10) / 10,
      slowMs: this.config.route.slowMs,
      method: ctx.msg.method,
      callId: safe(() => ctx.msg.callId),
    });
  }

  /**
   * An async request route (it returned a Promise). Only in a transaction: the server
   * transaction is created now, so the INVITE gets 100 Trying at once (§16.2) and
   * retransmissions are absorbed while the route waits (§17.2.1); the decision, or
   * route.asyncTimeoutMs, ends the wait. Stateless, there is nothing to hold a retransmission
   * or a CANCEL against: the Promise is refused with 500 (and logged), whatever it decides.
   */
  private awaitDecision(ctx: RequestCtx, route: Route, pending: Promise<RequestDecision>): void {
    const msg = ctx.msg;
    const stateful = ctx.stateful && msg.method !== 'ACK' && msg.method !== 'CANCEL';
    if (!stateful) {
      msg.guard(undefined);
      pending.catch(() => undefined); // its rejection has nobody to tell
      this.stats.routeErrors++;
      this.logger.limited('error', 'route.async-stateless', 'the request route returned a Promise without a transaction; answered 500 (set mode: transaction, or ctx.stateful = true before returning)', {
        method: msg.method,
        callId: safe(() => msg.callId),
      });
      this.replyOrDrop(msg, ctx.inbound, 500, 'Server Internal Error', undefined, ctx.admitted);
      return;
    }
    const upstream = localReplyTarget(msg.received.topVia!, ctx.inbound, ctx.admitted);
    const ptx = this.stateful.begin(ctx, upstream);
    if (ptx === 'full') {
      msg.guard(undefined);
      pending.catch(() => undefined);
      this.replyOrDrop(msg, ctx.inbound, 503, 'Service Unavailable', [`Retry-After: ${this.config.transaction.retryAfterS}`], ctx.admitted);
      return;
    }
    ctx.pendingTx = ptx;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      msg.guard(undefined);
      this.logger.limited('warn', 'route.async-timeout', 'the request route did not decide within route.asyncTimeoutMs', {
        ms: this.config.route.asyncTimeoutMs,
        method: msg.method,
        callId: safe(() => msg.callId),
      });
      let decision: RequestDecision = { action: 'reply', status: 500, reason: 'Server Internal Error' };
      if (route.asyncTimeout !== undefined) {
        try {
          decision = route.asyncTimeout(ctx);
        } catch (err) {
          this.routeThrew(ctx, err);
          return;
        }
      }
      this.decided(ctx, decision);
    }, this.config.route.asyncTimeoutMs);
    pending.then(
      (decision) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        msg.guard(undefined);
        try {
          this.decided(ctx, decision);
        } catch (err) {
          this.onUnexpected(msg, ctx.inbound, ctx.admitted, err);
        }
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        msg.guard(undefined);
        this.routeThrew(ctx, err);
      },
    );
  }

  /** An async decision, carried out on the transaction that waited for it. */
  private decided(ctx: RequestCtx, decision: RequestDecision): void {
    if (this.stateful.isCancelled(ctx.pendingTx)) {
      // §16.10: the caller cancelled while the route was deciding; nothing was sent on.
      this.replyTo(ctx, 487, 'Request Terminated');
      return;
    }
    if (decision === null || typeof decision !== 'object' || !('action' in decision)) {
      this.routeThrew(ctx, new Error(`the request route resolved to ${String(decision)}, not a decision (return ctx.reply(), ctx.dispatch(), ...)`));
      return;
    }
    if (decision.action === 'drop') {
      // A transaction that sent 100 Trying cannot go silent: it would never end.
      this.logger.limited('warn', 'route.async-drop', 'an async request route dropped a request in a transaction; answered 500 instead', {
        why: decision.why,
        callId: safe(() => ctx.msg.callId),
      });
      this.replyTo(ctx, 500, 'Server Internal Error');
      return;
    }
    // The transaction exists already: whatever the route set meanwhile, the request goes on it.
    ctx.stateful = true;
    this.execute(ctx, decision);
  }

  /** §16.3 items 1, 2 and 5 (syntax, URI scheme, Proxy-Require), and §8.2.2 basics. */
  private validate(msg: SipMessage): { status: number; reason: string; headers?: string[] } | undefined {
    try {
      if (msg.version.toUpperCase() !== 'SIP/2.0') return { status: 505, reason: 'Version Not Supported' };
      if (msg.topVia === undefined) throw new SipParseError('missing Via header');
      void msg.from;
      void msg.to;
      void msg.callId;
      void msg.cseq; // also checks the CSeq method against the request method (§8.1.1.5)
      void msg.maxForwards;
    } catch (err) {
      if (err instanceof SipParseError) return { status: 400, reason: `Bad Request (${err.reason})` };
      throw err;
    }
    // §21.4.12: a Request-URI longer than we are willing to parse.
    if (msg.requestUriText.length > MAX_REQUEST_URI_BYTES) return { status: 414, reason: 'Request-URI Too Long' };
    try {
      void msg.uri;
    } catch (err) {
      if (err instanceof SipParseError) {
        const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(msg.requestUriText)?.[1]?.toLowerCase();
        if (scheme !== undefined && scheme !== 'sip' && scheme !== 'sips' && scheme !== 'tel') {
          return { status: 416, reason: 'Unsupported URI Scheme' };
        }
        return { status: 400, reason: `Bad Request (${err.reason})` };
      }
      throw err;
    }
    // §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.? escruri).
    if (msg.uri.headers.size > 0) return { status: 400, reason: 'Bad Request (headers in the Request-URI)' };
    // §16.3 item 5: we support no extension a Proxy-Require could name.
    const pr = msg.fieldIndex('proxy-require') < 0 ? NONE : msg.headerValues('proxy-require');
    if (pr.length > 0 && msg.method !== 'ACK' && msg.method !== 'CANCEL') {
      return { status: 420, reason: 'Bad Extension', headers: [`Unsupported: ${pr.join(', ')}`] };
    }
    return undefined;
  }

  /**
   * §16.3 item 4: a Via of ours whose branch equals the branch we would compute for this
   * request now (from the Via below it, as it was when we first saw the request) means the
   * request came back unchanged: a loop. A different branch is a spiral, which is fine — the
   * branch reflects the Route, Proxy-Require and Proxy-Authorization fields (§16.6 step 8),
   * so a request that comes back along another route set is a spiral.
   *
   * Cost: one pass over the Via bytes looking for one of our ports (our own Vias always
   * carry it); only the values that mention one are parsed, with the Via below each; the
   * parts of the branch that are the same for every Via are hashed once (`digest`); and at
   * most MAX_OWN_VIAS of our Vias are looked at. O(message size) whatever the Vias hold.
   */
  private looped(msg: SipMessage, digest: RequestDigest): boolean {
    const local = this.local;
    const { valueStarts, valueEnds } = msg.index;
    const b = msg.buffer;
    let ours = 0;
    for (let i = msg.fieldIndex('via'); i >= 0; i = msg.fieldIndex('via', i + 1)) {
      // Only a field that mentions one of our ports is split into its values.
      if (!local.mentionsOurPort(b, valueStarts[i]!, valueEnds[i]!)) continue;
      const values = viaValuesOf(msg, i);
      for (let k = 0; k < values.length; k++) {
        const at = values[k]!;
        if (!local.mentionsOurPort(b, at.start, at.end)) continue;
        const via = msg.viaAt(at);
        if (!local.isLocalVia(via)) continue;
        if (++ours > MAX_OWN_VIAS) return true;
        // The Via below ours: the next value of this field, or the first of the next Via field.
        let below = values[k + 1];
        if (below === undefined) {
          const next = msg.fieldIndex('via', i + 1);
          if (next >= 0) below = viaValuesOf(msg, next)[0];
        }
        const expected = digest.branch(below === undefined ? undefined : msg.viaAt(below));
        // A failover branch of a transaction is the first branch's with `-k`.
        if (via.branch !== undefined && (via.branch === expected || via.branch.startsWith(`${expected}-`))) return true;
      }
    }
    return false;
  }

  private execute(ctx: RequestCtx, decision: RequestDecision): void {
    switch (decision.action) {
      case 'reply':
        this.replyTo(ctx, decision.status, decision.reason, decision.headers, decision.body);
        return;
      case 'drop':
        this.drop(ctx.msg, ctx.inbound, DropReason.Route, `the route dropped it: ${decision.why}`);
        return;
      case 'forward':
        this.forward(ctx, decision.target, decision.pick);
        return;
      default:
        this.routeThrew(ctx, new Error(`the request route returned ${JSON.stringify(decision)}, not a decision (return ctx.reply(), ctx.dispatch(), ...)`));
    }
  }

  /** A local reply to ctx's request: on its transaction when an async route is deciding, else statelessly. */
  private replyTo(
    ctx: RequestCtx,
    status: number,
    reason: string | undefined,
    headers?: readonly string[],
    body?: { readonly type: string; readonly content: string },
  ): void {
    if (ctx.pendingTx !== undefined) {
      this.stateful.replyPending(ctx.pendingTx, status, reason, headers, body);
      this.stats.replied++;
      return;
    }
    this.replyOrDrop(ctx.msg, ctx.inbound, status, reason, headers, ctx.admitted, body);
  }

  /** RFC 3261 §16.6, steps 2–8 (step 1, the copy, is the edit list; step 9 is the send). */
  private forward(ctx: RequestCtx, target: Target | undefined, pick?: DispatchPick): void {
    const msg = ctx.msg;
    // Step 3: Max-Forwards. A route that forgot maxForwardsOk() still never forwards a 0.
    let mf = msg.maxForwards;
    if (msg.edited && mf !== undefined) {
      // A route may lower Max-Forwards, never raise it: the loop protection (§16.3 item 3)
      // counts from what the sender wrote (70 when it wrote none, §16.6 step 3).
      const received = msg.received.maxForwards ?? 70;
      if (mf > received) mf = received;
    }
    if (mf === 0) {
      this.replyTo(ctx, 483, 'Too Many Hops');
      return;
    }
    if (mf === undefined) msg.insertHeaderBefore('via', 'Max-Forwards', '70');
    else msg.setHeader('max-forwards', String(mf - 1));

    // Step 6: the next element is a strict router (its Route URI has no lr): it expects
    // the Request-URI to be itself, and the real Request-URI at the end of the Route set.
    const remaining = ctx.remainingRoutes ?? { first: 0, end: msg.valueLocations('route').length };
    const topRoute = remaining.end > remaining.first ? msg.nameAddrAt('route', remaining.first)! : undefined;
    let nextUri: SipUri;
    if (topRoute !== undefined && !topRoute.uri.params.has('lr') && target === undefined) {
      msg.appendHeader('Route', `<${msg.currentUriText}>`);
      msg.setRequestUri(topRoute.uri.toString());
      msg.removeValue('route', remaining.first);
      nextUri = topRoute.uri;
    } else {
      // Step 7: the top Route, else the Request-URI (unless the route chose a target).
      nextUri = topRoute !== undefined ? topRoute.uri : msg.uri;
    }

    if (target !== undefined) {
      this.finishForward(ctx, target, pick);
      return;
    }
    const hop = nextHopOf(nextUri);
    if (hop.kind === 'target') {
      this.finishForward(ctx, hop.target);
    } else if (hop.kind === 'unsupported') {
      this.replyTo(ctx, 503, 'Service Unavailable', [`Warning: 399 sipctl "${hop.why}"`]);
    } else {
      const cached = this.names.cached(hop.host);
      if (cached !== undefined) {
        this.finishForward(ctx, { protocol: hop.protocol, address: cached, port: hop.port });
        return;
      }
      this.names.resolve(hop.host).then(
        (address) => {
          try {
            this.finishForward(ctx, { protocol: hop.protocol, address, port: hop.port });
          } catch (err) {
            this.onUnexpected(msg, ctx.inbound, ctx.admitted, err);
          }
        },
        () => {
          this.logger.limited('info', 'resolve.failed', 'cannot resolve the next hop; answered 503', {
            host: hop.host,
            method: msg.method,
            callId: safe(() => msg.callId),
          });
          this.replyTo(ctx, 503, 'Service Unavailable', [`Warning: 399 sipctl "cannot resolve ${hop.host}"`]);
        },
      );
    }
  }

  private finishForward(ctx: RequestCtx, target: Target, pick?: DispatchPick): void {
    const msg = ctx.msg;
    // Statefully: not an ACK or a CANCEL (their INVITE's transaction, or the stateless
    // pairing when it has none, takes care of them).
    const stateful = ctx.stateful && msg.method !== 'ACK' && msg.method !== 'CANCEL';
    const dialogs = this.dialogs;
    const initialInvite = dialogs !== undefined && msg.method === 'INVITE' && msg.to.tag === undefined;
    // With dialogs on every call is record-routed, so that its BYE passes here (§16.6 step 4).
    if (initialInvite) ctx.recordRouteWanted = true;
    // A failover branch is built from the request as it is now, before our per-destination edits.
    const base = stateful ? msg.serialize() : undefined;
    const branch = ctx.branch; // §16.11: from the Via as it came, before received/rport change it
    const prepared = this.prepareBranch(msg, ctx.inbound, target, { recordRoute: ctx.recordRouteWanted, path: ctx.pathWanted }, branch);
    if (!('bytes' in prepared)) {
      this.replyTo(ctx, prepared.status, prepared.reason, prepared.headers);
      return;
    }
    const { bytes, out } = prepared;
    if (base !== undefined) {
      const received = msg.received;
      const upstream = localReplyTarget(received.topVia!, ctx.inbound, ctx.admitted);
      // The route that decided, not the one in use now (a reload while a name resolved or an async route waited).
      if (!this.stateful.relay(ctx, upstream, base, target, bytes, branch, out, pick, (ctx.decidedBy as Route | undefined) ?? this.route)) {
        // The transaction table is full: come back later (§21.5.4).
        this.replyOrDrop(msg, ctx.inbound, 503, 'Service Unavailable', [`Retry-After: ${this.config.transaction.retryAfterS}`], ctx.admitted);
        return;
      }
    } else {
      if (msg.method === 'INVITE') this.pairing.remember(ctx.transactionKey, target, branch);
      this.transport.send(target, bytes, out);
      this.stats.forwarded++;
    }
    if (dialogs !== undefined) {
      if (initialInvite) observe(() => dialogs.invite(msg, ctx.inbound, target, pick, base === undefined ? bytes : undefined));
      else if (msg.method !== 'ACK' && msg.method !== 'CANCEL' && msg.to.tag !== undefined) observe(() => dialogs.request(msg));
    }
    if (this.debug) {
      this.logger.debug(stateful ? 'relayed a request statefully' : 'forwarded a request', {
        method: msg.method,
        callId: safe(() => msg.callId),
        source: `${ctx.inbound.protocol}:${ctx.inbound.sourceAddress}:${ctx.inbound.sourcePort}`,
        to: `${target.protocol}:${hostText(target.address)}:${target.port}`,
      });
    }
  }

  /**
   * §16.6 steps 4, 8 and §18.2.1 for one destination: Record-Route and Path for the interface
   * the request leaves from, received/rport on the sender's Via, our Via with `branch`; then
   * the bytes. Or why it cannot go there (no listener for it, too large: 503, 513).
   */
  prepareBranch(
    msg: SipMessage,
    inbound: Inbound,
    target: Target,
    edits: { recordRoute: boolean; path: boolean },
    branch: string,
  ): { bytes: Buffer; out: Listener } | { status: number; reason: string; headers?: readonly string[] } {
    const out = this.transport.listenerFor(target, inbound.listener);
    if (out === undefined) {
      return { status: 503, reason: 'Service Unavailable', headers: [`Warning: 399 sipctl "no ${target.protocol} listener for ${target.address}"`] };
    }
    // Step 4: Record-Route — one entry per interface when the request changes interface.
    if (edits.recordRoute) {
      let rr = `<${this.routeUri(out)}>`;
      if (inbound.listener.id !== out.id) rr = `<${this.routeUri(out, true)}>, <${this.routeUri(inbound.listener, true)}>`;
      msg.insertHeaderBefore('record-route', 'Record-Route', rr);
    }
    // RFC 3327 §5.1: our Path entry, facing the registrar.
    if (edits.path) msg.insertHeaderBefore('path', 'Path', `<${this.routeUri(out)}>`);
    // §18.2.1 / RFC 3581: received and rport on the sender's Via.
    const top = msg.topVia!;
    for (const e of receivedEdits(top, inbound.sourceAddress, inbound.sourcePort)) {
      msg.replaceRange(e.start, e.end, e.text);
    }
    // Step 8: our Via, with the branch (§16.11 stateless; a transaction's own when stateful).
    msg.insertHeaderBefore('via', 'Via', ownVia(out, this.publicAddress(out), branch, inbound));
    const bytes = msg.serialize();
    // A datagram cannot be larger than 65,507 bytes (IPv4), and the next sipctl must be able
    // to parse what we send: answer 513 rather than send something that cannot arrive.
    if ((target.protocol === 'udp' && bytes.length > MAX_UDP_PAYLOAD) || msg.headerCount + 4 > MAX_HEADER_FIELDS) {
      return { status: 513, reason: 'Message Too Large' };
    }
    return { bytes, out };
  }

  countForwarded(): void {
    this.stats.forwarded++;
  }

  countResponseRelayed(): void {
    this.stats.responsesForwarded++;
  }

  /** A URI that routes back to this listener: `sip:ADDR:PORT;transport=X;lr` (§16.6 step 4). */
  routeUri(l: Listener, double = false): string {
    const { host, port } = this.publicAddress(l);
    return `sip:${host}:${port};transport=${l.protocol};lr${double ? ';r2=on' : ''}`;
  }

  // ------------------------------------------------------------------ responses

  private onResponse(msg: SipMessage, inbound: Inbound): void {
    // (A response from a source that is not admitted never got this far: see onInbound.)
    this.stats.responsesIn++;
    let top;
    try {
      top = msg.topVia;
    } catch {
      top = undefined;
    }
    // §16.7 step 3: the top Via must be ours; anything else is not for us.
    if (top === undefined || !this.local.isLocalVia(top)) {
      this.drop(msg, inbound, DropReason.ForeignVia, 'its top Via is not ours');
      return;
    }
    if (top.branch !== undefined && this.dispatch.handleProbeResponse(top.branch, msg.status)) return;
    // A response of one of our client transactions: the transaction relays it (§16.7).
    if (this.stateful.onResponse(msg)) return;
    // A 2xx to an INVITE ends what the pairing entry was for (its ACK follows the route set).
    if (msg.status >= 200 && msg.status < 300 && top.branch !== undefined && this.pairing.size > 0) {
      const m = msg.fieldIndex('cseq');
      const key = transactionPartOf(top.branch);
      if (key !== undefined && m >= 0 && msg.rawValue(m).endsWith('INVITE')) this.pairing.forget(key);
    }
    const next = msg.secondVia;
    if (next === undefined) {
      // A response to a request we originated: a dialog's keepalive, BYE or CANCEL is absorbed there.
      const dialogs = this.dialogs;
      if (dialogs !== undefined) {
        let absorbed = false;
        observe(() => void (absorbed = dialogs.ownResponse(msg, inbound)));
        if (absorbed) return;
      }
      // Anything else (not a probe either): nothing to relay.
      this.drop(msg, inbound, DropReason.Unroutable, 'a response to a request of our own that nobody waits for');
      return;
    }
    const target = responseTarget(next, connectionIdFrom(top, next));
    if (target === undefined) {
      this.drop(msg, inbound, DropReason.Unroutable, `its next Via cannot be reached (${next.transport} ${next.host})`);
      return;
    }
    // Dialogs read the response before our edits: reading header values of an edited message
    // is far slower (measured: 1,000 calls/s failed with the read after removeTopVia).
    const dialogs = this.dialogs;
    if (dialogs !== undefined) observe(() => dialogs.response(msg));
    msg.removeTopVia();
    const replyHook = this.route.reply;
    if (replyHook !== undefined) {
      const rctx = new ResponseCtx(msg, { address: inbound.sourceAddress, port: inbound.sourcePort, protocol: inbound.protocol }, undefined);
      msg.guard(CORE_HEADERS);
      try {
        replyHook.call(this.route, rctx);
      } catch (err) {
        this.stats.routeErrors++;
        this.logger.limited('error', 'route.error', 'the reply route threw; response forwarded as it stood', {
          status: msg.status,
          callId: safe(() => msg.callId),
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        });
      }
      msg.guard(undefined);
      if (rctx.dropped !== undefined) {
        this.drop(msg, inbound, DropReason.Route, `the reply route dropped it: ${rctx.dropped}`);
        return;
      }
    }
    this.transport.send(target, msg.serialize());
    this.stats.responsesForwarded++;
    this.counters.responsesByClass[(msg.status / 100) | 0]++;
    if (this.debug) {
      this.logger.debug('relayed a response', {
        status: msg.status,
        callId: safe(() => msg.callId),
        source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
        to: `${target.protocol}:${hostText(target.address)}:${target.port}`,
      });
    }
  }

  // ------------------------------------------------------------------ local replies

  /**
   * Reply statelessly, or drop when a reply is not allowed (ACK) or cannot be addressed.
   * `admitted`: the source passed the admission check; a reply to any other source goes to
   * the packet's source address and port and nowhere else (no maddr, no sent-by port), so it
   * cannot be reflected at a third party.
   */
  replyOrDrop(
    msg: SipMessage,
    inbound: Inbound,
    status: number,
    reason: string | undefined,
    headers: readonly string[] | undefined,
    admitted: boolean,
    body?: { readonly type: string; readonly content: string },
  ): void {
    msg = msg.received; // §8.2.6.2: a reply copies the request as received, not the edits made to it
    const dialogs = this.dialogs;
    if (dialogs !== undefined && admitted && status >= 300 && msg.method === 'INVITE') {
      observe(() => {
        if (msg.to.tag === undefined) dialogs.refused(msg, inbound, status, reason);
      });
    }
    if (msg.method === 'ACK') {
      // §17.1.1.3: an ACK is never answered.
      this.drop(msg, inbound, DropReason.Ack, `an ACK is never answered (would have been ${status} ${reason ?? ''})`);
      return;
    }
    let bytes: Buffer;
    let target: Target | undefined;
    try {
      const top = msg.topVia;
      if (top === undefined) throw new SipParseError('no Via');
      bytes = buildLocalReply(msg, inbound.sourceAddress, inbound.sourcePort, status, reason, { headers, body });
      target = localReplyTarget(top, inbound, admitted);
    } catch {
      this.drop(msg, inbound, DropReason.Unroutable, `cannot be answered (${status})`);
      return;
    }
    this.transport.send(target, bytes, inbound.listener);
    this.stats.replied++;
    if (status >= 100 && status < 700) this.counters.repliesByCode[status]++;
    if (this.debug) {
      this.logger.debug('answered a request', {
        status,
        reason,
        method: msg.method,
        callId: safe(() => msg.callId),
        source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
      });
    }
  }

  /** Count and (at debug) log a message we do not act on, with why. */
  private drop(msg: SipMessage, inbound: Inbound, reason: DropReason, why: string): void {
    this.stats.dropped++;
    this.counters.drops[reason]++;
    if (this.debug) {
      this.logger.debug(msg.isRequest ? 'dropped a request' : 'dropped a response', {
        why,
        method: msg.isRequest ? msg.method : undefined,
        status: msg.isRequest ? undefined : msg.status,
        callId: safe(() => msg.callId),
        source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
      });
    }
  }

  // ------------------------------------------------------------------ helpers for the context

  /**
   * Admission by the configured groups, and by being one of our own next hops (address and
   * port; any port for a TCP peer, which connects from an ephemeral port).
   */
  sourceAllowed(address: string, port: number, protocol: Protocol = 'udp'): boolean {
    const acl = this.config.acl;
    if (this.acl.match(address, port, acl.groups === 'any' ? null : acl.groups) !== null) return true;
    return acl.admitNextHops && this.isNextHop(address, port, protocol);
  }

  /** Kamailio's ds_is_from_list(): the --forward target or a dispatcher destination (any port for a TCP peer). */
  isNextHop(address: string, port: number, protocol: Protocol = 'udp'): boolean {
    const f = this.forwardTarget();
    const hopPort = protocol === 'tcp' ? 0 : port;
    if (f !== undefined && (hopPort === 0 || f.port === hopPort) && sameAddress(f.address, address)) return true;
    return this.dispatch.isNextHop(address, hopPort);
  }

  /** A target for a URI whose host is an IP literal, else undefined. */
  literalTarget(uri: SipUri): Target | undefined {
    const hop = nextHopOf(uri);
    return hop.kind === 'target' ? hop.target : undefined;
  }

  noDestination(ctx: RequestCtx, setid: number): void {
    this.logger.limited('warn', 'dispatcher.none', 'no active destination; answered with the configured code', {
      set: setid,
      method: ctx.msg.method,
      callId: safe(() => ctx.msg.callId),
    });
  }

  private onUnexpected(msg: SipMessage, inbound: Inbound, admitted: boolean, err: unknown): void {
    if (err instanceof SipParseError) {
      if (msg.isRequest) this.replyOrDrop(msg, inbound, 400, `Bad Request (${err.reason})`, undefined, admitted);
      else this.drop(msg, inbound, DropReason.Parse, `unparsable (${err.reason})`);
      return;
    }
    this.stats.routeErrors++;
    this.logger.limited('error', 'core.error', 'unexpected error while handling a message', {
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    if (msg.isRequest) {
      try {
        this.replyOrDrop(msg, inbound, 500, 'Server Internal Error', undefined, admitted);
      } catch {
        // nothing more to do
      }
    }
  }
}

/** A Promise, or any thenable a route's library returned. */
function isThenable(v: unknown): v is PromiseLike<RequestDecision> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Run a dialog hook: what the dialog module makes of a message (a header it cannot parse)
 * never changes what happens to the message itself.
 */
function observe(f: () => void): void {
  try {
    f();
  } catch {
    // the message goes on as it would without dialogs
  }
}

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return '?';
  }
}

/** Does a message start (after the CRLFs §7.5 lets a sender put first) with "SIP/", i.e. is it a response? */
function startsLikeResponse(b: Buffer): boolean {
  let p = 0;
  while (p < b.length && (b[p] === 13 || b[p] === 10)) p++;
  return b[p] === 83 && b[p + 1] === 73 && b[p + 2] === 80 && b[p + 3] === 47;
}

/** The values of one Via field, as byte ranges (splitting only that field). */
function viaValuesOf(msg: SipMessage, field: number): ValueLocation[] {
  const base = msg.index.valueStarts[field]!;
  return splitList(msg.rawValue(field)).map(([s, e]) => ({ field, start: base + s, end: base + e }));
}
