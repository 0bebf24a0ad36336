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
import type { ReplyContext, RequestDecision, Route } from '../route/api.js';
import { SipParseError } from '../sip/errors.js';
import type { SipMessage } from '../sip/message.js';
import { MAX_HEADER_FIELDS, parseMessage } from '../sip/parse.js';
import type { SipUri } from '../sip/uri.js';
import type { Inbound, Listener, Protocol, Target, Transport } from '../transport/types.js';
import { RequestCtx } from './context.js';
import { LocalAddresses, sameAddress } from './identity.js';
import { NameCache, nextHopOf } from './next-hop.js';
import { InvitePairing } from './pairing.js';
import { buildLocalReply, localToTag } from './reply.js';
import type { AccessControl, Dispatch } from './services.js';
import { connectionIdFrom, hostText, ownVia, receivedEdits, responseTarget, statelessBranch } from './via.js';

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

export class ProxyCore {
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
  private _transport: Transport | undefined;
  private _local: LocalAddresses | undefined;
  /** The --forward target (it may be re-resolved), admitted as a next hop. */
  private forwardTarget: () => Target | undefined = () => undefined;

  constructor(opts: ProxyCoreOptions) {
    this.config = opts.config;
    this.route = opts.route;
    this.acl = opts.acl;
    this.dispatch = opts.dispatch;
    this.logger = opts.logger;
    const now = opts.now ?? Date.now;
    this.pairing = new InvitePairing({ maxEntries: opts.config.pairing.maxEntries, ttlMs: opts.config.pairing.ttlMs, now });
    this.names = new NameCache(60_000, now);
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

  /** The transport's inbound callback. Never throws. */
  onInbound = (inbound: Inbound): void => {
    let msg: SipMessage;
    try {
      msg = parseMessage(inbound.bytes);
    } catch (err) {
      // Not framable: no Via to answer to. Drop and count (DESIGN.md invariant).
      this.stats.unparsable++;
      this.logger.limited('debug', 'unparsable', 'dropped an unparsable message', {
        source: `${inbound.sourceAddress}:${inbound.sourcePort}`,
        proto: inbound.protocol,
        reason: err instanceof SipParseError ? err.reason : String(err),
      });
      return;
    }
    try {
      if (msg.isRequest) this.onRequest(msg, inbound);
      else this.onResponse(msg, inbound);
    } catch (err) {
      this.onUnexpected(msg, inbound, err);
    }
  };

  // ------------------------------------------------------------------ requests

  private onRequest(msg: SipMessage, inbound: Inbound): void {
    this.stats.requestsIn++;
    const problem = this.validate(msg);
    if (problem !== undefined) {
      this.replyOrDrop(msg, inbound, problem.status, problem.reason, problem.headers);
      return;
    }
    // ACK to one of our own stateless non-2xx replies: absorbed (it ends a transaction that
    // exists only at the sender; §17.1.1.3).
    if (msg.method === 'ACK' && msg.to.tag !== undefined && msg.to.tag.startsWith('sl') && msg.to.tag === localToTag(msg)) {
      this.stats.dropped++;
      return;
    }
    if (this.looped(msg)) {
      this.replyOrDrop(msg, inbound, 482, 'Loop Detected');
      return;
    }
    const ctx = new RequestCtx(this, msg, inbound);
    let decision: RequestDecision;
    try {
      decision = this.route.request(ctx);
    } catch (err) {
      if (err instanceof SipParseError) {
        this.replyOrDrop(msg, inbound, 400, `Bad Request (${err.reason})`);
        return;
      }
      this.stats.routeErrors++;
      this.logger.limited('error', 'route.error', 'the request route threw; answered 500', {
        method: msg.method,
        callId: safe(() => msg.callId),
        error: err instanceof Error ? err.message : String(err),
      });
      this.replyOrDrop(msg, inbound, 500, 'Server Internal Error');
      return;
    }
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
   * request (from the Via below it, as it was when we first saw the request) means the
   * request came back unchanged: a loop. A different branch is a spiral, which is fine.
   */
  private looped(msg: SipMessage): boolean {
    // Our own Vias always carry our port: a request none of whose Via fields mentions one of
    // our ports has been nowhere near us, and needs no Via parsed for this check.
    const { valueStarts, valueEnds } = msg.index;
    let maybe = false;
    for (let i = msg.fieldIndex('via'); i >= 0 && !maybe; i = msg.fieldIndex('via', i + 1)) {
      for (const needle of this.local.portNeedles) {
        const at = msg.buffer.indexOf(needle, valueStarts[i]!);
        if (at >= 0 && at < valueEnds[i]!) {
          maybe = true;
          break;
        }
      }
    }
    if (!maybe) return false;
    const vias = msg.vias;
    for (let i = 0; i < vias.length; i++) {
      if (this.local.isLocalVia(vias[i]!) && vias[i]!.branch === statelessBranch(msg, vias[i + 1])) return true;
    }
    return false;
  }

  private execute(ctx: RequestCtx, decision: RequestDecision): void {
    switch (decision.action) {
      case 'reply':
        this.replyOrDrop(ctx.msg, ctx.inbound, decision.status, decision.reason, decision.headers);
        return;
      case 'drop':
        this.stats.dropped++;
        this.logger.limited('debug', 'request.drop', 'dropped a request', { method: ctx.msg.method, why: decision.why });
        return;
      case 'forward':
        this.forward(ctx, decision.target);
        return;
    }
  }

  /** RFC 3261 §16.6, steps 2–8 (step 1, the copy, is the edit list; step 9 is the send). */
  private forward(ctx: RequestCtx, target: Target | undefined): void {
    const msg = ctx.msg;
    // Step 3: Max-Forwards. A route that forgot maxForwardsOk() still never forwards a 0.
    const mf = msg.maxForwards;
    if (mf === 0) {
      this.replyOrDrop(msg, ctx.inbound, 483, 'Too Many Hops');
      return;
    }
    if (mf === undefined) msg.insertHeaderBefore('via', 'Max-Forwards', '70');
    else msg.setHeader('max-forwards', String(mf - 1));

    // Step 6: the next element is a strict router (its Route URI has no lr): it expects
    // the Request-URI to be itself, and the real Request-URI at the end of the Route set.
    const remaining = ctx.remainingRoutes ?? msg.routes;
    const indexes = ctx.remainingRouteIndexes ?? remaining.map((_r, i) => i);
    let nextUri: SipUri;
    if (remaining.length > 0 && !remaining[0]!.uri.params.has('lr') && target === undefined) {
      msg.appendHeader('Route', `<${msg.currentUriText}>`);
      msg.setRequestUri(remaining[0]!.uri.toString());
      msg.removeValue('route', indexes[0]!);
      nextUri = remaining[0]!.uri;
    } else {
      // Step 7: the top Route, else the Request-URI (unless the route chose a target).
      nextUri = remaining.length > 0 ? remaining[0]!.uri : msg.uri;
    }

    if (target !== undefined) {
      this.finishForward(ctx, target);
      return;
    }
    const hop = nextHopOf(nextUri);
    if (hop.kind === 'target') {
      this.finishForward(ctx, hop.target);
    } else if (hop.kind === 'unsupported') {
      this.replyOrDrop(msg, ctx.inbound, 503, 'Service Unavailable', [`Warning: 399 sipctl "${hop.why}"`]);
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
            this.onUnexpected(msg, ctx.inbound, err);
          }
        },
        () => this.replyOrDrop(msg, ctx.inbound, 503, 'Service Unavailable', [`Warning: 399 sipctl "cannot resolve ${hop.host}"`]),
      );
    }
  }

  private finishForward(ctx: RequestCtx, target: Target): void {
    const msg = ctx.msg;
    const transport = this.transport;
    const out = transport.listenerFor(target, ctx.inbound.listener);
    if (out === undefined) {
      this.replyOrDrop(msg, ctx.inbound, 503, 'Service Unavailable', [
        `Warning: 399 sipctl "no ${target.protocol} listener for ${target.address}"`,
      ]);
      return;
    }
    // Step 4: Record-Route — one entry per interface when the request changes interface.
    if (ctx.recordRouteWanted) {
      const inbound = ctx.inbound.listener;
      let rr = `<${this.routeUri(out)}>`;
      if (inbound.id !== out.id) rr = `<${this.routeUri(out, true)}>, <${this.routeUri(inbound, true)}>`;
      msg.insertHeaderBefore('record-route', 'Record-Route', rr);
    }
    // RFC 3327 §5.1: our Path entry, facing the registrar.
    if (ctx.pathWanted) msg.insertHeaderBefore('path', 'Path', `<${this.routeUri(out)}>`);
    // §18.2.1 / RFC 3581: received and rport on the sender's Via.
    const top = msg.topVia!;
    const branch = ctx.branch; // §16.11: from the Via as it came, before received/rport change it
    for (const e of receivedEdits(top, ctx.inbound.sourceAddress, ctx.inbound.sourcePort)) {
      msg.replaceRange(e.start, e.end, e.text);
    }
    // Step 8: our Via, with the stateless branch (§16.11).
    msg.insertHeaderBefore('via', 'Via', ownVia(out, this.publicAddress(out), branch, ctx.inbound));
    const bytes = msg.serialize();
    // A datagram cannot be larger than 65,507 bytes (IPv4), and the next sipctl must be able
    // to parse what we send: answer 513 rather than send something that cannot arrive.
    if ((target.protocol === 'udp' && bytes.length > MAX_UDP_PAYLOAD) || msg.headerCount + 4 > MAX_HEADER_FIELDS) {
      this.replyOrDrop(msg, ctx.inbound, 513, 'Message Too Large');
      return;
    }
    if (msg.method === 'INVITE') this.pairing.remember(branch, target);
    transport.send(target, bytes, out);
    this.stats.forwarded++;
  }

  /** A URI that routes back to this listener: `sip:ADDR:PORT;transport=X;lr` (§16.6 step 4). */
  routeUri(l: Listener, double = false): string {
    const { host, port } = this.publicAddress(l);
    return `sip:${host}:${port};transport=${l.protocol};lr${double ? ';r2=on' : ''}`;
  }

  // ------------------------------------------------------------------ responses

  private onResponse(msg: SipMessage, inbound: Inbound): void {
    this.stats.responsesIn++;
    let top;
    try {
      top = msg.topVia;
    } catch {
      top = undefined;
    }
    // §16.7 step 3: the top Via must be ours; anything else is not for us.
    if (top === undefined || !this.local.isLocalVia(top)) {
      this.stats.dropped++;
      this.logger.limited('debug', 'response.foreign', 'dropped a response whose top Via is not ours', {
        source: `${inbound.sourceAddress}:${inbound.sourcePort}`,
        status: msg.status,
      });
      return;
    }
    if (top.branch !== undefined && this.dispatch.handleProbeResponse(top.branch, msg.status)) return;
    // A 2xx to an INVITE ends what the pairing entry was for (its ACK follows the route set).
    if (msg.status >= 200 && msg.status < 300 && top.branch !== undefined && this.pairing.size > 0) {
      const m = msg.fieldIndex('cseq');
      if (m >= 0 && msg.rawValue(m).endsWith('INVITE')) this.pairing.forget(top.branch);
    }
    const vias = msg.vias;
    const next = vias[1];
    if (next === undefined) {
      // A response to a request we originated that is not a probe: nothing to relay.
      this.stats.dropped++;
      return;
    }
    const target = responseTarget(next, connectionIdFrom(top, next));
    if (target === undefined) {
      this.stats.dropped++;
      this.logger.limited('debug', 'response.unroutable', 'dropped a response: its next Via cannot be reached', {
        via: `${next.transport} ${next.host}`,
      });
      return;
    }
    msg.removeTopVia();
    if (this.route.reply !== undefined) {
      let dropped: string | undefined;
      const rctx: ReplyContext = {
        msg,
        source: { address: inbound.sourceAddress, port: inbound.sourcePort, protocol: inbound.protocol },
        appendHeader: (name, value) => msg.appendHeader(name, value),
        drop: (why) => {
          dropped = why;
        },
      };
      try {
        this.route.reply(rctx);
      } catch (err) {
        this.stats.routeErrors++;
        this.logger.limited('error', 'route.error', 'the reply route threw; response forwarded as is', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
      if (dropped !== undefined) {
        this.stats.dropped++;
        return;
      }
    }
    this.transport.send(target, msg.serialize());
    this.stats.responsesForwarded++;
  }

  // ------------------------------------------------------------------ local replies

  /** Reply statelessly, or drop when a reply is not allowed (ACK) or cannot be addressed. */
  replyOrDrop(msg: SipMessage, inbound: Inbound, status: number, reason?: string, headers?: readonly string[]): void {
    msg = msg.received; // §8.2.6.2: a reply copies the request as received, not the edits made to it
    if (msg.method === 'ACK') {
      // §17.1.1.3: an ACK is never answered.
      this.stats.dropped++;
      return;
    }
    let bytes: Buffer;
    let target: Target | undefined;
    try {
      const top = msg.topVia;
      if (top === undefined) throw new SipParseError('no Via');
      bytes = buildLocalReply(msg, inbound.sourceAddress, inbound.sourcePort, status, reason, headers ? { headers } : {});
      target = this.localReplyTarget(top.rport !== undefined, top.port, top.maddr, inbound);
    } catch {
      this.stats.dropped++;
      this.logger.limited('debug', 'reply.unaddressable', 'dropped a request that cannot be answered', {
        status,
        source: `${inbound.sourceAddress}:${inbound.sourcePort}`,
      });
      return;
    }
    this.transport.send(target, bytes, inbound.listener);
    this.stats.replied++;
  }

  /**
   * §18.2.2 for a response we generate: a stream goes back on its connection; a datagram
   * goes to the source address, at the source port when the client asked for rport
   * (RFC 3581 §4), else at the sent-by port.
   */
  private localReplyTarget(rport: boolean, sentByPort: number | undefined, maddr: string | undefined, inbound: Inbound): Target {
    if (inbound.protocol === 'tcp') {
      return { protocol: 'tcp', address: inbound.sourceAddress, port: inbound.sourcePort, connectionId: inbound.connectionId };
    }
    if (maddr !== undefined && /^[0-9.:a-fA-F]+$/.test(maddr)) return { protocol: 'udp', address: maddr, port: sentByPort ?? 5060 };
    return { protocol: 'udp', address: inbound.sourceAddress, port: rport ? inbound.sourcePort : (sentByPort ?? 5060) };
  }

  // ------------------------------------------------------------------ helpers for the context

  /**
   * Admission by the configured groups, and by being one of our own next hops (address and
   * port; any port for a TCP peer, which connects from an ephemeral port).
   */
  sourceAllowed(address: string, port: number, protocol: Protocol = 'udp'): boolean {
    const acl = this.config.acl;
    if (this.acl.match(address, port, acl.groups === 'any' ? null : acl.groups) !== null) return true;
    if (!acl.admitNextHops) return false;
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

  private onUnexpected(msg: SipMessage, inbound: Inbound, err: unknown): void {
    if (err instanceof SipParseError) {
      if (msg.isRequest) this.replyOrDrop(msg, inbound, 400, `Bad Request (${err.reason})`);
      else this.stats.dropped++;
      return;
    }
    this.stats.routeErrors++;
    this.logger.limited('error', 'core.error', 'unexpected error while handling a message', {
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    if (msg.isRequest) {
      try {
        this.replyOrDrop(msg, inbound, 500, 'Server Internal Error');
      } catch {
        // nothing more to do
      }
    }
  }
}

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return '?';
  }
}
